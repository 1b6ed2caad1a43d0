//! `cohort serve` under load: concurrent single checks, groups-of lookups and 1,000-check
//! batches while `LATEST` moves between runs (one of them corrupt). Every answer is
//! checked against the run it reports; the ignored test prints the latency figures of
//! docs/performance.md.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cohort::Snapshot;
use serde_json::{json, Value};

use super::harness::{http, runtime, sample_project_of, Project};
use super::serve::Server;

/// Every run the server may answer from, loaded by the library.
struct Oracle {
    runs: HashMap<String, Snapshot>,
    groups: Vec<String>,
    /// Customer ids to ask about: every customer, and some that are in no run.
    ids: Vec<String>,
}

/// What the clients asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Single,
    GroupsOf,
    Batch,
}

/// What a load produced.
#[derive(Debug, Default)]
struct Report {
    latencies: BTreeMap<Kind, Vec<Duration>>,
    statuses: BTreeMap<u16, u64>,
    wrong: Vec<String>,
    runs_seen: BTreeSet<String>,
    checks: u64,
    elapsed: Duration,
}

impl Report {
    fn requests(&self) -> usize {
        self.latencies.values().map(Vec::len).sum()
    }

    fn merge(&mut self, other: Report) {
        for (kind, mut l) in other.latencies {
            self.latencies.entry(kind).or_default().append(&mut l);
        }
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.wrong.extend(other.wrong);
        self.runs_seen.extend(other.runs_seen);
        self.checks += other.checks;
    }

    /// A markdown table: per kind, requests, p50, p99, max.
    fn table(&self) -> String {
        let mut out =
            String::from("| request | n | p50 | p99 | max |\n|---|---:|---:|---:|---:|\n");
        for (kind, latencies) in &self.latencies {
            let mut sorted = latencies.clone();
            sorted.sort();
            let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
            out += &format!(
                "| {kind:?} | {} | {:.2} ms | {:.2} ms | {:.2} ms |\n",
                sorted.len(),
                at(0.5).as_secs_f64() * 1e3,
                at(0.99).as_secs_f64() * 1e3,
                sorted[sorted.len() - 1].as_secs_f64() * 1e3,
            );
        }
        let seconds = self.elapsed.as_secs_f64();
        out += &format!(
            "\n{} requests in {seconds:.1} s: {:.0} requests/s, {:.0} checks/s; statuses {:?}; runs answered from: {}\n",
            self.requests(),
            self.requests() as f64 / seconds,
            self.checks as f64 / seconds,
            self.statuses,
            self.runs_seen.len(),
        );
        out
    }
}

/// Publishes runs for three `as_of` days and a corrupt copy of the last one; LATEST is
/// left on the first. Returns the run ids (good ones first) and the corrupt one.
fn publish_runs(p: &Project) -> (Vec<String>, String) {
    let latest = || std::fs::read_to_string(p.path("snapshots/LATEST")).unwrap();
    let mut runs = Vec::new();
    for day in ["2026-11-20", "2026-11-21", "2026-11-22"] {
        p.cohort(&["run", &format!("--as-of={day}T00:00:00Z")]).ok();
        runs.push(latest().trim().to_string());
    }
    let good = p.path("snapshots/runs").join(&runs[2]);
    let bad_id = "20261123T000000Z-badbadbadbad".to_string();
    let bad = p.path("snapshots/runs").join(&bad_id);
    std::fs::create_dir_all(&bad).unwrap();
    for entry in std::fs::read_dir(&good).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), bad.join(entry.file_name())).unwrap();
    }
    let mut bytes = std::fs::read(bad.join("groups.bin")).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(bad.join("groups.bin"), bytes).unwrap();
    set_latest(&p.path("snapshots"), &runs[0]);
    (runs, bad_id)
}

/// Points LATEST at `run` atomically (temp file + rename), as the publisher does.
fn set_latest(publish: &Path, run: &str) {
    let temp = publish.join("LATEST.tmp");
    std::fs::write(&temp, format!("{run}\n")).unwrap();
    std::fs::rename(temp, publish.join("LATEST")).unwrap();
}

