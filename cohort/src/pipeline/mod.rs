//! The front door: a [`Pipeline`] over the world it is given — an object store registry,
//! a clock, a progress receiver and an engine — that validates, evaluates, sizes, explains
//! and publishes, and returns typed reports the command line only prints.
//!
//! ```no_run
//! # async fn demo() -> cohort::Result<()> {
//! use std::sync::Arc;
//! let report = cohort::Pipeline::new("data/customers.parquet")
//!     .with_stores(Arc::new(cohort::Stores::from_env()))
//!     .with_definitions("queries")
//!     .with_publish("snapshots")
//!     .run(cohort::pipeline::RunOptions::default())
//!     .await?;
//! println!("published {:?}", report.run_id);
//! # Ok(()) }
//! ```

mod evaluation;
mod explain;
mod live;
mod publish;
mod run;
mod size;
mod validation;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use cohort_snapshot::Stores;

pub use crate::compile::events::EventConfig;
use crate::evaluate::{Engine, NoProgress, Progress};

pub(crate) use evaluation::Evaluation;
pub use explain::Explanation;
pub use live::{column_family, DefinitionSize, LiveSizer};
pub use publish::{PreviousRun, Publication, PublishOptions};
pub use run::{RunGroup, RunOptions, RunReport};
pub use size::{Breakdown, Overlap, SizeGroup, SizeReport, SizeRequest};
pub use validation::Validation;

/// The time now, for `as_of` when none is given and for `created_at`.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// One project's job: where the customers, events, definitions and published runs are,
/// when it evaluates, what it runs on. Built with `with_*` methods; nothing in it reads
/// flags, files of settings or the environment.
#[derive(Debug, Clone)]
pub struct Pipeline {
    stores: Arc<Stores>,
    customers: String,
    id_column: String,
    events: BTreeMap<String, EventConfig>,
    definitions: PathBuf,
    publish: String,
    as_of: Option<DateTime<Utc>>,
    clock: Arc<dyn Clock>,
    progress: Arc<dyn Progress>,
    engine: Engine,
}

impl Pipeline {
    /// A pipeline over the customers table at `customers` (a Parquet file or folder),
    /// with the defaults: id column `customer_id`, definitions in `queries/`, runs published
    /// to `snapshots/`, `as_of` the clock's now, local disk only, the local engine.
    pub fn new(customers: impl Into<String>) -> Pipeline {
        Pipeline {
            stores: Arc::new(Stores::new()),
            customers: customers.into(),
            id_column: "customer_id".into(),
            events: BTreeMap::new(),
            definitions: "queries".into(),
            publish: "snapshots".into(),
            as_of: None,
            clock: Arc::new(SystemClock),
            progress: Arc::new(NoProgress),
            engine: Engine::local(),
        }
    }

    /// Where URLs' object stores come from (one per bucket, shared by every read and
    /// write of the job).
    pub fn with_stores(mut self, stores: Arc<Stores>) -> Pipeline {
        self.stores = stores;
        self
    }

    /// The customer id column.
    pub fn with_id_column(mut self, column: impl Into<String>) -> Pipeline {
        self.id_column = column.into();
        self
    }

    /// An event table definitions may aggregate (`events = "<name>"`).
    pub fn with_event_table(mut self, name: impl Into<String>, table: EventConfig) -> Pipeline {
        self.events.insert(name.into(), table);
        self
    }

    /// The folder of group definitions.
    pub fn with_definitions(mut self, dir: impl Into<PathBuf>) -> Pipeline {
        self.definitions = dir.into();
        self
    }

    /// Where runs are published (and the previous run read).
    pub fn with_publish(mut self, url: impl Into<String>) -> Pipeline {
        self.publish = url.into();
        self
    }

    /// The evaluation time (default: the clock's now).
    pub fn with_as_of(mut self, as_of: DateTime<Utc>) -> Pipeline {
        self.as_of = Some(as_of);
        self
    }

    /// The clock (`created_at`, and `as_of` when none is given).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Pipeline {
        self.clock = clock;
        self
    }

    /// Where progress goes.
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Pipeline {
        self.progress = progress;
        self
    }

    /// The engine the scan runs on.
    pub fn with_engine(mut self, engine: Engine) -> Pipeline {
        self.engine = engine;
        self
    }

    /// The customer id column.
    pub fn id_column(&self) -> &str {
        &self.id_column
    }

    /// The folder of group definitions.
    pub fn definitions(&self) -> &std::path::Path {
        &self.definitions
    }

    /// Where runs are published.
    pub fn publish_url(&self) -> &str {
        &self.publish
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The evaluation time.
    pub fn as_of(&self) -> DateTime<Utc> {
        self.as_of.unwrap_or_else(|| self.clock.now())
    }
}
