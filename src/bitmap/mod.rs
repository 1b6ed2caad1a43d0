//! Bitmap stage: group algebra over scan positions, and the id mapping used to publish.

pub mod algebra;
pub mod ids;

pub use ids::IdMapping;
