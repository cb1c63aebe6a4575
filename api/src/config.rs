//! Configuration: read once at start-up from an optional TOML file and
//! `CALLVAULT_*` environment variables (which win), validated into a typed
//! [`Config`], and passed explicitly from there on. A bad setting stops
//! start-up with one message that names the setting and where it came from.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::Deserialize;

/// The settings as written in the TOML file; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub log: Option<RawLog>,
    pub store: Option<RawStore>,
    pub retention: Option<RawRetention>,
    pub audio: Option<RawAudio>,
    pub auth: Option<RawAuth>,
    pub smtp: Option<RawSmtp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmtp {
    /// The mail server; without it no transcript is sent (orders wait).
    pub host: Option<String>,
    pub port: Option<u16>,
    /// `starttls` (default), `tls` (implicit, port 465) or `none` (local
    /// test servers only).
    pub tls: Option<String>,
    pub username: Option<String>,
    /// A file holding the password (not the password itself).
    pub password_file: Option<PathBuf>,
    /// The sender address.
    pub from: Option<String>,
    /// Attempts per order before it is reported as failed for good.
    pub max_attempts: Option<u32>,
    /// The first retry waits this long; each next one twice as long.
    pub retry_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// The `iss` every token must carry.
    pub issuer: Option<String>,
    /// The `aud` every token must carry.
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_seconds: Option<u64>,
    /// The HS256 secret for locally minted tokens; created (owner-only) on
    /// first use. Default `<data_dir>/auth/hs256.secret`.
    pub hs256_secret_file: Option<PathBuf>,
    /// Accept no HS256 tokens (only an identity provider's).
    pub disable_hs256: Option<bool>,
    /// An RS256 public key (PEM) of an identity provider.
    pub rs256_public_key_file: Option<PathBuf>,
    /// An Ed25519 public key (PEM) for EdDSA tokens.
    pub eddsa_public_key_file: Option<PathBuf>,
    /// A JWKS file (RS256 and EdDSA keys, chosen by `kid`).
    pub jwks_file: Option<PathBuf>,
    /// The staff id made administrator on first start (R11's first grant).
    pub bootstrap_admin: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    /// Bump when the rules below change; tombstones record it.
    pub policy_version: Option<u32>,
    pub recording_months: Option<u32>,
    pub contact_history_months: Option<u32>,
    /// How often `serve` runs retention, in minutes (0: never).
    pub interval_minutes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudio {
    /// Largest recording accepted, in MiB.
    pub max_upload_mib: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `text` (default) or `json`.
    pub format: Option<String>,
    /// A tracing filter such as `info` or `callvault=debug`.
    pub filter: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// `sled` (default) or `eventstoredb`.
    pub backend: Option<String>,
    /// For `eventstoredb`: `esdb://host:2113?tls=false`, or a cluster
    /// `esdb://a:2113,b:2113,c:2113?tls=true`.
    pub url: Option<String>,
}

/// Where the event log lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    /// The embedded default: a sled database under the data folder.
    Sled,
    /// An EventStoreDB / KurrentDB node or cluster.
    EventStoreDb { url: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub store: StoreBackend,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub retention: callvault_domain::RetentionPolicy,
    /// How often `serve` runs retention; `None`: only by hand.
    pub retention_interval: Option<std::time::Duration>,
    pub max_upload_bytes: u64,
    pub auth: AuthConfig,
    /// `None`: no mail server configured; transcript orders wait.
    pub smtp: Option<SmtpConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    StartTls,
    Implicit,
    None,
}

/// Where chat transcripts are mailed from.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub from: callvault_domain::EmailAddress,
    pub max_attempts: u32,
    pub retry: std::time::Duration,
}

/// How bearer tokens are checked (see `auth.rs`).
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub issuer: String,
    pub audience: String,
    pub leeway_seconds: u64,
    /// `None`: HS256 tokens are not accepted.
    pub hs256_secret_file: Option<PathBuf>,
    pub rs256_public_key_file: Option<PathBuf>,
    pub eddsa_public_key_file: Option<PathBuf>,
    pub jwks_file: Option<PathBuf>,
    pub bootstrap_admin: Option<callvault_domain::StaffId>,
}

