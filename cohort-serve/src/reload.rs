//! Hot reload: polls `LATEST` through one object store client, loads a new run off the
//! request path, and backs off from a run (or a store) that keeps failing.

use std::time::{Duration, Instant};

use cohort::snapshot::layout::latest_run_id;
use cohort::snapshot::Location;
use cohort::snapshot::Snapshot;
use cohort::Error;

/// The longest wait before a failed reload is tried again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// What one poll did.
#[derive(Debug)]
pub(super) enum Poll {
    /// `LATEST` names the run being served (any earlier failure is over).
    Unchanged,
    /// Nothing was tried: the last failure's backoff has not expired.
    BackingOff,
    /// A new run was loaded and verified; the caller swaps it in.
    Loaded(Box<Snapshot>),
    /// `LATEST` could not be read, or the run it names failed to load.
    Failed(Error),
}

/// A failure being backed off from.
#[derive(Debug, Clone, PartialEq)]
struct Failure {
    /// The run that failed to load; `None` when `LATEST` itself could not be read.
    run_id: Option<String>,
    /// Consecutive failures of that same target.
    attempts: u32,
    /// No new attempt at the same target before this.
    retry_at: Instant,
}

/// The reload state of one publish location.
#[derive(Debug)]
pub(super) struct Reloader {
    publish: Location,
    poll_interval: Duration,
    current: String,
    failure: Option<Failure>,
}

impl Reloader {
    /// Reloads for `publish` (resolved once: every poll reuses its store), serving `current`.
    pub(super) fn new(publish: Location, poll_interval: Duration, current: &str) -> Reloader {
        Reloader {
            publish,
            poll_interval,
            current: current.to_string(),
            failure: None,
        }
    }

    /// The wait before the next attempt at a failing target, if one is being backed off.
    pub(super) fn backoff(&self, now: Instant) -> Option<Duration> {
        self.failure
            .as_ref()
            .map(|f| f.retry_at.saturating_duration_since(now))
    }

    /// One poll at time `now`: reads `LATEST` and loads the run it names if that is new,
    /// unless the same target failed last time and its backoff has not expired. A new
    /// run id in `LATEST` is tried at once, whatever failed before.
    pub(super) async fn poll(&mut self, now: Instant) -> Poll {
        if let Some(f) = &self.failure {
            if f.run_id.is_none() && now < f.retry_at {
                return Poll::BackingOff;
            }
        }
        let latest = match latest_run_id(&self.publish).await {
            Ok(id) => id,
            Err(e) => return self.failed(None, now, e.into()),
        };
        if latest == self.current {
            self.failure = None;
            return Poll::Unchanged;
        }
        if let Some(f) = &self.failure {
            if f.run_id.as_deref() == Some(latest.as_str()) && now < f.retry_at {
                return Poll::BackingOff;
            }
        }
        match load(&self.publish, &latest).await {
            Ok(snapshot) => {
                self.current = latest;
                self.failure = None;
                Poll::Loaded(Box::new(snapshot))
            }
            Err(e) => self.failed(Some(latest), now, e),
        }
    }

    /// Records a failure: the wait doubles with each consecutive failure of the same
    /// target, from twice the poll interval up to [`MAX_BACKOFF`].
    fn failed(&mut self, run_id: Option<String>, now: Instant, error: Error) -> Poll {
        let attempts = match &self.failure {
            Some(f) if f.run_id == run_id => f.attempts.saturating_add(1),
            _ => 1,
        };
        let wait = self
            .poll_interval
            .saturating_mul(1u32.checked_shl(attempts.min(31)).unwrap_or(u32::MAX))
            .min(MAX_BACKOFF);
        self.failure = Some(Failure {
            run_id,
            attempts,
            retry_at: now + wait,
        });
        Poll::Failed(error)
    }
}

/// Loads a run on a thread of its own: verifying and indexing a large run takes seconds
/// of CPU (spread by rayon), which must not stall the runtime's workers serving requests.
/// Not a `spawn_blocking` thread, which the runtime waits for when it is dropped: a load
/// in progress must not hold up the exit after the shutdown grace period.
pub(super) async fn load(publish: &Location, run_id: &str) -> cohort::Result<Snapshot> {
    let handle = tokio::runtime::Handle::current();
    let (publish, run_id) = (publish.clone(), run_id.to_string());
    let (sender, receiver) = futures::channel::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("cohort-reload".into())
        .spawn(move || {
            let result = handle.block_on(Snapshot::open_run_at(&publish, &run_id));
            let _ = sender.send(result);
        });
    if let Err(e) = spawned {
        return Err(Error::io("a reload thread", e));
    }
    match receiver.await {
        Ok(result) => result.map_err(Error::from),
        // The thread panicked (the panic has been printed): report it as a failed load.
        Err(_) => Err(Error::Internal(
            "loading the run panicked (see the server log)".into(),
        )),
    }
}

