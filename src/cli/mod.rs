//! The `cohort` command line: clap definitions (plain data) and dispatch to one file per
//! subcommand. Nothing below this module sees a raw flag.

mod config;
mod explain;
mod export;
mod gen;
mod lookup;
mod output;
mod run;
mod runs;
mod serve;
mod size;
mod synthetic;
mod validate;

use clap::{Parser, Subcommand, ValueEnum};
use cohort::Result;
use config::{ConfigArg, Project, PublishArg, SourceArgs};

/// Columnar batch segmentation: group definitions → DataFusion → roaring bitmaps → snapshots.
#[derive(Debug, Parser)]
#[command(name = "cohort", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
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
            } => run::run(&Project::load(config, Some(source), Some(publish))?, args).await,
            C::Size {
                config,
                source,
                args,
            } => size::run(&Project::load(config, Some(source), None)?, args).await,
            C::Validate {
                config,
                source,
                args,
            } => validate::run(&Project::load(config, Some(source), None)?, args).await,
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
        }
    }
}
