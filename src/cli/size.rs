//! `cohort size`: member counts without publishing; `--where`, `--by`, `--overlap`.

use std::collections::BTreeMap;

use clap::Args;
use datafusion::arrow::array::{Array, AsArray};
use roaring::RoaringBitmap;
use serde_json::json;

use super::output::{self, percent};
use super::Format;
use crate::config::Settings;
use crate::evaluate::col_exact;
use crate::{compile, evaluate, pipeline, Error, Result};

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

pub async fn run(settings: &Settings, args: SizeArgs) -> Result<()> {
    if args.groups.is_empty() && args.where_sql.is_none() {
        return Err(Error::Usage(
            "name at least one group, or give --where \"<sql>\"".into(),
        ));
    }
    let ctx = evaluate::session();
    let validated = pipeline::validate(&ctx, settings).await?;
    output::print_warnings(&validated.warnings);
    let groups = compile::with_dependencies(&validated.groups, &args.groups)?;
    let adhoc = match &args.where_sql {
        Some(sql) => vec![compile::compile_where(
            sql,
            &validated.schema,
            settings.as_of,
        )?],
        None => Vec::new(),
    };
    let extra = match &args.by {
        Some(column) => {
            if validated.schema.field_with_name(column).is_err() {
                let names = validated.schema.fields().iter().map(|f| f.name().as_str());
                let hint = crate::definition::did_you_mean(column, names)
                    .map(|h| format!("; {h}"))
                    .unwrap_or_default();
                return Err(Error::Usage(format!(
                    "unknown --by column '{column}'{hint}"
                )));
            }
            vec![col_exact(column)]
        }
        None => Vec::new(),
    };
    if args.groups.is_empty() && args.by.is_none() && !args.overlap {
        // Only a count is asked for: no bitmaps, no ids.
        let condition = adhoc.into_iter().next().expect("--where was given");
        let (customers, members) = pipeline::count_where(&ctx, settings, condition).await?;
        print_counts(args.format, customers, &[("where".into(), members)]);
        return Ok(());
    }
    let progress = output::progress();
    let evaluation = pipeline::evaluate(
        &ctx, settings, &validated, &groups, &adhoc, &extra, &progress,
    )
    .await?;
    progress.finish_and_clear();
    evaluation.check_ids(&settings.id_column)?;
    output::print_run_warnings(&evaluation.warnings);

    let mut named: Vec<(String, &RoaringBitmap)> = Vec::new();
    for id in &args.groups {
        let i = evaluation
            .compiled
            .group_index(id)
            .expect("selected groups were evaluated");
        named.push((id.clone(), &evaluation.members[i]));
    }
    if !adhoc.is_empty() {
        named.push(("where".into(), &evaluation.adhoc[0]));
    }
    let customers = evaluation.customers();
    let breakdown = |members: &RoaringBitmap| -> Vec<(Option<String>, u64)> {
        let values = evaluation.scan.extra[0].as_string::<i32>();
        let mut counts: BTreeMap<Option<String>, u64> = BTreeMap::new();
        for p in members {
            let v = values
                .is_valid(p as usize)
                .then(|| values.value(p as usize).to_string());
            *counts.entry(v).or_default() += 1;
        }
        let mut counts: Vec<_> = counts.into_iter().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        counts
    };
    let counts: Vec<(String, u64)> = named.iter().map(|(g, m)| (g.clone(), m.len())).collect();
    if args.by.is_none() && !args.overlap {
        print_counts(args.format, customers, &counts);
        return Ok(());
    }
    let overlap: Vec<Vec<u64>> = if args.overlap {
        named
            .iter()
            .map(|(_, a)| named.iter().map(|(_, b)| a.intersection_len(b)).collect())
            .collect()
    } else {
        Vec::new()
    };
    match args.format {
        Format::Json => {
            let groups: Vec<_> = named
                .iter()
                .map(|(g, m)| {
                    let mut entry = json!({"group": g, "members": m.len()});
                    if args.by.is_some() {
                        entry["by"] = breakdown(m)
                            .into_iter()
                            .map(|(v, n)| json!({"value": v, "members": n}))
                            .collect();
                    }
                    entry
                })
                .collect();
            let mut out = json!({"customers": customers, "groups": groups});
            if args.overlap {
                out["overlap"] = json!({
                    "groups": named.iter().map(|(g, _)| g).collect::<Vec<_>>(),
                    "matrix": overlap,
                });
            }
            output::print_json(&out);
        }
        Format::Text => {
            print_counts(Format::Text, customers, &counts);
            if let Some(column) = &args.by {
                for (g, m) in &named {
                    println!("\n{g} by {column}:");
                    let rows: Vec<Vec<String>> = breakdown(m)
                        .into_iter()
                        .map(|(v, n)| {
                            vec![
                                v.unwrap_or_else(|| "(missing)".into()),
                                n.to_string(),
                                percent(n, m.len()),
                            ]
                        })
                        .collect();
                    output::print_table(&[column.as_str(), "members", "% of group"], &rows);
                }
            }
            if args.overlap {
                println!("\noverlap (customers in both):");
                let mut header = vec![""];
                header.extend(named.iter().map(|(g, _)| g.as_str()));
                let rows: Vec<Vec<String>> = named
                    .iter()
                    .zip(&overlap)
                    .map(|((g, _), row)| {
                        std::iter::once(g.clone())
                            .chain(row.iter().map(|n| n.to_string()))
                            .collect()
                    })
                    .collect();
                output::print_table(&header, &rows);
            }
        }
    }
    Ok(())
}

/// Member counts alone (no `--by`, no `--overlap`), in either format.
fn print_counts(format: Format, customers: u64, counts: &[(String, u64)]) {
    match format {
        Format::Json => {
            let groups: Vec<_> = counts
                .iter()
                .map(|(g, n)| json!({"group": g, "members": n}))
                .collect();
            output::print_json(&json!({"customers": customers, "groups": groups}));
        }
        Format::Text => {
            let rows: Vec<Vec<String>> = counts
                .iter()
                .map(|(g, n)| vec![g.clone(), n.to_string(), percent(*n, customers)])
                .collect();
            output::print_table(&["group", "members", "% customers"], &rows);
            println!("customers: {customers}");
        }
    }
}
