//! The real `callvault serve` in a child process, on a port it picks itself
//! (read back from its first line of output, so parallel tests never race
//! for a port). Killed on drop.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
};

use serde_json::{Value, json};

pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Server {
    /// Starts `serve` on `data`, with the tests' token secret and
    /// `test.operator` as first administrator. Call [`Server::grant_staff`]
    /// to give the tests' staff their roles.
    pub fn start(data: &Path) -> Self {
        std::fs::create_dir_all(data).expect("data folder");
        let secret = data.join("test-hs256.secret");
        std::fs::write(&secret, super::SECRET).expect("write the token secret");
        let mut child = Command::new(env!("CARGO_BIN_EXE_callvault"))
            .arg("serve")
            .env("CALLVAULT_DATA_DIR", data)
            .env("CALLVAULT_AUTH_HS256_SECRET_FILE", &secret)
            .env("CALLVAULT_AUTH_BOOTSTRAP_ADMIN", super::OPERATOR)
            .env("CALLVAULT_LISTEN", "127.0.0.1:0")
            .env("CALLVAULT_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start callvault serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let port = line
            .split("http://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("callvault did not say where it listens: {line:?}"));
        Self { child, port }
    }

    /// [`Server::start`], then [`Server::grant_staff`].
    pub async fn started(data: &Path) -> Self {
        let server = Self::start(data);
        server.grant_staff().await;
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Gives the tests' staff (`common::STAFF`) their roles; roles already
    /// held (a restarted server) are left as they are.
    pub async fn grant_staff(&self) {
        // Nobody grants themselves a role: the operator (the first
        // administrator) grants everyone else, then another administrator
        // grants the operator its other roles.
        let (others, own): (Vec<_>, Vec<_>) = super::STAFF
            .iter()
            .partition(|(who, _, _)| *who != super::OPERATOR);
        let by_operator = others.into_iter().map(|s| (super::OPERATOR, s));
        let by_admin = own.into_iter().map(|s| ("alma.admin", s));
        for (granter, (who, role, team)) in by_operator.chain(by_admin) {
            let answer = self
                .gql_as(
                    granter,
                    "mutation($i: GrantRoleInput!) { grantRole(input: $i) { staffId } }",
                    json!({"i": {"staffId": who, "role": role.name(), "supervises": team}}),
                )
                .await;
            let code = answer["errors"][0]["extensions"]["code"].as_str();
            assert!(
                code.is_none() || code == Some("CONFLICT"),
                "granting {who} {role}: {answer}"
            );
        }
    }

    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        self.gql_as(super::OPERATOR, query, variables).await
    }

    pub async fn gql_as(&self, staff: &str, query: &str, variables: Value) -> Value {
        reqwest::Client::new()
            .post(self.url("/graphql"))
            .header("authorization", super::bearer(staff))
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await
            .expect("POST /graphql")
            .json()
            .await
            .expect("a JSON answer")
    }

    /// Peak resident memory of the server so far.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Stops the server with SIGKILL: no chance to flush anything.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