fn oracle(p: &Project, runs: &[String]) -> Oracle {
    let publish = p.path("snapshots").display().to_string();
    let rt = runtime();
    let runs: HashMap<String, Snapshot> = runs
        .iter()
        .map(|r| {
            (
                r.clone(),
                rt.block_on(Snapshot::open_run(&publish, r)).unwrap(),
            )
        })
        .collect();
    let any = runs.values().next().unwrap();
    let groups = any.groups().iter().map(|g| g.id.clone()).collect();
    let mut ids: Vec<String> = (0..any.manifest().customers as u32)
        .map(|bit| any.external_id(bit))
        .collect();
    ids.extend(["0", "999999999", "-5", "C99999999", "nobody"].map(String::from));
    Oracle { runs, groups, ids }
}

/// A small deterministic generator (xorshift), one per client thread.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// One client: until `deadline` or `max_requests`, 6 single checks, 3 groups-of and one
/// 1,000-check batch out of every 10 requests, on one keep-alive connection.
fn client(
    base: &str,
    oracle: &Oracle,
    seed: u64,
    deadline: Instant,
    max_requests: usize,
) -> Report {
    let agent = http();
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let pick_id = |rng: &mut Rng| oracle.ids[rng.below(oracle.ids.len())].clone();
    let pick_group = |rng: &mut Rng| oracle.groups[rng.below(oracle.groups.len())].clone();
    let mut report = Report::default();
    for i in 0..max_requests {
        if Instant::now() >= deadline {
            break;
        }
        let kind = match i % 10 {
            0..=5 => Kind::Single,
            6..=8 => Kind::GroupsOf,
            _ => Kind::Batch,
        };
        let (id, group) = (pick_id(&mut rng), pick_group(&mut rng));
        let checks: Vec<(String, String)> = match kind {
            Kind::Batch => (0..1000)
                .map(|_| (pick_group(&mut rng), pick_id(&mut rng)))
                .collect(),
            _ => Vec::new(),
        };
        let started = Instant::now();
        let response = match kind {
            Kind::Single => agent
                .get(&format!("{base}/v1/groups/{group}/members/{id}"))
                .call(),
            Kind::GroupsOf => agent
                .get(&format!("{base}/v1/customers/{id}/groups"))
                .call(),
            Kind::Batch => {
                let checks: Vec<Value> = checks
                    .iter()
                    .map(|(g, id)| json!({"group": g, "customer_id": id}))
                    .collect();
                agent
                    .post(&format!("{base}/v1/check"))
                    .header("content-type", "application/json")
                    .send(json!({ "checks": checks }).to_string())
            }
        };
        let answer = response.map_err(|e| e.to_string()).and_then(|mut r| {
            let status = r.status().as_u16();
            let body = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
            Ok((status, body))
        });
        report
            .latencies
            .entry(kind)
            .or_default()
            .push(started.elapsed());
        report.checks += checks.len().max(1) as u64;
        let (status, body) = match answer {
            Ok(answer) => answer,
            Err(e) => {
                report.wrong.push(format!("{kind:?}: transport error {e}"));
                continue;
            }
        };
        *report.statuses.entry(status).or_default() += 1;
        if status != 200 {
            report
                .wrong
                .push(format!("{kind:?}: status {status}: {body}"));
            continue;
        }
        let value: Value = serde_json::from_str(&body).unwrap();
        let run_id = value["run_id"].as_str().unwrap_or_default().to_string();
        let Some(run) = oracle.runs.get(&run_id) else {
            report
                .wrong
                .push(format!("{kind:?}: answered from unknown run {run_id:?}"));
            continue;
        };
        report.runs_seen.insert(run_id);
        let expected = match kind {
            Kind::Single => json!(run.contains(&group, &id).unwrap()),
            Kind::GroupsOf => json!(run.groups_of(&id)),
            Kind::Batch => {
                let pairs: Vec<(&str, &str)> = checks
                    .iter()
                    .map(|(g, id)| (g.as_str(), id.as_str()))
                    .collect();
                json!(run.contains_many(&pairs).unwrap())
            }
        };
        let got = &value[match kind {
            Kind::Single => "member",
            Kind::GroupsOf => "groups",
            Kind::Batch => "results",
        }];
        if *got != expected {
            report.wrong.push(format!(
                "{kind:?} ({group}, {id}) from {}: got {got}, expected {expected}",
                run.run_id()
            ));
        }
    }
    report
}

