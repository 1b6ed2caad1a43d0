//! Static overrides: ids written inline or listed in CSV / Parquet files, located in the scan.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, UInt64Type};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use roaring::RoaringBitmap;

use super::col_exact;
use crate::definition::{Group, IdLiteral};
use cohort_snapshot::Stores;

use crate::ids::IdKey;
use crate::{Error, Result};

/// The key a static id written in a definition has for an id column of (normalized)
/// type `id_type`; `None` when it can't be an id of that column.
fn key_of_literal(lit: &IdLiteral, id_type: &DataType) -> Option<IdKey> {
    match lit {
        IdLiteral::Int(i) if *id_type == DataType::Utf8 => Some(IdKey::Str(i.to_string())),
        IdLiteral::Int(i) if *id_type == DataType::UInt64 && *i < 0 => None,
        IdLiteral::Int(i) => Some(IdKey::Int(*i as i128)),
        IdLiteral::Str(s) => IdKey::parse(s, id_type),
    }
}

/// One group's static overrides, as written (before locating them in the scan).
#[derive(Debug, Default, Clone)]
pub(crate) struct StaticIds {
    /// Ids to include (inline and from `include_from`).
    pub include: Vec<IdKey>,
    /// Ids to exclude (inline and from `exclude_from`).
    pub exclude: Vec<IdKey>,
    /// Written ids that cannot be ids of this column at all, with where they were written.
    pub unparsable: Vec<Unparsable>,
}

/// A written id that cannot be an id of the column (`000123` or `abc` for integer ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unparsable {
    /// `static.include`, or the id file's URL.
    pub source: String,
    /// The text as written.
    pub text: String,
}

/// Reads a group's static lists, including its `include_from` / `exclude_from` files.
pub(crate) async fn read(
    ctx: &SessionContext,
    stores: &Stores,
    group: &Group,
    id_column: &str,
    id_type: &DataType,
) -> Result<StaticIds> {
    let mut out = StaticIds::default();
    let add = |lits: &[IdLiteral], into_include: bool, out: &mut StaticIds| {
        for lit in lits {
            match key_of_literal(lit, id_type) {
                Some(k) if into_include => out.include.push(k),
                Some(k) => out.exclude.push(k),
                None => out.unparsable.push(Unparsable {
                    source: if into_include {
                        "static.include"
                    } else {
                        "static.exclude"
                    }
                    .into(),
                    text: lit.to_string(),
                }),
            }
        }
    };
    add(&group.statics.include, true, &mut out);
    add(&group.statics.exclude, false, &mut out);
    for (file, into_include) in [
        (&group.statics.include_from, true),
        (&group.statics.exclude_from, false),
    ] {
        let Some(url) = file else { continue };
        let texts = read_id_file(ctx, stores, url, id_column).await?;
        for text in texts {
            match IdKey::parse(&text, id_type) {
                Some(k) if into_include => out.include.push(k),
                Some(k) => out.exclude.push(k),
                None => out.unparsable.push(Unparsable {
                    source: url.clone(),
                    text,
                }),
            }
        }
    }
    Ok(out)
}

