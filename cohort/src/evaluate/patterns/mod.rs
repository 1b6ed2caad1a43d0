//! Substring conditions on a string column of mostly distinct values (emails, names):
//! every `contains` literal of the column found in one Aho–Corasick pass over each value
//! ([`search`]), and every `starts_with` / `ends_with` literal compared with each value's
//! first or last 16 bytes at once ([`affixes`]; longer ones in one anchored walk from
//! each end of it), instead of one search per condition.
//!
//! A condition qualifies when it is a tree of `AND`, `OR` and `NOT` over those three
//! functions, each of the column itself or of `lower(column)`, with a string literal. That
//! is what the compiler makes of `contains`, `not_contains`, `starts_with` and `ends_with`
//! with one or several values, with or without `ignore_case`; `strpos(…) > 0`, which SQL
//! conditions write for `contains`, is the same test.
//!
//! Why this is exact:
//! - `contains(s, p)`, `starts_with(s, p)` and `ends_with(s, p)` are byte comparisons:
//!   `p` occurs in `s`, at 0, or ending at `s`'s length. An overlapping search reports
//!   every occurrence of every `contains` pattern; a pattern of `n` ≤ 16 bytes is a
//!   `starts_with` (`ends_with`) of `s` when `s` has `n` bytes or more and its first
//!   (last) `n` equal the pattern's; an anchored walk from the start of `s` reports every
//!   longer `starts_with` pattern equal to the bytes walked, and one from the end over
//!   the reversed patterns every longer `ends_with` pattern;
//! - `lower(s)` is `str::to_lowercase`. For an ASCII value it changes ASCII letters only,
//!   so searching `s` ignoring ASCII case finds what searching `lower(s)` finds, at the
//!   same offsets, provided the pattern has no upper-case ASCII letter (a pattern that has
//!   one can never occur in `lower(s)`: such a condition is left to DataFusion). A value
//!   that is not ASCII is lowered first, and searched the same way;
//! - an empty pattern occurs in every value;
//! - a batch is searched as one text, its values separated by NUL bytes; a pattern with a
//!   NUL is left to DataFusion, so no occurrence spans two values;
//! - on a missing value every leaf is null, and so is any `AND` / `OR` / `NOT` of them:
//!   the condition does not hold.

mod affixes;
mod search;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

use self::affixes::Affixes;
use self::search::{searches, Search};
use super::batch::{ones, BatchHolds};
use crate::{Error, Result};

/// A column takes this path with at least this many substring conditions on it; one alone
/// is as fast through DataFusion's own search.
const MIN_CONDITIONS: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Contains,
    StartsWith,
    EndsWith,
}

/// A condition over the leaves (one substring test each).
#[derive(Debug)]
enum Tree {
    Leaf(usize),
    Not(Box<Tree>),
    And(Box<Tree>, Box<Tree>),
    Or(Box<Tree>, Box<Tree>),
}

impl Tree {
    /// Word `w` of the rows where the tree holds, `leaf_rows` holding each leaf's rows
    /// (`words` words per leaf). Bitwise is exact on rows with a value, where every leaf
    /// is true or false; rows without one are cleared afterwards.
    fn word(&self, leaf_rows: &[u64], words: usize, w: usize) -> u64 {
        match self {
            Tree::Leaf(leaf) => leaf_rows[leaf * words + w],
            Tree::Not(inner) => !inner.word(leaf_rows, words, w),
            Tree::And(a, b) => a.word(leaf_rows, words, w) & b.word(leaf_rows, words, w),
            Tree::Or(a, b) => a.word(leaf_rows, words, w) | b.word(leaf_rows, words, w),
        }
    }
}

/// The leaves being collected for one column: each distinct (kind, folded, pattern) once.
#[derive(Debug, Default)]
struct Leaves {
    leaves: Vec<(Kind, bool, String)>,
}

