//! The scan itself: one query projecting the ids, the columns evaluated here and the
//! other conditions as boolean columns; each partition evaluates its batches, combines the
//! groups and turns them into bitmaps over the positions it takes.

use std::collections::HashMap;
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

use super::batch::BatchHolds;
use super::engine::ScanRequest;
use super::{
    bitmap_from_bits, by_value, col_exact, concat_or_empty, holding, id_type, patterns, split,
    InScan, Progress, ScanOutput,
};
use crate::{Error, Result};
use datafusion::common::{Column, DFSchema};

/// Scan partitions per core. With one per core, DataFusion's byte-range split of the
/// files left one core alone for the last 3 s of a 10 s scan (10M × 100 groups, 4 files):
/// equal bytes are not equal work. Smaller slices finish closer together.
const SLICES_PER_CORE: usize = 4;

/// Runs the scan: one pass over `customers`, computing every condition and combining the
/// groups `in_scan` names.
///
/// The query runs on every core (round-robin repartitioned, so even a file with one row
/// group is evaluated in parallel), and each partition turns its own batches into
/// bitmaps. Every batch takes the next free range of positions, so the partitions'
/// bitmaps are disjoint and merge by OR.
pub(super) async fn scan(request: ScanRequest<'_>) -> Result<ScanOutput> {
    let ScanRequest {
        frame: customers,
        id_column,
        conditions,
        in_scan,
        extra,
        progress,
        ..
    } = request;
    let id_type = id_type(&customers, id_column)?;
    let mut projection =
        vec![datafusion::logical_expr::cast(col_exact(id_column), id_type.clone()).alias("__id")];
    projection.extend(extra.iter().enumerate().map(|(i, e)| {
        datafusion::logical_expr::cast(e.clone(), DataType::Utf8).alias(format!("__x{i}"))
    }));
    // Each condition is either a projected boolean column, one of the conditions on a
    // column that are evaluated here once per distinct value, range or substring search,
    // or split into leaves that are (`split.rs`).
    let state = customers.clone().into_parts().0;
    let schema = customers.schema();
    let mut all = crate::compile::Interner::new(conditions);
    let whole = taken_whole(conditions, schema);
    let splits: Vec<split::Split> = (0..conditions.len())
        .filter(|c| !whole[*c])
        .filter_map(|c| split::Split::new(c, &mut all, schema))
        .collect();
    let mut by_column: Vec<(Column, Vec<(usize, &Expr)>)> = Vec::new();
    let mut routed = vec![true; all.exprs.len()];
    for s in &splits {
        routed[s.mask()] = false;
    }
    for (i, condition) in all.exprs.iter().enumerate().filter(|(i, _)| routed[*i]) {
        if let Some(column) = by_value::column_of(condition, schema) {
            match by_column.iter_mut().find(|(c, _)| *c == column) {
                Some((_, on_it)) => on_it.push((i, condition)),
                None => by_column.push((column, vec![(i, condition)])),
            }
        }
    }
    let mut columns = Vec::new();
    let mut substrings = Vec::new();
    let mut projected: Vec<Option<usize>> = vec![None; all.exprs.len()];
    let mut per_value = vec![false; all.exprs.len()];
    for (column, on_it) in &by_column {
        let (_, field) = schema.qualified_field_from_column(column)?;
        let index = projection.len();
        let mut read = false;
        if by_value::worth_it(field.data_type(), on_it.len()) {
            columns.push(by_value::ColumnConditions::new(
                &state, column, schema, index, on_it,
            )?);
            for (i, _) in on_it {
                per_value[*i] = true;
            }
            read = true;
        } else if patterns::is_string(field.data_type()) {
            if let Some(found) = patterns::PatternConditions::new(column, index, on_it)? {
                for i in found.masks() {
                    per_value[i] = true;
                }
                substrings.push(found);
                read = true;
            }
        }
        if read {
            projection.push(Expr::Column(column.clone()).alias(format!("__v{index}")));
        }
    }
    for (i, condition) in all.exprs.iter().enumerate() {
        if routed[i] && !per_value[i] {
            projected[i] = Some(projection.len());
            projection.push(condition.clone().alias(format!("__c{i}")));
        }
    }
    tracing::debug!(
        conditions = conditions.len(),
        split = splits.len(),
        leaves = all.exprs.len() - conditions.len(),
        per_value = columns.iter().map(|c| c.len()).sum::<usize>(),
        columns = columns.len(),
        substrings = substrings.iter().map(|s| s.masks().count()).sum::<usize>(),
        ranged = columns.iter().map(|c| c.ranged()).sum::<usize>(),
        projected = projected.iter().flatten().count(),
        "conditions evaluated once per distinct value or range, and substring searches in one pass"
    );
    let evaluators = Arc::new(Evaluators {
        conditions: conditions.len(),
        projected,
        columns,
        substrings,
        splits,
        in_scan: in_scan.clone(),
        extras: extra.len(),
    });
    // More partitions than cores: DataFusion splits the files into that many byte ranges
    // (and drops the round-robin repartition when the files already give enough).
    let slices = customers.task_ctx().session_config().target_partitions() * SLICES_PER_CORE;
    let (mut state, logical) = customers.into_parts();
    state.config_mut().options_mut().execution.target_partitions = slices;
    let plan = DataFrame::new(state, logical)
        .repartition(Partitioning::RoundRobinBatch(slices))?
        .select(projection)?;
    let task_ctx = plan.task_ctx();
    let physical = plan.create_physical_plan().await?;
    tracing::debug!(
        "scan plan:\n{}",
        datafusion::physical_plan::displayable(physical.as_ref()).indent(false)
    );
    let streams = execute_stream_partitioned(physical, Arc::new(task_ctx))?;

    let next_position = Arc::new(AtomicU64::new(0));
    // A set rather than detached tasks: when the scan is dropped (a sizing cancelled at its
    // deadline) or one partition fails, the set aborts the others.
    let mut workers = tokio::task::JoinSet::new();
    for stream in streams {
        let next_position = next_position.clone();
        let progress = progress.clone();
        let evaluators = evaluators.clone();
        workers.spawn(async move {
            scan_partition(stream, &evaluators, &next_position, &progress).await
        });
    }
    let mut parts = Vec::with_capacity(workers.len());
    while let Some(part) = workers.join_next().await {
        parts.push(part.map_err(|source| Error::Task {
            task: "a scan task",
            source,
        })??);
    }
    let mut output = PartialScan::new(conditions.len(), in_scan.groups());
    for part in parts {
        output.merge(part);
    }
    let _rows = next_position.load(Ordering::Relaxed);
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
    let combined = output
        .groups
        .into_iter()
        .enumerate()
        .map(|(g, members)| in_scan.combines(g).then_some(members))
        .collect();
    Ok(ScanOutput {
        null_ids: output.null_ids,
        universe: output.universe,
        masks,
        combined,
        ids: concat_or_empty(&ids, &id_type)?,
        extra: extra_columns,
        jobs: Vec::new(),
    })
}

