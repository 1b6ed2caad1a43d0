//! Every error the service answers is JSON `{"error": "..."}`: handlers' own errors,
//! extractor rejections, and what the router and the tower layers answer with empty or
//! plain-text bodies (404, 405, 408 timeouts, panics).

use std::any::Any;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Error bodies longer than this are not rewritten from text but replaced.
const MAX_TEXT_ERROR: usize = 4096;

/// A JSON error response.
pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// An extractor's rejection as a JSON error, its message lower-cased like ours.
pub(super) fn rejection(status: StatusCode, text: String) -> Response {
    error(status, lowercase_first(&text))
}

/// The catch-all: an error response that is not JSON already (the router's 404 and 405,
/// the timeout layer's 408, a plain-text rejection) gets a JSON body saying the same.
pub(super) async fn json_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_TEXT_ERROR)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    let message = match (status, text) {
        // The router adds the `Allow` header after this layer has run.
        (StatusCode::METHOD_NOT_ALLOWED, _) => {
            format!("method '{method}' is not allowed on '{path}' (see the Allow header)")
        }
        (StatusCode::REQUEST_TIMEOUT, _) => "the request was not completed in time".into(),
        (_, Some(text)) => lowercase_first(&text),
        (status, None) => status.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = serde_json::to_vec(&json!({ "error": message })).expect("JSON of a string");
    if method == Method::HEAD {
        return Response::from_parts(parts, Body::empty());
    }
    Response::from_parts(parts, Body::from(body))
}

/// A handler that panicked answers 500; the panic goes to the log, not to the client.
pub(super) fn panicked(panic: Box<dyn Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(not a string)");
    tracing::error!(panic = what, "a request handler panicked");
    error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

/// `Failed to parse` → `failed to parse`; an acronym (`JSON body`) stays as it is.
fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(first), second) if !second.is_some_and(char::is_uppercase) => {
            first.to_lowercase().chain(second).chain(chars).collect()
        }
        _ => text.to_string(),
    }
}
