//! `cohort run`: evaluate every group (or `--only`), publish, print a summary.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use cohort::pipeline::RunOptions;
use cohort::snapshot::writer::Promote;
use cohort::{Error, Result};

use super::config::Project;
use super::output::{self, percent};
use super::Format;

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

pub async fn run(project: &Project, args: RunArgs) -> Result<()> {
    let promote = match (args.promote, args.no_promote) {
        (true, _) => Promote::Always,
        (_, true) => Promote::Never,
        _ => Promote::Auto,
    };
    let options = RunOptions {
        only: args.only.clone(),
        dry_run: args.dry_run,
        promote,
    };
    let pipeline = project
        .pipeline()?
        .with_progress(Arc::new(output::Bar::new()));
    let report = pipeline.run(options).await?;
    output::print_warnings(&report.lints);
    output::print_run_warnings(&report.warnings);
    if let Some(path) = &args.report {
        let text = serde_json::to_vec_pretty(&report).expect("report serializes");
        std::fs::write(path, text).map_err(|e| Error::io(path.display(), e))?;
    }
    let customers = report.customers;
    match args.format {
        Format::Json => output::print_json(&report),
        Format::Text => {
            let table: Vec<Vec<String>> = report
                .groups
                .iter()
                .map(|g| {
                    let change = match g.previous {
                        _ if g.carried => "carried over".to_string(),
                        None => "new".to_string(),
                        Some(p) => format!("{:+}", g.members as i64 - p as i64),
                    };
                    vec![
                        g.group.clone(),
                        g.members.to_string(),
                        percent(g.members, customers),
                        change,
                    ]
                })
                .collect();
            output::print_table(&["group", "members", "% customers", "change"], &table);
            if !report.removed.is_empty() {
                output::note(format_args!(
                    "removed: {} (no definition file any more)",
                    report.removed.join(", ")
                ));
            }
            match &report.run_id {
                Some(run_id) => {
                    output::note(format_args!(
                        "published run {run_id} to {} ({customers} customers, {} distinct conditions)",
                        project.publish_url(),
                        report.conditions
                    ));
                    if let Some(why) = &report.not_promoted_because {
                        output::note(format_args!("LATEST not moved: {why}"));
                    }
                }
                None => output::note(format_args!(
                    "dry run: nothing published ({customers} customers)"
                )),
            }
        }
    }
    Ok(())
}
