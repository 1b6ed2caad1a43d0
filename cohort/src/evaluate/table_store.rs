//! The object stores as DataFusion sees them: listings under a table's folder leave out
//! what SPEC §1 skips (`_`/`.`-prefixed files and folders), so DataFusion reads exactly
//! the files [`files::list`](super::files::list) lists and the manifest names.
//!
//! DataFusion's listing table reads every `.parquet` object its store lists below the
//! table's prefix (subfolders included, with `listing_table_ignore_subdirectory` off) and
//! has no notion of hidden names: the store is where both agree.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

use super::files::{below, hidden};

/// A store whose listings skip hidden names below the listed prefix; everything else
/// goes straight through.
#[derive(Debug)]
pub(crate) struct TableStore {
    inner: Arc<dyn ObjectStore>,
}

impl TableStore {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>) -> TableStore {
        TableStore { inner }
    }
}

impl fmt::Display for TableStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TableStore({})", self.inner)
    }
}

/// Whether `path` is shown in a listing of `prefix`.
fn shown(prefix: Option<&Path>, path: &Path) -> bool {
    let root = Path::default();
    below(prefix.unwrap_or(&root), path).is_none_or(|segments| !hidden(segments.into_iter()))
}

#[async_trait]
impl ObjectStore for TableStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let owned = prefix.cloned();
        self.inner
            .list(prefix)
            .filter(move |item| {
                let keep = match item {
                    Ok(meta) => shown(owned.as_ref(), &meta.location),
                    Err(_) => true,
                };
                futures::future::ready(keep)
            })
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let mut listed = self.inner.list_with_delimiter(prefix).await?;
        listed.objects.retain(|o| shown(prefix, &o.location));
        listed.common_prefixes.retain(|p| shown(prefix, p));
        Ok(listed)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    #[tokio::test]
    async fn listings_skip_hidden_names_below_the_prefix_only() {
        let memory = Arc::new(InMemory::new());
        for path in [
            "_staging/t/a.parquet",
            "_staging/t/b=1/c.parquet",
            "_staging/t/_SUCCESS",
            "_staging/t/_temporary/0/d.parquet",
            "_staging/t/x/.e.parquet.crc",
        ] {
            memory.put(&Path::from(path), "x".into()).await.unwrap();
        }
        let store = TableStore::new(memory);
        let listed: Vec<String> = store
            .list(Some(&Path::from("_staging/t")))
            .map(|m| m.unwrap().location.to_string())
            .collect()
            .await;
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert!(listed.contains(&"_staging/t/a.parquet".to_string()));
        assert!(listed.contains(&"_staging/t/b=1/c.parquet".to_string()));
        let root: Vec<_> = store.list(None).collect().await;
        assert!(root.is_empty(), "everything is under _staging/");
    }
}