impl Leaves {
    fn add(&mut self, kind: Kind, folded: bool, pattern: &str) -> usize {
        match self
            .leaves
            .iter()
            .position(|(k, f, p)| *k == kind && *f == folded && p == pattern)
        {
            Some(i) => i,
            None => {
                self.leaves.push((kind, folded, pattern.to_string()));
                self.leaves.len() - 1
            }
        }
    }

    /// `condition` as a tree over substring tests of `column`, if it is one.
    fn parse(&mut self, condition: &Expr, column: &Column) -> Option<Tree> {
        match condition {
            Expr::Not(inner) => Some(Tree::Not(Box::new(self.parse(inner, column)?))),
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                // `strpos(s, p) > 0` is `contains(s, p)` (both null on a null value).
                if let (Expr::ScalarFunction(function), Operator::Gt) = (uncast(left), op) {
                    if matches!(function.name(), "strpos" | "instr") && is_zero(right) {
                        return self.leaf(Kind::Contains, &function.args, column);
                    }
                }
                let (a, b) = (self.parse(left, column)?, self.parse(right, column)?);
                match op {
                    Operator::And => Some(Tree::And(Box::new(a), Box::new(b))),
                    Operator::Or => Some(Tree::Or(Box::new(a), Box::new(b))),
                    _ => None,
                }
            }
            Expr::ScalarFunction(function) => {
                let kind = match function.name() {
                    "contains" => Kind::Contains,
                    "starts_with" => Kind::StartsWith,
                    "ends_with" => Kind::EndsWith,
                    _ => return None,
                };
                self.leaf(kind, &function.args, column)
            }
            _ => None,
        }
    }

    /// The leaf of a substring test of `kind` with arguments `args` (the column or its
    /// `lower`, then a string literal), if it is one.
    fn leaf(&mut self, kind: Kind, args: &[Expr], column: &Column) -> Option<Tree> {
        let [subject, Expr::Literal(pattern, _)] = args else {
            return None;
        };
        let pattern = match pattern {
            ScalarValue::Utf8(Some(p))
            | ScalarValue::Utf8View(Some(p))
            | ScalarValue::LargeUtf8(Some(p)) => p,
            _ => return None,
        };
        let folded = match subject {
            Expr::Column(c) if c == column => false,
            Expr::ScalarFunction(lower) if lower.name() == "lower" => match lower.args.as_slice() {
                [Expr::Column(c)] if c == column => true,
                _ => return None,
            },
            _ => return None,
        };
        // Never in a lowered value: left to DataFusion (see the module's note).
        if folded && pattern.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        // NUL separates values in the searched text.
        if pattern.contains('\0') {
            return None;
        }
        Some(Tree::Leaf(self.add(kind, folded, pattern)))
    }
}

/// `expr` without the casts around it.
fn uncast(expr: &Expr) -> &Expr {
    match expr {
        Expr::Cast(cast) => uncast(&cast.expr),
        other => other,
    }
}

/// Whether `expr` is the integer 0.
fn is_zero(expr: &Expr) -> bool {
    match uncast(expr) {
        Expr::Literal(value, _) => {
            value.data_type().is_integer()
                && ScalarValue::new_zero(&value.data_type()).is_ok_and(|zero| *value == zero)
        }
        _ => false,
    }
}

/// Whether `condition` (as the compiler gives it, `(…) IS TRUE`) is a tree of substring
/// tests of `column`: what [`PatternConditions`] takes.
pub(crate) fn is_substring_tree(condition: &Expr, column: &Column) -> bool {
    Leaves::default().parse(top(condition), column).is_some()
}

/// A condition without its top `IS TRUE`: at the top, the same rows as the tree's
/// `holds` (inside a tree it would change what null gives).
fn top(condition: &Expr) -> &Expr {
    match condition {
        Expr::IsTrue(inner) => inner.as_ref(),
        other => other,
    }
}

