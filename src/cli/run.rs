//! `cohort run`: evaluate every group (or `--only`), publish, print a summary.

use std::collections::HashMap;
use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::output::{self, percent};
use super::Format;
use crate::config::Settings;
use crate::snapshot::writer::Promote;
use crate::{compile, evaluate, pipeline, Error, Result};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Evaluate and publish only these groups (and what they reference), comma-separated
    #[arg(long, value_delimiter = ',', value_name = "GROUPS")]
    only: Vec<String>,
    /// Evaluate without publishing
    #[arg(long)]
    dry_run: bool,
    /// Point LATEST at this run even if its --as-of is older than LATEST's (a backfill)
    #[arg(long, conflicts_with = "no_promote")]
    promote: bool,
    /// Publish the run without pointing LATEST at it
    #[arg(long)]
    no_promote: bool,
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
    if validated.groups.is_empty() {
        return Err(Error::Usage(format!(
            "no group definitions in '{}': add a <group-id>.toml file there, or pass --queries <dir>",
            settings.queries.display()
        )));
    }
    output::print_warnings(&validated.warnings);
    let groups = if args.only.is_empty() {
        validated.groups.clone()
    } else {
        compile::with_dependencies(&validated.groups, &args.only)?
    };
    // The previous run's manifest: the change column, and the groups `--only` carries over.
    let previous = match pipeline::previous_run(settings).await {
        Ok(p) => p,
        Err(e) if args.only.is_empty() || args.dry_run => {
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
    let progress = output::progress();
    let evaluation =
        pipeline::evaluate(&ctx, settings, &validated, &groups, &[], &[], &progress).await?;
    progress.finish_and_clear();
    output::print_run_warnings(&evaluation.warnings);

    let publication = if args.dry_run {
        evaluation.check_ids(&settings.id_column)?;
        None
    } else {
        let promote = match (args.promote, args.no_promote) {
            (true, _) => Promote::Always,
            (_, true) => Promote::Never,
            _ => Promote::Auto,
        };
        let options = pipeline::PublishOptions {
            selected: &args.only,
            previous: previous.as_ref(),
            promote,
        };
        Some(pipeline::publish(settings, &evaluation, options).await?)
    };

    let customers = evaluation.customers();
    let mut rows: Vec<(String, u64, bool)> = evaluation
        .compiled
        .groups
        .iter()
        .zip(&evaluation.members)
        .filter(|(g, _)| args.only.is_empty() || args.only.contains(&g.group.id))
        .map(|(g, m)| (g.group.id.clone(), m.len(), false))
        .collect();
    if let Some(p) = &publication {
        rows.extend(p.carried.iter().map(|(g, n)| (g.clone(), *n, true)));
    }
    rows.sort();
    let removed: &[String] = publication.as_ref().map_or(&[], |p| &p.removed);
    let run_id = publication.as_ref().map(|p| &p.published.manifest.run_id);
    let promoted = publication.as_ref().map(|p| p.published.promoted);
    let report = json!({
        "run_id": run_id,
        "dry_run": args.dry_run,
        "promoted": promoted,
        "not_promoted_because": publication.as_ref().and_then(|p| p.published.not_promoted_because.clone()),
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
        "groups": rows.iter().map(|(g, n, carried)| json!({
            "group": g,
            "members": n,
            "previous": counts.get(g),
            "carried": carried,
        })).collect::<Vec<_>>(),
        "removed": removed,
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
                .map(|(g, n, carried)| {
                    let change = match counts.get(g) {
                        _ if *carried => "carried over".to_string(),
                        None => "new".to_string(),
                        Some(p) => format!("{:+}", *n as i64 - *p as i64),
                    };
                    vec![g.clone(), n.to_string(), percent(*n, customers), change]
                })
                .collect();
            output::print_table(&["group", "members", "% customers", "change"], &table);
            if !removed.is_empty() {
                eprintln!(
                    "removed: {} (no definition file any more)",
                    removed.join(", ")
                );
            }
            match &publication {
                Some(p) => {
                    let run_id = &p.published.manifest.run_id;
                    eprintln!(
                        "published run {run_id} to {} ({customers} customers, {} distinct conditions)",
                        settings.publish,
                        evaluation.compiled.conditions.len()
                    );
                    if let Some(why) = &p.published.not_promoted_because {
                        eprintln!("LATEST not moved: {why}");
                    }
                }
                None => eprintln!("dry run: nothing published ({customers} customers)"),
            }
        }
    }
    Ok(())
}
