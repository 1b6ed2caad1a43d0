//! `cohort validate`: every definition problem at once (exit 2), lint warnings (exit 0).
//! Problems of `cohort.toml` are reported the same way, in the same JSON shape.

use std::collections::BTreeSet;

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

/// Validates the project's definitions; `project` is what loading its config gave, so
/// that the config's own problems are reported as validation results too.
pub async fn run(project: Result<Project>, args: ValidateArgs) -> Result<()> {
    let project = match project {
        Err(Error::Config { file, problems }) => {
            if args.format == Format::Json {
                print_json(0, &problems, &[]);
            }
            return Err(Error::Config { file, problems });
        }
        other => other?,
    };
    let result = project.pipeline()?.validate().await;
    let (groups, problems) = match &result {
        Ok(v) => (v.groups().len(), v.warnings().to_vec()),
        Err(Error::Definitions(problems)) => (valid_groups(&project, problems)?, problems.clone()),
        Err(_) => return result.map(|_| ()),
    };
    match args.format {
        Format::Json => {
            let errors: Vec<Problem> = problems.iter().filter(|p| p.is_error()).cloned().collect();
            let warnings: Vec<Problem> =
                problems.iter().filter(|p| !p.is_error()).cloned().collect();
            print_json(groups, &errors, &warnings);
        }
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

/// `{"valid", "groups" (the valid ones), "groups_with_errors", "errors", "warnings"}`.
fn print_json(groups: usize, errors: &[Problem], warnings: &[Problem]) {
    let with_errors: BTreeSet<&str> = errors.iter().map(|p| p.at.group.as_str()).collect();
    output::print_json(&json!({
        "valid": errors.is_empty(),
        "groups": groups,
        "groups_with_errors": with_errors.iter().filter(|g| !g.is_empty()).count(),
        "errors": errors.iter().map(Problem::to_json).collect::<Vec<_>>(),
        "warnings": warnings.iter().map(Problem::to_json).collect::<Vec<_>>(),
    }));
}

/// How many groups of the definitions folder have no error (those with one are not
/// counted as valid, the others are, even when validation as a whole failed).
fn valid_groups(project: &Project, problems: &[Problem]) -> Result<usize> {
    let with_errors: BTreeSet<&str> = problems
        .iter()
        .filter(|p| p.is_error())
        .map(|p| p.at.group.as_str())
        .collect();
    let ids: BTreeSet<String> = cohort::definition::definition_files(&project.queries())?
        .iter()
        .filter_map(|f| f.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    Ok(ids
        .iter()
        .filter(|id| !with_errors.contains(id.as_str()))
        .count())
}
