//! Project settings: `cohort.toml` (all keys optional) overridden by command-line flags.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::{Error, Result};

/// The file `cohort.toml`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Customers table URL.
    pub customers: Option<String>,
    /// Customer id column.
    pub id_column: Option<String>,
    /// Definitions folder.
    pub queries: Option<PathBuf>,
    /// Publish URL.
    pub publish: Option<String>,
    /// Evaluation time (RFC 3339).
    pub as_of: Option<String>,
    /// Event tables by name.
    #[serde(default)]
    pub events: BTreeMap<String, EventConfig>,
}

/// `[events.<name>]` in `cohort.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventConfig {
    /// Table URL.
    pub url: String,
    /// Customer id column (default: the customers' id column name).
    pub id_column: Option<String>,
    /// Time column (default: the table's only timestamp column).
    pub time_column: Option<String>,
}

/// Values given on the command line; each overrides the config file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--customers`.
    pub customers: Option<String>,
    /// `--id-column`.
    pub id_column: Option<String>,
    /// `--queries`.
    pub queries: Option<PathBuf>,
    /// `--publish`.
    pub publish: Option<String>,
    /// `--as-of`.
    pub as_of: Option<String>,
    /// `--events name=url`, repeatable.
    pub events: Vec<String>,
}

/// Resolved settings used by every command.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Customers table URL.
    pub customers: Option<String>,
    /// Customer id column.
    pub id_column: String,
    /// Definitions folder.
    pub queries: PathBuf,
    /// Publish URL.
    pub publish: String,
    /// Evaluation time.
    pub as_of: DateTime<Utc>,
    /// Event tables.
    pub events: BTreeMap<String, EventConfig>,
}

/// The config file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG: &str = "cohort.toml";

impl Settings {
    /// Reads the config file (explicit, or `cohort.toml` if present) and applies overrides.
    pub fn resolve(overrides: Overrides) -> Result<Settings> {
        let file = match &overrides.config {
            Some(path) => read_config(path)?,
            None if Path::new(DEFAULT_CONFIG).is_file() => read_config(Path::new(DEFAULT_CONFIG))?,
            None => ConfigFile::default(),
        };
        let as_of = match overrides.as_of.or(file.as_of) {
            Some(text) => parse_as_of(&text)?,
            None => Utc::now(),
        };
        let mut events = file.events;
        for spec in &overrides.events {
            let Some((name, url)) = spec.split_once('=') else {
                return Err(Error::Usage(format!(
                    "--events expects name=url, got '{spec}'"
                )));
            };
            let entry = events.entry(name.trim().to_string()).or_default();
            entry.url = url.trim().to_string();
        }
        Ok(Settings {
            customers: overrides.customers.or(file.customers),
            id_column: overrides
                .id_column
                .or(file.id_column)
                .unwrap_or_else(|| "customer_id".into()),
            queries: overrides
                .queries
                .or(file.queries)
                .unwrap_or_else(|| "queries".into()),
            publish: overrides
                .publish
                .or(file.publish)
                .unwrap_or_else(|| "snapshots".into()),
            as_of,
            events,
        })
    }

    /// The customers URL, or a usage error saying how to give one.
    pub fn customers_url(&self) -> Result<&str> {
        self.customers.as_deref().ok_or_else(|| {
            Error::Usage(
                "no customers table: pass --customers <url> or set customers in cohort.toml".into(),
            )
        })
    }
}

fn read_config(path: &Path) -> Result<ConfigFile> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Usage(format!(
            "config file '{}' does not exist: pass an existing --config <file>, or leave it out",
            path.display()
        )),
        _ => Error::io(path.display(), e),
    })?;
    toml::from_str(&text).map_err(|e| {
        Error::Usage(format!(
            "invalid config '{}': {}",
            path.display(),
            e.message()
        ))
    })
}

/// Parses `--as-of`: RFC 3339, or a date meaning its UTC midnight.
pub fn parse_as_of(text: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap().and_utc());
    }
    Err(Error::Usage(format!(
        "invalid --as-of '{text}': expected an RFC 3339 timestamp such as 2026-11-22T00:00:00Z"
    )))
}
