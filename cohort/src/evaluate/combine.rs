//! Groups combined inside the scan, batch by batch, on 64-bit words: SPEC §2.1's clause
//! algebra (`bitmap::algebra` applies it to whole masks) run on each batch's condition
//! results, so only the groups' results become bitmaps and no condition's mask is kept
//! unless a group combined after the scan needs it.
//!
//! A group is combined here unless it references, directly or through other groups, a
//! group with static lists: static ids are found after the scan, and a reference means the
//! referenced group's final members.

use datafusion::arrow::buffer::{BooleanBuffer, Buffer};
use roaring::RoaringBitmap;

use super::batch::{ones, words_of, BatchHolds, Holds};
use crate::compile::{Compiled, Formula, Term};
use crate::definition::Match;

/// Which groups the scan combines as it goes, and which conditions' masks it keeps.
#[derive(Debug, Clone)]
pub(crate) struct InScan {
    /// The combined groups, in dependency order.
    groups: Vec<Combined>,
    /// Per group of the compilation: whether the scan combines it.
    combined: Vec<bool>,
    /// Per condition of the scan: whether its mask is kept.
    keep: Vec<bool>,
}

/// One group the scan combines.
#[derive(Debug, Clone)]
struct Combined {
    /// Its index among the compilation's groups.
    group: usize,
    include: Vec<Clause>,
    exclude: Vec<Clause>,
}

/// One clause, its terms resolved to what a batch has.
#[derive(Debug, Clone)]
struct Clause {
    mode: Match,
    operands: Vec<Operand>,
}

#[derive(Debug, Clone, Copy)]
enum Operand {
    /// The batch's result for condition `i` of the scan.
    Condition(usize),
    /// The batch's result for `InScan::groups[slot]`, or its complement.
    Group { slot: usize, negated: bool },
}

#[derive(Debug, Clone, Copy)]
enum Op {
    And,
    Or,
}

impl InScan {
    /// Combines nothing and keeps every mask of a scan of `conditions` conditions.
    pub(crate) fn nothing(conditions: usize) -> InScan {
        InScan {
            groups: Vec::new(),
            combined: Vec::new(),
            keep: vec![true; conditions],
        }
    }

    /// Combines every group of `compiled` that it can in a scan of `conditions` conditions
    /// (the compiled ones, then ad-hoc ones, whose masks are always kept).
    pub(crate) fn plan(compiled: &Compiled, conditions: usize) -> InScan {
        let mut slot_of: Vec<Option<usize>> = vec![None; compiled.groups.len()];
        let mut groups = Vec::new();
        let mut keep: Vec<bool> = (0..conditions)
            .map(|c| c >= compiled.conditions.len())
            .collect();
        for (g, group) in compiled.groups.iter().enumerate() {
            let combinable = group.formulas().flat_map(|f| &f.terms).all(|t| match *t {
                Term::Condition(_) => true,
                Term::Group { index, .. } => {
                    slot_of[index].is_some() && compiled.groups[index].group.statics.is_empty()
                }
            });
            if !combinable {
                for t in group.formulas().flat_map(|f| &f.terms) {
                    if let Term::Condition(c) = *t {
                        keep[c] = true;
                    }
                }
                continue;
            }
            let clauses = |formulas: &[Formula]| -> Vec<Clause> {
                formulas
                    .iter()
                    .map(|f| Clause {
                        mode: f.mode,
                        operands: f
                            .terms
                            .iter()
                            .filter_map(|t| match *t {
                                Term::Condition(c) => Some(Operand::Condition(c)),
                                Term::Group { index, negated } => {
                                    slot_of[index].map(|slot| Operand::Group { slot, negated })
                                }
                            })
                            .collect(),
                    })
                    .collect()
            };
            let combined = Combined {
                group: g,
                include: clauses(&group.include),
                exclude: clauses(&group.exclude),
            };
            slot_of[g] = Some(groups.len());
            groups.push(combined);
        }
        InScan {
            groups,
            combined: slot_of.iter().map(Option::is_some).collect(),
            keep,
        }
    }

    /// Whether the mask of condition `c` is kept.
    pub(crate) fn keeps(&self, c: usize) -> bool {
        self.keep.get(c).copied().unwrap_or(true)
    }

    /// Whether the scan combines group `g`.
    pub(crate) fn combines(&self, g: usize) -> bool {
        self.combined.get(g).copied().unwrap_or(false)
    }

    /// How many groups the compilation has (combined or not).
    pub(crate) fn groups(&self) -> usize {
        self.combined.len()
    }

