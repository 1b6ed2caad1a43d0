//! The `cohort` command line: clap definitions (plain data) and dispatch to one file per
//! subcommand. Nothing below this module sees a raw flag.

mod explain;
mod export;
mod gen;
mod lookup;
mod output;
mod run;
mod runs;
mod serve;
mod size;
mod validate;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{Overrides, Settings};
use crate::Result;

/// Columnar batch segmentation: group definitions → DataFusion → roaring bitmaps → snapshots.
#[derive(Debug, Parser)]
#[command(name = "cohort", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `--config`, which every project command takes.
#[derive(Debug, Args)]
struct ConfigArg {
    /// Project config file [default: ./cohort.toml if present]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Where the data and the definitions are: the commands that read them.
#[derive(Debug, Args)]
struct SourceArgs {
    /// Customers table: a Parquet file or folder/prefix (path, file://, s3://, gs://, az://)
    #[arg(long, value_name = "URL")]
    customers: Option<String>,
    /// Customer id column [default: customer_id]
    #[arg(long, value_name = "NAME")]
    id_column: Option<String>,
    /// An event table, as name=url (repeatable)
    #[arg(long, value_name = "NAME=URL")]
    events: Vec<String>,
    /// Group definitions folder [default: queries]
    #[arg(long, value_name = "DIR")]
    queries: Option<PathBuf>,
    /// Evaluation time, RFC 3339 [default: now, UTC]
    #[arg(long, value_name = "RFC3339")]
    as_of: Option<String>,
}

/// Where runs are published: the commands that write or read them.
#[derive(Debug, Args)]
struct PublishArg {
    /// Where runs are published and read from [default: snapshots]
    #[arg(long, value_name = "URL")]
    publish: Option<String>,
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
        args: run::RunArgs,
    },
    /// Count members without publishing
    Size {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        source: SourceArgs,
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
}

/// The project settings from the flags a command takes (absent ones from `cohort.toml`).
fn settings(
    config: ConfigArg,
    source: Option<SourceArgs>,
    publish: Option<PublishArg>,
) -> Result<Settings> {
    let source = source.unwrap_or(SourceArgs {
        customers: None,
        id_column: None,
        events: Vec::new(),
        queries: None,
        as_of: None,
    });
    Settings::resolve(Overrides {
        config: config.config,
        customers: source.customers,
        id_column: source.id_column,
        queries: source.queries,
        publish: publish.and_then(|p| p.publish),
        as_of: source.as_of,
        events: source.events,
    })
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
    /// Runs the command.
    pub async fn run(self) -> Result<()> {
        use Command as C;
        match self.command {
            C::Run {
                config,
                source,
                publish,
                args,
            } => run::run(&settings(config, Some(source), Some(publish))?, args).await,
            C::Size {
                config,
                source,
                args,
            } => size::run(&settings(config, Some(source), None)?, args).await,
            C::Validate {
                config,
                source,
                args,
            } => validate::run(&settings(config, Some(source), None)?, args).await,
            C::Explain {
                config,
                source,
                args,
            } => explain::run(&settings(config, Some(source), None)?, args).await,
            C::Check {
                config,
                publish,
                args,
            } => lookup::check(&settings(config, None, Some(publish))?, args).await,
            C::GroupsOf {
                config,
                publish,
                args,
            } => lookup::groups_of(&settings(config, None, Some(publish))?, args).await,
            C::Export {
                config,
                publish,
                args,
            } => export::run(&settings(config, None, Some(publish))?, args).await,
            C::Diff {
                config,
                publish,
                args,
            } => runs::diff(&settings(config, None, Some(publish))?, args).await,
            C::Serve {
                config,
                publish,
                args,
            } => serve::run(&settings(config, None, Some(publish))?, args).await,
            C::Runs {
                config,
                publish,
                args,
            } => runs::runs(&settings(config, None, Some(publish))?, args).await,
            C::Gc {
                config,
                publish,
                args,
            } => runs::gc(&settings(config, None, Some(publish))?, args).await,
            // `gen` needs no project settings.
            C::Gen(args) => gen::run(args),
        }
    }
}
