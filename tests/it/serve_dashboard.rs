//! The dashboard's server side, on a real `cohort serve`: the page and its assets,
//! `/v1/dashboard` (changes since the previous run, sizes over runs), `/v1/overlap`,
//! live sizing (`/v1/schema`, `/v1/size`; its limits are in `serve_sizing.rs`), and which
//! routes need the token.

use serde_json::{json, Value};

use super::harness::{http, Project};
use super::serve::{published, Server};

const AS_OF: &str = "2026-11-20T00:00:00Z";

/// `POST` with an optional bearer token; the status and the body (JSON when it parses).
fn post(server: &Server, path: &str, body: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = http()
        .post(&format!("{}{path}", server.base))
        .header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", &format!("Bearer {token}"));
    }
    let mut response = request.send(body).unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// `GET`: the status, the content type and the body.
fn get(server: &Server, path: &str, token: Option<&str>) -> (u16, String, String) {
    let mut request = http().get(&format!("{}{path}", server.base));
    if let Some(token) = token {
        request = request.header("authorization", &format!("Bearer {token}"));
    }
    let mut response = request.call().unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (
        status,
        content_type,
        response.body_mut().read_to_string().unwrap(),
    )
}

/// `cohort size` of groups of the project, as JSON.
fn cohort_size(p: &Project, args: &[&str]) -> Value {
    let mut all = vec!["size", "--format=json"];
    all.extend_from_slice(args);
    p.cohort(&all).ok().json()
}

