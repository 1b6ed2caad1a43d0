//! A group's `[split]` (SPEC §7) as a typed value: its salt and its arms, each a range of
//! consecutive buckets (`ids::bucket`), percentages read once as integer basis points.
//! Not yet read from group files: publishing arms is issue 38's next step.

use std::ops::Range;

use super::is_valid_group_id;
use crate::ids::BUCKETS;

/// A split of a group's members into arms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// What the buckets are salted with (the group id when none is written).
    pub salt: String,
    /// The arms in the order written; their buckets are consecutive and cover `0..10000`.
    pub arms: Vec<Arm>,
}

/// One arm: published as the group `<group>.<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arm {
    /// Its name.
    pub name: String,
    /// Its buckets, `[lo, hi)`.
    pub buckets: Range<u16>,
}

/// One arm as written: a name and a percentage (a TOML or JSON number).
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenArm {
    /// The arm's name.
    pub name: String,
    /// Its percentage of the group.
    pub percent: f64,
}

/// What is wrong with a split, and where (a path below the group: `split.arms[1].percent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitProblem {
    /// The key it is about.
    pub path: String,
    /// What is wrong, quoting the input.
    pub message: String,
}

impl Split {
    /// The split of group `group` with `salt` (if written) and `arms`, or every problem
    /// with them.
    pub fn new(
        group: &str,
        salt: Option<&str>,
        arms: &[WrittenArm],
    ) -> Result<Split, Vec<SplitProblem>> {
        let mut problems = Vec::new();
        let mut problem =
            |path: String, message: String| problems.push(SplitProblem { path, message });
        if salt.is_some_and(|s| s.is_empty()) {
            problem(
                "split.salt".into(),
                "salt is empty: write a non-empty string, or leave it out for the group id".into(),
            );
        }
        if arms.len() < 2 {
            problem(
                "split.arms".into(),
                format!("a split has at least two arms; found {}", arms.len()),
            );
        }
        let mut basis_points = Vec::with_capacity(arms.len());
        for (i, arm) in arms.iter().enumerate() {
            if !is_valid_group_id(&arm.name) || arm.name.len() > 32 {
                problem(
                    format!("split.arms[{i}].name"),
                    format!(
                        "invalid arm name '{}': arm names match [a-z0-9][a-z0-9_-]{{0,31}}",
                        arm.name
                    ),
                );
            } else if arms[..i].iter().any(|a| a.name == arm.name) {
                problem(
                    format!("split.arms[{i}].name"),
                    format!("arm '{}' is named twice", arm.name),
                );
            }
            match basis_points_of(arm.percent) {
                Some(points) if points > 0 => basis_points.push(points),
                Some(_) => problem(
                    format!("split.arms[{i}].percent"),
                    format!("percent {} of arm '{}' is not above 0", arm.percent, arm.name),
                ),
                None => problem(
                    format!("split.arms[{i}].percent"),
                    format!(
                        "percent {} of arm '{}' has more than two decimals or is not between 0 and 100",
                        arm.percent, arm.name
                    ),
                ),
            }
        }
        let total: u32 = basis_points.iter().map(|p| *p as u32).sum();
        if basis_points.len() == arms.len() && total != BUCKETS as u32 {
            problem(
                "split.arms".into(),
                format!(
                    "the arms' percentages sum to {}, not 100",
                    format_percent(total)
                ),
            );
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut next = 0u16;
        let arms = arms
            .iter()
            .zip(basis_points)
            .map(|(arm, points)| {
                let buckets = next..next + points;
                next = buckets.end;
                Arm {
                    name: arm.name.clone(),
                    buckets,
                }
            })
            .collect();
        Ok(Split {
            salt: salt.unwrap_or(group).to_string(),
            arms,
        })
    }

    /// The arm whose buckets hold `bucket`.
    pub fn arm_of(&self, bucket: u16) -> Option<&Arm> {
        self.arms.iter().find(|a| a.buckets.contains(&bucket))
    }
}

/// A percentage with at most two decimals as basis points (`33.33` → 3333); `None` for
/// more decimals or outside 0..=100.
fn basis_points_of(percent: f64) -> Option<u16> {
    let scaled = percent * 100.0;
    let points = scaled.round();
    ((scaled - points).abs() < 1e-6 && (0.0..=BUCKETS as f64).contains(&points))
        .then_some(points as u16)
}

/// Basis points as a percentage (`9999` → `99.99`).
fn format_percent(points: u32) -> String {
    match points % 100 {
        0 => format!("{}", points / 100),
        rest => format!("{}.{:02}", points / 100, rest)
            .trim_end_matches('0')
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arms(written: &[(&str, f64)]) -> Vec<WrittenArm> {
        written
            .iter()
            .map(|(name, percent)| WrittenArm {
                name: name.to_string(),
                percent: *percent,
            })
            .collect()
    }

    #[test]
    fn arms_take_consecutive_buckets_in_the_order_written() {
        let split = Split::new(
            "winter",
            Some("winter-2026"),
            &arms(&[("control", 10.0), ("a", 45.0), ("b", 45.0)]),
        )
        .unwrap();
        assert_eq!(split.salt, "winter-2026");
        let buckets: Vec<_> = split.arms.iter().map(|a| a.buckets.clone()).collect();
        assert_eq!(buckets, vec![0..1000, 1000..5500, 5500..10000]);
        assert_eq!(split.arm_of(999).unwrap().name, "control");
        assert_eq!(split.arm_of(9999).unwrap().name, "b");
    }

    #[test]
    fn percentages_are_read_as_basis_points() {
        let split = Split::new(
            "g",
            None,
            &arms(&[("a", 33.33), ("b", 33.33), ("c", 33.34)]),
        )
        .unwrap();
        assert_eq!(split.salt, "g");
        let sizes: Vec<_> = split.arms.iter().map(|a| a.buckets.len()).collect();
        assert_eq!(sizes, vec![3333, 3333, 3334]);
    }

    #[test]
    fn bad_splits_say_what_and_where() {
        // (salt, arms, [(path, a piece of the message)])
        type Case = (
            Option<&'static str>,
            Vec<(&'static str, f64)>,
            Vec<(&'static str, &'static str)>,
        );
        let cases: Vec<Case> = vec![
            (
                None,
                vec![("a", 50.0), ("b", 49.0)],
                vec![("split.arms", "sum to 99, not 100")],
            ),
            (
                None,
                vec![("a", 100.0)],
                vec![("split.arms", "at least two arms")],
            ),
            (
                None,
                vec![("a", 33.333), ("b", 66.667)],
                vec![
                    ("split.arms[0].percent", "more than two decimals"),
                    ("split.arms[1].percent", "more than two decimals"),
                ],
            ),
            (
                None,
                vec![("a", 50.0), ("a", 50.0)],
                vec![("split.arms[1].name", "named twice")],
            ),
            (
                None,
                vec![("A", 50.0), ("b.c", 50.0)],
                vec![
                    ("split.arms[0].name", "invalid arm name 'A'"),
                    ("split.arms[1].name", "invalid arm name 'b.c'"),
                ],
            ),
            (
                None,
                vec![("a", 0.0), ("b", 100.0)],
                vec![("split.arms[0].percent", "not above 0")],
            ),
            (
                None,
                vec![("a", -5.0), ("b", 105.0)],
                vec![
                    ("split.arms[0].percent", "not between 0 and 100"),
                    ("split.arms[1].percent", "not between 0 and 100"),
                ],
            ),
            (
                Some(""),
                vec![("a", 50.0), ("b", 50.0)],
                vec![("split.salt", "salt is empty")],
            ),
            (
                None,
                vec![("a", 99.99), ("b", 0.02)],
                vec![("split.arms", "sum to 100.01, not 100")],
            ),
        ];
        for (salt, written, expected) in cases {
            let problems = Split::new("g", salt, &arms(&written)).unwrap_err();
            assert_eq!(problems.len(), expected.len(), "{written:?}: {problems:?}");
            for (problem, (path, message)) in problems.iter().zip(&expected) {
                assert_eq!(problem.path, *path, "{written:?}");
                assert!(
                    problem.message.contains(message),
                    "{written:?}: {}",
                    problem.message
                );
            }
        }
    }

    /// Observed arm shares lie within a binomial 99.9% interval of their percentages at
    /// 1M customers, for fixed salts, integer and string ids (a fixed test, not a flaky
    /// one: the salts and ids are the same every run).
    #[test]
    fn arm_shares_match_their_percentages_at_a_million_customers() {
        use crate::ids::{bucket, IdKey};
        let n = 1_000_000u64;
        for salt in ["winter-2026", "holdout", "g"] {
            let split = Split::new(
                "g",
                Some(salt),
                &arms(&[("control", 10.0), ("a", 45.0), ("b", 33.33), ("c", 11.67)]),
            )
            .unwrap();
            for string_ids in [false, true] {
                let mut counts = vec![0u64; split.arms.len()];
                for i in 0..n {
                    let id = match string_ids {
                        true => IdKey::Str(format!("C-{i:07}")),
                        false => IdKey::Int(i as i128 * 7919 - 3_000_000),
                    };
                    let b = bucket(salt, &id);
                    let arm = split
                        .arms
                        .iter()
                        .position(|a| a.buckets.contains(&b))
                        .unwrap();
                    counts[arm] += 1;
                }
                for (arm, count) in split.arms.iter().zip(&counts) {
                    let p = arm.buckets.len() as f64 / BUCKETS as f64;
                    let sd = (n as f64 * p * (1.0 - p)).sqrt();
                    // 99.9% two-sided: 3.29 standard deviations.
                    let off = (*count as f64 - n as f64 * p).abs();
                    assert!(
                        off <= 3.29 * sd,
                        "salt {salt}, string ids {string_ids}: arm {} has {count} of {n}, expected {:.0} ± {:.0}",
                        arm.name,
                        n as f64 * p,
                        3.29 * sd
                    );
                }
            }
        }
    }

    proptest::proptest! {
        /// Any percentages with two decimals summing to 100 give arms that are disjoint
        /// and cover every bucket, each the size its percentage says.
        #[test]
        fn arms_are_disjoint_and_cover_every_bucket(
            mut cuts in proptest::collection::vec(1u16..10_000, 1..7)
        ) {
            cuts.sort_unstable();
            cuts.dedup();
            let mut bounds = vec![0u16];
            bounds.extend(cuts);
            bounds.push(BUCKETS);
            let written: Vec<WrittenArm> = bounds
                .windows(2)
                .enumerate()
                .map(|(i, w)| WrittenArm { name: format!("arm{i}"), percent: (w[1] - w[0]) as f64 / 100.0 })
                .collect();
            let split = Split::new("g", None, &written).unwrap();
            let mut next = 0;
            for (arm, w) in split.arms.iter().zip(bounds.windows(2)) {
                proptest::prop_assert_eq!(arm.buckets.start, next);
                proptest::prop_assert_eq!(arm.buckets.len(), (w[1] - w[0]) as usize);
                next = arm.buckets.end;
            }
            proptest::prop_assert_eq!(next, BUCKETS);
        }
    }
}
