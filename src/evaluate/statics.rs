//! Static overrides: ids written inline or listed in CSV / Parquet files, located in the scan.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, UInt64Type};
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};
use roaring::RoaringBitmap;

use super::col_exact;
use crate::definition::{Group, IdLiteral};
use crate::{Error, Result};

/// A customer id in a form that compares across sources (inline, CSV, Parquet, the table).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdKey {
    /// Integer id columns.
    Int(i128),
    /// String id columns.
    Str(String),
}

impl std::fmt::Display for IdKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdKey::Int(i) => write!(f, "{i}"),
            IdKey::Str(s) => f.write_str(s),
        }
    }
}

impl IdKey {
    /// Interprets a written id for an id column of (normalized) type `id_type`.
    /// `None` when it cannot be an id of that column (a non-numeric string for integer ids).
    pub fn parse(text: &str, id_type: &DataType) -> Option<IdKey> {
        match id_type {
            DataType::Utf8 => Some(IdKey::Str(text.to_string())),
            _ => text.trim().parse::<i128>().ok().map(IdKey::Int),
        }
    }

    fn from_literal(lit: &IdLiteral, id_type: &DataType) -> Option<IdKey> {
        match lit {
            IdLiteral::Int(i) if *id_type == DataType::Utf8 => Some(IdKey::Str(i.to_string())),
            IdLiteral::Int(i) => Some(IdKey::Int(*i as i128)),
            IdLiteral::Str(s) => IdKey::parse(s, id_type),
        }
    }

    /// The key of row `i` of a normalized id array (Int64, UInt64 or Utf8); None for null.
    pub fn of_row(ids: &ArrayRef, i: usize) -> Option<IdKey> {
        if ids.is_null(i) {
            return None;
        }
        Some(match ids.data_type() {
            DataType::Int64 => IdKey::Int(ids.as_primitive::<Int64Type>().value(i) as i128),
            DataType::UInt64 => IdKey::Int(ids.as_primitive::<UInt64Type>().value(i) as i128),
            _ => IdKey::Str(ids.as_string::<i32>().value(i).to_string()),
        })
    }
}

/// One group's static overrides, as written (before locating them in the scan).
#[derive(Debug, Default, Clone)]
pub struct StaticIds {
    /// Ids to include (inline and from `include_from`).
    pub include: Vec<IdKey>,
    /// Ids to exclude (inline and from `exclude_from`).
    pub exclude: Vec<IdKey>,
    /// Written ids that cannot be ids of this column at all.
    pub unparsable: Vec<String>,
}

/// Reads a group's static lists, including its `include_from` / `exclude_from` files.
pub async fn read(
    ctx: &SessionContext,
    group: &Group,
    id_column: &str,
    id_type: &DataType,
) -> Result<StaticIds> {
    let mut out = StaticIds::default();
    let add = |lits: &[IdLiteral], into_include: bool, out: &mut StaticIds| {
        for lit in lits {
            match IdKey::from_literal(lit, id_type) {
                Some(k) if into_include => out.include.push(k),
                Some(k) => out.exclude.push(k),
                None => out.unparsable.push(lit.to_string()),
            }
        }
    };
    add(&group.statics.include, true, &mut out);
    add(&group.statics.exclude, false, &mut out);
    if let Some(url) = &group.statics.include_from {
        let ids = read_id_file(ctx, url, id_column, id_type).await?;
        out.include.extend(ids);
    }
    if let Some(url) = &group.statics.exclude_from {
        let ids = read_id_file(ctx, url, id_column, id_type).await?;
        out.exclude.extend(ids);
    }
    Ok(out)
}

/// Reads the id column of a CSV (header row naming the column) or Parquet file.
pub async fn read_id_file(
    ctx: &SessionContext,
    url: &str,
    id_column: &str,
    id_type: &DataType,
) -> Result<Vec<IdKey>> {
    crate::storage::register(ctx, url)?;
    let lower = url.to_lowercase();
    let df = if lower.ends_with(".csv") {
        ctx.read_csv(url, CsvReadOptions::new().has_header(true))
            .await?
    } else if lower.ends_with(".parquet") || lower.ends_with(".pq") {
        ctx.read_parquet(url, ParquetReadOptions::default()).await?
    } else {
        return Err(Error::Usage(format!(
            "static id file '{url}' must be a .csv or .parquet file"
        )));
    };
    if df.schema().field_with_unqualified_name(id_column).is_err() {
        return Err(Error::Data(format!(
            "static id file '{url}' has no column '{id_column}'"
        )));
    }
    let batches = df.select(vec![col_exact(id_column)])?.collect().await?;
    let mut keys = Vec::new();
    for batch in batches {
        // Read every id as text first: a CSV of numeric-looking string ids is inferred as
        // integers, and the id column's type decides how it is understood.
        let text = cast(batch.column(0), &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        for i in 0..text.len() {
            if text.is_valid(i) {
                if let Some(k) = IdKey::parse(text.value(i), id_type) {
                    keys.push(k);
                }
            }
        }
    }
    Ok(keys)
}

/// Positions of the static ids found in the scan, and the ids that were not found.
#[derive(Debug, Default, Clone)]
pub struct LocatedStatics {
    /// Positions to include.
    pub include: RoaringBitmap,
    /// Positions to exclude.
    pub exclude: RoaringBitmap,
    /// Static ids (include or exclude) that are not in the customers table.
    pub missing: Vec<String>,
}

/// Finds every group's static ids in the scanned id column, in one pass over it.
pub fn locate(all: &[StaticIds], ids: &ArrayRef) -> Vec<LocatedStatics> {
    let mut wanted: HashMap<IdKey, Option<u32>> = HashMap::new();
    for s in all {
        for k in s.include.iter().chain(&s.exclude) {
            wanted.insert(k.clone(), None);
        }
    }
    if !wanted.is_empty() {
        for i in 0..ids.len() {
            if let Some(key) = IdKey::of_row(ids, i) {
                if let Some(slot) = wanted.get_mut(&key) {
                    slot.get_or_insert(i as u32);
                }
            }
        }
    }
    all.iter()
        .map(|s| {
            let mut located = LocatedStatics::default();
            let mut missing = s.unparsable.clone();
            for (keys, into) in [
                (&s.include, &mut located.include),
                (&s.exclude, &mut located.exclude),
            ] {
                for k in keys {
                    match wanted.get(k).copied().flatten() {
                        Some(pos) => {
                            into.insert(pos);
                        }
                        None => missing.push(k.to_string()),
                    }
                }
            }
            missing.sort();
            missing.dedup();
            located.missing = missing;
            located
        })
        .collect()
}
