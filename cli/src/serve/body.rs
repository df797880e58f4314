//! Reading a request body with a size limit and a deadline: [`JsonBody`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;

use super::error::ApiError;
use super::Shared;

/// The whole body of a JSON request, read within `--body-timeout` and `--max-body-bytes`
/// (408 and 413 otherwise; 400 when the client breaks off).
pub struct JsonBody(pub Bytes);

impl FromRequest<Arc<Shared>> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, shared: &Arc<Shared>) -> Result<Self, Self::Rejection> {
        let limit = shared.limits.max_body_bytes;
        let read = axum::body::to_bytes(req.into_body(), limit);
        match tokio::time::timeout(shared.limits.body_timeout, read).await {
            Err(_) => Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!("the request body did not arrive within {:?}", shared.limits.body_timeout),
            )),
            Ok(Ok(bytes)) => Ok(JsonBody(bytes)),
            Ok(Err(e)) if is_length_limit(&e) => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is over the {limit}-byte limit (--max-body-bytes)"),
            )),
            Ok(Err(e)) => Err(ApiError::bad(format!("reading the request body failed: {e}"))),
        }
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}
