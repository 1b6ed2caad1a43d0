//! Live sizing over HTTP: `GET /v1/schema` (what a form needs to compose a definition) and
//! `POST /v1/size` (a definition as JSON → its counts, or its problems), when the service
//! is given a customers table. The table is opened once (lazily, and again after a
//! failure) and every request is one scan of it.
//!
//! Sizing never runs on the threads that answer lookups: the table is opened and every
//! scan runs on a runtime of its own ([`Pool`], a few threads named `cohort-sizing`), so
//! DataFusion's tasks land there. A semaphore bounds the sizings at once (429 beyond,
//! answered before anything is awaited), and a scan is aborted at its deadline: the task
//! holding its slot is dropped, and with it the scan's streams and partition tasks.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::SecondsFormat;
use serde_json::{json, Value};
use tokio::sync::{OnceCell, Semaphore};
use tokio::task::{JoinError, JoinHandle};

use super::errors::error;
use super::AppState;
use cohort::definition::{self, ConditionSpec, Group, Location, Problem};
use cohort::pipeline::{column_family, LiveSizer};
use cohort::{Error, Pipeline};

/// Why sizing answers 404 without a customers source, and how to enable it.
pub(super) const DISABLED: &str =
    "live sizing is not enabled: start cohort serve with --customers <url> \
                            (or set customers in cohort.toml)";

/// The id (and "file") problems of a sized definition name; no group file can have it.
pub(super) const REQUEST_ID: &str = "(request)";

/// How live sizing runs.
#[derive(Debug, Clone)]
pub struct SizingOptions {
    /// The customers and event tables, the definitions folder and `as_of`.
    pub pipeline: Pipeline,
    /// Whether SQL conditions are accepted over HTTP.
    pub allow_sql: bool,
    /// The longest one sizing may take; the scan is aborted then.
    pub timeout: Duration,
    /// Sizings running at once; more are answered 429.
    pub concurrency: usize,
    /// Worker threads of the sizing runtime ([`SizingOptions::default_threads`]).
    pub threads: usize,
}

impl SizingOptions {
    /// Half the cores, at least one and at most four: the other half stays with the
    /// threads that answer lookups, whatever the sizings do.
    pub fn default_threads() -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores / 2).clamp(1, 4)
    }
}

/// The sizing state of a service.
#[derive(Debug)]
pub(super) struct Sizing {
    pub options: SizingOptions,
    sizer: OnceCell<Arc<LiveSizer>>,
    permits: Arc<Semaphore>,
    pool: Pool,
}

impl Sizing {
    pub(super) fn new(options: SizingOptions) -> cohort::Result<Sizing> {
        Ok(Sizing {
            permits: Arc::new(Semaphore::new(options.concurrency.max(1))),
            sizer: OnceCell::new(),
            pool: Pool::new(options.threads.max(1))?,
            options,
        })
    }

    /// The opened tables: opened on first use (on the sizing runtime), tried again after
    /// a failure.
    pub(super) async fn sizer(&self) -> cohort::Result<Arc<LiveSizer>> {
        self.sizer
            .get_or_try_init(|| async {
                let pipeline = self.options.pipeline.clone();
                // Reading footers and example rows is DataFusion work too: off the lookups'
                // threads.
                let opening = self.pool.runtime().spawn(async move {
                    let started = Instant::now();
                    let sizer = pipeline.open_live().await?;
                    tracing::info!(
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "live sizing: customers table opened"
                    );
                    Ok::<_, Error>(Arc::new(sizer))
                });
                opening.await.map_err(|source| Error::Task {
                    task: "opening the customers table",
                    source,
                })?
            })
            .await
            .cloned()
    }

    /// Sizings holding a slot now (their scan not over yet), and the limit.
    pub(super) fn running(&self) -> (usize, usize) {
        let limit = self.options.concurrency.max(1);
        (limit - self.permits.available_permits().min(limit), limit)
    }
}

