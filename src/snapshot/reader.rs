//! Verified loading of a published run, and O(1) membership lookups by external id.

use std::collections::HashMap;

use bytes::Bytes;
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::concat;
use datafusion::arrow::datatypes::{DataType, Int64Type, UInt64Type};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use roaring::RoaringBitmap;

use super::manifest::{checksum, GroupEntry, IdMappingEntry, Manifest, FORMAT_VERSION};
use super::writer::LATEST;
use crate::storage::{self, Location};
use crate::{Error, Result};

/// A loaded, verified run.
#[derive(Debug)]
pub struct Snapshot {
    manifest: Manifest,
    bitmaps: Vec<RoaringBitmap>,
    by_id: HashMap<String, usize>,
    ids: IdLookup,
}

/// External id → bit.
#[derive(Debug)]
enum IdLookup {
    Identity,
    Signed(HashMap<i64, u32>, ArrayRef),
    Unsigned(HashMap<u64, u32>, ArrayRef),
    Text(HashMap<String, u32>, ArrayRef),
}

impl Snapshot {
    /// Opens the run `LATEST` names under the publish URL, verifying everything.
    ///
    /// ```no_run
    /// # async fn demo() -> cohort::Result<()> {
    /// let snapshot = cohort::Snapshot::open("snapshots").await?;
    /// if snapshot.contains("adults", "42")? {
    ///     println!("customer 42 is an adult");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn open(url: &str) -> Result<Snapshot> {
        let publish = storage::resolve(url)?;
        let run_id = latest_run_id(&publish).await?;
        Snapshot::open_run(url, &run_id).await
    }

    /// Opens a specific run under the publish URL.
    pub async fn open_run(url: &str, run_id: &str) -> Result<Snapshot> {
        let publish = storage::resolve(url)?;
        let run = publish.join(&format!("runs/{run_id}"));
        let manifest_bytes = run
            .join("manifest.json")
            .read_if_exists()
            .await?
            .ok_or_else(|| {
                Error::snapshot(&run.display, format!("run '{run_id}' has no manifest.json"))
            })?;
        load(&run, &manifest_bytes).await
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The run id.
    pub fn run_id(&self) -> &str {
        &self.manifest.run_id
    }

    /// The groups, in manifest order.
    pub fn groups(&self) -> &[GroupEntry] {
        &self.manifest.groups
    }

    /// Member count of a group, `None` for an unknown group.
    pub fn cardinality(&self, group: &str) -> Option<u64> {
        self.by_id.get(group).map(|&i| self.bitmaps[i].len())
    }

    /// A group's members in bit space.
    pub fn bitmap(&self, group: &str) -> Option<&RoaringBitmap> {
        self.by_id.get(group).map(|&i| &self.bitmaps[i])
    }

    /// Whether customer `customer_id` (as it appears in the data) is in `group`.
    /// An unknown customer is not a member; an unknown group is an error.
    pub fn contains(&self, group: &str, customer_id: &str) -> Result<bool> {
        let &i = self.by_id.get(group).ok_or_else(|| {
            Error::NotFound(format!(
                "unknown group '{group}' in run '{}'",
                self.run_id()
            ))
        })?;
        Ok(self
            .bit_of(customer_id)
            .is_some_and(|bit| self.bitmaps[i].contains(bit)))
    }

    /// Every group the customer is in, in manifest order.
    pub fn groups_of(&self, customer_id: &str) -> Vec<&str> {
        let Some(bit) = self.bit_of(customer_id) else {
            return Vec::new();
        };
        self.manifest
            .groups
            .iter()
            .zip(&self.bitmaps)
            .filter(|(_, b)| b.contains(bit))
            .map(|(g, _)| g.id.as_str())
            .collect()
    }

    /// The bit of an external id, if the customer is in the run's customers table.
    pub fn bit_of(&self, customer_id: &str) -> Option<u32> {
        let id = customer_id.trim();
        match &self.ids {
            IdLookup::Identity => id.parse::<u32>().ok(),
            IdLookup::Signed(map, _) => id.parse::<i64>().ok().and_then(|v| map.get(&v).copied()),
            IdLookup::Unsigned(map, _) => id.parse::<u64>().ok().and_then(|v| map.get(&v).copied()),
            IdLookup::Text(map, _) => map.get(customer_id).copied(),
        }
    }

    /// The external id of a bit, as text.
    pub fn external_id(&self, bit: u32) -> String {
        match &self.ids {
            IdLookup::Identity => bit.to_string(),
            IdLookup::Signed(_, a) => a
                .as_primitive::<Int64Type>()
                .value(bit as usize)
                .to_string(),
            IdLookup::Unsigned(_, a) => a
                .as_primitive::<UInt64Type>()
                .value(bit as usize)
                .to_string(),
            IdLookup::Text(_, a) => a.as_string::<i32>().value(bit as usize).to_string(),
        }
    }

    /// Whether ids are integers (for JSON output and typed exports).
    pub fn integer_ids(&self) -> bool {
        self.manifest.id_type != "string"
    }
}

