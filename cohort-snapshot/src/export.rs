//! A group's member ids written out for activation: CSV, JSON lines or Parquet, chosen by
//! the file name's extension.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;

use crate::{Error, Result, Snapshot};

/// An export file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One column headed with the id column's name, one id per line, as in the data.
    Csv,
    /// One JSON object per line: `{"<id column>": id}` (a number for integer ids).
    JsonLines,
    /// One column named after the id column, of the ids' type.
    Parquet,
}

impl ExportFormat {
    /// The format a file name's extension names (`.csv`, `.jsonl`/`.ndjson`, `.parquet`).
    pub fn of_name(name: &str) -> Option<ExportFormat> {
        let lower = name.to_lowercase();
        if lower.ends_with(".csv") {
            Some(ExportFormat::Csv)
        } else if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
            Some(ExportFormat::JsonLines)
        } else if lower.ends_with(".parquet") {
            Some(ExportFormat::Parquet)
        } else {
            None
        }
    }
}

/// The external ids of a group's members, in bit order.
pub fn member_ids(snapshot: &Snapshot, group: &str) -> Result<Vec<String>> {
    let bitmap = snapshot.bitmap(group).ok_or_else(|| Error::UnknownGroup {
        group: group.to_string(),
        run_id: snapshot.run_id().to_string(),
    })?;
    Ok(bitmap.iter().map(|bit| snapshot.external_id(bit)).collect())
}

/// `ids` (external ids of `snapshot`'s id column) encoded in `format`.
pub fn encode(snapshot: &Snapshot, ids: &[String], format: ExportFormat) -> Result<Vec<u8>> {
    let column = snapshot.manifest().id_column.as_str();
    match format {
        ExportFormat::Csv => {
            let mut writer = csv::Writer::from_writer(Vec::new());
            let failed = |e: csv::Error| Error::Export {
                reason: format!("writing CSV: {e}"),
            };
            writer.write_record([column]).map_err(failed)?;
            for id in ids {
                writer.write_record([id]).map_err(failed)?;
            }
            writer.into_inner().map_err(|e| Error::Export {
                reason: format!("writing CSV: {e}"),
            })
        }
        ExportFormat::JsonLines => {
            let mut out = Vec::new();
            for id in ids {
                let value = json_id(snapshot, column, id);
                out.extend(serde_json::to_vec(&value).expect("JSON values serialize"));
                out.push(b'\n');
            }
            Ok(out)
        }
        ExportFormat::Parquet => {
            let array = id_array(snapshot, ids);
            let schema = Arc::new(Schema::new(vec![Field::new(
                column,
                array.data_type().clone(),
                false,
            )]));
            parquet_bytes(RecordBatch::try_new(schema, vec![array])?)
        }
    }
}

/// Every group's members in long format, one row per (member, group): the id column and
/// `group`, groups in the snapshot's order and members in bit order; for DuckDB, Polars
/// or Spark. Returns the bytes and the number of rows.
pub fn encode_all(snapshot: &Snapshot, format: ExportFormat) -> Result<(Vec<u8>, u64)> {
    let column = snapshot.manifest().id_column.as_str();
    let mut ids = Vec::new();
    let mut groups: Vec<&str> = Vec::new();
    for entry in snapshot.groups() {
        let members = member_ids(snapshot, &entry.id)?;
        groups.extend(std::iter::repeat_n(entry.id.as_str(), members.len()));
        ids.extend(members);
    }
    let rows = ids.len() as u64;
    let bytes = match format {
        ExportFormat::Csv => {
            let failed = |e: csv::Error| Error::Export {
                reason: format!("writing CSV: {e}"),
            };
            let mut writer = csv::Writer::from_writer(Vec::new());
            writer.write_record([column, "group"]).map_err(failed)?;
            for (id, group) in ids.iter().zip(&groups) {
                writer.write_record([id.as_str(), group]).map_err(failed)?;
            }
            writer.into_inner().map_err(|e| Error::Export {
                reason: format!("writing CSV: {e}"),
            })?
        }
        ExportFormat::JsonLines => {
            let mut out = Vec::new();
            for (id, group) in ids.iter().zip(&groups) {
                let mut value = json_id(snapshot, column, id);
                value["group"] = serde_json::Value::from(*group);
                out.extend(serde_json::to_vec(&value).expect("JSON values serialize"));
                out.push(b'\n');
            }
            out
        }
        ExportFormat::Parquet => {
            let id = id_array(snapshot, &ids);
            let group: ArrayRef = Arc::new(StringArray::from(groups));
            let schema = Arc::new(Schema::new(vec![
                Field::new(column, id.data_type().clone(), false),
                Field::new("group", group.data_type().clone(), false),
            ]));
            parquet_bytes(RecordBatch::try_new(schema, vec![id, group])?)?
        }
    };
    Ok((bytes, rows))
}

/// `{"<id column>": id}`: a number for integer ids.
fn json_id(snapshot: &Snapshot, column: &str, id: &str) -> serde_json::Value {
    match (snapshot.integer_ids(), id.parse::<i128>()) {
        (true, Ok(n)) => serde_json::json!({ column: serde_json::Number::from_i128(n) }),
        _ => serde_json::json!({ column: id }),
    }
}

/// Integer ids as Int64; unsigned ones beyond i64 (and strings) as text.
fn id_array(snapshot: &Snapshot, ids: &[String]) -> ArrayRef {
    if snapshot.integer_ids() && snapshot.manifest().id_type != "uint64" {
        Arc::new(
            ids.iter()
                .map(|s| s.parse::<i64>().ok())
                .collect::<Int64Array>(),
        )
    } else {
        Arc::new(StringArray::from_iter_values(ids))
    }
}

fn parquet_bytes(batch: RecordBatch) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), None)?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(out)
}
