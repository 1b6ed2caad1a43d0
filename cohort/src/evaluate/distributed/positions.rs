//! Scan positions every executor computes by itself: the rows of the files before a file
//! (from the Parquet footers, read once on the client) plus the row's index in its file.
//!
//! Each file is its own table, read as one partition (`repartition_file_scans` off) so
//! `row_number() OVER ()` follows the file's row order; the files are then unioned. The
//! client checks that every file delivered exactly its footer's row count.

use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{lit, Expr};
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionContext};

use crate::compile::col_exact;
use crate::evaluate::files::TableFiles;
use crate::{Error, Result};

/// The position column: `UInt64`, dense from 0 over the files in path order.
pub(crate) const POSITION: &str = "__cohort_position";
/// The file index column (`UInt32`, the file's place in path order).
pub(crate) const FILE: &str = "__cohort_file";

/// One file of the customers table and its footer's row count.
#[derive(Debug, Clone)]
pub(crate) struct FileRows {
    pub(crate) url: String,
    pub(crate) rows: u64,
}

/// The customers table with positions, and the files they come from.
#[derive(Debug, Clone)]
pub(crate) struct Positioned {
    pub(crate) frame: DataFrame,
    pub(crate) files: Vec<FileRows>,
}

impl Positioned {
    /// Rows in all files, from the footers.
    pub(crate) fn rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }
}

/// The positioned union of the files of `table` (listed and footers read) with
/// `customers`' (merged) schema; partition columns are each file's constants.
pub(crate) async fn positioned(
    session: &SessionContext,
    table: &TableFiles,
    customers: &DataFrame,
) -> Result<Positioned> {
    let url = &table.url;
    let files: Vec<FileRows> = table
        .files
        .iter()
        .map(|file| FileRows {
            rows: file.rows(),
            url: file.url.clone(),
        })
        .collect();
    let total: u64 = files.iter().map(|f| f.rows).sum();
    if total > u32::MAX as u64 {
        return Err(Error::TooManyCustomers {
            counted: Some((total, url.to_string())),
        });
    }

    let schema = customers.schema().as_arrow().clone();
    let file_schema = table.file_schema(&schema);
    let mut frame: Option<DataFrame> = None;
    let mut before = 0u64;
    for (index, (file, listed)) in files.iter().zip(&table.files).enumerate() {
        let options = ParquetReadOptions::default().schema(&file_schema);
        let rows = session
            .read_parquet(file.url.as_str(), options)
            .await?
            .window(vec![row_number().alias("__cohort_row")])?;
        let mut projection: Vec<Expr> = schema
            .fields()
            .iter()
            .map(
                |f| match table.partition_columns.iter().position(|c| c == f.name()) {
                    Some(at) => lit(listed.partition_values[at].clone()).alias(f.name()),
                    None => col_exact(f.name()),
                },
            )
            .collect();
        projection.push(((col_exact("__cohort_row") - lit(1u64)) + lit(before)).alias(POSITION));
        projection.push(lit(index as u32).alias(FILE));
        let part = rows.select(projection)?;
        frame = Some(match frame {
            None => part,
            Some(all) => all.union(part)?,
        });
        before += file.rows;
    }
    let frame = frame.ok_or_else(|| Error::Table {
        what: "the customers table".into(),
        url: url.to_string(),
        problem: " has no files".into(),
        usage: false,
    })?;
    Ok(Positioned { frame, files })
}
