//! The scan on an Apache Ballista 55 cluster (`--engine df://HOST:PORT`).
//!
//! Executors compute every condition and turn it into partial roaring bitmaps over scan
//! positions they can compute themselves (see [`positions`]), grouped by the bitmap's
//! container key (`position >> 16`) and file, so no message carries more than one 64 Ki
//! slice of a bitmap per condition. The client ORs the partials, checks every file's row
//! count against its footer, and reads the id column itself (the numbering of ids into
//! the snapshot stays a client step, as it is on one machine). Static lists, group
//! references and publishing run on the client after the merge.

mod bitmap_agg;
pub(crate) mod positions;
pub(crate) mod servers;

use std::sync::Arc;
use std::time::Duration;

use ballista::extension::{SessionConfigExt, SessionContextExt};
use ballista_core::execution_plans::DistributedQueryExec;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::serde::protobuf::CancelJobParams;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt64Array};
use datafusion::arrow::compute::{sort_to_indices, take};
use datafusion::arrow::datatypes::{DataType, Int64Type, UInt32Type, UInt64Type};
use datafusion::execution::SessionStateBuilder;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::{cast, lit};
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use datafusion_proto::protobuf::LogicalPlanNode;
use roaring::RoaringBitmap;

use super::{ScanOutput, ScanRequest};
use crate::compile::col_exact;
use crate::{Error, Result};
use positions::{FileRows, Positioned, FILE, POSITION};

/// The gRPC message limit Cohort sets on client, scheduler and executors (Ballista's
/// default is 16 MiB). One result row carries at most one 8 KiB bitmap container per
/// condition, so 64 MiB leaves room for ~7,000 conditions.
pub(crate) const GRPC_MAX_MESSAGE: usize = 64 << 20;

/// Bitmaps travel in slices of this many positions (one roaring container).
const SLICE_BITS: u64 = 16;

/// A Ballista scheduler to run scans on.
#[derive(Debug, Clone)]
pub struct BallistaEngine {
    url: url::Url,
    timeout: Duration,
    config: SessionConfig,
}

impl BallistaEngine {
    pub(crate) fn new(url: url::Url, timeout: Duration, config: SessionConfig) -> BallistaEngine {
        BallistaEngine {
            url,
            timeout,
            config,
        }
    }

    /// The session settings of the client's own (local) work.
    pub(crate) fn client_config(&self) -> SessionConfig {
        self.config.clone()
    }

