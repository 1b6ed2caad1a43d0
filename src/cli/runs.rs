//! `cohort runs`, `cohort gc` and `cohort diff`: the published runs and how they differ.

use clap::{Args, ValueEnum};
use serde_json::json;

use cohort::snapshot::catalog::{self, GroupDiff};
use cohort::snapshot::Snapshot;
use cohort::{Error, Result};

use super::config::Project;
use super::output;
use super::Format;

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// How many of the newest complete runs to keep (the run LATEST names is always kept)
    #[arg(long, value_name = "N")]
    keep: usize,
    /// Keep runs modified more recently than this, whatever else holds (a run being
    /// published right now, or about to be named by LATEST), e.g. 1h, 30m, 0s
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    min_age: std::time::Duration,
    /// Only report what would be deleted
    #[arg(long)]
    dry_run: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older run [default: the run before the one LATEST names]
    run_a: Option<String>,
    /// The newer run [default: the one LATEST names]
    run_b: Option<String>,
    /// Only this group
    #[arg(long)]
    group: Option<String>,
    /// Print the ids that entered, exited or stayed (needs --group)
    #[arg(long, value_enum, requires = "group")]
    list: Option<Change>,
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Which ids `diff --list` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Change {
    /// In the newer run only.
    Entered,
    /// In the older run only.
    Exited,
    /// In both.
    Unchanged,
}

pub async fn runs(project: &Project, args: RunsArgs) -> Result<()> {
    let publish = project.publish()?;
    let runs = catalog::list_runs(&publish).await?;
    match args.format {
        Format::Json => output::print_json(&json!({ "runs": runs })),
        Format::Text => {
            let rows: Vec<Vec<String>> = runs
                .iter()
                .map(|r| {
                    vec![
                        format!("{}{}", r.run_id, if r.latest { " (LATEST)" } else { "" }),
                        r.created_at.clone().unwrap_or_else(|| {
                            if r.unreadable.is_some() {
                                "unreadable"
                            } else {
                                "incomplete"
                            }
                            .into()
                        }),
                        r.as_of.clone().unwrap_or_default(),
                        r.groups.to_string(),
                        r.customers.to_string(),
                        r.bytes.to_string(),
                    ]
                })
                .collect();
            output::print_table(
                &["run", "created_at", "as_of", "groups", "customers", "bytes"],
                &rows,
            );
        }
    }
    Ok(())
}

pub async fn gc(project: &Project, args: GcArgs) -> Result<()> {
    let publish = project.publish()?;
    let min_age = chrono::Duration::from_std(args.min_age).map_err(|_| Error::Setting {
        setting: "--min-age".into(),
        value: format!("{:?}", args.min_age),
        reason: "it is too long".into(),
    })?;
    let policy = catalog::GcPolicy {
        keep: args.keep,
        min_age,
        dry_run: args.dry_run,
    };
    let report = catalog::gc(&publish, policy).await?;
    for (run, reason) in &report.unreadable {
        output::warn(format_args!(
            "kept run {run}: its manifest can't be read ({reason})"
        ));
    }
    match args.format {
        Format::Json => output::print_json(&json!({
            "kept": report.kept,
            "deleted": report.deleted,
            "unreadable": report.unreadable.iter().map(|(run, reason)| json!({"run_id": run, "reason": reason})).collect::<Vec<_>>(),
            "dry_run": args.dry_run,
        })),
        Format::Text => {
            let verb = if args.dry_run {
                "would delete"
            } else {
                "deleted"
            };
            for run in &report.deleted {
                outln!("{verb} {run}");
            }
            outln!(
                "{} run(s) kept, {} {verb}",
                report.kept.len(),
                report.deleted.len()
            );
        }
    }
    Ok(())
}

pub async fn diff(project: &Project, args: DiffArgs) -> Result<()> {
    let publish = project.publish()?;
    let (a, b) = match (args.run_a, args.run_b) {
        (Some(a), Some(b)) => (a, b),
        (None, None) => catalog::default_pair(&publish).await?,
        _ => {
            return Err(Error::Request(
                "give both runs to compare, or neither (the two latest)",
            ))
        }
    };
    let known = catalog::list_runs(&publish).await?;
    for run in [&a, &b] {
        if !known.iter().any(|r| &r.run_id == run) {
            return Err(Error::UnknownRun {
                run: run.clone(),
                publish: publish.display.clone(),
            });
        }
    }
    let old = Snapshot::open_run_at(&publish, &a).await?;
    let new = Snapshot::open_run_at(&publish, &b).await?;
    let mut diffs = catalog::diff(&old, &new);
    if let Some(group) = &args.group {
        diffs.retain(|d| &d.group == group);
        if diffs.is_empty() {
            return Err(Error::UnknownGroup {
                group: group.clone(),
                hint: format!(" in runs '{a}' and '{b}'"),
            });
        }
    }
    if let Some(change) = args.list {
        let d = &diffs[0];
        let ids = listed_ids(d, change, &new);
        match args.format {
            Format::Json => output::print_json(&json!({
                "group": d.group,
                "change": format!("{change:?}").to_lowercase(),
                "customer_ids": ids,
            })),
            Format::Text => {
                for id in ids {
                    outln!("{id}");
                }
            }
        }
        return Ok(());
    }
    match args.format {
        Format::Json => output::print_json(&json!({
            "from": a,
            "to": b,
            "groups": diffs.iter().map(|d| json!({
                "group": d.group,
                "entered": d.entered.len(),
                "exited": d.exited_count(),
                "unchanged": d.unchanged,
                "status": status(d),
            })).collect::<Vec<_>>(),
        })),
        Format::Text => {
            outln!("from {a}\nto   {b}");
            let rows: Vec<Vec<String>> = diffs
                .iter()
                .map(|d| {
                    vec![
                        d.group.clone(),
                        format!("+{}", d.entered.len()),
                        format!("-{}", d.exited_count()),
                        d.unchanged.to_string(),
                        status(d).into(),
                    ]
                })
                .collect();
            output::print_table(&["group", "entered", "exited", "unchanged", ""], &rows);
        }
    }
    Ok(())
}

fn status(d: &GroupDiff) -> &'static str {
    match (d.in_old, d.in_new) {
        (false, _) => "new group",
        (_, false) => "removed group",
        _ => "",
    }
}

fn listed_ids(d: &GroupDiff, change: Change, new: &Snapshot) -> Vec<String> {
    match change {
        Change::Entered => d.entered.iter().map(|b| new.external_id(b)).collect(),
        Change::Exited => d
            .exited
            .iter()
            .map(|b| new.external_id(b))
            .chain(d.exited_gone.iter().cloned())
            .collect(),
        Change::Unchanged => {
            let current = new.bitmap(&d.group).unwrap_or_default();
            (current - &d.entered)
                .iter()
                .map(|b| new.external_id(b))
                .collect()
        }
    }
}
