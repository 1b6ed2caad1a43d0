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

    /// A bad command line or configuration value.
    #[error("{0}")]
    Usage(String),

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

    /// The data violates a contract: duplicate customer ids, unsupported id column, ...
    #[error("{0}")]
    Data(String),

    /// The distributed engine (a Ballista cluster) failed or did not answer in time.
    #[error("cluster {url}: {message}")]
    Cluster {
        /// The scheduler's URL.
        url: String,
        /// What went wrong.
        message: String,
    },

    /// Something the caller asked for does not exist (unknown group in a snapshot, ...).
    #[error("{0}")]
    NotFound(String),
}

impl Error {
    /// The process exit code for this error: 2 for usage and definition errors, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Definitions(_) | Error::Config { .. } | Error::Usage(_) | Error::NotFound(_) => {
                2
            }
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