/// A batch's values as one text for [`Search::run`], and where each ends.
#[derive(Debug, Default)]
struct Text {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Text {
    /// An empty text with room for `values` (no copy of what is pushed as it grows).
    fn with_capacity(values: &[Option<&str>]) -> Text {
        let bytes = values.iter().map(|v| v.map_or(0, str::len) + 1).sum();
        Text {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(values.len()),
        }
    }

    /// Row `row`'s bytes.
    #[inline]
    fn value(&self, row: usize) -> &[u8] {
        let start = match row {
            0 => 0,
            _ => self.ends[row - 1] + 1,
        };
        &self.bytes[start..self.ends[row]]
    }

    fn push(&mut self, value: &str) {
        self.bytes.extend_from_slice(value.as_bytes());
        self.ends.push(self.bytes.len());
        self.bytes.push(0);
    }
}

/// The substring conditions on one string column of the scan.
#[derive(Debug)]
pub(crate) struct PatternConditions {
    /// The column's index in the scan's batches.
    pub(crate) index: usize,
    /// The searches of the column's values, per kind of pattern.
    exact: Vec<Search>,
    /// The searches of its lowered values.
    folded: Vec<Search>,
    /// The short `starts_with` and `ends_with` patterns, compared whole.
    affixes: Vec<Affixes>,
    /// Leaves whose pattern is empty: they hold for every present value.
    always: Vec<usize>,
    leaves: usize,
    /// Each condition's mask (its index among the scan's conditions) and tree.
    conditions: Vec<(usize, Tree)>,
}

/// Whether a column of this type can take this path.
pub(crate) fn is_string(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
    )
}

impl PatternConditions {
    /// The conditions (mask index, expression) on `column` that are substring trees, if
    /// there are enough of them; `None` otherwise.
    pub(crate) fn new(
        column: &Column,
        index: usize,
        conditions: &[(usize, &Expr)],
    ) -> Result<Option<PatternConditions>> {
        let mut leaves = Leaves::default();
        let trees: Vec<(usize, Tree)> = conditions
            .iter()
            .filter_map(|(mask, condition)| Some((*mask, leaves.parse(top(condition), column)?)))
            .collect();
        if trees.len() < MIN_CONDITIONS {
            return Ok(None);
        }
        let count = leaves.leaves.len();
        Ok(Some(PatternConditions {
            index,
            exact: searches(&leaves.leaves, false)?,
            folded: searches(&leaves.leaves, true)?,
            affixes: [Kind::StartsWith, Kind::EndsWith]
                .into_iter()
                .filter_map(|kind| Affixes::new(&leaves.leaves, kind))
                .collect(),
            always: (0..count)
                .filter(|l| leaves.leaves[*l].2.is_empty())
                .collect(),
            leaves: count,
            conditions: trees,
        }))
    }

