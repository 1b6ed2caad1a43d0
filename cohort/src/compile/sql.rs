//! The `sql` escape hatch: one boolean expression over the customers table, nothing more.
//!
//! Everything that could make the answer depend on the day, the run or the machine is
//! settled here, before any data is read (SPEC §1, §2.3): `now()`, `current_date()` and
//! `current_time()` become literals of `as_of`; volatile functions (`random()`,
//! `uuid()`, ...) are refused; functions that build values of a size given per row are
//! bounded; an expression that fails on its own literals (`1/0`, `CAST('abc' AS INT)`,
//! a bad regex) is evaluated once on a row of nulls, so it fails at validation, not
//! mid-scan. Long AND / OR chains are balanced while still SQL, so thousands of terms
//! never make a deep tree.

use std::sync::Arc;

use chrono::{DateTime, Timelike, Utc};
use datafusion::arrow::array::new_null_array;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::DFSchema;
use datafusion::logical_expr::{lit, Expr, ExprSchemable, Operator, Volatility};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr as SqlExpr};

use super::tree;
use super::ConditionError;

/// The most elements or characters a function may build per row from a count argument.
pub(super) const MAX_BUILT_PER_ROW: i128 = 1024;

/// Functions whose output size is one of their arguments: (name, index of the count).
/// `range` / `generate_series` are checked on all of their arguments.
const SIZED_BY_ARGUMENT: &[(&str, usize)] = &[
    ("repeat", 1),
    ("lpad", 1),
    ("rpad", 1),
    ("array_repeat", 1),
    ("array_resize", 1),
];

/// Parses and checks `text`: expressions only (no subqueries, aggregates or window
/// functions), over existing columns, of boolean type, deterministic, and evaluable.
pub(super) fn compile(
    text: &str,
    schema: &DFSchema,
    as_of: DateTime<Utc>,
) -> Result<Expr, ConditionError> {
    let invalid = |e: datafusion::error::DataFusionError| {
        (format!("invalid sql '{text}': {}", first_line(&e)), None)
    };
    // A fresh context: table functions and UDFs registered elsewhere are not reachable.
    let ctx = SessionContext::new();
    let expr = parse_balanced(&ctx, text, schema).map_err(invalid)?;
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
    let expr = pin_clock(expr, schema, as_of).map_err(invalid)?;
    check_functions(&expr, text)?;
    match expr.get_type(schema) {
        Ok(DataType::Boolean) => {}
        Ok(other) => {
            return Err((
                format!("sql '{text}' is of type {other}, not boolean"),
                None,
            ))
        }
        Err(e) => return Err(invalid(e)),
    }
    evaluate_on_nulls(&ctx, &expr, schema).map_err(|e| {
        (
            format!("sql '{text}' cannot be evaluated: {}", first_line(&e)),
            Some("the expression fails on its own literals (division by zero, a bad cast or regex, ...)".into()),
        )
    })?;
    Ok(expr)
}

fn first_line(e: &datafusion::error::DataFusionError) -> String {
    let msg = e.to_string();
    msg.lines().next().unwrap_or_default().to_string()
}

/// Parses like `SessionContext::parse_sql_expr`, but balances AND / OR chains of the SQL
/// syntax tree before it becomes an `Expr` (the parser builds them left-deep).
fn parse_balanced(
    ctx: &SessionContext,
    text: &str,
    schema: &DFSchema,
) -> datafusion::error::Result<Expr> {
    let state = ctx.state();
    let dialect = state.config().options().sql_parser.dialect;
    let mut parsed = state.sql_to_expr_with_alias(text, &dialect)?;
    balance(&mut parsed.expr);
    state.create_logical_expr_from_sql_expr(parsed, schema)
}

