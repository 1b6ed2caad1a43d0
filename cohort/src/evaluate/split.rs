//! Conditions that no evaluator of the scan takes whole, split at their `AND` / `OR`
//! into leaves: each leaf goes where a condition of its own would (per value, per range,
//! the substring searches, or projected alone), and the condition is the `&` / `|` of its
//! leaves on 64-bit words.
//!
//! Why: an SQL condition such as `country = 'Germany' AND (age >= 53 OR loyalty_tier =
//! 'silver')` reads three columns, so it was projected whole, and DataFusion computes an
//! `AND` whose left side holds on few rows of a batch by filtering the whole batch (every
//! column of the projection's input) down to those rows for its right side. Split, its
//! leaves cost what the per-value evaluators charge (about nothing on a dictionary or a
//! span of integers), and nothing is filtered.
//!
//! Why this is exact: a condition is `X IS TRUE`. In SQL's three-valued logic `A AND B`
//! is true exactly where both are true, and `A OR B` where either is, so `(A AND B) IS
//! TRUE` is `A IS TRUE` and `B IS TRUE`, and likewise for `OR`. `NOT` is not split through
//! (`NOT A` is true where `A` is false, not wherever `A` is not true).
//!
//! What it changes: DataFusion may skip the right side of an `AND` on rows where the
//! left does not hold; split leaves are evaluated on every row. So a condition is split
//! only when none of its leaves can fail on a row's values: no division or modulo but by
//! a non-zero constant, no cast that can fail, and functions from a short list only.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, Operator};

use super::batch::{ones, words_of, BatchHolds, Holds};
use crate::compile::Interner;

/// Functions that give a result (perhaps null) for every value of their arguments' types.
const INFALLIBLE_FUNCTIONS: &[&str] = &[
    "strpos",
    "instr",
    "character_length",
    "char_length",
    "length",
    "octet_length",
    "bit_length",
    "lower",
    "upper",
    "starts_with",
    "ends_with",
    "contains",
    "date_part",
    "datepart",
    "btrim",
    "ltrim",
    "rtrim",
    "trim",
    "reverse",
    "concat",
    "coalesce",
    "nullif",
    "isnan",
    "iszero",
];

/// A condition over its leaves.
#[derive(Debug, PartialEq)]
enum Node {
    /// The condition (of the scan's, or a leaf added for the split) at this index.
    Leaf(usize),
    And(Vec<Node>),
    Or(Vec<Node>),
}

/// One condition computed from its leaves.
#[derive(Debug)]
pub(crate) struct Split {
    /// The condition's index among the scan's conditions.
    mask: usize,
    tree: Node,
}

impl Split {
    /// Splits condition `mask` of `conditions` (`X IS TRUE`, `X` an `AND` or `OR`) into
    /// leaves `L IS TRUE`, added to `conditions`; `None` when it is not such a condition
    /// or a leaf could fail on some value.
    pub(crate) fn new(mask: usize, conditions: &mut Interner, schema: &DFSchema) -> Option<Split> {
        let Expr::IsTrue(inner) = &conditions.exprs[mask] else {
            return None;
        };
        let inner = inner.as_ref().clone();
        if !matches!(
            &inner,
            Expr::BinaryExpr(BinaryExpr {
                op: Operator::And | Operator::Or,
                ..
            })
        ) {
            return None;
        }
        let mut leaves = Vec::new();
        collect_leaves(&inner, &mut leaves);
        if !leaves.iter().all(|leaf| infallible(leaf, schema)) {
            return None;
        }
        let tree = tree(&inner, conditions);
        Some(Split { mask, tree })
    }

    /// The condition's index among the scan's conditions.
    pub(crate) fn mask(&self) -> usize {
        self.mask
    }

    /// Sets the condition in `holds` from its leaves, already set there.
    pub(crate) fn apply(&self, holds: &mut BatchHolds) {
        let words = self.tree.words(holds);
        holds.set_words(self.mask, words);
    }
}

