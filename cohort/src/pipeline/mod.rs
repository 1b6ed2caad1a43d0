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

mod explain;
mod live;
mod publish;
mod run;
mod size;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use cohort_snapshot::Stores;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::logical_expr::Expr;
use datafusion::prelude::{DataFrame, SessionContext};
use roaring::RoaringBitmap;

use crate::bitmap::algebra;
use crate::compile::events::{EventConfig, EventTables};
use crate::compile::{self, Compiled, Environment};
use crate::definition::{self, Group, Problem};
use crate::evaluate::files::TableFiles;
use crate::evaluate::{self, statics, Engine, NoProgress, Phase, Progress, ScanOutput, ScanSource};
use crate::ids::{id_type_name, IdMapping};
use crate::{Error, Result};

pub use explain::Explanation;
pub use live::{operators_by_family, DefinitionSize, LiveSizer, OperatorChoice};
pub use publish::{PreviousRun, Publication, PublishOptions};
pub use run::{RunGroup, RunOptions, RunReport};
pub use size::{Breakdown, Overlap, SizeGroup, SizeReport, SizeRequest};

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

    /// Loads every definition and checks it against the customers schema and the event
    /// tables: all problems at once. Opens the customers table (its metadata) and compiles
    /// every group, once; what it returns is what evaluation uses.
    pub async fn validate(&self) -> Result<Validation> {
        let as_of = definition::check_as_of(self.as_of())
            .map_err(|e| Error::Usage(format!("invalid as_of: {e}")))?;
        let (groups, mut problems) = definition::load_dir(&self.definitions)?;
        let session = self.engine.session(&self.stores);
        let (customers, files) = self.open_customers(&session).await?;
        let schema = customers.schema().as_arrow().clone();
        let id_type = evaluate::id_type(&customers, &self.id_column)?;
        let event_tables = evaluate::events::resolve(
            &session,
            &self.stores,
            &self.events,
            definition::event_tables(&groups),
            &self.id_column,
        )
        .await?;
        let env = Environment {
            schema: &schema,
            id_column: &self.id_column,
            events: &event_tables,
            as_of,
        };
        let (compiled, compile_problems) = compile::compile(&groups, &env);
        problems.extend(compile_problems);
        problems.extend(definition::lint(&groups));
        problems.extend(missing_static_files(&groups));
        if problems.iter().any(Problem::is_error) {
            return Err(Error::Definitions(problems));
        }
        Ok(Validation {
            groups,
            warnings: problems,
            schema,
            events: event_tables,
            compiled,
            as_of,
            id_type,
            session,
            customers,
            files: Arc::new(files),
            source: Default::default(),
        })
    }

    /// Opens the customers table: lists its files and reads their footers (every file
    /// that can't be read is named), then opens it in `session` over those files. The
    /// event tables' URLs are checked first, so an unsupported scheme is a usage error
    /// naming it.
    async fn open_customers(&self, session: &SessionContext) -> Result<(DataFrame, TableFiles)> {
        let url = &self.customers;
        for table in self.events.values().map(|e| &e.url) {
            self.stores.location(table)?;
        }
        let location = self.stores.location(url)?;
        let files = evaluate::files::list(&location, "the customers table").await?;
        let frame = evaluate::files::open(session, &files)
            .await
            .map_err(|e| match e {
                datafusion::error::DataFusionError::ObjectStore(source) => {
                    Error::storage(url, *source)
                }
                datafusion::error::DataFusionError::External(e) => {
                    match e.downcast::<cohort_snapshot::Error>() {
                        Ok(e) => Error::Snapshot(*e),
                        Err(e) => Error::Data(format!("cannot read customers table '{url}': {e}")),
                    }
                }
                other => Error::Data(format!("cannot read customers table '{url}': {other}")),
            })?;
        Ok((frame, files))
    }

    /// Counts customers (rows with a non-null id) and those for which `condition` holds,
    /// without building bitmaps: two aggregate queries run together. The first is answered
    /// from Parquet statistics where they are exact; the second is a filtered scan of just
    /// the columns the condition reads.
    pub async fn count_where(
        &self,
        validation: &Validation,
        condition: Expr,
    ) -> Result<(u64, u64)> {
        count_where(&validation.customers, &self.id_column, condition).await
    }

    /// Evaluates the groups named in `selected` (every group when `None`) and what they
    /// reference, in one scan, plus `adhoc` boolean expressions and `extra` columns carried
    /// along for breakdowns.
    ///
    /// The scan combines the groups' clauses as it goes (see [`evaluate::InScan`]): the
    /// evaluation's `scan.masks` hold the ad-hoc conditions' masks and those of groups
    /// combined after the scan only.
    pub async fn evaluate(
        &self,
        validation: &Validation,
        selected: Option<&[String]>,
        adhoc: &[Expr],
        extra: &[Expr],
    ) -> Result<Evaluation> {
        self.evaluate_keeping(validation, selected, adhoc, extra, false)
            .await
    }

    /// [`evaluate`](Self::evaluate), keeping every condition's mask when `every_mask`
    /// (what a clause-by-clause breakdown reads).
    pub(crate) async fn evaluate_keeping(
        &self,
        validation: &Validation,
        selected: Option<&[String]>,
        adhoc: &[Expr],
        extra: &[Expr],
        every_mask: bool,
    ) -> Result<Evaluation> {
        let compiled = match selected {
            None => validation.compiled.clone(),
            Some(ids) => validation.compiled.select(ids)?,
        };
        let as_of = validation.as_of;
        let source = validation
            .source
            .get_or_try_init(|| {
                self.engine.source(
                    &validation.session,
                    &validation.files,
                    validation.customers.clone(),
                    &self.id_column,
                )
            })
            .await?
            .clone();
        let mut customers = source.frame().clone();
        let mut ignored_events = Vec::new();
        if !compiled.events.is_empty() {
            let tables: std::collections::BTreeSet<&str> =
                compiled.events.iter().map(|e| e.table.as_str()).collect();
            let rows = tables
                .into_iter()
                .map(|t| validation.events.get(t).and_then(|t| t.rows))
                .sum::<Option<u64>>();
            self.progress.start(Phase::ReadingEvents, rows);
            let (joined, attached) = evaluate::events::attach(
                customers,
                &self.id_column,
                &validation.events,
                &compiled.events,
                as_of,
            )
            .await?;
            customers = joined;
            ignored_events = attached.ignored;
            self.progress.advance(rows.unwrap_or(0));
        }
        let id_type = &validation.id_type;
        let mut static_ids = Vec::with_capacity(compiled.groups.len());
        for g in &compiled.groups {
            static_ids.push(
                statics::read(
                    &validation.session,
                    &self.stores,
                    &g.group,
                    &self.id_column,
                    id_type,
                )
                .await?,
            );
        }
        let mut conditions = compiled.conditions.clone();
        conditions.extend(adhoc.iter().cloned());
        let in_scan = if every_mask {
            evaluate::InScan::nothing(conditions.len())
        } else {
            evaluate::InScan::plan(&compiled, conditions.len())
        };
        tracing::info!(
            groups = compiled.groups.len(),
            conditions = compiled.conditions.len(),
            "scanning customers once for all conditions"
        );
        self.progress
            .start(Phase::ScanningCustomers, validation.rows().await);
        let scanned = self
            .engine
            .scan(
                &validation.session,
                &source,
                customers,
                &self.id_column,
                &conditions,
                &in_scan,
                extra,
                &self.progress,
            )
            .await;
        let mut scan = match scanned {
            Ok(scan) => scan,
            Err(e) => return Err(validation.files.name_the_file(e).await),
        };
        let groups = compiled.groups.len() as u64;
        self.progress.start(Phase::BuildingBitmaps, Some(groups));
        let adhoc_masks = scan.masks.split_off(compiled.conditions.len());
        let located = statics::locate(&static_ids, &scan.ids);
        let members = algebra::members(
            &compiled,
            &scan.universe,
            &scan.masks,
            std::mem::take(&mut scan.combined),
            &located,
        );
        self.progress.advance(groups);
        let mut warnings = run_warnings(
            &compiled,
            &scan,
            &located,
            &ignored_events,
            id_type,
            &self.id_column,
        );
        warnings.extend(validation.files.warning());
        Ok(Evaluation {
            sources: validation.files.sources(),
            compiled,
            scan,
            members,
            adhoc: adhoc_masks,
            warnings,
            ignored_events,
            as_of,
        })
    }
}

