//! `cohort export`: a group's member ids from the published snapshot, for activation.

use std::sync::Arc;

use clap::Args;
use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;

use crate::config::Settings;
use crate::snapshot::Snapshot;
use crate::{storage, Error, Result};

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Group id
    group: String,
    /// Output file: .csv, .jsonl (JSON lines) or .parquet (path or object-store URL)
    #[arg(long, value_name = "URL")]
    out: String,
}

pub async fn run(settings: &Settings, args: ExportArgs) -> Result<()> {
    let snapshot = Snapshot::open(&settings.publish).await?;
    let bitmap = snapshot.bitmap(&args.group).ok_or_else(|| {
        Error::NotFound(format!(
            "unknown group '{}' in run '{}'",
            args.group,
            snapshot.run_id()
        ))
    })?;
    let ids: Vec<String> = bitmap.iter().map(|bit| snapshot.external_id(bit)).collect();
    let column = snapshot.manifest().id_column.clone();
    let lower = args.out.to_lowercase();
    let bytes = if lower.ends_with(".csv") {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let csv_err = |e: csv::Error| Error::Data(format!("writing CSV: {e}"));
        writer.write_record([&column]).map_err(csv_err)?;
        for id in &ids {
            writer.write_record([id]).map_err(csv_err)?;
        }
        writer
            .into_inner()
            .map_err(|e| Error::Data(format!("writing CSV: {e}")))?
    } else if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
        let mut out = Vec::new();
        for id in &ids {
            let value = match (snapshot.integer_ids(), id.parse::<i128>()) {
                (true, Ok(n)) => {
                    serde_json::json!({ column.as_str(): serde_json::Number::from_i128(n) })
                }
                _ => serde_json::json!({ column.as_str(): id }),
            };
            out.extend(serde_json::to_vec(&value).expect("serializes"));
            out.push(b'\n');
        }
        out
    } else if lower.ends_with(".parquet") {
        let array: ArrayRef = if snapshot.integer_ids() && snapshot.manifest().id_type != "uint64" {
            Arc::new(
                ids.iter()
                    .map(|s| s.parse::<i64>().ok())
                    .collect::<Int64Array>(),
            )
        } else {
            Arc::new(StringArray::from_iter_values(&ids))
        };
        let schema = Arc::new(Schema::new(vec![Field::new(
            &column,
            array.data_type().clone(),
            false,
        )]));
        let batch = RecordBatch::try_new(schema.clone(), vec![array])?;
        let mut out = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut out, schema, None)?;
        writer.write(&batch)?;
        writer.close()?;
        out
    } else {
        return Err(Error::Usage(format!(
            "cannot tell the format of '{}': use a .csv, .jsonl or .parquet name",
            args.out
        )));
    };
    storage::resolve(&args.out)?.write(bytes).await?;
    eprintln!(
        "exported {} id(s) of '{}' to {}",
        ids.len(),
        args.group,
        args.out
    );
    Ok(())
}
