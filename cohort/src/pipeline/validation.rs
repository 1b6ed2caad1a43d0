//! `validate`: every definition loaded and checked against the customers table and the
//! event tables, all problems at once, and compiled once for what evaluates it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::prelude::{DataFrame, SessionContext};

use crate::compile::events::EventTables;
use crate::compile::{self, Compiled, Environment};
use crate::definition::{self, Group, Problem};
use crate::evaluate::files::TableFiles;
use crate::evaluate::{self, ScanSource};

use super::Pipeline;
use crate::{Error, Result};

impl Pipeline {
    /// Loads every definition and checks it against the customers schema and the event
    /// tables: all problems at once. Opens the customers table (its metadata) and compiles
    /// every group, once; what it returns is what evaluation uses.
    pub async fn validate(&self) -> Result<Validation> {
        let as_of = definition::check_as_of(self.as_of()).map_err(Error::AsOf)?;
        let (groups, mut problems) = definition::load_dir(&self.definitions)?;
        let Opened {
            session,
            customers,
            files,
            schema,
            id_type,
            events: event_tables,
        } = self.open_tables(definition::event_tables(&groups)).await?;
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

    /// Opens the customers table and the event tables `names` in a session of the engine's.
    pub(super) async fn open_tables(
        &self,
        names: impl IntoIterator<Item = String>,
    ) -> Result<Opened> {
        let session = self.engine.session(&self.stores);
        let (customers, files) = self.open_customers(&session).await?;
        let schema = customers.schema().as_arrow().clone();
        let id_type = evaluate::id_type(&customers, &self.id_column)?;
        let events =
            evaluate::events::resolve(&session, &self.stores, &self.events, names, &self.id_column)
                .await?;
        Ok(Opened {
            session,
            customers,
            files,
            schema,
            id_type,
            events,
        })
    }

    /// Opens the customers table: lists its files and reads their footers (every file
    /// that can't be read is named), then opens it in `session` over those files. The
    /// event tables' URLs are checked first, so an unsupported scheme is a usage error
    /// naming it.
    pub(super) async fn open_customers(
        &self,
        session: &SessionContext,
    ) -> Result<(DataFrame, TableFiles)> {
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
                        Err(source) => Error::File {
                            what: "customers table".into(),
                            url: url.to_string(),
                            source,
                        },
                    }
                }
                other => Error::File {
                    what: "customers table".into(),
                    url: url.to_string(),
                    source: Box::new(other),
                },
            })?;
        Ok((frame, files))
    }
}

/// Definitions that passed validation, compiled, with the customers table opened.
pub struct Validation {
    /// Every group, in file order.
    pub(crate) groups: Vec<Group>,
    /// Lint warnings (errors would have failed validation).
    pub(crate) warnings: Vec<Problem>,
    /// The customers schema they were checked against.
    pub(crate) schema: Schema,
    /// The event tables they name.
    pub(crate) events: EventTables,
    /// Every group, compiled (in dependency order).
    pub(crate) compiled: Compiled,
    /// The evaluation time they were compiled for.
    pub(crate) as_of: DateTime<Utc>,
    pub(crate) id_type: DataType,
    pub(crate) session: SessionContext,
    pub(crate) customers: DataFrame,
    /// The customers table's files, as listed and read.
    pub(crate) files: Arc<TableFiles>,
    /// The customers table as the engine scans it, made on the first evaluation and
    /// shared by the clones of a table opened once.
    pub(crate) source: Arc<tokio::sync::OnceCell<ScanSource>>,
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
    pub(super) async fn rows(&self) -> Option<u64> {
        evaluate::footer_rows(&self.customers).await
    }

    /// Every group, in file order.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// Lint warnings (errors would have failed validation).
    pub fn warnings(&self) -> &[Problem] {
        &self.warnings
    }

    /// The customers schema the definitions were checked against.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The evaluation time the definitions were compiled for.
    pub fn as_of(&self) -> DateTime<Utc> {
        self.as_of
    }

    /// The customers table.
    pub(crate) fn customers(&self) -> &DataFrame {
        &self.customers
    }
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

/// The tables a validation or a live sizer works on, opened once.
pub(super) struct Opened {
    pub(super) session: SessionContext,
    pub(super) customers: DataFrame,
    pub(super) files: TableFiles,
    pub(super) schema: Schema,
    pub(super) id_type: DataType,
    pub(super) events: EventTables,
}
