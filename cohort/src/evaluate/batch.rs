//! One batch's result for each condition of the scan: nowhere, everywhere, or a bitset of
//! its rows, as the evaluators give it and before anything turns it into a bitmap.

use datafusion::arrow::buffer::{BooleanBuffer, Buffer};
use roaring::RoaringBitmap;

use super::bitmap_from_bits;

/// Where one condition holds in one batch.
#[derive(Debug, Clone, Default)]
pub(crate) enum Holds {
    /// On no row.
    #[default]
    Nowhere,
    /// On every row.
    Everywhere,
    /// On the set rows (as many bits as the batch has rows).
    Rows(BooleanBuffer),
}

/// Every condition's result over the `rows` rows of one batch.
#[derive(Debug)]
pub(crate) struct BatchHolds {
    pub(crate) rows: usize,
    pub(crate) conditions: Vec<Holds>,
}

impl BatchHolds {
    /// `conditions` results over `rows` rows, each `Nowhere` until set.
    pub(crate) fn new(conditions: usize, rows: usize) -> BatchHolds {
        BatchHolds {
            rows,
            conditions: vec![Holds::Nowhere; conditions],
        }
    }

    /// Condition `c` holds on the set bits of `bits`.
    pub(crate) fn set(&mut self, c: usize, bits: BooleanBuffer) {
        debug_assert_eq!(bits.len(), self.rows);
        self.conditions[c] = if bits.count_set_bits() == 0 {
            Holds::Nowhere
        } else {
            Holds::Rows(bits)
        };
    }

    /// Condition `c` holds on the rows whose bit is set in `words` (bits past `rows`
    /// zero).
    pub(crate) fn set_words(&mut self, c: usize, words: Vec<u64>) {
        self.conditions[c] = if words.iter().all(|w| *w == 0) {
            Holds::Nowhere
        } else {
            Holds::Rows(BooleanBuffer::new(Buffer::from_vec(words), 0, self.rows))
        };
    }

    /// ORs where condition `c` holds, the batch's rows being positions from `start`, into
    /// `mask`.
    pub(crate) fn or_into(&self, c: usize, start: u32, mask: &mut RoaringBitmap) {
        match &self.conditions[c] {
            Holds::Nowhere => {}
            Holds::Everywhere => {
                mask.insert_range(start..start + self.rows as u32);
            }
            Holds::Rows(bits) => *mask |= bitmap_from_bits(start, bits),
        }
    }
}

/// 64-bit words of `rows` bits, all set (bits past `rows` clear).
pub(crate) fn ones(rows: usize) -> Vec<u64> {
    let mut words = vec![u64::MAX; rows.div_ceil(64)];
    if !rows.is_multiple_of(64) {
        if let Some(last) = words.last_mut() {
            *last = (1u64 << (rows % 64)) - 1;
        }
    }
    words
}

/// The words of `bits` (bits past its length clear).
pub(crate) fn words_of(bits: &BooleanBuffer) -> Vec<u64> {
    bits.bit_chunks().iter_padded().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ones_sets_exactly_the_rows() {
        for rows in [0, 1, 63, 64, 65, 130] {
            let words = ones(rows);
            let set: u32 = words.iter().map(|w| w.count_ones()).sum();
            assert_eq!(set as usize, rows, "{rows} rows");
            assert_eq!(words.len(), rows.div_ceil(64));
        }
    }

    #[test]
    fn words_round_trip_through_a_bitmap_at_any_start() {
        let bits = BooleanBuffer::from_iter((0..130).map(|i| i % 3 == 0 || i == 129));
        let sliced = bits.slice(1, 128);
        let mut holds = BatchHolds::new(1, 128);
        holds.set_words(0, words_of(&sliced));
        let mut bitmap = RoaringBitmap::new();
        holds.or_into(0, 70_000, &mut bitmap);
        let expected: Vec<u32> = (0..128)
            .filter(|i| sliced.value(*i as usize))
            .map(|i| 70_000 + i)
            .collect();
        assert_eq!(bitmap.iter().collect::<Vec<_>>(), expected);
    }
}