    /// The masks of the conditions taken here.
    pub(crate) fn masks(&self) -> impl Iterator<Item = usize> + '_ {
        self.conditions.iter().map(|(mask, _)| *mask)
    }

    /// Sets, in `holds`, where each condition holds among the rows of `column` (a batch's
    /// values).
    pub(crate) fn apply(&self, column: &ArrayRef, holds: &mut BatchHolds) -> Result<()> {
        let rows = column.len();
        let values: Vec<Option<&str>> = match column.data_type() {
            DataType::Utf8View => column.as_string_view().iter().collect(),
            DataType::Utf8 => column.as_string::<i32>().iter().collect(),
            DataType::LargeUtf8 => column.as_string::<i64>().iter().collect(),
            other => {
                return Err(Error::Internal(format!(
                    "substring conditions on a column of {other}"
                )))
            }
        };
        // The values, and (only where one is not ASCII) their lowered forms.
        let mut text = Text::with_capacity(&values);
        for value in &values {
            text.push(value.unwrap_or(""));
        }
        let any_folded = !self.folded.is_empty() || self.affixes.iter().any(Affixes::has_folded);
        let lowered = (any_folded && !text.bytes.is_ascii()).then(|| {
            let mut lowered = Text::with_capacity(&values);
            for value in &values {
                lowered.push(&value.unwrap_or("").to_lowercase());
            }
            lowered
        });
        // Per leaf, the rows where it holds (a bit each).
        let words = rows.div_ceil(64);
        let mut leaf_rows = vec![0u64; self.leaves * words];
        for search in &self.exact {
            search.run(&text.bytes, &text.ends, &mut leaf_rows, words)?;
        }
        for search in &self.folded {
            let text = lowered.as_ref().unwrap_or(&text);
            search.run(&text.bytes, &text.ends, &mut leaf_rows, words)?;
        }
        for affixes in &self.affixes {
            affixes.run(&text, lowered.as_ref(), &mut leaf_rows, words);
        }
        for leaf in &self.always {
            leaf_rows[leaf * words..(leaf + 1) * words].fill(u64::MAX);
        }

        // Per condition, its tree on 64 rows at a time; then only rows with a value, and
        // none past the batch's end.
        let valid = column.logical_nulls();
        let mut present = ones(rows);
        if let Some(valid) = &valid {
            for (present, valid) in present
                .iter_mut()
                .zip(valid.inner().bit_chunks().iter_padded())
            {
                *present &= valid;
            }
        }
        for (mask, tree) in &self.conditions {
            let holds_on: Vec<u64> = present
                .iter()
                .enumerate()
                .map(|(w, present)| tree.word(&leaf_rows, words, w) & present)
                .collect();
            holds.set_words(*mask, holds_on);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Not;
    use std::sync::Arc;

    use datafusion::arrow::array::{RecordBatch, StringArray, StringViewArray};
    use datafusion::arrow::compute::concat_batches;
    use datafusion::functions::expr_fn::{contains, ends_with, lower, starts_with, strpos};
    use datafusion::prelude::{col, lit, SessionContext};

    use super::*;

    /// The rows where each condition holds, through this path.
    fn through_patterns(conditions: &[Expr], values: ArrayRef) -> Vec<Vec<u32>> {
        let on: Vec<(usize, &Expr)> = conditions.iter().enumerate().collect();
        let patterns = PatternConditions::new(&Column::from_name("email"), 0, &on)
            .unwrap()
            .expect("substring conditions");
        let mut holds = BatchHolds::new(conditions.len(), values.len());
        patterns.apply(&values, &mut holds).unwrap();
        (0..conditions.len())
            .map(|c| {
                let mut mask = roaring::RoaringBitmap::new();
                holds.or_into(c, 10, &mut mask);
                mask.iter().collect()
            })
            .collect()
    }

    #[test]
    fn substring_trees_agree_with_row_by_row_string_functions() {
        let values = vec![
            Some("Anna.Silva@Example.COM"),
            None,
            Some(""),
            Some("zoe@mail.me"),
            Some("ÅSA.MÜLLER@mail.de"),
            Some("silva"),
            Some("K@x.com"),
            Some("aaaa"),
            Some("x\0silva"),
        ];
        let email = || col("email");
        let conditions = vec![
            contains(lower(email()), lit("silva")),
            contains(email(), lit("Silva")).or(contains(email(), lit("zoe"))),
            contains(lower(email()), lit("müller")).not(),
            starts_with(email(), lit("Anna")),
            starts_with(lower(email()), lit("åsa")),
            ends_with(lower(email()), lit(".com")),
            ends_with(email(), lit(".me")).and(contains(email(), lit("@"))),
            contains(email(), lit("")),
            starts_with(lower(email()), lit("k@")),
            contains(email(), lit("aa")).and(ends_with(email(), lit("aa")).not()),
            // As the compiler gives them.
            contains(lower(email()), lit("müller")).not().is_true(),
            // Anchored: a state's shorter matches ending there are not at the anchor.
            starts_with(email(), lit("nna")).or(starts_with(email(), lit("Ann"))),
            ends_with(lower(email()), lit("om")),
            starts_with(email(), lit("silva")),
            ends_with(email(), lit("silva")).and(ends_with(email(), lit("lva"))),
            // Longer than 16 bytes: walked, not compared whole.
            ends_with(lower(email()), lit("anna.silva@example.com")),
            starts_with(email(), lit("Anna.Silva@Example")).or(starts_with(email(), lit("z"))),
            // Exactly 16 bytes, and a value shorter than a pattern.
            ends_with(lower(email()), lit("silva@example.com")),
            starts_with(lower(email()), lit("anna.silva@examp")),
            ends_with(email(), lit("xsilva")),
            // `strpos(…) > 0`, as SQL conditions write `contains`.
            strpos(email(), lit("silva")).gt(lit(0i64)),
            strpos(lower(email()), lit("silva")).gt(lit(0i64)),
        ];
        // Row n of the batch is position 10 + n.
        let expected: Vec<Vec<u32>> = vec![
            vec![10, 15, 18],
            vec![10, 13],
            vec![10, 12, 13, 15, 16, 17, 18],
            vec![10],
            vec![14],
            vec![10, 16],
            vec![13],
            vec![10, 12, 13, 14, 15, 16, 17, 18],
            vec![16],
            vec![],
            vec![10, 12, 13, 15, 16, 17, 18],
            vec![10],
            vec![10, 16],
            vec![15],
            vec![15, 18],
            vec![10],
            vec![10, 13],
            vec![10],
            vec![10],
            vec![],
            vec![15, 18],
            vec![10, 15, 18],
        ];
        for array in [
            Arc::new(StringArray::from(values.clone())) as ArrayRef,
            Arc::new(StringViewArray::from(values.clone())) as ArrayRef,
        ] {
            let by_datafusion = row_by_row(&conditions, array.clone());
            assert_eq!(by_datafusion, expected);
            let got = through_patterns(&conditions, array);
            for (i, (got, wanted)) in got.iter().zip(&expected).enumerate() {
                assert_eq!(got, wanted, "condition {i}: {}", conditions[i]);
            }
        }
        // Enough rows for the search's lanes to split the batch mid-way, at rows of every
        // kind, and for rows past the first word.
        let many: Vec<Option<&str>> = values
            .iter()
            .cycle()
            .take(values.len() * 37)
            .copied()
            .collect();
        let array = Arc::new(StringArray::from(many)) as ArrayRef;
        let got = through_patterns(&conditions, array.clone());
        for (i, (got, wanted)) in got.iter().zip(row_by_row(&conditions, array)).enumerate() {
            assert_eq!(*got, wanted, "condition {i}: {}", conditions[i]);
        }
    }

    /// The rows where each condition holds, evaluated by DataFusion.
    fn row_by_row(conditions: &[Expr], values: ArrayRef) -> Vec<Vec<u32>> {
        let batch = RecordBatch::try_from_iter(vec![("email", values)]).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let batches = runtime
            .block_on(
                SessionContext::new()
                    .read_batch(batch)
                    .unwrap()
                    .select(conditions.to_vec())
                    .unwrap()
                    .collect(),
            )
            .unwrap();
        let all = concat_batches(&batches[0].schema(), &batches).unwrap();
        (0..conditions.len())
            .map(|c| {
                super::super::holding(all.column(c).as_boolean())
                    .set_indices()
                    .map(|i| 10 + i as u32)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn other_shapes_are_left_to_datafusion() {
        let email = || col("email");
        let column = Column::from_name("email");
        let mut leaves = Leaves::default();
        for condition in [
            email().eq(lit("a")),
            contains(col("name"), lit("a")),
            contains(lower(email()), lit("Upper")),
            contains(email(), email()),
            email().is_null().or(contains(email(), lit("a"))),
            contains(email(), lit("a")).is_true().not(),
            contains(email(), lit("a\0b")),
        ] {
            assert!(leaves.parse(&condition, &column).is_none(), "{condition}");
        }
    }
}
