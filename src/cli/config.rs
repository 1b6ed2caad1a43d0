//! Project settings, one layer: the same structs are the flags of the commands that take
//! them and the keys of `cohort.toml` (all optional); a flag wins over the file. They are
//! turned once into the library's values: a [`Pipeline`], a publish [`Location`].

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::Args;
use cohort::definition::spans::{self, Kind, Node};
use cohort::definition::{did_you_mean, Location as At, Problem};
use cohort::pipeline::EventConfig;
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
    /// `--log-format` (read by [`log_format`] before logging starts; checked here).
    #[allow(dead_code)]
    log_format: Option<super::LogFormat>,
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
    "log_format",
];

/// `log_format` of the config file `--config` names (or `cohort.toml` if present), if it
/// says one. Anything wrong with the file is left to [`Project::load`] to report.
pub fn log_format(config: &ConfigArg) -> Option<super::LogFormat> {
    let path = config
        .config
        .as_deref()
        .unwrap_or(Path::new(DEFAULT_CONFIG));
    let text = std::fs::read_to_string(path).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    super::LogFormat::deserialize(table.get("log_format")?.clone()).ok()
}

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
    /// Where `as_of` was set, for its error message.
    as_of_from: String,
    /// Where `engine` and `engine_timeout` were set (flag, variable or file), likewise.
    engine_from: [String; 2],
}

