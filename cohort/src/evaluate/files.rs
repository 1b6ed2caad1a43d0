//! A table's Parquet files, listed by SPEC §1's rules and read once: which files a folder
//! holds (recursively; Hive-style `key=value/` folders as columns; `_`/`.` names skipped;
//! Delta Lake and Iceberg tables refused), and each file's footer, so that every per-file
//! failure names its file and the manifest's `sources` are exactly the files read.
//!
//! DataFusion lists the same files through [`TableStore`](super::table_store::TableStore),
//! which applies the same rules ([`hidden`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
// Deprecated in parquet 59 in favour of hand-written `AsyncFileReader`s; still the
// maintained way to read one footer through an `ObjectStore`, which is all we need.
#[allow(deprecated)]
use datafusion::parquet::arrow::async_reader::ParquetObjectReader;
use datafusion::parquet::arrow::ParquetRecordBatchStreamBuilder;
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionContext};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

use cohort_snapshot::Location;

use crate::{Error, Result};

/// The extension of the files a folder's table is made of.
pub(crate) const PARQUET: &str = ".parquet";

/// One Parquet file of a table and its footer.
#[derive(Debug, Clone)]
pub(crate) struct TableFile {
    /// The file's full URL (`file:///…`, `s3://bucket/…`).
    pub(crate) url: String,
    /// Where it is in its store.
    pub(crate) object: ObjectMeta,
    /// Its footer.
    pub(crate) metadata: Arc<ParquetMetaData>,
    /// Its columns as the Arrow reader sees them (the embedded Arrow schema, if any).
    pub(crate) schema: SchemaRef,
    /// The values of the table's partition columns for this file, in their order (a
    /// cluster's scan gives each file's rows these constants).
    #[cfg_attr(not(feature = "ballista"), allow(dead_code))]
    pub(crate) partition_values: Vec<String>,
}

impl TableFile {
    /// Rows in the file, from the footer.
    #[cfg_attr(not(feature = "ballista"), allow(dead_code))]
    pub(crate) fn rows(&self) -> u64 {
        u64::try_from(self.metadata.file_metadata().num_rows()).unwrap_or(0)
    }
}

/// The files of a table, as read.
#[derive(Debug, Clone)]
pub(crate) struct TableFiles {
    /// The table's URL as given.
    pub(crate) url: String,
    /// Its Parquet files in path order.
    pub(crate) files: Vec<TableFile>,
    /// Hive-style partition columns (`country=US/`), outermost first; read as strings.
    pub(crate) partition_columns: Vec<String>,
    /// Files under the folder that are not Parquet by name (`README.txt`), not read.
    pub(crate) not_parquet: Vec<String>,
    /// The store they are in.
    pub(crate) store: Arc<dyn ObjectStore>,
}

impl TableFiles {
    /// The warning for files that were not read, if any.
    pub(crate) fn warning(&self) -> Option<String> {
        let n = self.not_parquet.len();
        (n > 0).then(|| {
            let shown: Vec<&str> = self
                .not_parquet
                .iter()
                .take(3)
                .map(String::as_str)
                .collect();
            format!(
                "{n} file(s) under '{}' without the {PARQUET} extension were not read, e.g. '{}'",
                self.url,
                shown.join("', '")
            )
        })
    }
}

impl TableFiles {
    /// DataFusion's options for reading the table: its partition columns, as strings.
    pub(crate) fn read_options(&self) -> ParquetReadOptions<'static> {
        ParquetReadOptions::default().table_partition_cols(
            self.partition_columns
                .iter()
                .map(|c| (c.clone(), DataType::Utf8))
                .collect(),
        )
    }

    /// `table_schema` (the table as DataFusion reads it) without its partition columns:
    /// what the files hold.
    pub(crate) fn file_schema(&self, table_schema: &Schema) -> SchemaRef {
        let fields: Vec<_> = table_schema
            .fields()
            .iter()
            .filter(|f| !self.partition_columns.contains(f.name()))
            .cloned()
            .collect();
        Arc::new(Schema::new_with_metadata(
            fields,
            table_schema.metadata().clone(),
        ))
    }

    /// The manifest's `sources`: exactly the files read.
    pub(crate) fn sources(&self) -> Vec<cohort_snapshot::manifest::SourceFile> {
        self.files
            .iter()
            .map(|f| cohort_snapshot::manifest::SourceFile {
                path: f.object.location.to_string(),
                size: f.object.size,
                last_modified: f
                    .object
                    .last_modified
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                etag: f.object.e_tag.clone(),
            })
            .collect()
    }
}

