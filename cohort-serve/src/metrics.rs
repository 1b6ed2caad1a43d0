//! Service counters and their Prometheus text exposition.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 10] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.1, 1.0,
];

/// Everything `/metrics` reports.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_nanos: AtomicU64,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
}

/// What the exposition needs to know about the run being served.
#[derive(Debug)]
pub struct Served<'a> {
    /// Run id.
    pub run_id: &'a str,
    /// Groups in the run.
    pub groups: usize,
    /// Customers in the run.
    pub customers: u64,
    /// Unix seconds of the last successful load.
    pub loaded_at: i64,
    /// Live sizings holding a slot, and the limit (when sizing is enabled).
    pub sizings: Option<(usize, usize)>,
}

impl Metrics {
    /// Counts one request on `route` answered with `status`, taking `elapsed`.
    pub fn observe(&self, route: &str, status: u16, elapsed: Duration) {
        *self
            .requests
            .lock()
            .expect("metrics lock is never poisoned")
            .entry((route.to_string(), status))
            .or_default() += 1;
        let seconds = elapsed.as_secs_f64();
        for (bucket, bound) in self.latency_buckets.iter().zip(BUCKETS) {
            if seconds <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_nanos
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Counts a reload attempt.
    pub fn reloaded(&self, ok: bool) {
        let counter = if ok {
            &self.reloads_ok
        } else {
            &self.reloads_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Failed reloads so far.
    pub fn reload_failures(&self) -> u64 {
        self.reloads_failed.load(Ordering::Relaxed)
    }

    /// The Prometheus text format (version 0.0.4).
    pub fn render(&self, served: &Served<'_>) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP cohort_requests_total HTTP requests answered.");
        let _ = writeln!(out, "# TYPE cohort_requests_total counter");
        for ((route, status), n) in self
            .requests
            .lock()
            .expect("metrics lock is never poisoned")
            .iter()
        {
            let _ = writeln!(
                out,
                "cohort_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        let _ = writeln!(
            out,
            "# HELP cohort_request_duration_seconds Time to answer a request."
        );
        let _ = writeln!(out, "# TYPE cohort_request_duration_seconds histogram");
        for (bucket, bound) in self.latency_buckets.iter().zip(BUCKETS) {
            let _ = writeln!(
                out,
                "cohort_request_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "cohort_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "cohort_request_duration_seconds_sum {}",
            self.latency_sum_nanos.load(Ordering::Relaxed) as f64 / 1e9
        );
        let _ = writeln!(out, "cohort_request_duration_seconds_count {count}");
        let _ = writeln!(
            out,
            "# HELP cohort_reloads_total Attempts to load a new run named by LATEST."
        );
        let _ = writeln!(out, "# TYPE cohort_reloads_total counter");
        let _ = writeln!(
            out,
            "cohort_reloads_total{{result=\"success\"}} {}",
            self.reloads_ok.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "cohort_reloads_total{{result=\"failure\"}} {}",
            self.reloads_failed.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# HELP cohort_snapshot_info The run being served.");
        let _ = writeln!(out, "# TYPE cohort_snapshot_info gauge");
        let _ = writeln!(
            out,
            "cohort_snapshot_info{{run_id=\"{}\"}} 1",
            escape(served.run_id)
        );
        let _ = writeln!(out, "# TYPE cohort_snapshot_groups gauge");
        let _ = writeln!(out, "cohort_snapshot_groups {}", served.groups);
        let _ = writeln!(out, "# TYPE cohort_snapshot_customers gauge");
        let _ = writeln!(out, "cohort_snapshot_customers {}", served.customers);
        let _ = writeln!(out, "# TYPE cohort_snapshot_loaded_timestamp_seconds gauge");
        let _ = writeln!(
            out,
            "cohort_snapshot_loaded_timestamp_seconds {}",
            served.loaded_at
        );
        if let Some((running, limit)) = served.sizings {
            let _ = writeln!(
                out,
                "# HELP cohort_sizings_running Live sizings holding a slot (until their scan is over)."
            );
            let _ = writeln!(out, "# TYPE cohort_sizings_running gauge");
            let _ = writeln!(out, "cohort_sizings_running {running}");
            let _ = writeln!(out, "# TYPE cohort_sizings_limit gauge");
            let _ = writeln!(out, "cohort_sizings_limit {limit}");
        }
        out
    }
}

/// Label values escape backslash, quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
