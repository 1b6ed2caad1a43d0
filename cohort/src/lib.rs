//! Cohort: customer-group definitions → DataFusion filter expressions → roaring bitmaps →
//! verified snapshots with constant-time membership lookups.
//!
//! The modules follow the pipeline: [`definition`] → [`compile`] → [`evaluate`] →
//! [`bitmap`] → [`snapshot`] (the `cohort-snapshot` crate, with [`ids`] on its ground
//! floor). [`Pipeline`] is the front door: it takes the world (object stores, clock,
//! progress, engine) as arguments and runs the stages in order. The HTTP service is the
//! `cohort-serve` crate and the command line the `cohort-cli` crate, both over this one.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![deny(unsafe_code)]

pub mod bitmap;
pub mod compile;
pub mod definition;
mod error;
pub mod evaluate;
#[doc(hidden)]
pub mod fuzzing;
pub mod pipeline;
pub mod progress;

pub use cohort_snapshot::{self as snapshot, ids, Snapshot, Stores};
pub use error::{Error, Result};
pub use evaluate::Engine;
pub use pipeline::Pipeline;
