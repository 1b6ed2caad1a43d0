//! Where things are: a [`Location`] is an object store and a path in it. [`Stores`] hands
//! out locations for URLs, one store per bucket, reused: stores given to it
//! ([`Stores::with_store`]) or, with [`Stores::from_env`], built from the standard
//! environment variables (`AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, ...) the first time a bucket
//! is named. [`resolve`] is the one façade that turns a URL into a store on its own.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
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
    /// The absolute file-system path, for locations on local disk: writes there are made
    /// durable (fsync) and folders removed whole, which the object-store API cannot say.
    pub local: Option<PathBuf>,
}

impl Location {
    /// A location in a store given by the caller (an in-memory store in a test, a
    /// request-counting wrapper, a store configured by the embedding service): `root` is the
    /// URL the store answers for (`memory://`, `s3://bucket`), `path` the location inside it.
    pub fn new(store: Arc<dyn ObjectStore>, root: Url, path: impl Into<StorePath>) -> Location {
        let path = path.into();
        let display = format!("{}/{}", root.as_str().trim_end_matches('/'), path);
        Location {
            store,
            path,
            display,
            root,
            local: None,
        }
    }

    /// A location at `path` in a store given by the caller, named by its path in messages.
    pub fn in_store(store: Arc<dyn ObjectStore>, path: &str) -> Location {
        Location {
            store,
            path: StorePath::from(path),
            display: path.to_string(),
            root: Url::parse("store:///").expect("a valid URL"),
            local: None,
        }
    }

    /// A child location (`self/name`).
    pub fn join(&self, name: &str) -> Location {
        let mut path = self.path.clone();
        for part in name.split('/').filter(|p| !p.is_empty()) {
            path = path.clone().join(part);
        }
        let local = self.local.as_ref().map(|dir| {
            let mut dir = dir.clone();
            dir.extend(name.split('/').filter(|p| !p.is_empty()));
            dir
        });
        Location {
            store: self.store.clone(),
            path,
            display: format!("{}/{}", self.display.trim_end_matches('/'), name),
            root: self.root.clone(),
            local,
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

    /// Writes the object in one atomic put. On local disk: a temp file beside it, synced,
    /// renamed over it, and the folder synced, so a crash leaves the old or the new file
    /// (object stores give this with one PUT).
    pub async fn write(&self, bytes: impl Into<PutPayload>) -> Result<()> {
        let payload: PutPayload = bytes.into();
        if let Some(path) = self.local.clone() {
            return tokio::task::spawn_blocking(move || durable_write(&path, &payload))
                .await
                .map_err(|e| Error::io(&self.display, std::io::Error::other(e)))?
                .map_err(|e| Error::io(&self.display, e));
        }
        self.store
            .put(&self.path, payload)
            .await
            .map(|_| ())
            .map_err(|e| Error::storage(&self.display, e))
    }

    /// Copies this object to `to`, in the same store, replacing what is there: on local
    /// disk a hard link (no bytes copied), made durable as [`write`](Self::write) makes a
    /// file; on an object store a server-side copy.
    pub async fn copy_to(&self, to: &Location) -> Result<()> {
        if let (Some(from), Some(path)) = (self.local.clone(), to.local.clone()) {
            return tokio::task::spawn_blocking(move || durable_link(&from, &path))
                .await
                .map_err(|e| Error::io(&to.display, std::io::Error::other(e)))?
                .map_err(|e| Error::io(&to.display, e));
        }
        self.store
            .copy(&self.path, &to.path)
            .await
            .map_err(|e| Error::storage(&to.display, e))
    }

    /// The newest modification time of the objects below this location, `None` if there
    /// are none.
    pub async fn newest_modification(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        use futures::TryStreamExt;
        let objects: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&self.path))
            .try_collect()
            .await
            .map_err(|e| Error::storage(&self.display, e))?;
        Ok(objects.iter().map(|o| o.last_modified).max())
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

    /// Deletes every object below this location, `first` before the others (so a reader
    /// or a crash never sees it without them). Returns whether anything was there. (Local
    /// folders are removed whole through [`Location::set_aside`] instead.)
    pub async fn delete_all(&self, first: &str) -> Result<bool> {
        use futures::TryStreamExt;
        let first = self.join(first);
        let had_first = match self.store.delete(&first.path).await {
            Ok(()) => true,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(e) => return Err(Error::storage(&first.display, e)),
        };
        let objects: Vec<_> = self
            .store
            .list(Some(&self.path))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(|e| Error::storage(&self.display, e))?;
        let any = had_first || !objects.is_empty();
        for path in objects {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(Error::storage(&self.display, e)),
            }
        }
        Ok(any)
    }
}

