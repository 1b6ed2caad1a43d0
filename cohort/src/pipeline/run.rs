//! `run`: validate, evaluate, publish; the report a nightly job keeps.

use std::collections::{BTreeMap, HashMap};

use chrono::SecondsFormat;
use serde::Serialize;

use super::publish::{self, PreviousRun, PublishOptions};
use super::Pipeline;
use crate::snapshot::writer::Promote;
use crate::{Error, Result};

/// What a run does besides evaluating every group.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Evaluate and publish only these groups (and what they reference); every other group
    /// of the `LATEST` run is carried over. Empty: every group.
    pub only: Vec<String>,
    /// Evaluate without publishing.
    pub dry_run: bool,
    /// Whether to move `LATEST`.
    pub promote: Promote,
}

/// What a run did: the `--format json` / `--report` document.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The published run, `None` for a dry run.
    pub run_id: Option<String>,
    /// Nothing was published.
    pub dry_run: bool,
    /// Whether `LATEST` now names this run (`None` for a dry run).
    pub promoted: Option<bool>,
    /// Why `LATEST` was not moved.
    pub not_promoted_because: Option<String>,
    /// The engine the scan ran on (`local` or the scheduler's `df://` URL).
    pub engine: String,
    /// The cluster's job ids (empty on the local engine).
    pub jobs: Vec<String>,
    /// The evaluation time.
    pub as_of: String,
    /// Customers: rows with a non-null id.
    pub customers: u64,
    /// Rows with a null id, skipped.
    pub null_ids: u64,
    /// Distinct conditions evaluated.
    pub conditions: usize,
    /// Distinct event aggregates evaluated.
    pub event_aggregates: usize,
    /// Per event table: events of customers not in the customers table.
    pub ignored_events: BTreeMap<String, u64>,
    /// Every group of the run, by id.
    pub groups: Vec<RunGroup>,
    /// Groups of the previous run that this (full) run no longer has.
    pub removed: Vec<String>,
    /// Run warnings.
    pub warnings: Vec<String>,
    /// Definition lint warnings (also printed before the run).
    #[serde(skip)]
    pub lints: Vec<crate::definition::Problem>,
}

/// One group's line of the run report.
#[derive(Debug, Clone, Serialize)]
pub struct RunGroup {
    /// The group id.
    pub group: String,
    /// Members.
    pub members: u64,
    /// Members in the previous run, if it had the group.
    pub previous: Option<u64>,
    /// Carried over unchanged (`run --only`).
    pub carried: bool,
}

impl Pipeline {
    /// Evaluates every group (or `options.only`) and publishes the run, unless a dry run.
    pub async fn run(&self, options: RunOptions) -> Result<RunReport> {
        let validation = self.validate().await?;
        if validation.groups.is_empty() {
            return Err(Error::Missing {
                what: format!("no group definitions in '{}'", self.definitions.display()),
                help: "add a <group-id>.toml file there, or pass --queries <dir>".into(),
            });
        }
        let lints = validation.warnings.clone();
        // The previous run's manifest: the change column, and the groups `--only` carries over.
        let publish = self.stores.location(&self.publish)?;
        let previous: Option<PreviousRun> = match publish::previous_run(&publish).await {
            Ok(p) => p,
            Err(e) if options.only.is_empty() || options.dry_run => {
                tracing::warn!("the run LATEST names can't be read ({e}); no change column");
                None
            }
            // Carrying groups over from a run that can't be read would drop them: refuse.
            Err(e) => return Err(e),
        };
        let counts: HashMap<String, u64> = previous
            .iter()
            .flat_map(|p| &p.manifest.groups)
            .map(|g| (g.id.clone(), g.members))
            .collect();
        let selected = (!options.only.is_empty()).then_some(options.only.as_slice());
        let evaluation = self.evaluate(&validation, selected, &[], &[]).await;
        let mut evaluation = match evaluation {
            Ok(e) => e,
            Err(e) => {
                self.progress.finish();
                return Err(e);
            }
        };
        // Publishing consumes the members; the report gives their counts.
        let member_counts: Vec<u64> = evaluation.members.iter().map(|m| m.len()).collect();
        let publication = if options.dry_run {
            evaluation.check_ids(&self.id_column).map(|()| None)
        } else {
            let publish_options = PublishOptions {
                selected: &options.only,
                previous: previous.as_ref(),
                promote: options.promote,
            };
            publish::publish(self, &mut evaluation, publish_options)
                .await
                .map(Some)
        };
        self.progress.finish();
        let publication = publication?;

        let mut groups: Vec<RunGroup> = evaluation
            .compiled
            .groups
            .iter()
            .zip(member_counts)
            .filter(|(g, _)| options.only.is_empty() || options.only.contains(&g.group.id))
            .map(|(g, members)| RunGroup {
                group: g.group.id.clone(),
                members,
                previous: None,
                carried: false,
            })
            .collect();
        if let Some(p) = &publication {
            groups.extend(p.carried.iter().map(|(g, n)| RunGroup {
                group: g.clone(),
                members: *n,
                previous: None,
                carried: true,
            }));
        }
        groups.sort_by(|a, b| {
            (&a.group, a.members, a.carried).cmp(&(&b.group, b.members, b.carried))
        });
        for g in &mut groups {
            g.previous = counts.get(&g.group).copied();
        }
        Ok(RunReport {
            run_id: publication
                .as_ref()
                .map(|p| p.published.manifest.run_id.clone()),
            dry_run: options.dry_run,
            promoted: publication.as_ref().map(|p| p.published.promoted),
            not_promoted_because: publication
                .as_ref()
                .and_then(|p| p.published.not_promoted_because.clone()),
            engine: self.engine.name(),
            jobs: evaluation.scan.jobs.clone(),
            as_of: evaluation
                .as_of
                .to_rfc3339_opts(SecondsFormat::AutoSi, true),
            customers: evaluation.customers(),
            null_ids: evaluation.scan.null_ids,
            conditions: evaluation.compiled.conditions.len(),
            event_aggregates: evaluation.compiled.events.len(),
            ignored_events: evaluation.ignored_events.iter().cloned().collect(),
            groups,
            removed: publication.map(|p| p.removed).unwrap_or_default(),
            warnings: evaluation.warnings,
            lints,
        })
    }
}