/// The run id `LATEST` names.
pub async fn latest_run_id(publish: &Location) -> Result<String> {
    let bytes = publish
        .join(LATEST)
        .read_if_exists()
        .await?
        .ok_or_else(|| {
            Error::NotFound(format!(
                "no published run at '{}' (no LATEST file); run `cohort run` first",
                publish.display
            ))
        })?;
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    if text.is_empty() || text.contains('/') || text.len() > 200 {
        return Err(Error::snapshot(
            &publish.display,
            "LATEST does not hold a run id",
        ));
    }
    Ok(text)
}

/// Checks that the run's files match its manifest (used before reusing a run).
pub async fn verify_run(run: &Location, manifest_bytes: &[u8]) -> Result<()> {
    load(run, manifest_bytes).await.map(|_| ())
}

async fn load(run: &Location, manifest_bytes: &[u8]) -> Result<Snapshot> {
    let bad = |reason: String| Error::snapshot(&run.display, reason);
    let manifest: Manifest = serde_json::from_slice(manifest_bytes)
        .map_err(|e| bad(format!("manifest.json is not a Cohort manifest: {e}")))?;
    if manifest.format_version != FORMAT_VERSION {
        return Err(bad(format!(
            "format version {} is not supported (this build reads {FORMAT_VERSION})",
            manifest.format_version
        )));
    }
    let mut files: HashMap<String, Bytes> = HashMap::new();
    let mut bitmaps = Vec::with_capacity(manifest.groups.len());
    for g in &manifest.groups {
        let r = &g.bitmap;
        if r.path.contains("..") || r.path.starts_with('/') {
            return Err(bad(format!(
                "group '{}' points outside the run: '{}'",
                g.id, r.path
            )));
        }
        if !files.contains_key(&r.path) {
            files.insert(r.path.clone(), run.join(&r.path).read().await?);
        }
        let file = &files[&r.path];
        let end = r
            .offset
            .checked_add(r.length)
            .filter(|e| *e <= file.len() as u64)
            .ok_or_else(|| {
                bad(format!(
                    "group '{}': bytes {}..+{} are past the end of '{}' ({} bytes; truncated?)",
                    g.id,
                    r.offset,
                    r.length,
                    r.path,
                    file.len()
                ))
            })?;
        let bytes = &file[r.offset as usize..end as usize];
        if checksum(bytes) != r.checksum {
            return Err(bad(format!(
                "group '{}': checksum mismatch in '{}' (corrupt file)",
                g.id, r.path
            )));
        }
        let bitmap = RoaringBitmap::deserialize_from(bytes)
            .map_err(|e| bad(format!("group '{}': not a roaring bitmap: {e}", g.id)))?;
        if bitmap.len() != g.members {
            return Err(bad(format!(
                "group '{}': bitmap holds {} members, manifest says {}",
                g.id,
                bitmap.len(),
                g.members
            )));
        }
        bitmaps.push(bitmap);
    }
    let ids = match &manifest.id_mapping {
        IdMappingEntry::Identity(_) => IdLookup::Identity,
        IdMappingEntry::Dictionary {
            path,
            checksum: sum,
            ..
        } => {
            let bytes = run.join(path).read().await?;
            if checksum(&bytes) != *sum {
                return Err(bad(format!(
                    "id dictionary '{path}': checksum mismatch (corrupt file)"
                )));
            }
            let ids =
                read_dictionary(bytes).map_err(|e| bad(format!("id dictionary '{path}': {e}")))?;
            let max_bit = bitmaps.iter().filter_map(|b| b.max()).max();
            if max_bit.is_some_and(|m| m as usize >= ids.len()) {
                return Err(bad(format!(
                    "id dictionary '{path}' is shorter than the bitmaps need"
                )));
            }
            lookup(ids).map_err(bad)?
        }
    };
    let by_id = manifest
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.id.clone(), i))
        .collect();
    Ok(Snapshot {
        manifest,
        bitmaps,
        by_id,
        ids,
    })
}

fn read_dictionary(bytes: Bytes) -> std::result::Result<ArrayRef, String> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .map_err(|e| e.to_string())?;
    let mut chunks = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        if batch.num_columns() != 1 {
            return Err("expected exactly one column".into());
        }
        chunks.push(batch.column(0).clone());
    }
    let refs: Vec<&dyn Array> = chunks.iter().map(|c| c.as_ref()).collect();
    if refs.is_empty() {
        return Ok(datafusion::arrow::array::new_empty_array(&DataType::Utf8));
    }
    concat(&refs).map_err(|e| e.to_string())
}

fn lookup(ids: ArrayRef) -> std::result::Result<IdLookup, String> {
    let n = ids.len();
    Ok(match ids.data_type() {
        DataType::Int64 => {
            let map = ids
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .enumerate()
                .map(|(i, v)| (*v, i as u32));
            IdLookup::Signed(map.collect(), ids)
        }
        DataType::UInt64 => {
            let map = ids
                .as_primitive::<UInt64Type>()
                .values()
                .iter()
                .enumerate()
                .map(|(i, v)| (*v, i as u32));
            IdLookup::Unsigned(map.collect(), ids)
        }
        DataType::Utf8 => {
            let mut map = HashMap::with_capacity(n);
            for (i, v) in ids.as_string::<i32>().iter().enumerate() {
                map.insert(v.unwrap_or_default().to_string(), i as u32);
            }
            IdLookup::Text(map, ids)
        }
        other => return Err(format!("unsupported id type {other}")),
    })
}
