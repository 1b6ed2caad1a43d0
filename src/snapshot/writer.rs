//! Publishing a run: every run file first, `LATEST` last, so readers never see a mix.

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use roaring::RoaringBitmap;

use super::manifest::{
    checksum, BitmapRef, DictionaryTag, FileRef, GroupEntry, IdMappingEntry, IdentityTag, Manifest,
};
use super::perfect_hash::PerfectHash;
use crate::storage::Location;
use crate::Result;

/// File names inside a run folder.
pub const BITMAPS_FILE: &str = "groups.bin";
/// The id dictionary, when the mapping is not the identity.
pub const DICTIONARY_FILE: &str = "ids.parquet";
/// The dictionary's perfect hash, when it has one.
pub const HASH_INDEX_FILE: &str = "ids.phf";
/// The pointer to the current run.
pub const LATEST: &str = "LATEST";

/// One group to publish.
#[derive(Debug)]
pub struct PublishedGroup {
    /// Group id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Definition hash.
    pub definition_hash: String,
    /// Members, in the published bit space.
    pub bitmap: RoaringBitmap,
}

/// Serializes the groups and dictionary, derives the run id from the content, and publishes.
/// `manifest` supplies everything but `run_id`, `groups` and `id_mapping`. Returns the run id.
/// Publishing the same content again reuses the existing run: reruns are idempotent.
pub async fn publish(
    publish: &Location,
    mut manifest: Manifest,
    groups: &[PublishedGroup],
    dictionary: Option<&ArrayRef>,
    hash_index: Option<&PerfectHash>,
) -> Result<Manifest> {
    let mut blob = Vec::new();
    let mut entries = Vec::with_capacity(groups.len());
    for g in groups {
        let offset = blob.len();
        g.bitmap
            .serialize_into(&mut blob)
            .expect("writing to a Vec cannot fail");
        let bytes = &blob[offset..];
        entries.push(GroupEntry {
            id: g.id.clone(),
            name: g.name.clone(),
            definition_hash: g.definition_hash.clone(),
            members: g.bitmap.len(),
            bitmap: BitmapRef {
                path: BITMAPS_FILE.into(),
                offset: offset as u64,
                length: bytes.len() as u64,
                checksum: checksum(bytes),
            },
        });
    }
    let dictionary_bytes = dictionary
        .map(|ids| dictionary_parquet(&manifest.id_column, ids))
        .transpose()?;
    let hash_index_bytes = hash_index.map(PerfectHash::to_bytes);
    manifest.id_mapping = match &dictionary_bytes {
        None => IdMappingEntry::Identity(IdentityTag::Identity),
        Some(bytes) => IdMappingEntry::Dictionary {
            kind: DictionaryTag::Dictionary,
            path: DICTIONARY_FILE.into(),
            length: bytes.len() as u64,
            checksum: checksum(bytes),
            hash_index: hash_index_bytes.as_ref().map(|bytes| FileRef {
                path: HASH_INDEX_FILE.into(),
                length: bytes.len() as u64,
                checksum: checksum(bytes),
            }),
        },
    };
    manifest.groups = entries;
    manifest.run_id = run_id(&manifest, &blob);

    let run = publish.join(&format!("runs/{}", manifest.run_id));
    let manifest_location = run.join("manifest.json");
    match manifest_location.read_if_exists().await? {
        // Same content already published (a rerun): keep it, including its created_at.
        Some(existing) if super::reader::verify_run(&run, &existing).await.is_ok() => {
            manifest = serde_json::from_slice(&existing).expect("verified manifest parses");
        }
        _ => {
            run.join(BITMAPS_FILE).write(blob).await?;
            if let Some(bytes) = dictionary_bytes {
                run.join(DICTIONARY_FILE).write(bytes).await?;
            }
            if let Some(bytes) = hash_index_bytes {
                run.join(HASH_INDEX_FILE).write(bytes).await?;
            }
            let json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
            manifest_location.write(json).await?;
        }
    }
    publish
        .join(LATEST)
        .write(format!("{}\n", manifest.run_id).into_bytes())
        .await?;
    Ok(manifest)
}

/// `<as_of as YYYYMMDDTHHMMSSZ>-<12 hex of the content hash>`: sorts by evaluation time,
/// and equal content gives an equal id.
fn run_id(manifest: &Manifest, blob: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(manifest.as_of.as_bytes());
    h.update(manifest.id_column.as_bytes());
    for s in &manifest.sources {
        h.update(format!("{}|{}|{}|{:?}", s.path, s.size, s.last_modified, s.etag).as_bytes());
    }
    for g in &manifest.groups {
        h.update(format!("{}|{}|{}", g.id, g.name, g.definition_hash).as_bytes());
    }
    h.update(format!("{:?}", manifest.id_mapping).as_bytes());
    h.update(blob);
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
