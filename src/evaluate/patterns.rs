//! Substring conditions on a string column of mostly distinct values (emails, names):
//! every `contains` literal of the column found in one Aho–Corasick pass over each value,
//! and every `starts_with` / `ends_with` literal in one anchored walk from each end of it,
//! instead of one search per condition.
//!
//! A condition qualifies when it is a tree of `AND`, `OR` and `NOT` over those three
//! functions, each of the column itself or of `lower(column)`, with a string literal. That
//! is what the compiler makes of `contains`, `not_contains`, `starts_with` and `ends_with`
//! with one or several values, with or without `ignore_case`.
//!
//! Why this is exact:
//! - `contains(s, p)`, `starts_with(s, p)` and `ends_with(s, p)` are byte comparisons:
//!   `p` occurs in `s`, at 0, or ending at `s`'s length. An overlapping search reports
//!   every occurrence of every `contains` pattern; an anchored walk from the start of `s`
//!   every `starts_with` pattern equal to the bytes walked, and one from the end over the
//!   reversed patterns every `ends_with` pattern;
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

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, PatternID, StartKind};
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

use super::batch::{ones, BatchHolds};
use crate::{Error, Result};

/// A column takes this path with at least this many substring conditions on it; one alone
/// is as fast through DataFusion's own search.
const MIN_CONDITIONS: usize = 2;
/// Parts of a batch's text searched together by [`Search::run`].
const LANES: usize = 4;

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
                // NUL separates values in the searched text.
                if pattern.contains('\0') {
                    return None;
                }
                Some(Tree::Leaf(self.add(kind, folded, pattern)))
            }
            _ => None,
        }
    }
}

/// One automaton over the patterns of one kind of the leaves on the column (`folded`: of
/// its lowered values), and the leaves each pattern decides.
/// The DFA itself, not `AhoCorasick`: that one searches through a trait object, a
/// dynamic call per byte in an overlapping search.
///
/// `contains` patterns are found by an overlapping search of the whole text. `starts_with`
/// and `ends_with` patterns are not searched for: an anchored automaton walks each value
/// from its first byte (or, over the reversed patterns, from its last) until no pattern
/// can match, a few bytes. In an overlapping search a short prefix (`a`, `m`) or suffix
/// (`.com`) would match all through every value.
#[derive(Debug)]
struct Search {
    automaton: DFA,
    kind: Kind,
    leaves: Vec<Vec<usize>>,
}

impl Search {
    fn new(leaves: &[(Kind, bool, String)], kind: Kind, folded: bool) -> Result<Option<Search>> {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut deciding: Vec<Vec<usize>> = Vec::new();
        for (leaf, (k, f, pattern)) in leaves.iter().enumerate() {
            if *k != kind || *f != folded || pattern.is_empty() {
                continue;
            }
            if kind != Kind::Contains && pattern.len() <= AFFIX_BYTES {
                continue; // compared whole instead: see `Affixes`
            }
            let mut bytes = pattern.as_bytes().to_vec();
            if kind == Kind::EndsWith {
                bytes.reverse();
            }
            let id = match patterns.iter().position(|p| *p == bytes) {
                Some(id) => id,
                None => {
                    patterns.push(bytes);
                    deciding.push(Vec::new());
                    patterns.len() - 1
                }
            };
            deciding[id].push(leaf);
        }
        if patterns.is_empty() {
            return Ok(None);
        }
        let start = match kind {
            Kind::Contains => StartKind::Unanchored,
            Kind::StartsWith | Kind::EndsWith => StartKind::Anchored,
        };
        // No prefilter: then the only special states are match (and dead) states.
        let automaton = DFA::builder()
            .prefilter(false)
            .ascii_case_insensitive(folded)
            .start_kind(start)
            .build(&patterns)
            .map_err(|e| Error::Data(format!("substring search could not be built: {e}")))?;
        Ok(Some(Search {
            automaton,
            kind,
            leaves: deciding,
        }))
    }