#[test]
fn serve_dashboard_page_needs_no_token_and_every_v1_route_does() {
    let p = published("int");
    p.write("token", "s3cret\n");
    let server = Server::start(&p, &["--token-file", "token"]);
    // (path, content type)
    for (path, content_type) in [
        ("/", "text/html; charset=utf-8"),
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/assets/style.css", "text/css; charset=utf-8"),
    ] {
        let (status, got, body) = get(&server, path, None);
        assert_eq!((status, got.as_str()), (200, content_type), "{path}");
        assert!(body.len() > 1000, "{path} is the embedded asset");
    }
    let (_, _, html) = get(&server, "/", None);
    assert!(html.contains("/assets/app.js") && html.contains("/assets/style.css"));
    let csp = http()
        .get(&format!("{}/", server.base))
        .call()
        .unwrap()
        .headers()
        .get("content-security-policy")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(
        csp.contains("connect-src 'self'"),
        "the page calls its origin only: {csp}"
    );
    assert_eq!(get(&server, "/assets/nope.js", None).0, 404);

    for path in ["/v1/dashboard", "/v1/schema", "/v1/groups"] {
        assert_eq!(get(&server, path, None).0, 401, "{path} without the token");
        assert_eq!(
            get(&server, path, Some("wrong")).0,
            401,
            "{path}, wrong token"
        );
        assert_eq!(get(&server, path, Some("s3cret")).0, 200, "{path} with it");
    }
    let definition =
        r#"{"include": [{"conditions": [{"attribute": "age", "op": "gte", "value": 18}]}]}"#;
    for (path, body) in [
        ("/v1/size", definition),
        ("/v1/overlap", r#"{"groups": ["vip"]}"#),
    ] {
        let (status, answer) = post(&server, path, body, None);
        assert_eq!(status, 401, "{path} without the token: {answer}");
        assert!(answer["error"].is_string());
        assert_eq!(post(&server, path, body, Some("s3cret")).0, 200, "{path}");
    }
}

#[test]
fn serve_dashboard_reports_groups_changes_since_the_previous_run_and_history() {
    let p = published("string");
    let first = p.path("snapshots/LATEST");
    let first = std::fs::read_to_string(first).unwrap().trim().to_string();
    // A later run: relative windows move, so some groups change.
    p.cohort(&["run", "--as-of=2027-03-01T00:00:00Z"]).ok();
    let second = std::fs::read_to_string(p.path("snapshots/LATEST"))
        .unwrap()
        .trim()
        .to_string();
    assert_ne!(first, second);
    let diff = p.cohort(&["diff", "--format=json"]).ok().json();
    let server = Server::start(&p, &[]);

    let (status, content_type, body) = get(&server, "/v1/dashboard", None);
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    let dash: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(dash["run_id"], second.as_str());
    assert_eq!(dash["previous_run_id"], first.as_str());
    assert_eq!(dash["as_of"], "2027-03-01T00:00:00Z");
    assert!(dash["loaded_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        dash["sizing"],
        json!({"enabled": true, "allow_sql": false, "reason": null}),
        "the project's cohort.toml names the customers table"
    );
    let customers = dash["customers"].as_u64().unwrap();
    assert!(customers > 0);
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(p.path(&format!("snapshots/runs/{second}/manifest.json")))
            .unwrap(),
    )
    .unwrap();
    let groups = dash["groups"].as_array().unwrap();
    assert_eq!(groups.len(), manifest["groups"].as_array().unwrap().len());
    let mut changed = 0;
    for g in groups {
        let id = g["id"].as_str().unwrap();
        let entry = manifest["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == id)
            .unwrap();
        assert_eq!(g["members"], entry["members"], "{id}");
        assert_eq!(g["name"], entry["name"], "{id}");
        let share = g["share"].as_f64().unwrap();
        assert!((share - entry["members"].as_f64().unwrap() / customers as f64).abs() < 1e-12);
        // entered / exited as `cohort diff` counts them
        let d = diff["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["group"] == id)
            .unwrap_or_else(|| panic!("{id} in {diff}"));
        assert_eq!(g["new"], false, "{id} was in the previous run");
        assert_eq!(g["entered"], d["entered"], "{id}: {d}");
        assert_eq!(g["exited"], d["exited"], "{id}: {d}");
        if g["entered"] != 0 || g["exited"] != 0 {
            changed += 1;
        }
        // sizes over the two runs, oldest first
        let history = g["history"].as_array().unwrap();
        assert_eq!(history.len(), 2, "{id}: {history:?}");
        assert_eq!(history[0]["run_id"], first.as_str());
        assert_eq!(history[1]["run_id"], second.as_str());
        assert_eq!(history[1]["members"], g["members"]);
        assert!(g["warnings"].is_array());
    }
    assert!(changed > 0, "some group changed between the runs");
    let described = groups
        .iter()
        .find(|g| g["id"] == "us_canada_adults")
        .unwrap();
    assert_eq!(described["description"], "Campaign: winter launch");
    let plain = groups.iter().find(|g| g["id"] == "us_adults").unwrap();
    assert_eq!(plain["description"], Value::Null);
    // The manifest carries the description only for groups that have one.
    for entry in manifest["groups"].as_array().unwrap() {
        let shown = &groups.iter().find(|g| g["id"] == entry["id"]).unwrap()["description"];
        match entry.get("description") {
            Some(description) => assert_eq!(description, shown),
            None => assert_eq!(shown, &Value::Null, "{entry}"),
        }
    }
    assert!(
        manifest["groups"][0].get("description").is_none()
            || manifest["groups"][0]["description"].is_string()
    );
    let us_adults = manifest["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "us_adults")
        .unwrap();
    assert!(
        us_adults.get("description").is_none(),
        "no key without a description: {us_adults}"
    );
}

#[test]
fn serve_dashboard_marks_groups_new_without_a_previous_run() {
    // The first run: nothing to compare with, so every group is new (not "+0 −0").
    let p = published("int");
    let server = Server::start(&p, &[]);
    let dash = server.get_json("/v1/dashboard").1;
    assert_eq!(dash["previous_run_id"], Value::Null);
    let groups = dash["groups"].as_array().unwrap();
    assert!(!groups.is_empty());
    for g in groups {
        assert_eq!(g["new"], true, "{g}");
        assert_eq!((&g["entered"], &g["exited"]), (&Value::Null, &Value::Null));
    }
    drop(server);

    // A later run with one more group: that group is new, the others have a change.
    p.write(
        "queries/brand_new.json",
        r#"{"include": [{"conditions": [{"attribute": "age", "op": "gte", "value": 30}]}]}"#,
    );
    p.cohort(&["run", "--as-of=2026-12-20T00:00:00Z"]).ok();
    let server = Server::start(&p, &[]);
    let dash = server.get_json("/v1/dashboard").1;
    assert!(dash["previous_run_id"].is_string(), "{dash}");
    for g in dash["groups"].as_array().unwrap() {
        if g["id"] == "brand_new" {
            assert_eq!(g["new"], true, "{g}");
            assert_eq!(g["entered"], Value::Null, "{g}");
        } else {
            assert_eq!(g["new"], false, "{g}");
            assert!(g["entered"].is_u64() && g["exited"].is_u64(), "{g}");
        }
    }
}

#[test]
fn serve_overlap_matches_cohort_size_overlap() {
    let p = published("int");
    let server = Server::start(&p, &[]);
    let groups = ["us_adults", "vip", "lapsed", "gmail_newsletter"];
    let (status, overlap) = post(
        &server,
        "/v1/overlap",
        &json!({ "groups": groups }).to_string(),
        None,
    );
    assert_eq!(status, 200, "{overlap}");
    let mut args = vec!["--overlap", "--as-of", AS_OF];
    args.extend(groups);
    let expected = cohort_size(&p, &args);
    assert_eq!(overlap["groups"], json!(groups));
    assert_eq!(overlap["matrix"], expected["overlap"]["matrix"]);
    let members: Vec<Value> = expected["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["members"].clone())
        .collect();
    assert_eq!(overlap["members"], json!(members));

    let (status, body) = post(
        &server,
        "/v1/overlap",
        r#"{"groups": ["vip", "vipp"]}"#,
        None,
    );
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("'vipp'"), "{body}");
    let many: Vec<&str> = vec!["vip"; 41];
    let (status, body) = post(
        &server,
        "/v1/overlap",
        &json!({ "groups": many }).to_string(),
        None,
    );
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("at most 40"),
        "{body}"
    );
    assert_eq!(
        post(&server, "/v1/overlap", r#"{"groups": []}"#, None).0,
        422
    );
    assert_eq!(post(&server, "/v1/overlap", "{nope", None).0, 400);
}

#[test]
fn serve_schema_lists_columns_operators_groups_and_event_tables() {
    let p = published("int");
    let server = Server::start(&p, &[]);
    let (status, _, body) = get(&server, "/v1/schema", None);
    assert_eq!(status, 200, "{body}");
    let schema: Value = serde_json::from_str(&body).unwrap();
    let column = |name: &str| {
        schema["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no column {name}: {schema}"))
            .clone()
    };
    assert_eq!(column("age")["kind"], "number");
    assert_eq!(column("country")["kind"], "string");
    assert!(!column("country")["examples"].as_array().unwrap().is_empty());
    let number_ops = schema["operators"]["number"].as_array().unwrap();
    assert!(number_ops
        .contains(&json!({"op": "gte", "label": "is greater than or equal", "arity": "one"})));
    assert!(number_ops.contains(&json!({"op": "between", "label": "is between", "arity": "two"})));
    assert!(!number_ops.iter().any(|o| o["op"] == "starts_with"));
    let string_ops = schema["operators"]["string"].as_array().unwrap();
    assert!(string_ops.contains(&json!({"op": "in", "label": "is one of", "arity": "list"})));
    assert!(schema["operators"]["timestamp"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["op"] == "within_last"));
    let served: Vec<Value> = server.get_json("/v1/groups").1["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].clone())
        .collect();
    assert_eq!(schema["groups"], json!(served));
    assert_eq!(schema["events"], json!(["orders"]));
}

#[test]
fn serve_size_equals_cohort_size_of_the_same_definition_saved_as_a_group_file() {
    let p = published("string");
    let server = Server::start(&p, &["--as-of", AS_OF]);
    let definitions = [
        // the seed example, with per-clause counts
        json!({
            "include": [{"match": "all", "conditions": [
                {"attribute": "country", "op": "equals", "value": "United States"}]}],
            "exclude": [{"match": "any", "conditions": [
                {"attribute": "age", "op": "lt", "value": 18},
                {"attribute": "age", "op": "not_exists"}]}]
        }),
        // a served group referenced, purchase history, static ids, aliases
        json!({
            "name": "ignored over HTTP",
            "include": [
                {"conditions": [{"op": "in group", "value": "vip"}]},
                {"conditions": [
                    {"events": "orders", "aggregate": "count", "within_last": "365d", "op": ">=", "value": 2},
                    {"attribute": "email", "op": "ends with", "values": ["@gmail.com"], "ignore_case": true}]}
            ],
            "exclude": [{"conditions": [{"op": "not_in_group", "value": "us_adults"}]}],
            "static": {"include": ["C00000005"], "exclude": ["C00000011"]}
        }),
    ];
    for (i, definition) in definitions.iter().enumerate() {
        let (status, sized) = post(&server, "/v1/size", &definition.to_string(), None);
        assert_eq!(status, 200, "definition {i}: {sized}");
        let id = format!("adhoc_{i}");
        p.write(&format!("queries/{id}.json"), &definition.to_string());
        let expected = cohort_size(&p, &[&id, "--as-of", AS_OF]);
        std::fs::remove_file(p.path(&format!("queries/{id}.json"))).unwrap();
        assert_eq!(
            sized["members"], expected["groups"][0]["members"],
            "definition {i}"
        );
        assert_eq!(sized["customers"], expected["customers"], "definition {i}");
        assert_eq!(sized["as_of"], AS_OF);
        assert!(sized["elapsed_ms"].is_u64());
        let clauses = &sized["clauses"];
        assert_eq!(
            clauses["include"].as_array().unwrap().len(),
            definition["include"].as_array().unwrap().len()
        );
        assert_eq!(
            clauses["exclude"].as_array().unwrap().len(),
            definition["exclude"].as_array().unwrap().len()
        );
    }
    // The seed example's clauses, counted with `--where`.
    let (_, sized) = post(&server, "/v1/size", &definitions[0].to_string(), None);
    let count = |sql: &str| {
        cohort_size(&p, &["--where", sql, "--as-of", AS_OF])["groups"][0]["members"].clone()
    };
    assert_eq!(
        sized["clauses"]["include"][0],
        count("country = 'United States'")
    );
    assert_eq!(
        sized["clauses"]["exclude"][0],
        count("age < 18 OR age IS NULL")
    );
}

#[test]
fn serve_size_reports_problems_as_validate_does() {
    let p = published("int");
    let server = Server::start(&p, &["--as-of", AS_OF]);
    let bad = json!({"include": [{"conditions": [
        {"attribute": "country", "op": "equals", "value": "Canada"},
        {"attribute": "agee", "op": "gte", "value": 18},
        {"op": "in_group", "value": "vipp"},
        {"attribute": "age", "op": "starts_with", "value": "1"}]}]});
    let (status, answer) = post(&server, "/v1/size", &bad.to_string(), None);
    assert_eq!(status, 422, "{answer}");
    assert!(answer["error"].is_string());
    let problems = answer["problems"].as_array().unwrap();
    let at = |path: &str| {
        problems
            .iter()
            .find(|p| p["path"] == path)
            .unwrap_or_else(|| panic!("no problem at {path}: {answer}"))
    };
    let agee = at("include[0].conditions[1]");
    assert_eq!(agee["severity"], "error");
    assert_eq!(agee["message"], "unknown attribute 'agee'");
    assert_eq!(agee["hint"], "did you mean 'age'?");
    assert_eq!(
        at("include[0].conditions[2]")["hint"],
        "did you mean 'vip'?"
    );
    assert!(at("include[0].conditions[3]")["message"]
        .as_str()
        .unwrap()
        .contains("not valid"));

    // The same problems, in the same shape, as `cohort validate --format json` of the file.
    p.write("queries/bad.json", &bad.to_string());
    let validated = p.cohort(&["validate", "--format=json"]).json();
    std::fs::remove_file(p.path("queries/bad.json")).unwrap();
    let errors = validated["errors"].as_array().unwrap();
    for problem in problems {
        let same = errors
            .iter()
            .find(|e| e["path"] == problem["path"] && e["group"] == "bad")
            .unwrap_or_else(|| panic!("validate has no {problem}: {validated}"));
        assert_eq!(same["message"], problem["message"]);
        assert_eq!(same["hint"], problem["hint"]);
        let keys = |v: &Value| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(keys(same), keys(problem));
    }

    // Shape errors, SQL, id files, a body that is not a definition.
    let cases: &[(&str, u16, &str)] = &[
        (
            r#"{"include": [{"conditions": [{"sql": "age > 1"}]}]}"#,
            422,
            "--allow-sql",
        ),
        (
            r#"{"static": {"include_from": "/etc/passwd"}}"#,
            422,
            "not read over HTTP",
        ),
        (r#"{"inclde": []}"#, 422, "inclde"),
        (
            r#"{"include": [{"conditions": [{"attribute": "age", "op": "gte", "value": "x"}]}]}"#,
            422,
            "string",
        ),
        (
            r#"{"include": [{"conditions": [{"events": "ordrs", "aggregate": "count", "op": ">", "value": 1}]}]}"#,
            422,
            "ordrs",
        ),
        (r#"[1, 2]"#, 422, "JSON object"),
        ("{not json", 400, "not JSON"),
    ];
    for (body, expected, word) in cases {
        let (status, answer) = post(&server, "/v1/size", body, None);
        assert_eq!(status, *expected, "{body}: {answer}");
        assert!(answer.to_string().contains(word), "{body}: {answer}");
    }
    // A lint is a warning next to a count.
    let lint = json!({"include": [{"match": "all", "conditions": [
        {"attribute": "age", "op": "lt", "value": 18},
        {"attribute": "age", "op": "not_exists"}]}]});
    let (status, answer) = post(&server, "/v1/size", &lint.to_string(), None);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["members"], 0);
    assert_eq!(answer["problems"][0]["severity"], "warning", "{answer}");
    assert_eq!(answer["problems"][0]["path"], "include[0]", "{answer}");
}

#[test]
fn serve_size_accepts_sql_only_with_allow_sql() {
    let p = published("int");
    let definition =
        r#"{"include": [{"conditions": [{"sql": "age >= 40 AND country = 'Canada'"}]}]}"#;
    let refused = Server::start(&p, &["--as-of", AS_OF]);
    let (status, answer) = post(&refused, "/v1/size", definition, None);
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["problems"][0]["path"], "include[0].conditions[0]");
    assert_eq!(
        refused.get_json("/v1/dashboard").1["sizing"]["allow_sql"],
        false
    );
    drop(refused);
    let allowed = Server::start(&p, &["--as-of", AS_OF, "--allow-sql"]);
    assert_eq!(
        allowed.get_json("/v1/dashboard").1["sizing"]["allow_sql"],
        true
    );
    let (status, answer) = post(&allowed, "/v1/size", definition, None);
    assert_eq!(status, 200, "{answer}");
    let expected = cohort_size(
        &p,
        &[
            "--where",
            "age >= 40 AND country = 'Canada'",
            "--as-of",
            AS_OF,
        ],
    );
    assert_eq!(answer["members"], expected["groups"][0]["members"]);
}

#[test]
fn serve_without_customers_says_how_to_enable_sizing() {
    let p = published("int");
    // A config that names only where runs are published.
    p.write("serve-only.toml", "publish = \"snapshots\"\n");
    let server = Server::start(&p, &["--config", "serve-only.toml"]);
    let dash = server.get_json("/v1/dashboard").1;
    assert_eq!(dash["sizing"]["enabled"], false);
    assert!(dash["sizing"]["reason"]
        .as_str()
        .unwrap()
        .contains("--customers"));
    assert!(
        dash["groups"].as_array().unwrap().len() > 3,
        "lookups still work"
    );
    let (status, _, body) = get(&server, "/v1/schema", None);
    assert_eq!(status, 404);
    assert!(body.contains("--customers"), "{body}");
    let (status, answer) = post(&server, "/v1/size", r#"{"include": []}"#, None);
    assert_eq!(status, 404);
    assert!(
        answer["error"].as_str().unwrap().contains("--customers"),
        "{answer}"
    );
    // ... and with --customers on the command line, sizing is on.
    let on = Server::start(
        &p,
        &[
            "--config",
            "serve-only.toml",
            "--customers",
            "data/customers.parquet",
        ],
    );
    let (status, answer) = post(
        &on,
        "/v1/size",
        r#"{"include": [{"conditions": [{"attribute": "age", "op": ">=", "value": 18}]}]}"#,
        None,
    );
    assert_eq!(status, 200, "{answer}");
}