/// Which conditions an evaluator of the scan takes whole: those on one column evaluated
/// per value, and substring trees of a string column. The others are split where they
/// can be (`split.rs`).
fn taken_whole(conditions: &[Expr], schema: &DFSchema) -> Vec<bool> {
    let columns: Vec<Option<Column>> = conditions
        .iter()
        .map(|c| by_value::column_of(c, schema))
        .collect();
    let mut on_column: HashMap<&Column, usize> = HashMap::new();
    for column in columns.iter().flatten() {
        *on_column.entry(column).or_default() += 1;
    }
    conditions
        .iter()
        .zip(&columns)
        .map(|(condition, column)| {
            let Some(column) = column else {
                return false;
            };
            let Ok((_, field)) = schema.qualified_field_from_column(column) else {
                return false;
            };
            by_value::worth_it(field.data_type(), on_column[column])
                || (patterns::is_string(field.data_type())
                    && patterns::is_substring_tree(condition, column))
        })
        .collect()
}

/// What each partition evaluates on each batch.
struct Evaluators {
    /// How many conditions the scan computes (the leaves of splits follow them).
    conditions: usize,
    /// Per condition or leaf: its projected boolean column, if DataFusion computes it.
    projected: Vec<Option<usize>>,
    /// Columns whose conditions are evaluated once per distinct value.
    columns: Vec<by_value::ColumnConditions>,
    /// Columns whose substring conditions are searched for in one pass.
    substrings: Vec<patterns::PatternConditions>,
    /// Conditions computed from their leaves, after every leaf.
    splits: Vec<split::Split>,
    /// The groups combined batch by batch, and the masks kept.
    in_scan: InScan,
    /// How many extra columns follow the ids.
    extras: usize,
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
    /// The kept conditions' masks (the others stay empty).
    masks: Vec<RoaringBitmap>,
    /// The combined groups' members (the others stay empty).
    groups: Vec<RoaringBitmap>,
    chunks: Vec<Chunk>,
}

