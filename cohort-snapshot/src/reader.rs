//! Verified loading of a published run, and O(1) membership lookups by external id.

use crate::Malformed;
use bytes::Bytes;
use hashbrown::HashMap;
use rayon::prelude::*;
use roaring::RoaringBitmap;

use super::manifest::{checksum, GroupEntry, IdMappingEntry, Manifest, FORMAT_VERSION};
use crate::ids::dictionary::Dictionary;
use crate::index::{index_bytes, MembershipIndex};
use crate::layout::{latest_run_id, MANIFEST_FILE};
use crate::portable::{parse_group, parsed_bytes, ParsedGroup};
use object_store::ObjectStoreExt;

use crate::location::{self, Location};
use crate::{Error, Result};

/// A loaded, verified run.
#[derive(Debug)]
pub struct Snapshot {
    manifest: Manifest,
    index: MembershipIndex,
    by_id: HashMap<String, usize>,
    ids: IdLookup,
}

/// External id → bit.
#[derive(Debug)]
enum IdLookup {
    /// Bit n is integer id n.
    Identity,
    /// Bit n is row n of the dictionary.
    Dictionary(Dictionary),
}

impl Snapshot {
    /// Opens the run `LATEST` names under the publish URL, verifying everything.
    ///
    /// ```no_run
    /// # async fn demo() -> cohort_snapshot::Result<()> {
    /// let snapshot = cohort_snapshot::Snapshot::open("snapshots").await?;
    /// if snapshot.contains("adults", "42")? {
    ///     println!("customer 42 is an adult");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn open(url: &str) -> Result<Snapshot> {
        Snapshot::open_at(&location::resolve(url)?).await
    }

    /// Opens a specific run under the publish URL.
    pub async fn open_run(url: &str, run_id: &str) -> Result<Snapshot> {
        Snapshot::open_run_at(&location::resolve(url)?, run_id).await
    }

    /// [`Snapshot::open`] on a store the caller gives: `path` is the publish folder inside
    /// it (where `LATEST` is). An in-memory store, a request-counting wrapper, a store
    /// configured by the service itself all work.
    ///
    /// ```
    /// # async fn demo() -> cohort_snapshot::Result<()> {
    /// use std::sync::Arc;
    /// let store = Arc::new(object_store::memory::InMemory::new());
    /// let missing = cohort_snapshot::Snapshot::open_in(store, "audiences").await;
    /// assert!(matches!(missing, Err(cohort_snapshot::Error::NothingPublished { .. })));
    /// # Ok(()) }
    /// ```
    pub async fn open_in(
        store: std::sync::Arc<dyn object_store::ObjectStore>,
        path: &str,
    ) -> Result<Snapshot> {
        Snapshot::open_at(&Location::in_store(store, path)).await
    }

    /// [`Snapshot::open`] on a publish location already resolved, so a caller that opens
    /// runs again and again (the service's reloads) reuses one object store client.
    pub async fn open_at(publish: &Location) -> Result<Snapshot> {
        let run_id = latest_run_id(publish).await?;
        Snapshot::open_run_at(publish, &run_id).await
    }

    /// [`Snapshot::open_run`] on a publish location already resolved.
    pub async fn open_run_at(publish: &Location, run_id: &str) -> Result<Snapshot> {
        let run = publish.join(&format!("runs/{run_id}"));
        let manifest_bytes = manifest_bytes(&run, run_id).await?;
        load(&run, run_id, &manifest_bytes).await
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
        self.by_id
            .get(group)
            .map(|&i| self.manifest.groups[i].members)
    }

    /// A group's members in bit space, as a Roaring bitmap (built on each call).
    pub fn bitmap(&self, group: &str) -> Option<RoaringBitmap> {
        self.by_id.get(group).map(|&i| self.index.bitmap(i))
    }

    /// Whether customer `customer_id` (as it appears in the data) is in `group`.
    /// An unknown customer is not a member; an unknown group is an error.
    pub fn contains(&self, group: &str, customer_id: &str) -> Result<bool> {
        Ok(match &self.ids {
            IdLookup::Identity => {
                let group = self.group_number(group)?;
                self.bit_of(customer_id)
                    .is_some_and(|bit| self.index.contains(group, bit))
            }
            IdLookup::Dictionary(dictionary) => {
                // The id's first read (likely a cache miss) is issued before the group is
                // looked up, so the two overlap.
                let candidate = dictionary.candidate_of(customer_id);
                let group = self.group_number(group)?;
                dictionary.test_candidate(candidate, |bit| self.index.contains(group, bit))
            }
        })
    }

    /// `contains` for many `(group, customer_id)` checks, answered in passes over all of
    /// them so that their memory reads overlap: several times faster per check than one
    /// call each. Fails on the first unknown group.
    ///
    /// ```no_run
    /// # async fn example() -> cohort_snapshot::Result<()> {
    /// let snapshot = cohort_snapshot::Snapshot::open("published/").await?;
    /// let answers = snapshot.contains_many(&[("us_adults", "42"), ("us_adults", "43")])?;
    /// assert_eq!(answers.len(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn contains_many(&self, checks: &[(&str, &str)]) -> Result<Vec<bool>> {
        let groups = checks
            .iter()
            .map(|(group, _)| self.group_number(group))
            .collect::<Result<Vec<usize>>>()?;
        let ids: Vec<&str> = checks.iter().map(|(_, id)| *id).collect();
        let bits = match &self.ids {
            IdLookup::Identity => ids.iter().map(|id| self.bit_of(id)).collect(),
            IdLookup::Dictionary(dictionary) => dictionary.bits_of(&ids),
        };
        Ok(groups
            .into_iter()
            .zip(bits)
            .map(|(group, bit)| bit.is_some_and(|bit| self.index.contains(group, bit)))
            .collect())
    }

    /// A group's position in the manifest; an unknown group is an error.
    fn group_number(&self, group: &str) -> Result<usize> {
        self.by_id
            .get(group)
            .copied()
            .ok_or_else(|| Error::UnknownGroup {
                group: group.to_string(),
                run_id: self.run_id().to_string(),
            })
    }

    /// Every group the customer is in, in manifest order.
    pub fn groups_of(&self, customer_id: &str) -> Vec<&str> {
        let Some(bit) = self.bit_of(customer_id) else {
            return Vec::new();
        };
        self.index
            .groups_of(bit)
            .map(|g| self.manifest.groups[g].id.as_str())
            .collect()
    }

    /// The bit of an external id, if the customer is in the run's customers table.
    pub fn bit_of(&self, customer_id: &str) -> Option<u32> {
        match &self.ids {
            IdLookup::Identity => crate::ids::canonical::<u32>(customer_id),
            IdLookup::Dictionary(dictionary) => dictionary.bit_of(customer_id),
        }
    }

    /// The external id of a bit, as text.
    pub fn external_id(&self, bit: u32) -> String {
        match &self.ids {
            IdLookup::Identity => bit.to_string(),
            IdLookup::Dictionary(dictionary) => dictionary.external_id(bit),
        }
    }

    /// Whether two runs give every customer the same bit (both identity, or the same
    /// dictionary file), so their bitmaps can be compared directly.
    pub fn same_id_space(&self, other: &Snapshot) -> bool {
        self.manifest.id_mapping == other.manifest.id_mapping
    }

    /// Whether ids are integers (for JSON output and typed exports).
    pub fn integer_ids(&self) -> bool {
        self.manifest.id_type != "string"
    }
}