impl TableFiles {
    /// After a scan of the table failed with `error`: the first file that can't be decoded
    /// whole, read again one at a time (a failed run only), so the error names it. The
    /// error as it was when every file decodes.
    pub(crate) async fn name_the_file(&self, error: Error) -> Error {
        let Error::Engine(engine) = &error else {
            return error;
        };
        if !from_reading(engine) {
            return error;
        }
        for file in &self.files {
            if let Err(e) = decode(self.store.clone(), file).await {
                return Error::File {
                    what: "Parquet file".into(),
                    url: file.url.clone(),
                    source: format!("{e} (the scan of '{}' failed: {error})", self.url).into(),
                };
            }
        }
        error
    }
}

/// Whether a scan error comes from reading files (not from evaluating a condition): only
/// then are the files read again to name one.
fn from_reading(error: &datafusion::error::DataFusionError) -> bool {
    use datafusion::arrow::error::ArrowError;
    use datafusion::error::DataFusionError as E;
    match error.find_root() {
        E::ParquetError(_) | E::IoError(_) | E::ObjectStore(_) | E::External(_) => true,
        E::ArrowError(e, _) => matches!(
            e.as_ref(),
            ArrowError::ParquetError(_) | ArrowError::IoError(..) | ArrowError::ExternalError(_)
        ),
        _ => false,
    }
}

/// Decodes every row of `file`.
async fn decode(
    store: Arc<dyn ObjectStore>,
    file: &TableFile,
) -> datafusion::parquet::errors::Result<()> {
    #[allow(deprecated)]
    let reader = ParquetObjectReader::new(store, file.object.location.clone())
        .with_file_size(file.object.size);
    let mut batches = ParquetRecordBatchStreamBuilder::new(reader)
        .await?
        .build()?;
    while let Some(batch) = batches.next().await {
        batch?;
    }
    Ok(())
}

/// Opens the table `files` lists in `session`: DataFusion lists the same files (see
/// [`TableStore`](super::table_store::TableStore)); the schema is the files' merged one
/// plus the partition columns.
pub(crate) async fn open(
    session: &SessionContext,
    files: &TableFiles,
) -> datafusion::error::Result<DataFrame> {
    session
        .read_parquet(files.url.as_str(), files.read_options())
        .await
}

/// Whether a path below a table's folder is skipped: one of its folders or its name
/// starts with `_` or `.` (`_SUCCESS`, `_temporary/`, `.part-0.crc`).
pub(crate) fn hidden<'a>(mut segments: impl Iterator<Item = &'a str>) -> bool {
    segments.any(|s| s.starts_with(['_', '.']))
}

/// The segments of `path` below `prefix` (all of them when `prefix` is the root).
pub(crate) fn below<'a>(prefix: &Path, path: &'a Path) -> Option<Vec<&'a str>> {
    let path = path.as_ref();
    let prefix = prefix.as_ref();
    let rest = if prefix.is_empty() {
        path
    } else {
        path.strip_prefix(prefix)?.strip_prefix('/')?
    };
    Some(rest.split('/').filter(|s| !s.is_empty()).collect())
}

/// A lakehouse table met where Parquet files were expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TableFormat {
    Delta,
    Iceberg,
}