/// The runtime sizings run on, apart from the one answering requests: its own few worker
/// threads (`cohort-sizing`), and a small blocking pool for file reads. Dropped, it is
/// shut down in the background: dropping a runtime from within another one's worker
/// panics, and a scan in progress must not hold up the exit.
#[derive(Debug)]
struct Pool(Option<tokio::runtime::Runtime>);

impl Pool {
    fn new(threads: usize) -> cohort::Result<Pool> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .max_blocking_threads(4 * threads)
            .thread_name("cohort-sizing")
            .enable_all()
            .build()
            .map_err(|e| Error::io("the live sizing threads", e))?;
        Ok(Pool(Some(runtime)))
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.0.as_ref().expect("the pool runs until dropped")
    }

    /// Runs `future` on the pool; the task is aborted when the returned handle is dropped.
    fn spawn<F>(&self, future: F) -> Scan<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Scan(self.runtime().spawn(future))
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// A task on the sizing pool, aborted when dropped: a sizing past its deadline, or whose
/// request went away, stops scanning (its streams and partition tasks are dropped with it).
struct Scan<T>(JoinHandle<T>);

impl<T> Future for Scan<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for Scan<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The opened sizer, or the response that says why there is none.
async fn sizer(state: &AppState) -> Result<(&Sizing, Arc<LiveSizer>), Response> {
    let Some(sizing) = &state.sizing else {
        return Err(error(StatusCode::NOT_FOUND, DISABLED));
    };
    match sizing.sizer().await {
        Ok(sizer) => Ok((sizing, sizer)),
        Err(e) => {
            tracing::error!(error = %e, "live sizing: the customers table could not be opened");
            Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "live sizing is unavailable: the customers table could not be opened (see the server log)",
            ))
        }
    }
}

/// `GET /v1/schema`.
pub(super) async fn schema(State(state): State<Arc<AppState>>) -> Response {
    let (sizing, sizer) = match sizer(&state).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let columns: Vec<Value> = sizer
        .schema()
        .fields()
        .iter()
        .map(|f| {
            json!({
                "name": f.name(),
                "type": f.data_type().to_string(),
                "kind": column_family(f.data_type()).name(),
                "nullable": f.is_nullable(),
                "id": f.name() == sizer.id_column(),
                "examples": sizer.examples(f.name()),
            })
        })
        .collect();
    // The operators that apply to each column family, as the form lists them.
    let operators: serde_json::Map<String, Value> = definition::Family::ALL
        .iter()
        .map(|family| {
            let ops: Vec<Value> = definition::OPERATORS
                .iter()
                .filter(|o| o.families.contains(family))
                .map(|o| {
                    json!({
                        "op": o.name,
                        "label": o.aliases.first().copied().unwrap_or(o.name),
                        "arity": o.arity.name(),
                    })
                })
                .collect();
            (family.name().to_string(), Value::from(ops))
        })
        .collect();
    let groups: Vec<String> = state
        .snapshot()
        .groups()
        .iter()
        .map(|g| g.id.clone())
        .collect();
    Json(json!({
        "columns": columns,
        "operators": operators,
        "vocabulary": definition::vocabulary(),
        "groups": groups,
        "events": sizer.event_tables().collect::<Vec<_>>(),
        "id_column": sizer.id_column(),
        "allow_sql": sizing.options.allow_sql,
    }))
    .into_response()
}

