//! The runs under a publish URL: listing them, garbage-collecting old ones, and diffing two.

use chrono::{DateTime, Duration, Utc};
use roaring::RoaringBitmap;
use serde::Serialize;

use crate::layout::{latest_run_id, MANIFEST_FILE};
use crate::location::Location;
use crate::reader::{parse_manifest, Snapshot};
use crate::{Error, Result};

/// One folder under `runs/`.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// The run id (folder name).
    pub run_id: String,
    /// Whether `LATEST` names it.
    pub latest: bool,
    /// Whether it has a manifest this build reads (a run killed mid-publish has none).
    pub complete: bool,
    /// Why its manifest could not be read (a newer format, damage), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
    /// From the manifest.
    pub created_at: Option<String>,
    /// From the manifest.
    pub as_of: Option<String>,
    /// Number of groups.
    pub groups: usize,
    /// Customers in the run.
    pub customers: u64,
    /// Bytes of all files in the run folder.
    pub bytes: u64,
    /// Newest modification time of its files.
    #[serde(skip)]
    pub modified: Option<DateTime<Utc>>,
}

/// Every run under the publish URL, newest first (by `created_at`, then run id).
pub async fn list_runs(publish: &Location) -> Result<Vec<RunInfo>> {
    use futures::TryStreamExt;
    let latest = match latest_run_id(publish).await {
        Ok(id) => Some(id),
        Err(Error::NothingPublished { .. }) => None,
        Err(e) => return Err(e),
    };
    let runs = publish.join("runs");
    let mut result = Vec::new();
    // (Hidden names are folders `gc` set aside for deletion.)
    for run_id in runs
        .list_children()
        .await?
        .into_iter()
        .filter(|n| !n.starts_with('.'))
    {
        let run = runs.join(&run_id);
        let objects: Vec<object_store::ObjectMeta> = run
            .store
            .list(Some(&run.path))
            .try_collect()
            .await
            .map_err(|e| Error::storage(&run.display, e))?;
        let (manifest, unreadable) = match run.join(MANIFEST_FILE).read_if_exists().await? {
            Some(bytes) => match parse_manifest(&run_id, &bytes) {
                Ok(m) => (Some(m), None),
                Err(reason) => (None, Some(reason.to_string())),
            },
            None => (None, None),
        };
        result.push(RunInfo {
            latest: latest.as_deref() == Some(run_id.as_str()),
            complete: manifest.is_some(),
            unreadable,
            created_at: manifest.as_ref().map(|m| m.created_at.clone()),
            as_of: manifest.as_ref().map(|m| m.as_of.clone()),
            groups: manifest.as_ref().map_or(0, |m| m.groups.len()),
            customers: manifest.as_ref().map_or(0, |m| m.customers),
            bytes: objects.iter().map(|o| o.size).sum(),
            modified: objects.iter().map(|o| o.last_modified).max(),
            run_id,
        });
    }
    result.sort_by(|a, b| {
        (&b.created_at, &b.run_id)
            .cmp(&(&a.created_at, &a.run_id))
            .then(b.complete.cmp(&a.complete))
    });
    Ok(result)
}

/// What `gc` removed.
#[derive(Debug, Clone, Serialize)]
pub struct GcReport {
    /// Runs kept.
    pub kept: Vec<String>,
    /// Runs deleted (or that would be, on a dry run).
    pub deleted: Vec<String>,
    /// Runs kept because their manifest could not be read (a newer format?), with why.
    pub unreadable: Vec<(String, String)>,
}

/// The rule `gc` follows: which runs it may delete.
#[derive(Debug, Clone, Copy)]
pub struct GcPolicy {
    /// How many of the newest complete runs to keep.
    pub keep: usize,
    /// Runs modified more recently than this are kept, whatever else holds: a publish
    /// rewrites its run's manifest just before it points `LATEST` at it.
    pub min_age: Duration,
    /// Only report.
    pub dry_run: bool,
}