/// The table format a file below a folder belongs to, and how many of its leading
/// segments make the table's folder.
fn table_format(segments: &[&str]) -> Option<(TableFormat, usize)> {
    let dirs = &segments[..segments.len().saturating_sub(1)];
    let name = segments.last()?;
    if let Some(at) = dirs.iter().position(|s| *s == "_delta_log") {
        return Some((TableFormat::Delta, at));
    }
    if let Some(at) = dirs.iter().rposition(|s| *s == "metadata") {
        if name.ends_with(".metadata.json") && at + 1 == dirs.len() {
            return Some((TableFormat::Iceberg, at));
        }
    }
    None
}

/// The usage error for a table met at `folder` (a URL) while reading `what`.
fn refuse(format: TableFormat, folder: &str, what: &str) -> Error {
    let (format, marker, help) = match format {
        TableFormat::Delta => (
            "a Delta Lake",
            "_delta_log/",
            "Cohort does not read Delta tables yet, and reading its files as plain Parquet \
             would count rows the table has removed; point at a folder of Parquet files, \
             e.g. one written from the table's current version",
        ),
        TableFormat::Iceberg => (
            "an Apache Iceberg",
            "metadata/*.metadata.json",
            "Cohort does not read Iceberg tables yet, and reading its files as plain Parquet \
             would count rows the table has removed; point at a folder of Parquet files, \
             e.g. one written from the table's current snapshot",
        ),
    };
    Error::LakehouseTable {
        url: folder.to_string(),
        format,
        marker,
        what: what.to_string(),
        help,
    }
}

/// `location`'s display URL joined with `segments`.
fn join(location: &Location, segments: &[&str]) -> String {
    let base = location.display.trim_end_matches('/');
    match segments.is_empty() {
        true => base.to_string(),
        false => format!("{base}/{}", segments.join("/")),
    }
}

/// The full URL of an object of `location`'s store.
fn object_url(location: &Location, object: &Path) -> String {
    let root = location.root.as_str();
    match root.ends_with('/') {
        true => format!("{root}{object}"),
        false => format!("{root}/{object}"),
    }
}

/// Lists the Parquet files of the table at `location` (one file, or a folder read
/// recursively) and reads their footers, 16 at a time. `what` names the table in errors
/// ("the customers table", "event table 'orders'").
pub(crate) async fn list(location: &Location, what: &str) -> Result<TableFiles> {
    let url = &location.display;
    let store = &location.store;
    let cannot = |e: object_store::Error| Error::storage(url, e);
    let (objects, partition_columns, not_parquet) = match store.head(&location.path).await {
        Ok(file) => {
            refuse_inside_table(location, what).await?;
            if !file.location.as_ref().ends_with(PARQUET) {
                return Err(Error::Table {
                    what: what.to_string(),
                    url: url.clone(),
                    problem: format!(" is not a {PARQUET} file"),
                    usage: false,
                });
            }
            (vec![(file, Vec::new())], Vec::new(), Vec::new())
        }
        Err(object_store::Error::NotFound { .. }) => {
            let listed: Vec<ObjectMeta> = store
                .list(Some(&location.path))
                .try_collect()
                .await
                .map_err(cannot)?;
            folder(location, what, listed)?
        }
        Err(e) => return Err(cannot(e)),
    };
    if objects.is_empty() {
        let also = match not_parquet.first() {
            Some(example) => format!(" (only files such as '{example}')"),
            None => String::new(),
        };
        return Err(Error::Table {
            what: what.to_string(),
            url: url.clone(),
            problem: format!(" has no {PARQUET} files{also}"),
            usage: false,
        });
    }
    let files: Vec<TableFile> = futures::stream::iter(objects)
        .map(|(object, partition_values)| footer(store.clone(), location, object, partition_values))
        .buffered(16)
        .try_collect()
        .await?;
    check_columns(&files, &partition_columns, what, url)?;
    Ok(TableFiles {
        url: url.clone(),
        files,
        partition_columns: partition_columns.to_vec(),
        not_parquet,
        store: store.clone(),
    })
}

