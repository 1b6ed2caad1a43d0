//! From truth tables over a column's distinct values to rows: each row's key picks its
//! value's result. With many conditions on one column, a word of up to 64 conditions'
//! results per value, and one 64 × 64 bit transpose per 64 rows, instead of one pass over
//! the keys per condition.

use cohort_snapshot::transpose::transpose64;
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer};

use super::batch::{BatchHolds, Holds};

/// Conditions with rows of both kinds mapped one at a time below this many, in blocks of
/// 64 from it: a transpose costs about what four single passes do.
const TRANSPOSE_FROM: usize = 6;

/// One condition's result for each distinct value (the null value included).
#[derive(Debug)]
pub(crate) struct Table {
    holds: Vec<bool>,
    any: bool,
    all: bool,
}

impl Table {
    /// A table of `holds[v]`: the result for value `v`.
    pub(crate) fn new(holds: Vec<bool>) -> Table {
        Table {
            any: holds.iter().any(|h| *h),
            all: holds.iter().all(|h| *h),
            holds,
        }
    }
}

/// The keys of a batch's rows into the distinct values.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keys<'a> {
    /// Each row's key (anything under a null).
    pub(crate) keys: &'a [i32],
    /// The rows whose key is null, which take the value `null_key`.
    pub(crate) nulls: Option<&'a NullBuffer>,
    pub(crate) null_key: usize,
}

impl Keys<'_> {
    fn of(&self, row: usize) -> usize {
        match self.nulls {
            Some(valid) if valid.is_null(row) => self.null_key,
            _ => self.keys[row] as usize,
        }
    }
}

/// Sets, in `holds`, where each `(condition, table)` holds among the rows of `keys`.
pub(crate) fn map<'t>(
    tables: impl Iterator<Item = (usize, &'t Table)>,
    keys: Keys<'_>,
    holds: &mut BatchHolds,
) {
    let mut mixed = Vec::new();
    for (condition, table) in tables {
        holds.conditions[condition] = if !table.any {
            Holds::Nowhere
        } else if table.all {
            Holds::Everywhere
        } else {
            mixed.push((condition, table));
            continue;
        };
    }
    if mixed.len() < TRANSPOSE_FROM {
        for (condition, table) in mixed {
            let bits = BooleanBuffer::collect_bool(keys.keys.len(), |row| {
                table.holds.get(keys.of(row)).copied().unwrap_or(false)
            });
            holds.set(condition, bits);
        }
        return;
    }
    for block in mixed.chunks(64) {
        let words = transposed(block.iter().map(|(_, t)| *t), keys);
        for ((condition, _), words) in block.iter().zip(words) {
            holds.set_words(*condition, words);
        }
    }
}

/// The rows' words of each of up to 64 tables.
fn transposed<'t>(
    tables: impl ExactSizeIterator<Item = &'t Table>,
    keys: Keys<'_>,
) -> Vec<Vec<u64>> {
    let count = tables.len();
    let mut truth: Vec<u64> = Vec::new();
    for (j, table) in tables.enumerate() {
        truth.resize(truth.len().max(table.holds.len()), 0);
        for (value, holds) in table.holds.iter().enumerate() {
            truth[value] |= (*holds as u64) << j;
        }
    }
    let rows = keys.keys.len();
    let words = rows.div_ceil(64);
    let mut out = vec![vec![0u64; words]; count];
    let mut block = [0u64; 64];
    for w in 0..words {
        let first = w * 64;
        let n = (rows - first).min(64);
        match keys.nulls {
            None => {
                for (slot, key) in block.iter_mut().zip(&keys.keys[first..first + n]) {
                    *slot = truth.get(*key as usize).copied().unwrap_or(0);
                }
            }
            Some(_) => {
                for (r, slot) in block[..n].iter_mut().enumerate() {
                    *slot = truth.get(keys.of(first + r)).copied().unwrap_or(0);
                }
            }
        }
        block[n..].fill(0);
        transpose64(&mut block);
        for (words, column) in out.iter_mut().zip(&block) {
            words[w] = *column;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every way to map: one at a time, in blocks (more than 64 conditions), with and
    /// without null keys, against the table looked up row by row.
    #[test]
    fn mapping_equals_looking_each_row_up() {
        let values = 7;
        let rows = 200;
        let keys: Vec<i32> = (0..rows)
            .map(|r| ((r * 5 + r / 3) % values) as i32)
            .collect();
        let valid = NullBuffer::from_iter((0..rows).map(|r| r % 9 != 2));
        for conditions in [1, 5, 6, 70] {
            let tables: Vec<Table> = (0..conditions)
                .map(|c| {
                    // The last entry is the null value's.
                    Table::new(
                        (0..=values)
                            .map(|v| (v * 7 + c * 3) % 5 < 2 + c % 3)
                            .collect(),
                    )
                })
                .collect();
            for nulls in [None, Some(&valid)] {
                let keys = Keys {
                    keys: &keys,
                    nulls,
                    null_key: values,
                };
                let mut holds = BatchHolds::new(conditions, rows);
                map(tables.iter().enumerate(), keys, &mut holds);
                for (c, table) in tables.iter().enumerate() {
                    let mut got = roaring::RoaringBitmap::new();
                    holds.or_into(c, 0, &mut got);
                    let expected: roaring::RoaringBitmap = (0..rows)
                        .filter(|r| table.holds[keys.of(*r)])
                        .map(|r| r as u32)
                        .collect();
                    assert_eq!(got, expected, "{conditions} conditions, condition {c}");
                }
            }
        }
    }
}
