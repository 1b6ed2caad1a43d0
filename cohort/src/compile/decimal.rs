//! Exact comparisons of decimal columns with number literals.
//!
//! DataFusion compares a `Decimal128` column with a float literal in `Float64`, so
//! `sum = 0.3` on a decimal sum of 0.1 and 0.2 would hinge on binary rounding. Here the
//! literal is read as the decimal it is written as (`0.3` is 3/10, not the nearest
//! double) and the comparison is rewritten into one on whole units of the column's
//! scale, with a literal of the column's own type: `x > 0.155` on a column of scale 2 is
//! `x > 0.15`, exactly.

use datafusion::arrow::datatypes::{i256, DataType};
use datafusion::logical_expr::{lit, Expr};
use datafusion::scalar::ScalarValue;

use super::compare::{comparison, Compares};
use super::Cmp;
use super::ConditionError;
use crate::definition::{Literal, Op, Operand};

/// A literal as an exact decimal: `mantissa / 10^scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Exact {
    /// The digits, saturated at i128's range (far beyond any column's).
    pub mantissa: i128,
    /// Digits after the point.
    pub scale: u32,
}

impl Exact {
    /// The decimal a literal is written as; floats by their shortest round-trip form.
    pub(super) fn of(value: &Literal) -> Option<Exact> {
        match value {
            Literal::Int(i) => Some(Exact {
                mantissa: *i as i128,
                scale: 0,
            }),
            Literal::Float(x) if x.is_finite() => Some(Exact::parse(&format!("{x}"))),
            _ => None,
        }
    }

    /// Parses `-?digits(.digits)?` (Rust's `Display` of a finite float never uses an
    /// exponent), saturating the mantissa.
    fn parse(text: &str) -> Exact {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let mut mantissa: i128 = 0;
        for b in whole.bytes().chain(fraction.bytes()) {
            let digit = (b - b'0') as i128;
            mantissa = mantissa.saturating_mul(10).saturating_add(digit);
        }
        Exact {
            mantissa: if negative { -mantissa } else { mantissa },
            scale: fraction.len() as u32,
        }
    }

    /// The value in whole units of `10^-scale`: (floor, ceil), saturated.
    fn units(self, scale: i8) -> (i128, i128) {
        let shift = scale as i64 - self.scale as i64;
        if shift >= 0 {
            let v = 10i128
                .checked_pow(shift as u32)
                .and_then(|p| self.mantissa.checked_mul(p))
                .unwrap_or(if self.mantissa < 0 {
                    i128::MIN
                } else {
                    i128::MAX
                });
            return (v, v);
        }
        match 10i128.checked_pow((-shift) as u32) {
            Some(d) => (self.mantissa.div_euclid(d), -(-self.mantissa).div_euclid(d)),
            // |mantissa| < 10^39 < d: the value lies strictly between -1 and 1 units.
            None => (
                if self.mantissa < 0 { -1 } else { 0 },
                if self.mantissa > 0 { 1 } else { 0 },
            ),
        }
    }
}

/// A decimal column: stored values are whole units of `10^-scale`, at most `max` in
/// magnitude.
pub(super) struct DecimalColumn {
    column: Expr,
    data_type: DataType,
    precision: u8,
    scale: i8,
    max: i128,
}

impl DecimalColumn {
    /// The column, if `data_type` is a decimal this module handles.
    pub(super) fn of(column: Expr, data_type: &DataType) -> Option<DecimalColumn> {
        let (precision, scale) = match data_type {
            DataType::Decimal128(p, s) => (*p, *s),
            DataType::Decimal256(p, s) => (*p, *s),
            _ => return None,
        };
        let max = 10i128
            .checked_pow(precision as u32)
            .map_or(i128::MAX, |p| p - 1);
        Some(DecimalColumn {
            column,
            data_type: data_type.clone(),
            precision,
            scale,
            max,
        })
    }

    fn literal(&self, units: i128) -> Expr {
        lit(match &self.data_type {
            DataType::Decimal256(p, s) => {
                ScalarValue::Decimal256(Some(i256::from_i128(units)), *p, *s)
            }
            // `of` admits only the two decimal types.
            _ => ScalarValue::Decimal128(Some(units), self.precision, self.scale),
        })
    }

    fn present(&self) -> Expr {
        self.column.clone().is_not_null()
    }

