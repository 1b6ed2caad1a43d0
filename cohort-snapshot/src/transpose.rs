//! The 64 × 64 bit-matrix transposition that turns 64 bitmaps' words into one word per
//! member and back: the lookup index's matrix, the remapping of text-id groups and the
//! evaluator's mapping of many conditions to rows all stand on it.

/// Transposes a 64 × 64 bit matrix in place: bit c of `m[r]` becomes bit r of `m[c]`.
/// Swaps ever smaller blocks (32, 16, .., 1): the upper half of each row pair's columns
/// of one with the lower half of the other's (Hacker's Delight §7-3). Compiled twice by
/// `multiversion` and chosen at run time: with AVX2, where the CPU has it, the stages run
/// in 4-word lanes (about 60 ns against 100–160 ns).
#[multiversion::multiversion(targets("x86_64+avx2"))]
pub fn transpose64(m: &mut [u64; 64]) {
    stage::<32>(m, 0x0000_0000_FFFF_FFFF);
    stage::<16>(m, 0x0000_FFFF_0000_FFFF);
    stage::<8>(m, 0x00FF_00FF_00FF_00FF);
    stage::<4>(m, 0x0F0F_0F0F_0F0F_0F0F);
    stage::<2>(m, 0x3333_3333_3333_3333);
    stage::<1>(m, 0x5555_5555_5555_5555);
}

/// One swap stage: rows k and k + J within each block of 2J rows (J a constant, so the
/// loops unroll and vectorize).
#[inline(always)]
fn stage<const J: usize>(m: &mut [u64; 64], mask: u64) {
    let mut base = 0;
    while base < 64 {
        for k in base..base + J {
            let t = ((m[k] >> J) ^ m[k + J]) & mask;
            m[k + J] ^= t;
            m[k] ^= t << J;
        }
        base += 2 * J;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose64_moves_bit_c_of_row_r_to_bit_r_of_row_c() {
        let mut m = [0u64; 64];
        for (r, row) in m.iter_mut().enumerate() {
            *row = (r as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
        let original = m;
        transpose64(&mut m);
        for (r, row) in original.iter().enumerate() {
            for (c, column) in m.iter().enumerate() {
                assert_eq!(column >> r & 1, row >> c & 1, "bit ({r}, {c})");
            }
        }
    }
}
