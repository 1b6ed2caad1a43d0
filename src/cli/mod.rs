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

/// Flags every command takes (each also settable in `cohort.toml`).
#[derive(Debug, Args)]
struct CommonArgs {
    /// Project config file [default: ./cohort.toml if present]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
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
    /// Where runs are published and read from [default: snapshots]
    #[arg(long, value_name = "URL")]
    publish: Option<String>,
    /// Evaluation time, RFC 3339 [default: now, UTC]
    #[arg(long, value_name = "RFC3339")]
    as_of: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Evaluate all groups and publish a snapshot
    Run {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        args: run::RunArgs,
    },
    /// Count members without publishing
    Size {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        args: size::SizeArgs,
    },
    /// Check every definition against the customers schema
    Validate {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        args: validate::ValidateArgs,
    },
    /// Show a group's compiled expression, DataFusion plan and pruning
    Explain {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        args: explain::ExplainArgs,
    },
    /// Is a customer in a group? (from the published snapshot)
    Check {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        args: lookup::CheckArgs,
    },
    /// Every group a customer is in (from the published snapshot)
    GroupsOf {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        args: lookup::GroupsOfArgs,
    },
    /// Write a group's member ids as CSV, JSON lines or Parquet
    Export {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        args: export::ExportArgs,
    },
    /// Per group: who entered, exited or stayed between two runs
    Diff {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        args: runs::DiffArgs,
    },
    /// Serve lookups over HTTP from the published snapshot, reloading new runs
    Serve {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        args: serve::ServeArgs,
    },
    /// List the published runs
    Runs {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        args: runs::RunsArgs,
    },
    /// Delete all but the newest N runs (never the one LATEST names)
    Gc {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        args: runs::GcArgs,
    },
    /// Generate realistic synthetic customers
    Gen(gen::GenArgs),
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
        let settings = |c: CommonArgs| {
            Settings::resolve(Overrides {
                config: c.config,
                customers: c.customers,
                id_column: c.id_column,
                queries: c.queries,
                publish: c.publish,
                as_of: c.as_of,
                events: c.events,
            })
        };
        match self.command {
            Command::Run { common: c, args } => run::run(&settings(c)?, args).await,
            Command::Size { common: c, args } => size::run(&settings(c)?, args).await,
            Command::Validate { common: c, args } => validate::run(&settings(c)?, args).await,
            Command::Explain { common: c, args } => explain::run(&settings(c)?, args).await,
            Command::Check { common: c, args } => lookup::check(&settings(c)?, args).await,
            Command::GroupsOf { common: c, args } => lookup::groups_of(&settings(c)?, args).await,
            Command::Export { common: c, args } => export::run(&settings(c)?, args).await,
            Command::Diff { common: c, args } => runs::diff(&settings(c)?, args).await,
            Command::Serve { common: c, args } => serve::run(&settings(c)?, args).await,
            Command::Runs { common: c, args } => runs::runs(&settings(c)?, args).await,
            Command::Gc { common: c, args } => runs::gc(&settings(c)?, args).await,
            // `gen` needs no project settings.
            Command::Gen(args) => gen::run(args),
        }
    }
}
