//! `scripts/load`: drives a running `callvault serve` with a realistic mix
//! from many concurrent clients and prints throughput and latency
//! percentiles per operation.
//!
//! cargo run --release -p callvault --example load -- [--url http://127.0.0.1:8080]
//!     [--clients 16] [--seconds 30] [--data ./data]
//! Tokens are minted with the data folder's HS256 secret for the load's own
//! staff, whose roles the first administrator (`admin`) grants.

mod driver;

use std::{sync::Arc, time::Duration};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = arg("--url", "http://127.0.0.1:8080");
    let clients: usize = arg("--clients", "16").parse()?;
    let seconds: u64 = arg("--seconds", "30").parse()?;
    let data = arg("--data", "./data");
    let config = callvault::config::Config::load(None, &callvault::config::ProcessEnv)?;
    let mut auth_config = config.auth.clone();
    if auth_config.hs256_secret_file.is_some()
        && std::env::var("CALLVAULT_AUTH_HS256_SECRET_FILE").is_err()
    {
        auth_config.hs256_secret_file = Some(std::path::Path::new(&data).join("auth/hs256.secret"));
    }
    let auth = callvault::auth::Authenticator::from_config(&auth_config)?;
    let now = chrono::Utc::now();
    let token = |s: &str| -> anyhow::Result<String> {
        Ok(auth.issue(
            &callvault_domain::StaffId::parse(s)?,
            now,
            chrono::Duration::hours(2),
        )?)
    };
    let client = reqwest::Client::new();
    let admin = config
        .auth
        .bootstrap_admin
        .as_ref()
        .map_or_else(|| "admin".to_owned(), ToString::to_string);
    driver::setup(&client, &base, &token(&admin)?).await?;
    let tokens = driver::Tokens {
        pbx: token("load.pbx")?,
        analyst: token("load.analyst")?,
        supervisor: token("load.supervisor")?,
        auditor: token("load.auditor")?,
    };
    let report = driver::run(
        &base,
        tokens,
        clients,
        Duration::from_secs(seconds),
        Arc::new(std::sync::atomic::AtomicBool::new(false)),
    )
    .await;
    report.print(clients);
    Ok(())
}
