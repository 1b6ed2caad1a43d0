//! Live sizing beside lookups (issue 36), on a real `cohort serve`: lookups are answered
//! while sizings scan, a full sizing pool answers 429 without waiting for a scan, and a
//! sizing cancelled at its deadline gives its slot back. No timings are asserted; what
//! happened during a request is read from counters and `/metrics`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use serde_json::{json, Value};

use super::harness::{sample_project_of, Project};
use super::serve::Server;

const AS_OF: &str = "2026-11-20T00:00:00Z";

/// A project large enough that one sizing of [`heavy`] scans for a while, with a run
/// published.
fn project() -> Project {
    let p = sample_project_of("int", 200_000);
    p.cohort(&["run", "--as-of", AS_OF]).ok();
    p
}

/// A definition that reads the orders and searches every email for several substrings.
fn heavy() -> String {
    json!({"include": [
        {"conditions": [{"events": "orders", "aggregate": "sum", "column": "amount", "within_last": "365d", "op": ">", "value": 100}]},
        {"conditions": [{"attribute": "email", "op": "contains", "values": ["a", "b", "c", "zq", "xy"], "ignore_case": true}]},
        {"conditions": [{"attribute": "email", "op": "ends_with", "values": ["@gmail.com", ".org"]}]}
    ]})
    .to_string()
}

/// `cohort_sizings_running` in `/metrics`.
fn running(server: &Server) -> u64 {
    server.metric("cohort_sizings_running")
}

/// Sizings posted one after another from `threads` threads until `stop` is set (at most
/// `most` each); the statuses. `in_flight` counts the sizings sent and not yet answered,
/// `answered` those answered.
#[derive(Default)]
struct Sizings {
    in_flight: AtomicUsize,
    answered: AtomicUsize,
    stop: AtomicBool,
    statuses: Mutex<Vec<(u16, Value)>>,
}

impl Sizings {
    fn run(&self, server: &Server, body: &str, most: usize) {
        for _ in 0..most {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            self.in_flight.fetch_add(1, Ordering::SeqCst);
            let answer = server.post("/v1/size", body);
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.answered.fetch_add(1, Ordering::SeqCst);
            self.statuses.lock().unwrap().push(answer);
        }
    }
}

#[test]
fn lookups_are_answered_while_sizings_run() {
    let p = project();
    let server = Server::start(&p, &["--max-concurrent-sizes", "2"]);
    // Every lookup's answer before any sizing.
    let lookups: Vec<(String, Value)> = (0..40u64)
        .flat_map(|i| {
            let id = i * 4_999 + 1;
            [
                format!("/v1/groups/us_adults/members/{id}"),
                format!("/v1/groups/vip/members/{id}"),
                format!("/v1/customers/{id}/groups"),
            ]
        })
        .map(|path| {
            let (status, answer) = server.get_json(&path);
            assert_eq!(status, 200, "{path}: {answer}");
            (path, answer)
        })
        .collect();
    let checks = json!({"checks": (0..200u64)
        .map(|i| json!({"group": "us_adults", "customer_id": i * 997 + 3}))
        .collect::<Vec<_>>()})
    .to_string();
    let (status, checked) = server.post("/v1/check", &checks);
    assert_eq!(status, 200, "{checked}");

    let sizings = Sizings::default();
    let heavy = heavy();
    let mut during = 0;
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| sizings.run(&server, &heavy, 20));
        }
        server.wait_until("a sizing in progress", |s| running(s) > 0);
        // Rounds of every lookup until the sizings have answered a few times (bounded).
        for _round in 0..200 {
            for (path, expected) in &lookups {
                let scanning = running(&server) > 0;
                assert_eq!(
                    server.get_json(path),
                    (200, expected.clone()),
                    "{path} while sizing"
                );
                if scanning && running(&server) > 0 {
                    during += 1;
                }
            }
            assert_eq!(server.post("/v1/check", &checks), (200, checked.clone()));
            if sizings.answered.load(Ordering::SeqCst) >= 4 {
                break;
            }
        }
        sizings.stop.store(true, Ordering::SeqCst);
    });
    assert!(
        during > 0,
        "some lookups were answered while a sizing held its slot"
    );
    let statuses = sizings.statuses.into_inner().unwrap();
    assert!(statuses.len() >= 2, "{statuses:?}");
    for (status, answer) in &statuses {
        assert_eq!(*status, 200, "{answer}");
        assert_eq!(answer["members"], statuses[0].1["members"]);
    }
}

#[test]
fn a_full_sizing_pool_answers_429_at_once() {
    let p = project();
    let server = Server::start(&p, &["--max-concurrent-sizes", "1"]);
    let sizings = Sizings::default();
    let heavy = heavy();
    // 429s answered while the sizing holding the slot was still scanning.
    let mut at_once = Vec::new();
    let mut others = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| sizings.run(&server, &heavy, 30));
        server.wait_until("a sizing in progress", |s| running(s) == 1);
        for _ in 0..50 {
            let before = sizings.answered.load(Ordering::SeqCst);
            let (status, answer) = server.post("/v1/size", &heavy);
            let after = sizings.answered.load(Ordering::SeqCst);
            if status == 429 && before == after && sizings.in_flight.load(Ordering::SeqCst) == 1 {
                at_once.push(answer);
                if at_once.len() >= 3 {
                    break;
                }
            } else {
                others.push((status, answer));
            }
        }
        sizings.stop.store(true, Ordering::SeqCst);
    });
    assert!(
        !at_once.is_empty(),
        "a sizing beyond the limit is refused while the other one scans: {others:?}"
    );
    for answer in &at_once {
        assert_eq!(answer["error"], "too many sizing requests; try again");
    }
    for (status, answer) in others.iter().chain(sizings.statuses.lock().unwrap().iter()) {
        assert!(*status == 200 || *status == 429, "{status} {answer}");
    }
    // Lookups were not refused meanwhile, and the slot is free once the sizings are over.
    assert_eq!(server.get_json("/v1/groups").0, 200);
    server.wait_until("the slot free", |s| running(s) == 0);
    assert_eq!(server.post("/v1/size", &heavy).0, 200);
}

#[test]
fn a_timed_out_sizing_frees_its_slot() {
    let p = project();
    let server = Server::start(
        &p,
        &["--max-concurrent-sizes", "1", "--size-timeout", "10ms"],
    );
    let heavy = heavy();
    for attempt in 0..3 {
        let (status, answer) = server.post("/v1/size", &heavy);
        assert_eq!(status, 504, "attempt {attempt}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("longer than 10ms"),
            "{answer}"
        );
        // The scan is cancelled, and its slot given back: the next sizing gets it.
        server.wait_until("the cancelled scan's slot", |s| running(s) == 0);
    }
    assert_eq!(server.get_json("/v1/groups").0, 200);
}
