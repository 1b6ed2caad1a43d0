//! URL → object store: plain paths, `file://`, `s3://`, `gs://`, `az://`, configured from
//! the standard environment variables (`AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, ...).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use datafusion::prelude::SessionContext;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use url::Url;

use crate::{Error, Result};

/// A location in an object store: the store, and the path of the location inside it.
#[derive(Debug, Clone)]
pub struct Location {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// The location's path inside the store (a prefix for folders).
    pub path: StorePath,
    /// The URL as the user wrote it (for messages).
    pub display: String,
    /// The store's root URL (`s3://bucket`, `file:///`), for registering with DataFusion.
    pub root: Url,
}

impl Location {
    /// A child location (`self/name`).
    pub fn join(&self, name: &str) -> Location {
        let mut path = self.path.clone();
        for part in name.split('/').filter(|p| !p.is_empty()) {
            path = path.clone().join(part);
        }
        Location {
            store: self.store.clone(),
            path,
            display: format!("{}/{}", self.display.trim_end_matches('/'), name),
            root: self.root.clone(),
        }
    }

    /// Reads the whole object.
    pub async fn read(&self) -> Result<Bytes> {
        let get = self
            .store
            .get(&self.path)
            .await
            .map_err(|e| Error::storage(&self.display, e))?;
        get.bytes()
            .await
            .map_err(|e| Error::storage(&self.display, e))
    }

    /// Reads the object, or `None` if it does not exist.
    pub async fn read_if_exists(&self) -> Result<Option<Bytes>> {
        match self.read().await {
            Ok(b) => Ok(Some(b)),
            Err(Error::Storage {
                source: object_store::Error::NotFound { .. },
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes the object in one atomic put (local disk: temp file + rename).
    pub async fn write(&self, bytes: impl Into<PutPayload>) -> Result<()> {
        self.store
            .put(&self.path, bytes.into())
            .await
            .map(|_| ())
            .map_err(|e| Error::storage(&self.display, e))
    }

    /// The names directly below this location (folders and files).
    pub async fn list_children(&self) -> Result<Vec<String>> {
        let listing = self
            .store
            .list_with_delimiter(Some(&self.path))
            .await
            .map_err(|e| Error::storage(&self.display, e))?;
        let names = listing
            .common_prefixes
            .iter()
            .chain(listing.objects.iter().map(|o| &o.location))
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        Ok(names)
    }

    /// Deletes every object below this location.
    pub async fn delete_all(&self) -> Result<()> {
        use futures::TryStreamExt;
        let objects: Vec<_> = self
            .store
            .list(Some(&self.path))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(|e| Error::storage(&self.display, e))?;
        for path in objects {
            self.store
                .delete(&path)
                .await
                .map_err(|e| Error::storage(&self.display, e))?;
        }
        Ok(())
    }
}

fn retry() -> RetryConfig {
    RetryConfig {
        max_retries: 5,
        retry_timeout: Duration::from_secs(60),
        ..Default::default()
    }
}

/// Resolves a URL or local path to a [`Location`].
pub fn resolve(url: &str) -> Result<Location> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_lowercase());
    match scheme.as_deref() {
        None | Some("file") => {
            let path = url.strip_prefix("file://").unwrap_or(url);
            let absolute = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
            let store_path = StorePath::from_absolute_path(&absolute)
                .map_err(|e| Error::Usage(format!("invalid path '{url}': {e}")))?;
            Ok(Location {
                store: Arc::new(LocalFileSystem::new()),
                path: store_path,
                display: url.to_string(),
                root: Url::parse("file:///").unwrap(),
            })
        }
        Some(scheme @ ("s3" | "s3a" | "gs" | "az" | "abfs" | "abfss")) => {
            let parsed = Url::parse(url).map_err(|e| Error::Usage(format!("invalid URL '{url}': {e}")))?;
            let bucket = parsed.host_str().unwrap_or_default();
            let root = Url::parse(&format!("{scheme}://{bucket}"))
                .map_err(|e| Error::Usage(format!("invalid URL '{url}': {e}")))?;
            let build_error = |e| Error::storage(url, e);
            let store: Arc<dyn ObjectStore> = match scheme {
                "s3" | "s3a" => Arc::new(
                    object_store::aws::AmazonS3Builder::from_env()
                        .with_url(url)
                        .with_retry(retry())
                        .build()
                        .map_err(build_error)?,
                ),
                "gs" => Arc::new(
                    object_store::gcp::GoogleCloudStorageBuilder::from_env()
                        .with_url(url)
                        .with_retry(retry())
                        .build()
                        .map_err(build_error)?,
                ),
                _ => Arc::new(
                    object_store::azure::MicrosoftAzureBuilder::from_env()
                        .with_url(url)
                        .with_retry(retry())
                        .build()
                        .map_err(build_error)?,
                ),
            };
            let path = StorePath::from_url_path(parsed.path())
                .map_err(|e| Error::Usage(format!("invalid URL '{url}': {e}")))?;
            Ok(Location {
                store,
                path,
                display: url.to_string(),
                root,
            })
        }
        Some(other) => Err(Error::Usage(format!(
            "unsupported URL scheme '{other}' in '{url}': use a path, file://, s3://, gs:// or az://"
        ))),
    }
}

/// Makes `url` readable by DataFusion: registers its object store with the session.
/// Local paths need nothing.
pub fn register(ctx: &SessionContext, url: &str) -> Result<()> {
    if url.contains("://") && !url.starts_with("file://") {
        let location = resolve(url)?;
        ctx.register_object_store(&location.root, location.store);
    }
    Ok(())
}
