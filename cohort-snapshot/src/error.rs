//! The snapshot layer's error type: every variant names the URL, path, group or input.

use std::fmt;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong reading, writing or looking up a published snapshot.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Nothing is published at the location yet (no `LATEST`).
    #[error("no published run at '{url}' (no LATEST file); run `cohort run` first")]
    NothingPublished {
        /// The publish location.
        url: String,
    },

    /// A lookup named a group the run does not have.
    #[error("unknown group '{group}' in run '{run_id}'")]
    UnknownGroup {
        /// The group asked for.
        group: String,
        /// The run looked in.
        run_id: String,
    },

    /// A run asked for (by id, or as the one before `LATEST`) does not exist.
    #[error("{what} under '{url}'")]
    NoSuchRun {
        /// The publish location.
        url: String,
        /// What was missing, e.g. "no run 'x'".
        what: String,
    },

    /// A URL or path that can't name a location.
    #[error("invalid URL '{url}': {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it can't be used.
        reason: String,
    },

    /// Reading or writing a local file failed.
    #[error("cannot access '{path}': {source}")]
    Io {
        /// The path that could not be read or written.
        path: String,
        /// The underlying error.
        #[source]
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
        #[source]
        source: object_store::Error,
    },

    /// A published snapshot, or a file in it, is missing, corrupt, truncated or foreign.
    #[error("invalid snapshot at '{url}': {reason}")]
    Invalid {
        /// Where the snapshot (or the file inside it) lives.
        url: String,
        /// What check failed.
        reason: String,
    },

    /// The customer ids to publish repeat.
    #[error(
        "duplicate customer ids in column '{column}': {rows} extra row(s), e.g. {}",
        quoted(.examples)
    )]
    DuplicateIds {
        /// The id column.
        column: String,
        /// Rows beyond the first of each repeated id.
        rows: u64,
        /// A few repeated ids.
        examples: Vec<String>,
    },

    /// Encoding an export failed.
    #[error("cannot export: {reason}")]
    Export {
        /// What failed.
        reason: String,
    },

    /// Encoding the id dictionary failed.
    #[error("cannot encode the id dictionary: {source}")]
    Encode {
        /// The underlying error.
        #[source]
        source: parquet::errors::ParquetError,
    },
}

fn quoted(examples: &[String]) -> String {
    examples
        .iter()
        .map(|e| format!("'{e}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Error {
    /// Whether the caller asked for something that isn't there (or gave a bad URL), rather
    /// than something failing: the CLI's exit code 2.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::NothingPublished { .. }
                | Error::UnknownGroup { .. }
                | Error::NoSuchRun { .. }
                | Error::InvalidUrl { .. }
        )
    }

    /// Whether the object (or the local file) was not there.
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Storage { source, .. } => {
                matches!(source, object_store::Error::NotFound { .. })
            }
            Error::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            Error::NothingPublished { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn io(path: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_string(),
            source,
        }
    }

    /// A storage error at `url`, with a hint where the cause is known.
    pub fn storage(url: impl fmt::Display, source: object_store::Error) -> Self {
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

    pub(crate) fn invalid(url: impl fmt::Display, reason: impl fmt::Display) -> Self {
        Error::Invalid {
            url: url.to_string(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn invalid_url(url: impl fmt::Display, reason: impl fmt::Display) -> Self {
        Error::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        }
    }
}

impl From<parquet::errors::ParquetError> for Error {
    fn from(source: parquet::errors::ParquetError) -> Self {
        Error::Encode { source }
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(source: arrow::error::ArrowError) -> Self {
        Error::Encode {
            source: source.into(),
        }
    }
}

/// A malformed byte sequence: what a format parser found wrong, before the caller adds
/// which file it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

impl From<String> for Malformed {
    fn from(reason: String) -> Self {
        Malformed(reason)
    }
}

impl From<&str> for Malformed {
    fn from(reason: &str) -> Self {
        Malformed(reason.to_string())
    }
}