/// Rebuilds every chain of one associative boolean operator as a balanced tree, and
/// descends through the wrappers a condition is commonly written with.
fn balance(expr: &mut SqlExpr) {
    match expr {
        SqlExpr::BinaryOp { op, .. } if matches!(op, BinaryOperator::And | BinaryOperator::Or) => {
            let op = op.clone();
            let owned = std::mem::replace(
                expr,
                SqlExpr::value(datafusion::sql::sqlparser::ast::Value::Null),
            );
            let mut terms = flatten(owned, &op);
            terms.iter_mut().for_each(balance);
            *expr = tree::balanced(terms, |left, right| SqlExpr::BinaryOp {
                left: Box::new(left),
                op: op.clone(),
                right: Box::new(right),
            })
            .expect("a chain has two terms at least");
        }
        SqlExpr::BinaryOp { left, right, .. } => {
            balance(left);
            balance(right);
        }
        SqlExpr::Nested(inner)
        | SqlExpr::UnaryOp { expr: inner, .. }
        | SqlExpr::IsTrue(inner)
        | SqlExpr::IsFalse(inner)
        | SqlExpr::IsNotTrue(inner)
        | SqlExpr::IsNotFalse(inner)
        | SqlExpr::IsNull(inner)
        | SqlExpr::IsNotNull(inner)
        | SqlExpr::IsUnknown(inner)
        | SqlExpr::IsNotUnknown(inner)
        | SqlExpr::Cast { expr: inner, .. } => balance(inner),
        _ => {}
    }
}

/// The operands of a chain of `op`, in order, taken apart without recursion (so a
/// left-deep chain of thousands is never walked, nor dropped, recursively).
fn flatten(expr: SqlExpr, op: &BinaryOperator) -> Vec<SqlExpr> {
    let mut terms = Vec::new();
    let mut pending = vec![expr];
    while let Some(e) = pending.pop() {
        match e {
            SqlExpr::BinaryOp {
                left,
                op: this,
                right,
            } if this == *op => {
                pending.push(*right);
                pending.push(*left);
            }
            other => terms.push(other),
        }
    }
    terms
}

/// `now()` (`current_timestamp`), `current_date()` and `current_time()` become literals of
/// `as_of` (UTC), of the type the function would have returned.
fn pin_clock(
    expr: Expr,
    schema: &DFSchema,
    as_of: DateTime<Utc>,
) -> datafusion::error::Result<Expr> {
    expr.transform_up(|e| {
        let Expr::ScalarFunction(f) = &e else {
            return Ok(Transformed::no(e));
        };
        let value = match f.func.name() {
            "now" => match e.get_type(schema)? {
                DataType::Timestamp(_, tz) => {
                    ScalarValue::TimestampNanosecond(as_of.timestamp_nanos_opt(), tz)
                }
                _ => return Ok(Transformed::no(e)),
            },
            "current_date" => ScalarValue::Date32(Some(
                (as_of.date_naive() - DateTime::UNIX_EPOCH.date_naive()).num_days() as i32,
            )),
            "current_time" => {
                let t = as_of.time();
                ScalarValue::Time64Nanosecond(Some(
                    t.num_seconds_from_midnight() as i64 * 1_000_000_000 + t.nanosecond() as i64,
                ))
            }
            _ => return Ok(Transformed::no(e)),
        };
        Ok(Transformed::yes(lit(value)))
    })
    .map(|t| t.data)
}

/// Refuses volatile functions, and functions that build a value per row of a size not
/// fixed, or over [`MAX_BUILT_PER_ROW`], by literals.
fn check_functions(expr: &Expr, text: &str) -> Result<(), ConditionError> {
    let mut problem = None;
    expr.apply(|e| {
        let Expr::ScalarFunction(f) = e else {
            return Ok(TreeNodeRecursion::Continue);
        };
        let name = f.func.name();
        if f.func.signature().volatility == Volatility::Volatile {
            problem = Some((
                format!("sql '{text}' calls '{name}()', which is not deterministic"),
                Some(
                    "a run must give the same members for the same data and as_of; \
                     volatile functions are not allowed"
                        .into(),
                ),
            ));
        } else if let Err(why) = built_size(name, &f.args) {
            problem = Some((
                format!("sql '{text}' calls '{name}()' {why}"),
                Some(format!(
                    "give it integer literals building at most {MAX_BUILT_PER_ROW} elements or characters"
                )),
            ));
        }
        Ok(match problem {
            Some(_) => TreeNodeRecursion::Stop,
            None => TreeNodeRecursion::Continue,
        })
    })
    .expect("the closure never fails");
    problem.map_or(Ok(()), Err)
}

