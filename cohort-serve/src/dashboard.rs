//! The dashboard: its page and assets (embedded, served without a token: a browser can't
//! put a bearer header on a page load; the page asks for the token and sends it on every
//! `/v1` call), `GET /v1/dashboard` (the served run's groups with their change since the
//! previous run and their sizes over the last runs, computed once per loaded run), and
//! `POST /v1/overlap` (intersections from the served run's bitmaps).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::SecondsFormat;
use serde::Deserialize;
use serde_json::{json, Value};

use super::errors::{error, rejection};
use super::AppState;
use cohort::snapshot::catalog;
use cohort::snapshot::manifest::Manifest;
use cohort::snapshot::reader::parse_manifest;
use cohort::snapshot::Snapshot;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// Runs whose manifests make a group's size-over-runs chart.
pub const HISTORY_RUNS: usize = 30;
/// Most groups one overlap request may compare.
pub const MAX_OVERLAP_GROUPS: usize = 40;

/// The page may load its own script and style and call its own origin, nothing else.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; form-action 'self'; \
                   base-uri 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str, csp: bool) -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response();
    if csp {
        response.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    response
}

pub(super) async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML, true)
}

pub(super) async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS, false)
}

pub(super) async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS, false)
}

/// `GET /v1/dashboard`: the body is built once per loaded run and kept with it.
pub(super) async fn dashboard(State(state): State<Arc<AppState>>) -> Response {
    let (snapshot, loaded_at, cell) = {
        let served = state.served.read().expect("served lock is never poisoned");
        (
            served.snapshot.clone(),
            served.loaded_at,
            served.dashboard.clone(),
        )
    };
    let body = cell
        .get_or_init(|| build(state.clone(), snapshot, loaded_at))
        .await
        .clone();
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// Starts building the dashboard of the run being served, so the first page load finds it.
pub(super) fn prepare(state: &Arc<AppState>) {
    let state = state.clone();
    tokio::spawn(async move {
        let _ = dashboard(State(state)).await;
    });
}

/// Per group of the served run: entered and exited since the previous run (absent when
/// the group is new or there is no previous run; a group is `new` in the answer then).
type Changes = HashMap<String, (u64, u64)>;

async fn build(state: Arc<AppState>, snapshot: Arc<Snapshot>, loaded_at: i64) -> Bytes {
    let started = std::time::Instant::now();
    let manifest = snapshot.manifest();
    let run_id = snapshot.run_id().to_string();
    let mut notes: Vec<String> = Vec::new();
    let (history, previous, listed) = match runs(&state, &run_id, manifest).await {
        Ok((history, previous)) => (history, previous, true),
        Err(e) => {
            tracing::warn!(error = %e, "dashboard: the published runs could not be listed");
            notes.push("sizes of earlier runs are not available (see the server log)".into());
            (vec![(run_id.clone(), manifest.clone())], None, false)
        }
    };
    let changes: Option<Changes> = match &previous {
        None => None,
        Some(previous) => match changes(&state, previous, snapshot.clone()).await {
            Ok(changes) => Some(changes),
            Err(e) => {
                tracing::warn!(error = %e, previous = %previous, "dashboard: no comparison with the previous run");
                notes.push(format!(
                    "the change since run {previous} is not available (see the server log)"
                ));
                None
            }
        },
    };
    // Which groups the previous run had: none when there is no previous run (every
    // group is new), unknown when the runs or its manifest could not be read.
    let before: Option<HashSet<&str>> = match (&previous, listed) {
        (None, true) => Some(HashSet::new()),
        (Some(previous), _) => history
            .iter()
            .find(|(id, _)| id == previous)
            .map(|(_, m)| m.groups.iter().map(|g| g.id.as_str()).collect()),
        (None, false) => None,
    };
    let customers = manifest.customers;
    let groups: Vec<Value> = manifest
        .groups
        .iter()
        .map(|g| {
            let (entered, exited) = match changes.as_ref().and_then(|c| c.get(&g.id)) {
                Some((entered, exited)) => (json!(entered), json!(exited)),
                None => (Value::Null, Value::Null),
            };
            let new = before
                .as_ref()
                .is_some_and(|before| !before.contains(g.id.as_str()));
            let marker = format!("group '{}'", g.id);
            let warnings: Vec<&String> = manifest
                .warnings
                .iter()
                .filter(|w| w.contains(&marker))
                .collect();
            let history: Vec<Value> = history
                .iter()
                .filter_map(|(id, m)| {
                    let entry = m.groups.iter().find(|e| e.id == g.id)?;
                    Some(json!({"run_id": id, "as_of": m.as_of, "members": entry.members}))
                })
                .collect();
            json!({
                "id": g.id,
                "name": g.name,
                "description": g.description,
                "members": g.members,
                "share": if customers == 0 { 0.0 } else { g.members as f64 / customers as f64 },
                "entered": entered,
                "exited": exited,
                "new": new,
                "warnings": warnings,
                "history": history,
                "carried_from": g.carried_from,
            })
        })
        .collect();
    let mut warnings = manifest.warnings.clone();
    warnings.extend(notes);
    let loaded_at = chrono::DateTime::from_timestamp(loaded_at, 0)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true));
    let sizing = match &state.sizing {
        Some(s) => json!({"enabled": true, "allow_sql": s.options.allow_sql, "reason": null}),
        None => json!({"enabled": false, "allow_sql": false, "reason": super::sizing::DISABLED}),
    };
    let body = json!({
        "run_id": run_id,
        "as_of": manifest.as_of,
        "created_at": manifest.created_at,
        "loaded_at": loaded_at,
        "customers": customers,
        "id_type": manifest.id_type,
        "previous_run_id": previous,
        "runs": history.iter().map(|(id, m)| json!({"run_id": id, "as_of": m.as_of, "created_at": m.created_at})).collect::<Vec<_>>(),
        "warnings": warnings,
        "sizing": sizing,
        "groups": groups,
    });
    tracing::info!(
        run_id = %run_id,
        groups = manifest.groups.len(),
        runs = history.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "dashboard built"
    );
    Bytes::from(serde_json::to_vec(&body).expect("JSON values serialize"))
}

