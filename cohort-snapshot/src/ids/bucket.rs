//! A customer's bucket for splits and the global holdout (SPEC §7): `XXH64(salt ‖ 0x1F ‖
//! id, seed 0) mod 10000`, where `id` is the canonical text of the customer id (integers
//! in decimal, strings as they are, UTF-8). It depends on the salt and the id alone, so a
//! customer keeps its arm while the audience around it changes.

use std::hash::Hasher;

use twox_hash::XxHash64;

use super::IdKey;

/// Buckets per split: percentages are basis points of them.
pub const BUCKETS: u16 = 10_000;

/// The byte between the salt and the id (ASCII unit separator).
const SEPARATOR: u8 = 0x1F;

/// The bucket (`0..10000`) of the customer whose id's canonical text is `id`, under `salt`.
pub fn bucket_of_text(salt: &str, id: &str) -> u16 {
    let mut hasher = XxHash64::with_seed(0);
    hasher.write(salt.as_bytes());
    hasher.write(&[SEPARATOR]);
    hasher.write(id.as_bytes());
    (hasher.finish() % BUCKETS as u64) as u16
}

/// The bucket of `id` under `salt`.
pub fn bucket(salt: &str, id: &IdKey) -> u16 {
    match id {
        IdKey::Str(text) => bucket_of_text(salt, text),
        IdKey::Int(i) => bucket_of_text(salt, &i.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The golden vectors (salt, id, bucket) of docs/snapshot-format.md, which
    /// tests/python/test_buckets.py checks against Python's xxhash.
    fn golden() -> Vec<(String, String, u16)> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/snapshot-format.md");
        let text = std::fs::read_to_string(path).expect("docs/snapshot-format.md");
        let section = &text[text.find("## A customer's bucket").expect("the section")..];
        let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
        let cell = |c: &str| match c.trim() {
            "(empty)" => String::new(),
            other => other.trim_matches('`').to_string(),
        };
        section
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
                let [salt, id, bucket] = cells[..] else {
                    return None;
                };
                Some((cell(salt), cell(id), bucket.trim().parse().ok()?))
            })
            .collect()
    }

    #[test]
    fn integer_ids_hash_their_canonical_text() {
        assert_eq!(bucket("winter-2026", &IdKey::Int(-7)), 2582);
        assert_eq!(bucket("winter-2026", &IdKey::Int(u64::MAX as i128)), 6377);
        assert_eq!(bucket("holdout", &IdKey::Str("C-0001".into())), 3327);
    }

    #[test]
    fn golden_vectors_of_the_format_doc() {
        let vectors = golden();
        assert!(vectors.len() >= 10, "{vectors:?}");
        for (salt, id, expected) in vectors {
            assert_eq!(bucket_of_text(&salt, &id), expected, "{salt:?} {id:?}");
        }
    }
}