pub const DEFAULT_ISSUER: &str = "callvault";
pub const DEFAULT_AUDIENCE: &str = "callvault";
pub const DEFAULT_BOOTSTRAP_ADMIN: &str = "admin";

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./data";

/// A setting that can't be used, with where it came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("can't read the configuration file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {path} is not valid: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error("setting `{setting}` (from {origin}) is invalid: {reason}")]
    Invalid {
        setting: &'static str,
        origin: String,
        reason: String,
    },
}

/// Reads the environment variables we know; a seam for tests.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Config {
    /// Loads the file (if given) and overlays the environment.
    pub fn load(file: Option<&Path>, env: &dyn Env) -> Result<Self, ConfigError> {
        let raw = match file {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
                        path: path.to_owned(),
                        source,
                    })?;
                toml::from_str::<RawConfig>(&text).map_err(|e| ConfigError::ParseFile {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?
            }
            None => RawConfig::default(),
        };
        Self::from_raw(raw, file, env)
    }

    fn from_raw(raw: RawConfig, file: Option<&Path>, env: &dyn Env) -> Result<Self, ConfigError> {
        let file_origin = || match file {
            Some(p) => format!("file {}", p.display()),
            None => "defaults".to_owned(),
        };
        let pick = |var: &str, from_file: Option<String>, default: &str| -> (String, String) {
            if let Some(v) = env.var(var) {
                (v, format!("environment variable {var}"))
            } else if let Some(v) = from_file {
                (v, file_origin())
            } else {
                (default.to_owned(), "defaults".to_owned())
            }
        };

        let (listen, origin) = pick("CALLVAULT_LISTEN", raw.listen, DEFAULT_LISTEN);
        let listen: SocketAddr = listen.trim().parse().map_err(|e| ConfigError::Invalid {
            setting: "listen",
            origin,
            reason: format!("`{listen}` is not an address such as 127.0.0.1:8080 ({e})"),
        })?;

        let (data_dir, origin) = pick(
            "CALLVAULT_DATA_DIR",
            raw.data_dir.map(|p| p.to_string_lossy().into_owned()),
            DEFAULT_DATA_DIR,
        );
        if data_dir.trim().is_empty() {
            return Err(ConfigError::Invalid {
                setting: "data_dir",
                origin,
                reason: "it is empty".into(),
            });
        }
        let data_dir = PathBuf::from(data_dir);
        if data_dir.exists() && !data_dir.is_dir() {
            return Err(ConfigError::Invalid {
                setting: "data_dir",
                origin,
                reason: format!("{} exists and is not a folder", data_dir.display()),
            });
        }

        let raw_store = raw.store.unwrap_or_default();
        let (backend, origin) = pick("CALLVAULT_STORE_BACKEND", raw_store.backend, "sled");
        let url = env.var("CALLVAULT_STORE_URL").or(raw_store.url);
        let store = match (backend.trim(), url) {
            ("sled", _) => StoreBackend::Sled,
            ("eventstoredb" | "kurrentdb", Some(url)) if !url.trim().is_empty() => {
                StoreBackend::EventStoreDb {
                    url: url.trim().to_owned(),
                }
            }
            ("eventstoredb" | "kurrentdb", _) => {
                return Err(ConfigError::Invalid {
                    setting: "store.url",
                    origin,
                    reason: "the eventstoredb backend needs `store.url` (or CALLVAULT_STORE_URL), \
                             e.g. esdb://localhost:2113?tls=false"
                        .into(),
                });
            }
            (other, _) => {
                return Err(ConfigError::Invalid {
                    setting: "store.backend",
                    origin,
                    reason: format!(
                        "`{other}` is not a backend this build knows; use `sled` or `eventstoredb`"
                    ),
                });
            }
        };

        let raw_log = raw.log.unwrap_or_default();
        let (format, origin) = pick("CALLVAULT_LOG_FORMAT", raw_log.format, "text");
        let log_format = match format.trim() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::Invalid {
                    setting: "log.format",
                    origin,
                    reason: format!("`{other}` is neither `text` nor `json`"),
                });
            }
        };
        let (log_filter, origin) = pick("CALLVAULT_LOG", raw_log.filter, "info");
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log_filter) {
            return Err(ConfigError::Invalid {
                setting: "log.filter",
                origin,
                reason: e.to_string(),
            });
        }

        let raw_retention = raw.retention.unwrap_or_default();
        let default_policy = callvault_domain::RetentionPolicy::default();
        // A whole number and where it came from (for errors about its range).
        let number_at = |setting: &'static str, var: &str, from_file: Option<u64>, default: u64| {
            let (text, origin) = pick(var, from_file.map(|n| n.to_string()), &default.to_string());
            match text.trim().parse::<u64>() {
                Ok(n) => Ok((n, origin)),
                Err(_) => Err(ConfigError::Invalid {
                    setting,
                    origin,
                    reason: format!("`{text}` is not a whole number"),
                }),
            }
        };
        let number = |setting: &'static str, var: &str, from_file: Option<u64>, default: u64| {
            number_at(setting, var, from_file, default).map(|(n, _)| n)
        };
        let months = |setting, var, from_file: Option<u32>, default: u32| {
            let (n, origin) =
                number_at(setting, var, from_file.map(u64::from), u64::from(default))?;
            u32::try_from(n)
                .ok()
                .filter(|m| (1..=1200).contains(m))
                .ok_or_else(|| ConfigError::Invalid {
                    setting,
                    origin,
                    reason: format!("{n} months is not between 1 and 1200"),
                })
        };
        let retention = callvault_domain::RetentionPolicy {
            version: number(
                "retention.policy_version",
                "CALLVAULT_RETENTION_POLICY_VERSION",
                raw_retention.policy_version.map(u64::from),
                u64::from(default_policy.version),
            )?
            .try_into()
            .unwrap_or(u32::MAX),
            recording_months: months(
                "retention.recording_months",
                "CALLVAULT_RETENTION_RECORDING_MONTHS",
                raw_retention.recording_months,
                default_policy.recording_months,
            )?,
            contact_history_months: months(
                "retention.contact_history_months",
                "CALLVAULT_RETENTION_CONTACT_HISTORY_MONTHS",
                raw_retention.contact_history_months,
                default_policy.contact_history_months,
            )?,
        };
        let interval = number(
            "retention.interval_minutes",
            "CALLVAULT_RETENTION_INTERVAL_MINUTES",
            raw_retention.interval_minutes,
            60,
        )?;
        let raw_audio = raw.audio.unwrap_or_default();
        let max_upload_mib = number(
            "audio.max_upload_mib",
            "CALLVAULT_AUDIO_MAX_UPLOAD_MIB",
            raw_audio.max_upload_mib,
            2048,
        )?;

        let raw_auth = raw.auth.unwrap_or_default();
        let (issuer, _) = pick("CALLVAULT_AUTH_ISSUER", raw_auth.issuer, DEFAULT_ISSUER);
        let (audience, _) = pick(
            "CALLVAULT_AUTH_AUDIENCE",
            raw_auth.audience,
            DEFAULT_AUDIENCE,
        );
        let (leeway_seconds, origin) = number_at(
            "auth.leeway_seconds",
            "CALLVAULT_AUTH_LEEWAY_SECONDS",
            raw_auth.leeway_seconds,
            30,
        )?;
        // Clock skew, not a grace period: an expired token must not live on.
        if leeway_seconds > MAX_LEEWAY_SECONDS {
            return Err(ConfigError::Invalid {
                setting: "auth.leeway_seconds",
                origin,
                reason: format!(
                    "{leeway_seconds} s is more than the {MAX_LEEWAY_SECONDS} s of clock skew it is for"
                ),
            });
        }
        let path = |var: &str, from_file: Option<PathBuf>| {
            env.var(var)
                .map(PathBuf::from)
                .or(from_file)
                .filter(|p| !p.as_os_str().is_empty())
        };
        let (disable_hs256, origin) = pick(
            "CALLVAULT_AUTH_DISABLE_HS256",
            raw_auth.disable_hs256.map(|b| b.to_string()),
            "false",
        );
        let disable_hs256 = match disable_hs256.trim() {
            "true" | "1" => true,
            "false" | "0" => false,
            other => {
                return Err(ConfigError::Invalid {
                    setting: "auth.disable_hs256",
                    origin,
                    reason: format!("`{other}` is neither true nor false"),
                });
            }
        };
        let hs256_secret_file = (!disable_hs256).then(|| {
            path(
                "CALLVAULT_AUTH_HS256_SECRET_FILE",
                raw_auth.hs256_secret_file,
            )
            .unwrap_or_else(|| data_dir.join("auth").join("hs256.secret"))
        });
        let (admin, origin) = pick(
            "CALLVAULT_AUTH_BOOTSTRAP_ADMIN",
            raw_auth.bootstrap_admin,
            DEFAULT_BOOTSTRAP_ADMIN,
        );
        let bootstrap_admin = if admin.trim().is_empty() {
            None
        } else {
            Some(callvault_domain::StaffId::parse(admin.trim()).map_err(|e| {
                ConfigError::Invalid {
                    setting: "auth.bootstrap_admin",
                    origin,
                    reason: e.to_string(),
                }
            })?)
        };
        let auth = AuthConfig {
            issuer,
            audience,
            leeway_seconds,
            hs256_secret_file,
            rs256_public_key_file: path(
                "CALLVAULT_AUTH_RS256_PUBLIC_KEY_FILE",
                raw_auth.rs256_public_key_file,
            ),
            eddsa_public_key_file: path(
                "CALLVAULT_AUTH_EDDSA_PUBLIC_KEY_FILE",
                raw_auth.eddsa_public_key_file,
            ),
            jwks_file: path("CALLVAULT_AUTH_JWKS_FILE", raw_auth.jwks_file),
            bootstrap_admin,
        };
        if auth.hs256_secret_file.is_none()
            && auth.rs256_public_key_file.is_none()
            && auth.eddsa_public_key_file.is_none()
            && auth.jwks_file.is_none()
        {
            return Err(ConfigError::Invalid {
                setting: "auth.disable_hs256",
                origin: "configuration".into(),
                reason: "with HS256 disabled, configure an RS256 or EdDSA key or a JWKS file, \
                         or no token could ever be accepted"
                    .into(),
            });
        }

        let raw_smtp = raw.smtp.unwrap_or_default();
        let smtp = match env.var("CALLVAULT_SMTP_HOST").or(raw_smtp.host) {
            None => None,
            Some(host) if host.trim().is_empty() => None,
            Some(host) => {
                let (tls, tls_origin) = pick("CALLVAULT_SMTP_TLS", raw_smtp.tls, "starttls");
                let origin = tls_origin.clone();
                let tls = match tls.trim() {
                    "starttls" => SmtpTls::StartTls,
                    "tls" => SmtpTls::Implicit,
                    "none" => SmtpTls::None,
                    other => {
                        return Err(ConfigError::Invalid {
                            setting: "smtp.tls",
                            origin,
                            reason: format!("`{other}` is not starttls, tls or none"),
                        });
                    }
                };
                let default_port = match tls {
                    SmtpTls::Implicit => 465,
                    _ => 587,
                };
                let (port, origin) = number_at(
                    "smtp.port",
                    "CALLVAULT_SMTP_PORT",
                    raw_smtp.port.map(u64::from),
                    default_port,
                )?;
                let port = u16::try_from(port).map_err(|_| ConfigError::Invalid {
                    setting: "smtp.port",
                    origin,
                    reason: format!("{port} is not a port"),
                })?;
                let (from, origin) = pick(
                    "CALLVAULT_SMTP_FROM",
                    raw_smtp.from,
                    "callvault@localhost.localdomain",
                );
                let from = callvault_domain::EmailAddress::parse(&from).map_err(|e| {
                    ConfigError::Invalid {
                        setting: "smtp.from",
                        origin,
                        reason: e.to_string(),
                    }
                })?;
                let max_attempts = number(
                    "smtp.max_attempts",
                    "CALLVAULT_SMTP_MAX_ATTEMPTS",
                    raw_smtp.max_attempts.map(u64::from),
                    5,
                )?
                .clamp(1, 100) as u32;
                let retry = number(
                    "smtp.retry_seconds",
                    "CALLVAULT_SMTP_RETRY_SECONDS",
                    raw_smtp.retry_seconds,
                    30,
                )?;
                let username = env.var("CALLVAULT_SMTP_USERNAME").or(raw_smtp.username);
                if tls == SmtpTls::None && username.is_some() {
                    // The login, and every transcript after it, would
                    // cross the network in clear.
                    return Err(ConfigError::Invalid {
                        setting: "smtp.tls",
                        origin: tls_origin,
                        reason: "`none` with `smtp.username`: credentials need starttls or tls"
                            .into(),
                    });
                }
                Some(SmtpConfig {
                    host: host.trim().to_owned(),
                    port,
                    tls,
                    username,
                    password_file: path("CALLVAULT_SMTP_PASSWORD_FILE", raw_smtp.password_file),
                    from,
                    max_attempts,
                    retry: std::time::Duration::from_secs(retry),
                })
            }
        };

        Ok(Self {
            smtp,
            auth,
            listen,
            data_dir,
            store,
            log_format,
            log_filter,
            retention,
            retention_interval: (interval > 0)
                .then(|| std::time::Duration::from_secs(interval * 60)),
            max_upload_bytes: max_upload_mib.saturating_mul(1024 * 1024),
        })
    }

    /// The sled database of the event log.
    pub fn event_log_dir(&self) -> PathBuf {
        self.data_dir.join("events")
    }

    /// The key vault (KEKs and wrapped data keys).
    pub fn vault_dir(&self) -> PathBuf {
        self.data_dir.join("keys")
    }

    /// Encrypted audio.
    pub fn blob_dir(&self) -> PathBuf {
        self.data_dir.join("blobs")
    }

    /// The read models.
    pub fn projections_dir(&self) -> PathBuf {
        self.data_dir.join("projections")
    }
}

