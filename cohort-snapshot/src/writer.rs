//! Publishing a run: every run file first, `LATEST` last, so readers never see a mix.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use rayon::prelude::*;
use roaring::RoaringBitmap;

use super::manifest::{
    checksum, BitmapRef, DictionaryTag, FileRef, GroupEntry, IdMappingEntry, IdentityTag, Manifest,
};
use crate::ids::perfect_hash::PerfectHash;
use crate::layout::{
    latest_run_id, BITMAPS_FILE, DICTIONARY_FILE, HASH_INDEX_FILE, LATEST, MANIFEST_FILE,
};
use crate::location::Location;
use crate::{Error, Result};
use object_store::{ObjectStoreExt, PutPayload};

/// One group to publish.
#[derive(Debug)]
pub struct PublishedGroup {
    /// Group id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The definition's description, if any.
    pub description: Option<String>,
    /// Definition hash.
    pub definition_hash: String,
    /// Members, in the published bit space.
    pub bits: Bits,
    /// Who evaluated it: `None` for this run, or the earlier run it is carried over from.
    pub carried: Option<Carried>,
}

/// A group's members, to be serialized or as already-published bytes.
#[derive(Debug)]
pub enum Bits {
    /// Evaluated (or translated) in this run.
    Bitmap(RoaringBitmap),
    /// The verified portable serialization of an earlier run, copied byte for byte.
    Serialized {
        /// The bytes.
        bytes: Bytes,
        /// Their member count.
        members: u64,
    },
}

impl Bits {
    /// `bitmap` serialized now (its portable bytes), so that the bitmap itself can go.
    pub fn serialized(bitmap: &RoaringBitmap) -> Bits {
        let (bytes, members) = serialize(bitmap);
        Bits::Serialized { bytes, members }
    }

    /// Member count.
    pub fn len(&self) -> u64 {
        match self {
            Bits::Bitmap(b) => b.len(),
            Bits::Serialized { members, .. } => *members,
        }
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A bitmap's portable bytes and its member count.
fn serialize(bitmap: &RoaringBitmap) -> (Bytes, u64) {
    let mut bytes = Vec::with_capacity(bitmap.serialized_size());
    bitmap
        .serialize_into(&mut bytes)
        .expect("writing to a Vec cannot fail");
    (bytes.into(), bitmap.len())
}

/// Where a carried-over group was evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carried {
    /// The run that evaluated it.
    pub run_id: String,
    /// That run's `as_of`.
    pub as_of: String,
}

/// Whether a published run moves `LATEST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Promote {
    /// Unless its `as_of` is older than that of the run `LATEST` names (a backfill).
    #[default]
    Auto,
    /// Always (`--promote`).
    Always,
    /// Never (`--no-promote`).
    Never,
}

/// The ids of a run, encoded: the manifest's `id_mapping` and the files behind it.
#[derive(Debug)]
pub struct EncodedIds {
    /// The manifest entry (identity, or the dictionary with its checksum).
    pub entry: IdMappingEntry,
    dictionary: Option<Vec<u8>>,
    hash_index: Option<Vec<u8>>,
}

impl EncodedIds {
    /// Encodes the dictionary (row n = bit n) and its perfect hash; identity without one.
    pub fn new(
        id_column: &str,
        dictionary: Option<&ArrayRef>,
        hash_index: Option<&PerfectHash>,
    ) -> Result<EncodedIds> {
        let dictionary = dictionary
            .map(|ids| dictionary_parquet(id_column, ids))
            .transpose()?;
        let hash_index = hash_index.map(PerfectHash::to_bytes);
        let entry = match &dictionary {
            None => IdMappingEntry::Identity(IdentityTag::Identity),
            Some(bytes) => IdMappingEntry::Dictionary {
                kind: DictionaryTag::Dictionary,
                path: DICTIONARY_FILE.into(),
                length: bytes.len() as u64,
                checksum: checksum(bytes),
                hash_index: hash_index.as_ref().map(|bytes| FileRef {
                    path: HASH_INDEX_FILE.into(),
                    length: bytes.len() as u64,
                    checksum: checksum(bytes),
                }),
            },
        };
        Ok(EncodedIds {
            entry,
            dictionary,
            hash_index,
        })
    }
}

