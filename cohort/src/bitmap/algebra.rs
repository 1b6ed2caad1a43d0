//! SPEC §2.1 as bitmap algebra:
//! `members = ((OR include) − (OR exclude) ∪ static include) − static exclude`.

use roaring::RoaringBitmap;

use crate::compile::{Compiled, Formula, Term};
use crate::definition::Match;
use crate::evaluate::statics::LocatedStatics;

/// Final membership of every compiled group, in the same (dependency) order, over the
/// position space of `universe` / `masks`. `statics[i]` belongs to `compiled.groups[i]`;
/// `combined[i]`, when there, is `compiled.groups[i]`'s clauses already combined (by the
/// scan: `evaluate::InScan`), and the masks of its conditions are not read.
pub(crate) fn members(
    compiled: &Compiled,
    universe: &RoaringBitmap,
    masks: &[RoaringBitmap],
    mut combined: Vec<Option<RoaringBitmap>>,
    statics: &[LocatedStatics],
) -> Vec<RoaringBitmap> {
    combined.resize(compiled.groups.len(), None);
    let mut results: Vec<RoaringBitmap> = Vec::with_capacity(compiled.groups.len());
    for ((group, statics), combined) in compiled.groups.iter().zip(statics).zip(combined) {
        let ctx = Operands {
            universe,
            masks,
            groups: &results,
        };
        let mut members = combined.unwrap_or_else(|| {
            let include = union(group.include.iter().map(|f| ctx.formula(f)));
            let exclude = union(group.exclude.iter().map(|f| ctx.formula(f)));
            include - exclude
        });
        members |= &statics.include;
        members -= &statics.exclude;
        results.push(members);
    }
    results
}

/// The customers each include clause and each exclude clause of `compiled.groups[group]`
/// matches on its own (before the other clauses and the static overrides apply), given
/// `members` as [`members`] returned them.
pub(crate) fn clause_sizes(
    compiled: &Compiled,
    group: usize,
    universe: &RoaringBitmap,
    masks: &[RoaringBitmap],
    members: &[RoaringBitmap],
) -> (Vec<u64>, Vec<u64>) {
    let ctx = Operands {
        universe,
        masks,
        groups: members,
    };
    let g = &compiled.groups[group];
    let sizes = |formulas: &[Formula]| formulas.iter().map(|f| ctx.formula(f).len()).collect();
    (sizes(&g.include), sizes(&g.exclude))
}

struct Operands<'a> {
    universe: &'a RoaringBitmap,
    masks: &'a [RoaringBitmap],
    groups: &'a [RoaringBitmap],
}

impl Operands<'_> {
    fn term(&self, term: Term) -> std::borrow::Cow<'_, RoaringBitmap> {
        use std::borrow::Cow;
        match term {
            Term::Condition(i) => Cow::Borrowed(&self.masks[i]),
            Term::Group {
                index,
                negated: false,
            } => Cow::Borrowed(&self.groups[index]),
            Term::Group {
                index,
                negated: true,
            } => Cow::Owned(self.universe - &self.groups[index]),
        }
    }

    fn formula(&self, formula: &Formula) -> RoaringBitmap {
        match formula.mode {
            Match::All => {
                // Smallest operand first keeps intermediate results small.
                let mut operands: Vec<_> = formula.terms.iter().map(|t| self.term(*t)).collect();
                operands.sort_by_key(|b| b.len());
                let mut iter = operands.into_iter();
                let Some(first) = iter.next() else {
                    return self.universe.clone();
                };
                let mut acc = first.into_owned();
                for b in iter {
                    if acc.is_empty() {
                        break;
                    }
                    acc &= b.as_ref();
                }
                acc
            }
            Match::Any => union(formula.terms.iter().map(|t| self.term(*t).into_owned())),
        }
    }
}

fn union(bitmaps: impl Iterator<Item = RoaringBitmap>) -> RoaringBitmap {
    bitmaps.fold(RoaringBitmap::new(), |mut acc, b| {
        acc |= b;
        acc
    })
}
