//! The command line: `serve` and the operator tools. Each subcommand's
//! `--help` says what it does and what it touches.

use std::{io::Write, path::PathBuf, process::ExitCode, sync::Arc};

use anyhow::Context as _;
use callvault_projections::journal;
use callvault_store::{EventStore, Position, sled_store::SledStore};
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use crate::{
    config::{Config, ProcessEnv, StoreBackend},
    http::{AppState, app},
    service::{Registry, SystemClock},
};

/// callvault — the event-sourced register of recorded customer-service
/// calls and chats.
///
/// Every change is an immutable event in the log; read models are folds of
/// it. Settings come from an optional TOML file (--config) and CALLVAULT_*
/// environment variables, which win: CALLVAULT_LISTEN (default
/// 127.0.0.1:8080), CALLVAULT_DATA_DIR (default ./data), CALLVAULT_LOG
/// (default info), CALLVAULT_LOG_FORMAT (text or json).
#[derive(Debug, Parser)]
#[command(name = "callvault", version, about, long_about)]
pub struct Cli {
    /// A TOML configuration file.
    #[arg(long, global = true, env = "CALLVAULT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: GraphQL at /graphql (GraphiQL in a browser), /health.
    Serve,
    /// Print the event log as JSON lines, oldest first, each event decoded
    /// and upcast to its current schema.
    Replay {
        /// Start after this log position (as printed in `position`).
        #[arg(long, value_name = "POSITION")]
        after: Option<u64>,
        /// Stop after this many events.
        #[arg(long)]
        limit: Option<usize>,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = Config::load(cli.config.as_deref(), &ProcessEnv)?;
    crate::telemetry::init(config.log_format, &config.log_filter);
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Replay { after, limit } => replay(config, after, limit).await,
    }
}

/// Opens the configured event log.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn EventStore>> {
    match config.store {
        StoreBackend::Sled => {
            let dir = config.event_log_dir();
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("creating the data folder {}", dir.display()))?;
            let store = SledStore::open(&dir)
                .with_context(|| format!("opening the event log in {}", dir.display()))?;
            Ok(Arc::new(store))
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    let store = open_store(&config).await?;
    let registry = Registry::new(store, Arc::new(SystemClock));
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let local = listener.local_addr()?;
    tracing::info!(
        address = %local,
        data_dir = %config.data_dir.display(),
        "callvault is serving GraphQL at http://{local}/graphql"
    );
    axum::serve(listener, app(AppState::new(registry)))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?;
    tracing::info!("callvault stopped");
    Ok(ExitCode::SUCCESS)
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}

async fn replay(
    config: Config,
    after: Option<u64>,
    limit: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let store = open_store(&config).await?;
    let mut position = after.map(Position::sequence);
    let mut remaining = limit.unwrap_or(usize::MAX);
    let mut failures = 0usize;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    while remaining > 0 {
        let page = store.read_all(position, remaining.min(1000)).await?;
        if page.is_empty() {
            break;
        }
        for recorded in &page {
            let data = match journal::decode(recorded) {
                Ok(event) => serde_json::to_value(&event)?,
                Err(e) => {
                    failures += 1;
                    eprintln!("error: {e}");
                    serde_json::json!({"undecodable": e.reason})
                }
            };
            let line = serde_json::json!({
                "position": recorded.position.to_string(),
                "stream": recorded.stream.as_str(),
                "revision": recorded.revision.0,
                "id": recorded.id,
                "type": recorded.event_type,
                "version": recorded.schema_version,
                "recorded_at": recorded.metadata.recorded_at,
                "actor": recorded.metadata.actor,
                "data": data,
            });
            writeln!(out, "{line}")?;
        }
        remaining = remaining.saturating_sub(page.len());
        position = page.last().map(|r| r.position);
    }
    out.flush()?;
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("{failures} event(s) could not be decoded");
        ExitCode::FAILURE
    })
}
