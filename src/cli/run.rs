//! `cohort run`: evaluate every group (or `--only`), publish, print a summary.

use std::collections::HashMap;
use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::output::{self, percent};
use super::Format;
use crate::config::Settings;
use crate::snapshot::Snapshot;
use crate::{compile, evaluate, pipeline, Error, Result};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Evaluate and publish only these groups (and what they reference), comma-separated
    #[arg(long, value_delimiter = ',', value_name = "GROUPS")]
    only: Vec<String>,
    /// Evaluate without publishing
    #[arg(long)]
    dry_run: bool,
    /// Also write the run report (JSON) to this file
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub async fn run(settings: &Settings, args: RunArgs) -> Result<()> {
    let ctx = evaluate::session();
    let validated = pipeline::validate(&ctx, settings).await?;
    output::print_warnings(&validated.warnings);
    let groups = if args.only.is_empty() {
        validated.groups.clone()
    } else {
        compile::with_dependencies(&validated.groups, &args.only)?
    };
    // The previous run's counts, for the change column (absent on a first run).
    let previous: HashMap<String, u64> = match Snapshot::open(&settings.publish).await {
        Ok(s) => s
            .groups()
            .iter()
            .map(|g| (g.id.clone(), g.members))
            .collect(),
        Err(_) => HashMap::new(),
    };
    let progress = output::progress();
    let evaluation =
        pipeline::evaluate(&ctx, settings, &validated, &groups, &[], &[], &progress).await?;
    progress.finish_and_clear();
    output::print_run_warnings(&evaluation.warnings);

    let run_id = if args.dry_run {
        None
    } else {
        let manifest = pipeline::publish(settings, &evaluation, &args.only).await?;
        Some(manifest.run_id)
    };

    let customers = evaluation.customers();
    let mut rows: Vec<(String, u64)> = evaluation
        .compiled
        .groups
        .iter()
        .zip(&evaluation.members)
        .filter(|(g, _)| args.only.is_empty() || args.only.contains(&g.group.id))
        .map(|(g, m)| (g.group.id.clone(), m.len()))
        .collect();
    rows.sort();
    let report = json!({
        "run_id": run_id,
        "dry_run": args.dry_run,
        "as_of": settings.as_of.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        "customers": customers,
        "null_ids": evaluation.scan.null_ids,
        "conditions": evaluation.compiled.conditions.len(),
        "event_aggregates": evaluation.compiled.events.len(),
        "ignored_events": evaluation
            .ignored_events
            .iter()
            .map(|(table, n)| (table.clone(), json!(n)))
            .collect::<serde_json::Map<_, _>>(),
        "groups": rows.iter().map(|(g, n)| json!({
            "group": g,
            "members": n,
            "previous": previous.get(g),
        })).collect::<Vec<_>>(),
        "warnings": evaluation.warnings,
    });
    if let Some(path) = &args.report {
        let text = serde_json::to_vec_pretty(&report).expect("report serializes");
        std::fs::write(path, text).map_err(|e| Error::io(path.display(), e))?;
    }
    match args.format {
        Format::Json => output::print_json(&report),
        Format::Text => {
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|(g, n)| {
                    let change = match previous.get(g) {
                        None => "new".to_string(),
                        Some(p) => format!("{:+}", *n as i64 - *p as i64),
                    };
                    vec![g.clone(), n.to_string(), percent(*n, customers), change]
                })
                .collect();
            output::print_table(&["group", "members", "% customers", "change"], &table);
            match &run_id {
                Some(id) => eprintln!(
                    "published run {id} to {} ({customers} customers, {} distinct conditions)",
                    settings.publish,
                    evaluation.compiled.conditions.len()
                ),
                None => eprintln!("dry run: nothing published ({customers} customers)"),
            }
        }
    }
    Ok(())
}
