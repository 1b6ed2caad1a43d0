//! Live sizing: one definition that is not a file (a service's request), counted against
//! the customers table opened once, with the groups of the definitions folder it refers to.
//!
//! [`Pipeline::open_live`] opens the customers table and every configured event table
//! (Parquet metadata only) and keeps them; [`LiveSizer::size`] then compiles the definition
//! with the groups it references, and evaluates them in one scan, as `cohort size` would
//! with the definition saved as a group file.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::evaluate::files::TableFiles;
use crate::evaluate::ScanSource;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::prelude::{DataFrame, SessionContext};

use super::{Pipeline, Validation};
use crate::bitmap::algebra;
use crate::compile::events::EventTables;
use crate::compile::{self, Environment};
use crate::definition::{self, ConditionSpec, Group, Problem};
use crate::{Error, Result};

/// Rows read once at open for example values of each column.
const EXAMPLE_ROWS: usize = 2000;
/// Example values kept per column.
const EXAMPLES: usize = 6;

/// The customers table and event tables, opened once, ready to size definitions.
pub struct LiveSizer {
    pipeline: Pipeline,
    session: SessionContext,
    customers: DataFrame,
    /// The customers table's files.
    files: Arc<TableFiles>,
    /// The customers table as the engine scans it, made once for every sizing.
    source: Arc<tokio::sync::OnceCell<ScanSource>>,
    schema: Schema,
    id_type: DataType,
    events: EventTables,
    examples: BTreeMap<String, Vec<String>>,
}

impl std::fmt::Debug for LiveSizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSizer")
            .field("columns", &self.schema.fields().len())
            .field("events", &self.events.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The counts of one sized definition.
#[derive(Debug, Clone)]
pub struct DefinitionSize {
    /// Customers (rows with a non-null id).
    pub customers: u64,
    /// Members of the definition.
    pub members: u64,
    /// Customers each include clause matches on its own.
    pub include: Vec<u64>,
    /// Customers each exclude clause matches on its own.
    pub exclude: Vec<u64>,
    /// Lint warnings of the definition.
    pub lints: Vec<Problem>,
    /// Evaluation warnings (static ids not found, ...).
    pub warnings: Vec<String>,
    /// The evaluation time used.
    pub as_of: chrono::DateTime<chrono::Utc>,
}

impl Pipeline {
    /// Opens the customers table and every configured event table once, for
    /// [`LiveSizer::size`] to reuse, and reads a few example values of each column.
    pub async fn open_live(&self) -> Result<LiveSizer> {
        let super::validation::Opened {
            session,
            customers,
            files,
            schema,
            id_type,
            events,
        } = self.open_tables(self.events.keys().cloned()).await?;
        let examples = examples(&customers).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "no example values for the schema");
            BTreeMap::new()
        });
        Ok(LiveSizer {
            pipeline: self.clone(),
            session,
            customers,
            files: Arc::new(files),
            source: Default::default(),
            schema,
            id_type,
            events,
            examples,
        })
    }
}

impl LiveSizer {
    /// The customers table's schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The customer id column.
    pub fn id_column(&self) -> &str {
        self.pipeline.id_column()
    }

    /// The names of the event tables definitions may use.
    pub fn event_tables(&self) -> impl Iterator<Item = &str> {
        self.events.keys().map(String::as_str)
    }

    /// A few values of a column, from the first rows of the table.
    pub fn examples(&self, column: &str) -> &[String] {
        self.examples.get(column).map_or(&[], Vec::as_slice)
    }