/// `POST /v1/size`: the body is a group definition as JSON (the structure of a group file).
pub(super) async fn size(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let Some(sizing) = &state.sizing else {
        return error(StatusCode::NOT_FOUND, DISABLED);
    };
    let started = Instant::now();
    let value: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON: {e}; send a group definition as a JSON object"),
            )
        }
    };
    if !value.is_object() {
        let at = request_location("");
        return problems(vec![Problem::error(
            &at,
            "a definition is a JSON object, e.g. {\"include\": [{\"conditions\": [...]}]}",
        )]);
    }
    // Before anything that waits: a full pool is answered at once.
    let Ok(permit) = sizing.permits.clone().try_acquire_owned() else {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many sizing requests; try again",
        );
    };
    let sizer = match sizer(&state).await {
        Ok((_, sizer)) => sizer,
        Err(response) => return response,
    };
    let text = value.to_string();
    let (group, mut found) = match definition::parse_definition_json(REQUEST_ID, &text) {
        Ok(parsed) => parsed,
        Err(problem) => return problems(vec![*problem]),
    };
    found.extend(refused(&group, sizing.options.allow_sql));
    // The scan runs on the sizing pool, in a task that holds the permit: a sizing's slot
    // is free when its scan is over — done, failed, or aborted at the deadline (dropping
    // `scan` aborts it) or when the request goes away.
    let scan = sizing.pool.spawn(async move {
        let _permit = permit;
        sizer.size(group, found).await
    });
    let timeout = sizing.options.timeout;
    let result = match tokio::time::timeout(timeout, scan).await {
        Err(_) => {
            return error(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "sizing took longer than {}; simplify the definition or ask for a longer --size-timeout",
                    humantime::format_duration(timeout)
                ),
            )
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "live sizing: the task failed");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "sizing failed (see the server log)");
        }
        Ok(Ok(result)) => result,
    };
    match result {
        Ok(size) => {
            let mut shown = size.lints;
            shown.retain(|p| !p.is_error());
            Json(json!({
                "customers": size.customers,
                "members": size.members,
                "clauses": {"include": size.include, "exclude": size.exclude},
                "elapsed_ms": started.elapsed().as_millis() as u64,
                "as_of": size.as_of.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                "problems": shown.iter().map(Problem::to_json).collect::<Vec<_>>(),
                "warnings": size.warnings,
            }))
            .into_response()
        }
        Err(Error::Definitions(found)) => problems(found),
        // What the request or the data it names got wrong: 422 with the message.
        Err(
            e @ (Error::StaticIds { .. }
            | Error::IdType { .. }
            | Error::Table { .. }
            | Error::TooManyCustomers { .. }),
        ) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        Err(e) if e.exit_code() == 2 => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        Err(e) => {
            tracing::error!(error = %e, "live sizing failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "sizing failed while reading the data (see the server log)",
            )
        }
    }
}

/// 422 with every problem, errors first.
fn problems(mut found: Vec<Problem>) -> Response {
    found.sort_by_key(|p| !p.is_error());
    let errors = found.iter().filter(|p| p.is_error()).count();
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({
            "error": format!("the definition has {errors} problem(s)"),
            "problems": found.iter().map(Problem::to_json).collect::<Vec<_>>(),
        })),
    )
        .into_response()
}

fn request_location(path: &str) -> Location {
    Location {
        file: REQUEST_ID.into(),
        group: REQUEST_ID.into(),
        path: path.into(),
        line: None,
        ..Default::default()
    }
}

/// What the service does not evaluate for a client: SQL conditions (unless `--allow-sql`)
/// and id files (they would read the server's files or buckets).
fn refused(group: &Group, allow_sql: bool) -> Vec<Problem> {
    let mut found = Vec::new();
    if !allow_sql {
        for clause in group.include.iter().chain(&group.exclude) {
            for c in &clause.conditions {
                if let ConditionSpec::Sql(_) = c.spec {
                    found.push(
                        Problem::error(&c.at, "SQL conditions are refused over HTTP").with_hint(
                            Some(
                                "use attribute conditions, or start cohort serve with --allow-sql"
                                    .into(),
                            ),
                        ),
                    );
                }
            }
        }
    }
    for (key, file) in [
        ("include_from", &group.statics.include_from),
        ("exclude_from", &group.statics.exclude_from),
    ] {
        if file.is_some() {
            found.push(
                Problem::error(
                    &request_location(&format!("static.{key}")),
                    format!("static.{key} is not read over HTTP"),
                )
                .with_hint(Some(
                    "list the ids in static.include / static.exclude".into(),
                )),
            );
        }
    }
    found
}