    /// Sets in `leaf_rows` (`words` per leaf) the rows where each leaf holds, the rows
    /// being the values of `text`: the batch's values one after the other, each followed
    /// by a NUL (no pattern has one, so no occurrence spans two values); value `r` ends
    /// at `ends[r]`.
    fn run(&self, text: &[u8], ends: &[usize], leaf_rows: &mut [u64], words: usize) -> Result<()> {
        match self.kind {
            Kind::Contains => {
                let dfa = &self.automaton;
                let start = dfa
                    .start_state(Anchored::No)
                    .map_err(|e| Error::Data(format!("substring search failed: {e}")))?;
                // LANES parts of the rows, each walked from its first row's start (where
                // the automaton is in its start state anyway: no pattern spans a NUL), a
                // byte of each in turn, so that the lanes' table reads overlap.
                let rows = ends.len();
                let row_start = |r: usize| if r == 0 { 0 } else { ends[r - 1] + 1 };
                let mut row: [usize; LANES] = std::array::from_fn(|k| rows * k / LANES);
                let from: [usize; LANES] = std::array::from_fn(|k| row_start(row[k]));
                let to: [usize; LANES] = std::array::from_fn(|k| row_start(rows * (k + 1) / LANES));
                let mut state = [start; LANES];
                let mut found = |state: StateID, end: usize, row: &mut usize| {
                    self.found(state, end, row, ends, leaf_rows, words)
                };
                let together = (0..LANES).map(|k| to[k] - from[k]).min().unwrap_or(0);
                for i in 0..together {
                    for k in 0..LANES {
                        let at = from[k] + i;
                        state[k] = dfa.next_state(Anchored::No, state[k], text[at]);
                        if dfa.is_special(state[k]) {
                            found(state[k], at + 1, &mut row[k]);
                        }
                    }
                }
                for k in 0..LANES {
                    let rest = from[k] + together;
                    for (at, &byte) in text[rest..to[k]].iter().enumerate() {
                        state[k] = dfa.next_state(Anchored::No, state[k], byte);
                        if dfa.is_special(state[k]) {
                            found(state[k], rest + at + 1, &mut row[k]);
                        }
                    }
                }
                Ok(())
            }
            Kind::StartsWith | Kind::EndsWith => {
                let mut fire = |row: usize, pattern: PatternID| {
                    for leaf in &self.leaves[pattern.as_usize()] {
                        leaf_rows[leaf * words + row / 64] |= 1 << (row % 64);
                    }
                };
                let start = self
                    .automaton
                    .start_state(Anchored::Yes)
                    .map_err(|e| Error::Data(format!("substring search failed: {e}")))?;
                let mut first = 0;
                for (row, &end) in ends.iter().enumerate() {
                    let value = &text[first..end];
                    first = end + 1;
                    match self.kind {
                        Kind::StartsWith => self.walk(start, value.iter(), |p| fire(row, p)),
                        _ => self.walk(start, value.iter().rev(), |p| fire(row, p)),
                    }
                }
                Ok(())
            }
        }
    }

    /// A match state reached at `end` (exclusive) of the text: sets the leaves of every
    /// pattern ending there, in the row `row` advanced to the one holding `end`.
    #[inline(always)]
    fn found(
        &self,
        state: StateID,
        end: usize,
        row: &mut usize,
        ends: &[usize],
        leaf_rows: &mut [u64],
        words: usize,
    ) {
        while ends[*row] < end {
            *row += 1;
        }
        let (word, bit) = (*row / 64, 1u64 << (*row % 64));
        for i in 0..self.automaton.match_len(state) {
            let pattern = self.automaton.match_pattern(state, i);
            for leaf in &self.leaves[pattern.as_usize()] {
                leaf_rows[leaf * words + word] |= bit;
            }
        }
    }

