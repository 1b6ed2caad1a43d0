//! `starts_with` / `ends_with` patterns of up to 16 bytes, compared whole with each
//! value's first or last 16 bytes read as one `u128`.

use super::{Kind, Text};

/// Longest `starts_with` / `ends_with` pattern compared whole (longer ones are walked).
pub(super) const AFFIX_BYTES: usize = 16;

/// The `starts_with` (or `ends_with`) patterns of at most [`AFFIX_BYTES`] bytes: each
/// value's first (last) 16 bytes read as one number, then, for each length some pattern
/// has, those bytes masked to that length and looked up among the patterns of that
/// length (sorted). Walking an automaton from the value's end costs a dependent table
/// read per byte, and every value of a column (emails ending `.com`) walks several;
/// comparing with each pattern in turn costs a compare per pattern, and a thousand groups
/// have a hundred or more of them on a column, of a dozen lengths at most.
#[derive(Debug)]
pub(super) struct Affixes {
    kind: Kind,
    /// Patterns compared with the value's bytes.
    exact: Vec<Length>,
    /// Patterns compared with its lowered bytes.
    folded: Vec<Length>,
}

/// The patterns of one length: their bytes as [`Affixes::read`] reads a value, sorted,
/// and the leaf of each (leaves are distinct patterns, so one each).
#[derive(Debug)]
struct Length {
    len: usize,
    mask: u128,
    bytes: Vec<u128>,
    leaves: Vec<usize>,
}

impl Affixes {
    /// Whether some pattern is compared with lowered values.
    pub(super) fn has_folded(&self) -> bool {
        !self.folded.is_empty()
    }

    pub(super) fn new(leaves: &[(Kind, bool, String)], kind: Kind) -> Option<Affixes> {
        let collect = |folded: bool| {
            let mut patterns: Vec<(usize, u128, usize)> = leaves
                .iter()
                .enumerate()
                .filter(|(_, (k, f, pattern))| {
                    *k == kind
                        && *f == folded
                        && !pattern.is_empty()
                        && pattern.len() <= AFFIX_BYTES
                })
                .map(|(leaf, (_, _, pattern))| {
                    (pattern.len(), Self::read(kind, pattern.as_bytes()), leaf)
                })
                .collect();
            patterns.sort_unstable();
            let mut lengths: Vec<Length> = Vec::new();
            for (len, bytes, leaf) in patterns {
                if lengths.last().is_none_or(|l| l.len != len) {
                    lengths.push(Length {
                        len,
                        mask: u128::MAX >> (8 * (AFFIX_BYTES - len)),
                        bytes: Vec::new(),
                        leaves: Vec::new(),
                    });
                }
                let length = lengths.last_mut().expect("pushed above");
                length.bytes.push(bytes);
                length.leaves.push(leaf);
            }
            lengths
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

    /// Sets the rows of the leaves of each pattern of `lengths` that `read` (of a value
    /// of `len` bytes) starts (ends) with.
    #[inline]
    fn test(
        lengths: &[Length],
        read: u128,
        len: usize,
        row: usize,
        rows: &mut [u64],
        words: usize,
    ) {
        for length in lengths {
            if len < length.len {
                // Lengths ascend.
                break;
            }
            if let Ok(i) = length.bytes.binary_search(&(read & length.mask)) {
                let leaf = length.leaves[i];
                rows[leaf * words + row / 64] |= 1 << (row % 64);
            }
        }
    }

    /// Sets in `leaf_rows` the rows where each pattern is the value's prefix (suffix):
    /// `text` for the exact patterns, `lowered` (the same rows, when a value is not
    /// ASCII) for the folded ones, whose ASCII letters are lowered here too.
    pub(super) fn run(
        &self,
        text: &Text,
        lowered: Option<&Text>,
        leaf_rows: &mut [u64],
        words: usize,
    ) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Many patterns of each length, looked up by length: every value's prefixes and
    /// suffixes found as `str::starts_with` / `ends_with` find them, exact and folded.
    #[test]
    fn patterns_of_one_length_are_all_found() {
        let values = [
            "anna@mail.com",
            "bob@mail.de",
            "Carl@Mail.COM",
            "a",
            "",
            "zoe@example.co.uk",
            "anna@mail.comx",
        ];
        let patterns = [
            "a",
            "b",
            "z",
            "an",
            "bo",
            "ca",
            "zo",
            ".com",
            ".de",
            "l.com",
            "l.de",
            "uk",
            "co.uk",
            "anna@mail.com",
            "com",
            "omx",
            "mail",
            "x",
            "",
        ];
        let mut text = Text::with_capacity(&values.map(Some));
        for v in values {
            text.push(v);
        }
        for kind in [Kind::StartsWith, Kind::EndsWith] {
            for folded in [false, true] {
                let leaves: Vec<(Kind, bool, String)> = patterns
                    .iter()
                    .map(|p| (kind, folded, p.to_string()))
                    .collect();
                let affixes = Affixes::new(&leaves, kind).expect("patterns");
                let words = 1;
                let mut rows = vec![0u64; leaves.len() * words];
                affixes.run(&text, None, &mut rows, words);
                for (leaf, pattern) in patterns.iter().enumerate() {
                    for (row, value) in values.iter().enumerate() {
                        let value = if folded {
                            value.to_lowercase()
                        } else {
                            value.to_string()
                        };
                        let want = !pattern.is_empty()
                            && match kind {
                                Kind::StartsWith => value.starts_with(pattern),
                                _ => value.ends_with(pattern),
                            };
                        let got = rows[leaf * words] >> row & 1 == 1;
                        assert_eq!(
                            got, want,
                            "{kind:?} folded={folded} {pattern:?} in {value:?}"
                        );
                    }
                }
            }
        }
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
}