/// The most clock skew tokens are allowed (`auth.leeway_seconds`).
pub const MAX_LEEWAY_SECONDS: u64 = 300;

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct FakeEnv(HashMap<&'static str, &'static str>);

    impl Env for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|s| s.to_string())
        }
    }

    fn env(pairs: &[(&'static str, &'static str)]) -> FakeEnv {
        FakeEnv(pairs.iter().copied().collect())
    }

    #[test]
    fn defaults_are_the_embedded_store_on_localhost() {
        let c = Config::load(None, &env(&[])).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.store, StoreBackend::Sled);
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("callvault.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/x\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&file), &env(&[("CALLVAULT_LISTEN", "0.0.0.0:7000")])).unwrap();
        assert_eq!(c.listen, "0.0.0.0:7000".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn a_bad_listen_address_names_the_setting_and_its_origin() {
        let err = Config::load(None, &env(&[("CALLVAULT_LISTEN", "localhost")])).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`listen`"), "{msg}");
        assert!(msg.contains("CALLVAULT_LISTEN"), "{msg}");
    }

    #[test]
    fn a_number_out_of_range_names_where_it_came_from() {
        let err = Config::load(None, &env(&[("CALLVAULT_RETENTION_RECORDING_MONTHS", "0")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("retention.recording_months"), "{err}");
        assert!(
            err.contains("CALLVAULT_RETENTION_RECORDING_MONTHS"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("callvault.toml");
        std::fs::write(&file, "[retention]\nrecording_months = 0\n").unwrap();
        let err = Config::load(Some(&file), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("callvault.toml"), "{err}");
        let err = Config::load(
            None,
            &env(&[
                ("CALLVAULT_SMTP_HOST", "mail"),
                ("CALLVAULT_SMTP_PORT", "70000"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("smtp.port"), "{err}");
        assert!(err.contains("CALLVAULT_SMTP_PORT"), "{err}");
        let err = Config::load(None, &env(&[("CALLVAULT_AUTH_LEEWAY_SECONDS", "86400")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth.leeway_seconds"), "{err}");
        let err = Config::load(
            None,
            &env(&[
                ("CALLVAULT_SMTP_HOST", "mail"),
                ("CALLVAULT_SMTP_TLS", "none"),
                ("CALLVAULT_SMTP_USERNAME", "callvault"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("credentials need starttls or tls"), "{err}");
        assert!(err.contains("CALLVAULT_SMTP_TLS"), "{err}");
    }

    #[test]
    fn an_unknown_key_in_the_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("callvault.toml");
        std::fs::write(&file, "lisen = \"127.0.0.1:9000\"\n").unwrap();
        let err = Config::load(Some(&file), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
    }

    #[test]
    fn a_data_dir_that_is_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        let leaked: &'static str = Box::leak(file.to_string_lossy().into_owned().into_boxed_str());
        let err = Config::load(None, &env(&[("CALLVAULT_DATA_DIR", leaked)])).unwrap_err();
        assert!(err.to_string().contains("not a folder"), "{err}");
    }
}
