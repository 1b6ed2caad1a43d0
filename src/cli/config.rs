//! Project settings, one layer: the same structs are the flags of the commands that take
//! them and the keys of `cohort.toml` (all optional); a flag wins over the file. They are
//! turned once into the library's values: a [`Pipeline`], a publish [`Location`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::Args;
use cohort::compile::events::EventConfig;
use cohort::definition::did_you_mean;
use cohort::snapshot::{Location, Stores};
use cohort::{Error, Pipeline, Result};
use serde::Deserialize;

/// The config file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG: &str = "cohort.toml";

/// `--config`, which every project command takes.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Project config file [default: ./cohort.toml if present]
    #[arg(long, value_name = "FILE", env = "COHORT_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Where the data and the definitions are: flags of the commands that read them, and
/// keys of `cohort.toml`.
#[derive(Debug, Default, Clone, Args, Deserialize)]
pub struct SourceArgs {
    /// Customers table: a Parquet file or folder/prefix (path, file://, s3://, gs://, az://)
    #[arg(long, value_name = "URL", env = "COHORT_CUSTOMERS")]
    pub customers: Option<String>,
    /// Customer id column [default: customer_id]
    #[arg(long, value_name = "NAME", env = "COHORT_ID_COLUMN")]
    pub id_column: Option<String>,
    /// An event table, as name=url (repeatable)
    #[arg(
        long = "events",
        value_name = "NAME=URL",
        env = "COHORT_EVENTS",
        value_delimiter = ','
    )]
    #[serde(skip)]
    pub event_urls: Vec<String>,
    /// `[events.<name>]` tables of the file.
    #[arg(skip)]
    #[serde(default)]
    pub events: BTreeMap<String, EventConfig>,
    /// Group definitions folder [default: queries]
    #[arg(long, value_name = "DIR", env = "COHORT_QUERIES")]
    pub queries: Option<PathBuf>,
    /// Evaluation time, RFC 3339 [default: now, UTC]
    #[arg(long, value_name = "RFC3339", env = "COHORT_AS_OF")]
    pub as_of: Option<String>,
}

/// Where runs are published: the flag of the commands that write or read them, and the
/// key of `cohort.toml`.
#[derive(Debug, Default, Clone, Args, Deserialize)]
pub struct PublishArg {
    /// Where runs are published and read from [default: snapshots]
    #[arg(long, value_name = "URL", env = "COHORT_PUBLISH")]
    pub publish: Option<String>,
}

/// Where the scan runs: flags of `run` and `size`, keys of `cohort.toml`.
#[derive(Debug, Default, Clone, Args, Deserialize)]
pub struct EngineArgs {
    /// Where the scan runs: local, or an Apache Ballista scheduler df://HOST:PORT [default: local]
    #[arg(long, value_name = "local|df://HOST:PORT", env = "COHORT_ENGINE")]
    pub engine: Option<String>,
    /// How long a job on a cluster may take before it is cancelled and the run fails, e.g. 90s or 10m [default: 120s]
    #[arg(long, value_name = "DURATION", env = "COHORT_ENGINE_TIMEOUT")]
    pub engine_timeout: Option<String>,
}

/// `cohort.toml`: the same keys as the flags.
#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(flatten)]
    source: SourceArgs,
    #[serde(flatten)]
    publish: PublishArg,
    #[serde(flatten)]
    engine: EngineArgs,
}

/// The keys `cohort.toml` may have (serde can't deny unknown keys of flattened structs).
const KEYS: &[&str] = &[
    "customers",
    "id_column",
    "queries",
    "publish",
    "as_of",
    "events",
    "engine",
    "engine_timeout",
];

/// The project: flags over the config file, with the stores every URL is read through.
#[derive(Debug)]
pub struct Project {
    source: SourceArgs,
    publish: String,
    stores: Arc<Stores>,
    /// The file's engine settings, until a command that scans takes its flags over them.
    engine: EngineArgs,
    /// Whether the command scans (run, size): only then is the engine used.
    scans: bool,
}

impl Project {
    /// Reads the config file (explicit, or `cohort.toml` if present) under the flags.
    pub fn load(
        config: ConfigArg,
        source: Option<SourceArgs>,
        publish: Option<PublishArg>,
    ) -> Result<Project> {
        let file = match &config.config {
            Some(path) => read_config(path)?,
            None if Path::new(DEFAULT_CONFIG).is_file() => read_config(Path::new(DEFAULT_CONFIG))?,
            None => ConfigFile::default(),
        };
        let flags = source.unwrap_or_default();
        let mut events = file.source.events;
        for spec in &flags.event_urls {
            let Some((name, url)) = spec.split_once('=') else {
                return Err(Error::Usage(format!(
                    "--events expects name=url, got '{spec}'"
                )));
            };
            let entry = events.entry(name.trim().to_string()).or_default();
            entry.url = url.trim().to_string();
        }
        Ok(Project {
            source: SourceArgs {
                customers: flags.customers.or(file.source.customers),
                id_column: flags.id_column.or(file.source.id_column),
                event_urls: Vec::new(),
                events,
                queries: flags.queries.or(file.source.queries),
                as_of: flags.as_of.or(file.source.as_of),
            },
            publish: publish
                .and_then(|p| p.publish)
                .or(file.publish.publish)
                .unwrap_or_else(|| "snapshots".into()),
            stores: Arc::new(Stores::from_env()),
            engine: file.engine,
            scans: false,
        })
    }

