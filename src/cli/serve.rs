//! `cohort serve`: flags → [`crate::serve`], bound to a real listener, stopped by SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use cohort::{Error, Result};
use cohort_serve::{self as serve, ServeOptions, SizingOptions, Tokens};

use super::config::Project;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, IP:PORT (port 0 picks a free port)
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: std::net::SocketAddr,
    /// How often to poll LATEST for a new run (e.g. 30s, 5m)
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    poll_interval: Duration,
    /// File holding the bearer token every /v1 request must present
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Largest request body accepted, in bytes
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    max_body_bytes: usize,
    /// Longest a client may take to send a request's headers, and then the whole request
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    read_timeout: Duration,
    /// How long requests in flight may still take after SIGTERM
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    shutdown_grace: Duration,
    /// Accept SQL conditions in POST /v1/size (refused over HTTP otherwise)
    #[arg(long)]
    allow_sql: bool,
    /// The longest one live sizing (POST /v1/size) may take
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    size_timeout: Duration,
    /// Live sizings running at once; more are answered 429
    #[arg(long, default_value_t = 2, value_name = "N")]
    max_concurrent_sizes: usize,
    /// Threads live sizing runs on, apart from those answering lookups [default: half the
    /// cores, 1 to 4]
    #[arg(long, value_name = "N")]
    size_threads: Option<usize>,
}

pub async fn run(project: &Project, args: ServeArgs) -> Result<()> {
    let tokens = match &args.token_file {
        None => None,
        Some(path) => Some(Arc::new(Tokens::from_file(path)?)),
    };
    // Resolved once: every poll of LATEST reuses this store's client.
    let mut options = ServeOptions::new(project.publish()?);
    options.poll_interval = args.poll_interval.max(Duration::from_millis(100));
    options.tokens = tokens;
    options.max_body_bytes = args.max_body_bytes;
    options.read_timeout = args.read_timeout.max(Duration::from_millis(100));
    options.shutdown_grace = args.shutdown_grace;
    // Live sizing needs a customers table (--customers or cohort.toml); without one the
    // dashboard says how to enable it.
    if project.has_customers() {
        options.sizing = Some(SizingOptions {
            pipeline: project.pipeline()?,
            allow_sql: args.allow_sql,
            timeout: args.size_timeout.max(Duration::from_millis(10)),
            concurrency: args.max_concurrent_sizes.max(1),
            threads: args
                .size_threads
                .unwrap_or_else(SizingOptions::default_threads)
                .max(1),
        });
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Error::io(args.listen, e))?;
    let address = listener
        .local_addr()
        .map_err(|e| Error::io(args.listen, e))?;
    // On stderr whatever RUST_LOG says: scripts and tests read the port from it.
    super::output::note(format_args!("listening on http://{address}"));
    serve::serve(options, listener, shutdown_signal()).await
}

/// Resolves on SIGTERM or Ctrl-C.
pub(super) async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
