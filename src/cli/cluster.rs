//! `cohort scheduler` and `cohort executor`: the processes of an Apache Ballista cluster
//! that `--engine df://HOST:PORT` runs scans on.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use cohort::cluster::{self as servers, ExecutorOptions, SchedulerOptions};
use cohort::{Error, Result, Stores};

/// `cohort scheduler`.
#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// Address to listen on (gRPC for clients and executors, /healthz and /readyz)
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50050")]
    bind: String,
    /// How long an executor may be silent before it counts as lost and its tasks rerun
    #[arg(long, value_name = "DURATION", default_value = "180s")]
    executor_timeout: String,
}

/// `cohort executor`.
#[derive(Debug, Args)]
pub struct ExecutorArgs {
    /// The scheduler to register with
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50050")]
    scheduler: String,
    /// Address of this executor's Arrow Flight service (shuffle and results); others must reach it
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50051")]
    bind: String,
    /// Port of this executor's gRPC service, on the --bind host (the scheduler launches tasks through it)
    #[arg(long, value_name = "N", default_value_t = 50052)]
    grpc_port: u16,
    /// Shuffle files and spills [default: a folder per process in the system temp dir]
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Tasks run at once [default: one per core]
    #[arg(long, value_name = "N")]
    concurrent_tasks: Option<usize>,
    /// Time between heartbeats to the scheduler
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    heartbeat: String,
}

fn address(text: &str, flag: &str) -> Result<SocketAddr> {
    text.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Error::Setting {
            setting: flag.to_string(),
            value: text.to_string(),
            reason: "expected HOST:PORT, e.g. 127.0.0.1:50050".into(),
        })
}

fn duration(text: &str, flag: &str) -> Result<std::time::Duration> {
    humantime::parse_duration(text.trim())
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| Error::Setting {
            setting: flag.to_string(),
            value: text.to_string(),
            reason: "expected a duration such as 30s or 3m".into(),
        })
}

/// Runs the scheduler until ctrl-c or SIGTERM.
pub async fn scheduler(args: SchedulerArgs) -> Result<()> {
    let addr = address(&args.bind, "--bind")?;
    let options = SchedulerOptions {
        executor_timeout: duration(&args.executor_timeout, "--executor-timeout")?,
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::io(format!("scheduler address {addr}"), e))?;
    eprintln!("cohort scheduler listening on {addr} (engine URL df://{addr})");
    tokio::select! {
        result = servers::run_scheduler(listener, options, Arc::new(Stores::from_env())) => result,
        _ = super::serve::shutdown_signal() => Ok(()),
    }
}

/// Runs the executor until ctrl-c or SIGTERM (it then drains its tasks).
pub async fn executor(args: ExecutorArgs) -> Result<()> {
    let bind = address(&args.bind, "--bind")?;
    let options = ExecutorOptions {
        scheduler: address(&args.scheduler, "--scheduler")?,
        bind,
        grpc_port: args.grpc_port,
        work_dir: args.work_dir.unwrap_or_else(|| {
            std::env::temp_dir().join(format!("cohort-executor-{}", std::process::id()))
        }),
        concurrent_tasks: args.concurrent_tasks.unwrap_or(0),
        heartbeat: duration(&args.heartbeat, "--heartbeat")?,
    };
    eprintln!(
        "cohort executor on {bind} (gRPC port {}), registering with {}",
        options.grpc_port, options.scheduler
    );
    servers::run_executor(options, Arc::new(Stores::from_env())).await
}
