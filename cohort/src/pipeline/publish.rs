//! Publishing an evaluation: the run's bitmaps in id space, groups carried over from the
//! previous run (`run --only`), the manifest, then `LATEST`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::SecondsFormat;
use roaring::RoaringBitmap;

use super::{Evaluation, Pipeline};
use crate::evaluate::statics::{self, StaticIds};
use crate::ids::{id_type_name, IdKey, IdMapping};
use crate::progress::Phase;
use crate::snapshot::location::Location;
use crate::snapshot::manifest::{
    GroupEntry, IdMappingEntry, IdentityTag, Manifest, FORMAT_VERSION,
};
use crate::snapshot::reader;
use crate::snapshot::writer::{
    self, Bits, Carried, GroupHeader, Promote, Published, PublishedGroup,
};
use crate::snapshot::Snapshot;
use crate::{Error, Result};

/// The run `LATEST` named when this run began: its manifest only.
#[derive(Debug, Clone)]
pub struct PreviousRun {
    /// Its run id.
    pub run_id: String,
    /// Its manifest.
    pub manifest: Manifest,
}

/// Reads the manifest of the run `LATEST` names, if any (nothing else of it).
pub(super) async fn previous_run(publish: &Location) -> Result<Option<PreviousRun>> {
    Ok(reader::latest_manifest(publish)
        .await?
        .map(|(run_id, manifest)| PreviousRun { run_id, manifest }))
}

/// What to publish.
#[derive(Debug, Default)]
pub struct PublishOptions<'a> {
    /// Groups to publish as evaluated (`run --only`); empty: every evaluated group.
    pub selected: &'a [String],
    /// The run `LATEST` named: with `selected`, its other groups are carried over.
    pub previous: Option<&'a PreviousRun>,
    /// Whether to move `LATEST`.
    pub promote: Promote,
}

/// What a publish did.
#[derive(Debug)]
pub struct Publication {
    /// The run.
    pub published: Published,
    /// Groups carried over unchanged from the previous run, with their member counts.
    pub carried: Vec<(String, u64)>,
    /// Groups of the previous run that this (full) run no longer has.
    pub removed: Vec<String>,
}

