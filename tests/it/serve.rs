//! `cohort serve` as a real process on 127.0.0.1: every endpoint of SPEC §5, hot reload,
//! a corrupt new run and its backoff, bearer tokens and their rotation, JSON errors, body
//! limits, slow clients and graceful shutdown.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::harness::{http, sample_project, Project};

/// A running `cohort serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    pub fn start(p: &Project, extra: &[&str]) -> Server {
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

    pub fn get(&self, path: &str) -> (u16, String) {
        let mut response = http().get(&format!("{}{path}", self.base)).call().unwrap();
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().unwrap())
    }

    pub fn get_json(&self, path: &str) -> (u16, Value) {
        let (status, body) = self.get(path);
        let value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"));
        (status, value)
    }

    pub fn post(&self, path: &str, body: &str) -> (u16, Value) {
        self.post_as(path, "application/json", body)
    }

    fn post_as(&self, path: &str, content_type: &str, body: &str) -> (u16, Value) {
        let mut response = http()
            .post(&format!("{}{path}", self.base))
            .header("content-type", content_type)
            .send(body)
            .unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// The host and port, for raw TCP clients.
    fn address(&self) -> &str {
        self.base.strip_prefix("http://").unwrap()
    }

    /// A series' value in `/metrics` (a counter or a gauge).
    pub fn metric(&self, series: &str) -> u64 {
        let text = self.get("/metrics").1;
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in /metrics:\n{text}"))
    }

    /// Sends SIGTERM; the time until the process exits (bounded: 20 s), and whether it
    /// exited with success.
    fn terminate(&mut self) -> (Duration, bool) {
        let pid = self.child.id().to_string();
        assert!(std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (started.elapsed(), status.success());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("cohort serve did not stop within 20 s of SIGTERM");
    }

    /// Polls until `done` holds (bounded: 20 s).
    pub fn wait_until(&self, what: &str, mut done: impl FnMut(&Server) -> bool) {
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

/// An answer about customers without its `run_id` (checked to be the run's id).
fn answer((status, mut value): (u16, Value)) -> (u16, Value) {
    let run_id = value
        .as_object_mut()
        .and_then(|o| o.remove("run_id"))
        .unwrap_or_else(|| panic!("no run_id in {value}"));
    assert!(run_id.as_str().is_some_and(|r| !r.is_empty()), "{run_id}");
    (status, value)
}

pub fn published(id_type: &str) -> Project {
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
        answer(server.get_json("/v1/groups/vip/members/7")),
        (200, json!({"member": true}))
    );
    assert_eq!(
        answer(server.get_json("/v1/groups/vip/members/3")),
        (200, json!({"member": false})),
        "static exclude"
    );
    assert_eq!(
        answer(server.get_json("/v1/groups/vip/members/no-such-customer")),
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
        answer(server.get_json("/v1/customers/999999999/groups")),
        (200, json!({"groups": []}))
    );

    let (status, batch) = server.post(
        "/v1/check",
        r#"{"checks": [{"group": "vip", "customer_id": "7"},
                       {"group": "vip", "customer_id": 7},
                       {"group": "vip", "customer_id": 3}]}"#,
    );
    assert_eq!(
        answer((status, batch)),
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
    let message = health["last_reload_error"].as_str().unwrap();
    assert!(message.contains("checksum mismatch"), "{message}");
    let dir = p.dir.path().display().to_string();
    for (what, text) in [
        ("/healthz", health.to_string()),
        ("/metrics", server.get("/metrics").1),
    ] {
        assert!(!text.contains(&dir), "{what} shows a path: {text}");
    }
    assert_eq!(server.get_json("/v1/customers/C00000001/groups").0, 200);

    // The broken run is not retried every poll (200 ms): the wait doubles from 400 ms.
    let failures = |s: &Server| s.metric("cohort_reloads_total{result=\"failure\"}");
    let first_failures = failures(&server);
    std::thread::sleep(Duration::from_secs(2));
    let retries = failures(&server) - first_failures;
    assert!(retries <= 3, "{retries} retries in 2 s of a run that fails");

    // A good run named by LATEST is loaded at once, and the error is cleared.
    p.cohort(&["run", "--as-of=2026-11-23T00:00:00Z"]).ok();
    server.wait_until("the good run", |s| {
        let health = s.get_json("/healthz").1;
        health["run_id"] != second && health["last_reload_error"].is_null()
    });
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
    // (Authorization header, expected status)
    let cases: &[(Option<&str>, u16)] = &[
        (None, 401),
        (Some("Bearer wrong"), 401),
        (Some("s3cret"), 401),
        (Some("Bearer s3cret"), 200),
        (Some("bearer s3cret"), 200),
        (Some("BEARER  s3cret"), 200),
        (Some("Basic s3cret"), 401),
    ];
    for (auth, expected) in cases {
        assert_eq!(status(*auth), *expected, "{auth:?}");
    }
    assert_eq!(server.get("/healthz").0, 200, "probes need no token");
    assert_eq!(server.get("/metrics").0, 200, "scrapers need no token");

    // Rotation without a restart: the file is re-read (at most once a second).
    p.write("token", "n3w\n");
    server.wait_until("the new token", |_| status(Some("Bearer n3w")) == 200);
    assert_eq!(status(Some("Bearer s3cret")), 401, "the old token is out");
    // A rotation caught half-way (an empty file) keeps the token in force.
    p.write("token", "");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(status(Some("Bearer n3w")), 200);
}

#[test]
fn serve_answers_every_error_as_json() {
    let p = published("int");
    let server = Server::start(&p, &[]);
    let url = |path: &str| format!("{}{path}", server.base);
    let agent = http();
    // (method, path, content type, body, expected status)
    let cases: &[(&str, &str, &str, &str, u16)] = &[
        ("GET", "/nope", "", "", 404),
        ("GET", "/v1/groups/nope/members/1", "", "", 404),
        ("POST", "/v1/groups", "application/json", "{}", 405),
        ("GET", "/v1/check", "", "", 405),
        ("DELETE", "/healthz", "", "", 405),
        ("GET", "/v1/customers/%FF%FE/groups", "", "", 400),
        ("GET", "/v1/groups/vip/members/%C3%28", "", "", 400),
        ("POST", "/v1/check", "text/plain", r#"{"checks": []}"#, 415),
        ("POST", "/v1/check", "application/json", "{not json", 400),
        (
            "POST",
            "/v1/check",
            "application/json",
            r#"{"checks": 3}"#,
            422,
        ),
        (
            "POST",
            "/v1/check",
            "application/json",
            r#"{"checks": [{"group": "vip", "customer_id": []}]}"#,
            400,
        ),
    ];
    for (method, path, content_type, body, expected) in cases {
        let mut response = match *method {
            "GET" => agent.get(&url(path)).call(),
            "DELETE" => agent.delete(&url(path)).call(),
            _ => agent
                .post(&url(path))
                .header("content-type", *content_type)
                .send(*body),
        }
        .unwrap();
        let status = response.status().as_u16();
        if status == 405 {
            assert!(response.headers().contains_key("allow"), "{method} {path}");
        }
        let text = response.body_mut().read_to_string().unwrap();
        assert_eq!(status, *expected, "{method} {path}: {text}");
        let value: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
        assert!(value["error"].is_string(), "{method} {path}: {text}");
    }
    // Over the byte limit the server may close the connection while the body is still
    // being sent; when the answer arrives, it is JSON.
    let big = format!(
        r#"{{"checks": [{}]}}"#,
        vec![r#"{"group":"vip","customer_id":1}"#; 40_000].join(",")
    );
    let response = agent
        .post(&url("/v1/check"))
        .header("content-type", "application/json")
        .send(&big);
    if let Ok(mut response) = response {
        let text = response.body_mut().read_to_string().unwrap();
        assert_eq!(response.status().as_u16(), 413, "{text}");
        assert!(serde_json::from_str::<Value>(&text).unwrap()["error"].is_string());
    }
    let (status, body) = server.post_as(
        "/v1/check",
        "application/json; charset=utf-8",
        r#"{"checks": []}"#,
    );
    assert_eq!((status, body["results"].clone()), (200, json!([])));
}

#[test]
fn serve_closes_slow_clients_and_stops_within_the_grace_period() {
    let p = published("int");
    {
        let server = Server::start(&p, &["--read-timeout", "1s"]);
        // A client that never finishes its request is cut off after the read timeout.
        let mut slow = TcpStream::connect(server.address()).unwrap();
        slow.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        let started = Instant::now();
        let mut rest = Vec::new();
        let closed = slow.read_to_end(&mut rest);
        assert!(closed.is_ok(), "a slow client is cut off: {closed:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    let mut server = Server::start(&p, &["--read-timeout", "60s", "--shutdown-grace", "2s"]);
    let mut buf = [0; 256];
    // Open at shutdown: an idle keep-alive connection, a half-sent request and a request
    // whose body never comes.
    let mut idle = TcpStream::connect(server.address()).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = idle.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let mut half = TcpStream::connect(server.address()).unwrap();
    half.write_all(b"GET /healthz HT").unwrap();
    let mut bodiless = TcpStream::connect(server.address()).unwrap();
    bodiless
        .write_all(b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let (took, success) = server.terminate();
    assert!(success, "exit status after SIGTERM");
    assert!(
        took < Duration::from_secs(4),
        "stopped {took:?} after SIGTERM (grace 2 s)"
    );
}

#[test]
fn serve_shuts_down_gracefully_on_sigterm() {
    let p = published("int");
    let mut server = Server::start(&p, &[]);
    assert_eq!(server.get("/healthz").0, 200);
    let (took, success) = server.terminate();
    assert!(success, "exit status after SIGTERM");
    assert!(
        took < Duration::from_secs(10),
        "stopped {took:?} after SIGTERM"
    );
}

#[test]
fn serve_without_a_published_run_fails_clearly() {
    let p = sample_project("int");
    let out = p.cohort(&["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("no published run"), "{}", out.stderr);
}
