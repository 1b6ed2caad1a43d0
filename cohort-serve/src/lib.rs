//! `cohort serve`: the HTTP lookup service over the published snapshot, with hot reload,
//! live sizing on a pool of its own, and the dashboard.
//!
//! The served run sits behind an `Arc` swapped atomically: a request sees one whole run,
//! and a new run is swapped in only after it has been loaded and verified in full.
//! Concerns live beside this file: [`auth`] (bearer tokens), [`reload`] (polling and
//! backoff), [`errors`] (every error as JSON), [`server`] (connections and shutdown),
//! [`handlers`] (the endpoints) and [`metrics`].

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![deny(unsafe_code)]

mod auth;
mod dashboard;
mod errors;
mod handlers;
mod metrics;
mod reload;
mod server;
mod sizing;

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

use cohort::snapshot::Location;
use cohort::snapshot::Snapshot;
use cohort::Result;

pub use auth::Tokens;
pub use dashboard::{HISTORY_RUNS, MAX_OVERLAP_GROUPS};
pub use metrics::Metrics;
pub use reload::MAX_BACKOFF;
pub use sizing::SizingOptions;

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
    /// Live sizing (`/v1/schema`, `/v1/size`), when the service has a customers table.
    pub sizing: Option<SizingOptions>,
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
            sizing: None,
        }
    }
}

/// The run being served, when it was loaded, and its dashboard (built once).
#[derive(Debug)]
struct Served {
    snapshot: Arc<Snapshot>,
    loaded_at: i64,
    dashboard: Arc<tokio::sync::OnceCell<axum::body::Bytes>>,
}

impl Served {
    fn new(snapshot: Arc<Snapshot>) -> Served {
        Served {
            snapshot,
            loaded_at: chrono::Utc::now().timestamp(),
            dashboard: Arc::default(),
        }
    }
}

#[derive(Debug)]
struct AppState {
    served: RwLock<Served>,
    metrics: Arc<Metrics>,
    options: ServeOptions,
    /// The last reload's error as clients may see it (no paths, no URLs).
    last_reload_error: RwLock<Option<String>>,
    /// Live sizing, when enabled.
    sizing: Option<sizing::Sizing>,
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
        served: RwLock::new(Served::new(Arc::new(snapshot))),
        metrics: Arc::default(),
        sizing: options
            .sizing
            .clone()
            .map(sizing::Sizing::new)
            .transpose()?,
        options,
        last_reload_error: RwLock::new(None),
    });
    dashboard::prepare(&state);
    if state.sizing.is_some() {
        // Opened ahead of the first request; a failure is logged and tried again then.
        let state = state.clone();
        tokio::spawn(async move {
            if let Some(Err(e)) = match &state.sizing {
                Some(sizing) => Some(sizing.sizer().await),
                None => None,
            } {
                tracing::warn!(error = %e, "live sizing: the customers table could not be opened yet");
            }
        });
    }
    let reloading = tokio::spawn(reload_loop(state.clone(), reloader));
    server::run(listener, router(state), read_timeout, grace, shutdown).await;
    reloading.abort();
    Ok(())
}

fn router(state: Arc<AppState>) -> Router<()> {
    use handlers::*;
    let read_timeout = state.options.read_timeout;
    let timeout =
        |limit: Duration| TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limit);
    let auth = || middleware::from_fn_with_state(state.clone(), authorize);
    let api = Router::new()
        .route("/v1/groups", get(list_groups))
        .route(
            "/v1/groups/{group}/members/{customer_id}",
            get(check_member),
        )
        .route("/v1/customers/{customer_id}/groups", get(customer_groups))
        .route("/v1/check", post(check_batch))
        .route("/v1/dashboard", get(dashboard::dashboard))
        .route("/v1/overlap", post(dashboard::overlap))
        .route("/v1/schema", get(sizing::schema))
        .route_layer(auth())
        .layer(timeout(read_timeout));
    // A sizing has its own deadline (answered 504 by the handler); this one only backs it.
    let size_timeout = state
        .sizing
        .as_ref()
        .map_or(Duration::ZERO, |s| s.options.timeout);
    let longest = read_timeout + size_timeout + Duration::from_secs(1);
    let sizing = Router::new()
        .route("/v1/size", post(sizing::size))
        .route_layer(auth());
    // The page and its assets: no token (a browser can't send one with a page load).
    let open = Router::new()
        .route("/", get(dashboard::index))
        .route("/assets/app.js", get(dashboard::app_js))
        .route("/assets/style.css", get(dashboard::style_css))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(timeout(read_timeout));
    let routes = Router::new()
        .merge(api)
        .merge(sizing)
        .merge(open)
        .fallback(no_such_endpoint)
        .layer(DefaultBodyLimit::max(state.options.max_body_bytes))
        .with_state(state.clone());
    layered(routes, state.metrics.clone(), longest)
}

/// The layers every route and the fallback run in, outermost first: tracing, JSON
/// errors, metrics, panic catching, the longest request time (routes other than sizing
/// have a shorter one of their own, in [`router`]).
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
                *state.served.write().expect("served lock is never poisoned") =
                    Served::new(Arc::from(snapshot));
                dashboard::prepare(&state);
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
