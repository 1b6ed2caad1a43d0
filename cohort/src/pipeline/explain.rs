//! `explain`: a group's compiled expression as SQL, the event aggregates it joins, and the
//! executed DataFusion plan with its pruning metrics.

use std::ops::Not;

use datafusion::arrow::array::AsArray;
use datafusion::logical_expr::{lit, Expr};
use serde::Serialize;

use super::Pipeline;
use crate::compile::col_exact;
use crate::compile::{events, Compiled, Formula, Term};
use crate::definition::Match;
use crate::evaluate;
use crate::Result;

/// How a group is evaluated.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The group id.
    pub group: String,
    /// Its definition file.
    pub file: String,
    /// Its display name.
    pub name: Option<String>,
    /// The dynamic part (`OR include AND NOT OR exclude`, references inlined) as SQL.
    pub sql: String,
    /// Whether static overrides apply after the scan.
    pub has_statics: bool,
    /// Distinct conditions evaluated for it (and what it references).
    pub conditions: usize,
    /// The event aggregates joined onto the customers table, one line each.
    pub event_aggregates: Vec<String>,
    /// The executed plan, one line each, with the metrics that show pruning.
    pub plan: Vec<String>,
}

impl Pipeline {
    /// Explains one group.
    pub async fn explain(&self, group: &str) -> Result<Explanation> {
        let validation = self.validate().await?;
        let compiled = validation.compiled.select(&[group.to_string()])?;
        let index = compiled
            .group_index(group)
            .ok_or_else(|| crate::Error::UnknownGroup {
                group: group.to_string(),
                hint: String::new(),
            })?;
        let definition = &compiled.groups[index].group;
        let expr = dynamic_expr(&compiled, index);
        let sql = datafusion::sql::unparser::expr_to_sql(&expr)?.to_string();
        let mut event_aggregates = Vec::new();
        for (i, a) in compiled.events.iter().enumerate() {
            let filter = match &a.filter {
                Some(f) => datafusion::sql::unparser::expr_to_sql(f)?.to_string(),
                None => "every event".into(),
            };
            let column = a.column.as_deref().unwrap_or("*");
            event_aggregates.push(format!(
                "{} = {}({column}) of '{}' where {filter}",
                events::alias(i),
                a.aggregate,
                a.table
            ));
        }
        let mut customers = validation.customers().clone();
        if !compiled.events.is_empty() {
            customers = evaluate::events::attach(
                customers,
                &self.id_column,
                &validation.events,
                &compiled.events,
                validation.as_of,
            )
            .await?
            .0;
        }
        let batches = customers
            .filter(expr)?
            .select(vec![col_exact(&self.id_column)])?
            .explain(false, true)?
            .collect()
            .await?;
        let mut plan = Vec::new();
        for batch in batches {
            let text = batch.column(1).as_string::<i32>();
            for line in text.iter().flatten() {
                plan.extend(line.lines().map(str::to_string));
            }
        }
        Ok(Explanation {
            group: definition.id.clone(),
            file: definition.file.clone(),
            name: definition.name.clone(),
            sql,
            has_statics: !definition.statics.is_empty(),
            conditions: compiled.conditions.len(),
            event_aggregates,
            plan,
        })
    }
}

/// The dynamic part of a group (`OR include AND NOT OR exclude`) as one expression, with
/// referenced groups inlined. Every condition is `IS TRUE`-wrapped, so the result is never
/// NULL and NOT is exact.
pub(super) fn dynamic_expr(compiled: &Compiled, index: usize) -> Expr {
    let g = &compiled.groups[index];
    let formula = |f: &Formula| -> Expr {
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
