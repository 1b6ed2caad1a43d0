//! `size`: member counts without publishing; an ad-hoc `where`, a breakdown by a column,
//! the overlap between groups.

use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, AsArray};
use roaring::RoaringBitmap;
use serde::Serialize;

use super::Pipeline;
use crate::compile::col_exact;
use crate::{compile, Error, Result};

/// What to count.
#[derive(Debug, Clone, Default)]
pub struct SizeRequest {
    /// Groups to count.
    pub groups: Vec<String>,
    /// An ad-hoc segment: one boolean SQL expression over the customers table, reported as
    /// the group `"where"`.
    pub where_sql: Option<String>,
    /// Break each count down by the values of this column.
    pub by: Option<String>,
    /// Also count every pair's overlap.
    pub overlap: bool,
}

/// The counts: `{"customers": N, "groups": [{"group": "g", "members": n}]}`.
#[derive(Debug, Clone, Serialize)]
pub struct SizeReport {
    /// The engine the scan ran on (`local` or the scheduler's `df://` URL).
    pub engine: String,
    /// The cluster's job ids (empty on the local engine).
    pub jobs: Vec<String>,
    /// Customers: rows with a non-null id.
    pub customers: u64,
    /// Each group asked for (and `"where"`), in order.
    pub groups: Vec<SizeGroup>,
    /// Customers in both of each pair, when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overlap: Option<Overlap>,
    /// Definition lint warnings.
    #[serde(skip)]
    pub lints: Vec<crate::definition::Problem>,
    /// Run warnings (static ids not found, ...).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// One group's count.
#[derive(Debug, Clone, Serialize)]
pub struct SizeGroup {
    /// The group id (`"where"` for the ad-hoc segment).
    pub group: String,
    /// Members.
    pub members: u64,
    /// Members by value of the `by` column, largest first (`None` value: missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<Vec<Breakdown>>,
}

/// Members with one value of the breakdown column.
#[derive(Debug, Clone, Serialize)]
pub struct Breakdown {
    /// The value, as text (`None`: missing).
    pub value: Option<String>,
    /// Members with it.
    pub members: u64,
}

/// The overlap matrix.
#[derive(Debug, Clone, Serialize)]
pub struct Overlap {
    /// Row and column order.
    pub groups: Vec<String>,
    /// `matrix[i][j]`: members of both `groups[i]` and `groups[j]`.
    pub matrix: Vec<Vec<u64>>,
}

impl Pipeline {
    /// Counts members of the groups (and the ad-hoc `where`) without publishing.
    pub async fn size(&self, request: &SizeRequest) -> Result<SizeReport> {
        if request.groups.is_empty() && request.where_sql.is_none() {
            return Err(Error::Request(
                "name at least one group, or give --where \"<sql>\"",
            ));
        }
        let validation = self.validate().await?;
        let lints = validation.warnings.clone();
        let adhoc = match &request.where_sql {
            Some(sql) => vec![compile::compile_where(
                sql,
                &validation.schema,
                validation.as_of,
            )?],
            None => Vec::new(),
        };
        let extra = match &request.by {
            Some(column) => {
                if validation.schema.field_with_name(column).is_err() {
                    let names = validation.schema.fields().iter().map(|f| f.name().as_str());
                    let hint = crate::definition::did_you_mean(column, names)
                        .map(|h| format!("; {h}"))
                        .unwrap_or_default();
                    return Err(Error::UnknownColumn {
                        flag: "--by",
                        column: column.clone(),
                        hint,
                    });
                }
                vec![col_exact(column)]
            }
            None => Vec::new(),
        };
        if request.groups.is_empty()
            && request.by.is_none()
            && !request.overlap
            && self.engine.is_local()
        {
            // Only a count is asked for: no bitmaps, no ids.
            if let Some(condition) = adhoc.first().cloned() {
                let (customers, members) = self.count_where(&validation, condition).await?;
                return Ok(SizeReport {
                    engine: self.engine.name(),
                    jobs: Vec::new(),
                    customers,
                    groups: vec![SizeGroup {
                        group: "where".into(),
                        members,
                        by: None,
                    }],
                    overlap: None,
                    lints,
                    warnings: Vec::new(),
                });
            }
        }
        let evaluation = self
            .evaluate(&validation, Some(&request.groups), &adhoc, &extra)
            .await;
        self.progress.finish();
        let evaluation = evaluation?;
        evaluation.check_ids(&self.id_column)?;

        let mut named: Vec<(String, &RoaringBitmap)> = Vec::new();
        for id in &request.groups {
            let i = evaluation
                .compiled
                .group_index(id)
                .ok_or_else(|| Error::UnknownGroup {
                    group: id.clone(),
                    hint: String::new(),
                })?;
            named.push((id.clone(), &evaluation.members[i]));
        }
        if let Some(mask) = evaluation.adhoc.first() {
            named.push(("where".into(), mask));
        }
        let breakdown = |members: &RoaringBitmap| -> Vec<Breakdown> {
            let values = evaluation.scan.extra[0].as_string::<i32>();
            let mut counts: BTreeMap<Option<String>, u64> = BTreeMap::new();
            for p in members {
                let v = values
                    .is_valid(p as usize)
                    .then(|| values.value(p as usize).to_string());
                *counts.entry(v).or_default() += 1;
            }
            let mut counts: Vec<_> = counts.into_iter().collect();
            counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            counts
                .into_iter()
                .map(|(value, members)| Breakdown { value, members })
                .collect()
        };
        let groups = named
            .iter()
            .map(|(g, m)| SizeGroup {
                group: g.clone(),
                members: m.len(),
                by: request.by.as_ref().map(|_| breakdown(m)),
            })
            .collect();
        let overlap = request.overlap.then(|| Overlap {
            groups: named.iter().map(|(g, _)| g.clone()).collect(),
            matrix: named
                .iter()
                .map(|(_, a)| named.iter().map(|(_, b)| a.intersection_len(b)).collect())
                .collect(),
        });
        Ok(SizeReport {
            engine: self.engine.name(),
            jobs: evaluation.scan.jobs.clone(),
            customers: evaluation.customers(),
            groups,
            overlap,
            lints,
            warnings: evaluation.warnings.clone(),
        })
    }
}
