//! Remapping a word at a time: when scan positions map to bits in long runs of consecutive
//! positions (integer ids sorted within each scanned batch, the batches taking positions
//! in the order they arrive), a dense bitmap moves run by run as 64-bit words instead of
//! member by member.

use roaring::RoaringBitmap;

use crate::portable::{self, Container};

/// Runs shorter than this on average are not worth it: member by member is as fast.
const MIN_AVERAGE_RUN: usize = 256;

/// One run: `len` positions from `position` map to as many bits from `bit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    position: u32,
    bit: u32,
    len: u32,
}

/// The runs of a mapping, in position order.
#[derive(Debug, Clone, Default)]
pub(super) struct Runs {
    runs: Vec<Run>,
}

impl Runs {
    /// The runs of `pos_to_bit` (positions mapping to `u32::MAX` have no bit and belong to
    /// no run), or `None` when they are too short on average to pay.
    pub(super) fn of(pos_to_bit: &[u32]) -> Option<Runs> {
        let limit = pos_to_bit.len() / MIN_AVERAGE_RUN + 1;
        let mut runs: Vec<Run> = Vec::new();
        for (position, &bit) in pos_to_bit.iter().enumerate() {
            if bit == u32::MAX {
                continue;
            }
            let position = position as u32;
            match runs.last_mut() {
                Some(run)
                    if run.position + run.len == position
                        && run.bit.checked_add(run.len) == Some(bit) =>
                {
                    run.len += 1
                }
                _ => {
                    if runs.len() == limit {
                        return None;
                    }
                    runs.push(Run {
                        position,
                        bit,
                        len: 1,
                    });
                }
            }
        }
        Some(Runs { runs })
    }

    /// `positions` (all of them with a bit) moved run by run into a bit space of
    /// `bit_space` bits.
    pub(super) fn remap(&self, positions: &RoaringBitmap, bit_space: u64) -> RoaringBitmap {
        let source = words(positions);
        let mut target = vec![0u64; (bit_space as usize).div_ceil(64)];
        for run in &self.runs {
            copy_bits(
                &source,
                run.position as usize,
                &mut target,
                run.bit as usize,
                run.len as usize,
            );
        }
        let bytes: Vec<u8> = target.iter().flat_map(|w| w.to_le_bytes()).collect();
        RoaringBitmap::from_lsb0_bytes(0, &bytes)
    }
}

/// The bitmap as plain words (bit n of the bitmap = bit n % 64 of word n / 64), read
/// through its portable serialization: the `roaring` crate shows its containers only
/// there, and a dense container is written as the very words wanted.
fn words(bitmap: &RoaringBitmap) -> Vec<u64> {
    let Some(max) = bitmap.max() else {
        return Vec::new();
    };
    let mut bytes = Vec::with_capacity(bitmap.serialized_size());
    bitmap
        .serialize_into(&mut bytes)
        .expect("writing to a Vec does not fail");
    let parsed = portable::parse_group(&bytes).expect("roaring writes the portable format");
    let mut words = vec![0u64; (max as usize / 64) + 1];
    for (key, container) in parsed.containers() {
        let first = key as usize * portable::WORDS_PER_BITMAP;
        match container {
            Container::Empty => {}
            Container::Words(from) => {
                let end = (first + from.len()).min(words.len());
                words[first..end].copy_from_slice(&from[..end - first]);
            }
            Container::Values(values) => {
                for &v in values {
                    words[first + (v as usize >> 6)] |= 1 << (v & 63);
                }
            }
        }
    }
    words
}

/// ORs `len` bits of `source` from bit `from` into `target` from bit `to`, 64 at a time.
fn copy_bits(source: &[u64], from: usize, target: &mut [u64], to: usize, len: usize) {
    let mut done = 0;
    while done < len {
        let n = (len - done).min(64);
        let mut chunk = read64(source, from + done);
        if n < 64 {
            chunk &= (1u64 << n) - 1;
        }
        if chunk != 0 {
            let (word, shift) = ((to + done) / 64, (to + done) % 64);
            target[word] |= chunk << shift;
            if shift != 0 && chunk >> (64 - shift) != 0 {
                target[word + 1] |= chunk >> (64 - shift);
            }
        }
        done += n;
    }
}

/// The 64 bits of `words` from bit `at` (zero past the end).
fn read64(words: &[u64], at: usize) -> u64 {
    let (word, shift) = (at / 64, at % 64);
    let low = words.get(word).copied().unwrap_or(0) >> shift;
    if shift == 0 {
        low
    } else {
        low | words.get(word + 1).copied().unwrap_or(0) << (64 - shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::tests::remapped_one_by_one as one_by_one;

    /// Batches of consecutive ids taking positions out of order (as partitions deliver
    /// them), some positions without an id, and bitmaps sparse, dense and in between:
    /// moved run by run they equal the bitmaps moved member by member.
    #[test]
    fn remapping_by_runs_equals_remapping_each_member() {
        let batches: Vec<(u32, u32)> = vec![
            (70_000, 8_192),
            (0, 8_192),
            (200_003, 5_000),
            (8_192, 8_192),
            (131_000, 65_537),
            (16_384, 1_000),
        ];
        let mut pos_to_bit = Vec::new();
        for (first, len) in &batches {
            pos_to_bit.extend(*first..first + len);
        }
        for p in (0..pos_to_bit.len()).step_by(997) {
            pos_to_bit[p] = u32::MAX;
        }
        let runs = Runs::of(&pos_to_bit).expect("long runs");
        let bit_space = pos_to_bit.iter().filter(|b| **b != u32::MAX).max().unwrap() + 1;
        let universe: Vec<u32> = (0..pos_to_bit.len() as u32)
            .filter(|p| pos_to_bit[*p as usize] != u32::MAX)
            .collect();
        for keep in [1, 2, 3, 7, 1_000] {
            let positions: RoaringBitmap = universe
                .iter()
                .copied()
                .filter(|p| (p.wrapping_mul(2_654_435_761) >> 7) % keep == 0)
                .collect();
            assert_eq!(
                runs.remap(&positions, bit_space as u64),
                one_by_one(&pos_to_bit, &positions),
                "one member in {keep}"
            );
        }
        let mut with_runs = RoaringBitmap::new();
        with_runs.insert_range(5..120_000);
        with_runs.insert_range(150_000..160_000);
        let with_runs = &with_runs & &universe.iter().copied().collect::<RoaringBitmap>();
        assert_eq!(
            runs.remap(&with_runs, bit_space as u64),
            one_by_one(&pos_to_bit, &with_runs)
        );
        assert!(runs
            .remap(&RoaringBitmap::new(), bit_space as u64)
            .is_empty());
    }

    #[test]
    fn scattered_bits_have_no_runs_worth_using() {
        let pos_to_bit: Vec<u32> = (0..10_000u32)
            .map(|p| p.wrapping_mul(7_919) % 10_007)
            .collect();
        assert!(Runs::of(&pos_to_bit).is_none());
    }
}
