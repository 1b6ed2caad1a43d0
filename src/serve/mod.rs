//! `cohort serve`: the HTTP lookup service over the published snapshot, with hot reload.
//!
//! The served run sits behind an `Arc` swapped atomically: a request sees one whole run,
//! and a new run is swapped in only after it has been loaded and verified in full.

mod metrics;

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::snapshot::reader::latest_run_id;
use crate::snapshot::Snapshot;
use crate::{storage, Error, Result};

pub use metrics::Metrics;

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The publish URL whose `LATEST` run is served.
    pub publish: String,
    /// How often `LATEST` is polled for a new run.
    pub poll_interval: Duration,
    /// Bearer token `/v1/*` requests must carry, if any.
    pub token: Option<String>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most checks accepted in one `POST /v1/check`.
    pub max_batch: usize,
}

impl ServeOptions {
    /// Defaults for everything but the publish URL.
    pub fn new(publish: impl Into<String>) -> ServeOptions {
        ServeOptions {
            publish: publish.into(),
            poll_interval: Duration::from_secs(30),
            token: None,
            max_body_bytes: 1 << 20,
            max_batch: 10_000,
        }
    }
}

/// The run being served, and when it was loaded.
#[derive(Debug)]
struct Served {
    snapshot: Arc<Snapshot>,
    loaded_at: i64,
}

#[derive(Debug)]
struct AppState {
    served: RwLock<Served>,
    metrics: Metrics,
    options: ServeOptions,
    last_reload_error: RwLock<Option<String>>,
}

impl AppState {
    fn snapshot(&self) -> Arc<Snapshot> {
        self.served
            .read()
            .expect("served lock is never poisoned")
            .snapshot
            .clone()
    }
}

/// Loads the current run, then serves it on `listener` until `shutdown` resolves,
/// finishing the requests in flight.
pub async fn serve(
    options: ServeOptions,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let snapshot = Snapshot::open(&options.publish).await?;
    tracing::info!(run_id = snapshot.run_id(), "serving");
    let state = Arc::new(AppState {
        served: RwLock::new(Served {
            snapshot: Arc::new(snapshot),
            loaded_at: chrono::Utc::now().timestamp(),
        }),
        metrics: Metrics::default(),
        options,
        last_reload_error: RwLock::new(None),
    });
    let reloader = tokio::spawn(reload_loop(state.clone()));
    let app = router(state);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::io("listener", e));
    reloader.abort();
    result
}

fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/v1/groups", get(list_groups))
        .route(
            "/v1/groups/{group}/members/{customer_id}",
            get(check_member),
        )
        .route("/v1/customers/{customer_id}/groups", get(customer_groups))
        .route("/v1/check", post(check_batch))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    Router::new()
        .merge(api)
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(state.options.max_body_bytes))
        .with_state(state)
}

/// Polls `LATEST`; a new run is loaded and verified in full before it replaces the old
/// one. A run that fails to load is reported and the old run keeps being served.
async fn reload_loop(state: Arc<AppState>) {
    let mut ticker = tokio::time::interval(state.options.poll_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let current = state.snapshot().run_id().to_string();
        let latest = match storage::resolve(&state.options.publish) {
            Ok(publish) => latest_run_id(&publish).await,
            Err(e) => Err(e),
        };
        let outcome = match latest {
            Ok(id) if id == current => continue,
            Ok(id) => Snapshot::open_run(&state.options.publish, &id).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(snapshot) => {
                tracing::info!(from = %current, to = snapshot.run_id(), "reloaded");
                *state.served.write().expect("served lock is never poisoned") = Served {
                    snapshot: Arc::new(snapshot),
                    loaded_at: chrono::Utc::now().timestamp(),
                };
                *state
                    .last_reload_error
                    .write()
                    .expect("lock is never poisoned") = None;
                state.metrics.reloaded(true);
            }
            Err(e) => {
                tracing::error!(error = %e, "reload failed; still serving run {current}");
                *state
                    .last_reload_error
                    .write()
                    .expect("lock is never poisoned") = Some(e.to_string());
                state.metrics.reloaded(false);
            }
        }
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn authorize(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.options.token {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if presented != Some(token.as_str()) {
            let mut response = error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token".into(),
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("valid"));
            return response;
        }
    }
    next.run(request).await
}

async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .observe(&route, response.status().as_u16(), started.elapsed());
    response
}

async fn list_groups(State(state): State<Arc<AppState>>) -> Response {
    let snapshot = state.snapshot();
    let groups: Vec<Value> = snapshot
        .groups()
        .iter()
        .map(|g| json!({ "id": g.id, "name": g.name, "members": g.members }))
        .collect();
    Json(json!({ "run_id": snapshot.run_id(), "groups": groups })).into_response()
}

async fn check_member(
    State(state): State<Arc<AppState>>,
    Path((group, customer_id)): Path<(String, String)>,
) -> Response {
    match state.snapshot().contains(&group, &customer_id) {
        Ok(member) => Json(json!({ "member": member })).into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, e.to_string()),
    }
}

async fn customer_groups(
    State(state): State<Arc<AppState>>,
    Path(customer_id): Path<String>,
) -> Response {
    let snapshot = state.snapshot();
    Json(json!({ "groups": snapshot.groups_of(&customer_id) })).into_response()
}

#[derive(Debug, Deserialize)]
struct Batch {
    checks: Vec<BatchCheck>,
}

#[derive(Debug, Deserialize)]
struct BatchCheck {
    group: String,
    customer_id: Value,
}

async fn check_batch(
    State(state): State<Arc<AppState>>,
    body: std::result::Result<Json<Batch>, JsonRejection>,
) -> Response {
    let Json(batch) = match body {
        Ok(batch) => batch,
        Err(rejection) => return error(rejection.status(), rejection.body_text()),
    };
    if batch.checks.len() > state.options.max_batch {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} checks in one request; at most {} are accepted",
                batch.checks.len(),
                state.options.max_batch
            ),
        );
    }
    let mut ids = Vec::with_capacity(batch.checks.len());
    for (i, check) in batch.checks.iter().enumerate() {
        ids.push(match &check.customer_id {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("checks[{i}].customer_id must be a string or a number, not {other}"),
                )
            }
        });
    }
    let snapshot = state.snapshot();
    let checks: Vec<(&str, &str)> = batch
        .checks
        .iter()
        .zip(&ids)
        .map(|(check, id)| (check.group.as_str(), id.as_str()))
        .collect();
    match snapshot.contains_many(&checks) {
        Ok(results) => Json(json!({ "results": results })).into_response(),
        Err(e) => {
            let i = checks
                .iter()
                .position(|(group, _)| snapshot.cardinality(group).is_none())
                .unwrap_or_default();
            error(StatusCode::NOT_FOUND, format!("checks[{i}]: {e}"))
        }
    }
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let snapshot = state.snapshot();
    let last_error = state
        .last_reload_error
        .read()
        .expect("lock is never poisoned")
        .clone();
    Json(json!({
        "status": "ok",
        "run_id": snapshot.run_id(),
        "groups": snapshot.groups().len(),
        "last_reload_error": last_error,
    }))
    .into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let (snapshot, loaded_at) = {
        let served = state.served.read().expect("served lock is never poisoned");
        (served.snapshot.clone(), served.loaded_at)
    };
    let text = state.metrics.render(&metrics::Served {
        run_id: snapshot.run_id(),
        groups: snapshot.groups().len(),
        customers: snapshot.manifest().customers,
        loaded_at,
    });
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
