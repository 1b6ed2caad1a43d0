//! The customers table's Parquet files, listed as DataFusion lists them, with their
//! footers read once (row counts for cluster positions, encodings for dictionary reads).

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::listing::ListingTableUrl;
// Deprecated in parquet 59 in favour of hand-written `AsyncFileReader`s; still the
// maintained way to read one footer through an `ObjectStore`, which is all we need.
#[allow(deprecated)]
use datafusion::parquet::arrow::async_reader::ParquetObjectReader;
use datafusion::parquet::arrow::ParquetRecordBatchStreamBuilder;
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectMeta;

use crate::{Error, Result};

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
}

impl TableFile {
    /// Rows in the file, from the footer.
    pub(crate) fn rows(&self) -> u64 {
        u64::try_from(self.metadata.file_metadata().num_rows()).unwrap_or(0)
    }
}

/// Lists the Parquet files of `url` in path order (as DataFusion does for the table) and
/// reads their footers, 16 at a time.
pub(crate) async fn list(session: &SessionContext, url: &str) -> Result<Vec<TableFile>> {
    let cannot = |e: &dyn std::fmt::Display| {
        Error::Data(format!("cannot list the customers table '{url}': {e}"))
    };
    let table = ListingTableUrl::parse(url).map_err(|e| cannot(&e))?;
    let store = session
        .runtime_env()
        .object_store(table.object_store())
        .map_err(|e| cannot(&e))?;
    let state = session.state();
    let extension = ParquetReadOptions::default().file_extension;
    let mut objects: Vec<ObjectMeta> = table
        .list_all_files(&state, store.as_ref(), extension)
        .await
        .map_err(|e| cannot(&e))?
        .try_collect()
        .await
        .map_err(|e| cannot(&e))?;
    objects.sort_by(|a, b| a.location.cmp(&b.location));
    if objects.is_empty() {
        return Err(Error::Data(format!(
            "the customers table '{url}' has no {extension} files"
        )));
    }
    let base = table.object_store();
    futures::stream::iter(objects)
        .map(|object| {
            let store = store.clone();
            let file_url = format!("{}{}", base.as_str(), object.location);
            #[allow(deprecated)]
            async move {
                let reader = ParquetObjectReader::new(store, object.location.clone())
                    .with_file_size(object.size);
                let builder = ParquetRecordBatchStreamBuilder::new(reader)
                    .await
                    .map_err(|e| {
                        Error::Data(format!("cannot read the footer of '{file_url}': {e}"))
                    })?;
                Ok::<_, Error>(TableFile {
                    url: file_url,
                    metadata: builder.metadata().clone(),
                    schema: builder.schema().clone(),
                    object,
                })
            }
        })
        .buffered(16)
        .try_collect()
        .await
}