/// A local folder renamed aside (to a hidden sibling) on its way to deletion: the rename is
/// atomic, so whatever a writer puts under the old name from then on is a new folder the
/// deletion can't touch, and a folder set aside by mistake can be put back.
#[derive(Debug)]
pub struct SetAside {
    original: PathBuf,
    aside: PathBuf,
}

impl Location {
    /// Renames this local folder aside; `None` if it does not exist or is not on local disk.
    pub fn set_aside(&self) -> Result<Option<SetAside>> {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let Some(original) = self.local.clone() else {
            return Ok(None);
        };
        let name = original.file_name().unwrap_or_default().to_string_lossy();
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let aside = original.with_file_name(format!(".{name}.deleting-{}-{n}", std::process::id()));
        match std::fs::rename(&original, &aside) {
            Ok(()) => Ok(Some(SetAside { original, aside })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(original.display(), e)),
        }
    }
}

impl SetAside {
    /// The newest modification time of the files in the folder.
    pub fn newest_modification(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let entries = std::fs::read_dir(&self.aside).ok()?;
        entries
            .filter_map(|e| e.ok()?.metadata().ok()?.modified().ok())
            .max()
            .map(chrono::DateTime::<chrono::Utc>::from)
    }

    /// Renames it back; false when a writer has made a new folder of that name meanwhile
    /// (which then is the one that counts), in which case this one is removed.
    pub fn put_back(self) -> Result<bool> {
        match std::fs::rename(&self.aside, &self.original) {
            Ok(()) => Ok(true),
            Err(_) => self.remove().map(|_| false),
        }
    }

    /// Removes the folder and everything in it (temp files a killed writer left too).
    pub fn remove(self) -> Result<()> {
        std::fs::remove_dir_all(&self.aside).map_err(|e| Error::io(self.aside.display(), e))
    }
}

/// Writes `path` durably: a temp file in the same folder (named as object_store names its
/// staging files, so listings skip it), synced, renamed over `path`, then the folder synced.
/// Folders created on the way are synced into their parents.
fn durable_write(path: &std::path::Path, payload: &PutPayload) -> std::io::Result<()> {
    use std::io::Write;
    let (dir, temp) = temp_beside(path)?;
    let written = (|| {
        let mut file = std::fs::File::create(&temp)?;
        for chunk in payload.iter() {
            file.write_all(chunk)?;
        }
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written?;
    sync_dir(dir)
}

/// Links `from` as `path` durably: a hard link beside `path` (named as in
/// [`durable_write`]), renamed over it, then the folder synced. `from` was written
/// durably, so its bytes are on disk already.
fn durable_link(from: &std::path::Path, path: &std::path::Path) -> std::io::Result<()> {
    let (dir, temp) = temp_beside(path)?;
    let linked = std::fs::hard_link(from, &temp).and_then(|()| std::fs::rename(&temp, path));
    if linked.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    linked?;
    sync_dir(dir)
}

/// The folder of `path` (created durably) and a temp name beside `path` for this process
/// (object_store's staging-file pattern, which listings skip).
fn temp_beside(path: &std::path::Path) -> std::io::Result<(&std::path::Path, PathBuf)> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("no parent folder"))?;
    create_dirs_durably(dir)?;
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut temp_name = path.file_name().unwrap_or_default().to_os_string();
    temp_name.push(format!("#{}{n}", std::process::id()));
    Ok((dir, dir.join(temp_name)))
}

