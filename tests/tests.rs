//! The one integration test binary: the spec's semantics, the reference evaluator and the
//! differential proptest, and the real `cohort` binary on temp dirs.

mod it;