    /// `df://host:port`.
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// The longest a job may take before it is cancelled and the run fails.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn grpc_url(&self) -> String {
        format!(
            "http://{}:{}",
            self.url.host_str().unwrap_or("localhost"),
            self.url.port().unwrap_or(50050)
        )
    }

    fn failed(&self, message: impl std::fmt::Display) -> Error {
        Error::Cluster {
            url: self.url.to_string(),
            message: message.to_string(),
        }
    }

    /// Fails early, naming the URL, when nothing answers there.
    async fn reachable(&self) -> Result<()> {
        let wait = self.timeout.min(Duration::from_secs(10));
        match tokio::time::timeout(wait, SchedulerGrpcClient::connect(self.grpc_url())).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.failed(format!("cannot reach the scheduler: {e}"))),
            Err(_) => Err(self.failed(format!(
                "the scheduler did not answer within {}",
                humantime::format_duration(wait)
            ))),
        }
    }

    /// A client session connected to the scheduler, with the local session's stores.
    async fn remote(&self, local: &SessionContext) -> Result<SessionContext> {
        self.reachable().await?;
        // Restricted Ballista settings first: the setters below would skip them.
        let mut config = self
            .config
            .clone()
            .upgrade_for_ballista()
            .with_ballista_job_name("cohort")
            .with_ballista_grpc_client_max_message_size(GRPC_MAX_MESSAGE)
            // The job id is known as soon as the job is submitted (to cancel it on timeout).
            .set_bool("ballista.client.pull", true)
            // No broadcast (CollectLeft) joins: Ballista 55 runs each probe partition as
            // its own task, and a LEFT join whose customers side was broadcast emitted
            // its unmatched rows once per task (every customer twice with two files;
            // caught by the row-count check, regression test
            // `cluster_publishes_the_local_engines_bytes_for_int_ids`).
            // Ballista 55's adaptive planner (on by default) made every customers file
            // count twice in the partial aggregates (2,668 rows read of a 1,334-row
            // file; caught by the row-count check). The static planner is exact.
            .with_ballista_adaptive_query_planner(false)
            .with_ballista_broadcast_join_threshold_bytes(0)
            .with_ballista_broadcast_join_threshold_rows(0)
            .set_u64(
                "datafusion.optimizer.hash_join_single_partition_threshold",
                0,
            )
            .set_u64(
                "datafusion.optimizer.hash_join_single_partition_threshold_rows",
                0,
            );
        let options = config.options_mut();
        // One partition per file: `row_number()` follows the file's row order.
        options.optimizer.repartition_file_scans = false;
        options.execution.skip_physical_aggregate_schema_check = true;
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(config)
            .with_runtime_env(local.runtime_env())
            .build();
        let remote = SessionContext::remote_with_state(self.url.as_str(), state)
            .await
            .map_err(|e| self.failed(e))?;
        // After connecting: the client rebuilds its function lists when it connects.
        remote.register_udaf(bitmap_agg::udaf());
        Ok(remote)
    }

    /// Runs `frame`'s plan on the cluster within the timeout; on timeout the job is
    /// cancelled. Returns the batches and the job id.
    async fn collect(
        &self,
        remote: &SessionContext,
        frame: DataFrame,
    ) -> Result<(Vec<RecordBatch>, Option<String>)> {
        let (_, plan) = frame.into_parts();
        let physical = remote
            .execute_logical_plan(plan)
            .await
            .map_err(|e| self.failed(e))?
            .create_physical_plan()
            .await
            .map_err(|e| self.failed(e))?;
        let job = |plan: &Arc<dyn datafusion::physical_plan::ExecutionPlan>| {
            plan.as_ref()
                .downcast_ref::<DistributedQueryExec<LogicalPlanNode>>()
                .and_then(|d| d.job_id())
                .map(|id| id.to_string())
        };
        let run = datafusion::physical_plan::collect(physical.clone(), remote.task_ctx());
        match tokio::time::timeout(self.timeout, run).await {
            Ok(Ok(batches)) => Ok((batches, job(&physical))),
            Ok(Err(e)) => Err(self.failed(match job(&physical) {
                Some(id) => format!("job {id} failed: {e}"),
                None => format!("the job failed: {e}"),
            })),
            Err(_) => {
                let id = job(&physical);
                if let Some(id) = &id {
                    self.cancel(id).await;
                }
                Err(self.failed(format!(
                    "job {} did not finish within {} (--engine-timeout); are executors \
                     registered with the scheduler?",
                    id.as_deref().unwrap_or("(not yet accepted)"),
                    humantime::format_duration(self.timeout)
                )))
            }
        }
    }

    /// Cancels `job` on the scheduler; dropping the stream does not.
    async fn cancel(&self, job: &str) {
        let request = async {
            let mut client = SchedulerGrpcClient::connect(self.grpc_url()).await?;
            client
                .cancel_job(CancelJobParams {
                    job_id: job.to_string(),
                })
                .await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        };
        match tokio::time::timeout(Duration::from_secs(10), request).await {
            Ok(Ok(())) => tracing::warn!(job, "cancelled the job on the cluster"),
            Ok(Err(e)) => tracing::warn!(job, "could not cancel the job: {e}"),
            Err(_) => tracing::warn!(job, "could not cancel the job: no answer"),
        }
    }

    /// The scan: conditions on the cluster, ids (and `extra` columns) read on the client
    /// at the same time.
    pub(crate) async fn scan(
        &self,
        source: &Positioned,
        request: ScanRequest<'_>,
    ) -> Result<ScanOutput> {
        let ScanRequest {
            session: local,
            frame,
            id_column,
            conditions,
            extra,
            progress,
            ..
        } = request;
        let id_type = super::id_type(&source.frame, id_column)?;
        let remote = self.remote(local).await?;

        let mut projection = vec![
            col_exact(FILE),
            col_exact(POSITION),
            datafusion::logical_expr::bitwise_shift_right(col_exact(POSITION), lit(SLICE_BITS))
                .alias("__cohort_slice"),
        ];
        projection.extend(
            conditions
                .iter()
                .enumerate()
                .map(|(i, c)| c.clone().alias(format!("__c{i}"))),
        );
        let bitmap = Arc::new(bitmap_agg::udaf());
        let mut aggregates = vec![count(lit(1i64)).alias("__cohort_rows")];
        aggregates.extend((0..conditions.len()).map(|i| {
            bitmap
                .call(vec![col_exact(POSITION), col_exact(&format!("__c{i}"))])
                .alias(format!("__b{i}"))
        }));
        let partials = frame.select(projection)?.aggregate(
            vec![col_exact(FILE), col_exact("__cohort_slice")],
            aggregates,
        )?;

        let mut ids_projection = vec![
            col_exact(POSITION),
            cast(col_exact(id_column), id_type.clone()).alias("__id"),
        ];
        ids_projection.extend(
            extra
                .iter()
                .enumerate()
                .map(|(i, e)| cast(e.clone(), DataType::Utf8).alias(format!("__x{i}"))),
        );
        let ids = source.frame.clone().select(ids_projection)?;
        let (remote_result, id_batches) =
            tokio::join!(self.collect(&remote, partials), ids.collect());
        let (batches, job) = remote_result?;
        let id_batches = id_batches?;

        // Partial bitmaps → one bitmap per condition; rows per file against the footers.
        let mut masks = vec![RoaringBitmap::new(); conditions.len()];
        let mut seen = vec![0u64; source.files.len()];
        for batch in &batches {
            let files = batch.column(0).as_primitive::<UInt32Type>();
            let rows = batch.column(2).as_primitive::<Int64Type>();
            for r in 0..batch.num_rows() {
                if let Some(n) = seen.get_mut(files.value(r) as usize) {
                    *n += rows.value(r) as u64;
                }
            }
            for (i, mask) in masks.iter_mut().enumerate() {
                let partial = batch.column(3 + i).as_binary::<i32>();
                for bytes in partial.iter().flatten() {
                    *mask |= RoaringBitmap::deserialize_from(bytes).map_err(|e| {
                        self.failed(format!("a partial bitmap does not decode: {e}"))
                    })?;
                }
            }
        }
        if let Some(message) = rows_mismatch(&source.files, &seen) {
            return Err(self.failed(message));
        }

        // Ids (and extras) in position order, read on the client.
        let rows = source.rows();
        // The scan's own concatenation (empty input gives an empty array of the type).
        let column = |i: usize, data_type: &DataType| -> Result<ArrayRef> {
            let parts: Vec<ArrayRef> = id_batches.iter().map(|b| b.column(i).clone()).collect();
            super::concat_or_empty(&parts, data_type)
        };
        let positions = column(0, &DataType::UInt64)?;
        if positions.len() as u64 != rows {
            return Err(self.failed(format!(
                "read {} ids on the client, but the footers say {rows} rows",
                positions.len()
            )));
        }
        let order = sort_to_indices(&positions, None, None)?;
        let sorted = take(&positions, &order, None)?;
        let expected = UInt64Array::from_iter_values(0..rows);
        if sorted.as_primitive::<UInt64Type>() != &expected {
            return Err(self.failed("client-side positions are not 0..rows"));
        }
        let ids = take(&column(1, &id_type)?, &order, None)?;
        let extra = (0..extra.len())
            .map(|i| Ok(take(&column(2 + i, &DataType::Utf8)?, &order, None)?))
            .collect::<Result<Vec<_>>>()?;
        let mut universe = RoaringBitmap::new();
        match ids.logical_nulls() {
            Some(valid) => universe |= super::bitmap_from_bits(0, valid.inner()),
            None => {
                universe.insert_range(0..rows as u32);
            }
        }
        let null_ids = ids.null_count() as u64;
        if null_ids > 0 {
            for mask in &mut masks {
                *mask &= &universe;
            }
        }
        progress.advance(rows);
        Ok(ScanOutput {
            null_ids,
            universe,
            masks,
            combined: Vec::new(),
            ids,
            extra,
            jobs: job.into_iter().collect(),
        })
    }
}

