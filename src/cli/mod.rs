//! The `cohort` command line: clap definitions (plain data) and dispatch to one file per
//! subcommand. Nothing below this module sees a raw flag.

/// `println!` that ends quietly on a closed pipe (see [`output::stdout_write`]).
macro_rules! outln {
    () => {
        $crate::cli::output::stdout_write(b"\n")
    };
    ($($arg:tt)*) => {
        $crate::cli::output::stdout_write(format!("{}\n", format_args!($($arg)*)).as_bytes())
    };
}

#[cfg(feature = "ballista")]
mod cluster;
pub(crate) mod config;
pub mod diagnostics;
mod explain;
mod export;
mod gen;
mod lookup;
pub mod output;
mod run;
mod runs;
mod serve;
mod size;
mod synthetic;
mod validate;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use cohort::Result;
use config::{ConfigArg, EngineArgs, Project, PublishArg, SourceArgs};

/// Columnar batch segmentation: group definitions → DataFusion → roaring bitmaps → snapshots.
#[derive(Debug, Parser)]
#[command(name = "cohort", version, about, propagate_version = true)]
pub struct Cli {
    /// Log lines on stderr: text, or JSON objects one per line (for log collectors); with json every stderr line is one [default: text, or log_format in cohort.toml]
    #[arg(long, global = true, value_enum, env = "COHORT_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

/// `--log-format`, and `log_format` in `cohort.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (tracing's JSON format).
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Evaluate all groups and publish a snapshot
    Run {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        publish: PublishArg,
        #[command(flatten)]
        engine: EngineArgs,
        #[command(flatten)]
        args: run::RunArgs,
    },
    /// Count members without publishing
    Size {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        engine: EngineArgs,
        #[command(flatten)]
        args: size::SizeArgs,
    },
    /// Check every definition against the customers schema
    Validate {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        args: validate::ValidateArgs,
    },
    /// Show a group's compiled expression, DataFusion plan and pruning
    Explain {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        args: explain::ExplainArgs,
    },
    /// Is a customer in a group? (from the published snapshot)
    Check {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        publish: PublishArg,
        #[command(flatten)]
        args: lookup::CheckArgs,
    },
    /// Every group a customer is in (from the published snapshot)
    GroupsOf {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        publish: PublishArg,
        #[command(flatten)]
        args: lookup::GroupsOfArgs,
    },
    /// Write a group's member ids as CSV, JSON lines or Parquet
    Export {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        publish: PublishArg,
        #[command(flatten)]
        args: export::ExportArgs,
    },
    /// Per group: who entered, exited or stayed between two runs
    Diff {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        publish: PublishArg,
        #[command(flatten)]
        args: runs::DiffArgs,
    },
    /// Serve lookups over HTTP from the published snapshot, reloading new runs
    Serve {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        publish: PublishArg,
        #[command(flatten)]
        args: serve::ServeArgs,
    },
    /// List the published runs
    Runs {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        publish: PublishArg,
        #[command(flatten)]
        args: runs::RunsArgs,
    },
    /// Delete all but the newest N runs (never the one LATEST names)
    Gc {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        publish: PublishArg,
        #[command(flatten)]
        args: runs::GcArgs,
    },
    /// Generate realistic synthetic customers
    Gen(gen::GenArgs),
    /// Print a shell completion script (e.g. `cohort completions bash > ~/.local/share/bash-completion/completions/cohort`)
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `cohort man > cohort.1 && man ./cohort.1`; or with --out-dir write one page per subcommand
    Man {
        /// Write cohort.1 and a page per subcommand (cohort-run.1, ...) with its flags into this folder
        #[arg(long, value_name = "DIR")]
        out_dir: Option<std::path::PathBuf>,
    },
    /// Run an Apache Ballista scheduler that `--engine df://HOST:PORT` submits scans to
    #[cfg(feature = "ballista")]
    Scheduler(cluster::SchedulerArgs),
    /// Run an Apache Ballista executor that registers with a scheduler
    #[cfg(feature = "ballista")]
    Executor(cluster::ExecutorArgs),
}