/// Definitions that passed validation, compiled, with the customers table opened.
pub struct Validation {
    /// Every group, in file order.
    pub groups: Vec<Group>,
    /// Lint warnings (errors would have failed validation).
    pub warnings: Vec<Problem>,
    /// The customers schema they were checked against.
    pub schema: Schema,
    /// The event tables they name.
    pub events: EventTables,
    /// Every group, compiled (in dependency order).
    pub compiled: Compiled,
    /// The evaluation time they were compiled for.
    pub as_of: DateTime<Utc>,
    id_type: DataType,
    session: SessionContext,
    customers: DataFrame,
    /// The customers table's files, as listed and read.
    files: Arc<TableFiles>,
    /// The customers table as the engine scans it, made on the first evaluation and
    /// shared by the clones of a table opened once.
    source: Arc<tokio::sync::OnceCell<ScanSource>>,
}

impl std::fmt::Debug for Validation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validation")
            .field("groups", &self.groups.len())
            .field("warnings", &self.warnings)
            .field("conditions", &self.compiled.conditions.len())
            .field("as_of", &self.as_of)
            .field("id_type", &self.id_type)
            .finish_non_exhaustive()
    }
}

impl Validation {
    /// The customers table's row count from the Parquet footers, when they give it.
    async fn rows(&self) -> Option<u64> {
        evaluate::footer_rows(&self.customers).await
    }