/// Reads the id column of a CSV (header row naming the column) or Parquet file, every id
/// as text, exactly as written: a CSV is never type-inferred (`000123` stays `000123`), and
/// Parquet values are spelled as their type spells them (a float `5.0` stays `5.0`, which
/// no integer id column accepts). Empty CSV cells and null values are no ids.
pub(crate) async fn read_id_file(
    ctx: &SessionContext,
    stores: &Stores,
    url: &str,
    id_column: &str,
) -> Result<Vec<String>> {
    let lower = url.to_lowercase();
    if lower.ends_with(".csv") {
        let bytes = stores.location(url)?.read().await?;
        return csv_column(&bytes, url, id_column);
    }
    if !(lower.ends_with(".parquet") || lower.ends_with(".pq")) {
        return Err(Error::StaticIds {
            url: url.to_string(),
            problem: " must be a .csv or .parquet file".into(),
            usage: true,
        });
    }
    let df = ctx.read_parquet(url, ParquetReadOptions::default()).await?;
    if df.schema().field_with_unqualified_name(id_column).is_err() {
        return Err(Error::StaticIds {
            url: url.to_string(),
            problem: format!(" has no column '{id_column}'"),
            usage: false,
        });
    }
    let batches = df.select(vec![col_exact(id_column)])?.collect().await?;
    let mut ids = Vec::new();
    for batch in batches {
        let text = cast(batch.column(0), &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        ids.extend(text.iter().flatten().map(str::to_string));
    }
    Ok(ids)
}

/// The `id_column` cells of a CSV file with a header row, as text.
fn csv_column(bytes: &[u8], url: &str, id_column: &str) -> Result<Vec<String>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let bad = |e: csv::Error| Error::StaticIds {
        url: url.to_string(),
        problem: format!(": {e}"),
        usage: false,
    };
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let headers = reader.headers().map_err(bad)?.clone();
    let Some(column) = headers.iter().position(|h| h == id_column) else {
        let found: Vec<&str> = headers.iter().take(5).collect();
        return Err(Error::StaticIds {
            url: url.to_string(),
            problem: format!(
                " has no column '{id_column}' in its header row (found: {})",
                found.join(", ")
            ),
            usage: false,
        });
    };
    let mut ids = Vec::new();
    for record in reader.records() {
        let record = record.map_err(bad)?;
        match record.get(column) {
            Some(cell) if !cell.is_empty() => ids.push(cell.to_string()),
            _ => {}
        }
    }
    Ok(ids)
}

/// Positions of the static ids found in the scan, and the ids that were not found.
#[derive(Debug, Default, Clone)]
pub(crate) struct LocatedStatics {
    /// Positions to include.
    pub include: RoaringBitmap,
    /// Positions to exclude.
    pub exclude: RoaringBitmap,
    /// Static ids (include or exclude) that are not in the customers table.
    pub missing: Vec<String>,
    /// Written ids that cannot be ids of the column.
    pub unparsable: Vec<Unparsable>,
}

/// Finds every group's static ids in the scanned id column, in one pass over it: each
/// row's id looked up as it is stored (no key built per row), parts of the column on all
/// cores, the first position of an id kept.
pub(crate) fn locate(all: &[StaticIds], ids: &ArrayRef) -> Vec<LocatedStatics> {
    use rayon::prelude::*;
    let mut wanted: HashMap<IdKey, Option<u32>> = HashMap::new();
    for s in all {
        for k in s.include.iter().chain(&s.exclude) {
            wanted.insert(k.clone(), None);
        }
    }
    if !wanted.is_empty() {
        let keys: Vec<IdKey> = wanted.keys().cloned().collect();
        let ints: hashbrown::HashMap<i128, usize> = keys
            .iter()
            .enumerate()
            .filter_map(|(n, k)| match k {
                IdKey::Int(i) => Some((*i, n)),
                IdKey::Str(_) => None,
            })
            .collect();
        let strs: hashbrown::HashMap<&str, usize> = keys
            .iter()
            .enumerate()
            .filter_map(|(n, k)| match k {
                IdKey::Str(s) => Some((s.as_str(), n)),
                IdKey::Int(_) => None,
            })
            .collect();
        // The wanted key (its index in `keys`) of row `i`, if any.
        let key_at = |i: usize| -> Option<usize> {
            if ids.is_null(i) {
                return None;
            }
            match ids.data_type() {
                DataType::Int64 => ints
                    .get(&(ids.as_primitive::<Int64Type>().value(i) as i128))
                    .copied(),
                DataType::UInt64 => ints
                    .get(&(ids.as_primitive::<UInt64Type>().value(i) as i128))
                    .copied(),
                _ => strs.get(ids.as_string::<i32>().value(i)).copied(),
            }
        };
        const PART: usize = 1 << 20;
        let first = (0..ids.len().div_ceil(PART))
            .into_par_iter()
            .map(|part| {
                let mut first = vec![None::<u32>; keys.len()];
                for i in part * PART..((part + 1) * PART).min(ids.len()) {
                    if let Some(k) = key_at(i) {
                        first[k].get_or_insert(i as u32);
                    }
                }
                first
            })
            .reduce(
                || vec![None; keys.len()],
                |a, b| a.into_iter().zip(b).map(|(a, b)| a.or(b)).collect(),
            );
        wanted.extend(keys.iter().cloned().zip(first));
    }
    all.iter()
        .map(|s| {
            let mut located = LocatedStatics::default();
            let mut missing = Vec::new();
            located.unparsable = s.unparsable.clone();
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
