//! `cohort serve`: flags → [`crate::serve`], bound to a real listener, stopped by SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::config::Settings;
use crate::serve::{self, ServeOptions};
use crate::{Error, Result};

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
}

pub async fn run(settings: &Settings, args: ServeArgs) -> Result<()> {
    let token = match &args.token_file {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
            let token = text.trim().to_string();
            if token.is_empty() {
                return Err(Error::Usage(format!(
                    "token file '{}' is empty",
                    path.display()
                )));
            }
            Some(token)
        }
    };
    let mut options = ServeOptions::new(settings.publish.clone());
    options.poll_interval = args.poll_interval.max(Duration::from_millis(100));
    options.token = token;
    options.max_body_bytes = args.max_body_bytes;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Error::io(args.listen, e))?;
    let address = listener
        .local_addr()
        .map_err(|e| Error::io(args.listen, e))?;
    // On stderr whatever RUST_LOG says: scripts and tests read the port from it.
    eprintln!("listening on http://{address}");
    serve::serve(options, listener, shutdown_signal()).await
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
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