    /// The session the table was opened in (explain runs its plan there).
    pub fn session(&self) -> &SessionContext {
        &self.session
    }

    /// The customers table.
    pub fn customers(&self) -> &DataFrame {
        &self.customers
    }

    /// The normalized type of the id column (Int64, UInt64 or Utf8).
    pub fn id_type(&self) -> &DataType {
        &self.id_type
    }
}

/// [`Pipeline::count_where`] on an opened table.
async fn count_where(
    customers: &DataFrame,
    id_column: &str,
    condition: Expr,
) -> Result<(u64, u64)> {
    use datafusion::functions_aggregate::expr_fn::{count, count_distinct};
    let id = evaluate::col_exact(id_column);
    let total = customers
        .clone()
        .aggregate(vec![], vec![count(id.clone()).alias("n")])?;
    let matching = customers
        .clone()
        .filter(id.clone().is_not_null().and(condition))?
        .aggregate(vec![], vec![count(id.clone()).alias("n")])?;
    // The duplicate-id check a run makes, so a size never succeeds where a run fails.
    let distinct = customers
        .clone()
        .aggregate(vec![], vec![count_distinct(id.clone()).alias("n")])?;
    let (total, matching, distinct) = tokio::try_join!(
        single_count(total),
        single_count(matching),
        single_count(distinct)
    )?;
    if distinct != total {
        let repeated = customers
            .clone()
            .filter(id.clone().is_not_null())?
            .aggregate(vec![id.clone()], vec![count(id.clone()).alias("n")])?
            .filter(datafusion::prelude::col("n").gt(datafusion::prelude::lit(1i64)))?
            .select(vec![id.clone()])?
            .limit(0, Some(5))?
            .collect()
            .await?;
        let mut examples = Vec::new();
        for batch in &repeated {
            let text = datafusion::arrow::compute::cast(
                batch.column(0),
                &datafusion::arrow::datatypes::DataType::Utf8,
            )?;
            use datafusion::arrow::array::AsArray;
            examples.extend(text.as_string::<i32>().iter().flatten().map(str::to_string));
        }
        return Err(Error::Snapshot(crate::ids::mapping::duplicate_error(
            id_column,
            total - distinct,
            &examples,
        )));
    }
    Ok((total, matching))
}

