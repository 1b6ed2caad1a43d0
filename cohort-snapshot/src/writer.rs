//! Publishing a run: every run file first, `LATEST` last, so readers never see a mix.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
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

/// What the manifest says of a group to publish, before its members.
#[derive(Debug, Clone)]
pub struct GroupHeader {
    /// Group id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The definition's description, if any.
    pub description: Option<String>,
    /// Definition hash.
    pub definition_hash: String,
    /// Who evaluated it: `None` for this run, or the earlier run it is carried over from.
    pub carried: Option<Carried>,
}

impl GroupHeader {
    /// Its manifest entry, members and bitmap to be filled in.
    fn entry(&self) -> GroupEntry {
        GroupEntry {
            id: self.id.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            definition_hash: self.definition_hash.clone(),
            members: 0,
            bitmap: BitmapRef {
                path: String::new(),
                offset: 0,
                length: 0,
                checksum: String::new(),
            },
            as_of: self.carried.as_ref().map(|c| c.as_of.clone()),
            carried_from: self.carried.as_ref().map(|c| c.run_id.clone()),
        }
    }
}

/// One group to publish, members and all.
#[derive(Debug)]
pub struct PublishedGroup {
    /// What the manifest says of it.
    pub header: GroupHeader,
    /// Members, in the published bit space.
    pub bits: Bits,
}

/// A group's members, to be serialized or as already-published bytes.
#[derive(Debug, Clone)]
pub enum Bits {
    /// Evaluated (or translated) in this run.
    Bitmap(RoaringBitmap),
    /// A portable serialization: made in this run, or verified bytes of an earlier run,
    /// copied byte for byte.
    Serialized {
        /// The bytes.
        bytes: Bytes,
        /// Their member count.
        members: u64,
        /// Their `sha256:<hex>`.
        checksum: String,
    },
}

