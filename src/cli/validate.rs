//! `cohort validate`: every definition problem at once (exit 2), lint warnings (exit 0).

use clap::Args;
use serde_json::json;

use cohort::definition::Problem;
use cohort::{Error, Result};

use super::config::Project;
use super::output;
use super::Format;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub async fn run(project: &Project, args: ValidateArgs) -> Result<()> {
    let result = project.pipeline()?.validate().await;
    let (groups, problems) = match &result {
        Ok(v) => (v.groups.len(), v.warnings.clone()),
        Err(Error::Definitions(problems)) => (0, problems.clone()),
        Err(_) => return result.map(|_| ()),
    };
    match args.format {
        Format::Json => output::print_json(&json!({
            "valid": result.is_ok(),
            "groups": groups,
            "errors": problems.iter().filter(|p| p.is_error()).map(Problem::to_json).collect::<Vec<_>>(),
            "warnings": problems.iter().filter(|p| !p.is_error()).map(Problem::to_json).collect::<Vec<_>>(),
        })),
        // On errors, main prints every problem (warnings too): print lints only once.
        Format::Text => {
            if result.is_ok() {
                output::print_warnings(&problems);
                outln!(
                    "ok: {groups} group(s) valid in {}",
                    project.queries().display()
                );
            }
        }
    }
    result.map(|_| ())
}