/// Output format of read commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Human-readable.
    #[default]
    Text,
    /// Machine-readable JSON on stdout.
    Json,
}

impl Cli {
    /// The log format: the flag (or `COHORT_LOG_FORMAT`), else the config file's
    /// `log_format`, else text. Known before anything is logged, so the config file is
    /// only peeked at here; its problems are reported by the command that loads it.
    pub fn log_format(&self) -> LogFormat {
        use Command as C;
        if let Some(format) = self.log_format {
            return format;
        }
        let config = match &self.command {
            C::Run { config, .. }
            | C::Size { config, .. }
            | C::Validate { config, .. }
            | C::Explain { config, .. }
            | C::Check { config, .. }
            | C::GroupsOf { config, .. }
            | C::Export { config, .. }
            | C::Diff { config, .. }
            | C::Serve { config, .. }
            | C::Runs { config, .. }
            | C::Gc { config, .. } => config,
            _ => return LogFormat::Text,
        };
        config::log_format(config).unwrap_or(LogFormat::Text)
    }

    /// Runs the command.
    pub async fn run(self) -> Result<()> {
        use Command as C;
        match self.command {
            C::Run {
                config,
                source,
                publish,
                engine,
                args,
            } => {
                let project = Project::load(config, Some(source), Some(publish))?;
                run::run(&project.with_engine(engine), args).await
            }
            C::Size {
                config,
                source,
                engine,
                args,
            } => {
                let project = Project::load(config, Some(source), None)?;
                size::run(&project.with_engine(engine), args).await
            }
            C::Validate {
                config,
                source,
                args,
            } => validate::run(Project::load(config, Some(source), None), args).await,
            C::Explain {
                config,
                source,
                args,
            } => explain::run(&Project::load(config, Some(source), None)?, args).await,
            C::Check {
                config,
                publish,
                args,
            } => lookup::check(&Project::load(config, None, Some(publish))?, args).await,
            C::GroupsOf {
                config,
                publish,
                args,
            } => lookup::groups_of(&Project::load(config, None, Some(publish))?, args).await,
            C::Export {
                config,
                publish,
                args,
            } => export::run(&Project::load(config, None, Some(publish))?, args).await,
            C::Diff {
                config,
                publish,
                args,
            } => runs::diff(&Project::load(config, None, Some(publish))?, args).await,
            C::Serve {
                config,
                source,
                publish,
                args,
            } => serve::run(&Project::load(config, Some(source), Some(publish))?, args).await,
            C::Runs {
                config,
                publish,
                args,
            } => runs::runs(&Project::load(config, None, Some(publish))?, args).await,
            C::Gc {
                config,
                publish,
                args,
            } => runs::gc(&Project::load(config, None, Some(publish))?, args).await,
            // `gen` needs no project settings.
            C::Gen(args) => gen::run(args),
            C::Completions { shell } => {
                let mut script = Vec::new();
                clap_complete::generate(shell, &mut Cli::command(), "cohort", &mut script);
                output::stdout_write(&script);
                Ok(())
            }
            C::Man { out_dir: Some(dir) } => {
                let failed = |e| cohort::Error::io(dir.display(), e);
                std::fs::create_dir_all(&dir).map_err(failed)?;
                clap_mangen::generate_to(Cli::command(), &dir).map_err(failed)?;
                output::note(format_args!("wrote the man pages to {}", dir.display()));
                Ok(())
            }
            C::Man { out_dir: None } => {
                let mut page = Vec::new();
                clap_mangen::Man::new(Cli::command())
                    .render(&mut page)
                    .map_err(|e| cohort::Error::io("stdout", e))?;
                output::stdout_write(&page);
                Ok(())
            }
            #[cfg(feature = "ballista")]
            C::Scheduler(args) => cluster::scheduler(args).await,
            #[cfg(feature = "ballista")]
            C::Executor(args) => cluster::executor(args).await,
        }
    }
}
