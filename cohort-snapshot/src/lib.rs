//! Cohort's published snapshots without a query engine: the format (manifest, portable
//! roaring bitmaps, id dictionary and its perfect hash), the atomic writer, the verified
//! reader with O(1) membership lookups, and the run catalog (`runs`, `diff`, `gc`).
//!
//! A service that only answers "is customer X in group G?" depends on this crate alone:
//!
//! ```no_run
//! # async fn demo() -> cohort_snapshot::Result<()> {
//! let snapshot = cohort_snapshot::Snapshot::open("snapshots").await?;
//! if snapshot.contains("adults", "42")? {
//!     println!("customer 42 is an adult");
//! }
//! # Ok(()) }
//! ```
//!
//! Stores are injected: [`Snapshot::open_in`] takes any `Arc<dyn ObjectStore>` and a path,
//! [`Snapshot::open_at`] a [`Location`] handed out by [`Stores`] (one store per bucket,
//! reused); [`Snapshot::open`] is the one façade that turns a URL into a store.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![deny(unsafe_code)]

/// A [`Malformed`] from a format string.
macro_rules! malformed {
    ($($arg:tt)*) => {
        $crate::Malformed(format!($($arg)*))
    };
}

pub mod catalog;
mod error;
pub mod export;
pub mod ids;
#[doc(hidden)]
pub mod index;
#[doc(hidden)]
pub mod layout;
pub mod location;
pub mod manifest;
#[doc(hidden)]
pub mod memory;
mod portable;
pub mod reader;
#[doc(hidden)]
pub mod transpose;
#[doc(hidden)]
pub mod writer;

pub use error::{Error, Malformed, Result};
pub use location::{Location, Stores};
pub use manifest::Manifest;
pub use reader::Snapshot;
pub use writer::Promote;
