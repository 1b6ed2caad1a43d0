//! The engine the single scan runs on: embedded DataFusion ([`Engine::local`]) today, the
//! seam a distributed engine (Apache Ballista) plugs into without touching definition,
//! compile, bitmap or snapshot code.

use std::sync::Arc;

use cohort_snapshot::Stores;
use datafusion::execution::object_store::ObjectStoreRegistry;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::Expr;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use object_store::ObjectStore;
use url::Url;

use super::table_store::TableStore;
use super::{scan, InScan, Progress, ScanOutput};
use crate::Result;

/// Rows per record batch unless `DATAFUSION_EXECUTION_BATCH_SIZE` says otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 65536;

/// Where a run's scan executes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Engine {
    /// DataFusion in this process, on every core.
    Local(LocalEngine),
    /// An Apache Ballista cluster: the scan runs on its executors; metadata, events'
    /// preprocessing, ids, static lists and publishing stay on this machine.
    #[cfg(feature = "ballista")]
    Ballista(super::distributed::BallistaEngine),
}

/// How long a job on a cluster may take before it is cancelled and the run fails.
pub const DEFAULT_ENGINE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// The customers table as the engine scans it: for a cluster, with positions every
/// executor computes by itself.
#[derive(Debug, Clone)]
pub(crate) struct ScanSource {
    frame: DataFrame,
    #[cfg(feature = "ballista")]
    positioned: Option<super::distributed::positions::Positioned>,
}

impl ScanSource {
    /// The table to attach event aggregates to and scan.
    pub(crate) fn frame(&self) -> &DataFrame {
        &self.frame
    }
}

/// The embedded DataFusion engine and its session settings.
#[derive(Debug, Clone)]
pub struct LocalEngine {
    config: SessionConfig,
}

impl Default for Engine {
    fn default() -> Self {
        Engine::local()
    }
}

impl Engine {
    /// DataFusion in this process. Its options can be tuned from the environment
    /// (`DATAFUSION_EXECUTION_BATCH_SIZE=32768`, ...; see DataFusion's config docs).
    pub fn local() -> Engine {
        Engine::local_with(default_config())
    }

    /// DataFusion in this process with `config` (partitions, batch size, ...): tests run
    /// the same definitions under different partitionings with it.
    pub fn local_with(config: SessionConfig) -> Engine {
        Engine::Local(LocalEngine { config })
    }

    /// The Apache Ballista scheduler at `url` (`df://HOST:PORT`); a job that has not
    /// finished after `timeout` is cancelled and fails the run.
    #[cfg(feature = "ballista")]
    pub fn ballista(url: &str, timeout: std::time::Duration) -> Result<Engine> {
        let parsed = Url::parse(url)
            .ok()
            .filter(|u| u.scheme() == "df" && u.host_str().is_some())
            .ok_or_else(|| crate::Error::Setting {
                setting: "engine".into(),
                value: url.to_string(),
                reason: "expected 'local' or a Ballista scheduler 'df://HOST:PORT'".into(),
            })?;
        Ok(Engine::Ballista(super::distributed::BallistaEngine::new(
            parsed,
            timeout,
            default_config(),
        )))
    }

    /// `local`, or a Ballista scheduler `df://HOST:PORT` (with `timeout` per job).
    pub fn from_name(name: &str, timeout: std::time::Duration) -> Result<Engine> {
        if name == "local" {
            return Ok(Engine::local());
        }
        #[cfg(feature = "ballista")]
        return Engine::ballista(name, timeout);
        #[cfg(not(feature = "ballista"))]
        {
            let _ = timeout;
            Err(crate::Error::Setting {
                setting: "engine".into(),
                value: name.to_string(),
                reason: "this build of cohort has no Ballista support (build with the \
                           'ballista' feature) and knows only 'local'"
                    .into(),
            })
        }
    }

    /// How reports name the engine.
    pub fn name(&self) -> String {
        match self {
            Engine::Local(_) => "local".into(),
            #[cfg(feature = "ballista")]
            Engine::Ballista(b) => b.url().to_string(),
        }
    }

    /// Whether the scan runs in this process.
    pub fn is_local(&self) -> bool {
        matches!(self, Engine::Local(_))
    }

    /// A session that reads through `stores` and has the settings Cohort's plans need
    /// (for a cluster: the client's own session, for metadata and client-side steps).
    pub fn session(&self, stores: &Arc<Stores>) -> SessionContext {
        match self {
            Engine::Local(local) => session_with(local.config.clone(), stores),
            #[cfg(feature = "ballista")]
            Engine::Ballista(b) => {
                let mut config = b.client_config();
                // One partition per file, so positions follow each file's row order.
                config.options_mut().optimizer.repartition_file_scans = false;
                session_with(config, stores)
            }
        }
    }