impl Bits {
    /// `bitmap` serialized and checksummed now, so that the bitmap itself can go (and the
    /// hashing is done where the serializing is, on as many cores).
    pub fn serialized(bitmap: &RoaringBitmap) -> Bits {
        let (bytes, members, checksum) = serialize(bitmap);
        Bits::Serialized {
            bytes,
            members,
            checksum,
        }
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

/// A bitmap's portable bytes, member count and checksum.
fn serialize(bitmap: &RoaringBitmap) -> (Bytes, u64, String) {
    let mut bytes = Vec::with_capacity(bitmap.serialized_size());
    bitmap
        .serialize_into(&mut bytes)
        .expect("writing to a Vec cannot fail");
    let sum = checksum(&bytes);
    (bytes.into(), bitmap.len(), sum)
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
    dictionary: Option<Bytes>,
    hash_index: Option<Bytes>,
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
            dictionary: dictionary.map(Bytes::from),
            hash_index: hash_index.map(Bytes::from),
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

/// About how many bytes of the groups' bitmaps a publish holds before it writes them out:
/// the groups go into files of about this size (`groups.bin`, `groups-1.bin`, …; a group
/// larger than this is a file of its own), so memory does not grow with the run.
pub const PART_BYTES: usize = 64 << 20;

/// The name of the `n`th file of a run's bitmaps: `groups.bin` first, so a run of up to
/// [`PART_BYTES`] has the one file every earlier build wrote.
fn part_name(n: usize) -> String {
    match n {
        0 => BITMAPS_FILE.to_string(),
        n => format!("groups-{n}.bin"),
    }
}

/// A run being written: its groups' bitmaps arrive one at a time, in the order announced,
/// and go out in parts to a staging folder under `runs/` (an incomplete run to every
/// reader, removed by `gc` if a crash leaves it), hashed on the way into the run id. When
/// the last has come, [`finish`](Self::finish) copies the parts into `runs/<run-id>/`
/// (server-side on object stores, hard links on local disk), writes the ids and the
/// manifest, and moves `LATEST`.
#[derive(Debug)]
pub struct RunWriter {
    publish: Location,
    staging: Location,
    manifest: Manifest,
    ids: EncodedIds,
    /// The run id's hash: the manifest's identity first, then every group's bytes.
    hasher: sha2::Sha256,
    /// The next group to come (an index into `manifest.groups`).
    next: usize,
    /// The part being filled, and its length.
    part: Vec<Bytes>,
    part_len: usize,
    /// How long a part grows before it is written.
    part_bytes: usize,
    /// The parts written to the staging folder, with their lengths.
    parts: Vec<(String, u64)>,
    /// The id files written to the staging folder (from the first group on, so that a
    /// large dictionary is written while the groups are still being made, not after).
    staged_ids: Vec<(String, u64)>,
    /// Writes to the staging folder under way (parts and id files go out while the next
    /// groups come); all have finished before the run is completed or given up.
    writing: Vec<tokio::task::JoinHandle<Result<()>>>,
}

impl RunWriter {
    /// Starts a run of `groups` (in this order: sorted by id). `manifest` supplies
    /// everything but `run_id`, `groups` and `id_mapping`.
    pub fn begin(
        publish: &Location,
        mut manifest: Manifest,
        groups: &[GroupHeader],
        ids: EncodedIds,
    ) -> RunWriter {
        use sha2::Digest;
        manifest.id_mapping = ids.entry.clone();
        manifest.groups = groups.iter().map(GroupHeader::entry).collect();
        let mut hasher = sha2::Sha256::new();
        hash_identity(&mut hasher, &manifest);
        let staging = publish.join(&format!(
            "runs/{}-staging-{}",
            compact(&manifest.as_of),
            token()
        ));
        RunWriter {
            publish: publish.clone(),
            staging,
            manifest,
            ids,
            hasher,
            next: 0,
            part: Vec::new(),
            part_len: 0,
            part_bytes: PART_BYTES,
            parts: Vec::new(),
            staged_ids: Vec::new(),
            writing: Vec::new(),
        }
    }

    /// Parts of about `bytes` instead of [`PART_BYTES`] (the run id is the same whatever
    /// the parts: it hashes the groups' bytes back to back).
    pub fn with_part_bytes(mut self, bytes: usize) -> RunWriter {
        self.part_bytes = bytes.max(1);
        self
    }

    /// The next group's members. A part that has reached its size is written out.
    pub async fn push(&mut self, bits: Bits) -> Result<()> {
        use sha2::Digest;
        if self.next == 0 {
            self.stage_ids().await?;
        }
        let (bytes, members, sum) = match bits {
            Bits::Serialized {
                bytes,
                members,
                checksum,
            } => (bytes, members, checksum),
            Bits::Bitmap(bitmap) => serialize(&bitmap),
        };
        let Some(entry) = self.manifest.groups.get_mut(self.next) else {
            return Err(Error::invalid(
                &self.staging.display,
                format!("more groups than the {} announced", self.next),
            ));
        };
        entry.members = members;
        entry.bitmap = BitmapRef {
            path: part_name(self.parts.len()),
            offset: self.part_len as u64,
            length: bytes.len() as u64,
            checksum: sum,
        };
        self.hasher.update(&bytes);
        self.part_len += bytes.len();
        self.part.push(bytes);
        self.next += 1;
        if self.part_len >= self.part_bytes {
            self.write_part().await?;
        }
        Ok(())
    }

    /// Starts writing the id files to the staging folder (they are freed once written).
    async fn stage_ids(&mut self) -> Result<()> {
        let files = [
            (DICTIONARY_FILE, self.ids.dictionary.take()),
            (HASH_INDEX_FILE, self.ids.hash_index.take()),
        ];
        for (name, bytes) in files {
            if let Some(bytes) = bytes {
                self.staged_ids.push((name.to_string(), bytes.len() as u64));
                self.stage(name, PutPayload::from(bytes)).await?;
            }
        }
        Ok(())
    }

    /// Starts writing the part being filled to the staging folder.
    async fn write_part(&mut self) -> Result<()> {
        let name = part_name(self.parts.len());
        let part = std::mem::take(&mut self.part);
        self.parts
            .push((name.clone(), std::mem::take(&mut self.part_len) as u64));
        self.stage(&name, PutPayload::from_iter(part)).await
    }

    /// Starts writing one file of the staging folder; with a write already under way, one
    /// that failed is reported now, and the oldest is waited for, so that at most two
    /// parts are held at once.
    async fn stage(&mut self, name: &str, payload: PutPayload) -> Result<()> {
        let file = self.staging.join(name);
        if self.writing.len() >= 2 {
            let oldest = self.writing.remove(0);
            joined_write(oldest).await?;
        }
        self.writing
            .push(tokio::spawn(async move { file.write(payload).await }));
        Ok(())
    }

    /// Waits for every write to the staging folder; the first error, if any.
    async fn written(&mut self) -> Result<()> {
        let mut result = Ok(());
        for write in std::mem::take(&mut self.writing) {
            let done = joined_write(write).await;
            if result.is_ok() {
                result = done;
            }
        }
        result
    }

    /// Completes the run: the last part, the run id, every file of the run (the manifest
    /// last), then `LATEST` as `promote` says; afterwards checks that the run is still
    /// whole (a `gc` racing this publish could have removed it; then the run is written
    /// again). Publishing the same content again gives the same run (its `created_at`
    /// kept): reruns are idempotent. The staging folder is removed either way.
    pub async fn finish(mut self, promote: Promote) -> Result<Published> {
        let result = self.complete(promote).await;
        self.remove_staging().await;
        result
    }

    /// Gives the run up: its staging folder is removed (as far as the store lets it; what
    /// is left is an incomplete run that `gc` removes).
    pub async fn abandon(mut self) {
        self.remove_staging().await;
    }

    async fn complete(&mut self, promote: Promote) -> Result<Published> {
        use sha2::Digest;
        if self.next != self.manifest.groups.len() {
            return Err(Error::invalid(
                &self.staging.display,
                format!(
                    "{} of the {} groups announced were written",
                    self.next,
                    self.manifest.groups.len()
                ),
            ));
        }
        if !self.part.is_empty() || self.parts.is_empty() {
            self.write_part().await?;
        }
        self.stage_ids().await?;
        self.written().await?;
        let mut manifest = self.manifest.clone();
        let hash = std::mem::take(&mut self.hasher).finalize();
        manifest.run_id = format!("{}-{}", compact(&manifest.as_of), &hex::encode(hash)[..12]);
        let run = self.publish.join(&format!("runs/{}", manifest.run_id));
        // Same content already published (a rerun): keep its created_at.
        if let Some(existing) = run.join(MANIFEST_FILE).read_if_exists().await? {
            if let Ok(existing) = serde_json::from_slice::<Manifest>(&existing) {
                if existing.run_id == manifest.run_id {
                    manifest.created_at = existing.created_at;
                }
            }
        }
        let json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
        let mut files: Vec<(String, Content)> = self
            .parts
            .iter()
            .chain(&self.staged_ids)
            .map(|(name, length)| {
                let from = self.staging.join(name);
                (
                    name.clone(),
                    Content::Staged {
                        from,
                        length: *length,
                    },
                )
            })
            .collect();
        // The manifest last: a run folder with a manifest is complete, and writing it
        // refreshes the run's modification time, which `gc --min-age` respects.
        files.push((MANIFEST_FILE.into(), Content::Bytes(json.into())));
        write_files(&run, &files).await?;
        promote_run(&self.publish, &run, manifest, &files, promote).await
    }

    async fn remove_staging(&mut self) {
        // (Writes still under way would land after the removal.)
        let _ = self.written().await;
        let removed = match &self.staging.local {
            // (Never made, when the first part could not be written.)
            Some(path) if !path.exists() => Ok(()),
            Some(path) => match std::fs::remove_dir_all(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(Error::io(path.display(), e))
                }
                _ => Ok(()),
            },
            None => self.staging.delete_all(BITMAPS_FILE).await.map(|_| ()),
        };
        if let Err(e) = removed {
            tracing::warn!(staging = %self.staging.display, "the staging folder was left behind (`cohort gc` removes it): {e}");
        }
    }
}

/// A staged write's result (its panic, if it panicked, goes on).
async fn joined_write(write: tokio::task::JoinHandle<Result<()>>) -> Result<()> {
    match write.await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::io(
            "a staged write",
            std::io::Error::other(format!("cancelled: {e}")),
        )),
    }
}

