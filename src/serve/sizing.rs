//! Live sizing over HTTP: `GET /v1/schema` (what a form needs to compose a definition) and
//! `POST /v1/size` (a definition as JSON → its counts, or its problems), when the service
//! is given a customers table. The table is opened once (lazily, and again after a
//! failure) and every request is one scan of it; a semaphore bounds the scans running at
//! once, and each request has a deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::SecondsFormat;
use serde_json::{json, Value};
use tokio::sync::{OnceCell, Semaphore};

use super::errors::error;
use super::AppState;
use crate::compile::attribute::ColumnKind;
use crate::definition::{self, ConditionSpec, Group, Location, Problem};
use crate::pipeline::{operators_by_family, LiveSizer};
use crate::{Error, Pipeline};

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
    /// The longest one sizing may take.
    pub timeout: Duration,
    /// Sizings running at once; more are answered 429.
    pub concurrency: usize,
}

/// The sizing state of a service.
#[derive(Debug)]
pub(super) struct Sizing {
    pub options: SizingOptions,
    sizer: OnceCell<Arc<LiveSizer>>,
    permits: Arc<Semaphore>,
}

impl Sizing {
    pub(super) fn new(options: SizingOptions) -> Sizing {
        Sizing {
            permits: Arc::new(Semaphore::new(options.concurrency.max(1))),
            sizer: OnceCell::new(),
            options,
        }
    }

    /// The opened tables: opened on first use, tried again after a failure.
    pub(super) async fn sizer(&self) -> crate::Result<Arc<LiveSizer>> {
        self.sizer
            .get_or_try_init(|| async {
                let started = Instant::now();
                let sizer = self.options.pipeline.open_live().await?;
                tracing::info!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "live sizing: customers table opened"
                );
                Ok(Arc::new(sizer))
            })
            .await
            .cloned()
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
            let kind = ColumnKind::of(f.data_type());
            json!({
                "name": f.name(),
                "type": f.data_type().to_string(),
                "kind": kind.family(),
                "nullable": f.is_nullable(),
                "id": f.name() == sizer.id_column(),
                "examples": sizer.examples(f.name()),
            })
        })
        .collect();
    let operators: serde_json::Map<String, Value> = operators_by_family()
        .into_iter()
        .map(|(family, ops)| {
            let ops: Vec<Value> = ops
                .into_iter()
                .map(|o| json!({"op": o.op, "label": o.label, "arity": o.arity}))
                .collect();
            (family.to_string(), Value::from(ops))
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
    // The scan runs in a task of its own that holds the permit: a request that times out
    // (or whose client leaves) keeps its slot until its scan is over, so abandoned scans
    // can't pile up beyond the limit.
    let task = tokio::spawn(async move {
        let result = sizer.size(group, found).await;
        drop(permit);
        result
    });
    let timeout = sizing.options.timeout;
    let result = match tokio::time::timeout(timeout, task).await {
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
        Err(e @ (Error::Data(_) | Error::NotFound(_) | Error::Usage(_))) => {
            error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        }
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
