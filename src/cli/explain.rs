//! `cohort explain`: a group's compiled expression (SQL), its DataFusion plan, and pruning.

use std::ops::Not;

use clap::Args;
use datafusion::arrow::array::AsArray;
use datafusion::logical_expr::{lit, Expr};

use crate::compile::{Compiled, Term};
use crate::config::Settings;
use crate::definition::Match;
use crate::evaluate::col_exact;
use crate::{compile, evaluate, pipeline, Result};

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Group id
    group: String,
}

pub async fn run(settings: &Settings, args: ExplainArgs) -> Result<()> {
    let ctx = evaluate::session();
    let validated = pipeline::validate(&ctx, settings).await?;
    let groups = compile::with_dependencies(&validated.groups, std::slice::from_ref(&args.group))?;
    let env = compile::Environment {
        schema: &validated.schema,
        id_column: &settings.id_column,
        events: &validated.events,
        as_of: settings.as_of,
    };
    let (compiled, _) = compile::compile(&groups, &env);
    let index = compiled.group_index(&args.group).expect("selected");
    let group = &compiled.groups[index].group;
    let expr = dynamic_expr(&compiled, index);
    let sql = datafusion::sql::unparser::expr_to_sql(&expr)?.to_string();

    println!("group '{}' ({})", group.id, group.file);
    if let Some(name) = &group.name {
        println!("name: {name}");
    }
    println!("\ncompiled expression (dynamic part, group references inlined):\n  {sql}");
    if !group.statics.is_empty() {
        println!("\nstatic overrides are applied after the scan with bitmap algebra.");
    }
    println!("\ndistinct conditions: {}", compiled.conditions.len());

    let mut customers = pipeline::open_customers(&ctx, settings).await?;
    if !compiled.events.is_empty() {
        println!("event aggregates (one query per event table, joined on the customer id):");
        for (i, a) in compiled.events.iter().enumerate() {
            let filter = match &a.filter {
                Some(f) => datafusion::sql::unparser::expr_to_sql(f)?.to_string(),
                None => "every event".into(),
            };
            let column = a.column.as_deref().unwrap_or("*");
            println!(
                "  {} = {}({column}) of '{}' where {filter}",
                compile::events::alias(i),
                a.aggregate,
                a.table
            );
        }
        customers = compile::events::attach(
            &ctx,
            customers,
            &settings.id_column,
            &validated.events,
            &compiled.events,
            settings.as_of,
        )
        .await?
        .0;
    }
    let plan = customers
        .filter(expr)?
        .select(vec![col_exact(&settings.id_column)])?
        .explain(false, true)?
        .collect()
        .await?;
    println!("\nplan (executed; metrics show files and row groups pruned):");
    for batch in plan {
        let text = batch.column(1).as_string::<i32>();
        for line in text.iter().flatten() {
            for l in line.lines() {
                println!("  {l}");
            }
        }
    }
    Ok(())
}

/// The dynamic part of a group (`OR include AND NOT OR exclude`) as one expression, with
/// referenced groups inlined. Every condition is `IS TRUE`-wrapped, so the result is never
/// NULL and NOT is exact.
pub fn dynamic_expr(compiled: &Compiled, index: usize) -> Expr {
    let g = &compiled.groups[index];
    let formula = |f: &crate::compile::Formula| -> Expr {
        let terms = f.terms.iter().map(|t| match *t {
            Term::Condition(i) => compiled.conditions[i].clone(),
            Term::Group { index, negated } => {
                let inner = dynamic_expr(compiled, index);
                if negated {
                    inner.not()
                } else {
                    inner
                }
            }
        });
        match f.mode {
            Match::All => terms.reduce(Expr::and).unwrap_or(lit(true)),
            Match::Any => terms.reduce(Expr::or).unwrap_or(lit(false)),
        }
    };
    let include = g
        .include
        .iter()
        .map(formula)
        .reduce(Expr::or)
        .unwrap_or(lit(false));
    match g.exclude.iter().map(formula).reduce(Expr::or) {
        Some(exclude) => include.and(exclude.not()),
        None => include,
    }
}