impl Project {
    /// Reads the config file (explicit, or `cohort.toml` if present) under the flags.
    pub fn load(
        config: ConfigArg,
        source: Option<SourceArgs>,
        publish: Option<PublishArg>,
    ) -> Result<Project> {
        let config_path = match &config.config {
            Some(path) => Some(path.as_path()),
            None if Path::new(DEFAULT_CONFIG).is_file() => Some(Path::new(DEFAULT_CONFIG)),
            None => None,
        };
        let file = match config_path {
            Some(path) => read_config(path)?,
            None => ConfigFile::default(),
        };
        let flags = source.unwrap_or_default();
        let mut events = file.source.events;
        for spec in &flags.event_urls {
            let Some((name, url)) = spec.split_once('=') else {
                return Err(Error::Setting {
                    setting: origin("--events", config_path),
                    value: spec.clone(),
                    reason: "expected name=url".into(),
                });
            };
            let entry = events.entry(name.trim().to_string()).or_default();
            entry.url = url.trim().to_string();
        }
        Ok(Project {
            as_of_from: origin("--as-of", config_path),
            engine_from: [
                origin("--engine", config_path),
                origin("--engine-timeout", config_path),
            ],
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
            None => cohort::DEFAULT_ENGINE_TIMEOUT,
            Some(text) => humantime::parse_duration(text.trim())
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| Error::Setting {
                    setting: self.engine_from[1].clone(),
                    value: text.clone(),
                    reason: "expected a duration such as 90s or 10m".into(),
                })?,
        };
        let name = self.engine.engine.as_deref().unwrap_or("local").trim();
        cohort::Engine::from_name(name, timeout).map_err(|e| match e {
            Error::Setting { value, reason, .. } => Error::Setting {
                setting: self.engine_from[0].clone(),
                value,
                reason,
            },
            other => other,
        })
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
        let customers = self
            .source
            .customers
            .clone()
            .ok_or_else(|| Error::Missing {
                what: "no customers table".into(),
                help: "pass --customers <url> or set customers in cohort.toml".into(),
            })?;
        let mut pipeline = Pipeline::new(customers)
            .with_stores(self.stores.clone())
            .with_definitions(self.queries())
            .with_publish(self.publish.clone());
        if let Some(column) = &self.source.id_column {
            pipeline = pipeline.with_id_column(column.clone());
        }
        if let Some(text) = &self.source.as_of {
            pipeline = pipeline.with_as_of(parse_as_of(text, &self.as_of_from)?);
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

/// The keys of an `[events.<name>]` table (the fields of `EventConfig`; a test holds them
/// to it).
const EVENT_KEYS: &[&str] = &["url", "id_column", "time_column"];

fn read_config(path: &Path) -> Result<ConfigFile> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Missing {
            what: format!("config file '{}' does not exist", path.display()),
            help: match given_on_command_line("--config") {
                false if std::env::var_os(env_name("--config")).is_some() => {
                    "set COHORT_CONFIG to an existing file, or unset it".into()
                }
                _ => "pass an existing --config <file>, or leave it out".into(),
            },
        },
        _ => Error::io(path.display(), e),
    })?;
    let file = path.display().to_string();
    let config_error = |problems| Error::Config {
        file: file.clone(),
        problems,
    };
    // Config problems have no group, and no path: their messages name the key.
    let at = |span: Option<&Range<usize>>| {
        At {
            file: file.clone(),
            ..Default::default()
        }
        .at(span.and_then(|s| spans::position(&text, s)))
    };
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        let span = e.span();
        let message = format!("unparsable config: {}", e.message().trim());
        config_error(vec![Problem::error(&at(span.as_ref()), message)])
    })?;
    let root = Node::toml(&text).unwrap_or_default();
    let mut problems = Vec::new();
    let unknown = |entry: &spans::Entry, known: &[&str], place: &str| {
        let hint = did_you_mean(&entry.key, known.iter().copied())
            .unwrap_or_else(|| format!("expected one of: {}", known.join(", ")));
        Problem::error(
            &at(Some(&entry.key_span)),
            format!("unknown key '{}'{place}", entry.key),
        )
        .with_hint(Some(hint))
    };
    for entry in root.entries() {
        if !KEYS.contains(&entry.key.as_str()) {
            problems.push(unknown(entry, KEYS, ""));
        } else if entry.key == "events" {
            event_problems(&entry.value, &text, &at, &unknown, &mut problems);
        } else {
            // A value of the wrong type, at the value.
            let value = table[&entry.key].clone();
            let single = toml::Table::from_iter([(entry.key.clone(), value)]);
            if let Err(e) = ConfigFile::deserialize(single) {
                problems.push(Problem::error(
                    &at(Some(&entry.value.span)),
                    format!("'{}': {}", entry.key, e.message().trim()),
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(config_error(problems));
    }
    ConfigFile::deserialize(table).map_err(|e| {
        config_error(vec![Problem::error(
            &at(None),
            e.message().trim().to_string(),
        )])
    })
}

/// The problems of `events = { name = { url, id_column, time_column } }`, each at its key
/// or value.
fn event_problems(
    events: &Node,
    text: &str,
    at: &dyn Fn(Option<&Range<usize>>) -> At,
    unknown: &dyn Fn(&spans::Entry, &[&str], &str) -> Problem,
    problems: &mut Vec<Problem>,
) {
    let Kind::Table(tables) = &events.kind else {
        problems.push(Problem::error(
            &at(Some(&events.span)),
            "'events' takes tables such as [events.orders] with a 'url'",
        ));
        return;
    };
    for table in tables {
        let name = &table.key;
        if !matches!(table.value.kind, Kind::Table(_)) {
            problems.push(
                Problem::error(
                    &at(Some(&table.value.span)),
                    format!("event table '{name}' must be a table with a 'url'"),
                )
                .with_hint(Some(format!(
                    "write [events.{name}] and url = \"...\" below it"
                ))),
            );
            continue;
        }
        for entry in table.value.entries() {
            if !EVENT_KEYS.contains(&entry.key.as_str()) {
                let place = format!(" in [events.{name}]");
                problems.push(unknown(entry, EVENT_KEYS, &place));
            } else if !matches!(entry.value.kind, Kind::Scalar)
                || !text[entry.value.span.clone()].starts_with(['"', '\''])
            {
                problems.push(Problem::error(
                    &at(Some(&entry.value.span)),
                    format!(
                        "'{}' of [events.{name}] must be a string, not {}",
                        entry.key,
                        &text[entry.value.span.clone()]
                    ),
                ));
            }
        }
        if table.value.get("url").is_none() {
            problems.push(
                Problem::error(
                    &at(Some(&table.key_span)),
                    format!("event table '{name}' has no 'url'"),
                )
                .with_hint(Some(format!(
                    "add url = \"data/{name}.parquet\" (a path or URL)"
                ))),
            );
        }
    }
}

/// The flags whose value may come from a `COHORT_*` variable (each named by [`env_name`]).
pub const FROM_ENVIRONMENT: &[&str] = &[
    "--config",
    "--customers",
    "--id-column",
    "--events",
    "--queries",
    "--as-of",
    "--publish",
    "--engine",
    "--engine-timeout",
    "--log-format",
];

/// The variable a flag reads: `--engine-timeout` → `COHORT_ENGINE_TIMEOUT`.
pub fn env_name(flag: &str) -> String {
    format!(
        "COHORT_{}",
        flag.trim_start_matches('-')
            .replace('-', "_")
            .to_uppercase()
    )
}

/// Where a setting's value came from, to name it in an error: the flag when it is on the
/// command line, else its variable when that is set, else its key in the config file.
fn origin(flag: &str, config: Option<&Path>) -> String {
    let variable = env_name(flag);
    if given_on_command_line(flag) {
        flag.to_string()
    } else if std::env::var_os(&variable).is_some() {
        variable
    } else {
        let key = flag.trim_start_matches('-').replace('-', "_");
        let file = config.map_or(DEFAULT_CONFIG.into(), |p| p.display().to_string());
        format!("{key} in {file}")
    }
}

/// For an error that quotes a value a `COHORT_*` variable set (and no flag overrode),
/// the note that says so: `(COHORT_QUERIES='nope' set it)`.
pub fn environment_note(message: &str) -> Option<String> {
    FROM_ENVIRONMENT.iter().find_map(|flag| {
        let variable = env_name(flag);
        let value = std::env::var(&variable)
            .ok()
            .filter(|v| !v.trim().is_empty())?;
        let quoted = message.contains(&format!("'{value}'"))
            || message.contains(&format!("'{}'", value.trim()));
        (quoted && !message.contains(&variable) && !given_on_command_line(flag))
            .then(|| format!("({variable}='{value}' set it)"))
    })
}

/// Whether `flag` is on the command line (clap has taken it from the environment
/// otherwise): only to name where a bad value came from.
pub fn given_on_command_line(flag: &str) -> bool {
    std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| {
            a.to_str()
                .is_some_and(|a| a == flag || a.starts_with(&format!("{flag}=")))
        })
}

/// Parses `--as-of`: RFC 3339, or a date meaning its UTC midnight. `from` names where the
/// text was set (`--as-of`, `COHORT_AS_OF`, `as_of in cohort.toml`).
pub fn parse_as_of(text: &str, from: &str) -> Result<DateTime<Utc>> {
    let parsed = DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|midnight| midnight.and_utc())
        })
        .ok_or_else(|| Error::Setting {
            setting: from.to_string(),
            value: text.to_string(),
            reason: "expected an RFC 3339 timestamp such as 2026-11-22T00:00:00Z".into(),
        })?;
    cohort::definition::check_as_of(parsed).map_err(|e| Error::Setting {
        setting: from.to_string(),
        value: text.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_are_the_fields_of_event_config() {
        let all: toml::Table = EVENT_KEYS
            .iter()
            .map(|k| (k.to_string(), toml::Value::String("x".into())))
            .collect();
        assert!(EventConfig::deserialize(all).is_ok());
        let unknown: toml::Table = toml::from_str("url = \"x\"\nzzz = 1").unwrap();
        let message = EventConfig::deserialize(unknown).unwrap_err().to_string();
        let listed = EVENT_KEYS
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ");
        assert!(message.contains(&listed), "{message}");
    }
}
