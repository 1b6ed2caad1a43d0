//! Cohort: customer-group definitions → DataFusion filter expressions → roaring bitmaps →
//! verified snapshots with constant-time membership lookups.
//!
//! The whole nightly job: a customers table, a folder of group definitions, a place to
//! publish; then a service's lookup in the published snapshot.
//!
//! ```
//! # use std::sync::Arc;
//! # use datafusion::arrow::array::{Int64Array, StringArray};
//! # use datafusion::arrow::record_batch::RecordBatch;
//! use cohort::pipeline::RunOptions;
//! use cohort::{Pipeline, Snapshot};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let project = dir.path();
//! # let batch = RecordBatch::try_from_iter([
//! #     ("customer_id", Arc::new(Int64Array::from(vec![1, 2, 3])) as _),
//! #     ("country", Arc::new(StringArray::from(vec!["US", "DE", "US"])) as _),
//! #     ("age", Arc::new(Int64Array::from(vec![34, 40, 17])) as _),
//! # ])?;
//! # let file = std::fs::File::create(project.join("customers.parquet"))?;
//! # let mut writer = datafusion::parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None)?;
//! # writer.write(&batch)?;
//! # writer.close()?;
//! // One group per file in the definitions folder (SPEC §2).
//! std::fs::create_dir(project.join("queries"))?;
//! std::fs::write(
//!     project.join("queries/us_adults.toml"),
//!     r#"
//!     name = "US adults"
//!     [[include]]
//!     conditions = [
//!       { attribute = "country", op = "equals", value = "US" },
//!       { attribute = "age", op = ">=", value = 18 },
//!     ]
//!     "#,
//! )?;
//! let snapshots = project.join("snapshots").display().to_string();
//!
//! // The front door takes the world as arguments: here the defaults (local files, the
//! // system clock, no progress, the local engine); see the `with_*` methods.
//! let pipeline = Pipeline::new(project.join("customers.parquet").display().to_string())
//!     .with_id_column("customer_id")
//!     .with_definitions(project.join("queries"))
//!     .with_publish(snapshots.clone());
//! let report = pipeline.run(RunOptions::default()).await?;
//! assert_eq!(report.groups[0].members, 1);
//!
//! // What a service does: open the latest run and ask.
//! let snapshot = Snapshot::open(&snapshots).await?;
//! assert!(snapshot.contains("us_adults", "1")?);
//! assert!(!snapshot.contains("us_adults", "3")?);
//! # Ok(())
//! # }
//! ```
//!
//! The modules follow the pipeline: [`definition`] → compile → evaluate → bitmap →
//! [`snapshot`] (the `cohort-snapshot` crate, with [`ids`] on its ground floor).
//! [`Pipeline`] is the front door: it takes the world (object stores, clock, progress,
//! engine) as arguments and runs the stages in order. The HTTP service is the
//! `cohort-serve` crate and the command line the `cohort-cli` crate, both over this one.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![deny(unsafe_code)]

mod bitmap;
mod compile;
pub mod definition;
mod error;
mod evaluate;
#[doc(hidden)]
pub mod fuzzing;
pub mod pipeline;
pub mod progress;

pub use cohort_snapshot::{self as snapshot, ids, Snapshot, Stores};
pub use error::{Error, Result};
pub use evaluate::{Engine, DEFAULT_ENGINE_TIMEOUT};
pub use pipeline::Pipeline;

/// Running a Ballista cluster's scheduler and executors in this process, with Cohort's
/// stores and functions (what `cohort scheduler` and `cohort executor` do).
#[cfg(feature = "ballista")]
pub mod cluster {
    pub use crate::evaluate::distributed::servers::{
        run_executor, run_scheduler, ExecutorOptions, SchedulerOptions,
    };
}

/// What the workspace's own benchmarks and tests reach below the documented API. Not part
/// of it: no stability promise, and no use outside this repository.
#[doc(hidden)]
pub mod internals {
    pub use crate::evaluate::bitmap_from_bits;
    pub use crate::evaluate::engine::DEFAULT_BATCH_SIZE;
}