/// `create_dir_all`, syncing each new folder's parent so the folder survives a crash.
fn create_dirs_durably(dir: &std::path::Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs_durably(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => dir.parent().map_or(Ok(()), sync_dir),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

fn sync_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
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
            let store_path =
                StorePath::from_absolute_path(&absolute).map_err(|e| Error::invalid_url(url, e))?;
            Ok(Location {
                store: Arc::new(LocalFileSystem::new()),
                path: store_path,
                display: url.to_string(),
                root: Url::parse("file:///").unwrap(),
                local: Some(absolute),
            })
        }
        Some(scheme @ ("s3" | "s3a" | "gs" | "az" | "abfs" | "abfss")) => {
            let parsed = Url::parse(url).map_err(|e| Error::invalid_url(url, e))?;
            let bucket = parsed.host_str().unwrap_or_default();
            let root = Url::parse(&format!("{scheme}://{bucket}"))
                .map_err(|e| Error::invalid_url(url, e))?;
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
            let path =
                StorePath::from_url_path(parsed.path()).map_err(|e| Error::invalid_url(url, e))?;
            Ok(Location {
                store,
                path,
                display: url.to_string(),
                root,
                local: None,
            })
        }
        Some(other) => Err(Error::invalid_url(
            url,
            format!("unsupported scheme '{other}': use a path, file://, s3://, gs:// or az://"),
        )),
    }
}

/// Object stores by URL: one store per scheme and bucket, made once and reused by every
/// location under it (a service polling `LATEST` keeps one client). Local paths and
/// `file://` need no store from outside.
pub struct Stores {
    from_env: bool,
    stores: std::sync::RwLock<std::collections::HashMap<String, Arc<dyn ObjectStore>>>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let roots: Vec<String> = self.read_stores().keys().cloned().collect();
        f.debug_struct("Stores")
            .field("from_env", &self.from_env)
            .field("roots", &roots)
            .finish()
    }
}

impl Default for Stores {
    fn default() -> Self {
        Stores::new()
    }
}

impl Stores {
    /// Only the stores given with [`Stores::with_store`] (and local disk).
    pub fn new() -> Stores {
        Stores {
            from_env: false,
            stores: Default::default(),
        }
    }

    /// Stores given, and for any other bucket a store configured from the environment the
    /// first time it is named (what the command line uses).
    pub fn from_env() -> Stores {
        Stores {
            from_env: true,
            ..Stores::new()
        }
    }

    /// Serves every URL under `root` (`s3://bucket`, `memory://`) from `store`.
    pub fn with_store(self, root: &Url, store: Arc<dyn ObjectStore>) -> Stores {
        self.register(root, store);
        self
    }

    /// Serves every URL under `root` from `store`, on a registry already shared.
    pub fn register(&self, root: &Url, store: Arc<dyn ObjectStore>) {
        self.write_stores().insert(root_key(root), store);
    }

    /// The location a URL (or local path) names.
    pub fn location(&self, url: &str) -> Result<Location> {
        let Some((scheme, _)) = url.split_once("://") else {
            return resolve(url);
        };
        if scheme.eq_ignore_ascii_case("file") {
            return resolve(url);
        }
        let parsed = Url::parse(url).map_err(|e| Error::invalid_url(url, e))?;
        let key = root_key(&parsed);
        if let Some(store) = self.read_stores().get(&key).cloned() {
            let path =
                StorePath::from_url_path(parsed.path()).map_err(|e| Error::invalid_url(url, e))?;
            return Ok(Location {
                store,
                path,
                display: url.to_string(),
                root: Url::parse(&key).map_err(|e| Error::invalid_url(url, e))?,
                local: None,
            });
        }
        if !self.from_env {
            return Err(Error::invalid_url(
                url,
                format!("no object store was given for '{key}'"),
            ));
        }
        let location = resolve(url)?;
        let mut stores = self.write_stores();
        let store = stores.entry(key).or_insert_with(|| location.store.clone());
        Ok(Location {
            store: store.clone(),
            ..location
        })
    }

    /// Every store made or given so far, by root URL.
    pub fn roots(&self) -> Vec<(Url, Arc<dyn ObjectStore>)> {
        self.read_stores()
            .iter()
            .filter_map(|(k, s)| Some((Url::parse(k).ok()?, s.clone())))
            .collect()
    }

    fn read_stores(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, std::collections::HashMap<String, Arc<dyn ObjectStore>>>
    {
        self.stores.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_stores(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, std::collections::HashMap<String, Arc<dyn ObjectStore>>>
    {
        self.stores.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// `scheme://authority`, the key a store is kept under.
fn root_key(url: &Url) -> String {
    format!(
        "{}://{}",
        url.scheme().to_lowercase(),
        &url[url::Position::BeforeHost..url::Position::AfterPort]
    )
}
