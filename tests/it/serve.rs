//! `cohort serve` as a real process on 127.0.0.1: every endpoint of SPEC §5, hot reload,
//! a corrupt new run, bearer tokens, body limits and graceful shutdown.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

use super::harness::{http, sample_project, Project};

/// A running `cohort serve`, killed when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(p: &Project, extra: &[&str]) -> Server {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut child = p
            .command(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Keeps draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(address) = line.strip_prefix("listening on ") {
                    let _ = tx.send(address.to_string());
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("cohort serve announces its address");
        Server { child, base }
    }

    fn get(&self, path: &str) -> (u16, String) {
        let mut response = http().get(&format!("{}{path}", self.base)).call().unwrap();
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().unwrap())
    }

    fn get_json(&self, path: &str) -> (u16, Value) {
        let (status, body) = self.get(path);
        let value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"));
        (status, value)
    }

    fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let mut response = http()
            .post(&format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .send(body)
            .unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// Polls until `done` holds (bounded: 20 s).
    fn wait_until(&self, what: &str, mut done: impl FnMut(&Server) -> bool) {
        for _ in 0..200 {
            if done(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out waiting for {what}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn published(id_type: &str) -> Project {
    let p = sample_project(id_type);
    p.cohort(&["run", "--as-of=2026-11-20T00:00:00Z"]).ok();
    p
}

#[test]
fn serve_answers_every_endpoint() {
    let p = published("int");
    let expected_adults = p
        .cohort(&[
            "size",
            "us_adults",
            "--as-of=2026-11-20T00:00:00Z",
            "--format=json",
        ])
        .ok()
        .json()["groups"][0]["members"]
        .clone();
    let server = Server::start(&p, &[]);

    let (status, groups) = server.get_json("/v1/groups");
    assert_eq!(status, 200);
    assert!(groups["run_id"].is_string());
    let us_adults = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == "us_adults")
        .unwrap();
    assert_eq!(us_adults["members"], expected_adults);
    assert!(us_adults["name"].is_string());

    assert_eq!(
        server.get_json("/v1/groups/vip/members/7"),
        (200, json!({"member": true}))
    );
    assert_eq!(
        server.get_json("/v1/groups/vip/members/3"),
        (200, json!({"member": false})),
        "static exclude"
    );
    assert_eq!(
        server.get_json("/v1/groups/vip/members/no-such-customer"),
        (200, json!({"member": false})),
        "unknown customer"
    );
    let (status, unknown) = server.get_json("/v1/groups/nope/members/7");
    assert_eq!(status, 404);
    assert!(unknown["error"].as_str().unwrap().contains("'nope'"));

    let (status, of7) = server.get_json("/v1/customers/7/groups");
    assert_eq!(status, 200);
    assert!(of7["groups"].as_array().unwrap().contains(&json!("vip")));
    assert_eq!(
        server.get_json("/v1/customers/999999999/groups"),
        (200, json!({"groups": []}))
    );

    let (status, batch) = server.post(
        "/v1/check",
        r#"{"checks": [{"group": "vip", "customer_id": "7"},
                       {"group": "vip", "customer_id": 7},
                       {"group": "vip", "customer_id": 3}]}"#,
    );
    assert_eq!(
        (status, batch),
        (200, json!({"results": [true, true, false]}))
    );
    let (status, body) = server.post(
        "/v1/check",
        r#"{"checks": [{"group": "nope", "customer_id": 1}]}"#,
    );
    assert_eq!(status, 404, "{body}");
    let (status, body) = server.post("/v1/check", "{not json");
    assert!(status == 400 || status == 422, "{status} {body}");
    assert!(body["error"].is_string(), "{body}");
    let batch_of = |n: usize| {
        format!(
            r#"{{"checks": [{}]}}"#,
            vec![r#"{"group":"vip","customer_id":1}"#; n].join(",")
        )
    };
    let (status, body) = server.post("/v1/check", &batch_of(10_001));
    assert_eq!(status, 413, "batches are bounded: {body}");
    // Over the byte limit the server answers 413 without reading the body, and may close
    // the connection while the client is still sending it.
    let response = http()
        .post(&format!("{}/v1/check", server.base))
        .header("content-type", "application/json")
        .send(&batch_of(60_000));
    if let Ok(response) = response {
        assert_eq!(response.status().as_u16(), 413, "bodies are bounded");
    }

    let (status, health) = server.get_json("/healthz");
    assert_eq!(status, 200);
    assert_eq!(health["run_id"], groups["run_id"]);
    let (status, metrics) = server.get("/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains(
        "cohort_requests_total{route=\"/v1/groups/{group}/members/{customer_id}\",status=\"200\"} 3"
    ));
    assert!(metrics.contains("cohort_request_duration_seconds_count"));
    assert!(metrics.contains(&format!(
        "cohort_snapshot_info{{run_id=\"{}\"}} 1",
        groups["run_id"].as_str().unwrap()
    )));
    assert_eq!(server.get("/v2/anything").0, 404);
}

#[test]
fn serve_reloads_new_runs_and_keeps_the_old_one_when_a_new_run_is_corrupt() {
    let p = published("string");
    let server = Server::start(&p, &["--poll-interval", "200ms"]);
    let first = server.get_json("/healthz").1["run_id"].clone();

    // A new run is picked up.
    p.cohort(&["run", "--as-of=2026-11-21T00:00:00Z"]).ok();
    server.wait_until("the new run", |s| {
        s.get_json("/healthz").1["run_id"] != first
    });
    let second = server.get_json("/healthz").1["run_id"].clone();
    assert_eq!(
        server.get_json("/v1/groups").1["run_id"],
        second,
        "requests see the new run"
    );

    // A corrupt run named by LATEST is refused; the old run keeps serving.
    let publish = p.path("snapshots");
    let good = publish.join("runs").join(second.as_str().unwrap());
    let bad = publish.join("runs/20261122T000000Z-badbadbadbad");
    std::fs::create_dir_all(&bad).unwrap();
    for file in ["manifest.json", "groups.bin", "ids.parquet"] {
        std::fs::copy(good.join(file), bad.join(file)).unwrap();
    }
    // (A manifest must name its own folder: only the checksum is wrong here.)
    let manifest = std::fs::read_to_string(bad.join("manifest.json")).unwrap();
    let manifest = manifest.replace(second.as_str().unwrap(), "20261122T000000Z-badbadbadbad");
    std::fs::write(bad.join("manifest.json"), manifest).unwrap();
    let mut bytes = std::fs::read(bad.join("groups.bin")).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(bad.join("groups.bin"), bytes).unwrap();
    std::fs::write(publish.join("LATEST"), "20261122T000000Z-badbadbadbad\n").unwrap();
    server.wait_until("the failed reload", |s| {
        s.get("/metrics").1.lines().any(|l| {
            l.starts_with("cohort_reloads_total{result=\"failure\"}") && !l.ends_with(" 0")
        })
    });
    let health = server.get_json("/healthz").1;
    assert_eq!(health["run_id"], second, "still serving the verified run");
    assert!(health["last_reload_error"]
        .as_str()
        .unwrap()
        .contains("checksum mismatch"));
    assert_eq!(server.get_json("/v1/customers/C00000001/groups").0, 200);
}

#[test]
fn serve_requires_the_bearer_token_when_given_one() {
    let p = published("int");
    p.write("token", "s3cret\n");
    let server = Server::start(&p, &["--token-file", "token"]);
    let url = format!("{}/v1/groups", server.base);
    let status = |auth: Option<&str>| {
        let mut request = http().get(&url);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        request.call().unwrap().status().as_u16()
    };
    assert_eq!(status(None), 401);
    assert_eq!(status(Some("Bearer wrong")), 401);
    assert_eq!(status(Some("s3cret")), 401);
    assert_eq!(status(Some("Bearer s3cret")), 200);
    assert_eq!(server.get("/healthz").0, 200, "probes need no token");
}

#[test]
fn serve_shuts_down_gracefully_on_sigterm() {
    let p = published("int");
    let mut server = Server::start(&p, &[]);
    assert_eq!(server.get("/healthz").0, 200);
    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    for _ in 0..100 {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "exit status after SIGTERM: {status}");
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("cohort serve did not stop within 10 s of SIGTERM");
}

#[test]
fn serve_without_a_published_run_fails_clearly() {
    let p = sample_project("int");
    let out = p.cohort(&["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("no published run"), "{}", out.stderr);
}
