//! Substring conditions on a string column of mostly distinct values (emails, names):
//! every `contains`, `starts_with` and `ends_with` literal of the column found in one
//! Aho–Corasick pass over each value, instead of one search per condition.
//!
//! A condition qualifies when it is a tree of `AND`, `OR` and `NOT` over those three
//! functions, each of the column itself or of `lower(column)`, with a string literal. That
//! is what the compiler makes of `contains`, `not_contains`, `starts_with` and `ends_with`
//! with one or several values, with or without `ignore_case`.
//!
//! Why this is exact:
//! - `contains(s, p)`, `starts_with(s, p)` and `ends_with(s, p)` are byte comparisons:
//!   `p` occurs in `s`, at 0, or ending at `s`'s length. An overlapping search reports
//!   every occurrence of every pattern, with its start and end;
//! - `lower(s)` is `str::to_lowercase`. For an ASCII value it changes ASCII letters only,
//!   so searching `s` ignoring ASCII case finds what searching `lower(s)` finds, at the
//!   same offsets, provided the pattern has no upper-case ASCII letter (a pattern that has
//!   one can never occur in `lower(s)`: such a condition is left to DataFusion). A value
//!   that is not ASCII is lowered first, and searched the same way;
//! - an empty pattern occurs in every value;
//! - on a missing value every leaf is null, and so is any `AND` / `OR` / `NOT` of them:
//!   the condition does not hold.

use aho_corasick::AhoCorasick;
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::buffer::{BooleanBuffer, MutableBuffer};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use roaring::RoaringBitmap;

use super::bitmap_from_bits;
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
    fn holds(&self, fired: &[bool]) -> bool {
        match self {
            Tree::Leaf(leaf) => fired[*leaf],
            Tree::Not(inner) => !inner.holds(fired),
            Tree::And(a, b) => a.holds(fired) && b.holds(fired),
            Tree::Or(a, b) => a.holds(fired) || b.holds(fired),
        }
    }

    fn leaves(&self, out: &mut Vec<usize>) {
        match self {
            Tree::Leaf(leaf) => out.push(*leaf),
            Tree::Not(inner) => inner.leaves(out),
            Tree::And(a, b) | Tree::Or(a, b) => {
                a.leaves(out);
                b.leaves(out);
            }
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
                let [subject, Expr::Literal(pattern, _)] = function.args.as_slice() else {
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
                    Expr::ScalarFunction(lower) if lower.name() == "lower" => {
                        match lower.args.as_slice() {
                            [Expr::Column(c)] if c == column => true,
                            _ => return None,
                        }
                    }
                    _ => return None,
                };
                // Never in a lowered value: left to DataFusion (see the module's note).
                if folded && pattern.bytes().any(|b| b.is_ascii_uppercase()) {
                    return None;
                }
                Some(Tree::Leaf(self.add(kind, folded, pattern)))
            }
            _ => None,
        }
    }
}

/// One automaton over the patterns of the leaves on the column (`folded`: of its lowered
/// values), and the leaves each pattern decides.
#[derive(Debug)]
struct Search {
    automaton: AhoCorasick,
    leaves: Vec<Vec<(usize, Kind)>>,
}

impl Search {
    fn new(leaves: &[(Kind, bool, String)], folded: bool) -> Result<Option<Search>> {
        let mut patterns: Vec<&str> = Vec::new();
        let mut deciding: Vec<Vec<(usize, Kind)>> = Vec::new();
        for (leaf, (kind, f, pattern)) in leaves.iter().enumerate() {
            if *f != folded || pattern.is_empty() {
                continue;
            }
            let id = match patterns.iter().position(|p| p == pattern) {
                Some(id) => id,
                None => {
                    patterns.push(pattern);
                    deciding.push(Vec::new());
                    patterns.len() - 1
                }
            };
            deciding[id].push((leaf, *kind));
        }
        if patterns.is_empty() {
            return Ok(None);
        }
        let automaton = AhoCorasick::builder()
            .ascii_case_insensitive(folded)
            .build(&patterns)
            .map_err(|e| Error::Data(format!("substring search could not be built: {e}")))?;
        Ok(Some(Search {
            automaton,
            leaves: deciding,
        }))
    }

    /// Marks the leaves `value` satisfies in `fired`, listing them in `touched`.
    fn run(&self, value: &[u8], fired: &mut [bool], touched: &mut Vec<usize>) {
        for found in self.automaton.find_overlapping_iter(value) {
            for (leaf, kind) in &self.leaves[found.pattern().as_usize()] {
                let holds = match kind {
                    Kind::Contains => true,
                    Kind::StartsWith => found.start() == 0,
                    Kind::EndsWith => found.end() == value.len(),
                };
                if holds && !fired[*leaf] {
                    fired[*leaf] = true;
                    touched.push(*leaf);
                }
            }
        }
    }
}

