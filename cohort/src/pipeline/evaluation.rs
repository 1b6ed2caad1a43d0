//! Evaluation: one scan of the customers for the groups asked for (and what they
//! reference), their members as bitmaps over scan positions, and the run's warnings.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::Expr;
use datafusion::prelude::DataFrame;
use roaring::RoaringBitmap;

use crate::bitmap::algebra;
use crate::compile::Compiled;
use crate::evaluate::{self, statics, Phase, ScanOutput};
use crate::ids::{id_type_name, IdKey, IdMapping};

use super::{Pipeline, Validation};
use crate::{Error, Result};

impl Pipeline {
    /// Counts customers (rows with a non-null id) and those for which `condition` holds,
    /// without building bitmaps: two aggregate queries run together. The first is answered
    /// from Parquet statistics where they are exact; the second is a filtered scan of just
    /// the columns the condition reads.
    pub(crate) async fn count_where(
        &self,
        validation: &Validation,
        condition: Expr,
    ) -> Result<(u64, u64)> {
        count_where(&validation.customers, &self.id_column, condition).await
    }

    /// Every group's members, evaluated in one scan without publishing: the groups in
    /// file order, each with its members' ids in ascending order.
    pub async fn members(&self) -> Result<Vec<(String, Vec<IdKey>)>> {
        let validation = self.validate().await?;
        let evaluation = self.evaluate(&validation, None, &[], &[]).await?;
        let ids = &evaluation.scan.ids;
        let mut by_id: HashMap<&str, Vec<IdKey>> = HashMap::new();
        for (group, members) in evaluation.compiled.groups.iter().zip(&evaluation.members) {
            // Members have ids: a null id is in no group.
            let mut keys: Vec<IdKey> = members
                .iter()
                .filter_map(|position| IdKey::of_row(ids, position as usize))
                .collect();
            keys.sort();
            by_id.insert(&group.group.id, keys);
        }
        Ok(validation
            .groups
            .iter()
            .map(|g| {
                (
                    g.id.clone(),
                    by_id.remove(g.id.as_str()).unwrap_or_default(),
                )
            })
            .collect())
    }

    /// Evaluates the groups named in `selected` (every group when `None`) and what they
    /// reference, in one scan, plus `adhoc` boolean expressions and `extra` columns carried
    /// along for breakdowns.
    ///
    /// The scan combines the groups' clauses as it goes (see [`evaluate::InScan`]): the
    /// evaluation's `scan.masks` hold the ad-hoc conditions' masks and those of groups
    /// combined after the scan only.
    pub(crate) async fn evaluate(
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
            .scan(evaluate::ScanRequest {
                session: &validation.session,
                source: &source,
                frame: customers,
                id_column: &self.id_column,
                conditions: &conditions,
                in_scan: &in_scan,
                extra,
                progress: &self.progress,
            })
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

/// The result of evaluating some groups.
#[derive(Debug)]
pub(crate) struct Evaluation {
    /// What was evaluated (groups in dependency order).
    pub(crate) compiled: Compiled,
    /// The raw scan.
    pub(crate) scan: ScanOutput,
    /// Final members of `compiled.groups[i]`, over scan positions.
    pub(crate) members: Vec<RoaringBitmap>,
    /// Masks of the extra ad-hoc conditions (`--where`), over scan positions.
    pub(crate) adhoc: Vec<RoaringBitmap>,
    /// Run warnings: static ids not found, null ids skipped, events of unknown customers.
    pub(crate) warnings: Vec<String>,
    /// Per event table used: events (up to `as_of`) of customers not in the table.
    pub(crate) ignored_events: Vec<(String, u64)>,
    /// The evaluation time.
    pub(crate) as_of: DateTime<Utc>,
    /// The customers table's files that were read.
    pub(crate) sources: Vec<cohort_snapshot::manifest::SourceFile>,
}

impl Evaluation {
    /// Customers: rows with a non-null id.
    pub(crate) fn customers(&self) -> u64 {
        self.scan.universe.len()
    }

    /// The id checks a publish makes (no duplicate ids), for commands that don't publish
    /// (`size`, `run --dry-run`), so they never succeed where a run fails.
    pub(crate) fn check_ids(&self, id_column: &str) -> Result<()> {
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