/// A load: how many clients for how long, and how `LATEST` moves meanwhile.
struct Plan<'a> {
    /// The publish folder whose `LATEST` is moved.
    publish: &'a Path,
    /// The runs `LATEST` names in turn, one every `every`.
    cycle: &'a [String],
    every: Duration,
    threads: usize,
    duration: Duration,
    /// Requests of all clients together, at most.
    max_requests: usize,
}

/// Runs the plan's clients against the server while a publisher moves LATEST; returns
/// the merged report.
fn load(server: &Server, oracle: &Oracle, plan: Plan<'_>) -> Report {
    let Plan {
        publish,
        cycle,
        every,
        threads,
        duration,
        max_requests,
    } = plan;
    let deadline = Instant::now() + duration;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut report = std::thread::scope(|scope| {
        let publisher = scope.spawn(|| {
            for run in cycle.iter().cycle() {
                std::thread::sleep(every);
                if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                    break;
                }
                set_latest(publish, run);
            }
        });
        let clients: Vec<_> = (0..threads)
            .map(|t| {
                let base = server.base.clone();
                scope.spawn(move || {
                    client(
                        &base,
                        oracle,
                        t as u64 + 1,
                        deadline,
                        max_requests / threads,
                    )
                })
            })
            .collect();
        let mut report = Report::default();
        for c in clients {
            report.merge(c.join().unwrap());
        }
        stop.store(true, Ordering::Relaxed);
        publisher.join().unwrap();
        report
    });
    report.elapsed = started.elapsed();
    report
}

#[test]
fn serve_under_load_answers_right_while_runs_are_reloaded() {
    let p = sample_project_of("string", 3000);
    let (runs, bad) = publish_runs(&p);
    let oracle = oracle(&p, &runs);
    let server = Server::start(&p, &["--poll-interval", "100ms"]);
    // LATEST: the second run, the corrupt one, the third, back to the first, ...
    let cycle = [runs[1].clone(), bad, runs[2].clone(), runs[0].clone()];
    let publish = p.path("snapshots");
    let plan = Plan {
        publish: &publish,
        cycle: &cycle,
        every: Duration::from_millis(250),
        threads: 4,
        duration: Duration::from_secs(3),
        max_requests: 12_000,
    };
    let report = load(&server, &oracle, plan);
    eprintln!("{}", report.table());
    assert!(
        report.wrong.is_empty(),
        "{} wrong answers, first: {:#?}",
        report.wrong.len(),
        &report.wrong[..report.wrong.len().min(5)]
    );
    assert_eq!(report.statuses.keys().collect::<Vec<_>>(), [&200]);
    assert!(report.requests() >= 200, "{} requests", report.requests());
    assert!(
        report.runs_seen.len() >= 2,
        "answers came from {:?}",
        report.runs_seen
    );
    let metrics = server.get("/metrics").1;
    let failures = metrics
        .lines()
        .find_map(|l| l.strip_prefix("cohort_reloads_total{result=\"failure\"} "))
        .unwrap();
    assert_ne!(failures, "0", "the corrupt run was refused");
}

/// The figures of docs/performance.md, "Service under load":
/// `COHORT_LOAD_CUSTOMERS=100000 cargo test --test tests serve_load_figures -- --ignored --nocapture`
#[test]
#[ignore = "prints latency figures; run by hand"]
fn serve_load_figures() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let customers = env("COHORT_LOAD_CUSTOMERS", 100_000);
    let seconds = env("COHORT_LOAD_SECONDS", 10);
    let threads = env("COHORT_LOAD_THREADS", 4) as usize;
    let p = sample_project_of("string", customers);
    let (runs, bad) = publish_runs(&p);
    let oracle = oracle(&p, &runs);
    let server = Server::start(&p, &["--poll-interval", "1s"]);
    let cycle = [runs[1].clone(), bad, runs[2].clone(), runs[0].clone()];
    let publish = p.path("snapshots");
    let plan = Plan {
        publish: &publish,
        cycle: &cycle,
        every: Duration::from_secs(2),
        threads,
        duration: Duration::from_secs(seconds),
        max_requests: usize::MAX,
    };
    let report = load(&server, &oracle, plan);
    println!("{customers} string-id customers, {} groups, {threads} client threads, LATEST moved every 2 s:\n", oracle.groups.len());
    println!("{}", report.table());
    assert!(
        report.wrong.is_empty(),
        "{:#?}",
        &report.wrong[..report.wrong.len().min(5)]
    );
}