    /// ORs each combined group's members among one batch's rows (positions from `start`;
    /// `valid`: the rows with an id, all when `None`) into `out[group]`.
    pub(crate) fn combine(
        &self,
        holds: &BatchHolds,
        valid: Option<&BooleanBuffer>,
        start: u32,
        out: &mut [RoaringBitmap],
    ) {
        if self.groups.is_empty() {
            return;
        }
        let rows = holds.rows;
        let batch = Batch {
            holds,
            all: ones(rows),
            valid: valid.map(words_of).unwrap_or_else(|| ones(rows)),
        };
        let mut slots: Vec<Holds> = Vec::with_capacity(self.groups.len());
        for combined in &self.groups {
            let mut members = batch.union(&combined.include, &slots);
            if members.iter().any(|w| *w != 0) && !combined.exclude.is_empty() {
                let excluded = batch.union(&combined.exclude, &slots);
                for (m, e) in members.iter_mut().zip(&excluded) {
                    *m &= !e;
                }
            }
            for (m, v) in members.iter_mut().zip(&batch.valid) {
                *m &= v;
            }
            let result = if members.iter().all(|w| *w == 0) {
                Holds::Nowhere
            } else {
                let bits = BooleanBuffer::new(Buffer::from_vec(members), 0, rows);
                out[combined.group] |= super::bitmap_from_bits(start, &bits);
                Holds::Rows(bits)
            };
            slots.push(result);
        }
    }
}

/// One batch, as the clauses read it.
struct Batch<'a> {
    holds: &'a BatchHolds,
    /// Every row.
    all: Vec<u64>,
    /// The rows with an id.
    valid: Vec<u64>,
}

impl Batch<'_> {
    /// The OR of `clauses` (none: no row).
    fn union(&self, clauses: &[Clause], slots: &[Holds]) -> Vec<u64> {
        let mut acc = vec![0u64; self.all.len()];
        for clause in clauses {
            let words = self.clause(clause, slots);
            for (a, w) in acc.iter_mut().zip(&words) {
                *a |= w;
            }
        }
        acc
    }

    fn clause(&self, clause: &Clause, slots: &[Holds]) -> Vec<u64> {
        match clause.mode {
            Match::All => {
                // No operand: every customer.
                let mut acc = self.valid.clone();
                for operand in &clause.operands {
                    self.apply(&mut acc, Op::And, *operand, slots);
                    if acc.iter().all(|w| *w == 0) {
                        break;
                    }
                }
                acc
            }
            Match::Any => {
                let mut acc = vec![0u64; self.all.len()];
                for operand in &clause.operands {
                    self.apply(&mut acc, Op::Or, *operand, slots);
                }
                acc
            }
        }
    }

    fn apply(&self, acc: &mut [u64], op: Op, operand: Operand, slots: &[Holds]) {
        let (holds, negated) = match operand {
            Operand::Condition(c) => (&self.holds.conditions[c], false),
            Operand::Group { slot, negated } => (&slots[slot], negated),
        };
        if negated {
            // The complement among customers.
            match holds {
                Holds::Nowhere => apply_words(acc, op, self.valid.iter().copied()),
                Holds::Everywhere => apply_words(acc, op, std::iter::repeat(0)),
                Holds::Rows(bits) => apply_words(
                    acc,
                    op,
                    self.valid
                        .iter()
                        .zip(bits.bit_chunks().iter_padded())
                        .map(|(v, b)| v & !b),
                ),
            }
            return;
        }
        match (holds, op) {
            (Holds::Nowhere, Op::And) => acc.fill(0),
            (Holds::Nowhere, Op::Or) | (Holds::Everywhere, Op::And) => {}
            (Holds::Everywhere, Op::Or) => acc.copy_from_slice(&self.all),
            (Holds::Rows(bits), op) => apply_words(acc, op, bits.bit_chunks().iter_padded()),
        }
    }
}

