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

    /// Reading or writing a local file failed.
    #[error("cannot access '{path}': {source}")]
    Io {
        /// The path that could not be read or written.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },

    /// An object store (local disk, S3, GCS, Azure) request failed.
    #[error("storage error at '{url}': {hint}{source}")]
    Storage {
        /// The URL being accessed.
        url: String,
        /// What to do about it, when the cause is known (ends with ": ").
        hint: String,
        /// The underlying error.
        source: object_store::Error,
    },

    /// The query engine failed (bad Parquet, type mismatch at run time, ...).
    #[error("query engine: {0}")]
    Engine(#[from] datafusion::error::DataFusionError),

    /// The data violates a contract: duplicate customer ids, unsupported id column, ...
    #[error("{0}")]
    Data(String),

    /// A published snapshot is missing, corrupt, truncated or foreign.
    #[error("invalid snapshot at '{url}': {reason}")]
    Snapshot {
        /// Where the snapshot (or the file inside it) lives.
        url: String,
        /// What check failed.
        reason: String,
    },

    /// Something the caller asked for does not exist (unknown group in a snapshot, ...).
    #[error("{0}")]
    NotFound(String),
}

impl Error {
    /// The process exit code for this error: 2 for usage and definition errors, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Definitions(_) | Error::Usage(_) | Error::NotFound(_) => 2,
            _ => 1,
        }
    }

    pub(crate) fn io(path: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_string(),
            source,
        }
    }

    pub(crate) fn storage(url: impl fmt::Display, source: object_store::Error) -> Self {
        let url = url.to_string();
        // Without credentials in the environment the S3 client asks the instance-metadata
        // endpoint, and its refusal (a 403, or no answer) says nothing useful off EC2.
        let text = source.to_string();
        let no_credentials = url.starts_with("s3")
            && ["169.254.169.254", "latest/api/token", "meta-data/iam"]
                .iter()
                .any(|imds| text.contains(imds));
        let hint = if no_credentials {
            "no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or \
             AWS_PROFILE / a web identity token, or run where instance metadata provides them): "
                .to_string()
        } else {
            String::new()
        };
        Error::Storage { url, hint, source }
    }

    pub(crate) fn snapshot(url: impl fmt::Display, reason: impl fmt::Display) -> Self {
        Error::Snapshot {
            url: url.to_string(),
            reason: reason.to_string(),
        }
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
