//! `cohort explain`: a group's compiled expression (SQL), its DataFusion plan, and pruning.

use clap::Args;
use cohort::Result;

use super::config::Project;
use super::output;
use super::Format;

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Group id
    group: String,
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub async fn run(project: &Project, args: ExplainArgs) -> Result<()> {
    let explanation = project.pipeline()?.explain(&args.group).await?;
    if args.format == Format::Json {
        output::print_json(&explanation);
        return Ok(());
    }
    outln!("group '{}' ({})", explanation.group, explanation.file);
    if let Some(name) = &explanation.name {
        outln!("name: {name}");
    }
    outln!(
        "\ncompiled expression (dynamic part, group references inlined):\n  {}",
        explanation.sql
    );
    if explanation.has_statics {
        outln!("\nstatic overrides are applied after the scan with bitmap algebra.");
    }
    outln!("\ndistinct conditions: {}", explanation.conditions);
    if !explanation.event_aggregates.is_empty() {
        outln!("event aggregates (one query per event table, joined on the customer id):");
        for line in &explanation.event_aggregates {
            outln!("  {line}");
        }
    }
    outln!("\nplan (executed; metrics show files and row groups pruned):");
    for line in &explanation.plan {
        outln!("  {line}");
    }
    Ok(())
}
