//! The single scan: every distinct condition of every group is one projected boolean
//! column of one DataFusion query over the customers table; masks become bitmaps.
//!
//! Bitmaps here are over *scan positions* (row n of the scan as it arrived). Group algebra
//! is position-independent, so it runs in this space; only published bitmaps are mapped to
//! the snapshot's id space (see `bitmap::ids`), which makes the output independent of the
//! order in which partitions deliver batches.

pub mod statics;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::{cast, concat};
use datafusion::arrow::datatypes::DataType;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{Expr, Partitioning};
use datafusion::physical_plan::execute_stream_partitioned;
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
///
/// The query runs on every core (round-robin repartitioned, so even a file with one row
/// group is evaluated in parallel), and each partition turns its own batches into
/// bitmaps. Every batch takes the next free range of positions, so the partitions'
/// bitmaps are disjoint and merge by OR.
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
    let partitions = customers.task_ctx().session_config().target_partitions();
    let plan = customers
        .repartition(Partitioning::RoundRobinBatch(partitions))?
        .select(projection)?;
    let task_ctx = plan.task_ctx();
    let physical = plan.create_physical_plan().await?;
    let streams = execute_stream_partitioned(physical, Arc::new(task_ctx))?;

    let next_position = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = streams
        .into_iter()
        .map(|stream| {
            let next_position = next_position.clone();
            let progress = progress.clone();
            let (conditions, extras) = (conditions.len(), extra.len());
            tokio::spawn(async move {
                scan_partition(stream, conditions, extras, &next_position, &progress).await
            })
        })
        .collect();
    let mut parts = Vec::with_capacity(workers.len());
    for worker in workers {
        parts.push(
            worker
                .await
                .map_err(|e| Error::Data(format!("scan task failed: {e}")))??,
        );
    }
    let mut output = PartialScan::new(conditions.len());
    for part in parts {
        output.merge(part);
    }
    let rows = next_position.load(Ordering::Relaxed);
    // Chunks in position order: position n is row n of the concatenated ids.
    output.chunks.sort_by_key(|c| c.start);
    let ids: Vec<ArrayRef> = output.chunks.iter().map(|c| c.ids.clone()).collect();
    let extra_columns = (0..extra.len())
        .map(|i| {
            let columns: Vec<ArrayRef> = output.chunks.iter().map(|c| c.extra[i].clone()).collect();
            concat_or_empty(&columns, &DataType::Utf8)
        })
        .collect::<Result<_>>()?;
    let mut masks = output.masks;
    if output.null_ids > 0 {
        for mask in &mut masks {
            *mask &= &output.universe;
        }
    }
    Ok(ScanOutput {
        rows,
        null_ids: output.null_ids,
        universe: output.universe,
        masks,
        ids: concat_or_empty(&ids, &id_type)?,
        extra: extra_columns,
    })
}

/// One batch's ids and extra columns, and where its positions start.
struct Chunk {
    start: u32,
    ids: ArrayRef,
    extra: Vec<ArrayRef>,
}

/// What one partition of the scan produced.
struct PartialScan {
    null_ids: u64,
    universe: RoaringBitmap,
    masks: Vec<RoaringBitmap>,
    chunks: Vec<Chunk>,
}

impl PartialScan {
    fn new(conditions: usize) -> PartialScan {
        PartialScan {
            null_ids: 0,
            universe: RoaringBitmap::new(),
            masks: vec![RoaringBitmap::new(); conditions],
            chunks: Vec::new(),
        }
    }

    fn merge(&mut self, other: PartialScan) {
        self.null_ids += other.null_ids;
        self.universe |= other.universe;
        for (mine, theirs) in self.masks.iter_mut().zip(other.masks) {
            *mine |= theirs;
        }
        self.chunks.extend(other.chunks);
    }
}

async fn scan_partition(
    mut stream: SendableRecordBatchStream,
    conditions: usize,
    extras: usize,
    next_position: &AtomicU64,
    progress: &ProgressBar,
) -> Result<PartialScan> {
    let mut part = PartialScan::new(conditions);
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let len = batch.num_rows();
        if len == 0 {
            continue;
        }
        let first = next_position.fetch_add(len as u64, Ordering::Relaxed);
        let start = u32::try_from(first)
            .ok()
            .filter(|s| (*s as u64) + (len as u64) <= u32::MAX as u64)
            .ok_or_else(|| Error::Data("more than 4,294,967,295 customers in one table".into()))?;
        let ids = batch.column(0);
        part.null_ids += ids.null_count() as u64;
        match ids.logical_nulls() {
            Some(valid) => part.universe |= bitmap_from_bits(start, valid.inner()),
            None => {
                part.universe.insert_range(start..start + len as u32);
            }
        }
        for (i, mask) in part.masks.iter_mut().enumerate() {
            let column = batch.column(1 + i).as_boolean();
            let bits = match column.nulls() {
                Some(valid) => column.values() & valid.inner(),
                None => column.values().clone(),
            };
            *mask |= bitmap_from_bits(start, &bits);
        }
        part.chunks.push(Chunk {
            start,
            ids: ids.clone(),
            extra: (0..extras)
                .map(|i| batch.column(1 + conditions + i).clone())
                .collect(),
        });
        progress.inc(len as u64);
    }
    Ok(part)
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

/// Rows per record batch (see `session`).
pub const DEFAULT_BATCH_SIZE: usize = 65536;

/// Creates the session every command uses. DataFusion options can be tuned from the
/// environment (`DATAFUSION_EXECUTION_BATCH_SIZE=32768`, ...; see DataFusion's config docs).
pub fn session() -> SessionContext {
    let mut config = datafusion::prelude::SessionConfig::from_env().unwrap_or_else(|e| {
        tracing::warn!("ignoring DATAFUSION_* environment settings: {e}");
        datafusion::prelude::SessionConfig::new()
    });
    if std::env::var_os("DATAFUSION_EXECUTION_BATCH_SIZE").is_none() {
        // Measured on 10M customers × 100 groups: 8192 (DataFusion's default) 7.0 s,
        // 32768 6.6 s, 65536 6.3 s, 131072 6.3 s; fewer, larger masks to turn into bitmaps.
        config = config.with_batch_size(DEFAULT_BATCH_SIZE);
    }
    session_with(config)
}

/// A session with `config` (partitions, batch size, ...) and the settings Cohort's plans
/// need. Tests use it to run the same definitions under different partitionings.
pub fn session_with(mut config: datafusion::prelude::SessionConfig) -> SessionContext {
    // DataFusion 55 can derive a nullable physical type for a boolean filter column the
    // logical plan knows is never NULL (`... IS TRUE`), and then refuses the event
    // aggregate plan over it. The types agree in everything but that flag.
    config
        .options_mut()
        .execution
        .skip_physical_aggregate_schema_check = true;
    SessionContext::new_with_config(config)
}
