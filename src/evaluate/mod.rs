//! The single scan: every distinct condition of every group is one projected boolean
//! column of one DataFusion query over the customers table; masks become bitmaps.
//!
//! Bitmaps here are over *scan positions* (row n of the scan as it arrived). Group algebra
//! is position-independent, so it runs in this space; only published bitmaps are mapped to
//! the snapshot's id space (see `bitmap::ids`), which makes the output independent of the
//! order in which partitions deliver batches.

pub mod statics;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::{cast, concat};
use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::Expr;
use datafusion::prelude::{DataFrame, SessionContext};
use futures::StreamExt;
use indicatif::ProgressBar;
use roaring::RoaringBitmap;

use crate::{Error, Result};

/// What the scan produced.
#[derive(Debug)]
pub struct ScanOutput {
    /// Rows read (null ids included).
    pub rows: u64,
    /// Rows whose id was null: skipped.
    pub null_ids: u64,
    /// Positions of rows with a non-null id: every customer.
    pub universe: RoaringBitmap,
    /// One bitmap per condition: positions where it holds.
    pub masks: Vec<RoaringBitmap>,
    /// Customer ids by position, normalized to Int64, UInt64 or Utf8 (null for null ids).
    pub ids: ArrayRef,
    /// Extra projected columns by position (e.g. the `--by` column), as Utf8.
    pub extra: Vec<ArrayRef>,
}

/// The normalized type ids are kept in.
pub fn normalized_id_type(data_type: &DataType) -> Option<DataType> {
    use DataType::*;
    match data_type {
        Int8 | Int16 | Int32 | Int64 => Some(Int64),
        UInt8 | UInt16 | UInt32 | UInt64 => Some(UInt64),
        Utf8 | LargeUtf8 | Utf8View => Some(Utf8),
        Dictionary(_, v) => normalized_id_type(v),
        _ => None,
    }
}

/// Checks the id column exists and has a supported type; returns its normalized type.
pub fn id_type(df: &DataFrame, id_column: &str) -> Result<DataType> {
    let schema = df.schema();
    let field = schema.field_with_unqualified_name(id_column).map_err(|_| {
        let names = schema.fields().iter().map(|f| f.name().as_str());
        let hint = crate::definition::did_you_mean(id_column, names)
            .map(|h| format!("; {h}"))
            .unwrap_or_default();
        Error::Usage(format!(
            "id column '{id_column}' is not in the customers table{hint}"
        ))
    })?;
    normalized_id_type(field.data_type()).ok_or_else(|| {
        Error::Data(format!(
            "id column '{id_column}' has type {}; expected an integer (up to 64 bits) or a string",
            field.data_type()
        ))
    })
}

/// Runs the scan: one pass over `customers`, computing every condition.
pub async fn scan(
    customers: DataFrame,
    id_column: &str,
    conditions: &[Expr],
    extra: &[Expr],
    progress: &ProgressBar,
) -> Result<ScanOutput> {
    let id_type = id_type(&customers, id_column)?;
    let mut projection =
        vec![datafusion::logical_expr::cast(col_exact(id_column), id_type.clone()).alias("__id")];
    projection.extend(
        conditions
            .iter()
            .enumerate()
            .map(|(i, e)| e.clone().alias(format!("__c{i}"))),
    );
    projection.extend(extra.iter().enumerate().map(|(i, e)| {
        datafusion::logical_expr::cast(e.clone(), DataType::Utf8).alias(format!("__x{i}"))
    }));
    let mut stream = customers.select(projection)?.execute_stream().await?;

    let mut masks = vec![RoaringBitmap::new(); conditions.len()];
    let mut universe = RoaringBitmap::new();
    let mut id_chunks: Vec<ArrayRef> = Vec::new();
    let mut extra_chunks: Vec<Vec<ArrayRef>> = vec![Vec::new(); extra.len()];
    let mut rows: u64 = 0;
    let mut null_ids: u64 = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let len = batch.num_rows();
        if len == 0 {
            continue;
        }
        let start = u32::try_from(rows)
            .ok()
            .filter(|s| (*s as u64) + (len as u64) <= u32::MAX as u64)
            .ok_or_else(|| Error::Data("more than 4,294,967,295 customers in one table".into()))?;
        let ids = batch.column(0);
        null_ids += ids.null_count() as u64;
        match ids.logical_nulls() {
            Some(valid) => universe |= bitmap_from_bits(start, valid.inner()),
            None => {
                universe.insert_range(start..start + len as u32);
            }
        }
        for (i, mask) in masks.iter_mut().enumerate() {
            let column = batch.column(1 + i).as_boolean();
            let bits = match column.nulls() {
                Some(valid) => column.values() & valid.inner(),
                None => column.values().clone(),
            };
            *mask |= bitmap_from_bits(start, &bits);
        }
        id_chunks.push(ids.clone());
        for (i, chunk) in extra_chunks.iter_mut().enumerate() {
            chunk.push(batch.column(1 + conditions.len() + i).clone());
        }
        rows += len as u64;
        progress.inc(len as u64);
    }
    if null_ids > 0 {
        for mask in &mut masks {
            *mask &= &universe;
        }
    }
    Ok(ScanOutput {
        rows,
        null_ids,
        universe,
        masks,
        ids: concat_or_empty(&id_chunks, &id_type)?,
        extra: extra_chunks
            .iter()
            .map(|c| concat_or_empty(c, &DataType::Utf8))
            .collect::<Result<_>>()?,
    })
}

/// A column reference by exact name (no parsing of dots or case folding).
pub fn col_exact(name: &str) -> Expr {
    Expr::Column(datafusion::prelude::Column::new_unqualified(name))
}

fn concat_or_empty(chunks: &[ArrayRef], data_type: &DataType) -> Result<ArrayRef> {
    if chunks.is_empty() {
        return Ok(datafusion::arrow::array::new_empty_array(data_type));
    }
    let refs: Vec<&dyn Array> = chunks.iter().map(|a| a.as_ref()).collect();
    Ok(cast(&concat(&refs)?, data_type)?)
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

/// Creates the session every command uses.
pub fn session() -> SessionContext {
    let mut config = datafusion::prelude::SessionConfig::new();
    // DataFusion 55 can derive a nullable physical type for a boolean filter column the
    // logical plan knows is never NULL (`... IS TRUE`), and then refuses the event
    // aggregate plan over it. The types agree in everything but that flag.
    config
        .options_mut()
        .execution
        .skip_physical_aggregate_schema_check = true;
    SessionContext::new_with_config(config)
}
