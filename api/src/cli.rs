//! The command line: `serve` and the operator tools. Each subcommand's
//! `--help` says what it does and what it touches.

use std::{io::Write, path::PathBuf, process::ExitCode, sync::Arc};

use anyhow::Context as _;
use callvault_store::{
    EventStore,
    blob::BlobStore,
    sled_store::SledStore,
    vault::{Bucket, KeyVault},
};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use callvault_projections::{Projections, registry::compaction};

use crate::{
    config::{Config, ProcessEnv, StoreBackend},
    http::{AppState, app},
    retention,
    service::{Clock, FixedClock, Registry, SystemClock},
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
    ///
    /// Also runs retention every `retention.interval_minutes` (60; 0 turns
    /// it off), sends chat transcript e-mails when `smtp.host` is set, and
    /// keeps the read models following the log. It holds the data folder
    /// alone: stop it before running the operator commands on the same
    /// folder (`projections rebuild` talks to it instead).
    Serve,
    /// Print the history, decoded, filtered, as JSON lines or a table.
    ///
    /// Every event decoded and upcast to its current schema, oldest first,
    /// as JSON lines (default) or a table. Filters combine. Shredded personal data shows as {"$shredded": true}.
    /// Examples: `replay --category call --since 2026-03-03 --until
    /// 2026-03-04`; `replay --stream call-<id> --format table`.
    Replay {
        /// Only events after this log position.
        #[arg(long, value_name = "POSITION")]
        after: Option<u64>,
        /// Only events up to this log position.
        #[arg(long, value_name = "POSITION")]
        until_position: Option<u64>,
        /// One stream, e.g. `call-0190b7a6-…` or `staff-anna.agent`.
        #[arg(long)]
        stream: Option<String>,
        /// `call`, `chat`, `staff`, `access` or `register`.
        #[arg(long)]
        category: Option<String>,
        /// An event type, e.g. `RecordingPurged`.
        #[arg(long = "type", value_name = "TYPE")]
        event_type: Option<String>,
        /// Who caused the events, e.g. `system.retention`.
        #[arg(long)]
        actor: Option<String>,
        /// Recorded at or after (RFC 3339 or YYYY-MM-DD).
        #[arg(long, value_parser = parse_time)]
        since: Option<DateTime<Utc>>,
        /// Recorded before (RFC 3339 or YYYY-MM-DD).
        #[arg(long, value_parser = parse_time)]
        until: Option<DateTime<Utc>>,
        /// Stop after this many events.
        #[arg(long)]
        limit: Option<usize>,
        /// `json` (one event per line) or `table`.
        #[arg(long, default_value = "json")]
        format: ReplayFormat,
    },
    /// What the register said at an instant: a call's state, or a staff
    /// member's roles and the calls those roles let them open.
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
    /// Check the log for tampering (hash chains, order, digest, purges).
    ///
    /// Recompute every stream's hash chain
    /// and the running digest over the global order, check that every
    /// purged recording has neither key nor audio left, and (with
    /// --checkpoint) that the log extends a signed checkpoint. Exits
    /// non-zero naming the first broken stream, revision and position.
    Verify {
        /// A checkpoint file from `callvault checkpoint --out`.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// The public key you trust (hex); default: this register's own
        /// signing key (never the key the file names).
        #[arg(long, value_name = "HEX")]
        public_key: Option<String>,
    },
    /// Sign the log's digest and append the checkpoint to the log.
    ///
    /// Verify the log, sign its digest with the register's Ed25519 key
    /// (created in the key vault folder on first use) and append the
    /// signed checkpoint to the log. Give the --out file to an outside
    /// party: with only the public key they can check, with `verify
    /// --checkpoint`, that the log they are shown extends the signed one.
    Checkpoint {
        /// Also write the checkpoint as JSON here.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Copy an event log to another folder or an EventStoreDB cluster.
    ///
    /// Copy an event log to another backend or folder — every stream with
    /// its events, ids, metadata, hash chains and global order — e.g. onto
    /// an EventStoreDB cluster when one machine is no longer enough.
    /// Resumable: run it again after an interruption and it continues
    /// where it stopped. Run `callvault verify` on the target afterwards:
    /// the digest matches the source's. Keys and audio are files: copy the
    /// data folder's `keys/` and `blobs/` alongside.
    Copy {
        /// A data folder (its `events/` log) or an EventStoreDB URL
        /// (`esdb://host:2113?tls=false`).
        #[arg(long, value_name = "SOURCE")]
        from: String,
        /// A data folder or an EventStoreDB URL.
        #[arg(long, value_name = "TARGET")]
        to: String,
        /// Stop after copying this many events (copy in stages).
        #[arg(long, value_name = "N")]
        max_events: Option<u64>,
    },
    /// Schema migrations.
    Migrate {
        #[command(subcommand)]
        command: MigrateCommand,
    },
    /// Retention: forecast and run the destruction of expired recordings
    /// and contact data (crypto-shredding: tombstone first, then the key).
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// The key vault: buckets of data keys and their key-encryption keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The read models (search indexes, access audit, statistics…).
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Bearer tokens for local use (HS256, signed with the secret in
    /// `<data_dir>/auth/hs256.secret` unless configured otherwise).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Demo data for trying callvault out.
    Demo {
        #[command(subcommand)]
        command: DemoCommand,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ReplayFormat {
    Json,
    Table,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// A call as the register knew it at `--as-of`: JSON.
    Call {
        /// The call id.
        id: String,
        /// The instant (RFC 3339 or YYYY-MM-DD); default now.
        #[arg(long, value_parser = parse_time)]
        as_of: Option<DateTime<Utc>>,
    },
    /// A staff member's roles at `--as-of`, and which calls the register
    /// knew then that those roles let them open (with which purposes).
    Staff {
        /// The staff id, e.g. `supervisor1`.
        id: String,
        /// The instant (RFC 3339 or YYYY-MM-DD); default now.
        #[arg(long, value_parser = parse_time)]
        as_of: Option<DateTime<Utc>>,
    },
}

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Read the whole log, upcast and decode every event; print counts per
    /// type and stored version and the upcasters that apply; name every
    /// event that fails (stream, revision, position, reason) and exit
    /// non-zero.
    Check,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint a token naming a staff member and print it. The token says
    /// only who they are; what they may do comes from the roles the
    /// register holds for them (`grantRole`). Example:
    /// `curl -H "Authorization: Bearer $(callvault token issue --staff anna.agent)" …`
    Issue {
        /// The staff id, e.g. `anna.agent`.
        #[arg(long, value_name = "ID")]
        staff: String,
        /// How long it is valid: 30m, 8h, 7d (at most 30 days).
        #[arg(long, default_value = "8h", value_parser = crate::auth::parse_ttl)]
        ttl: chrono::Duration,
    },
}

#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// Write a realistic register through the normal command path: staff
    /// and rights, calls from repeat callers on six service lines,
    /// recordings, holds, restrictions, supervisors listening, break-glass
    /// reads, chats with transcript orders. Stop `serve` first.
    Seed {
        /// How many calls (chats: a tenth of that).
        #[arg(long, default_value_t = 1000)]
        calls: u64,
        /// The same seed gives the same register.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The first day of calls (YYYY-MM-DD); they spread over `--days`.
        #[arg(long, default_value = "2025-10-01")]
        start: chrono::NaiveDate,
        /// Over how many days from `--start` the calls spread.
        #[arg(long, default_value_t = 420)]
        days: u32,
        /// Commands in flight at once (they share disk syncs).
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Each read model's version, position, lag and any rebuild.
    Status,
    /// Rebuild a read model (or all) beside the live one, then switch to
    /// it. Talks to the running service if there is one (no downtime),
    /// signing as `auth.bootstrap_admin` with a 5-minute token (or with
    /// CALLVAULT_TOKEN, an administrator's token, when HS256 is off);
    /// otherwise rebuilds here. Shows progress with rate and ETA.
    Rebuild {
        /// `calls`, `access_audit`, `retention`, `subjects`,
        /// `staff_rights`, `stats`; all when left out.
        name: Option<String>,
        /// The running service, when it is not at the configured address.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// A SHA-256 digest of each read model's contents (compare two data
    /// folders, or a model with a fresh rebuild of it).
    Digest,
}

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Show what will be destroyed in the next N days, and what holds and
    /// restrictions keep, under the current policy.
    Plan {
        /// How far ahead to look.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Pretend it is this time (RFC 3339 or YYYY-MM-DD).
        #[arg(long, value_parser = parse_time)]
        now: Option<DateTime<Utc>>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Purge every bucket that is due: write a tombstone for each expired
    /// item, then destroy the bucket's key. Held and restricted items are
    /// kept. `serve` does this on a schedule too.
    Run {
        /// Report what would happen; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Act as if it were this time (RFC 3339 or YYYY-MM-DD); tombstones
        /// record it. A time later than the clock destroys, for good, what
        /// is due only then — before its retention period ends — so it is
        /// refused unless `--dry-run` or `--allow-future` is given.
        #[arg(long, value_parser = parse_time)]
        now: Option<DateTime<Utc>>,
        /// Allow a `--now` later than the clock (drills on a copy of the
        /// register, tests). Check with `--dry-run` first.
        #[arg(long, requires = "now")]
        allow_future: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List every bucket: its day, how many keys it wraps, whether it is due.
    Status {
        /// Pretend it is this time (RFC 3339 or YYYY-MM-DD) when saying
        /// what is due.
        #[arg(long, value_parser = parse_time)]
        now: Option<DateTime<Utc>>,
    },
    /// Re-wrap every key of a bucket under a fresh key-encryption key and
    /// destroy the old one (routine rotation).
    Rotate {
        /// The bucket: a day (YYYY-MM-DD) or `hold`.
        bucket: String,
    },
}

/// Parses `--now`: RFC 3339, or a day (midnight UTC).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            format!("`{text}` is neither RFC 3339 (2027-03-04T12:00:00Z) nor a day (2027-03-04)")
        })
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = Config::load(cli.config.as_deref(), &ProcessEnv)?;
    // Operator tools print their own report; only `serve` narrates at info
    // unless a filter was asked for.
    let quiet = !matches!(cli.command, Command::Serve) && std::env::var("CALLVAULT_LOG").is_err();
    let filter = if quiet {
        "warn"
    } else {
        config.log_filter.as_str()
    };
    crate::telemetry::init(config.log_format, filter);
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Replay {
            after,
            until_position,
            stream,
            category,
            event_type,
            actor,
            since,
            until,
            limit,
            format,
        } => {
            let filter = crate::audit::HistoryFilter {
                stream,
                category,
                event_type,
                actor,
                after,
                until_position,
                since,
                until,
            };
            replay(config, filter, limit, format).await
        }
        Command::State { command } => state_command(config, command).await,
        Command::Verify {
            checkpoint,
            public_key,
        } => verify_command(config, checkpoint, public_key).await,
        Command::Checkpoint { out } => checkpoint_command(config, out).await,
        Command::Copy {
            from,
            to,
            max_events,
        } => copy_command(&from, &to, max_events).await,
        Command::Migrate {
            command: MigrateCommand::Check,
        } => migrate_check_command(config).await,
        Command::Retention { command } => retention_command(config, command).await,
        Command::Keys { command } => keys_command(config, command).await,
        Command::Projections { command } => projections_command(config, command).await,
        Command::Demo { command } => demo_command(config, command).await,
        Command::Token { command } => token_command(config, command),
    }
}

fn authenticator(config: &Config) -> anyhow::Result<crate::auth::Authenticator> {
    crate::auth::Authenticator::from_config(&config.auth).context("loading the token keys")
}

fn token_command(config: Config, command: TokenCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::Issue { staff, ttl } => {
            let staff = callvault_domain::StaffId::parse(&staff)
                .map_err(|e| anyhow::anyhow!("--staff: {e}"))?;
            let token = authenticator(&config)?.issue(&staff, Utc::now(), ttl)?;
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A token for talking to a running service: `CALLVAULT_TOKEN` if set,
/// else a five-minute one for the configured first administrator.
fn operator_token(config: &Config) -> anyhow::Result<String> {
    if let Ok(token) = std::env::var("CALLVAULT_TOKEN") {
        return Ok(token);
    }
    let admin = config.auth.bootstrap_admin.as_ref().ok_or_else(|| {
        anyhow::anyhow!("set CALLVAULT_TOKEN to an administrator's token to talk to the service")
    })?;
    authenticator(config)?
        .issue(admin, Utc::now(), chrono::Duration::minutes(5))
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot sign a token to talk to the running service ({e}): \
                 set CALLVAULT_TOKEN to an administrator's token"
            )
        })
}