/// The manifests of the served run and up to [`HISTORY_RUNS`]` - 1` complete runs before
/// it, oldest first, and the run before the served one.
async fn runs(
    state: &AppState,
    served: &str,
    manifest: &Manifest,
) -> cohort::Result<(Vec<(String, Manifest)>, Option<String>)> {
    let publish = &state.options.publish;
    let listed = catalog::list_runs(publish).await?;
    let older: Vec<&catalog::RunInfo> = match listed.iter().position(|r| r.run_id == served) {
        Some(p) => listed[p + 1..].iter().filter(|r| r.complete).collect(),
        None => Vec::new(),
    };
    let previous = older.first().map(|r| r.run_id.clone());
    let mut history = vec![(served.to_string(), manifest.clone())];
    for run in older.iter().take(HISTORY_RUNS - 1) {
        let location = publish.join(&format!("runs/{}/manifest.json", run.run_id));
        let Some(bytes) = location.read_if_exists().await? else {
            continue; // deleted since the listing
        };
        match parse_manifest(&run.run_id, &bytes) {
            Ok(m) => history.push((run.run_id.clone(), m)),
            Err(e) => tracing::warn!(run = %run.run_id, error = %e, "dashboard: manifest skipped"),
        }
    }
    history.reverse();
    Ok((history, previous))
}

/// Entered and exited per group between the previous run and the served one: the previous
/// run is loaded (verified, off the request path) and dropped once compared.
async fn changes(
    state: &AppState,
    previous: &str,
    served: Arc<Snapshot>,
) -> cohort::Result<Changes> {
    let old = super::reload::load(&state.options.publish, previous).await?;
    let diffs = tokio::task::spawn_blocking(move || catalog::diff(&old, &served))
        .await
        .map_err(|source| cohort::Error::Task {
            task: "comparing runs",
            source,
        })?;
    Ok(diffs
        .into_iter()
        .filter(|d| d.in_old && d.in_new)
        .map(|d| (d.group.clone(), (d.entered.len(), d.exited_count())))
        .collect())
}

#[derive(Debug, Deserialize)]
pub(super) struct OverlapRequest {
    groups: Vec<String>,
}

/// `POST /v1/overlap`: `{"groups": [...]}` → `{"groups", "members", "matrix"}` where
/// `matrix[i][j]` counts the customers in both `groups[i]` and `groups[j]`.
pub(super) async fn overlap(
    State(state): State<Arc<AppState>>,
    body: Result<Json<OverlapRequest>, JsonRejection>,
) -> Response {
    let Json(request) = match body {
        Ok(body) => body,
        Err(e) => return rejection(e.status(), e.body_text()),
    };
    let ids = request.groups;
    if ids.is_empty() {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "name at least one group: {\"groups\": [\"a\", \"b\"]}",
        );
    }
    if ids.len() > MAX_OVERLAP_GROUPS {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "{} groups in one overlap; at most {MAX_OVERLAP_GROUPS} are compared at once",
                ids.len()
            ),
        );
    }
    let snapshot = state.snapshot();
    if let Some(unknown) = ids.iter().find(|g| snapshot.cardinality(g).is_none()) {
        let hint = cohort::definition::did_you_mean(
            unknown,
            snapshot.groups().iter().map(|g| g.id.as_str()),
        )
        .map(|h| format!("; {h}"))
        .unwrap_or_default();
        return error(
            StatusCode::NOT_FOUND,
            format!("unknown group '{unknown}'{hint}"),
        );
    }
    let run_id = snapshot.run_id().to_string();
    let computed = tokio::task::spawn_blocking(move || {
        let bitmaps: Vec<_> = ids
            .iter()
            .map(|g| snapshot.bitmap(g).unwrap_or_default())
            .collect();
        let n = bitmaps.len();
        let mut matrix = vec![vec![0u64; n]; n];
        for i in 0..n {
            matrix[i][i] = bitmaps[i].len();
            for j in i + 1..n {
                let both = bitmaps[i].intersection_len(&bitmaps[j]);
                matrix[i][j] = both;
                matrix[j][i] = both;
            }
        }
        let members: Vec<u64> = bitmaps.iter().map(|b| b.len()).collect();
        (ids, members, matrix)
    })
    .await;
    match computed {
        Ok((groups, members, matrix)) => Json(json!({
            "run_id": run_id,
            "groups": groups,
            "members": members,
            "matrix": matrix,
        }))
        .into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the overlap could not be computed: {e}"),
        ),
    }
}
