//! The automaton searches of substring patterns: `contains` patterns in an overlapping
//! search of a batch's text, four lanes at once; `starts_with` / `ends_with` patterns too
//! long to compare whole in anchored walks from each end of a value.

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, PatternID, StartKind};

use super::affixes::AFFIX_BYTES;
use super::Kind;
use crate::{Error, Result};

/// Parts of a batch's text searched together by [`Search::run`].
const LANES: usize = 4;

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
pub(super) struct Search {
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
            .map_err(|e| Error::Internal(format!("substring search could not be built: {e}")))?;
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
    pub(super) fn run(
        &self,
        text: &[u8],
        ends: &[usize],
        leaf_rows: &mut [u64],
        words: usize,
    ) -> Result<()> {
        match self.kind {
            Kind::Contains => {
                let dfa = &self.automaton;
                let start = dfa
                    .start_state(Anchored::No)
                    .map_err(|e| Error::Internal(format!("substring search failed: {e}")))?;
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
                    .map_err(|e| Error::Internal(format!("substring search failed: {e}")))?;
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

/// The searches of the leaves on the column of each kind (`folded`: of its lowered values).
pub(super) fn searches(leaves: &[(Kind, bool, String)], folded: bool) -> Result<Vec<Search>> {
    let mut searches = Vec::new();
    for kind in [Kind::Contains, Kind::StartsWith, Kind::EndsWith] {
        searches.extend(Search::new(leaves, kind, folded)?);
    }
    Ok(searches)
}
