//! The whole job, stage by stage: definitions → compile → scan → bitmaps → publish.
//! Commands call these; each stage lives in its own module.

use std::collections::HashSet;

use chrono::SecondsFormat;
use datafusion::arrow::datatypes::Schema;
use datafusion::logical_expr::Expr;
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionContext};
use futures::TryStreamExt;
use indicatif::ProgressBar;
use object_store::ObjectStoreExt;
use roaring::RoaringBitmap;

use crate::bitmap::{algebra, IdMapping};
use crate::compile::events::{self, EventTables};
use crate::compile::{self, Compiled, Environment};
use crate::config::Settings;
use crate::definition::{self, Group, Problem};
use crate::evaluate::statics::{IdKey, StaticIds};
use crate::evaluate::{self, statics, ScanOutput};
use crate::snapshot::manifest::{
    GroupEntry, IdMappingEntry, IdentityTag, Manifest, SourceFile, FORMAT_VERSION,
};
use crate::snapshot::reader;
use crate::snapshot::writer::{self, Bits, Carried, Promote, Published, PublishedGroup};
use crate::snapshot::Snapshot;
use crate::storage::Location;
use crate::{storage, Error, Result};

/// Definitions that passed validation, with their lint warnings.
#[derive(Debug)]
pub struct Validated {
    /// Every group, in file order.
    pub groups: Vec<Group>,
    /// Lint warnings (errors would have failed validation).
    pub warnings: Vec<Problem>,
    /// The customers schema they were checked against.
    pub schema: Schema,
    /// The event tables they name.
    pub events: EventTables,
}

/// Opens the customers table (reads Parquet metadata only).
pub async fn open_customers(ctx: &SessionContext, settings: &Settings) -> Result<DataFrame> {
    let url = settings.customers_url()?;
    storage::register(ctx, url)?;
    let options = ParquetReadOptions::default();
    ctx.read_parquet(url, options).await.map_err(|e| match e {
        datafusion::error::DataFusionError::ObjectStore(source) => Error::storage(url, *source),
        other => Error::Data(format!("cannot read customers table '{url}': {other}")),
    })
}

