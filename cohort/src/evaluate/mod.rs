//! The single scan: every distinct condition of every group is computed in one pass over
//! the customers table (a projected boolean column of one DataFusion query, or per
//! distinct value, range or substring search of its column), and the groups' clauses are
//! combined batch by batch, so that mostly groups, not conditions, become bitmaps.
//!
//! Bitmaps here are over *scan positions* (row n of the scan as it arrived). Group algebra
//! is position-independent, so it runs in this space; only published bitmaps are mapped to
//! the snapshot's id space (see `cohort_snapshot::ids::mapping`), which makes the output independent of the
//! order in which partitions deliver batches.

mod batch;
mod by_value;
mod combine;
mod dictionary;
#[cfg(feature = "ballista")]
pub(crate) mod distributed;
pub(crate) mod engine;
pub(crate) mod events;
#[cfg(test)]
mod fast_paths;
pub(crate) mod files;
mod keys;
mod patterns;
mod ranges;
mod scan;
mod split;
pub(crate) mod statics;
mod table_store;

pub(crate) use crate::compile::col_exact;
pub(crate) use crate::progress::{NoProgress, Phase, Progress};
pub(crate) use combine::InScan;
pub use engine::{Engine, DEFAULT_ENGINE_TIMEOUT};
pub(crate) use engine::{ScanRequest, ScanSource};

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::compute::{cast, concat};
use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::DataFrame;
use roaring::RoaringBitmap;

use crate::ids::normalized_id_type;
use crate::{Error, Result};

/// What the scan produced.
#[derive(Debug)]
pub(crate) struct ScanOutput {
    /// Rows whose id was null: skipped.
    pub null_ids: u64,
    /// Positions of rows with a non-null id: every customer.
    pub universe: RoaringBitmap,
    /// One bitmap per condition: positions where it holds. Only the masks the
    /// [`InScan`] keeps are filled; the others are empty.
    pub masks: Vec<RoaringBitmap>,
    /// Per group, its clauses as the scan combined them (include minus exclude, before
    /// static lists), or `None` where the scan did not (see [`InScan`]).
    pub combined: Vec<Option<RoaringBitmap>>,
    /// Customer ids by position, normalized to Int64, UInt64 or Utf8 (null for null ids).
    pub ids: ArrayRef,
    /// Extra projected columns by position (e.g. the `--by` column), as Utf8.
    pub extra: Vec<ArrayRef>,
    /// The cluster's job ids (none on the local engine).
    pub jobs: Vec<String>,
}

/// Checks the id column exists and has a supported type; returns its normalized type.
pub(crate) fn id_type(df: &DataFrame, id_column: &str) -> Result<DataType> {
    let schema = df.schema();
    let field = schema.field_with_unqualified_name(id_column).map_err(|_| {
        let names = schema.fields().iter().map(|f| f.name().as_str());
        let hint = crate::definition::did_you_mean(id_column, names)
            .map(|h| format!("; {h}"))
            .unwrap_or_default();
        Error::NoIdColumn {
            column: id_column.to_string(),
            hint,
        }
    })?;
    normalized_id_type(field.data_type()).ok_or_else(|| Error::IdType {
        column: id_column.to_string(),
        data_type: field.data_type().clone(),
    })
}

fn concat_or_empty(chunks: &[ArrayRef], data_type: &DataType) -> Result<ArrayRef> {
    if chunks.is_empty() {
        return Ok(datafusion::arrow::array::new_empty_array(data_type));
    }
    let refs: Vec<&dyn Array> = chunks.iter().map(|a| a.as_ref()).collect();
    Ok(cast(&concat(&refs)?, data_type)?)
}

/// The rows where a condition's result holds: true and not null.
fn holding(
    result: &datafusion::arrow::array::BooleanArray,
) -> datafusion::arrow::buffer::BooleanBuffer {
    match result.nulls() {
        Some(valid) => result.values() & valid.inner(),
        None => result.values().clone(),
    }
}

/// Bulk conversion of an Arrow bitset (LSB0, like roaring's) into a bitmap at `start`.
pub fn bitmap_from_bits(
    start: u32,
    bits: &datafusion::arrow::buffer::BooleanBuffer,
) -> RoaringBitmap {
    if bits.offset().is_multiple_of(8) {
        let bytes = &bits.values()[bits.offset() / 8..];
        let bytes = &bytes[..bits.len().div_ceil(8)];
        let mut bitmap = RoaringBitmap::from_lsb0_bytes(start, bytes);
        // The last byte may carry bits past `len`.
        if !bits.len().is_multiple_of(8) {
            bitmap.remove_range(start + bits.len() as u32..);
        }
        bitmap
    } else {
        RoaringBitmap::from_sorted_iter(bits.set_indices().map(|i| start + i as u32))
            .expect("set_indices is sorted")
    }
}

/// A table's row count from its Parquet footers, when they give it.
pub(crate) async fn footer_rows(frame: &DataFrame) -> Option<u64> {
    use datafusion::physical_plan::{StatisticsArgs, StatisticsContext};
    let plan = frame.clone().create_physical_plan().await.ok()?;
    let stats = StatisticsContext::default()
        .compute(plan.as_ref(), &StatisticsArgs::new())
        .ok()?;
    stats.num_rows.get_value().map(|n| *n as u64)
}
