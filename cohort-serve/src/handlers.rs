//! The endpoints of SPEC §5. Answers about customers carry the `run_id` they were
//! answered from, so a client (and the load test) can tell which run said what.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::errors::{error, rejection};
use super::{metrics, AppState};

pub(super) async fn list_groups(State(state): State<Arc<AppState>>) -> Response {
    let snapshot = state.snapshot();
    let groups: Vec<Value> = snapshot
        .groups()
        .iter()
        .map(|g| json!({ "id": g.id, "name": g.name, "members": g.members }))
        .collect();
    Json(json!({ "run_id": snapshot.run_id(), "groups": groups })).into_response()
}

pub(super) async fn check_member(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let Path((group, customer_id)) = match path {
        Ok(path) => path,
        Err(e) => return rejection(e.status(), e.body_text()),
    };
    let snapshot = state.snapshot();
    match snapshot.contains(&group, &customer_id) {
        Ok(member) => {
            Json(json!({ "member": member, "run_id": snapshot.run_id() })).into_response()
        }
        Err(e) => error(StatusCode::NOT_FOUND, e.to_string()),
    }
}

pub(super) async fn customer_groups(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let Path(customer_id) = match path {
        Ok(path) => path,
        Err(e) => return rejection(e.status(), e.body_text()),
    };
    let snapshot = state.snapshot();
    Json(json!({ "groups": snapshot.groups_of(&customer_id), "run_id": snapshot.run_id() }))
        .into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct Batch {
    checks: Vec<BatchCheck>,
}

#[derive(Debug, Deserialize)]
struct BatchCheck {
    group: String,
    customer_id: Value,
}

pub(super) async fn check_batch(
    State(state): State<Arc<AppState>>,
    body: Result<Json<Batch>, JsonRejection>,
) -> Response {
    let Json(batch) = match body {
        Ok(batch) => batch,
        Err(e) => return rejection(e.status(), e.body_text()),
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
        Ok(results) => {
            Json(json!({ "results": results, "run_id": snapshot.run_id() })).into_response()
        }
        Err(e) => {
            let i = checks
                .iter()
                .position(|(group, _)| snapshot.cardinality(group).is_none())
                .unwrap_or_default();
            error(StatusCode::NOT_FOUND, format!("checks[{i}]: {e}"))
        }
    }
}

pub(super) async fn healthz(State(state): State<Arc<AppState>>) -> Response {
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

pub(super) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let (snapshot, loaded_at) = {
        let served = state.served.read().expect("served lock is never poisoned");
        (served.snapshot.clone(), served.loaded_at)
    };
    let text = state.metrics.render(&metrics::Served {
        run_id: snapshot.run_id(),
        groups: snapshot.groups().len(),
        customers: snapshot.manifest().customers,
        loaded_at,
        sizings: state.sizing.as_ref().map(|s| s.running()),
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
