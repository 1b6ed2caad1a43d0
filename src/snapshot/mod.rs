//! Published snapshots (format 1): manifest, atomic writer, verified reader with lookups.

pub mod catalog;
pub mod dictionary;
pub mod index;
pub mod manifest;
pub mod memory;
pub mod perfect_hash;
pub mod portable;
pub mod reader;
pub mod writer;

pub use manifest::Manifest;
pub use reader::Snapshot;