    /// Walks the anchored automaton over `bytes` (a value's, from one end) and reports
    /// every pattern equal to the bytes walked so far. A state's matches can include
    /// shorter patterns that end where it does, so a pattern counts only when its length
    /// is the number of bytes walked.
    #[inline]
    fn walk<'a>(
        &self,
        start: StateID,
        bytes: impl Iterator<Item = &'a u8>,
        mut found: impl FnMut(PatternID),
    ) {
        let dfa = &self.automaton;
        let mut state = start;
        for (walked, &byte) in bytes.enumerate() {
            state = dfa.next_state(Anchored::Yes, state, byte);
            if dfa.is_special(state) {
                if dfa.is_dead(state) {
                    return;
                }
                if dfa.is_match(state) {
                    for i in 0..dfa.match_len(state) {
                        let pattern = dfa.match_pattern(state, i);
                        if dfa.pattern_len(pattern) == walked + 1 {
                            found(pattern);
                        }
                    }
                }
            }
        }
    }
}

/// Longest `starts_with` / `ends_with` pattern compared whole (longer ones are walked).
const AFFIX_BYTES: usize = 16;

/// The `starts_with` (or `ends_with`) patterns of at most [`AFFIX_BYTES`] bytes: each
/// value's first (last) 16 bytes read as one number, then each pattern is a mask and a
/// compare. Walking an automaton from the value's end costs a dependent table read per
/// byte, and every value of a column (emails ending `.com`) walks several.
#[derive(Debug)]
struct Affixes {
    kind: Kind,
    /// Patterns compared with the value's bytes.
    exact: Vec<Affix>,
    /// Patterns compared with its lowered bytes.
    folded: Vec<Affix>,
}

/// One pattern: its bytes as [`Affixes::read`] reads a value, the mask of its length,
/// and the leaves it decides.
#[derive(Debug)]
struct Affix {
    bytes: u128,
    mask: u128,
    len: usize,
    leaves: Vec<usize>,
}

impl Affixes {
    fn new(leaves: &[(Kind, bool, String)], kind: Kind) -> Option<Affixes> {
        let collect = |folded: bool| {
            let mut affixes: Vec<Affix> = Vec::new();
            for (leaf, (k, f, pattern)) in leaves.iter().enumerate() {
                if *k != kind || *f != folded || pattern.is_empty() || pattern.len() > AFFIX_BYTES {
                    continue;
                }
                let bytes = Self::read(kind, pattern.as_bytes());
                match affixes
                    .iter_mut()
                    .find(|a| a.len == pattern.len() && a.bytes == bytes)
                {
                    Some(affix) => affix.leaves.push(leaf),
                    None => affixes.push(Affix {
                        bytes,
                        mask: u128::MAX >> (8 * (AFFIX_BYTES - pattern.len())),
                        len: pattern.len(),
                        leaves: vec![leaf],
                    }),
                }
            }
            affixes
        };
        let (exact, folded) = (collect(false), collect(true));
        (!exact.is_empty() || !folded.is_empty()).then_some(Affixes {
            kind,
            exact,
            folded,
        })
    }

    /// A value's first 16 bytes (`starts_with`: the first byte lowest) or last 16
    /// (`ends_with`: the last byte lowest), zero beyond its length: a pattern of `n` bytes
    /// is then the lowest `n` bytes.
    #[inline]
    fn read(kind: Kind, value: &[u8]) -> u128 {
        let mut buf = [0u8; AFFIX_BYTES];
        let n = value.len().min(AFFIX_BYTES);
        match kind {
            Kind::EndsWith => {
                buf[AFFIX_BYTES - n..].copy_from_slice(&value[value.len() - n..]);
                u128::from_be_bytes(buf)
            }
            _ => {
                buf[..n].copy_from_slice(&value[..n]);
                u128::from_le_bytes(buf)
            }
        }
    }

    /// [`read`](Self::read) of the value at `start..end` of `bytes`: one unaligned load
    /// of 16 bytes and a mask, unless the value is too near an end of `bytes`.
    #[inline]
    fn read_at(kind: Kind, bytes: &[u8], start: usize, end: usize) -> u128 {
        let n = (end - start).min(AFFIX_BYTES);
        if n == 0 {
            return 0;
        }
        let keep = u128::MAX >> (8 * (AFFIX_BYTES - n));
        let load = match kind {
            Kind::EndsWith => end
                .checked_sub(AFFIX_BYTES)
                .map(|from| u128::from_be_bytes(bytes[from..end].try_into().unwrap())),
            _ => bytes
                .get(start..start + AFFIX_BYTES)
                .map(|b| u128::from_le_bytes(b.try_into().unwrap())),
        };
        match load {
            Some(load) => load & keep,
            None => Self::read(kind, &bytes[start..end]),
        }
    }

