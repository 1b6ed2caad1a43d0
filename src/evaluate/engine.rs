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

use super::{scan, Progress, ScanOutput};
use crate::Result;

/// Rows per record batch unless `DATAFUSION_EXECUTION_BATCH_SIZE` says otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 65536;

/// Where a run's scan executes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Engine {
    /// DataFusion in this process, on every core.
    Local(LocalEngine),
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
        let mut config = SessionConfig::from_env().unwrap_or_else(|e| {
            tracing::warn!("ignoring DATAFUSION_* environment settings: {e}");
            SessionConfig::new()
        });
        if std::env::var_os("DATAFUSION_EXECUTION_BATCH_SIZE").is_none() {
            // Measured on 10M customers × 100 groups: 8192 (DataFusion's default) 7.0 s,
            // 32768 6.6 s, 65536 6.3 s, 131072 6.3 s; fewer, larger masks to turn into bitmaps.
            config = config.with_batch_size(DEFAULT_BATCH_SIZE);
        }
        Engine::local_with(config)
    }

    /// DataFusion in this process with `config` (partitions, batch size, ...): tests run
    /// the same definitions under different partitionings with it.
    pub fn local_with(config: SessionConfig) -> Engine {
        Engine::Local(LocalEngine { config })
    }

    /// How reports name the engine.
    pub fn name(&self) -> String {
        match self {
            Engine::Local(_) => "local".into(),
        }
    }

    /// A session that reads through `stores` and has the settings Cohort's plans need.
    pub fn session(&self, stores: &Arc<Stores>) -> SessionContext {
        match self {
            Engine::Local(local) => session_with(local.config.clone(), stores),
        }
    }

    /// One pass over `customers`: every condition, the ids, and the `extra` columns.
    pub async fn scan(
        &self,
        customers: DataFrame,
        id_column: &str,
        conditions: &[Expr],
        extra: &[Expr],
        progress: &Arc<dyn Progress>,
    ) -> Result<ScanOutput> {
        match self {
            Engine::Local(_) => scan::scan(customers, id_column, conditions, extra, progress).await,
        }
    }
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
    let registry = Arc::new(StoreRegistry {
        stores: stores.clone(),
        local: Arc::new(object_store::local::LocalFileSystem::new()),
    });
    match RuntimeEnvBuilder::new()
        .with_object_store_registry(registry)
        .build_arc()
    {
        Ok(runtime) => SessionContext::new_with_config_rt(config, runtime),
        Err(e) => {
            tracing::warn!("default runtime instead of Cohort's store registry: {e}");
            SessionContext::new_with_config(config)
        }
    }
}

/// Cohort's [`Stores`] as DataFusion's object store registry, so a table, an event table
/// and a static list in one bucket share one client.
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
            .map(|l| l.store)
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))
    }
}
