//! `manifest.json` of a published run (format version 1; see docs/snapshot-format.md).

use serde::{Deserialize, Serialize};

/// The only format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// A run's manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The run id: `<as_of, compact>-<content hash>`.
    pub run_id: String,
    /// When the run was first published (RFC 3339, UTC).
    pub created_at: String,
    /// The evaluation time (RFC 3339, UTC).
    pub as_of: String,
    /// `cohort <version>`.
    pub tool_version: String,
    /// The customer files read.
    pub sources: Vec<SourceFile>,
    /// Customers (rows with a non-null id).
    pub customers: u64,
    /// Rows skipped for a null id.
    #[serde(default)]
    pub null_ids: u64,
    /// The id column's name.
    pub id_column: String,
    /// `int64`, `uint64` or `string`.
    pub id_type: String,
    /// How ids map to bits.
    pub id_mapping: IdMappingEntry,
    /// Warnings of the run (static ids not found, ...).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// One entry per group.
    pub groups: Vec<GroupEntry>,
}

/// A source file's identity at the time of the run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct SourceFile {
    /// Path or URL.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// RFC 3339.
    pub last_modified: String,
    /// Store etag, when the store has one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub etag: Option<String>,
}

/// `"identity"` or `{"kind": "dictionary", ...}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum IdMappingEntry {
    /// The string `"identity"`: bit n = integer id n.
    Identity(IdentityTag),
    /// A Parquet file whose single column holds the external ids, row n = bit n.
    Dictionary {
        /// Always `"dictionary"`.
        kind: DictionaryTag,
        /// File relative to the run folder.
        path: String,
        /// Bytes.
        length: u64,
        /// `sha256:<hex>` of the file.
        checksum: String,
        /// The dictionary's perfect hash, when its rows are in hash order (runs from
        /// earlier builds, and dictionaries whose hash would not build, have none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hash_index: Option<FileRef>,
    },
}

/// A whole file of the run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileRef {
    /// File relative to the run folder.
    pub path: String,
    /// Bytes.
    pub length: u64,
    /// `sha256:<hex>` of the file.
    pub checksum: String,
}

/// Serializes as the string `"identity"` and accepts nothing else.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IdentityTag {
    /// The only value.
    Identity,
}

/// Serializes as the string `"dictionary"` and accepts nothing else.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DictionaryTag {
    /// The only value.
    Dictionary,
}

/// One group of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupEntry {
    /// Group id.
    pub id: String,
    /// Display name (the id when none was given).
    pub name: String,
    /// The definition's `description`, when it has one (absent otherwise, so a run of
    /// groups without descriptions is byte-for-byte what earlier builds wrote).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `sha256:<hex>` of the definition file.
    pub definition_hash: String,
    /// Member count.
    pub members: u64,
    /// Where its bitmap is.
    pub bitmap: BitmapRef,
    /// For a group carried over from an earlier run (`run --only`), the `as_of` its
    /// members were evaluated at; absent for a group this run evaluated (the run's `as_of`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
    /// For a group carried over unchanged from an earlier run, the run that evaluated it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried_from: Option<String>,
}

/// A byte range holding one Roaring portable serialization.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BitmapRef {
    /// File relative to the run folder.
    pub path: String,
    /// Byte offset in the file.
    pub offset: u64,
    /// Byte length.
    pub length: u64,
    /// `sha256:<hex>` of exactly those bytes.
    pub checksum: String,
}

/// `sha256:<hex>` of some bytes.
pub fn checksum(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}