/// What a publish did.
#[derive(Debug)]
pub struct Published {
    /// The run's manifest (of the existing run, for an idempotent rerun).
    pub manifest: Manifest,
    /// Whether `LATEST` now names the run.
    pub promoted: bool,
    /// The run `LATEST` named before, if any.
    pub latest_before: Option<String>,
    /// Why `LATEST` was not moved, when it was not.
    pub not_promoted_because: Option<String>,
}

/// How often a publish rewrites a run that vanished under it (a concurrent `gc`) before
/// it gives up.
const REWRITES: usize = 3;

/// Serializes the groups, derives the run id from the content, writes every file of the run
/// (the manifest last), then points `LATEST` at it as `promote` says, and checks afterwards
/// that the run is still whole (a `gc` racing this publish could have removed it; then the
/// run is written again). `manifest` supplies everything but `run_id`, `groups` and
/// `id_mapping`. Publishing the same content again gives the same run (its `created_at`
/// kept): reruns are idempotent.
pub async fn publish(
    publish: &Location,
    mut manifest: Manifest,
    groups: &[PublishedGroup],
    ids: &EncodedIds,
    promote: Promote,
) -> Result<Published> {
    // The bitmaps file as one chunk per group: serialized bytes are not copied again.
    let chunks: Vec<(Bytes, u64)> = groups
        .par_iter()
        .map(|g| match &g.bits {
            Bits::Bitmap(bitmap) => serialize(bitmap),
            Bits::Serialized { bytes, members } => (bytes.clone(), *members),
        })
        .collect();
    let mut offset = 0usize;
    let mut entries = Vec::with_capacity(groups.len());
    for (g, (bytes, members)) in groups.iter().zip(&chunks) {
        entries.push(GroupEntry {
            id: g.id.clone(),
            name: g.name.clone(),
            description: g.description.clone(),
            definition_hash: g.definition_hash.clone(),
            members: *members,
            bitmap: BitmapRef {
                path: BITMAPS_FILE.into(),
                offset: offset as u64,
                length: bytes.len() as u64,
                checksum: String::new(),
            },
            as_of: g.carried.as_ref().map(|c| c.as_of.clone()),
            carried_from: g.carried.as_ref().map(|c| c.run_id.clone()),
        });
        offset += bytes.len();
    }
    let blob: Vec<Bytes> = chunks.into_iter().map(|(bytes, _)| bytes).collect();
    manifest.id_mapping = ids.entry.clone();
    manifest.groups = entries;
    // The run id (which does not read the groups' checksums) beside the checksums, each
    // a pass over every byte.
    let (run_id, checksums) = rayon::join(
        || run_id(&manifest, &blob),
        || blob.par_iter().map(|b| checksum(b)).collect::<Vec<_>>(),
    );
    for (entry, sum) in manifest.groups.iter_mut().zip(checksums) {
        entry.bitmap.checksum = sum;
    }
    manifest.run_id = run_id;

    let run = publish.join(&format!("runs/{}", manifest.run_id));
    let manifest_location = run.join(MANIFEST_FILE);
    // Same content already published (a rerun): keep its created_at.
    if let Some(existing) = manifest_location.read_if_exists().await? {
        if let Ok(existing) = serde_json::from_slice::<Manifest>(&existing) {
            if existing.run_id == manifest.run_id {
                manifest.created_at = existing.created_at;
            }
        }
    }
    let json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    let mut files: Vec<(&str, PutPayload)> = vec![(BITMAPS_FILE, PutPayload::from_iter(blob))];
    if let Some(bytes) = &ids.dictionary {
        files.push((DICTIONARY_FILE, PutPayload::from(bytes.clone())));
    }
    if let Some(bytes) = &ids.hash_index {
        files.push((HASH_INDEX_FILE, PutPayload::from(bytes.clone())));
    }
    // The manifest last: a run folder with a manifest is complete, and writing it refreshes
    // the run's modification time, which `gc --min-age` respects.
    files.push((MANIFEST_FILE, PutPayload::from(json)));
    write_files(&run, &files).await?;

    let latest_before = match latest_run_id(publish).await {
        Ok(id) => Some(id),
        Err(Error::NothingPublished { .. }) => None,
        Err(e) => return Err(e),
    };
    let not_promoted_because = match promote {
        Promote::Always => None,
        Promote::Never => Some("--no-promote was given".to_string()),
        Promote::Auto => match &latest_before {
            Some(latest) if *latest != manifest.run_id => {
                newer_latest(publish, latest, &manifest.as_of).await?
            }
            _ => None,
        },
    };
    let promoted = not_promoted_because.is_none();
    if promoted {
        for attempt in 0.. {
            publish
                .join(LATEST)
                .write(format!("{}\n", manifest.run_id).into_bytes())
                .await?;
            // LATEST names a complete run now: a check that can't be made (the store
            // failing) is a warning, not a failed publish.
            match run_is_whole(&run, &files).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(run = %manifest.run_id, "published, but the run could not be checked again afterwards: {e}");
                    break;
                }
            }
            if attempt == REWRITES {
                return Err(Error::invalid(
                    &run.display,
                    "the run was deleted while it was being published, again and again \
                     (is a `cohort gc --min-age 0s` running?); LATEST may name it",
                ));
            }
            tracing::warn!(run = %manifest.run_id, "run removed while publishing (concurrent gc?); writing it again");
            write_files(&run, &files).await?;
        }
    }
    Ok(Published {
        manifest,
        promoted,
        latest_before,
        not_promoted_because,
    })
}