/// Publishes `groups` (sorted by id) in one go: [`RunWriter`] for groups at hand.
pub async fn publish(
    publish: &Location,
    manifest: Manifest,
    groups: &[PublishedGroup],
    ids: EncodedIds,
    promote: Promote,
) -> Result<Published> {
    let headers: Vec<GroupHeader> = groups.iter().map(|g| g.header.clone()).collect();
    let mut run = RunWriter::begin(publish, manifest, &headers, ids);
    for g in groups {
        if let Err(e) = run.push(g.bits.clone()).await {
            run.abandon().await;
            return Err(e);
        }
    }
    run.finish(promote).await
}

/// Points `LATEST` at the written `run` as `promote` says, then checks that the run is
/// still whole, writing it again (up to [`REWRITES`] times) when a `gc` removed it.
async fn promote_run(
    publish: &Location,
    run: &Location,
    manifest: Manifest,
    files: &[(String, Content)],
    promote: Promote,
) -> Result<Published> {
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
            match run_is_whole(run, files).await {
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
            write_files(run, files).await?;
        }
    }
    Ok(Published {
        manifest,
        promoted,
        latest_before,
        not_promoted_because,
    })
}

/// A file of a run: bytes at hand, or a part in the staging folder to copy.
#[derive(Debug)]
enum Content {
    Bytes(PutPayload),
    Staged { from: Location, length: u64 },
}