    /// Sets the rows of the leaves of each of `affixes` that `read` (of a value of `len`
    /// bytes) starts (ends) with.
    #[inline]
    fn test(affixes: &[Affix], read: u128, len: usize, row: usize, rows: &mut [u64], words: usize) {
        for affix in affixes {
            if len >= affix.len && read & affix.mask == affix.bytes {
                for leaf in &affix.leaves {
                    rows[leaf * words + row / 64] |= 1 << (row % 64);
                }
            }
        }
    }

    /// Sets in `leaf_rows` the rows where each pattern is the value's prefix (suffix):
    /// `text` for the exact patterns, `lowered` (the same rows, when a value is not
    /// ASCII) for the folded ones, whose ASCII letters are lowered here too.
    fn run(&self, text: &Text, lowered: Option<&Text>, leaf_rows: &mut [u64], words: usize) {
        let kind = self.kind;
        let mut start = 0;
        for (row, &end) in text.ends.iter().enumerate() {
            let read = Self::read_at(kind, &text.bytes, start, end);
            let len = end - start;
            start = end + 1;
            Self::test(&self.exact, read, len, row, leaf_rows, words);
            if self.folded.is_empty() {
                continue;
            }
            let (read, len) = match lowered {
                None => (read, len),
                Some(lowered) => {
                    let value = lowered.value(row);
                    (Self::read(kind, value), value.len())
                }
            };
            Self::test(
                &self.folded,
                ascii_lowercase(read),
                len,
                row,
                leaf_rows,
                words,
            );
        }
    }
}

/// `x` with each byte that is an ASCII upper-case letter lowered, 16 bytes at once.
#[inline]
fn ascii_lowercase(x: u128) -> u128 {
    const ONES: u128 = u128::MAX / 0xff;
    let low7 = x & (ONES * 0x7f);
    // Per byte, the top bit of `low7 + 0x80 - c` is set when the byte is at least `c`; no
    // sum carries into the next byte (at most 0x7f + 0x3f).
    let at_least_a = low7 + ONES * (0x80 - b'A' as u128);
    let above_z = low7 + ONES * (0x80 - b'Z' as u128 - 1);
    let upper = at_least_a & !above_z & !x & (ONES * 0x80);
    x | (upper >> 2)
}

/// The searches of the leaves on the column of each kind (`folded`: of its lowered values).
fn searches(leaves: &[(Kind, bool, String)], folded: bool) -> Result<Vec<Search>> {
    let mut searches = Vec::new();
    for kind in [Kind::Contains, Kind::StartsWith, Kind::EndsWith] {
        searches.extend(Search::new(leaves, kind, folded)?);
    }
    Ok(searches)
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
                return Err(Error::Data(format!(
                    "substring conditions on a column of {other}"
                )))
            }
        };
        // The values, and (only where one is not ASCII) their lowered forms.
        let mut text = Text::with_capacity(&values);
        for value in &values {
            text.push(value.unwrap_or(""));
        }
        let any_folded =
            !self.folded.is_empty() || self.affixes.iter().any(|a| !a.folded.is_empty());
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
    use datafusion::functions::expr_fn::{contains, ends_with, lower, starts_with};
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

    /// Every byte, lowered 16 at a time, as `u8::to_ascii_lowercase` lowers it alone.
    #[test]
    fn sixteen_bytes_lowered_at_once_as_one_by_one() {
        for first in (0..=255u8).step_by(16) {
            let bytes: [u8; 16] = std::array::from_fn(|i| first + i as u8);
            let lowered = ascii_lowercase(u128::from_le_bytes(bytes)).to_le_bytes();
            assert_eq!(
                lowered,
                bytes.map(|b| b.to_ascii_lowercase()),
                "from {first}"
            );
        }
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