/// Publishes the evaluated groups named in `options.selected` (all when empty) to the
/// publish URL. With a selection, every other group of the previous run is carried over
/// unchanged: its bytes are copied when both runs number customers the same way, and
/// translated by external id when the customers changed. The evaluation's `members` are
/// consumed (freed as they are written).
pub(super) async fn publish(
    pipeline: &Pipeline,
    evaluation: &mut Evaluation,
    options: PublishOptions<'_>,
) -> Result<Publication> {
    let as_of = evaluation.as_of;
    let selected = options.selected;
    // The groups the run will hold: those evaluated, and those carried over.
    let fresh = evaluation
        .compiled
        .groups
        .iter()
        .filter(|g| selected.is_empty() || selected.contains(&g.group.id))
        .count();
    let carried_over = match (&options.previous, selected.is_empty()) {
        (Some(previous), false) => previous
            .manifest
            .groups
            .iter()
            .filter(|g| !selected.contains(&g.id))
            .count(),
        _ => 0,
    };
    let total = (fresh + carried_over) as u64;
    pipeline.progress.start(Phase::Publishing, Some(total));
    let mut mapping = IdMapping::build(
        &evaluation.scan.ids,
        &evaluation.scan.universe,
        &pipeline.id_column,
    )?;
    let id_type = evaluation.scan.ids.data_type().clone();
    if options.previous.is_none() || selected.is_empty() {
        // Only a carry-over looks ids up again: without one the ids by position (80–130 MB
        // at 10M customers) are freed before the groups' bitmaps are remapped.
        evaluation.scan.ids = datafusion::arrow::array::new_empty_array(&id_type);
    }
    // The dictionary goes with its encoding into the ids file, freed once encoded.
    let dictionary = mapping.dictionary.take();
    let mapping = Arc::new(mapping);
    let publish = pipeline.stores.location(&pipeline.publish)?;
    // The groups this run evaluated, in id order (the order of the run's files).
    let members = std::mem::take(&mut evaluation.members);
    let mut chosen: Vec<(GroupHeader, RoaringBitmap)> = evaluation
        .compiled
        .groups
        .iter()
        .zip(members)
        .filter(|(g, _)| selected.is_empty() || selected.contains(&g.group.id))
        .map(|(g, members)| {
            let header = GroupHeader {
                id: g.group.id.clone(),
                name: g.group.name.clone().unwrap_or_else(|| g.group.id.clone()),
                description: g.group.description.clone(),
                definition_hash: g.group.definition_hash.clone(),
                carried: None,
            };
            (header, members)
        })
        .collect();
    chosen.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    let (headers, chosen): (Vec<GroupHeader>, Vec<RoaringBitmap>) = chosen.into_iter().unzip();
    // Each group remapped and serialized on the cores as the previous ones are written,
    // and its scan-space bitmap dropped then: at 1,000 groups over 10M customers either
    // form is hundreds of MB, so neither is held whole. The id files are encoded meanwhile
    // (one core's work for text ids: the dictionary's Parquet file).
    let (sender, mut serialized) = tokio::sync::mpsc::unbounded_channel();
    let remapping = tokio::task::spawn_blocking({
        let mapping = mapping.clone();
        move || remap_in_order(&mapping, chosen, sender)
    });
    let encoding = tokio::task::spawn_blocking({
        let mapping = mapping.clone();
        let id_column = pipeline.id_column.clone();
        move || {
            writer::EncodedIds::new(&id_column, dictionary.as_ref(), mapping.hash_index.as_ref())
        }
    });
    let ids = joined(encoding).await??;
    let mut warnings = evaluation.warnings.clone();
    let mut carried = Vec::new();
    let mut removed = Vec::new();
    let mut kept = Vec::new();
    if let Some(previous) = options.previous {
        let fresh: HashSet<&str> = headers.iter().map(|g| g.id.as_str()).collect();
        let others: Vec<&GroupEntry> = previous
            .manifest
            .groups
            .iter()
            .filter(|g| !fresh.contains(g.id.as_str()))
            .collect();
        if selected.is_empty() {
            removed = others.iter().map(|g| g.id.clone()).collect();
        } else if !others.is_empty() {
            kept = carry_over(
                &publish,
                previous,
                &others,
                evaluation,
                &mapping,
                &ids,
                &mut warnings,
            )
            .await?;
            carried = kept
                .iter()
                .map(|g| (g.header.id.clone(), g.bits.len()))
                .collect();
        }
    }
    // The run's groups in id order: this run's, and those carried over.
    let mut order: Vec<(GroupHeader, Option<Bits>)> = headers
        .into_iter()
        .map(|h| (h, None))
        .chain(kept.into_iter().map(|g| (g.header, Some(g.bits))))
        .collect();
    order.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        run_id: String::new(),
        created_at: pipeline
            .clock
            .now()
            .to_rfc3339_opts(SecondsFormat::Secs, true),
        as_of: as_of.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        tool_version: format!("cohort {}", env!("CARGO_PKG_VERSION")),
        sources: evaluation.sources.clone(),
        customers: evaluation.customers(),
        null_ids: evaluation.scan.null_ids,
        id_column: pipeline.id_column.clone(),
        id_type: id_type_name(&id_type).into(),
        id_mapping: IdMappingEntry::Identity(IdentityTag::Identity),
        warnings,
        groups: Vec::new(),
    };
    let all: Vec<GroupHeader> = order.iter().map(|(h, _)| h.clone()).collect();
    let mut run = writer::RunWriter::begin(&publish, manifest, &all, ids);
    let written = write_in_order(&mut run, order, &mut serialized, pipeline).await;
    drop(serialized);
    let remapped = joined(remapping).await;
    if let Err(e) = written.and(remapped) {
        run.abandon().await;
        return Err(e);
    }
    let published = run.finish(options.promote).await?;
    Ok(Publication {
        published,
        carried,
        removed,
    })
}

/// Pushes the run's groups in order: carried-over ones as they are, this run's as they
/// come from [`remap_in_order`] (about in order; the few that overtake wait).
async fn write_in_order(
    run: &mut writer::RunWriter,
    order: Vec<(GroupHeader, Option<Bits>)>,
    serialized: &mut tokio::sync::mpsc::UnboundedReceiver<(usize, Bits)>,
    pipeline: &Pipeline,
) -> Result<()> {
    let mut waiting: BTreeMap<usize, Bits> = BTreeMap::new();
    let mut next = 0;
    for (header, bits) in order {
        let bits = match bits {
            Some(bits) => bits,
            None => loop {
                if let Some(bits) = waiting.remove(&next) {
                    next += 1;
                    break bits;
                }
                let Some((n, bits)) = serialized.recv().await else {
                    // The remapping stopped early (it panicked: joining it says so).
                    return Err(Error::Internal(format!(
                        "group '{}' was never remapped",
                        header.id
                    )));
                };
                waiting.insert(n, bits);
            },
        };
        run.push(bits).await?;
        pipeline.progress.advance(1);
    }
    Ok(())
}