/// Counts customers (rows with a non-null id) and those for which `condition` holds,
/// without building bitmaps: two aggregate queries run together. The first is answered
/// from Parquet statistics where they are exact; the second is a filtered scan of just
/// the columns the condition reads.
pub async fn count_where(
    ctx: &SessionContext,
    settings: &Settings,
    condition: Expr,
) -> Result<(u64, u64)> {
    use datafusion::functions_aggregate::expr_fn::{count, count_distinct};
    let customers = open_customers(ctx, settings).await?;
    let id = evaluate::col_exact(&settings.id_column);
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
        return Err(crate::bitmap::ids::duplicate_error(
            &settings.id_column,
            total - distinct,
            &examples,
        ));
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

/// Loads and checks every definition against the customers schema; all problems at once.
pub async fn validate(ctx: &SessionContext, settings: &Settings) -> Result<Validated> {
    let (groups, mut problems) = definition::load_dir(&settings.queries)?;
    let customers = open_customers(ctx, settings).await?;
    let schema = customers.schema().as_arrow().clone();
    evaluate::id_type(&customers, &settings.id_column)?;
    let event_tables = events::resolve(
        ctx,
        &settings.events,
        definition::event_tables(&groups),
        &settings.id_column,
    )
    .await?;
    let env = Environment {
        schema: &schema,
        id_column: &settings.id_column,
        events: &event_tables,
        as_of: settings.as_of,
    };
    let (_, compile_problems) = compile::compile(&groups, &env);
    problems.extend(compile_problems);
    problems.extend(definition::lint(&groups));
    problems.extend(missing_static_files(&groups));
    if problems.iter().any(Problem::is_error) {
        return Err(Error::Definitions(problems));
    }
    Ok(Validated {
        groups,
        warnings: problems,
        schema,
        events: event_tables,
    })
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
}

impl Evaluation {
    /// Customers: rows with a non-null id.
    pub fn customers(&self) -> u64 {
        self.scan.universe.len()
    }

    /// The id checks a publish makes (no duplicate ids), for commands that don't publish
    /// (`size`, `run --dry-run`), so they never succeed where a run fails.
    pub fn check_ids(&self, id_column: &str) -> Result<()> {
        IdMapping::check_unique(&self.scan.ids, &self.scan.universe, id_column)
    }
}

/// Evaluates `groups` (which must include their dependencies) in one scan, plus
/// `adhoc` boolean expressions and `extra` columns carried along for breakdowns.
pub async fn evaluate(
    ctx: &SessionContext,
    settings: &Settings,
    validated: &Validated,
    groups: &[Group],
    adhoc: &[Expr],
    extra: &[Expr],
    progress: &ProgressBar,
) -> Result<Evaluation> {
    let env = Environment {
        schema: &validated.schema,
        id_column: &settings.id_column,
        events: &validated.events,
        as_of: settings.as_of,
    };
    let (compiled, problems) = compile::compile(groups, &env);
    if problems.iter().any(Problem::is_error) {
        return Err(Error::Definitions(problems));
    }
    let mut customers = open_customers(ctx, settings).await?;
    let mut ignored_events = Vec::new();
    if !compiled.events.is_empty() {
        let (joined, attached) = events::attach(
            ctx,
            customers,
            &settings.id_column,
            &validated.events,
            &compiled.events,
            settings.as_of,
        )
        .await?;
        customers = joined;
        ignored_events = attached.ignored;
    }
    let id_type = evaluate::id_type(&customers, &settings.id_column)?;
    let mut static_ids = Vec::with_capacity(compiled.groups.len());
    for g in &compiled.groups {
        static_ids.push(statics::read(ctx, &g.group, &settings.id_column, &id_type).await?);
    }
    let mut conditions = compiled.conditions.clone();
    conditions.extend(adhoc.iter().cloned());
    tracing::info!(
        groups = compiled.groups.len(),
        conditions = compiled.conditions.len(),
        "scanning customers once for all conditions"
    );
    let mut scan =
        evaluate::scan(customers, &settings.id_column, &conditions, extra, progress).await?;
    let adhoc_masks = scan.masks.split_off(compiled.conditions.len());
    let located = statics::locate(&static_ids, &scan.ids);
    let members = algebra::members(&compiled, &scan.universe, &scan.masks, &located);

    let mut warnings = Vec::new();
    if scan.null_ids > 0 {
        warnings.push(format!(
            "{} row(s) with a null '{}' were skipped",
            scan.null_ids, settings.id_column
        ));
    }
    for (g, l) in compiled.groups.iter().zip(&located) {
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
                id_type_name(&id_type),
                settings.id_column,
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
    for (table, n) in &ignored_events {
        if *n > 0 {
            warnings.push(format!(
                "events '{table}': {n} event(s) name customers not in the customers table; ignored"
            ));
        }
    }
    Ok(Evaluation {
        compiled,
        scan,
        members,
        adhoc: adhoc_masks,
        warnings,
        ignored_events,
    })
}

/// How an id type is named in messages and manifests.
fn id_type_name(id_type: &datafusion::arrow::datatypes::DataType) -> &'static str {
    match id_type {
        datafusion::arrow::datatypes::DataType::Int64 => "int64",
        datafusion::arrow::datatypes::DataType::UInt64 => "uint64",
        _ => "string",
    }
}

/// The run `LATEST` named when this run began: its manifest only.
#[derive(Debug, Clone)]
pub struct PreviousRun {
    /// Its run id.
    pub run_id: String,
    /// Its manifest.
    pub manifest: Manifest,
}

/// Reads the manifest of the run `LATEST` names, if any (nothing else of it).
pub async fn previous_run(settings: &Settings) -> Result<Option<PreviousRun>> {
    let publish = storage::resolve(&settings.publish)?;
    Ok(reader::latest_manifest(&publish)
        .await?
        .map(|(run_id, manifest)| PreviousRun { run_id, manifest }))
}

/// What to publish.
#[derive(Debug, Default)]
pub struct PublishOptions<'a> {
    /// Groups to publish as evaluated (`run --only`); empty: every evaluated group.
    pub selected: &'a [String],
    /// The run `LATEST` named: with `selected`, its other groups are carried over.
    pub previous: Option<&'a PreviousRun>,
    /// Whether to move `LATEST`.
    pub promote: Promote,
}

/// What a publish did.
#[derive(Debug)]
pub struct Publication {
    /// The run.
    pub published: Published,
    /// Groups carried over unchanged from the previous run, with their member counts.
    pub carried: Vec<(String, u64)>,
    /// Groups of the previous run that this (full) run no longer has.
    pub removed: Vec<String>,
}

