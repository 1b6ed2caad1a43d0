//! The scan itself: the conditions as projected boolean columns of one query, each
//! partition turning its batches into bitmaps over the positions it takes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{Expr, Partitioning};
use datafusion::physical_plan::execute_stream_partitioned;
use datafusion::prelude::DataFrame;
use futures::StreamExt;
use roaring::RoaringBitmap;

use super::{
    bitmap_from_bits, by_value, col_exact, concat_or_empty, id_type, Progress, ScanOutput,
};
use crate::{Error, Result};
use datafusion::common::Column;

/// Runs the scan: one pass over `customers`, computing every condition.
///
/// The query runs on every core (round-robin repartitioned, so even a file with one row
/// group is evaluated in parallel), and each partition turns its own batches into
/// bitmaps. Every batch takes the next free range of positions, so the partitions'
/// bitmaps are disjoint and merge by OR.
pub(super) async fn scan(
    customers: DataFrame,
    id_column: &str,
    conditions: &[Expr],
    extra: &[Expr],
    progress: &Arc<dyn Progress>,
) -> Result<ScanOutput> {
    let id_type = id_type(&customers, id_column)?;
    let mut projection =
        vec![datafusion::logical_expr::cast(col_exact(id_column), id_type.clone()).alias("__id")];
    projection.extend(extra.iter().enumerate().map(|(i, e)| {
        datafusion::logical_expr::cast(e.clone(), DataType::Utf8).alias(format!("__x{i}"))
    }));
    // Each condition is either a projected boolean column, or (on one dictionary column)
    // evaluated here once per distinct value and mapped through the keys.
    let state = customers.clone().into_parts().0;
    let mut slots = Vec::with_capacity(conditions.len());
    let mut by_value = Vec::new();
    // Each dictionary column once, with its index in the projection.
    let mut dictionary_columns: Vec<(Column, usize)> = Vec::new();
    for (i, condition) in conditions.iter().enumerate() {
        match by_value::column_of(condition, customers.schema()) {
            Some(column) => {
                let index = match dictionary_columns.iter().find(|(c, _)| *c == column) {
                    Some((_, index)) => *index,
                    None => {
                        let index = projection.len();
                        projection.push(Expr::Column(column.clone()).alias(format!("__d{index}")));
                        dictionary_columns.push((column.clone(), index));
                        index
                    }
                };
                by_value.push(by_value::ByValue::new(
                    &state,
                    condition,
                    &column,
                    customers.schema(),
                )?);
                slots.push(Slot::ByValue {
                    condition: by_value.len() - 1,
                    column: index,
                });
            }
            None => {
                slots.push(Slot::Column(projection.len()));
                projection.push(condition.clone().alias(format!("__c{i}")));
            }
        }
    }
    tracing::debug!(
        conditions = conditions.len(),
        by_value = by_value.len(),
        "conditions evaluated once per distinct value"
    );
    let slots: Arc<[Slot]> = slots.into();
    let by_value: Arc<[by_value::ByValue]> = by_value.into();
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
            let (slots, by_value) = (slots.clone(), by_value.clone());
            let extras = extra.len();
            tokio::spawn(async move {
                scan_partition(stream, &slots, &by_value, extras, &next_position, &progress).await
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
        jobs: Vec::new(),
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

/// Where one condition's result comes from in a batch.
enum Slot {
    /// A projected boolean column (its index in the batch).
    Column(usize),
    /// `by_value[condition]` over the dictionary column at `column`.
    ByValue { condition: usize, column: usize },
}

async fn scan_partition(
    mut stream: SendableRecordBatchStream,
    slots: &[Slot],
    by_value: &[by_value::ByValue],
    extras: usize,
    next_position: &AtomicU64,
    progress: &Arc<dyn Progress>,
) -> Result<PartialScan> {
    let mut part = PartialScan::new(slots.len());
    // Per condition: its truth over the last dictionary it saw (one per row group).
    let mut truths: Vec<Option<by_value::Truth>> = (0..by_value.len()).map(|_| None).collect();
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
        for (slot, mask) in slots.iter().zip(part.masks.iter_mut()) {
            match slot {
                Slot::Column(index) => {
                    let column = batch.column(*index).as_boolean();
                    let bits = match column.nulls() {
                        Some(valid) => column.values() & valid.inner(),
                        None => column.values().clone(),
                    };
                    *mask |= bitmap_from_bits(start, &bits);
                }
                Slot::ByValue { condition, column } => {
                    let truth = &mut truths[*condition];
                    by_value[*condition].apply(truth, batch.column(*column), start, mask)?;
                }
            }
        }
        part.chunks.push(Chunk {
            start,
            ids: ids.clone(),
            extra: (0..extras).map(|i| batch.column(1 + i).clone()).collect(),
        });
        progress.advance(len as u64);
    }
    Ok(part)
}
