//! The layers every response passes through, on a router of test routes: each error is
//! JSON, a panic is a 500, a slow request a 408.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use tower::ServiceExt;

use super::*;

fn app() -> Router {
    let routes = Router::new()
        .route("/ok", get(|| async { "fine" }))
        .route("/post", post(|| async { "posted" }))
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("boom");
                }
                "unreachable"
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route(
            "/teapot",
            get(|| async { (StatusCode::IM_A_TEAPOT, "Short and stout") }),
        )
        .fallback(no_such_endpoint);
    layered(
        routes,
        Arc::new(Metrics::default()),
        Duration::from_millis(200),
    )
}

async fn call(method: Method, uri: &str) -> (StatusCode, Option<String>, String) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    let response = app().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string());
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn every_error_is_json() {
    // (method, uri, status, a word the error must contain)
    let cases: &[(Method, &str, u16, &str)] = &[
        (Method::GET, "/nope", 404, "'/nope'"),
        (Method::POST, "/ok", 405, "'POST'"),
        (Method::DELETE, "/post", 405, "'/post'"),
        (Method::GET, "/panic", 500, "internal error"),
        (Method::GET, "/slow", 408, "in time"),
        (Method::GET, "/teapot", 418, "short and stout"),
    ];
    for (method, uri, status, word) in cases {
        let (got, content_type, body) = call(method.clone(), uri).await;
        assert_eq!(got.as_u16(), *status, "{method} {uri}: {body}");
        assert_eq!(
            content_type.as_deref(),
            Some("application/json"),
            "{method} {uri}"
        );
        let value: Value = serde_json::from_str(&body).unwrap();
        let message = value["error"].as_str().unwrap();
        assert!(message.contains(word), "{method} {uri}: {message}");
    }
}

#[tokio::test]
async fn successes_pass_through_untouched() {
    assert_eq!(
        call(Method::GET, "/ok").await,
        (
            StatusCode::OK,
            Some("text/plain; charset=utf-8".into()),
            "fine".into()
        )
    );
}