impl PartialScan {
    fn new(conditions: usize, groups: usize) -> PartialScan {
        PartialScan {
            null_ids: 0,
            universe: RoaringBitmap::new(),
            masks: vec![RoaringBitmap::new(); conditions],
            groups: vec![RoaringBitmap::new(); groups],
            chunks: Vec::new(),
        }
    }

    fn merge(&mut self, other: PartialScan) {
        self.null_ids += other.null_ids;
        self.universe |= other.universe;
        for (mine, theirs) in self.masks.iter_mut().zip(other.masks) {
            *mine |= theirs;
        }
        for (mine, theirs) in self.groups.iter_mut().zip(other.groups) {
            *mine |= theirs;
        }
        self.chunks.extend(other.chunks);
    }
}

async fn scan_partition(
    mut stream: SendableRecordBatchStream,
    evaluators: &Evaluators,
    next_position: &AtomicU64,
    progress: &Arc<dyn Progress>,
) -> Result<PartialScan> {
    let Evaluators {
        conditions,
        projected,
        columns,
        substrings,
        splits,
        in_scan,
        extras,
    } = evaluators;
    let mut part = PartialScan::new(*conditions, in_scan.groups());
    let mut states: Vec<by_value::ColumnState> =
        columns.iter().map(|_| Default::default()).collect();
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
            .ok_or(Error::TooManyCustomers { counted: None })?;
        let ids = batch.column(0);
        part.null_ids += ids.null_count() as u64;
        let valid = ids.logical_nulls().filter(|n| n.null_count() > 0);
        match &valid {
            Some(valid) => part.universe |= bitmap_from_bits(start, valid.inner()),
            None => {
                part.universe.insert_range(start..start + len as u32);
            }
        }
        let mut holds = BatchHolds::new(projected.len(), len);
        for (c, index) in projected.iter().enumerate() {
            if let Some(index) = index {
                holds.set(c, holding(batch.column(*index).as_boolean()));
            }
        }
        for (column, state) in columns.iter().zip(states.iter_mut()) {
            column.apply(state, batch.column(column.index), &mut holds)?;
        }
        for substring in substrings {
            substring.apply(batch.column(substring.index), &mut holds)?;
        }
        for split in splits {
            split.apply(&mut holds);
        }
        for (c, mask) in part.masks.iter_mut().enumerate() {
            if in_scan.keeps(c) {
                holds.or_into(c, start, mask);
            }
        }
        in_scan.combine(
            &holds,
            valid.as_ref().map(|v| v.inner()),
            start,
            &mut part.groups,
        );
        part.chunks.push(Chunk {
            start,
            ids: ids.clone(),
            extra: (0..*extras).map(|i| batch.column(1 + i).clone()).collect(),
        });
        progress.advance(len as u64);
        // When batches are ready one after another the task never waits, and a poll could
        // evaluate a whole partition (tokio's budget outlasts a partition's batches, each
        // milliseconds of work): yield after each one, so that other tasks run and an
        // aborted scan (a sizing past its deadline) stops within a batch.
        tokio::task::yield_now().await;
    }
    Ok(part)
}