/// The leaves of `expr` under its `AND`s and `OR`s.
fn collect_leaves<'e>(expr: &'e Expr, leaves: &mut Vec<&'e Expr>) {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And | Operator::Or,
            right,
        }) => {
            collect_leaves(left, leaves);
            collect_leaves(right, leaves);
        }
        leaf => leaves.push(leaf),
    }
}

/// `expr` as a tree of leaves `L IS TRUE` interned in `conditions`, chains of one
/// operator flattened.
fn tree(expr: &Expr, conditions: &mut Interner) -> Node {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if matches!(op, Operator::And | Operator::Or) =>
        {
            let mut parts = Vec::new();
            for side in [left, right] {
                match (tree(side, conditions), op) {
                    (Node::And(inner), Operator::And) | (Node::Or(inner), Operator::Or) => {
                        parts.extend(inner)
                    }
                    (node, _) => parts.push(node),
                }
            }
            match op {
                Operator::And => Node::And(parts),
                _ => Node::Or(parts),
            }
        }
        leaf => Node::Leaf(conditions.intern(leaf.clone().is_true())),
    }
}

impl Node {
    /// The words of the batch's rows where the node holds (bits past the rows clear).
    fn words(&self, holds: &BatchHolds) -> Vec<u64> {
        match self {
            Node::Leaf(c) => match &holds.conditions[*c] {
                Holds::Nowhere => vec![0; holds.rows.div_ceil(64)],
                Holds::Everywhere => ones(holds.rows),
                Holds::Rows(bits) => words_of(bits),
            },
            Node::And(parts) => {
                let mut acc = ones(holds.rows);
                for part in parts {
                    if acc.iter().all(|w| *w == 0) {
                        break;
                    }
                    for (a, w) in acc.iter_mut().zip(part.words(holds)) {
                        *a &= w;
                    }
                }
                acc
            }
            Node::Or(parts) => {
                let mut acc = vec![0; holds.rows.div_ceil(64)];
                for part in parts {
                    for (a, w) in acc.iter_mut().zip(part.words(holds)) {
                        *a |= w;
                    }
                }
                acc
            }
        }
    }
}