    /// For commands that scan: their engine flags over the file's.
    pub fn with_engine(mut self, flags: EngineArgs) -> Project {
        self.engine = EngineArgs {
            engine: flags.engine.or(self.engine.engine),
            engine_timeout: flags.engine_timeout.or(self.engine.engine_timeout),
        };
        self.scans = true;
        self
    }

    fn engine(&self) -> Result<cohort::Engine> {
        let timeout = match &self.engine.engine_timeout {
            None => cohort::evaluate::DEFAULT_ENGINE_TIMEOUT,
            Some(text) => humantime::parse_duration(text.trim())
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "invalid --engine-timeout '{text}': expected a duration such as 90s or 10m"
                    ))
                })?,
        };
        cohort::Engine::from_name(
            self.engine.engine.as_deref().unwrap_or("local").trim(),
            timeout,
        )
    }

    /// Whether a customers table is configured (by flag, environment or file).
    pub fn has_customers(&self) -> bool {
        self.source.customers.is_some()
    }

    /// The definitions folder.
    pub fn queries(&self) -> PathBuf {
        self.source
            .queries
            .clone()
            .unwrap_or_else(|| "queries".into())
    }

    /// The publish URL, as given.
    pub fn publish_url(&self) -> &str {
        &self.publish
    }

    /// Where runs are published.
    pub fn publish(&self) -> Result<Location> {
        Ok(self.stores.location(&self.publish)?)
    }

    /// The object stores.
    pub fn stores(&self) -> &Arc<Stores> {
        &self.stores
    }

    /// The pipeline these settings describe.
    pub fn pipeline(&self) -> Result<Pipeline> {
        let customers = self.source.customers.clone().ok_or_else(|| {
            Error::Usage(
                "no customers table: pass --customers <url> or set customers in cohort.toml".into(),
            )
        })?;
        let mut pipeline = Pipeline::new(customers)
            .with_stores(self.stores.clone())
            .with_definitions(self.queries())
            .with_publish(self.publish.clone());
        if let Some(column) = &self.source.id_column {
            pipeline = pipeline.with_id_column(column.clone());
        }
        if let Some(text) = &self.source.as_of {
            pipeline = pipeline.with_as_of(parse_as_of(text)?);
        }
        for (name, table) in &self.source.events {
            pipeline = pipeline.with_event_table(name.clone(), table.clone());
        }
        if self.scans {
            pipeline = pipeline.with_engine(self.engine()?);
        }
        Ok(pipeline)
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
    let name = path.display();
    // Each problem as `file:line:column: message`; all of them at once.
    let at = |span: Option<std::ops::Range<usize>>, message: String| match span {
        Some(span) => {
            let p = cohort::definition::Position::of(&text, span);
            format!("{name}:{}:{}: {message}", p.line, p.column)
        }
        None => format!("{name}: {message}"),
    };
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        Error::Usage(format!(
            "invalid config {}",
            at(e.span(), e.message().to_string())
        ))
    })?;
    let mut problems = Vec::new();
    for key in table.keys() {
        if !KEYS.contains(&key.as_str()) {
            let hint = did_you_mean(key, KEYS.iter().copied())
                .map(|h| format!("; {h}"))
                .unwrap_or_default();
            problems.push(at(
                key_span(&text, key),
                format!("unknown key '{key}'{hint}"),
            ));
        }
    }
    // Values of the wrong type, each at its key (serde's flatten loses the spans).
    for (key, value) in table.iter().filter(|(k, _)| KEYS.contains(&k.as_str())) {
        let single = toml::Table::from_iter([(key.clone(), value.clone())]);
        if let Err(e) = ConfigFile::deserialize(single) {
            problems.push(at(
                key_span(&text, key),
                format!("'{key}': {}", e.message().trim()),
            ));
        }
    }
    match problems.is_empty() {
        true => ConfigFile::deserialize(table).map_err(|e| {
            Error::Usage(format!(
                "invalid config {}",
                at(None, e.message().to_string())
            ))
        }),
        false => Err(Error::Usage(format!(
            "invalid config '{name}':\n  {}",
            problems.join("\n  ")
        ))),
    }
}

/// Where a top-level `key = ...` (or `[key...]` table) is written.
fn key_span(text: &str, key: &str) -> Option<std::ops::Range<usize>> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let rest = trimmed
            .strip_prefix('[')
            .unwrap_or(trimmed)
            .trim_start_matches('"');
        if rest.starts_with(key)
            && rest[key.len()..]
                .trim_start_matches('"')
                .trim_start()
                .starts_with(['=', '.', ']'])
        {
            let start = offset + indent + (trimmed.len() - rest.len());
            return Some(start..start + key.len());
        }
        offset += line.len();
    }
    None
}

/// Parses `--as-of`: RFC 3339, or a date meaning its UTC midnight.
pub fn parse_as_of(text: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Some(midnight) = chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
    {
        return Ok(midnight.and_utc());
    }
    Err(Error::Usage(format!(
        "invalid --as-of '{text}': expected an RFC 3339 timestamp such as 2026-11-22T00:00:00Z"
    )))
}