/// Remaps each group's scan positions to published bits and serializes them, on rayon's
/// threads, and sends each with its index as it is done. Groups go a window at a time, in
/// order: the window's groups that remap together (dense groups of text ids) in one pass,
/// the others one by one beside it, so that they come about in order. Stops when the
/// receiver is gone.
fn remap_in_order(
    mapping: &IdMapping,
    groups: Vec<RoaringBitmap>,
    sender: tokio::sync::mpsc::UnboundedSender<(usize, Bits)>,
) {
    use rayon::prelude::*;
    let together: Vec<bool> = groups.iter().map(|g| mapping.remaps_together(g)).collect();
    // Windows hold as many together as can go at once, evened out (1,000 in 16 of 62–63,
    // not 15 of 64 and one of 40: a pass costs about the same for any number); with none
    // together (integer ids), one window holds every group.
    let count = together.iter().filter(|t| **t).count();
    let passes = count.div_ceil(IdMapping::TOGETHER).max(1);
    let per_pass = count.div_ceil(passes).max(1);
    let send = |n: usize, bitmap: &RoaringBitmap| {
        let _ = sender.send((n, Bits::serialized(bitmap)));
    };
    let mut groups = groups.into_iter().enumerate().peekable();
    while groups.peek().is_some() && !sender.is_closed() {
        let mut window = Vec::new();
        let mut taken = 0;
        while let Some((n, positions)) = groups.next_if(|_| taken < per_pass) {
            taken += usize::from(together[n]);
            window.push((n, positions));
        }
        let (dense, alone): (Vec<_>, Vec<_>) = window.into_iter().partition(|(n, _)| together[*n]);
        rayon::join(
            || {
                if dense.is_empty() {
                    return;
                }
                let refs: Vec<&RoaringBitmap> = dense.iter().map(|(_, p)| p).collect();
                let remapped = mapping.remap_together(&refs);
                // The scan-position bitmaps are freed before the serialized ones are made.
                let numbers: Vec<usize> = dense.into_iter().map(|(n, _)| n).collect();
                numbers
                    .into_par_iter()
                    .zip(remapped)
                    .for_each(|(n, bits)| send(n, &bits));
            },
            || {
                // Taken in order (a split would send the second half first).
                alone
                    .into_iter()
                    .par_bridge()
                    .for_each(|(n, positions)| send(n, &mapping.remap(&positions)))
            },
        );
    }
}

/// A blocking task's result; its panic, if it panicked, goes on.
async fn joined<T>(task: tokio::task::JoinHandle<T>) -> Result<T> {
    match task.await {
        Ok(value) => Ok(value),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(source) => Err(Error::Task {
            task: "a publishing task",
            source,
        }),
    }
}

/// The previous run's `groups`, in this run's bit space: copied byte for byte when the two
/// runs map ids to bits alike, otherwise translated member by member through their external
/// ids (members no longer among the customers are dropped, with a warning).
async fn carry_over(
    publish: &Location,
    previous: &PreviousRun,
    groups: &[&GroupEntry],
    evaluation: &Evaluation,
    mapping: &IdMapping,
    ids: &writer::EncodedIds,
    warnings: &mut Vec<String>,
) -> Result<Vec<PublishedGroup>> {
    let carried = |g: &GroupEntry| Carried {
        run_id: g
            .carried_from
            .clone()
            .unwrap_or_else(|| previous.run_id.clone()),
        as_of: g
            .as_of
            .clone()
            .unwrap_or_else(|| previous.manifest.as_of.clone()),
    };
    let published = |g: &GroupEntry, bits| PublishedGroup {
        header: GroupHeader {
            id: g.id.clone(),
            name: g.name.clone(),
            description: g.description.clone(),
            definition_hash: g.definition_hash.clone(),
            carried: Some(carried(g)),
        },
        bits,
    };
    if previous.manifest.id_mapping == ids.entry {
        let mut out = Vec::with_capacity(groups.len());
        for g in groups {
            let bytes = reader::group_bytes(publish, &previous.run_id, g).await?;
            out.push(published(
                g,
                Bits::Serialized {
                    bytes,
                    members: g.members,
                    checksum: g.bitmap.checksum.clone(),
                },
            ));
        }
        return Ok(out);
    }
    // The customers changed since that run: find each member again by its external id.
    let old = Snapshot::open_run_at(publish, &previous.run_id).await?;
    let id_type = evaluation.scan.ids.data_type().clone();
    let wanted: Vec<StaticIds> = groups
        .iter()
        .map(|g| StaticIds {
            include: old
                .bitmap(&g.id)
                .unwrap_or_default()
                .iter()
                .filter_map(|bit| IdKey::parse(&old.external_id(bit), &id_type))
                .collect(),
            ..Default::default()
        })
        .collect();
    let located = statics::locate(&wanted, &evaluation.scan.ids);
    let bitmaps = mapping.remap_all(&located.iter().map(|l| &l.include).collect::<Vec<_>>());
    Ok(groups
        .iter()
        .zip(located)
        .zip(bitmaps)
        .map(|((g, l), bitmap)| {
            if !l.missing.is_empty() {
                warnings.push(format!(
                    "group '{}' carried over from run {}: {} member(s) are no longer in the customers table and were dropped",
                    g.id,
                    previous.run_id,
                    l.missing.len()
                ));
            }
            published(g, Bits::Bitmap(bitmap))
        })
        .collect())
}
