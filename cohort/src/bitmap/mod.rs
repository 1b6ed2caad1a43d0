//! Bitmap stage: group algebra over scan positions (the id mapping used to publish is on
//! the ground floor, `cohort_snapshot::ids`).

pub(crate) mod algebra;
