//! `cohort check` and `cohort groups-of`: lookups in the published snapshot.

use clap::Args;
use serde_json::json;

use cohort::snapshot::Snapshot;
use cohort::Result;

use super::config::Project;
use super::output;
use super::Format;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Group id
    group: String,
    /// Customer id, as it appears in the data
    customer_id: String,
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Debug, Args)]
pub struct GroupsOfArgs {
    /// Customer id, as it appears in the data
    customer_id: String,
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub async fn check(project: &Project, args: CheckArgs) -> Result<()> {
    let snapshot = Snapshot::open_at(&project.publish()?).await?;
    let member = snapshot.contains(&args.group, &args.customer_id)?;
    match args.format {
        Format::Json => output::print_json(&json!({
            "group": args.group,
            "customer_id": args.customer_id,
            "member": member,
            "run_id": snapshot.run_id(),
        })),
        Format::Text => outln!(
            "{} is {}a member of '{}' (run {})",
            args.customer_id,
            if member { "" } else { "not " },
            args.group,
            snapshot.run_id()
        ),
    }
    Ok(())
}

pub async fn groups_of(project: &Project, args: GroupsOfArgs) -> Result<()> {
    let snapshot = Snapshot::open_at(&project.publish()?).await?;
    let groups = snapshot.groups_of(&args.customer_id);
    match args.format {
        Format::Json => output::print_json(&json!({
            "customer_id": args.customer_id,
            "groups": groups,
            "run_id": snapshot.run_id(),
        })),
        Format::Text => {
            for g in groups {
                outln!("{g}");
            }
        }
    }
    Ok(())
}
