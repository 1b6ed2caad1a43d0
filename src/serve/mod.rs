//! `cohort serve`: the HTTP lookup service over the published snapshot, with hot reload.
//!
//! The served run sits behind an `Arc` swapped atomically: a request sees one whole run,
//! and a new run is swapped in only after it has been loaded and verified in full.
//! Concerns live beside this file: [`auth`] (bearer tokens), [`reload`] (polling and
//! backoff), [`errors`] (every error as JSON), [`server`] (connections and shutdown),
//! [`handlers`] (the endpoints) and [`metrics`].

mod auth;
mod errors;
mod handlers;
mod metrics;
mod reload;
mod server;

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::snapshot::Location;
use crate::snapshot::Snapshot;
use crate::Result;

pub use auth::Tokens;
pub use metrics::Metrics;
pub use reload::MAX_BACKOFF;

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The publish location whose `LATEST` run is served (resolved once, reused by
    /// every poll).
    pub publish: Location,
    /// How often `LATEST` is polled for a new run.
    pub poll_interval: Duration,
    /// The bearer token `/v1/*` requests must carry, if any.
    pub tokens: Option<Arc<Tokens>>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most checks accepted in one `POST /v1/check`.
    pub max_batch: usize,
    /// Longest a client may take to send a request's headers, and then the rest of the
    /// request (body included) until it is answered.
    pub read_timeout: Duration,
    /// How long requests in flight may still take once shutdown begins.
    pub shutdown_grace: Duration,
}

impl ServeOptions {
    /// Defaults for everything but the publish location.
    pub fn new(publish: Location) -> ServeOptions {
        ServeOptions {
            publish,
            poll_interval: Duration::from_secs(30),
            tokens: None,
            max_body_bytes: 1 << 20,
            max_batch: 10_000,
            read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
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
    metrics: Arc<Metrics>,
    options: ServeOptions,
    /// The last reload's error as clients may see it (no paths, no URLs).
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

    fn set_reload_error(&self, message: Option<String>) {
        *self
            .last_reload_error
            .write()
            .expect("lock is never poisoned") = message;
    }
}

/// Loads the current run, then serves it on `listener` until `shutdown` resolves,
/// finishing the requests in flight within the grace period.
pub async fn serve(
    options: ServeOptions,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let snapshot = Snapshot::open_at(&options.publish).await?;
    tracing::info!(run_id = snapshot.run_id(), "serving");
    let reloader = reload::Reloader::new(
        options.publish.clone(),
        options.poll_interval,
        snapshot.run_id(),
    );
    let (read_timeout, grace) = (options.read_timeout, options.shutdown_grace);
    let state = Arc::new(AppState {
        served: RwLock::new(Served {
            snapshot: Arc::new(snapshot),
            loaded_at: chrono::Utc::now().timestamp(),
        }),
        metrics: Arc::default(),
        options,
        last_reload_error: RwLock::new(None),
    });
    let reloading = tokio::spawn(reload_loop(state.clone(), reloader));
    server::run(listener, router(state), read_timeout, grace, shutdown).await;
    reloading.abort();
    Ok(())
}

fn router(state: Arc<AppState>) -> Router {
    use handlers::*;
    let api = Router::new()
        .route("/v1/groups", get(list_groups))
        .route(
            "/v1/groups/{group}/members/{customer_id}",
            get(check_member),
        )
        .route("/v1/customers/{customer_id}/groups", get(customer_groups))
        .route("/v1/check", post(check_batch))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    let routes = Router::new()
        .merge(api)
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(no_such_endpoint)
        .layer(DefaultBodyLimit::max(state.options.max_body_bytes))
        .with_state(state.clone());
    layered(routes, state.metrics.clone(), state.options.read_timeout)
}

/// The layers every route and the fallback run in, outermost first: tracing, JSON
/// errors, metrics, panic catching, the request timeout.
fn layered(routes: Router, metrics: Arc<Metrics>, request_timeout: Duration) -> Router {
    routes
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(CatchPanicLayer::custom(errors::panicked))
        .layer(middleware::from_fn_with_state(metrics, observe))
        .layer(middleware::from_fn(errors::json_errors))
        .layer(TraceLayer::new_for_http())
}

async fn no_such_endpoint(uri: Uri) -> Response {
    errors::error(
        StatusCode::NOT_FOUND,
        format!("no endpoint at '{}'", uri.path()),
    )
}

/// Polls for new runs until the service stops; see [`reload::Reloader`].
async fn reload_loop(state: Arc<AppState>, mut reloader: reload::Reloader) {
    let mut ticker = tokio::time::interval(state.options.poll_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let current = state.snapshot().run_id().to_string();
        match reloader.poll(Instant::now()).await {
            reload::Poll::BackingOff => {}
            reload::Poll::Unchanged => state.set_reload_error(None),
            reload::Poll::Loaded(snapshot) => {
                tracing::info!(from = %current, to = snapshot.run_id(), "reloaded");
                *state.served.write().expect("served lock is never poisoned") = Served {
                    snapshot: Arc::from(snapshot),
                    loaded_at: chrono::Utc::now().timestamp(),
                };
                state.set_reload_error(None);
                state.metrics.reloaded(true);
            }
            reload::Poll::Failed(e) => {
                let retry = reloader.backoff(Instant::now()).unwrap_or_default();
                tracing::error!(
                    error = %e,
                    "reload failed; still serving run {current}; next attempt at the same run in {retry:?}"
                );
                state.set_reload_error(Some(reload::public_message(&e)));
                state.metrics.reloaded(false);
            }
        }
    }
}

async fn authorize(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if let Some(tokens) = &state.options.tokens {
        let presented = request.headers().get(header::AUTHORIZATION);
        if !tokens.admits(presented.map(|v| v.as_bytes())) {
            let mut response =
                errors::error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("valid"));
            return response;
        }
    }
    next.run(request).await
}

async fn observe(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.observe(&route, response.status().as_u16(), started.elapsed());
    response
}

#[cfg(test)]
mod tests;