/// Writes the run's files, all at once but the last (the manifest), which is written
/// once the others are.
async fn write_files(run: &Location, files: &[(&str, PutPayload)]) -> Result<()> {
    let Some(((last, last_bytes), others)) = files.split_last() else {
        return Ok(());
    };
    futures::future::try_join_all(
        others
            .iter()
            .map(|(name, bytes)| async move { run.join(name).write(bytes.clone()).await }),
    )
    .await?;
    run.join(last).write(last_bytes.clone()).await
}

/// Whether every file of the run is there with its size.
async fn run_is_whole(run: &Location, files: &[(&str, PutPayload)]) -> Result<bool> {
    for (name, bytes) in files {
        let file = run.join(name);
        match file.store.head(&file.path).await {
            Ok(meta) if meta.size == bytes.content_length() as u64 => {}
            Ok(_) | Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(Error::storage(&file.display, e)),
        }
    }
    Ok(true)
}

/// Why a run of `as_of` must not replace the run `latest`: `Some` when that run's `as_of`
/// is newer (this run is a backfill). A `LATEST` run that cannot be read is replaced.
async fn newer_latest(publish: &Location, latest: &str, as_of: &str) -> Result<Option<String>> {
    let path = publish.join(&format!("runs/{latest}/{MANIFEST_FILE}"));
    let Some(bytes) = path.read_if_exists().await? else {
        return Ok(None);
    };
    let Ok(current) = serde_json::from_slice::<Manifest>(&bytes) else {
        return Ok(None);
    };
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    Ok(match (parse(&current.as_of), parse(as_of)) {
        (Some(theirs), Some(ours)) if ours < theirs => Some(format!(
            "its as_of {as_of} is older than {} of run {latest}, which LATEST names \
             (a backfill; pass --promote to move LATEST anyway)",
            current.as_of
        )),
        _ => None,
    })
}

/// `<as_of as YYYYMMDDTHHMMSSZ>-<12 hex of the content hash>`: sorts by evaluation time,
/// and equal content gives an equal id.
fn run_id(manifest: &Manifest, blob: &[Bytes]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(manifest.as_of.as_bytes());
    h.update(manifest.id_column.as_bytes());
    for s in &manifest.sources {
        h.update(format!("{}|{}|{}|{:?}", s.path, s.size, s.last_modified, s.etag).as_bytes());
    }
    for g in &manifest.groups {
        h.update(format!("{}|{}|{}", g.id, g.name, g.definition_hash).as_bytes());
        if let (Some(from), Some(as_of)) = (&g.carried_from, &g.as_of) {
            h.update(format!("|carried:{from}|{as_of}").as_bytes());
        }
    }
    h.update(format!("{:?}", manifest.id_mapping).as_bytes());
    for chunk in blob {
        h.update(chunk);
    }
    let compact: String = manifest
        .as_of
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .take(15)
        .collect();
    format!("{compact}Z-{}", &hex::encode(h.finalize())[..12])
}

fn dictionary_parquet(id_column: &str, ids: &ArrayRef) -> Result<Vec<u8>> {
    let schema = Arc::new(Schema::new(vec![Field::new(
        id_column,
        ids.data_type().clone(),
        false,
    )]));
    let batch = RecordBatch::try_new(schema.clone(), vec![ids.clone()])?;
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, None)?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(out)
}