/// The run `LATEST` names and its manifest (nothing else is read), `None` when nothing is
/// published yet.
pub async fn latest_manifest(publish: &Location) -> Result<Option<(String, Manifest)>> {
    let run_id = match latest_run_id(publish).await {
        Ok(id) => id,
        Err(Error::NothingPublished { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let run = publish.join(&format!("runs/{run_id}"));
    let bytes = manifest_bytes(&run, &run_id).await?;
    let manifest = parse_manifest(&run_id, &bytes).map_err(|e| Error::invalid(&run.display, e))?;
    Ok(Some((run_id, manifest)))
}

/// A run's `manifest.json`; a run without one is an error naming it.
async fn manifest_bytes(run: &Location, run_id: &str) -> Result<Bytes> {
    run.join(MANIFEST_FILE)
        .read_if_exists()
        .await?
        .ok_or_else(|| Error::invalid(&run.display, format!("run '{run_id}' has no manifest.json")))
}

/// One group's portable bytes from a published run, range-read and checked against the
/// manifest's checksum and count.
pub async fn group_bytes(publish: &Location, run_id: &str, entry: &GroupEntry) -> Result<Bytes> {
    let run = publish.join(&format!("runs/{run_id}"));
    let r = &entry.bitmap;
    if r.path.contains("..") || r.path.starts_with('/') {
        let reason = format!("group '{}' points outside the run: '{}'", entry.id, r.path);
        return Err(Error::invalid(&run.display, reason));
    }
    let file = run.join(&r.path);
    let bytes = file
        .store
        .get_range(&file.path, r.offset..r.offset.saturating_add(r.length))
        .await
        .map_err(|e| Error::storage(&file.display, e))?;
    let parsed = (bytes.len() as u64 == r.length && checksum(&bytes) == r.checksum)
        .then(|| parse_group(&bytes).ok())
        .flatten();
    match parsed {
        Some(p) if p.cardinality() == entry.members => Ok(bytes),
        _ => Err(Error::invalid(
            &file.display,
            format!(
                "group '{}': bytes do not match the manifest (corrupt file)",
                entry.id
            ),
        )),
    }
}

/// Parses a run's manifest and checks what it says of itself: the format version, that it
/// names the folder it is in, and that no group appears twice.
pub fn parse_manifest(
    run_id: &str,
    manifest_bytes: &[u8],
) -> std::result::Result<Manifest, Malformed> {
    let manifest: Manifest = serde_json::from_slice(manifest_bytes)
        .map_err(|e| format!("manifest.json is not a Cohort manifest: {e}"))?;
    if manifest.format_version != FORMAT_VERSION {
        return Err(malformed!(
            "format version {} is not supported (this build reads {FORMAT_VERSION})",
            manifest.format_version
        ));
    }
    if manifest.run_id != run_id {
        return Err(malformed!(
            "manifest.json names run '{}', but it is in the folder of run '{run_id}'",
            manifest.run_id
        ));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(g) = manifest.groups.iter().find(|g| !seen.insert(g.id.as_str())) {
        return Err(malformed!(
            "group '{}' appears twice in manifest.json",
            g.id
        ));
    }
    Ok(manifest)
}

async fn load(run: &Location, run_id: &str, manifest_bytes: &[u8]) -> Result<Snapshot> {
    let bad = |reason: Malformed| Error::invalid(&run.display, reason);
    let manifest = parse_manifest(run_id, manifest_bytes).map_err(bad)?;
    let mut files: HashMap<String, Bytes> = HashMap::new();
    for g in &manifest.groups {
        let path = &g.bitmap.path;
        if path.contains("..") || path.starts_with('/') {
            return Err(bad(malformed!(
                "group '{}' points outside the run: '{path}'",
                g.id
            )));
        }
        if !files.contains_key(path) {
            files.insert(path.clone(), run.join(path).read().await?);
        }
    }
    // What the index will take, from the groups' headers, before any of it is allocated:
    // a few bytes of run containers can stand for millions of members.
    let sizes: Vec<(u64, u64)> = manifest
        .groups
        .iter()
        .filter_map(|g| {
            let file = &files[&g.bitmap.path];
            let start = usize::try_from(g.bitmap.offset).ok()?;
            let end = start.checked_add(usize::try_from(g.bitmap.length).ok()?)?;
            parsed_bytes(file.get(start..end)?).ok()
        })
        .collect();
    let needed = index_bytes(&sizes);
    if let Some(available) = super::memory::available_bytes() {
        if needed > available {
            return Err(bad(malformed!(
                "its lookup index would need {} MiB (its {} groups as parsed, the matrix and \
                 the slot table), more than the {} MiB this machine has available",
                needed >> 20,
                manifest.groups.len(),
                available >> 20
            )));
        }
    }
    // Checksums and parsing dominate a large load: spread the groups over the cores. The
    // first damaged group in manifest order is the one reported.
    let parsed: Vec<_> = manifest
        .groups
        .par_iter()
        .map(|g| load_bitmap(g, &files[&g.bitmap.path]))
        .collect();
    let parsed = parsed
        .into_iter()
        .collect::<std::result::Result<Vec<_>, Malformed>>()
        .map_err(bad)?;
    let dictionary = match &manifest.id_mapping {
        IdMappingEntry::Identity(_) => None,
        IdMappingEntry::Dictionary {
            path,
            checksum,
            hash_index,
            ..
        } => {
            let dictionary = RunFile::read(run, path, checksum, "id dictionary").await?;
            let hash_index = match hash_index {
                None => None,
                Some(f) => Some(RunFile::read(run, &f.path, &f.checksum, "id hash").await?),
            };
            Some((dictionary, hash_index))
        }
    };
    // The index is built on one core: check, decode and index the dictionary beside it.
    let (index, ids) = rayon::join(
        || MembershipIndex::new(parsed),
        || {
            dictionary.map(|(dictionary, hash_index)| {
                let hash_index = hash_index.map(RunFile::verified).transpose()?;
                let path = dictionary.path;
                let ids = Dictionary::read(dictionary.verified()?, hash_index)
                    .map_err(|e| format!("id dictionary '{path}': {e}"))?;
                Ok((path, ids))
            })
        },
    );
    let index = index.map_err(bad)?;
    let ids = match ids.transpose().map_err(bad)? {
        None => IdLookup::Identity,
        Some((path, ids)) => {
            if ids.len() as u64 != manifest.customers {
                return Err(bad(malformed!(
                    "id dictionary '{path}' holds {} ids, the manifest counts {} customers",
                    ids.len(),
                    manifest.customers
                )));
            }
            if index.max_bit().is_some_and(|m| m as usize >= ids.len()) {
                return Err(bad(malformed!(
                    "id dictionary '{path}' is shorter than the bitmaps need"
                )));
            }
            IdLookup::Dictionary(ids)
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
        index,
        by_id,
        ids,
    })
}

/// A whole file of the run as read, before its checksum is checked.
struct RunFile<'m> {
    what: &'static str,
    path: &'m str,
    checksum: &'m str,
    bytes: Bytes,
}

impl<'m> RunFile<'m> {
    async fn read(
        run: &Location,
        path: &'m str,
        checksum: &'m str,
        what: &'static str,
    ) -> Result<RunFile<'m>> {
        if path.contains("..") || path.starts_with('/') {
            let reason = format!("the {what} points outside the run: '{path}'");
            return Err(Error::invalid(&run.display, reason));
        }
        let bytes = run.join(path).read().await?;
        Ok(RunFile {
            what,
            path,
            checksum,
            bytes,
        })
    }

    /// The bytes, if they match the manifest's checksum.
    fn verified(self) -> std::result::Result<Bytes, Malformed> {
        if checksum(&self.bytes) != self.checksum {
            return Err(malformed!(
                "{} '{}': checksum mismatch (corrupt file)",
                self.what,
                self.path
            ));
        }
        Ok(self.bytes)
    }
}

/// Verifies one group's byte range and parses it.
fn load_bitmap(g: &GroupEntry, file: &Bytes) -> std::result::Result<ParsedGroup, Malformed> {
    let r = &g.bitmap;
    let end = r
        .offset
        .checked_add(r.length)
        .filter(|e| *e <= file.len() as u64)
        .ok_or_else(|| {
            format!(
                "group '{}': bytes {}..+{} are past the end of '{}' ({} bytes; truncated?)",
                g.id,
                r.offset,
                r.length,
                r.path,
                file.len()
            )
        })?;
    let bytes = &file[r.offset as usize..end as usize];
    if checksum(bytes) != r.checksum {
        return Err(malformed!(
            "group '{}': checksum mismatch in '{}' (corrupt file)",
            g.id,
            r.path
        ));
    }
    let parsed =
        parse_group(bytes).map_err(|e| format!("group '{}': not a roaring bitmap: {e}", g.id))?;
    if parsed.cardinality() != g.members {
        return Err(malformed!(
            "group '{}': bitmap holds {} members, manifest says {}",
            g.id,
            parsed.cardinality(),
            g.members
        ));
    }
    Ok(parsed)
}