/// Grants the configured first administrator their role, once: only if
/// their staff stream has never had an event (so a later revocation
/// sticks across restarts).
pub async fn bootstrap_admin(config: &Config, registry: &Registry) -> anyhow::Result<()> {
    let Some(admin) = &config.auth.bootstrap_admin else {
        return Ok(());
    };
    let loaded = registry.load::<crate::service::Staff>(admin).await?;
    if loaded.revision.is_some() {
        return Ok(());
    }
    registry
        .execute::<crate::service::Staff>(
            &callvault_domain::StaffId::system("bootstrap"),
            admin,
            callvault_domain::staff::StaffCommand::GrantRole(callvault_domain::staff::GrantRole {
                role: callvault_domain::Role::Administrator,
                supervises: vec![],
                decision_reference: Some("first administrator, from configuration".into()),
            }),
            None,
        )
        .await?;
    tracing::info!(staff = %admin, "granted the configured first administrator their role");
    Ok(())
}

async fn demo_command(config: Config, command: DemoCommand) -> anyhow::Result<ExitCode> {
    match command {
        DemoCommand::Seed {
            calls,
            seed,
            start,
            days,
            concurrency,
        } => {
            let registry = open_registry(&config, clock(None)).await?;
            let plan = crate::demo::DemoPlan {
                calls,
                seed,
                start,
                days,
                concurrency,
            };
            let total = calls + calls / 10;
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "seeding [{elapsed_precise}] {wide_bar} {pos}/{len} calls and chats, {per_sec}, eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let tick = bar.clone();
            let started = std::time::Instant::now();
            let events = crate::demo::seed(&registry, &plan, move |n| tick.set_position(n)).await?;
            bar.finish();
            println!(
                "seeded {calls} calls and {} chats: {events} events in {:.1?} ({:.0} events/s)",
                calls / 10,
                started.elapsed(),
                events as f64 / started.elapsed().as_secs_f64()
            );
            println!(
                "start `callvault serve`: the read models catch up with the new events first."
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn is_in_use(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<callvault_store::vault::VaultError>()
            .is_some_and(|v| matches!(v, callvault_store::vault::VaultError::InUse(_)))
            || c.to_string().contains("is in use by another process")
    })
}

async fn projections_command(
    config: Config,
    command: ProjectionsCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        ProjectionsCommand::Status => {
            let registry = open_registry(&config, clock(None)).await?;
            let projections = open_projections(&config, &registry).await?;
            print_status(&projections.status().await?);
            Ok(ExitCode::SUCCESS)
        }
        ProjectionsCommand::Digest => {
            let registry = open_registry(&config, clock(None)).await?;
            let projections = open_projections(&config, &registry).await?;
            for name in projections.names() {
                let view = projections.view(name).await?;
                let digest = tokio::task::spawn_blocking(move || view.digest()).await??;
                println!("{name:<14} {digest}");
            }
            Ok(ExitCode::SUCCESS)
        }
        ProjectionsCommand::Rebuild { name, url } => {
            if let Some(url) = url {
                return crate::remote::rebuild(&url, &operator_token(&config)?, name.as_deref())
                    .await;
            }
            let registry = match open_registry(&config, clock(None)).await {
                Ok(r) => r,
                Err(e) if is_in_use(&e) => {
                    let url = format!("http://{}", config.listen);
                    eprintln!(
                        "the service is running; asking it at {url} to rebuild without downtime"
                    );
                    return crate::remote::rebuild(
                        &url,
                        &operator_token(&config)?,
                        name.as_deref(),
                    )
                    .await;
                }
                Err(e) => return Err(e),
            };
            let projections = open_projections(&config, &registry).await?;
            let names = projections.rebuild(name.as_deref())?;
            let bar = progress_bar(&names.join(", "));
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                if show_rebuild(&bar, &projections, &names).await? {
                    break;
                }
            }
            print_status(&projections.status().await?);
            // Stores where each model got (see `serve`).
            projections.shutdown().await;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Moves `bar` to where the rebuilds of `names` are; true once all have
/// switched.
async fn show_rebuild(
    bar: &indicatif::ProgressBar,
    projections: &Projections,
    names: &[&str],
) -> anyhow::Result<bool> {
    let status = projections.status().await?;
    let rebuilding: Vec<_> = status
        .iter()
        .filter(|s| names.contains(&s.name.as_str()))
        .filter_map(|s| s.rebuild.clone())
        .collect();
    if let Some(err) = rebuilding.iter().find_map(|r| r.error.clone()) {
        bar.abandon();
        anyhow::bail!("the rebuild failed: {err}");
    }
    let fraction =
        rebuilding.iter().map(|r| r.fraction()).sum::<f64>() / rebuilding.len().max(1) as f64;
    let applied: u64 = rebuilding.iter().map(|r| r.applied_events).sum();
    bar.set_position((fraction * 1000.0) as u64);
    bar.set_message(format!("{applied} events folded"));
    let done = !rebuilding.is_empty() && rebuilding.iter().all(|r| r.finished);
    if done {
        bar.finish_with_message(format!("{applied} events folded; switched"));
    }
    Ok(done)
}

pub(crate) fn progress_bar(what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(1000);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {percent:>3}% eta {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_prefix(format!("rebuilding {what}"));
    bar
}

fn print_status(status: &[callvault_projections::SlotStatus]) {
    println!(
        "{:<14} {:>7} {:>10} {:>10} {:>8}  build",
        "model", "version", "position", "head", "lag"
    );
    for s in status {
        let lag = match (s.head, s.position) {
            (Some(h), Some(p)) => h.commit.saturating_sub(p.commit),
            (Some(h), None) => h.commit,
            _ => 0,
        };
        let mut note = String::new();
        if s.stale {
            note.push_str("  (older version, rebuilding)");
        }
        if let Some(r) = &s.rebuild
            && !r.finished
        {
            note.push_str(&format!("  rebuilding {:.0}%", r.fraction() * 100.0));
        }
        println!(
            "{:<14} {:>7} {:>10} {:>10} {:>8}  {}{}",
            s.name,
            s.build_version,
            s.position.map_or("-".into(), |p| p.to_string()),
            s.head.map_or("-".into(), |p| p.to_string()),
            lag,
            s.build,
            note
        );
    }
}

/// Opens the log, the vault and the blob store, and finishes any purge a
/// crash interrupted.
pub async fn open_registry(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Registry> {
    let registry = open_registry_as_is(config, clock).await?;
    if let Some(report) = retention::finish_interrupted(&registry)
        .await
        .context("finishing interrupted purges")?
    {
        for b in &report.buckets {
            tracing::warn!(bucket = %b.bucket, destroyed = b.kek_destroyed, "finished an interrupted purge");
        }
    }
    Ok(registry)
}

/// Opens the register as it is, changing nothing: for the auditors'
/// commands (`verify`, `replay`, `state`, `migrate check`), which report
/// an interrupted purge rather than finish it first.
async fn open_registry_as_is(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Registry> {
    let store = open_store(config).await?;
    let vault_dir = config.vault_dir();
    let vault = tokio::task::spawn_blocking(move || KeyVault::open(&vault_dir))
        .await?
        .with_context(|| format!("opening the key vault in {}", config.vault_dir().display()))?;
    let blobs = BlobStore::open(config.blob_dir())
        .with_context(|| format!("opening the audio store in {}", config.blob_dir().display()))?;
    Ok(Registry::new(
        store,
        Arc::new(vault),
        blobs,
        config.retention,
        clock,
    ))
}

fn clock(now: Option<DateTime<Utc>>) -> Arc<dyn Clock> {
    match now {
        Some(t) => Arc::new(FixedClock(t)),
        None => Arc::new(SystemClock),
    }
}

async fn retention_command(config: Config, command: RetentionCommand) -> anyhow::Result<ExitCode> {
    match command {
        RetentionCommand::Plan { days, now, json } => {
            let registry = open_registry(&config, clock(now)).await?;
            let plan = retention::plan(&registry, registry.now(), days).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "Retention policy v{}: recordings {} months after the call ends, contact data {} months after the contact ends.",
                plan.policy.version,
                plan.policy.recording_months,
                plan.policy.contact_history_months
            );
            println!(
                "From {} until {}:",
                plan.from.format("%Y-%m-%d %H:%M"),
                plan.until.format("%Y-%m-%d %H:%M")
            );
            if plan.buckets.is_empty() {
                println!("  nothing is due.");
            }
            for b in &plan.buckets {
                println!(
                    "  bucket {} (due {}): {} to destroy, {} kept",
                    b.bucket,
                    b.due_on,
                    b.destroyed.len(),
                    b.kept.len()
                );
                for i in &b.destroyed {
                    println!("    destroy {:<50} {}", i.owner, i.outcome);
                }
                for i in &b.kept {
                    println!("    keep    {:<50} {}", i.owner, i.outcome);
                }
            }
            println!("Held or restricted ({}):", plan.held.len());
            for i in &plan.held {
                println!("    keep    {:<50} {}", i.owner, i.outcome);
            }
            Ok(ExitCode::SUCCESS)
        }
        RetentionCommand::Run {
            dry_run,
            now,
            allow_future,
            json,
        } => {
            let clock_now = Utc::now();
            if let Some(t) = now
                && t > clock_now + chrono::Duration::minutes(1)
                && !dry_run
                && !allow_future
            {
                anyhow::bail!(
                    "--now {} is later than the clock ({}): the run would destroy, for good, \
                     what is due only then, before its retention period ends. \
                     See what it would do with --dry-run; add --allow-future if you mean it.",
                    t.format("%Y-%m-%d %H:%M UTC"),
                    clock_now.format("%Y-%m-%d %H:%M UTC")
                );
            }
            let registry = open_registry(&config, clock(now)).await?;
            // The read models hold what a purge destroys in clear, so a
            // purge owes them a rebuild into fresh storage; the debt is
            // noted before any key goes, and a crash leaves it for the
            // next run or `serve` to pay.
            let models = config.projections_dir();
            let owed = compaction::is_due(&models);
            if !dry_run {
                compaction::note_due(&models)?;
            }
            let report = retention::run(&registry, registry.now(), dry_run, None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_run_report(&report, dry_run, registry.now());
            }
            if dry_run {
                return Ok(failures_exit(&report));
            }
            if owed || owes_compaction(&report) {
                let projections = open_projections(&config, &registry).await?;
                let names = callvault_projections::WITH_PERSONAL_DATA;
                let bar = if json {
                    indicatif::ProgressBar::hidden()
                } else {
                    println!(
                        "Rebuilding the read models that held personal data ({}) …",
                        names.join(", ")
                    );
                    progress_bar(&names.join(", "))
                };
                {
                    let compaction = projections.compact();
                    tokio::pin!(compaction);
                    loop {
                        tokio::select! {
                            done = &mut compaction => {
                                done?;
                                bar.finish();
                                break;
                            }
                            () = tokio::time::sleep(std::time::Duration::from_millis(200)) => {
                                show_rebuild(&bar, &projections, &names).await?;
                            }
                        }
                    }
                }
                projections.shutdown().await;
            } else {
                compaction::clear_due(&models)?;
            }
            Ok(failures_exit(&report))
        }
    }
}

/// Names the buckets a retention run could not purge (on stderr); a
/// failing exit code if there were any.
fn failures_exit(report: &retention::RunReport) -> ExitCode {
    if report.failed.is_empty() {
        return ExitCode::SUCCESS;
    }
    for f in &report.failed {
        eprintln!("bucket {} was not purged: {}", f.bucket, f.error);
    }
    eprintln!("the other due buckets were handled; run again to retry these");
    ExitCode::FAILURE
}

/// Whether a retention run leaves the read models a rebuild to owe: it
/// destroyed something (a key or an item), or a bucket failed — perhaps
/// after destroying its KEK.
fn owes_compaction(report: &retention::RunReport) -> bool {
    !report.failed.is_empty()
        || report
            .buckets
            .iter()
            .any(|b| b.kek_destroyed || !b.purged.is_empty())
}

fn print_run_report(report: &retention::RunReport, dry_run: bool, now: DateTime<Utc>) {
    let verb = if dry_run { "would purge" } else { "purged" };
    if report.buckets.is_empty() {
        println!("No bucket is due at {}.", now.format("%Y-%m-%d %H:%M"));
    }
    for b in &report.buckets {
        println!(
            "bucket {}: {verb} {}, kept {}{}",
            b.bucket,
            b.purged.len(),
            b.kept.len(),
            if b.kek_destroyed {
                "; key-encryption key destroyed"
            } else {
                ""
            }
        );
        for i in &b.purged {
            println!("  {:<50} {}", i.owner, i.outcome);
        }
        for i in &b.kept {
            println!("  {:<50} {}", i.owner, i.outcome);
        }
    }
}

async fn keys_command(config: Config, command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Status { now } => {
            let registry = open_registry(&config, clock(now)).await?;
            let today = registry.now().date_naive();
            let status = registry.with_vault(|v| v.status()).await?;
            println!("{:<12} {:>8} {:>11}  state", "bucket", "keys", "generation");
            for s in &status {
                let state = match s.bucket {
                    Bucket::Hold => {
                        "held and restricted items; never destroyed as a bucket".to_owned()
                    }
                    Bucket::Expiry(d) if d <= today => {
                        "DUE: the next retention run destroys it".to_owned()
                    }
                    Bucket::Expiry(d) => format!("due in {} days", (d - today).num_days()),
                };
                println!(
                    "{:<12} {:>8} {:>11}  {state}",
                    s.bucket.name(),
                    s.keys,
                    s.generation
                );
            }
            if status.is_empty() {
                println!("(the vault holds no keys yet)");
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Rotate { bucket } => {
            let parsed = Bucket::parse(&bucket).ok_or_else(|| {
                anyhow::anyhow!("`{bucket}` is not a bucket: give a day (YYYY-MM-DD) or `hold`")
            })?;
            let registry = open_registry(&config, clock(None)).await?;
            let _guard = registry.custody_lock().lock().await;
            let n = registry.with_vault(move |v| v.rotate(parsed)).await?;
            println!(
                "bucket {bucket}: {n} keys re-wrapped under a new key-encryption key; the old one is destroyed"
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Opens the configured event log.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn EventStore>> {
    match &config.store {
        StoreBackend::Sled => {
            let dir = config.event_log_dir();
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("creating the data folder {}", dir.display()))?;
            let store = SledStore::open(&dir)
                .with_context(|| format!("opening the event log in {}", dir.display()))?;
            Ok(Arc::new(store))
        }
        StoreBackend::EventStoreDb { url } => Ok(Arc::new(
            callvault_store::esdb::EsdbStore::connect(url)
                .context("connecting to EventStoreDB (store.url)")?,
        )),
    }
}

/// Opens the read models (catching up with the log in the background).
pub async fn open_projections(config: &Config, registry: &Registry) -> anyhow::Result<Projections> {
    Projections::open(
        config.projections_dir(),
        registry.store().clone(),
        registry.journal().clone(),
        callvault_projections::all(config.retention),
    )
    .await
    .with_context(|| {
        format!(
            "opening the read models in {}",
            config.projections_dir().display()
        )
    })
}

async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    let auth = Arc::new(authenticator(&config)?);
    let registry = open_registry(&config, Arc::new(SystemClock)).await?;
    bootstrap_admin(&config, &registry).await?;
    let projections = open_projections(&config, &registry).await?;
    if compaction::is_due(projections.root()) {
        // A purge's rebuild of the read models was interrupted.
        tracing::warn!(
            "a purge's rebuild of the read models holding personal data did not finish; rebuilding them now"
        );
        let p = projections.clone();
        tokio::spawn(async move {
            if let Err(e) = p.compact().await {
                tracing::error!(error = %e, "could not rebuild the read models after a purge; the next start tries again");
            }
        });
    }
    match &config.smtp {
        Some(smtp) => {
            let mailer = crate::outbox::SmtpMailer::new(smtp).context("setting up SMTP")?;
            tokio::spawn(crate::outbox::run(
                registry.clone(),
                Arc::new(mailer),
                crate::outbox::Policy {
                    max_attempts: smtp.max_attempts,
                    retry: smtp.retry,
                },
            ));
        }
        None => tracing::info!(
            "no smtp.host configured: chat transcript orders are recorded and wait to be sent"
        ),
    }
    if let Some(every) = config.retention_interval {
        tokio::spawn(retention_schedule(
            registry.clone(),
            projections.clone(),
            every,
        ));
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let local = listener.local_addr()?;
    // One plain line for people and scripts (tests read the port from it).
    println!("callvault listening on http://{local} (GraphQL at http://{local}/graphql)");
    tracing::info!(
        address = %local,
        data_dir = %config.data_dir.display(),
        "callvault is serving GraphQL at http://{local}/graphql"
    );
    let runners = projections.clone();
    axum::serve(
        listener,
        app(AppState::new(
            registry,
            projections,
            config.max_upload_bytes,
            auth,
        )),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("serving HTTP")?;
    // Each read model stores how far it got, so `projections status`
    // shows no lag after a clean stop.
    runners.shutdown().await;
    tracing::info!("callvault stopped");
    Ok(ExitCode::SUCCESS)
}

/// Runs retention every `every`, starting one interval after start-up.
/// After a purge the read models that held the purged personal data are
/// rebuilt into fresh storage, so no residue lingers in their files.
async fn retention_schedule(
    registry: Registry,
    projections: Projections,
    every: std::time::Duration,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tick.tick().await;
        // A run that failed after destroying something left the note.
        let owed = compaction::is_due(projections.root());
        if let Err(e) = compaction::note_due(projections.root()) {
            tracing::error!(error = %e, "scheduled retention run skipped: could not note the read models' rebuild it would owe");
            continue;
        }
        match retention::run(&registry, registry.now(), false, None).await {
            Ok(report) if owed || owes_compaction(&report) => {
                tracing::info!(
                    buckets = report.buckets.len(),
                    "scheduled retention run purged buckets; rebuilding the read models that held their data"
                );
                if let Err(e) = projections.compact().await {
                    tracing::error!(error = %e, "could not rebuild the read models after a purge; the next start tries again");
                }
            }
            Ok(_) => {
                if let Err(e) = projections.purge_destroyed_nothing() {
                    tracing::warn!(error = %e, "could not clear the compaction note");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "scheduled retention run failed; it will be retried")
            }
        }
    }
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
    filter: crate::audit::HistoryFilter,
    limit: Option<usize>,
    format: ReplayFormat,
) -> anyhow::Result<ExitCode> {
    let registry = open_registry_as_is(&config, Arc::new(SystemClock)).await?;
    let mut cursor = filter;
    let mut remaining = limit.unwrap_or(usize::MAX);
    let mut failures = 0usize;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if matches!(format, ReplayFormat::Table) {
        writeln!(
            out,
            "{:>9}  {:<27}  {:<20}  {:<44}  {:<28}  data",
            "position", "recorded at", "actor", "stream", "type"
        )?;
    }
    while remaining > 0 {
        let page =
            crate::audit::history_page(&registry, &cursor, remaining.min(1000), None).await?;
        failures += page.undecodable;
        for e in &page.entries {
            match format {
                ReplayFormat::Json => writeln!(out, "{}", serde_json::to_string(e)?)?,
                ReplayFormat::Table => {
                    let mut data = e.data.to_string();
                    if data.len() > 100 {
                        let cut = (0..=97)
                            .rev()
                            .find(|i| data.is_char_boundary(*i))
                            .unwrap_or(0);
                        data.truncate(cut);
                        data.push('…');
                    }
                    writeln!(
                        out,
                        "{:>9}  {:<27}  {:<20}  {:<44}  {:<28}  {data}",
                        e.position,
                        e.recorded_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                        e.actor,
                        e.stream,
                        format!("{} v{}", e.event_type, e.stored_version),
                    )?;
                }
            }
        }
        remaining = remaining.saturating_sub(page.entries.len());
        match page.next {
            Some(next) => cursor.after = Some(next),
            None => break,
        }
    }
    out.flush()?;
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("{failures} event(s) could not be decoded");
        ExitCode::FAILURE
    })
}

fn counting_bar(what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {prefix} {pos} events ({per_sec}) {elapsed}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.set_prefix(what.to_owned());
    bar
}

async fn state_command(config: Config, command: StateCommand) -> anyhow::Result<ExitCode> {
    let registry = open_registry_as_is(&config, Arc::new(SystemClock)).await?;
    match command {
        StateCommand::Call { id, as_of } => {
            let call_id: callvault_domain::CallId = id
                .parse()
                .map_err(|e| anyhow::anyhow!("call id `{id}`: {e}"))?;
            let at = as_of.unwrap_or_else(Utc::now);
            let loaded = crate::audit::call_as_of(&registry, call_id, at).await?;
            let Some(revision) = loaded.revision else {
                eprintln!("the register knew no call {call_id} at {at}");
                return Ok(ExitCode::FAILURE);
            };
            let view = crate::graphql::call::CallView::from_state(&loaded.state, revision)
                .ok_or_else(|| anyhow::anyhow!("call {call_id} had no start at {at}"))?;
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "asOf": at,
                    "call": view,
                }))?
            );
            Ok(ExitCode::SUCCESS)
        }
        StateCommand::Staff { id, as_of } => {
            let staff = callvault_domain::StaffId::parse(&id)
                .map_err(|e| anyhow::anyhow!("staff id `{id}`: {e}"))?;
            let at = as_of.unwrap_or_else(Utc::now);
            let answer = crate::audit::staff_as_of(&registry, &staff, at).await?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn verify_command(
    config: Config,
    checkpoint: Option<PathBuf>,
    public_key: Option<String>,
) -> anyhow::Result<ExitCode> {
    let registry = open_registry_as_is(&config, Arc::new(SystemClock)).await?;
    let checkpoint = match &checkpoint {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let file: crate::audit::CheckpointFile = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a checkpoint file", path.display()))?;
            // Trust a key, never the file's word for it: the one given, or
            // this register's own signing key.
            let trusted = match public_key.clone() {
                Some(k) => k,
                None => match crate::audit::own_public_key(&config.vault_dir())? {
                    Some(k) => k,
                    None => anyhow::bail!(
                        "--checkpoint {}: this register has no signing key of its own; give the public key you trust with --public-key",
                        path.display()
                    ),
                },
            };
            if let Err(why) = file.check_signature(Some(&trusted)) {
                eprintln!("checkpoint {}: {why}", path.display());
                return Ok(ExitCode::FAILURE);
            }
            Some(file)
        }
        None => None,
    };
    let bar = counting_bar("verifying");
    let result =
        crate::audit::verify_register(&registry, checkpoint.as_ref(), |n| bar.set_position(n))
            .await;
    bar.finish_and_clear();
    let report = match result {
        Ok(r) => r,
        Err(crate::audit::VerifyFailure::Broken(b)) => {
            eprintln!(
                "TAMPERED: stream {}, revision {}, position {} ({}): {}",
                b.stream, b.revision, b.position, b.event_type, b.fault
            );
            return Ok(ExitCode::FAILURE);
        }
        Err(crate::audit::VerifyFailure::App(e)) => return Err(e.into()),
    };
    let s = &report.summary;
    println!(
        "{} events in {} streams: every hash chain intact; log digest {} at position {}",
        s.events,
        s.streams,
        s.digest_hex(),
        s.head.map_or("-".to_owned(), |p| p.to_string())
    );
    println!(
        "{} purged recordings: {}",
        report.tombstones,
        if report.leftovers.is_empty() {
            "no key and no audio left".to_owned()
        } else {
            format!("{} problem(s)", report.leftovers.len())
        }
    );
    if s.times_back > 0 {
        println!(
            "note: {} event(s) carry a recorded time earlier than the event before them \
             (a writer's clock stepped back, or concurrent writers on EventStoreDB); \
             order is proven by positions and chains, not by these times",
            s.times_back
        );
    }
    for l in &report.leftovers {
        eprintln!("NOT DESTROYED: {l}");
    }
    let mut ok = report.leftovers.is_empty();
    match &report.checkpoint {
        None => {}
        Some(crate::audit::CheckpointCheck::Extends { position, events }) => println!(
            "checkpoint: signature valid; the log extends the signed one ({events} events up to position {position})"
        ),
        Some(crate::audit::CheckpointCheck::Shorter { events, log_events }) => {
            ok = false;
            eprintln!(
                "CHECKPOINT: the signed log had {events} events; this one has only {log_events}: events were removed"
            );
        }
        Some(crate::audit::CheckpointCheck::Differs { events }) => {
            ok = false;
            eprintln!(
                "CHECKPOINT: the first {events} events differ from the signed ones: the log was rewritten or reordered"
            );
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn checkpoint_command(config: Config, out: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let registry = open_registry(&config, Arc::new(SystemClock)).await?;
    let bar = counting_bar("verifying");
    let signed =
        crate::audit::sign_checkpoint(&registry, &config.vault_dir(), |n| bar.set_position(n))
            .await;
    bar.finish_and_clear();
    let signed = match signed {
        Ok(s) => s,
        Err(crate::audit::VerifyFailure::Broken(b)) => {
            eprintln!("refusing to sign a broken log: {b}");
            return Ok(ExitCode::FAILURE);
        }
        Err(crate::audit::VerifyFailure::App(e)) => return Err(e.into()),
    };
    let file = crate::audit::CheckpointFile::from(&signed);
    let json = serde_json::to_string_pretty(&file)?;
    if let Some(path) = &out {
        std::fs::write(path, format!("{json}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{json}");
    eprintln!(
        "signed {} events up to position {}; public key {}",
        signed.events, signed.position, signed.public_key
    );
    Ok(ExitCode::SUCCESS)
}

async fn migrate_check_command(config: Config) -> anyhow::Result<ExitCode> {
    let registry = open_registry_as_is(&config, Arc::new(SystemClock)).await?;
    let bar = counting_bar("decoding");
    let report = crate::audit::migrate_check(&registry, |n| bar.set_position(n)).await?;
    bar.finish_and_clear();
    println!("{:<30} {:>7} {:>10}  path", "type", "stored", "events");
    for ((event_type, version), count) in &report.counts {
        let current = callvault_migrations::upcast::current_version(event_type);
        let path = match current {
            None => "unknown type".to_owned(),
            Some(c) if c == *version => "current".to_owned(),
            Some(c) if c < *version => format!("newer than this build (v{c})"),
            Some(c) => (*version..c)
                .map(|v| {
                    callvault_migrations::upcast::UPCASTERS
                        .iter()
                        .find(|u| u.event_type == event_type && u.from_version == v)
                        .map_or(format!("v{v}→v{}: NO UPCASTER", v + 1), |u| {
                            format!("v{v}→v{}: {}", v + 1, u.why)
                        })
                })
                .collect::<Vec<_>>()
                .join("; "),
        };
        println!(
            "{event_type:<30} {:>7} {count:>10}  {path}",
            format!("v{version}")
        );
    }
    println!("{} events read", report.events);
    if report.failures.is_empty() {
        println!("every event upcasts and decodes");
        Ok(ExitCode::SUCCESS)
    } else {
        for f in &report.failures {
            eprintln!("FAILED: {f}");
        }
        eprintln!("{} event(s) failed", report.failures.len());
        Ok(ExitCode::FAILURE)
    }
}

/// A log named on the command line: an EventStoreDB URL or a data folder.
/// Opens `--from` or `--to` of `copy`: an EventStoreDB URL or a data
/// folder. The source must already hold a log (a mistyped path is an
/// error, not an empty log copied).
fn open_log(spec: &str, must_exist: bool) -> anyhow::Result<Arc<dyn EventStore>> {
    if spec.starts_with("esdb://")
        || spec.starts_with("esdb+discover://")
        || spec.starts_with("kurrentdb://")
    {
        return Ok(Arc::new(
            callvault_store::esdb::EsdbStore::connect(spec)
                .context("connecting to EventStoreDB")?,
        ));
    }
    let dir = PathBuf::from(spec).join("events");
    if must_exist && !dir.is_dir() {
        anyhow::bail!(
            "--from {spec}: no event log at {} (give a data folder that contains `events/`, or an esdb:// URL)",
            dir.display()
        );
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(Arc::new(SledStore::open(&dir).with_context(|| {
        format!("opening the event log in {}", dir.display())
    })?))
}

async fn copy_command(from: &str, to: &str, max_events: Option<u64>) -> anyhow::Result<ExitCode> {
    let source = open_log(from, true)?;
    let target = open_log(to, false)?;
    let head = source.head_position().await?.map_or(0, |p| p.commit);
    let bar = indicatif::ProgressBar::new(head.max(1));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "copying [{elapsed_precise}] {wide_bar} {percent:>3}% eta {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let summary = crate::audit::copy_log(
        source.as_ref(),
        target.as_ref(),
        max_events,
        |p, copied, skipped| {
            bar.set_position(p);
            bar.set_message(format!("{copied} copied, {skipped} already there"));
        },
    )
    .await?;
    bar.finish_and_clear();
    println!(
        "{} events copied, {} already on the target; the source has {} events",
        summary.copied, summary.skipped, summary.seen
    );
    if summary.stopped_early {
        println!("stopped after --max-events; run the same command again to continue");
    } else {
        println!(
            "done: verify the target and compare its digest with the source's: \
             `CALLVAULT_DATA_DIR=<target folder> callvault verify`, or for a cluster \
             `CALLVAULT_STORE_BACKEND=eventstoredb CALLVAULT_STORE_URL=<url> callvault verify`"
        );
    }
    Ok(ExitCode::SUCCESS)
}
