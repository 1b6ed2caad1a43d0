//! The operators that compare a value with constants (`equals`, `not_equals`, `gt`,
//! `gte`, `lt`, `lte`, `before`, `after`, `between`, `in`, `not_in`), written once for
//! every kind of column that compares: plain scalars, decimals, dates and timestamps. A
//! column kind says how it compares with one constant ([`Compares::compare`]); what each
//! operator is in terms of that is here.

use datafusion::logical_expr::{lit, Expr};
use std::ops::Not;

use super::{tree, Cmp};
use crate::definition::{Op, Operand};

/// How a column compares with its constants (of type `V`, already converted).
pub(super) trait Compares<V> {
    /// `column <cmp> v`: NULL for a missing value.
    fn compare(&self, cmp: Cmp, v: V) -> Expr;

    /// The value is present.
    fn present(&self) -> Expr;

    /// Present and not `v`.
    fn differs(&self, v: V) -> Expr {
        // NOT(x = v) is NULL for a missing x, which the caller's IS TRUE makes false.
        self.present().and(self.compare(Cmp::Eq, v).not())
    }

    /// One of `values` (false for none).
    fn any_of(&self, values: Vec<V>) -> Expr {
        let equal: Vec<Expr> = values
            .into_iter()
            .map(|v| self.compare(Cmp::Eq, v))
            .collect();
        tree::any(equal).unwrap_or(lit(false))
    }

    /// Present and none of `values`.
    fn none_of(&self, values: Vec<V>) -> Expr {
        let mut terms = vec![self.present()];
        terms.extend(values.into_iter().map(|v| self.compare(Cmp::Eq, v).not()));
        tree::all(terms).unwrap_or(lit(true))
    }
}

/// `op` over `column` as comparisons with the operand's constants; `None` when `op` is
/// not a comparison or its operand is not of its shape.
pub(super) fn comparison<V>(
    column: &impl Compares<V>,
    op: Op,
    operand: Operand<V>,
) -> Option<Expr> {
    Some(match (op, operand) {
        (Op::Equals, Operand::One(v)) => column.compare(Cmp::Eq, v),
        (Op::NotEquals, Operand::One(v)) => column.differs(v),
        (Op::Gt | Op::After, Operand::One(v)) => column.compare(Cmp::Gt, v),
        (Op::Gte, Operand::One(v)) => column.compare(Cmp::Gte, v),
        (Op::Lt | Op::Before, Operand::One(v)) => column.compare(Cmp::Lt, v),
        (Op::Lte, Operand::One(v)) => column.compare(Cmp::Lte, v),
        (Op::Between, Operand::Range(lo, hi)) => column
            .compare(Cmp::Gte, lo)
            .and(column.compare(Cmp::Lte, hi)),
        (Op::In, Operand::List(values)) => column.any_of(values),
        (Op::NotIn, Operand::List(values)) => column.none_of(values),
        _ => return None,
    })
}

/// A column (or `lower(column)`) compared with literals of its own type by DataFusion.
pub(super) struct Plain(pub(super) Expr);

impl Compares<Expr> for Plain {
    fn compare(&self, cmp: Cmp, v: Expr) -> Expr {
        let c = self.0.clone();
        match cmp {
            Cmp::Lt => c.lt(v),
            Cmp::Lte => c.lt_eq(v),
            Cmp::Gt => c.gt(v),
            Cmp::Gte => c.gt_eq(v),
            Cmp::Eq => c.eq(v),
        }
    }

    fn present(&self) -> Expr {
        self.0.clone().is_not_null()
    }

    fn differs(&self, v: Expr) -> Expr {
        self.0.clone().not_eq(v)
    }

    fn any_of(&self, values: Vec<Expr>) -> Expr {
        if values.is_empty() {
            return lit(false);
        }
        self.0.clone().in_list(values, false)
    }

    fn none_of(&self, values: Vec<Expr>) -> Expr {
        // `x NOT IN ()` is true for every present value, and still false for a missing one.
        if values.is_empty() {
            return self.present();
        }
        self.0.clone().in_list(values, true)
    }
}
