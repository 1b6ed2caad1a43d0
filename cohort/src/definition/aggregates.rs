//! The aggregate registry of SPEC §3.4: for every aggregate of an event table its name,
//! whether it reads a column, what a customer without events has, and what it means.
//! Parsing, "did you mean", the dashboard (through `/v1/schema`) and
//! `schema/vocabulary.json` read this one table.

use std::fmt;

/// An aggregate of an event table (SPEC §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregate {
    /// Matching events; 0 for none.
    Count,
    /// Distinct non-null values of `column`; 0 for none.
    CountDistinct,
    /// Sum of `column`; 0 for none.
    Sum,
    /// Smallest `column` value; missing for none.
    Min,
    /// Largest `column` value; missing for none.
    Max,
    /// Mean of `column`; missing for none.
    Avg,
    /// Earliest time; missing for none.
    First,
    /// Latest time; missing for none.
    Last,
}

/// Whether an aggregate reads a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// Counts events: no column (`count`).
    Rows,
    /// Needs `column` (`sum`, `min`, ...).
    Column,
    /// Reads the time column, or `column` when one is given (`first`, `last`).
    TimeOrColumn,
}

/// One aggregate's entry in the registry.
#[derive(Debug)]
pub struct AggregateInfo {
    /// The aggregate.
    pub aggregate: Aggregate,
    /// Its spelling.
    pub name: &'static str,
    /// What it reads.
    pub reads: Reads,
    /// Whether a customer without matching events has 0 (rather than a missing value).
    pub zero_when_empty: bool,
    /// What it means, as the JSON Schema and the dashboard say it.
    pub meaning: &'static str,
}

/// Every aggregate, in the order of the spec.
pub const AGGREGATES: &[AggregateInfo] = &[
    AggregateInfo {
        aggregate: Aggregate::Count,
        name: "count",
        reads: Reads::Rows,
        zero_when_empty: true,
        meaning: "Number of matching events; 0 for a customer with none. Takes no column.",
    },
    AggregateInfo {
        aggregate: Aggregate::CountDistinct,
        name: "count_distinct",
        reads: Reads::Column,
        zero_when_empty: true,
        meaning:
            "Distinct non-null values of column among matching events; 0 for none. Needs column.",
    },
    AggregateInfo {
        aggregate: Aggregate::Sum,
        name: "sum",
        reads: Reads::Column,
        zero_when_empty: true,
        meaning: "Sum of column; 0 for a customer with no events. Needs column.",
    },
    AggregateInfo {
        aggregate: Aggregate::Min,
        name: "min",
        reads: Reads::Column,
        zero_when_empty: false,
        meaning:
            "Smallest column value; missing (null) for a customer with no events. Needs column.",
    },
    AggregateInfo {
        aggregate: Aggregate::Max,
        name: "max",
        reads: Reads::Column,
        zero_when_empty: false,
        meaning: "Largest column value; missing (null) for no events. Needs column.",
    },
    AggregateInfo {
        aggregate: Aggregate::Avg,
        name: "avg",
        reads: Reads::Column,
        zero_when_empty: false,
        meaning: "Mean of column; missing (null) for no events. Needs column.",
    },
    AggregateInfo {
        aggregate: Aggregate::First,
        name: "first",
        reads: Reads::TimeOrColumn,
        zero_when_empty: false,
        meaning: "Earliest time-column value (the first event); missing for no events.",
    },
    AggregateInfo {
        aggregate: Aggregate::Last,
        name: "last",
        reads: Reads::TimeOrColumn,
        zero_when_empty: false,
        meaning: "Latest time-column value (the most recent event); missing for no events.",
    },
];

// One entry per variant, in declaration order.
const _: () = assert!(AGGREGATES.len() == Aggregate::Last as usize + 1);

impl Aggregate {
    /// Its entry in the registry.
    pub fn info(self) -> &'static AggregateInfo {
        &AGGREGATES[self as usize]
    }

    /// Parses the spelling of SPEC §3.4, case-insensitively.
    pub fn parse(text: &str) -> Option<Aggregate> {
        let text = text.trim().to_lowercase();
        AGGREGATES
            .iter()
            .find(|a| a.name == text)
            .map(|a| a.aggregate)
    }

    /// Every spelling; used for "did you mean".
    pub fn all_spellings() -> impl Iterator<Item = &'static str> {
        AGGREGATES.iter().map(|a| a.name)
    }

    /// The spelling of SPEC §3.4.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Whether it aggregates a `column` (rather than counting events or reading times).
    pub fn needs_column(self) -> bool {
        self.info().reads == Reads::Column
    }

    /// Whether a customer without events has 0 (rather than a missing value).
    pub fn zero_when_empty(self) -> bool {
        self.info().zero_when_empty
    }
}

impl fmt::Display for Aggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_aggregate_has_its_entry_and_parses() {
        for (i, a) in AGGREGATES.iter().enumerate() {
            assert_eq!(a.aggregate as usize, i, "{} is out of order", a.name);
            assert_eq!(Aggregate::parse(&a.name.to_uppercase()), Some(a.aggregate));
        }
        assert_eq!(Aggregate::parse("total"), None);
    }
}
