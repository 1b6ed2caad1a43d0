//! `cohort export`: a group's member ids from the published snapshot, for activation.

use clap::Args;
use cohort::snapshot::export::{self, ExportFormat};
use cohort::snapshot::Snapshot;
use cohort::{Error, Result};

use super::config::Project;
use super::output;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Group id
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    group: Option<String>,
    /// Every group, in long format: one row per (member, group), columns <id column> and group
    #[arg(long)]
    all: bool,
    /// Output file: .csv, .jsonl (JSON lines) or .parquet (path or object-store URL)
    #[arg(long, value_name = "URL")]
    out: String,
}

pub async fn run(project: &Project, args: ExportArgs) -> Result<()> {
    let format = ExportFormat::of_name(&args.out).ok_or_else(|| Error::Setting {
        setting: "--out".into(),
        value: args.out.clone(),
        reason: "cannot tell its format: use a .csv, .jsonl or .parquet name".into(),
    })?;
    let snapshot = Snapshot::open_at(&project.publish()?).await?;
    let Some(group) = &args.group else {
        let (bytes, rows) = export::encode_all(&snapshot, format)?;
        project.stores().location(&args.out)?.write(bytes).await?;
        output::note(format_args!(
            "exported {rows} membership(s) of {} group(s) to {}",
            snapshot.groups().len(),
            args.out
        ));
        return Ok(());
    };
    let ids = export::member_ids(&snapshot, group)?;
    let bytes = export::encode(&snapshot, &ids, format)?;
    project.stores().location(&args.out)?.write(bytes).await?;
    output::note(format_args!(
        "exported {} id(s) of '{group}' to {}",
        ids.len(),
        args.out
    ));
    Ok(())
}