/// Publishes the evaluated groups named in `options.selected` (all when empty) to the
/// publish URL. With a selection, every other group of the previous run is carried over
/// unchanged: its bytes are copied when both runs number customers the same way, and
/// translated by external id when the customers changed.
pub async fn publish(
    settings: &Settings,
    evaluation: &Evaluation,
    options: PublishOptions<'_>,
) -> Result<Publication> {
    let selected = options.selected;
    let mapping = IdMapping::build(
        &evaluation.scan.ids,
        &evaluation.scan.universe,
        &settings.id_column,
    )?;
    let ids = writer::EncodedIds::new(
        &settings.id_column,
        mapping.dictionary.as_ref(),
        mapping.hash_index.as_ref(),
    )?;
    let publish = storage::resolve(&settings.publish)?;
    let chosen: Vec<_> = evaluation
        .compiled
        .groups
        .iter()
        .zip(&evaluation.members)
        .filter(|(g, _)| selected.is_empty() || selected.contains(&g.group.id))
        .collect();
    let bitmaps = mapping.remap_all(&chosen.iter().map(|(_, m)| *m).collect::<Vec<_>>());
    let mut groups: Vec<PublishedGroup> = chosen
        .iter()
        .zip(bitmaps)
        .map(|((g, _), bitmap)| PublishedGroup {
            id: g.group.id.clone(),
            name: g.group.name.clone().unwrap_or_else(|| g.group.id.clone()),
            definition_hash: g.group.definition_hash.clone(),
            bits: Bits::Bitmap(bitmap),
            carried: None,
        })
        .collect();
    let mut warnings = evaluation.warnings.clone();
    let mut carried = Vec::new();
    let mut removed = Vec::new();
    if let Some(previous) = options.previous {
        let fresh: HashSet<&str> = groups.iter().map(|g| g.id.as_str()).collect();
        let others: Vec<&GroupEntry> = previous
            .manifest
            .groups
            .iter()
            .filter(|g| !fresh.contains(g.id.as_str()))
            .collect();
        if selected.is_empty() {
            removed = others.iter().map(|g| g.id.clone()).collect();
        } else if !others.is_empty() {
            let kept = carry_over(
                &publish,
                previous,
                &others,
                evaluation,
                &mapping,
                &ids,
                &mut warnings,
            )
            .await?;
            carried = kept.iter().map(|g| (g.id.clone(), g.bits.len())).collect();
            groups.extend(kept);
        }
    }
    groups.sort_by(|a, b| a.id.cmp(&b.id));
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        run_id: String::new(),
        created_at: chrono::Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        as_of: settings.as_of.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        tool_version: format!("cohort {}", env!("CARGO_PKG_VERSION")),
        sources: source_files(settings.customers_url()?).await?,
        customers: evaluation.customers(),
        null_ids: evaluation.scan.null_ids,
        id_column: settings.id_column.clone(),
        id_type: id_type_name(evaluation.scan.ids.data_type()).into(),
        id_mapping: IdMappingEntry::Identity(IdentityTag::Identity),
        warnings,
        groups: Vec::new(),
    };
    let published = writer::publish(&publish, manifest, &groups, &ids, options.promote).await?;
    Ok(Publication {
        published,
        carried,
        removed,
    })
}

/// The previous run's `groups`, in this run's bit space: copied byte for byte when the two
/// runs map ids to bits alike, otherwise translated member by member through their external
/// ids (members no longer among the customers are dropped, with a warning).
async fn carry_over(
    publish: &Location,
    previous: &PreviousRun,
    groups: &[&GroupEntry],
    evaluation: &Evaluation,
    mapping: &IdMapping,
    ids: &writer::EncodedIds,
    warnings: &mut Vec<String>,
) -> Result<Vec<PublishedGroup>> {
    let carried = |g: &GroupEntry| Carried {
        run_id: g
            .carried_from
            .clone()
            .unwrap_or_else(|| previous.run_id.clone()),
        as_of: g
            .as_of
            .clone()
            .unwrap_or_else(|| previous.manifest.as_of.clone()),
    };
    let published = |g: &GroupEntry, bits| PublishedGroup {
        id: g.id.clone(),
        name: g.name.clone(),
        definition_hash: g.definition_hash.clone(),
        bits,
        carried: Some(carried(g)),
    };
    if previous.manifest.id_mapping == ids.entry {
        let mut out = Vec::with_capacity(groups.len());
        for g in groups {
            let bytes = reader::group_bytes(publish, &previous.run_id, g).await?;
            out.push(published(
                g,
                Bits::Serialized {
                    bytes,
                    members: g.members,
                },
            ));
        }
        return Ok(out);
    }
    // The customers changed since that run: find each member again by its external id.
    let old = Snapshot::open_run_in(publish, &previous.run_id).await?;
    let id_type = evaluation.scan.ids.data_type().clone();
    let wanted: Vec<StaticIds> = groups
        .iter()
        .map(|g| StaticIds {
            include: old
                .bitmap(&g.id)
                .unwrap_or_default()
                .iter()
                .filter_map(|bit| IdKey::parse(&old.external_id(bit), &id_type))
                .collect(),
            ..Default::default()
        })
        .collect();
    let located = statics::locate(&wanted, &evaluation.scan.ids);
    let bitmaps = mapping.remap_all(&located.iter().map(|l| &l.include).collect::<Vec<_>>());
    Ok(groups
        .iter()
        .zip(located)
        .zip(bitmaps)
        .map(|((g, l), bitmap)| {
            if !l.missing.is_empty() {
                warnings.push(format!(
                    "group '{}' carried over from run {}: {} member(s) are no longer in the customers table and were dropped",
                    g.id,
                    previous.run_id,
                    l.missing.len()
                ));
            }
            published(g, Bits::Bitmap(bitmap))
        })
        .collect())
}

/// The files behind a table URL (one file, or every Parquet file under a prefix).
pub async fn source_files(url: &str) -> Result<Vec<SourceFile>> {
    let location = storage::resolve(url)?;
    let describe = |m: object_store::ObjectMeta| SourceFile {
        path: m.location.to_string(),
        size: m.size,
        last_modified: m.last_modified.to_rfc3339_opts(SecondsFormat::Secs, true),
        etag: m.e_tag,
    };
    if let Ok(meta) = location.store.head(&location.path).await {
        return Ok(vec![describe(meta)]);
    }
    let mut files: Vec<SourceFile> = location
        .store
        .list(Some(&location.path))
        .map_ok(describe)
        .try_collect()
        .await
        .map_err(|e| Error::storage(url, e))?;
    files.retain(|f| f.path.ends_with(".parquet"));
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}