/// The substring conditions on one string column of the scan.
#[derive(Debug)]
pub(crate) struct PatternConditions {
    /// The column's index in the scan's batches.
    pub(crate) index: usize,
    exact: Option<Search>,
    folded: Option<Search>,
    /// Leaves whose pattern is empty: they hold for every present value.
    always: Vec<usize>,
    leaves: usize,
    /// Each condition's mask (its index among the scan's conditions) and tree.
    conditions: Vec<(usize, Tree)>,
    /// Each condition's result on a value where no leaf holds.
    on_none: Vec<bool>,
    /// The conditions each leaf appears in.
    by_leaf: Vec<Vec<usize>>,
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
            .filter_map(|(mask, condition)| {
                // The compiler's conditions are `(…) IS TRUE`: at the top, the same rows
                // as the tree's `holds` (inside a tree it would change what null gives).
                let tree = match condition {
                    Expr::IsTrue(inner) => inner.as_ref(),
                    other => other,
                };
                Some((*mask, leaves.parse(tree, column)?))
            })
            .collect();
        if trees.len() < MIN_CONDITIONS {
            return Ok(None);
        }
        let count = leaves.leaves.len();
        let none = vec![false; count];
        let mut by_leaf = vec![Vec::new(); count];
        let mut on_it = Vec::new();
        for (i, (_, tree)) in trees.iter().enumerate() {
            on_it.clear();
            tree.leaves(&mut on_it);
            on_it.sort_unstable();
            on_it.dedup();
            for leaf in &on_it {
                by_leaf[*leaf].push(i);
            }
        }
        Ok(Some(PatternConditions {
            index,
            exact: Search::new(&leaves.leaves, false)?,
            folded: Search::new(&leaves.leaves, true)?,
            always: (0..count)
                .filter(|l| leaves.leaves[*l].2.is_empty())
                .collect(),
            leaves: count,
            on_none: trees.iter().map(|(_, t)| t.holds(&none)).collect(),
            conditions: trees,
            by_leaf,
        }))
    }

    /// The masks of the conditions taken here.
    pub(crate) fn masks(&self) -> impl Iterator<Item = usize> + '_ {
        self.conditions.iter().map(|(mask, _)| *mask)
    }

    /// ORs the rows of `column` (a batch's values, its rows from `start`) where each
    /// condition holds into that condition's mask.
    pub(crate) fn apply(
        &self,
        column: &ArrayRef,
        start: u32,
        masks: &mut [RoaringBitmap],
    ) -> Result<()> {
        let rows = column.len();
        // Per condition, the rows where it differs from its result on no leaf.
        let words = rows.div_ceil(64);
        let mut differs = vec![0u64; words * self.conditions.len()];
        let mut fired = vec![false; self.leaves];
        let mut touched = Vec::new();
        let mut seen = vec![usize::MAX; self.conditions.len()];
        let mut lowered = String::new();
        let mut row = |i: usize, value: &str| {
            if let Some(search) = &self.exact {
                search.run(value.as_bytes(), &mut fired, &mut touched);
            }
            if let Some(search) = &self.folded {
                let folded = if value.is_ascii() {
                    value
                } else {
                    lowered = value.to_lowercase();
                    lowered.as_str()
                };
                search.run(folded.as_bytes(), &mut fired, &mut touched);
            }
            for leaf in &self.always {
                if !fired[*leaf] {
                    fired[*leaf] = true;
                    touched.push(*leaf);
                }
            }
            for leaf in touched.drain(..) {
                for c in &self.by_leaf[leaf] {
                    if seen[*c] != i {
                        seen[*c] = i;
                        if self.conditions[*c].1.holds(&fired) != self.on_none[*c] {
                            differs[*c * words + i / 64] |= 1 << (i % 64);
                        }
                    }
                }
                fired[leaf] = false;
            }
        };
        match column.data_type() {
            DataType::Utf8View => column
                .as_string_view()
                .iter()
                .enumerate()
                .for_each(|(i, v)| v.into_iter().for_each(|v| row(i, v))),
            DataType::Utf8 => column
                .as_string::<i32>()
                .iter()
                .enumerate()
                .for_each(|(i, v)| v.into_iter().for_each(|v| row(i, v))),
            DataType::LargeUtf8 => column
                .as_string::<i64>()
                .iter()
                .enumerate()
                .for_each(|(i, v)| v.into_iter().for_each(|v| row(i, v))),
            other => {
                return Err(Error::Data(format!(
                    "substring conditions on a column of {other}"
                )))
            }
        }
        let valid = column.logical_nulls();
        for (c, (mask, _)) in self.conditions.iter().enumerate() {
            let own = &differs[c * words..(c + 1) * words];
            if !self.on_none[c] && own.iter().all(|w| *w == 0) {
                continue;
            }
            let buffer = MutableBuffer::from_iter(own.iter().copied());
            let mut bits = BooleanBuffer::new(buffer.into(), 0, rows);
            if self.on_none[c] {
                bits = !&bits;
            }
            if let Some(valid) = &valid {
                bits = &bits & valid.inner();
            }
            masks[*mask] |= bitmap_from_bits(start, &bits);
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
    use datafusion::functions::expr_fn::{contains, ends_with, lower, starts_with};
    use datafusion::prelude::{col, lit, SessionContext};

    use super::*;

    /// The rows where each condition holds, through this path.
    fn through_patterns(conditions: &[Expr], values: ArrayRef) -> Vec<Vec<u32>> {
        let on: Vec<(usize, &Expr)> = conditions.iter().enumerate().collect();
        let patterns = PatternConditions::new(&Column::from_name("email"), 0, &on)
            .unwrap()
            .expect("substring conditions");
        let mut masks = vec![RoaringBitmap::new(); conditions.len()];
        patterns.apply(&values, 10, &mut masks).unwrap();
        masks.iter().map(|m| m.iter().collect()).collect()
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
        ];
        // Row n of the batch is position 10 + n.
        let expected: Vec<Vec<u32>> = vec![
            vec![10, 15],
            vec![10, 13],
            vec![10, 12, 13, 15, 16, 17],
            vec![10],
            vec![14],
            vec![10, 16],
            vec![13],
            vec![10, 12, 13, 14, 15, 16, 17],
            vec![16],
            vec![],
            vec![10, 12, 13, 15, 16, 17],
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
        ] {
            assert!(leaves.parse(&condition, &column).is_none(), "{condition}");
        }
    }
}
