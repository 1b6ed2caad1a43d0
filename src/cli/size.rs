//! `cohort size`: member counts without publishing; `--where`, `--by`, `--overlap`.

use std::sync::Arc;

use clap::Args;
use cohort::pipeline::{SizeGroup, SizeReport, SizeRequest};
use cohort::Result;

use super::config::Project;
use super::output::{self, percent};
use super::Format;

#[derive(Debug, Args)]
pub struct SizeArgs {
    /// Groups to count
    groups: Vec<String>,
    /// An ad-hoc segment: one boolean SQL expression over the customers table
    #[arg(long = "where", value_name = "SQL")]
    where_sql: Option<String>,
    /// Break each count down by the values of this column
    #[arg(long, value_name = "COLUMN")]
    by: Option<String>,
    /// Also print the overlap matrix between the groups
    #[arg(long)]
    overlap: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub async fn run(project: &Project, args: SizeArgs) -> Result<()> {
    let request = SizeRequest {
        groups: args.groups,
        where_sql: args.where_sql,
        by: args.by,
        overlap: args.overlap,
    };
    let pipeline = project
        .pipeline()?
        .with_progress(Arc::new(output::Bar::new()));
    let report = pipeline.size(&request).await?;
    output::print_warnings(&report.lints);
    output::print_run_warnings(&report.warnings);
    match args.format {
        Format::Json => output::print_json(&report),
        Format::Text => print_text(&report, request.by.as_deref()),
    }
    Ok(())
}

fn print_text(report: &SizeReport, by: Option<&str>) {
    let customers = report.customers;
    let rows: Vec<Vec<String>> = report
        .groups
        .iter()
        .map(|g| {
            vec![
                g.group.clone(),
                g.members.to_string(),
                percent(g.members, customers),
            ]
        })
        .collect();
    output::print_table(&["group", "members", "% customers"], &rows);
    outln!("customers: {customers}");
    if let Some(column) = by {
        for SizeGroup { group, members, by } in &report.groups {
            outln!("\n{group} by {column}:");
            let rows: Vec<Vec<String>> = by
                .iter()
                .flatten()
                .map(|b| {
                    vec![
                        b.value.clone().unwrap_or_else(|| "(missing)".into()),
                        b.members.to_string(),
                        percent(b.members, *members),
                    ]
                })
                .collect();
            output::print_table(&[column, "members", "% of group"], &rows);
        }
    }
    if let Some(overlap) = &report.overlap {
        outln!("\noverlap (customers in both):");
        let mut header = vec![""];
        header.extend(overlap.groups.iter().map(String::as_str));
        let rows: Vec<Vec<String>> = overlap
            .groups
            .iter()
            .zip(&overlap.matrix)
            .map(|(g, row)| {
                std::iter::once(g.clone())
                    .chain(row.iter().map(|n| n.to_string()))
                    .collect()
            })
            .collect();
        output::print_table(&header, &rows);
    }
}
