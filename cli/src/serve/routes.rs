//! The routes and the middleware around them (outermost first): request tracing, CORS
//! (`--cors-origin`), OpenAI-shaped error bodies for every error answer, the
//! `kiln_requests_total` counter, the API key (`--api-key`), and the body size limit.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use super::body::JsonBody;
use super::completion;
use super::{lens, page};
use super::error::ApiError;
use super::openai::{parse_object, Fields};
use super::Shared;

/// Every route, for the metrics label (anything else counts as "other").
const ROUTES: &[&str] = &[
    "/health",
    "/metrics",
    "/v1/models",
    "/models",
    "/v1/completions",
    "/v1/chat/completions",
    "/tokenize",
    "/detokenize",
    "/tokenizer_info",
    "/v1/lens",
    "/",
    "/page/app.js",
    "/page/style.css",
];

pub fn router(shared: Arc<Shared>, cors_origins: &[String]) -> Router {
    let mut app = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .route("/v1/completions", post(completion::completions))
        .route("/v1/chat/completions", post(completion::chat))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .route("/tokenizer_info", get(tokenizer_info))
        .route("/v1/lens", post(lens::lens))
        .route("/", get(page::index))
        .route("/page/app.js", get(page::app_js))
        .route("/page/style.css", get(page::style_css))
        .fallback(not_found)
        .layer(RequestBodyLimitLayer::new(shared.limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(shared.clone(), require_api_key))
        .layer(middleware::from_fn_with_state(shared.clone(), count_requests))
        .layer(middleware::map_response(openai_error_body));
    if !cors_origins.is_empty() {
        let origin = if cors_origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(cors_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
        };
        app = app.layer(
            CorsLayer::new()
                .allow_origin(origin)
                .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
                .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION]),
        );
    }
    app.layer(TraceLayer::new_for_http().on_response(DefaultOnResponse::new().level(tracing::Level::INFO))).with_state(shared)
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no route {} {}", req.method(), req.uri().path()))
}

/// `--api-key`: every route but /health, the page and its assets (and CORS preflights)
/// needs `Authorization: Bearer KEY`; otherwise 401.
async fn require_api_key(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    if let Some(key) = &shared.api_key {
        let path = req.uri().path();
        let page = req.method() == Method::GET && page::PATHS.contains(&path);
        let exempt = path == "/health" || page || req.method() == Method::OPTIONS;
        let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if !exempt && !given.is_some_and(|g| constant_time_eq(g.trim().as_bytes(), key.as_bytes())) {
            return ApiError::new(StatusCode::UNAUTHORIZED, "a valid API key is required: send Authorization: Bearer KEY").into_response();
        }
    }
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn count_requests(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let route = ROUTES.iter().find(|r| **r == path).copied().unwrap_or("other");
    let response = next.run(req).await;
    shared.metrics.requests.with_label_values(&[route, response.status().as_str()]).inc();
    response
}

/// Error answers that did not come from kiln's own handlers (the body limit, axum's
/// 405, a CORS refusal) get OpenAI's error body too, keeping their status.
async fn openai_error_body(response: Response) -> Response {
    let status = response.status();
    let is_json = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let mut message = String::from_utf8_lossy(&text).trim().to_string();
    if message.is_empty() {
        message = status.canonical_reason().unwrap_or("error").to_string();
    }
    let mut out = ApiError::new(status, message).into_response();
    for name in [header::ALLOW, header::ACCESS_CONTROL_ALLOW_ORIGIN, header::VARY] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

/// Readiness: 200 while serving, 503 once shutting down (so a balancer stops sending).
async fn health(State(s): State<Arc<Shared>>) -> Response {
    let m = &s.metrics;
    let stopping = s.shutting_down.load(Ordering::SeqCst);
    let body = json!({
        "status": if stopping { "shutting_down" } else { "ok" },
        "slots": s.slots,
        "slots_busy": m.slots_busy.get(),
        "active": m.slots_busy.get(),
        "queue_depth": m.queue_depth.get(),
        "requests_in_flight": m.requests_in_flight.get(),
        "context_per_slot": s.context,
    });
    let status = if stopping { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (status, Json(body)).into_response()
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], s.metrics.render()).into_response()
}

async fn models(State(s): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": [{"id": s.model_id, "object": "model", "created": s.started, "owned_by": "kiln", "max_model_len": s.context}],
    }))
}

/// `POST /tokenize`: llama-server's `{"content", "add_special", "with_pieces"}` or vLLM's
/// `{"prompt", "add_special_tokens"}`; special tokens are not added unless asked for.
async fn tokenize(State(s): State<Arc<Shared>>, JsonBody(body): JsonBody) -> Result<Json<Value>, ApiError> {
    let map = parse_object(&body)?;
    let f = Fields(&map);
    let (text, param) = match (f.string("content")?, f.string("prompt")?) {
        (Some(t), _) => (t.to_string(), "content"),
        (None, Some(t)) => (t.to_string(), "prompt"),
        (None, None) => return Err(ApiError::param("content", "content (or prompt) is required")),
    };
    let add_special = f.bool("add_special")?.or(f.bool("add_special_tokens")?).unwrap_or(false);
    let with_pieces = f.bool("with_pieces")?.unwrap_or(false);
    let shared = s.clone();
    let ids = tokio::task::spawn_blocking(move || shared.tokenizer.encode_with_special(&text, add_special))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::param(param, e.to_string()))?;
    let tokens: Value = if with_pieces {
        ids.iter().map(|&id| json!({"id": id, "piece": super::choice::token_string(&s.tokenizer, id)})).collect()
    } else {
        json!(ids)
    };
    Ok(Json(json!({"tokens": tokens, "count": ids.len(), "max_model_len": s.context})))
}

/// `POST /detokenize`: `{"tokens": [ids]}` → `{"content": text}` (also as `prompt`, vLLM's name).
async fn detokenize(State(s): State<Arc<Shared>>, JsonBody(body): JsonBody) -> Result<Json<Value>, ApiError> {
    let map = parse_object(&body)?;
    let ids: Vec<u32> = match Fields(&map).get("tokens") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_u64().filter(|&id| id < s.config.vocab_size as u64).map(|id| id as u32))
            .collect::<Option<_>>()
            .ok_or_else(|| ApiError::param("tokens", format!("tokens must be token ids in 0..{}", s.config.vocab_size)))?,
        _ => return Err(ApiError::param("tokens", "tokens must be an array of token ids")),
    };
    let text = s.tokenizer.decode(&ids, false).map_err(|e| ApiError::param("tokens", e.to_string()))?;
    Ok(Json(json!({"content": text, "prompt": text})))
}

/// `GET /tokenizer_info` (vLLM's): what a client needs to tokenize through this server.
async fn tokenizer_info(State(s): State<Arc<Shared>>) -> Json<Value> {
    let name = |id: Option<u32>| id.and_then(|id| s.tokenizer.id_to_token(id));
    Json(json!({
        "eos_token": name(s.eos_ids.first().copied()),
        "bos_token": name(s.bos),
        "pad_token": null,
        "chat_template": s.template,
        "model_max_length": s.context,
        "tokenizer_class": "kiln",
    }))
}