/// Why a function that builds values by count is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Unbounded {
    #[error("with an argument that is not an integer literal")]
    NonLiteralArgument,
    #[error("with a count that is not an integer literal")]
    NonLiteralCount,
    #[error("building {0} elements or characters per row (at most {MAX_BUILT_PER_ROW})")]
    TooLarge(i128),
}

/// Checks the size a function builds per row, if it is one that builds by count.
fn built_size(name: &str, args: &[Expr]) -> Result<(), Unbounded> {
    let integer = |e: &Expr| match e {
        Expr::Literal(v, _) => match v.cast_to(&DataType::Int64) {
            Ok(ScalarValue::Int64(Some(i))) if !v.data_type().is_floating() => Some(i as i128),
            _ => None,
        },
        _ => None,
    };
    let size = match name {
        "range" | "generate_series" => {
            let values: Option<Vec<i128>> = args.iter().map(integer).collect();
            let Some(values) = values else {
                return Err(Unbounded::NonLiteralArgument);
            };
            let inclusive = i128::from(name == "generate_series");
            match values.as_slice() {
                [stop] => stop + inclusive,
                [start, stop] => stop - start + inclusive,
                [start, stop, step] if *step != 0 => (stop - start) / step + inclusive,
                _ => 0,
            }
        }
        _ => match SIZED_BY_ARGUMENT.iter().find(|(n, _)| *n == name) {
            Some((_, index)) => match args.get(*index).map(integer) {
                Some(Some(count)) => count,
                _ => return Err(Unbounded::NonLiteralCount),
            },
            None => return Ok(()),
        },
    };
    if size > MAX_BUILT_PER_ROW {
        return Err(Unbounded::TooLarge(size));
    }
    Ok(())
}

/// Evaluates `expr` once on a one-row batch of the customers schema, every column null:
/// what fails there (a literal division by zero, a bad cast or regex literal) would fail
/// the scan. AND, OR and CASE skip operands that cannot change the answer, and on nulls
/// they often can't, so each of their operands, and each part of the expression that
/// reads no column, is evaluated on its own as well.
fn evaluate_on_nulls(
    ctx: &SessionContext,
    expr: &Expr,
    schema: &DFSchema,
) -> datafusion::error::Result<()> {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    let columns = fields
        .iter()
        .map(|f| new_null_array(f.data_type(), 1))
        .collect();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    for part in std::iter::once(expr).chain(evaluated_apart(expr)) {
        ctx.create_physical_expr(part.clone(), schema)?
            .evaluate(&batch)?;
    }
    Ok(())
}