/// The first file of which the cluster read other than its footer's row count (a file
/// changed or replaced under the run, or rows lost on the way), as the run's error.
fn rows_mismatch(files: &[FileRows], seen: &[u64]) -> Option<String> {
    files.iter().zip(seen).find_map(|(file, n)| {
        (*n != file.rows).then(|| {
            format!(
                "the cluster read {n} rows of '{}', whose footer says {}; nothing was \
                 published",
                file.url, file.rows
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(url: &str, rows: u64) -> FileRows {
        FileRows {
            url: url.into(),
            rows,
        }
    }

    #[test]
    fn rows_seen_must_equal_every_footers_count() {
        let files = [file("s3://b/a.parquet", 10), file("s3://b/b.parquet", 5)];
        assert_eq!(rows_mismatch(&files, &[10, 5]), None);
        let cases = [
            (
                vec![10, 4],
                "read 4 rows of 's3://b/b.parquet', whose footer says 5",
            ),
            (
                vec![11, 5],
                "read 11 rows of 's3://b/a.parquet', whose footer says 10",
            ),
            (vec![0, 5], "read 0 rows of 's3://b/a.parquet'"),
        ];
        for (seen, wanted) in cases {
            let message = rows_mismatch(&files, &seen).expect("a mismatch");
            assert!(message.contains(wanted), "{message}");
            assert!(message.contains("nothing was published"), "{message}");
        }
    }
}
