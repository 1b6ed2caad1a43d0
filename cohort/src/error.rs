//! The library's one error type, and how each variant maps to a process exit code.

use std::fmt;

use crate::definition::Problem;

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in Cohort. Variants carry the offending input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// One or more definition problems (validation errors); all of them, not just the first.
    #[error("{}", Problems(.0))]
    Definitions(Vec<Problem>),

    /// A setting (a flag, an environment variable, a `cohort.toml` key) whose value
    /// cannot be used.
    #[error("invalid {setting} '{value}': {reason}")]
    Setting {
        /// Where the value came from: `--engine`, `COHORT_AS_OF`, `as_of in cohort.toml`.
        setting: String,
        /// The value as given.
        value: String,
        /// Why, and what would have been accepted: `expected HOST:PORT`.
        reason: String,
    },

    /// Something a command needs was not given, or is not where it was said to be.
    #[error("{what}: {help}")]
    Missing {
        /// What is missing, quoting where it was looked for.
        what: String,
        /// What to do about it.
        help: String,
    },

    /// A request that cannot be carried out as asked (arguments that do not go together).
    #[error("{0}")]
    Request(&'static str),

    /// `as_of` (or a live request's) outside the range of nanosecond timestamps.
    #[error("invalid as_of: {0}")]
    AsOf(#[source] crate::definition::OutOfRange),

    /// The id column is not in the customers table.
    #[error("id column '{column}' is not in the customers table{hint}")]
    NoIdColumn {
        /// The id column.
        column: String,
        /// "; did you mean …" or nothing.
        hint: String,
    },

    /// A column a flag names (`--by`) is not in the customers table.
    #[error("unknown {flag} column '{column}'{hint}")]
    UnknownColumn {
        /// The flag.
        flag: &'static str,
        /// The column.
        column: String,
        /// "; did you mean …" or nothing.
        hint: String,
    },

    /// An ad-hoc SQL predicate (`size --where`) that does not compile.
    #[error("invalid --where: {message}{hint}")]
    Where {
        /// Why.
        message: String,
        /// "; did you mean …" or nothing.
        hint: String,
    },

    /// The id column has a type ids cannot have.
    #[error("id column '{column}' has type {data_type}; expected an integer (up to 64 bits) or a string")]
    IdType {
        /// The id column.
        column: String,
        /// Its type.
        data_type: datafusion::arrow::datatypes::DataType,
    },

    /// A table (customers or events) that cannot be read as one.
    #[error("{what} '{url}'{problem}")]
    Table {
        /// Which table: `customers table`, `event table 'orders'`.
        what: String,
        /// Its URL.
        url: String,
        /// What is wrong with it (` is not …`, `: …`).
        problem: String,
        /// Whether it is the user's to fix (exit 2: a lakehouse table, for one).
        usage: bool,
    },

    /// An event table's settings do not fit its columns (no time column, for one).
    #[error("event table '{table}' {problem}")]
    EventTable {
        /// The event table's name.
        table: String,
        /// What does not fit.
        problem: String,
    },

    /// A lakehouse table where a folder of Parquet files was expected (SPEC §1).
    #[error("'{url}' is {format} table (it holds {marker}), met while reading {what}: {help}")]
    LakehouseTable {
        /// The table's folder.
        url: String,
        /// `a Delta Lake`, `an Apache Iceberg`.
        format: &'static str,
        /// What gave it away: `_delta_log/`.
        marker: &'static str,
        /// The table being read when it was met.
        what: String,
        /// What to do.
        help: &'static str,
    },

    /// A file of a table could not be read.
    #[error("cannot read {what} '{url}': {source}")]
    File {
        /// `Parquet file`, `customers table`, `event table 'orders' at`.
        what: String,
        /// The file's (or table's) URL.
        url: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A static id list (`include_from` / `exclude_from`) that cannot be used.
    #[error("static id file '{url}'{problem}")]
    StaticIds {
        /// Its URL.
        url: String,
        /// What is wrong with it (` has no column …`, `: …`).
        problem: String,
        /// Whether it is the user's to fix by naming another file (exit 2).
        usage: bool,
    },

    /// More customers than positions (2³² − 1) in one table.
    #[error("more than 4,294,967,295 customers in one table{}", counted.as_ref().map(|(rows, url)| format!(" ({rows} rows in '{url}')")).unwrap_or_default())]
    TooManyCustomers {
        /// The rows counted and the table's URL, when known up front.
        counted: Option<(u64, String)>,
    },

    /// A group that no definition, snapshot or pair of runs has.
    #[error("unknown group '{group}'{hint}")]
    UnknownGroup {
        /// The id asked for.
        group: String,
        /// "; did you mean …", " in runs 'a' and 'b'" or nothing.
        hint: String,
    },

    /// A run the publish location does not have.
    #[error("unknown run '{run}' under '{publish}': `cohort runs` lists the published runs")]
    UnknownRun {
        /// The run id asked for.
        run: String,
        /// The publish location.
        publish: String,
    },

    /// A background task failed to finish (it panicked or was cancelled).
    #[error("{task} failed: {source}")]
    Task {
        /// What the task was doing.
        task: &'static str,
        /// Why it did not finish.
        #[source]
        source: tokio::task::JoinError,
    },

    /// A server (`cohort scheduler`, `cohort executor`) could not start or stopped.
    #[error("{role} on {addr}: {message}")]
    Server {
        /// `scheduler` or `executor`.
        role: &'static str,
        /// Its address.
        addr: String,
        /// What went wrong.
        message: String,
    },

    /// An internal invariant did not hold: a bug in Cohort, reported instead of a panic.
    #[error("internal error: {0}")]
    Internal(String),

    /// Problems in the project config file (`cohort.toml`), all of them, each located like
    /// a definition problem (its `group` is empty).
    #[error("invalid config '{file}':\n  {}", .problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n  "))]
    Config {
        /// The config file.
        file: String,
        /// What is wrong in it.
        problems: Vec<Problem>,
    },

    /// Reading or writing a local file failed.
    #[error("cannot access '{path}': {source}")]
    Io {
        /// The path that could not be read or written.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },

    /// Reading, writing or looking up a snapshot, or an object store request, failed.
    #[error(transparent)]
    Snapshot(#[from] cohort_snapshot::Error),

    /// The query engine failed (bad Parquet, type mismatch at run time, ...).
    #[error("query engine: {0}")]
    Engine(#[from] datafusion::error::DataFusionError),

    /// The distributed engine (a Ballista cluster) failed or did not answer in time.
    #[error("cluster {url}: {message}")]
    Cluster {
        /// The scheduler's URL.
        url: String,
        /// What went wrong.
        message: String,
    },
}

impl Error {
    /// The process exit code for this error: 2 for usage and definition errors, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Definitions(_)
            | Error::Config { .. }
            | Error::Setting { .. }
            | Error::Missing { .. }
            | Error::Request(_)
            | Error::AsOf(_)
            | Error::NoIdColumn { .. }
            | Error::UnknownColumn { .. }
            | Error::Where { .. }
            | Error::EventTable { .. }
            | Error::LakehouseTable { .. }
            | Error::UnknownGroup { .. }
            | Error::UnknownRun { .. } => 2,
            Error::Table { usage: true, .. } | Error::StaticIds { usage: true, .. } => 2,
            Error::Snapshot(e) if e.is_usage() => 2,
            _ => 1,
        }
    }

    /// A local file at `path` could not be read or written.
    pub fn io(path: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_string(),
            source,
        }
    }

    pub(crate) fn storage(url: impl fmt::Display, source: object_store::Error) -> Self {
        Error::Snapshot(cohort_snapshot::Error::storage(url, source))
    }
}

impl From<arrow_error::ArrowError> for Error {
    fn from(e: arrow_error::ArrowError) -> Self {
        Error::Engine(e.into())
    }
}

impl From<datafusion::parquet::errors::ParquetError> for Error {
    fn from(e: datafusion::parquet::errors::ParquetError) -> Self {
        Error::Engine(e.into())
    }
}

use datafusion::arrow::error as arrow_error;

struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errors = self.0.iter().filter(|p| p.is_error()).count();
        for (i, p) in self.0.iter().filter(|p| p.is_error()).enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        if errors > 1 {
            write!(f, "\n{errors} errors in definitions")?;
        }
        Ok(())
    }
}