/// Whether `expr` gives a value (perhaps null) on every row, whatever the row's values:
/// only then may it be evaluated on rows an `AND` would have skipped.
fn infallible(expr: &Expr, schema: &DFSchema) -> bool {
    let mut ok = true;
    let _ = expr.apply(|e| {
        ok &= match e {
            Expr::Column(_)
            | Expr::Literal(..)
            | Expr::Alias(_)
            | Expr::Not(_)
            | Expr::IsNull(_)
            | Expr::IsNotNull(_)
            | Expr::IsTrue(_)
            | Expr::IsFalse(_)
            | Expr::IsNotTrue(_)
            | Expr::IsNotFalse(_)
            | Expr::IsUnknown(_)
            | Expr::IsNotUnknown(_)
            | Expr::Between(_)
            | Expr::InList(_)
            | Expr::Like(_)
            | Expr::TryCast(_) => true,
            Expr::BinaryExpr(BinaryExpr { op, right, .. }) => match op {
                Operator::Divide | Operator::Modulo => non_zero_number(right),
                op => matches!(
                    op,
                    Operator::Eq
                        | Operator::NotEq
                        | Operator::Lt
                        | Operator::LtEq
                        | Operator::Gt
                        | Operator::GtEq
                        | Operator::And
                        | Operator::Or
                        | Operator::IsDistinctFrom
                        | Operator::IsNotDistinctFrom
                        | Operator::Plus
                        | Operator::Minus
                        | Operator::Multiply
                        | Operator::StringConcat
                ),
            },
            Expr::Cast(cast) => cast
                .expr
                .get_type(schema)
                .is_ok_and(|from| widening(&from, cast.field.data_type())),
            Expr::ScalarFunction(f) => match f.name() {
                // A negative length is an error: only constant, non-negative positions.
                "substr" | "substring" => f
                    .args
                    .get(1..)
                    .is_some_and(|positions| positions.iter().all(non_negative_integer)),
                name => INFALLIBLE_FUNCTIONS.contains(&name),
            },
            _ => false,
        };
        Ok(if ok {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    ok
}

/// A cast that cannot fail: to a float from a number, to a wider or equal signed
/// integer from an integer, between string types.
fn widening(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let string = |t: &DataType| matches!(t, Utf8 | Utf8View | LargeUtf8);
    let rank = |t: &DataType| match t {
        Int8 | UInt8 => Some(1),
        Int16 | UInt16 => Some(2),
        Int32 | UInt32 => Some(4),
        Int64 | UInt64 => Some(8),
        _ => None,
    };
    match to {
        Float64 => from.is_numeric(),
        _ if string(to) => string(from),
        Int16 | Int32 | Int64 => match (rank(from), rank(to)) {
            (Some(f), Some(t)) => f < t || (f == t && from.is_signed_integer()),
            _ => false,
        },
        _ => from == to,
    }
}

fn non_zero_number(expr: &Expr) -> bool {
    match expr {
        Expr::Literal(value, _) => {
            !value.is_null()
                && value.data_type().is_numeric()
                && !value
                    .eq(&ScalarValue::new_zero(&value.data_type()).unwrap_or(ScalarValue::Null))
        }
        _ => false,
    }
}

fn non_negative_integer(expr: &Expr) -> bool {
    match expr {
        Expr::Literal(value, _) => match value {
            ScalarValue::Int64(Some(v)) => *v >= 0,
            ScalarValue::Int32(Some(v)) => *v >= 0,
            ScalarValue::UInt64(Some(_)) | ScalarValue::UInt32(Some(_)) => true,
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::functions::expr_fn::{strpos, substr};
    use datafusion::prelude::{col, lit};

    use super::*;

    fn schema() -> DFSchema {
        DFSchema::try_from(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("b", DataType::Boolean, true),
        ]))
        .unwrap()
    }

    #[test]
    fn and_or_trees_are_split_into_interned_leaves() {
        let schema = schema();
        let n_big = col("n").gt(lit(10i64));
        let conditions = vec![
            n_big.clone().is_true(),
            n_big
                .clone()
                .and(col("s").eq(lit("a")).or(col("b")))
                .and(col("n").lt(lit(100i64)))
                .is_true(),
        ];
        let mut all = Interner::new(&conditions);
        assert!(
            Split::new(0, &mut all, &schema).is_none(),
            "a leaf stays whole"
        );
        let split = Split::new(1, &mut all, &schema).expect("split");
        // The first leaf is condition 0 itself; the others are added once each.
        assert_eq!(
            split.tree,
            Node::And(vec![
                Node::Leaf(0),
                Node::Or(vec![Node::Leaf(2), Node::Leaf(3)]),
                Node::Leaf(4)
            ])
        );
        assert_eq!(all.exprs[3], col("b").is_true());
        assert_eq!(all.exprs.len(), 5);
    }

    #[test]
    fn leaves_that_could_fail_keep_the_condition_whole() {
        let schema = schema();
        let b = || col("b");
        for (condition, splits) in [
            (b().and((col("n") / lit(2i64)).gt(lit(1i64))), true),
            (b().and((col("n") % lit(3i64)).eq(lit(1i64))), true),
            (b().and((lit(10i64) / col("n")).gt(lit(1i64))), false),
            (b().and((col("n") % lit(0i64)).eq(lit(1i64))), false),
            (b().or(strpos(col("s"), lit("x")).gt(lit(0i64))), true),
            (b().and(substr(col("s"), lit(1i64)).eq(lit("a"))), true),
            (
                b().and(datafusion::logical_expr::cast(col("s"), DataType::Int64).gt(lit(1i64))),
                false,
            ),
            (
                b().and(datafusion::logical_expr::cast(col("n"), DataType::Float64).gt(lit(1.5))),
                true,
            ),
            (!b().and(col("n").gt(lit(1i64))), false),
        ] {
            let mut all = Interner::new(&[condition.clone().is_true()]);
            assert_eq!(
                Split::new(0, &mut all, &schema).is_some(),
                splits,
                "{condition}"
            );
        }
    }
}