pub(crate) type Listed = (Vec<(ObjectMeta, Vec<String>)>, Vec<String>, Vec<String>);

/// The Parquet files of a folder's listing with their partition values, the partition
/// columns, and the files that are not Parquet by name.
pub(crate) fn folder(
    location: &Location,
    what: &str,
    mut listed: Vec<ObjectMeta>,
) -> Result<Listed> {
    listed.sort_by(|a, b| a.location.cmp(&b.location));
    let mut files = Vec::new();
    let mut not_parquet = Vec::new();
    let mut layout: Option<(Vec<String>, String)> = None;
    for object in listed {
        let Some(segments) = below(&location.path, &object.location) else {
            continue;
        };
        if let Some((format, depth)) = table_format(&segments) {
            return Err(refuse(format, &join(location, &segments[..depth]), what));
        }
        if segments.is_empty() || hidden(segments.iter().copied()) {
            continue;
        }
        let url = join(location, &segments);
        if !object.location.as_ref().ends_with(PARQUET) {
            not_parquet.push(url);
            continue;
        }
        let (keys, values) = partitions(&segments[..segments.len() - 1]);
        match &layout {
            None => layout = Some((keys, url)),
            Some((expected, first)) if *expected != keys => {
                return Err(Error::Table {
                    what: what.to_string(),
                    url: location.display.clone(),
                    problem: format!(
                        ": '{url}' is in partition folders {} but '{first}' in {}; \
                         every file must be under the same key=value/ folders",
                        describe(&keys),
                        describe(expected),
                    ),
                    usage: false,
                })
            }
            Some(_) => {}
        }
        files.push((object, values));
    }
    let columns = layout.map(|(keys, _)| keys).unwrap_or_default();
    Ok((files, columns, not_parquet))
}

fn describe(keys: &[String]) -> String {
    match keys.is_empty() {
        true => "none".into(),
        false => keys.iter().map(|k| format!("{k}=…/")).collect(),
    }
}

/// The Hive partition keys and values of a file's folders: the leading `key=value`
/// folders (values percent-decoded, as DataFusion reads them); a plain folder ends them,
/// and a `key=value` folder below a plain one is a key too, so that such a layout is
/// refused rather than read without it.
fn partitions(dirs: &[&str]) -> (Vec<String>, Vec<String>) {
    let mut keys = Vec::new();
    let mut values = Vec::new();
    let mut leading = true;
    for dir in dirs {
        match dir.split_once('=') {
            Some((key, value)) => {
                let decoded = percent_encoding::percent_decode_str(value)
                    .decode_utf8()
                    .map_or_else(|_| value.to_string(), |v| v.into_owned());
                keys.push(match leading {
                    true => key.to_string(),
                    // Never equal to a leading layout: refused as a mixed layout.
                    false => format!("{key} (below a plain folder)"),
                });
                values.push(decoded);
            }
            None => leading = false,
        }
    }
    (keys, values)
}

/// The footer of one file, its failure naming the file.
async fn footer(
    store: Arc<dyn ObjectStore>,
    location: &Location,
    object: ObjectMeta,
    partition_values: Vec<String>,
) -> Result<TableFile> {
    let url = object_url(location, &object.location);
    #[allow(deprecated)]
    let reader =
        ParquetObjectReader::new(store, object.location.clone()).with_file_size(object.size);
    let builder = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(|e| Error::File {
            what: "Parquet file".into(),
            url: url.clone(),
            source: Box::new(e),
        })?;
    Ok(TableFile {
        url,
        metadata: builder.metadata().clone(),
        schema: builder.schema().clone(),
        object,
        partition_values,
    })
}