/// Deletes every complete run but the newest `keep`, and incomplete runs, except the one
/// `LATEST` names and any modified within `min_age`; runs whose manifest can't be read are
/// reported and kept. Just before a run is deleted, `LATEST` and the run's modification
/// time are read again, so a publish that is about to name it keeps it.
pub async fn gc(publish: &Location, policy: GcPolicy) -> Result<GcReport> {
    let runs = list_runs(publish).await?;
    let young = |modified: Option<DateTime<Utc>>| {
        modified.is_some_and(|m| m >= Utc::now() - policy.min_age)
    };
    let mut report = GcReport {
        kept: Vec::new(),
        deleted: Vec::new(),
        unreadable: Vec::new(),
    };
    let mut complete_kept = 0;
    for run in runs {
        if let Some(reason) = &run.unreadable {
            report.unreadable.push((run.run_id.clone(), reason.clone()));
            report.kept.push(run.run_id);
            continue;
        }
        let over = !run.complete || complete_kept >= policy.keep;
        let delete = over && !run.latest && !young(run.modified);
        if run.complete && !delete {
            complete_kept += 1;
        }
        if !delete {
            report.kept.push(run.run_id);
            continue;
        }
        let folder = publish.join(&format!("runs/{}", run.run_id));
        if policy.dry_run {
            report.deleted.push(run.run_id);
            continue;
        }
        // A publish of this very run may have begun since the listing.
        let named = || async { latest_run_id(publish).await.ok().as_deref() == Some(&run.run_id) };
        if named().await || young(folder.newest_modification().await?) {
            if run.complete {
                complete_kept += 1;
            }
            report.kept.push(run.run_id);
            continue;
        }
        let deleted = match folder.set_aside()? {
            // Local disk: renamed aside atomically, then checked once more. A publish that
            // named it meanwhile, or rewrote it, gets it back (or has made its own copy).
            Some(aside) => {
                if named().await || young(aside.newest_modification()) {
                    aside.put_back()?;
                    false
                } else {
                    aside.remove()?;
                    true
                }
            }
            // Gone already: someone else deleted it.
            None if folder.local.is_some() => false,
            // An object store: the manifest first, then the rest.
            None => folder.delete_all(MANIFEST_FILE).await?,
        };
        if deleted {
            report.deleted.push(run.run_id);
        } else {
            if run.complete {
                complete_kept += 1;
            }
            report.kept.push(run.run_id);
        }
    }
    Ok(report)
}

/// The two runs `cohort diff` compares by default: the newest complete run before the one
/// `LATEST` names, and that one.
pub async fn default_pair(publish: &Location) -> Result<(String, String)> {
    let latest = latest_run_id(publish).await?;
    let runs = list_runs(publish).await?;
    let position = runs.iter().position(|r| r.run_id == latest);
    let previous = position
        .and_then(|p| runs[p + 1..].iter().find(|r| r.complete))
        .ok_or_else(|| Error::NoSuchRun {
            url: publish.display.clone(),
            what: "only one run: nothing to diff against".into(),
        })?;
    Ok((previous.run_id.clone(), latest))
}

/// Membership change of one group between two runs.
#[derive(Debug, Clone)]
pub struct GroupDiff {
    /// Group id.
    pub group: String,
    /// In the new run only (bits of the new run).
    pub entered: RoaringBitmap,
    /// In the old run only, as bits of the new run.
    pub exited: RoaringBitmap,
    /// In the old run only, and not in the new run's customers at all (external ids).
    pub exited_gone: Vec<String>,
    /// In both runs.
    pub unchanged: u64,
    /// Whether the group exists in each run.
    pub in_old: bool,
    /// Whether the group exists in each run.
    pub in_new: bool,
}

impl GroupDiff {
    /// Number of customers that left the group.
    pub fn exited_count(&self) -> u64 {
        self.exited.len() + self.exited_gone.len() as u64
    }
}

/// Per group of either run: entered, exited and unchanged. Members are matched by external
/// id, so the answer is right even when the two runs' id dictionaries differ.
pub fn diff(old: &Snapshot, new: &Snapshot) -> Vec<GroupDiff> {
    let same_bits = old.same_id_space(new);
    let mut ids: Vec<&str> = new.groups().iter().map(|g| g.id.as_str()).collect();
    for g in old.groups() {
        if new.cardinality(&g.id).is_none() {
            ids.push(&g.id);
        }
    }
    ids.into_iter()
        .map(|group| {
            let new_members = new.bitmap(group);
            let old_members = old.bitmap(group);
            let in_old = old_members.is_some();
            let in_new = new_members.is_some();
            let (translated, gone) = match old_members {
                None => (RoaringBitmap::new(), Vec::new()),
                Some(b) if same_bits => (b, Vec::new()),
                Some(b) => {
                    let mut translated = RoaringBitmap::new();
                    let mut gone = Vec::new();
                    for bit in b {
                        let id = old.external_id(bit);
                        match new.bit_of(&id) {
                            Some(n) => {
                                translated.insert(n);
                            }
                            None => gone.push(id),
                        }
                    }
                    (translated, gone)
                }
            };
            let current = new_members.unwrap_or_default();
            GroupDiff {
                group: group.to_string(),
                entered: &current - &translated,
                exited: &translated - &current,
                exited_gone: gone,
                unchanged: current.intersection_len(&translated),
                in_old,
                in_new,
            }
        })
        .collect()
}