    /// `column <cmp> value`, exactly. A bound outside the column's range makes the
    /// comparison constant (still false for a missing value).
    fn compare(&self, cmp: Cmp, value: Exact) -> Expr {
        let (floor, ceil) = value.units(self.scale);
        let (min, max) = (-self.max, self.max);
        let c = self.column.clone();
        match cmp {
            Cmp::Lt if ceil > max => self.present(),
            Cmp::Lt if ceil <= min => lit(false),
            Cmp::Lt => c.lt(self.literal(ceil)),
            Cmp::Lte if floor >= max => self.present(),
            Cmp::Lte if floor < min => lit(false),
            Cmp::Lte => c.lt_eq(self.literal(floor)),
            Cmp::Gt if floor >= max => lit(false),
            Cmp::Gt if floor < min => self.present(),
            Cmp::Gt => c.gt(self.literal(floor)),
            Cmp::Gte if ceil > max => lit(false),
            Cmp::Gte if ceil <= min => self.present(),
            Cmp::Gte => c.gt_eq(self.literal(ceil)),
            // No stored value equals a number between two units, or beyond the range.
            Cmp::Eq if floor != ceil || floor > max || floor < min => lit(false),
            Cmp::Eq => c.eq(self.literal(floor)),
        }
    }
}

impl Compares<Exact> for DecimalColumn {
    fn compare(&self, cmp: Cmp, value: Exact) -> Expr {
        DecimalColumn::compare(self, cmp, value)
    }

    fn present(&self) -> Expr {
        DecimalColumn::present(self)
    }
}

/// Compiles `op` with `operand` over a decimal column.
pub(super) fn compile(
    column: &DecimalColumn,
    attribute: &str,
    op: Op,
    operand: &Operand,
    wrong_type: impl Fn(&Literal) -> ConditionError,
) -> Result<Expr, ConditionError> {
    let exact = operand.try_map(|v| match v {
        Literal::Float(x) if !x.is_finite() => Err((
            format!("value {v} cannot be compared with '{attribute}', a decimal"),
            Some("decimals hold finite numbers only".into()),
        )),
        _ => Exact::of(v).ok_or_else(|| wrong_type(v)),
    })?;
    comparison(column, op, exact).ok_or_else(|| super::shape_mismatch(op, attribute))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_the_decimals_they_are_written_as() {
        // (literal, mantissa, scale)
        let cases = [
            (Literal::Float(0.3), 3, 1),
            (Literal::Float(0.15), 15, 2),
            (Literal::Float(-2.5), -25, 1),
            (Literal::Float(1e-7), 1, 7),
            (Literal::Int(42), 42, 0),
            (Literal::Float(1e300), i128::MAX, 0),
        ];
        for (literal, mantissa, scale) in cases {
            assert_eq!(
                Exact::of(&literal),
                Some(Exact { mantissa, scale }),
                "{literal}"
            );
        }
        assert_eq!(Exact::of(&Literal::Float(f64::NAN)), None);
    }

    #[test]
    fn units_round_outward_at_the_column_scale() {
        // (literal, column scale, floor, ceil)
        let cases = [
            (Literal::Float(0.155), 2, 15, 16),
            (Literal::Float(-0.155), 2, -16, -15),
            (
                Literal::Float(0.15),
                14,
                15_000_000_000_000,
                15_000_000_000_000,
            ),
            (Literal::Int(3), 0, 3, 3),
            (Literal::Int(-3), -1, -1, 0),
            (Literal::Float(1e-300), 2, 0, 1),
        ];
        for (literal, scale, floor, ceil) in cases {
            let exact = Exact::of(&literal).unwrap();
            assert_eq!(
                exact.units(scale),
                (floor, ceil),
                "{literal} at scale {scale}"
            );
        }
    }

    #[test]
    fn decimal_columns_compare_exactly_in_their_own_type() {
        let column = || {
            DecimalColumn::of(
                Expr::Column(datafusion::prelude::Column::new_unqualified("x")),
                &DataType::Decimal128(4, 2),
            )
            .unwrap()
        };
        // (op, values, compiled)
        let cases: &[(Op, Literal, &str)] = &[
            (Op::Gt, Literal::Float(0.155), "x > Decimal128(0.15,4,2)"),
            (Op::Gte, Literal::Float(0.155), "x >= Decimal128(0.16,4,2)"),
            (Op::Lt, Literal::Float(0.3), "x < Decimal128(0.30,4,2)"),
            (Op::Equals, Literal::Float(0.3), "x = Decimal128(0.30,4,2)"),
            (Op::Equals, Literal::Float(0.155), "Boolean(false)"),
            (Op::Lte, Literal::Int(100), "x IS NOT NULL"),
            (Op::Gt, Literal::Int(-100), "x IS NOT NULL"),
            (Op::Gt, Literal::Int(100), "Boolean(false)"),
        ];
        for (op, value, wanted) in cases {
            let operand = Operand::One(value.clone());
            let expr = compile(&column(), "x", *op, &operand, |_| unreachable!()).unwrap();
            assert_eq!(expr.to_string(), *wanted, "{op} {value:?}");
        }
        let (message, _) = compile(
            &column(),
            "x",
            Op::Gt,
            &Operand::One(Literal::Float(f64::NAN)),
            |_| unreachable!(),
        )
        .unwrap_err();
        assert!(message.contains("cannot be compared with 'x'"), "{message}");
    }
}