/// The operands of AND / OR / NOT / CASE, down to what is none of those, and the
/// largest parts that read no column (other than literals).
fn evaluated_apart(expr: &Expr) -> Vec<&Expr> {
    let mut parts = Vec::new();
    let mut pending = vec![expr];
    while let Some(e) = pending.pop() {
        match e {
            Expr::Literal(..) => {}
            _ if !e.any_column_refs() => parts.push(e),
            Expr::BinaryExpr(b) if matches!(b.op, Operator::And | Operator::Or) => {
                pending.push(&b.left);
                pending.push(&b.right);
            }
            Expr::Not(inner) => pending.push(inner),
            Expr::Case(case) => {
                pending.extend(case.expr.as_deref());
                for (when, then) in &case.when_then_expr {
                    pending.push(when);
                    pending.push(then);
                }
                pending.extend(case.else_expr.as_deref());
            }
            other => {
                parts.push(other);
                // Column-free parts inside it (`x > 1 / 0`) may be skipped too.
                other
                    .apply_children(|child| {
                        child.apply(|c| {
                            if matches!(c, Expr::Literal(..)) {
                                return Ok(TreeNodeRecursion::Jump);
                            }
                            if !c.any_column_refs() {
                                parts.push(c);
                                return Ok(TreeNodeRecursion::Jump);
                            }
                            Ok(TreeNodeRecursion::Continue)
                        })
                    })
                    .expect("the closure never fails");
            }
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> DFSchema {
        let fields = vec![
            Field::new("age", DataType::Int64, true),
            Field::new("email", DataType::Utf8, true),
            Field::new("seen", DataType::Date32, false),
        ];
        DFSchema::try_from(Schema::new(fields)).unwrap()
    }

    fn as_of() -> DateTime<Utc> {
        "2026-11-22T06:30:00Z".parse().unwrap()
    }

    /// Whether a literal is the one wanted, given as_of in nanoseconds.
    type LiteralCheck = fn(&ScalarValue, i64) -> bool;

    #[test]
    fn clock_functions_mean_as_of() {
        let nanos = as_of().timestamp_nanos_opt().unwrap();
        // (sql, the literal it must hold instead of the clock)
        let cases: [(&str, LiteralCheck); 4] = [
            ("seen = current_date()", |v, _| {
                *v == ScalarValue::Date32(Some(20_779))
            }),
            ("seen = today()", |v, _| {
                *v == ScalarValue::Date32(Some(20_779))
            }),
            (
                "now() > to_timestamp('2026-01-01')",
                |v, n| matches!(v, ScalarValue::TimestampNanosecond(Some(t), _) if *t == n),
            ),
            ("current_time() > '06:00:00'", |v, _| {
                *v == ScalarValue::Time64Nanosecond(Some(23_400_000_000_000))
            }),
        ];
        for (sql, wanted) in cases {
            let expr = compile(sql, &schema(), as_of()).unwrap();
            let found = expr
                .exists(|e| Ok(matches!(e, Expr::Literal(v, _) if wanted(v, nanos))))
                .unwrap();
            let clock = expr
                .exists(|e| Ok(matches!(e, Expr::ScalarFunction(_))))
                .unwrap();
            assert!(found, "{sql}: {expr}");
            assert!(!clock || sql.contains("to_timestamp"), "{sql}: {expr}");
        }
    }

    #[test]
    fn problems_are_caught_at_validation() {
        // (sql, words the problem must contain)
        let cases = [
            (
                "uuid() = email",
                "calls 'uuid()', which is not deterministic",
            ),
            ("age > 1 / 0", "cannot be evaluated"),
            ("age IS NULL OR 1 / 0 = 1", "cannot be evaluated"),
            (
                "age IS NOT NULL AND age > CAST('x' AS INT)",
                "cannot be evaluated",
            ),
            ("age IS NULL OR email ~ '('", "cannot be evaluated"),
            (
                "CASE WHEN age > 1 THEN regexp_like(email, '[') END",
                "cannot be evaluated",
            ),
            ("age = CAST('abc' AS INT)", "cannot be evaluated"),
            ("email ~ '(unclosed'", "cannot be evaluated"),
            ("regexp_like(email, '[')", "cannot be evaluated"),
            (
                "repeat(email, age) = 'x'",
                "'repeat()' with a count that is not an integer literal",
            ),
            (
                "lpad(email, 100000000) = 'x'",
                "building 100000000 elements",
            ),
            (
                "array_length(range(1, 1000000000)) > 1",
                "'range()' building 999999999",
            ),
            (
                "cardinality(generate_series(1, age)) > 1",
                "not an integer literal",
            ),
            (
                "array_length(array_repeat(1, 5000)) > 1",
                "'array_repeat()' building 5000",
            ),
            ("age + 1", "not boolean"),
        ];
        for (sql, wanted) in cases {
            let (message, _) = compile(sql, &schema(), as_of()).unwrap_err();
            assert!(
                message.contains(wanted),
                "{sql}: '{message}' lacks '{wanted}'"
            );
            assert!(
                message.contains(sql),
                "{sql}: '{message}' does not quote it"
            );
        }
        for fine in [
            "repeat(email, 3) = 'x'",
            "cardinality(range(1, 10)) = 9",
            "age / 0 > 1",
        ] {
            compile(fine, &schema(), as_of()).unwrap_or_else(|e| panic!("{fine}: {e:?}"));
        }
    }

    #[test]
    fn long_or_chains_come_out_balanced() {
        let sql = (0..3000)
            .map(|i| format!("age = {i}"))
            .collect::<Vec<_>>()
            .join(" OR ");
        let expr = compile(&sql, &schema(), as_of()).unwrap();
        assert!(
            tree::boolean_depth(&expr) <= 14,
            "{}",
            tree::boolean_depth(&expr)
        );
    }
}