/// Every file's columns merge into one schema (as DataFusion merges them), and no
/// partition column is also a column of the files: the first file that breaks either is
/// named.
fn check_columns(
    files: &[TableFile],
    partition_columns: &[String],
    what: &str,
    url: &str,
) -> Result<()> {
    let Some(first) = files.first() else {
        return Ok(());
    };
    let mut merged: Schema = first.schema.as_ref().clone();
    for file in &files[1..] {
        merged =
            Schema::try_merge([merged.clone(), file.schema.as_ref().clone()]).map_err(|e| {
                Error::Table {
                    what: what.to_string(),
                    url: url.to_string(),
                    problem: format!(
                        ": the columns of '{}' do not match those of '{}' before it: {e}",
                        file.url, first.url
                    ),
                    usage: false,
                }
            })?;
    }
    let columns: BTreeSet<&str> = merged.fields().iter().map(|f| f.name().as_str()).collect();
    if let Some(key) = partition_columns
        .iter()
        .find(|k| columns.contains(k.as_str()))
    {
        return Err(Error::Table {
            what: what.to_string(),
            url: url.to_string(),
            problem: format!(": partition folders '{key}=…/' name a column the files also have"),
            usage: false,
        });
    }
    Ok(())
}

/// Refuses a file inside a Delta Lake or Iceberg table: its folder, or one above it, is
/// the table.
async fn refuse_inside_table(location: &Location, what: &str) -> Result<()> {
    let parts: Vec<&str> = location.path.as_ref().split('/').collect();
    for depth in (0..parts.len()).rev() {
        let folder = Path::from_iter(parts[..depth].iter().copied());
        for (format, marker) in [
            (TableFormat::Delta, "_delta_log"),
            (TableFormat::Iceberg, "metadata"),
        ] {
            // One level only: a folder named `metadata` may be large and no table.
            let Ok(listed) = location
                .store
                .list_with_delimiter(Some(&folder.clone().join(marker)))
                .await
            else {
                continue;
            };
            let found = match format {
                TableFormat::Delta => !listed.objects.is_empty(),
                TableFormat::Iceberg => listed
                    .objects
                    .iter()
                    .any(|o| o.location.as_ref().ends_with(".metadata.json")),
            };
            if found {
                return Err(refuse(format, &object_url(location, &folder), what));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_names_are_those_of_spec_1() {
        for (path, skipped) in [
            ("a.parquet", false),
            ("country=US/a.parquet", false),
            ("_SUCCESS", true),
            ("_temporary/0/a.parquet", true),
            (".a.parquet.crc", true),
            ("x/.hidden/a.parquet", true),
            ("x/_tmp.parquet", true),
            ("under_score/a_b.parquet", false),
        ] {
            assert_eq!(hidden(path.split('/')), skipped, "{path}");
        }
    }

    #[test]
    fn tables_are_recognised_by_their_metadata() {
        for (path, found) in [
            (
                "_delta_log/00000000000000000000.json",
                Some((TableFormat::Delta, 0)),
            ),
            (
                "t/_delta_log/0.checkpoint.parquet",
                Some((TableFormat::Delta, 1)),
            ),
            ("metadata/v1.metadata.json", Some((TableFormat::Iceberg, 0))),
            (
                "t/metadata/00001-abc.metadata.json",
                Some((TableFormat::Iceberg, 1)),
            ),
            ("metadata/notes.json", None),
            ("metadata.parquet", None),
            ("a/b.parquet", None),
        ] {
            let segments: Vec<&str> = path.split('/').collect();
            assert_eq!(table_format(&segments), found, "{path}");
        }
    }

    #[test]
    fn partitions_are_the_leading_key_value_folders() {
        let p = |dirs: &[&str]| partitions(dirs);
        assert_eq!(p(&[]), (vec![], vec![]));
        assert_eq!(
            p(&["country=US", "day=2026-01-01"]),
            (
                vec!["country".into(), "day".into()],
                vec!["US".into(), "2026-01-01".into()]
            )
        );
        assert_eq!(
            p(&["region=New%20York", "batch1"]),
            (vec!["region".into()], vec!["New York".into()])
        );
        // A key below a plain folder never equals a leading layout.
        assert_ne!(p(&["batch1", "country=US"]).0, p(&["country=US"]).0);
    }
}
