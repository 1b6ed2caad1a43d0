//! Progress: the library says which phase a job is in and how far along it is; the caller
//! shows it (the command line's progress bar, a service's log) or ignores it.

use std::fmt;

/// The phases of a job, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Aggregating event tables (purchase history) per customer.
    ReadingEvents,
    /// The single scan of the customers table; counted in rows.
    ScanningCustomers,
    /// Group algebra, static overrides, id numbering.
    BuildingBitmaps,
    /// Writing the run and moving `LATEST`.
    Publishing,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::ReadingEvents => "reading events",
            Phase::ScanningCustomers => "scanning customers",
            Phase::BuildingBitmaps => "building bitmaps",
            Phase::Publishing => "publishing",
        })
    }
}

impl Phase {
    /// What the phase's total counts: customer or event rows, groups.
    pub fn unit(self) -> &'static str {
        match self {
            Phase::ReadingEvents | Phase::ScanningCustomers => "rows",
            Phase::BuildingBitmaps | Phase::Publishing => "groups",
        }
    }
}

/// Receives progress. Calls come from any thread.
pub trait Progress: Send + Sync + fmt::Debug {
    /// A phase begins; `total` is its amount of work, in [`Phase::unit`]s, when known.
    /// The scan advances row by row; the other phases advance all at once when done.
    fn start(&self, phase: Phase, total: Option<u64>);
    /// `amount` more of the current phase is done.
    fn advance(&self, amount: u64);
    /// The job is over (successfully or not).
    fn finish(&self) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: Phase, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
}