/// A reload error as `/healthz` shows it: what went wrong, without the publish URL or
/// any filesystem path (the full error goes to the log).
pub(super) fn public_message(error: &Error) -> String {
    use cohort::snapshot::Error as E;
    match error {
        Error::Snapshot(E::Invalid { reason, .. }) => reason.clone(),
        Error::Snapshot(E::NothingPublished { .. }) => {
            "no LATEST file under the publish location".into()
        }
        Error::Snapshot(E::Storage { source, .. }) => match source {
            object_store::Error::NotFound { .. } => {
                "the store has no such object (see the server log)".into()
            }
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => {
                "the store denied access (see the server log)".into()
            }
            _ => "the store request failed (see the server log)".into(),
        },
        Error::Io { .. } | Error::Snapshot(E::Io { .. }) => {
            "a local file could not be read (see the server log)".into()
        }
        _ => "the run could not be loaded (see the server log)".into(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::memory::InMemory;
    use object_store::path::Path as StorePath;
    use object_store::ObjectStoreExt;

    use super::*;

    fn memory() -> (Arc<InMemory>, Location) {
        let store = Arc::new(InMemory::new());
        let location = Location {
            store: store.clone(),
            path: StorePath::from("publish"),
            display: "memory:///publish".into(),
            root: url::Url::parse("memory:///").unwrap(),
            local: None,
        };
        (store, location)
    }

    async fn set_latest(store: &InMemory, run: &str) {
        store
            .put(&StorePath::from("publish/LATEST"), run.to_string().into())
            .await
            .unwrap();
    }

    fn outcome(poll: &Poll) -> &'static str {
        match poll {
            Poll::Unchanged => "unchanged",
            Poll::BackingOff => "backing off",
            Poll::Loaded(_) => "loaded",
            Poll::Failed(_) => "failed",
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_failing_run_is_backed_off_until_latest_changes_or_the_wait_expires() {
        let (store, publish) = memory();
        let poll = Duration::from_secs(1);
        let mut reloader = Reloader::new(publish, poll, "good");
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_millis(n * 1000);
        // (seconds since t0, LATEST, expected outcome, expected wait left afterwards)
        let steps: &[(u64, &str, &str, Option<u64>)] = &[
            (0, "good", "unchanged", None),
            (1, "broken", "failed", Some(2)),
            (2, "broken", "backing off", Some(1)),
            (3, "broken", "failed", Some(4)),
            (4, "broken", "backing off", Some(3)),
            (6, "broken", "backing off", Some(1)),
            (7, "broken", "failed", Some(8)),
            (8, "other", "failed", Some(2)),
            (9, "broken", "failed", Some(2)),
            (10, "good", "unchanged", None),
            (11, "broken", "failed", Some(2)),
        ];
        for &(at, latest, expected, wait) in steps {
            set_latest(&store, latest).await;
            let got = reloader.poll(s(at)).await;
            assert_eq!(outcome(&got), expected, "at {at} s, LATEST {latest}");
            assert_eq!(
                reloader.backoff(s(at)),
                wait.map(Duration::from_secs),
                "wait at {at} s"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn an_unreadable_latest_is_backed_off_and_the_wait_is_capped() {
        let (_store, publish) = memory();
        let mut reloader = Reloader::new(publish, Duration::from_secs(100), "good");
        let mut now = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..5 {
            let got = reloader.poll(now).await;
            assert_eq!(outcome(&got), "failed");
            if let Poll::Failed(e) = got {
                assert_eq!(
                    public_message(&e),
                    "no LATEST file under the publish location"
                );
            }
            assert_eq!(outcome(&reloader.poll(now).await), "backing off");
            let wait = reloader.backoff(now).unwrap();
            waits.push(wait.as_secs());
            now += wait;
        }
        assert_eq!(waits, [200, 400, 600, 600, 600]);
    }

    #[test]
    fn public_messages_name_no_location() {
        let path = "/home/someone/secret/snapshots/runs/r1";
        let cases = [
            (
                Error::Snapshot(cohort::snapshot::Error::Invalid {
                    url: path.into(),
                    reason: "group 'a': checksum mismatch in 'groups.bin'".into(),
                }),
                "group 'a': checksum mismatch in 'groups.bin'",
            ),
            (
                Error::Snapshot(cohort::snapshot::Error::NothingPublished { url: path.into() }),
                "no LATEST file under the publish location",
            ),
            (
                Error::Snapshot(cohort::snapshot::Error::storage(
                    path,
                    object_store::Error::NotFound {
                        path: path.into(),
                        source: "gone".into(),
                    },
                )),
                "the store has no such object (see the server log)",
            ),
            (
                Error::io(path, std::io::Error::other(path)),
                "a local file could not be read (see the server log)",
            ),
        ];
        for (error, expected) in cases {
            assert!(error.to_string().contains(path));
            assert_eq!(public_message(&error), expected);
        }
    }
}
