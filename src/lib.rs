//! Cohort: customer-group definitions → DataFusion filter expressions → roaring bitmaps →
//! verified snapshots with constant-time membership lookups.
//!
//! The modules follow the pipeline: [`definition`] → [`compile`] → [`evaluate`] →
//! [`bitmap`] → [`snapshot`] → [`serve`]; [`pipeline`] runs the stages in order, [`cli`] is the
//! command line.
#![warn(missing_debug_implementations)]

pub mod bitmap;
pub mod cli;
pub mod compile;
pub mod config;
pub mod definition;
mod error;
pub mod evaluate;
#[doc(hidden)]
pub mod fuzzing;
pub mod gen;
pub mod ids;
pub mod pipeline;
pub mod serve;
pub mod snapshot;
pub mod storage;

pub use error::{Error, Result};
pub use snapshot::Snapshot;
