//! Low-cardinality string columns read as Arrow dictionaries, straight from the Parquet
//! dictionary pages, so the scan evaluates a condition on one once per distinct value of
//! a row group instead of once per row (see `scan.rs`).
//!
//! DataFusion 55's listing table reads strings as `Utf8View` and would *cast* to a
//! dictionary (hashing every value) if the table asked for one. The Parquet reader itself
//! returns the file's own dictionary when given a file schema that asks for it
//! (`ArrowReaderOptions::with_schema`), which DataFusion passes on from
//! `PartitionedFile::arrow_schema`. So the table here is DataFusion's listing table, with a
//! schema naming those columns `Dictionary(Int32, Utf8)`, whose scans get each file's
//! schema set that way.
//!
//! A column is read as a dictionary only where that is free: a top-level string column,
//! not the id column, whose every column chunk in every file is dictionary-encoded in
//! all its data pages (from the footers). Anything else keeps DataFusion's default.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::file_format::options::ReadOptions;
use datafusion::datasource::listing::{ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::parquet::basic::Encoding;
use datafusion::parquet::file::metadata::ColumnChunkMetaData;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{DataFrame, SessionContext};
use object_store::path::Path;

use super::files::{TableFile, TableFiles};
use crate::Result;

/// The type a dictionary-read column has in the table and in every file schema.
fn dictionary_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// The customers table of `table` (whose default reading is `customers`) with its
/// dictionary-encoded string columns read as dictionaries; `None` when no column is.
pub(crate) async fn frame(
    session: &SessionContext,
    table: &TableFiles,
    customers: &DataFrame,
    id_column: &str,
) -> Result<Option<DataFrame>> {
    let files = &table.files;
    let table_schema = table.file_schema(customers.schema().as_arrow());
    let chosen: Vec<String> = table_schema
        .fields()
        .iter()
        .filter(|f| f.name() != id_column && is_string(f.data_type()))
        .filter(|f| files.iter().all(|file| dictionary_encoded(file, f.name())))
        .map(|f| f.name().clone())
        .collect();
    if chosen.is_empty() {
        return Ok(None);
    }
    tracing::debug!(columns = ?chosen, "reading dictionary-encoded columns as dictionaries");
    let file_schemas = files
        .iter()
        .map(|file| {
            (
                file.object.location.clone(),
                with_dictionaries(&file.schema, &chosen),
            )
        })
        .collect();
    let table_url = ListingTableUrl::parse(&table.url)?;
    let options = table
        .read_options()
        .to_listing_options(&session.copied_config(), session.copied_table_options());
    let config = ListingTableConfig::new(table_url)
        .with_listing_options(options)
        .with_schema(with_dictionaries(&table_schema, &chosen));
    let table = DictionaryTable {
        inner: ListingTable::try_new(config)?,
        file_schemas,
    };
    Ok(Some(session.read_table(Arc::new(table))?))
}

fn is_string(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// Whether `column` is a top-level string column of `file` whose every chunk has only
/// dictionary-encoded data pages.
fn dictionary_encoded(file: &TableFile, column: &str) -> bool {
    let Ok(field) = file.schema.field_with_name(column) else {
        return false;
    };
    if !is_string(field.data_type()) {
        return false;
    }
    let descriptor = file.metadata.file_metadata().schema_descr();
    let Some(leaf) = (0..descriptor.num_columns()).find(|&i| {
        let path = descriptor.column(i).path().parts().to_vec();
        path.len() == 1 && path[0] == column
    }) else {
        return false;
    };
    file.metadata
        .row_groups()
        .iter()
        .all(|group| all_dictionary_pages(group.column(leaf)))
}

/// parquet's own recipe (`ColumnChunkMetaData::page_encoding_stats_mask`), for both forms
/// of the statistics.
fn all_dictionary_pages(chunk: &ColumnChunkMetaData) -> bool {
    let dictionary =
        |e: Encoding| matches!(e, Encoding::PLAIN_DICTIONARY | Encoding::RLE_DICTIONARY);
    chunk.dictionary_page_offset().is_some()
        && match (
            chunk.page_encoding_stats_mask(),
            chunk.page_encoding_stats(),
        ) {
            (Some(mask), _) => {
                mask.is_only(Encoding::PLAIN_DICTIONARY) || mask.is_only(Encoding::RLE_DICTIONARY)
            }
            (None, Some(stats)) => stats
                .iter()
                .filter(|s| {
                    matches!(
                        s.page_type,
                        datafusion::parquet::basic::PageType::DATA_PAGE
                            | datafusion::parquet::basic::PageType::DATA_PAGE_V2
                    )
                })
                .all(|s| dictionary(s.encoding)),
            (None, None) => false,
        }
}

/// `schema` with the `chosen` columns as dictionaries (same names, nullability, metadata).
fn with_dictionaries(schema: &SchemaRef, chosen: &[String]) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if chosen.iter().any(|c| c == f.name()) {
                f.as_ref().clone().with_data_type(dictionary_type())
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// DataFusion's listing table whose scans read every file with its dictionary schema.
#[derive(Debug)]
struct DictionaryTable {
    inner: ListingTable,
    file_schemas: HashMap<Path, SchemaRef>,
}

#[async_trait]
impl TableProvider for DictionaryTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let plan = self.inner.scan(state, projection, filters, limit).await?;
        plan.transform_up(|node| {
            let Some(exec) = node.downcast_ref::<DataSourceExec>() else {
                return Ok(Transformed::no(node));
            };
            let Some(config) = exec.data_source().downcast_ref::<FileScanConfig>() else {
                return Ok(Transformed::no(node));
            };
            let mut config = config.clone();
            config.file_groups = config
                .file_groups
                .iter()
                .map(|group| {
                    let files = group
                        .iter()
                        .map(
                            |file| match self.file_schemas.get(&file.object_meta.location) {
                                Some(schema) => file.clone().with_arrow_schema(schema.clone()),
                                None => file.clone(),
                            },
                        )
                        .collect();
                    let mut regrouped = FileGroup::new(files);
                    if let Some(statistics) = group.file_statistics(None) {
                        regrouped = regrouped.with_statistics(Arc::new(statistics.clone()));
                    }
                    regrouped
                })
                .collect();
            Ok(Transformed::yes(
                DataSourceExec::from_data_source(config) as Arc<dyn ExecutionPlan>
            ))
        })
        .map(|t| t.data)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }
}