fn apply_words(acc: &mut [u64], op: Op, words: impl Iterator<Item = u64>) {
    match op {
        Op::And => acc.iter_mut().zip(words).for_each(|(a, w)| *a &= w),
        Op::Or => acc.iter_mut().zip(words).for_each(|(a, w)| *a |= w),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitmap::algebra;
    use crate::evaluate::statics::LocatedStatics;

    /// A compilation of `groups` (include, exclude) over `conditions` conditions.
    /// (Group 0 with a static list when `with_statics`.)
    fn compiled(
        conditions: usize,
        groups: Vec<(Vec<Formula>, Vec<Formula>)>,
        with_statics: bool,
    ) -> Compiled {
        use crate::compile::CompiledGroup;
        use crate::definition::{Group, Statics};
        Compiled {
            conditions: (0..conditions)
                .map(|i| datafusion::prelude::lit(i as i64))
                .collect(),
            events: Vec::new(),
            groups: groups
                .into_iter()
                .enumerate()
                .map(|(i, (include, exclude))| CompiledGroup {
                    group: Group {
                        id: format!("g{i}"),
                        name: None,
                        description: None,
                        file: format!("g{i}.toml"),
                        include: Vec::new(),
                        exclude: Vec::new(),
                        statics: Statics {
                            include: Vec::new(),
                            exclude: Vec::new(),
                            include_from: (i == 0 && with_statics).then(|| "ids.csv".into()),
                            exclude_from: None,
                        },
                        definition_hash: String::new(),
                    },
                    include,
                    exclude,
                })
                .collect(),
        }
    }

    fn all(terms: Vec<Term>) -> Formula {
        Formula {
            mode: Match::All,
            terms,
        }
    }

    fn any(terms: Vec<Term>) -> Formula {
        Formula {
            mode: Match::Any,
            terms,
        }
    }

    fn group(index: usize, negated: bool) -> Term {
        Term::Group { index, negated }
    }

    /// The scan's combination, batch by batch, equals the algebra on whole masks.
    #[test]
    fn combining_by_batch_equals_the_algebra_on_whole_masks() {
        use Term::Condition as C;
        let compiled = compiled(
            4,
            vec![
                (vec![all(vec![C(0), C(1)])], vec![]),
                (
                    vec![any(vec![C(2), C(3)]), all(vec![])],
                    vec![all(vec![C(0)])],
                ),
                (
                    vec![all(vec![group(0, true), C(3)])],
                    vec![any(vec![group(1, false)])],
                ),
                (vec![any(vec![])], vec![]),
                (vec![all(vec![group(2, false), group(0, true)])], vec![]),
            ],
            false,
        );
        let rows = 300usize;
        // Conditions with every shape a batch can give: a pattern, everywhere, nowhere.
        let condition = |c: usize, row: usize| match c {
            0 => row.is_multiple_of(3),
            1 => !row.is_multiple_of(5),
            2 => true,
            _ => row % 7 == 1,
        };
        let valid_row = |row: usize| row % 11 != 4;
        let universe: RoaringBitmap = (0..rows as u32)
            .filter(|r| valid_row(*r as usize))
            .collect();
        let masks: Vec<RoaringBitmap> = (0..4)
            .map(|c| {
                (0..rows as u32)
                    .filter(|r| condition(c, *r as usize) && valid_row(*r as usize))
                    .collect()
            })
            .collect();
        let statics = vec![LocatedStatics::default(); 5];
        let expected = algebra::members(&compiled, &universe, &masks, Vec::new(), &statics);

        let plan = InScan::plan(&compiled, 4);
        assert!((0..5).all(|g| plan.combines(g)));
        assert!((0..4).all(|c| !plan.keeps(c)));
        let mut out = vec![RoaringBitmap::new(); 5];
        for (start, len) in [(0usize, 130usize), (130, 64), (194, 106)] {
            let mut holds = BatchHolds::new(4, len);
            for c in 0..4 {
                let bits = BooleanBuffer::from_iter((start..start + len).map(|r| condition(c, r)));
                if c == 2 {
                    holds.conditions[c] = Holds::Everywhere;
                } else {
                    holds.set(c, bits);
                }
            }
            let valid = BooleanBuffer::from_iter((start..start + len).map(valid_row));
            plan.combine(&holds, Some(&valid), start as u32, &mut out);
        }
        assert_eq!(out, expected);
    }

    /// A group referencing a group with static ids is left to the algebra after the scan,
    /// and so are the groups that reference it; its conditions' masks are kept.
    #[test]
    fn references_to_groups_with_static_ids_are_combined_after_the_scan() {
        use Term::Condition as C;
        let compiled = compiled(
            3,
            vec![
                (vec![all(vec![C(0)])], vec![]),
                (vec![all(vec![group(0, false), C(1)])], vec![]),
                (vec![all(vec![group(1, false)])], vec![]),
                (vec![all(vec![C(2)])], vec![]),
            ],
            true,
        );
        let plan = InScan::plan(&compiled, 4);
        assert_eq!(
            (0..4).map(|g| plan.combines(g)).collect::<Vec<_>>(),
            [true, false, false, true]
        );
        assert_eq!(
            (0..4).map(|c| plan.keeps(c)).collect::<Vec<_>>(),
            [false, true, false, true],
            "condition 1 (group 1) and the ad-hoc condition 3 are kept"
        );
    }
}
