//! `cohort export`: a group's member ids from the published snapshot, for activation.

use clap::Args;
use cohort::snapshot::export::{self, ExportFormat};
use cohort::snapshot::Snapshot;
use cohort::{Error, Result};

use super::config::Project;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Group id
    group: String,
    /// Output file: .csv, .jsonl (JSON lines) or .parquet (path or object-store URL)
    #[arg(long, value_name = "URL")]
    out: String,
}

pub async fn run(project: &Project, args: ExportArgs) -> Result<()> {
    let format = ExportFormat::of_name(&args.out).ok_or_else(|| {
        Error::Usage(format!(
            "cannot tell the format of '{}': use a .csv, .jsonl or .parquet name",
            args.out
        ))
    })?;
    let snapshot = Snapshot::open_at(&project.publish()?).await?;
    let ids = export::member_ids(&snapshot, &args.group)?;
    let bytes = export::encode(&snapshot, &ids, format)?;
    project.stores().location(&args.out)?.write(bytes).await?;
    eprintln!(
        "exported {} id(s) of '{}' to {}",
        ids.len(),
        args.group,
        args.out
    );
    Ok(())
}