impl Content {
    fn length(&self) -> u64 {
        match self {
            Content::Bytes(bytes) => bytes.content_length() as u64,
            Content::Staged { length, .. } => *length,
        }
    }

    async fn write_to(&self, to: &Location) -> Result<()> {
        match self {
            Content::Bytes(bytes) => to.write(bytes.clone()).await,
            Content::Staged { from, .. } => from.copy_to(to).await,
        }
    }
}

/// Writes the run's files, all at once but the last (the manifest), which is written
/// once the others are.
async fn write_files(run: &Location, files: &[(String, Content)]) -> Result<()> {
    let Some(((last, last_content), others)) = files.split_last() else {
        return Ok(());
    };
    futures::future::try_join_all(
        others
            .iter()
            .map(|(name, content)| async move { content.write_to(&run.join(name)).await }),
    )
    .await?;
    last_content.write_to(&run.join(last)).await
}

/// Whether every file of the run is there with its size.
async fn run_is_whole(run: &Location, files: &[(String, Content)]) -> Result<bool> {
    for (name, content) in files {
        let file = run.join(name);
        match file.store.head(&file.path).await {
            Ok(meta) if meta.size == content.length() => {}
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

/// The part of the run id's hash that comes before the groups' bytes: what the run was
/// evaluated from and what its groups are. The run id is `<as_of as
/// YYYYMMDDTHHMMSSZ>-<12 hex of the hash>`: it sorts by evaluation time, and equal content
/// gives an equal id.
fn hash_identity(h: &mut sha2::Sha256, manifest: &Manifest) {
    use sha2::Digest;
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
}

/// `as_of` as `YYYYMMDDTHHMMSSZ`, the start of a run id.
fn compact(as_of: &str) -> String {
    let digits: String = as_of
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .take(15)
        .collect();
    format!("{digits}Z")
}

/// A name no other publish picks: this process, the time, and a counter.
fn token() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}{nanos:x}{n:x}", std::process::id())
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
