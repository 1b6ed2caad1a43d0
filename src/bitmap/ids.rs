//! Customer ids ↔ bit numbers: the identity mapping (integer ids within 0..=u32::MAX) or a
//! sorted dictionary (everything else), and the remapping of scan positions to bits.

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::{sort_to_indices, take, SortOptions};
use datafusion::arrow::datatypes::{DataType, Int64Type, UInt64Type};
use roaring::RoaringBitmap;

use crate::evaluate::statics::IdKey;
use crate::{Error, Result};

/// How scan positions map to published bits.
#[derive(Debug)]
pub struct IdMapping {
    /// `Some(dictionary)` — external ids sorted, row n = bit n — or `None` for identity.
    pub dictionary: Option<ArrayRef>,
    /// Bit of each scan position (unused for positions with a null id).
    pos_to_bit: Vec<u32>,
    /// Whether bits increase with positions (sorted input), which makes remapping a copy.
    monotonic: bool,
}

const EXAMPLES: usize = 5;

impl IdMapping {
    /// Builds the mapping for the scanned `ids` (normalized: Int64, UInt64 or Utf8);
    /// `universe` holds the positions with non-null ids. Duplicate ids are an error.
    pub fn build(ids: &ArrayRef, universe: &RoaringBitmap, id_column: &str) -> Result<IdMapping> {
        let identity = match ids.data_type() {
            DataType::Int64 => {
                let a = ids.as_primitive::<Int64Type>();
                universe
                    .iter()
                    .all(|p| (0..=u32::MAX as i64).contains(&a.value(p as usize)))
            }
            DataType::UInt64 => {
                let a = ids.as_primitive::<UInt64Type>();
                universe
                    .iter()
                    .all(|p| a.value(p as usize) <= u32::MAX as u64)
            }
            _ => false,
        };
        let mut pos_to_bit = vec![u32::MAX; ids.len()];
        let dictionary = if identity {
            let values: Vec<u32> = match ids.data_type() {
                DataType::Int64 => ids
                    .as_primitive::<Int64Type>()
                    .values()
                    .iter()
                    .map(|v| *v as u32)
                    .collect(),
                _ => ids
                    .as_primitive::<UInt64Type>()
                    .values()
                    .iter()
                    .map(|v| *v as u32)
                    .collect(),
            };
            let mut seen = RoaringBitmap::new();
            let mut duplicates = Vec::new();
            let mut duplicate_rows = 0u64;
            for p in universe {
                let bit = values[p as usize];
                if !seen.insert(bit) {
                    duplicate_rows += 1;
                    if duplicates.len() < EXAMPLES && !duplicates.contains(&bit) {
                        duplicates.push(bit);
                    }
                }
                pos_to_bit[p as usize] = bit;
            }
            if duplicate_rows > 0 {
                let examples: Vec<String> = duplicates.iter().map(|d| d.to_string()).collect();
                return Err(duplicate_error(id_column, duplicate_rows, &examples));
            }
            None
        } else {
            let options = SortOptions {
                descending: false,
                nulls_first: false,
            };
            let order = sort_to_indices(ids.as_ref(), Some(options), None)?;
            let present = universe.len() as usize;
            let order = order.slice(0, present);
            let sorted = take(ids.as_ref(), &order, None)?;
            let mut duplicate_rows = 0u64;
            let mut examples = Vec::new();
            for rank in 1..present {
                if IdKey::of_row(&sorted, rank) == IdKey::of_row(&sorted, rank - 1) {
                    duplicate_rows += 1;
                    let id = IdKey::of_row(&sorted, rank).unwrap().to_string();
                    if examples.len() < EXAMPLES && examples.last() != Some(&id) {
                        examples.push(id);
                    }
                }
            }
            if duplicate_rows > 0 {
                return Err(duplicate_error(id_column, duplicate_rows, &examples));
            }
            for (rank, pos) in order.values().iter().enumerate() {
                pos_to_bit[*pos as usize] = rank as u32;
            }
            Some(sorted)
        };
        let mut last: Option<u32> = None;
        let monotonic = universe.iter().all(|p| {
            let bit = pos_to_bit[p as usize];
            let ok = last.is_none_or(|l| bit > l);
            last = Some(bit);
            ok
        });
        Ok(IdMapping {
            dictionary,
            pos_to_bit,
            monotonic,
        })
    }

    /// Whether the mapping is the identity (bit n = id n).
    pub fn is_identity(&self) -> bool {
        self.dictionary.is_none()
    }

    /// Maps a bitmap of scan positions to the published bit space.
    pub fn remap(&self, positions: &RoaringBitmap) -> RoaringBitmap {
        let bits = positions.iter().map(|p| self.pos_to_bit[p as usize]);
        if self.monotonic {
            RoaringBitmap::from_sorted_iter(bits).expect("monotonic mapping keeps order")
        } else {
            let mut v: Vec<u32> = bits.collect();
            v.sort_unstable();
            RoaringBitmap::from_sorted_iter(v).expect("sorted")
        }
    }
}

fn duplicate_error(id_column: &str, rows: u64, examples: &[String]) -> Error {
    Error::Data(format!(
        "duplicate customer ids in column '{id_column}': {rows} extra row(s), e.g. {}",
        examples
            .iter()
            .map(|e| format!("'{e}'"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}
