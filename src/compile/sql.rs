//! The `sql` escape hatch: one boolean expression over the customers table, nothing more.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::TreeNode;
use datafusion::common::DFSchema;
use datafusion::logical_expr::{Expr, ExprSchemable};
use datafusion::prelude::SessionContext;

use super::attribute::ConditionError;

/// Parses and checks `text`: expressions only (no subqueries, aggregates or window
/// functions), over existing columns, of boolean type.
pub fn compile(text: &str, schema: &DFSchema) -> Result<Expr, ConditionError> {
    let first_line = |e: datafusion::error::DataFusionError| {
        let msg = e.to_string();
        msg.lines().next().unwrap_or_default().to_string()
    };
    // A fresh context: table functions and UDFs registered elsewhere are not reachable.
    let expr = SessionContext::new()
        .parse_sql_expr(text, schema)
        .map_err(|e| (format!("invalid sql '{text}': {}", first_line(e)), None))?;
    let forbidden = expr
        .exists(|e| {
            Ok(matches!(
                e,
                Expr::ScalarSubquery(_)
                    | Expr::InSubquery(_)
                    | Expr::Exists(_)
                    | Expr::SetComparison(_)
                    | Expr::AggregateFunction(_)
                    | Expr::WindowFunction(_)
                    | Expr::OuterReferenceColumn(..)
                    | Expr::Placeholder(_)
                    | Expr::ScalarVariable(..)
                    | Expr::GroupingSet(_)
                    | Expr::Unnest(_)
            ))
        })
        .unwrap_or(true);
    if forbidden {
        return Err((
            format!("sql '{text}' is not a plain expression"),
            Some(
                "subqueries, aggregates, window functions and placeholders are not allowed".into(),
            ),
        ));
    }
    match expr.get_type(schema) {
        Ok(DataType::Boolean) => Ok(expr),
        Ok(other) => Err((
            format!("sql '{text}' is of type {other}, not boolean"),
            None,
        )),
        Err(e) => Err((format!("invalid sql '{text}': {}", first_line(e)), None)),
    }
}
