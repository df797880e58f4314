//! The page at `/`: a completion box whose streamed tokens are shaded by probability (hover
//! a token for its top alternatives) and a logit-lens tab over `POST /v1/lens`. Plain
//! HTML, JavaScript and CSS built into the binary: no build step, nothing fetched from
//! elsewhere. The page and its assets need no API key; the requests it makes do (it has a
//! field for the key).

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

/// The paths of the page and its assets (all GET, exempt from `--api-key`).
pub const PATHS: &[&str] = &["/", "/page/app.js", "/page/style.css"];

const INDEX_HTML: &str = include_str!("page/index.html");
const APP_JS: &str = include_str!("page/app.js");
const STYLE_CSS: &str = include_str!("page/style.css");

/// `GET /`.
pub async fn index() -> Html<&'static str> {
    Html(INDEX_HTML)
}

/// `GET /page/app.js`.
pub async fn app_js() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], APP_JS).into_response()
}

/// `GET /page/style.css`.
pub async fn style_css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE_CSS).into_response()
}