    /// The customers table (opened in `session` over `files`) as this engine scans it: on
    /// this machine with its dictionary-encoded string columns read as dictionaries.
    pub(crate) async fn source(
        &self,
        session: &SessionContext,
        files: &super::files::TableFiles,
        customers: DataFrame,
        id_column: &str,
    ) -> Result<ScanSource> {
        match self {
            Engine::Local(_) => {
                let frame = super::dictionary::frame(session, files, &customers, id_column)
                    .await?
                    .unwrap_or(customers);
                Ok(ScanSource {
                    frame,
                    #[cfg(feature = "ballista")]
                    positioned: None,
                })
            }
            #[cfg(feature = "ballista")]
            Engine::Ballista(_) => {
                let positioned =
                    super::distributed::positions::positioned(session, files, &customers).await?;
                Ok(ScanSource {
                    frame: positioned.frame.clone(),
                    positioned: Some(positioned),
                })
            }
        }
    }

    /// One pass over the request's frame: every condition, the ids, and the `extra`
    /// columns. The local engine combines the groups `in_scan` names as it goes and keeps
    /// only the masks it names; a cluster returns every mask.
    pub(crate) async fn scan(&self, request: ScanRequest<'_>) -> Result<ScanOutput> {
        match self {
            Engine::Local(_) => scan::scan(request).await,
            #[cfg(feature = "ballista")]
            Engine::Ballista(b) => {
                let positioned = request.source.positioned.as_ref().ok_or_else(|| {
                    crate::Error::Internal("the scan source was not made for this engine".into())
                })?;
                b.scan(positioned, request).await
            }
        }
    }
}

/// What one pass over the customers reads and computes ([`Engine::scan`]).
pub(crate) struct ScanRequest<'a> {
    /// The session the table was opened in (a cluster's client session).
    pub(crate) session: &'a SessionContext,
    /// The table as this engine scans it ([`Engine::source`]).
    pub(crate) source: &'a ScanSource,
    /// The source's frame, perhaps with event aggregates joined.
    pub(crate) frame: DataFrame,
    /// The customer id column.
    pub(crate) id_column: &'a str,
    /// Every condition, as a boolean expression; each becomes a mask.
    pub(crate) conditions: &'a [Expr],
    /// The groups combined during the scan (the local engine only).
    pub(crate) in_scan: &'a InScan,
    /// Further columns read beside the ids, as strings (`size --by`).
    pub(crate) extra: &'a [Expr],
    /// Told of every batch.
    pub(crate) progress: &'a Arc<dyn Progress>,
}

/// DataFusion's settings from `DATAFUSION_*` variables, with Cohort's batch size.
fn default_config() -> SessionConfig {
    let mut config = SessionConfig::from_env().unwrap_or_else(|e| {
        tracing::warn!("ignoring DATAFUSION_* environment settings: {e}");
        SessionConfig::new()
    });
    if std::env::var_os("DATAFUSION_EXECUTION_BATCH_SIZE").is_none() {
        // Measured on 10M customers × 100 groups: 8192 (DataFusion's default) 7.0 s,
        // 32768 6.6 s, 65536 6.3 s, 131072 6.3 s; fewer, larger masks to turn into bitmaps.
        config = config.with_batch_size(DEFAULT_BATCH_SIZE);
    }
    config
}

/// A session with `config` reading through `stores`.
fn session_with(mut config: SessionConfig, stores: &Arc<Stores>) -> SessionContext {
    // DataFusion 55 can derive a nullable physical type for a boolean filter column the
    // logical plan knows is never NULL (`... IS TRUE`), and then refuses the event
    // aggregate plan over it. The types agree in everything but that flag.
    config
        .options_mut()
        .execution
        .skip_physical_aggregate_schema_check = true;
    // SPEC §1: a folder is read recursively (hidden names are skipped by `TableStore`).
    config
        .options_mut()
        .execution
        .listing_table_ignore_subdirectory = false;
    match RuntimeEnvBuilder::new()
        .with_object_store_registry(store_registry(stores))
        .build_arc()
    {
        Ok(runtime) => SessionContext::new_with_config_rt(config, runtime),
        Err(e) => {
            tracing::warn!("default runtime instead of Cohort's store registry: {e}");
            SessionContext::new_with_config(config)
        }
    }
}

/// Cohort's [`Stores`] as DataFusion's object store registry (for sessions here and on a
/// cluster's scheduler and executors).
pub(crate) fn store_registry(stores: &Arc<Stores>) -> Arc<dyn ObjectStoreRegistry> {
    Arc::new(StoreRegistry {
        stores: stores.clone(),
        local: Arc::new(TableStore::new(Arc::new(
            object_store::local::LocalFileSystem::new(),
        ))),
    })
}

/// Cohort's [`Stores`] as DataFusion's object store registry, so a table, an event table
/// and a static list in one bucket share one client; listings through it skip hidden
/// names ([`TableStore`]).
#[derive(Debug)]
struct StoreRegistry {
    stores: Arc<Stores>,
    local: Arc<dyn ObjectStore>,
}

impl ObjectStoreRegistry for StoreRegistry {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        let previous = self.get_store(url).ok();
        // `Stores` is shared: registering through it makes the store visible to every
        // session and to snapshot reads alike.
        self.stores.register(url, store);
        previous
    }

    fn get_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        if url.scheme() == "file" {
            return Ok(self.local.clone());
        }
        self.stores
            .location(url.as_str())
            .map(|l| Arc::new(TableStore::new(l.store)) as Arc<dyn ObjectStore>)
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))
    }
}