async fn single_count(query: DataFrame) -> Result<u64> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;
    let batches = query.collect().await?;
    Ok(batches.iter().find(|b| b.num_rows() > 0).map_or(0, |b| {
        b.column(0).as_primitive::<Int64Type>().value(0) as u64
    }))
}

/// Static id files on local disk that do not exist (remote ones are checked when read).
fn missing_static_files(groups: &[Group]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for g in groups {
        for (key, file) in [
            ("include_from", &g.statics.include_from),
            ("exclude_from", &g.statics.exclude_from),
        ] {
            let Some(file) = file else { continue };
            let local = file.strip_prefix("file://").unwrap_or(file);
            let is_local = !file.contains("://") || file.starts_with("file://");
            if is_local && !std::path::Path::new(local).is_file() {
                let at = definition::Location {
                    file: g.file.clone(),
                    group: g.id.clone(),
                    path: format!("static.{key}"),
                    line: None,
                    ..Default::default()
                };
                let message = format!("static id file '{file}' does not exist");
                problems.push(Problem::error(&at, message));
            }
        }
    }
    problems
}

/// The result of evaluating some groups.
#[derive(Debug)]
pub struct Evaluation {
    /// What was evaluated (groups in dependency order).
    pub compiled: Compiled,
    /// The raw scan.
    pub scan: ScanOutput,
    /// Final members of `compiled.groups[i]`, over scan positions.
    pub members: Vec<RoaringBitmap>,
    /// Masks of the extra ad-hoc conditions (`--where`), over scan positions.
    pub adhoc: Vec<RoaringBitmap>,
    /// Run warnings: static ids not found, null ids skipped, events of unknown customers.
    pub warnings: Vec<String>,
    /// Per event table used: events (up to `as_of`) of customers not in the table.
    pub ignored_events: Vec<(String, u64)>,
    /// The evaluation time.
    pub as_of: DateTime<Utc>,
    /// The customers table's files that were read.
    pub(crate) sources: Vec<cohort_snapshot::manifest::SourceFile>,
}

impl Evaluation {
    /// Customers: rows with a non-null id.
    pub fn customers(&self) -> u64 {
        self.scan.universe.len()
    }

    /// The id checks a publish makes (no duplicate ids), for commands that don't publish
    /// (`size`, `run --dry-run`), so they never succeed where a run fails.
    pub fn check_ids(&self, id_column: &str) -> Result<()> {
        Ok(IdMapping::check_unique(
            &self.scan.ids,
            &self.scan.universe,
            id_column,
        )?)
    }
}

/// The run's warnings: null ids skipped, static ids that are no ids or not customers,
/// events of unknown customers.
fn run_warnings(
    compiled: &Compiled,
    scan: &ScanOutput,
    located: &[statics::LocatedStatics],
    ignored_events: &[(String, u64)],
    id_type: &DataType,
    id_column: &str,
) -> Vec<String> {
    let mut warnings = Vec::new();
    if scan.null_ids > 0 {
        warnings.push(format!(
            "{} row(s) with a null '{}' were skipped",
            scan.null_ids, id_column
        ));
    }
    for (g, l) in compiled.groups.iter().zip(located) {
        if !l.unparsable.is_empty() {
            let examples: Vec<String> = l
                .unparsable
                .iter()
                .take(5)
                .map(|u| format!("'{}' ({})", u.text, u.source))
                .collect();
            warnings.push(format!(
                "group '{}': {} static id(s) can't be ids of the {} column '{}' and were ignored, e.g. {}",
                g.group.id,
                l.unparsable.len(),
                id_type_name(id_type),
                id_column,
                examples.join(", ")
            ));
        }
        if !l.missing.is_empty() {
            let examples: Vec<&str> = l.missing.iter().take(5).map(String::as_str).collect();
            warnings.push(format!(
                "group '{}': {} static id(s) not in the customers table, e.g. {}",
                g.group.id,
                l.missing.len(),
                examples.join(", ")
            ));
        }
    }
    for (table, n) in ignored_events {
        if *n > 0 {
            warnings.push(format!(
                "events '{table}': {n} event(s) name customers not in the customers table; ignored"
            ));
        }
    }
    warnings
}