    /// Sizes `group` (parsed, e.g. by [`definition::parse_definition_json`]): compiles it
    /// with the groups of the definitions folder it references (read now, so edits show),
    /// at the pipeline's `as_of` (its clock's now when none was set), and evaluates it in
    /// one scan of the customers table. `earlier` are problems the caller found already
    /// (parsing, what it refuses); every problem is reported at once, as
    /// [`Error::Definitions`].
    pub async fn size(&self, group: Group, earlier: Vec<Problem>) -> Result<DefinitionSize> {
        let pipeline = &self.pipeline;
        let as_of = definition::check_as_of(pipeline.as_of()).map_err(Error::AsOf)?;
        let mut problems = earlier;
        let (folder, folder_problems) = match definition::load_dir(pipeline.definitions()) {
            Ok(loaded) => loaded,
            // No definitions folder: the definition can reference no group.
            Err(Error::Missing { .. }) => (Vec::new(), Vec::new()),
            Err(e) => return Err(e),
        };
        let needed = referenced(&group, &folder);
        problems.extend(
            folder_problems
                .into_iter()
                .filter(|p| p.is_error() && needed.contains(p.at.group.as_str())),
        );
        let id = group.id.clone();
        let folder_ids: Vec<String> = folder.iter().map(|g| g.id.clone()).collect();
        let lints = definition::lint(std::slice::from_ref(&group));
        let mut groups: Vec<Group> = folder
            .into_iter()
            .filter(|g| needed.contains(g.id.as_str()))
            .collect();
        groups.push(group);
        let env = Environment {
            schema: &self.schema,
            id_column: pipeline.id_column(),
            events: &self.events,
            as_of,
        };
        let (compiled, mut compile_problems) = compile::compile(&groups, &env);
        // Only the groups it needs were compiled with it: "did you mean" looks at them all.
        for p in &mut compile_problems {
            if p.at.group == id && p.message.starts_with("unknown group '") {
                let name = p
                    .message
                    .trim_start_matches("unknown group '")
                    .trim_end_matches('\'');
                p.hint = definition::did_you_mean(name, folder_ids.iter().map(String::as_str));
            }
        }
        problems.extend(compile_problems);
        if problems.iter().any(Problem::is_error) {
            problems.extend(lints);
            return Err(Error::Definitions(problems));
        }
        let validation = Validation {
            groups,
            warnings: Vec::new(),
            schema: self.schema.clone(),
            events: self.events.clone(),
            compiled,
            as_of,
            id_type: self.id_type.clone(),
            session: self.session.clone(),
            customers: self.customers.clone(),
            files: self.files.clone(),
            source: self.source.clone(),
        };
        let evaluation = pipeline
            .evaluate_keeping(&validation, Some(std::slice::from_ref(&id)), &[], &[], true)
            .await?;
        evaluation.check_ids(pipeline.id_column())?;
        let index = evaluation
            .compiled
            .group_index(&id)
            .expect("the sized group was evaluated");
        let (include, exclude) = algebra::clause_sizes(
            &evaluation.compiled,
            index,
            &evaluation.scan.universe,
            &evaluation.scan.masks,
            &evaluation.members,
        );
        Ok(DefinitionSize {
            customers: evaluation.customers(),
            members: evaluation.members[index].len(),
            include,
            exclude,
            lints,
            warnings: evaluation.warnings.clone(),
            as_of,
        })
    }
}

/// The ids of the folder groups `group` references, directly or through others.
fn referenced(group: &Group, folder: &[Group]) -> BTreeSet<String> {
    let by_id: HashMap<&str, &Group> = folder.iter().map(|g| (g.id.as_str(), g)).collect();
    let references = |g: &Group| -> Vec<String> {
        g.include
            .iter()
            .chain(&g.exclude)
            .flat_map(|c| &c.conditions)
            .filter_map(|c| match &c.spec {
                ConditionSpec::GroupRef { group, .. } => Some(group.clone()),
                _ => None,
            })
            .collect()
    };
    let mut needed = BTreeSet::new();
    let mut todo = references(group);
    while let Some(next) = todo.pop() {
        if let Some((&id, g)) = by_id.get_key_value(next.as_str()) {
            if needed.insert(id.to_string()) {
                todo.extend(references(g));
            }
        }
    }
    needed
}

/// Up to [`EXAMPLES`] distinct values of each scalar column, from the first rows.
async fn examples(customers: &DataFrame) -> Result<BTreeMap<String, Vec<String>>> {
    let batches = customers
        .clone()
        .limit(0, Some(EXAMPLE_ROWS))?
        .collect()
        .await?;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let Some(first) = batches.first() else {
        return Ok(out);
    };
    for (i, field) in first.schema().fields().iter().enumerate() {
        let scalar = !matches!(
            field.data_type(),
            DataType::List(_)
                | DataType::LargeList(_)
                | DataType::Struct(_)
                | DataType::Map(_, _)
                | DataType::Binary
                | DataType::LargeBinary
        );
        if !scalar {
            continue;
        }
        let mut values: Vec<String> = Vec::new();
        'batches: for batch in &batches {
            let Ok(text) = datafusion::arrow::compute::cast(batch.column(i), &DataType::Utf8)
            else {
                continue 'batches;
            };
            let text = text.as_string::<i32>();
            for row in 0..text.len() {
                if text.is_valid(row) {
                    let v = text.value(row);
                    if !values.iter().any(|x| x == v) {
                        values.push(v.to_string());
                        if values.len() >= EXAMPLES {
                            break 'batches;
                        }
                    }
                }
            }
        }
        out.insert(field.name().clone(), values);
    }
    Ok(out)
}

/// The family of a column of `data_type`: the operators a form offers for it are those
/// the registry lists under it ([`definition::Operator::families`]).
pub fn column_family(data_type: &DataType) -> definition::Family {
    compile::attribute::ColumnKind::of(data_type).family()
}
