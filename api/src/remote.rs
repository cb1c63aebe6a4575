//! Talking to a running `callvault serve` from the command line, for the
//! operations that must not stop it (a read model rebuild).

use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::{Value, json};

async fn gql(url: &str, token: &str, query: &str, variables: Value) -> anyhow::Result<Value> {
    let client = reqwest::Client::new();
    let answer: Value = client
        .post(format!("{}/graphql", url.trim_end_matches('/')))
        .bearer_auth(token)
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .with_context(|| format!("reaching the service at {url}"))?
        .json()
        .await
        .context("reading the service's answer")?;
    if let Some(err) = answer["errors"].get(0) {
        anyhow::bail!("the service refused: {}", err["message"]);
    }
    Ok(answer["data"].clone())
}

/// Asks the service to rebuild, then follows its progress.
pub async fn rebuild(url: &str, token: &str, name: Option<&str>) -> anyhow::Result<ExitCode> {
    let started = gql(
        url,
        token,
        "mutation($name: String) { rebuildProjection(name: $name) }",
        json!({"name": name}),
    )
    .await?;
    let names: Vec<String> = started["rebuildProjection"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let bar = crate::cli::progress_bar(&names.join(", "));
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let data = gql(
            url,
            token,
            "{ projections { name rebuild { fraction appliedEvents finished error } } }",
            json!({}),
        )
        .await?;
        let rebuilds: Vec<&Value> = data["projections"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|p| names.iter().any(|n| p["name"] == n.as_str()))
                    .map(|p| &p["rebuild"])
                    .collect()
            })
            .unwrap_or_default();
        if let Some(err) = rebuilds.iter().find_map(|r| r["error"].as_str()) {
            bar.abandon();
            anyhow::bail!("the rebuild failed: {err}");
        }
        let fraction = rebuilds
            .iter()
            .map(|r| r["fraction"].as_f64().unwrap_or(0.0))
            .sum::<f64>()
            / rebuilds.len().max(1) as f64;
        let applied: u64 = rebuilds
            .iter()
            .map(|r| r["appliedEvents"].as_u64().unwrap_or(0))
            .sum();
        bar.set_position((fraction * 1000.0) as u64);
        bar.set_message(format!("{applied} events folded"));
        if rebuilds.iter().all(|r| r["finished"] == true) {
            bar.finish_with_message(format!("{applied} events folded; switched"));
            return Ok(ExitCode::SUCCESS);
        }
    }
}
