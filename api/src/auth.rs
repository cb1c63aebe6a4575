//! Authentication: who is calling, from a bearer JWT (R13). A token only
//! says *who* (`sub`, a staff id); what they may do is decided from the
//! roles the register itself holds for them (`access.rs`).
//!
//! Keys come from configuration: an HS256 secret for tokens minted here
//! (`callvault token issue`), and RS256 / EdDSA public keys (PEM files or
//! a JWKS file, chosen by `kid`) for a real identity provider. Every token
//! must carry the configured issuer and audience and an expiry; `nbf` and
//! `exp` are checked with the configured leeway. Errors say what is wrong
//! with a token, never what it contains.

use std::{
    io::Write,
    num::NonZeroUsize,
    path::{Path, PathBuf},
    sync::{Mutex, PoisonError},
};

use callvault_domain::StaffId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{config::AuthConfig, error::AppError};

/// Longest lifetime `token issue` mints.
pub const MAX_TTL: chrono::Duration = chrono::Duration::days(30);

fn refused(why: &str) -> AppError {
    AppError::Unauthenticated(format!("bearer token refused: {why}"))
}

/// The claims callvault reads and writes.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
}

struct VerifyKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Checks bearer tokens; mints HS256 ones when it has the secret.
pub struct Authenticator {
    issuer: String,
    audience: String,
    leeway: u64,
    keys: Vec<VerifyKey>,
    hs256_secret: Option<Zeroizing<Vec<u8>>>,
    /// Tokens verified before, by their SHA-256 (the tokens themselves are
    /// not kept): a client sends the same token with every request, and
    /// decoding and checking it again was ~3 % of a lookup's CPU
    /// (BENCHMARKS.md). A token found here still has its `exp` and `nbf`
    /// checked against the clock.
    verified: Mutex<lru::LruCache<[u8; 32], Verified>>,
}

/// What a verified token said.
#[derive(Clone)]
struct Verified {
    staff: StaffId,
    exp: i64,
    nbf: i64,
}

/// Verified tokens kept (least recently used dropped first).
const VERIFIED_KEPT: usize = 4096;

fn verified_cache() -> Mutex<lru::LruCache<[u8; 32], Verified>> {
    Mutex::new(lru::LruCache::new(
        NonZeroUsize::new(VERIFIED_KEPT).unwrap_or(NonZeroUsize::MIN),
    ))
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// A key that can't be loaded, and which setting named it.
#[derive(Debug, thiserror::Error)]
#[error("auth key {path}: {reason}")]
pub struct KeyError {
    pub path: PathBuf,
    pub reason: String,
}

fn key_error(path: &Path, reason: impl std::fmt::Display) -> KeyError {
    KeyError {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Reads the HS256 secret, creating a fresh random one (owner-only) if the
/// file does not exist yet.
fn load_or_create_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let secret = Zeroizing::new(bytes);
            if secret.len() < 32 {
                return Err(key_error(
                    path,
                    "the HS256 secret is shorter than 32 bytes; use at least 256 random bits",
                ));
            }
            Ok(secret)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                let mut dir = std::fs::DirBuilder::new();
                dir.recursive(true);
                #[cfg(unix)]
                std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
                dir.create(parent).map_err(|e| key_error(path, e))?;
            }
            let mut secret = Zeroizing::new(vec![0u8; 32]);
            aws_lc_rs::rand::fill(&mut secret).map_err(|_| key_error(path, "no randomness"))?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path).map_err(|e| key_error(path, e))?;
            file.write_all(&secret).map_err(|e| key_error(path, e))?;
            file.sync_all().map_err(|e| key_error(path, e))?;
            Ok(secret)
        }
        Err(e) => Err(key_error(path, e)),
    }
}

impl Authenticator {
    /// Loads every configured key.
    pub fn from_config(config: &AuthConfig) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        let mut hs256_secret = None;
        if let Some(path) = &config.hs256_secret_file {
            let secret = load_or_create_secret(path)?;
            keys.push(VerifyKey {
                kid: None,
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(&secret).map_err(|e| key_error(path, e))?,
            });
            hs256_secret = Some(secret);
        }
        let read = |path: &Path| std::fs::read(path).map_err(|e| key_error(path, e));
        if let Some(path) = &config.rs256_public_key_file {
            keys.push(VerifyKey {
                kid: None,
                algorithm: Algorithm::RS256,
                key: DecodingKey::from_rsa_pem(&read(path)?).map_err(|e| key_error(path, e))?,
            });
        }
        if let Some(path) = &config.eddsa_public_key_file {
            keys.push(VerifyKey {
                kid: None,
                algorithm: Algorithm::EdDSA,
                key: DecodingKey::from_ed_pem(&read(path)?).map_err(|e| key_error(path, e))?,
            });
        }
        if let Some(path) = &config.jwks_file {
            let set: jsonwebtoken::jwk::JwkSet =
                serde_json::from_slice(&read(path)?).map_err(|e| key_error(path, e))?;
            for jwk in &set.keys {
                let algorithm = match &jwk.algorithm {
                    jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
                    _ => {
                        return Err(key_error(
                            path,
                            "only RSA (RS256) and OKP (EdDSA) keys are supported",
                        ));
                    }
                };
                keys.push(VerifyKey {
                    kid: jwk.common.key_id.clone(),
                    algorithm,
                    key: DecodingKey::from_jwk(jwk).map_err(|e| key_error(path, e))?,
                });
            }
        }
        Ok(Self {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway: config.leeway_seconds,
            keys,
            hs256_secret,
            verified: verified_cache(),
        })
    }

    /// An authenticator with only an HS256 secret (tests, tools).
    pub fn hs256(secret: &[u8], issuer: &str, audience: &str) -> Result<Self, KeyError> {
        let path = Path::new("<memory>");
        Ok(Self {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            leeway: 30,
            keys: vec![VerifyKey {
                kid: None,
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret).map_err(|e| key_error(path, e))?,
            }],
            hs256_secret: Some(Zeroizing::new(secret.to_vec())),
            verified: verified_cache(),
        })
    }

    /// The staff member a token names, or why it is refused.
    pub fn verify(&self, token: &str) -> Result<StaffId, AppError> {
        self.verify_at(token, chrono::Utc::now().timestamp())
    }

    /// [`Self::verify`] at `now` (seconds since the epoch) for a token
    /// verified before; a token seen for the first time is checked against
    /// the system clock, as its library does.
    fn verify_at(&self, token: &str, now: i64) -> Result<StaffId, AppError> {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let mut id = [0u8; 32];
        id.copy_from_slice(digest.as_ref());
        let lock = || self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        let known = lock().get(&id).cloned();
        if let Some(v) = known {
            let leeway = i64::try_from(self.leeway).unwrap_or(i64::MAX);
            return if v.exp < now.saturating_sub(leeway) {
                lock().pop(&id);
                Err(refused("it has expired"))
            } else if v.nbf > now.saturating_add(leeway) {
                Err(refused("it is not valid yet"))
            } else {
                Ok(v.staff)
            };
        }
        let v = self.verify_fully(token)?;
        let staff = v.staff.clone();
        let dropped = lock().push(id, v);
        drop(dropped);
        Ok(staff)
    }

    /// Every check of a token, by its library.
    fn verify_fully(&self, token: &str) -> Result<Verified, AppError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| refused("it is not a JWT (header.payload.signature)"))?;
        let candidates: Vec<&VerifyKey> = self
            .keys
            .iter()
            .filter(|k| k.algorithm == header.alg)
            .filter(|k| match (&k.kid, &header.kid) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            })
            .collect();
        if candidates.is_empty() {
            return Err(refused(&format!(
                "no configured key verifies {:?} tokens{}",
                header.alg,
                header
                    .kid
                    .as_deref()
                    .map(|k| format!(" with kid `{}`", k.chars().take(64).collect::<String>()))
                    .unwrap_or_default()
            )));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let mut last = None;
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => {
                    let staff = StaffId::parse(&data.claims.sub)
                        .map_err(|_| refused("its subject is not a staff id"))?;
                    return Ok(Verified {
                        staff,
                        exp: data.claims.exp,
                        nbf: data.claims.nbf,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        let why = match last.as_ref().map(|e| e.kind()) {
            Some(ErrorKind::ExpiredSignature) => "it has expired".to_owned(),
            Some(ErrorKind::ImmatureSignature) => "it is not valid yet".to_owned(),
            Some(ErrorKind::InvalidSignature) => "its signature does not verify".to_owned(),
            Some(ErrorKind::InvalidAudience) => {
                format!("its audience is not `{}`", self.audience)
            }
            Some(ErrorKind::InvalidIssuer) => format!("its issuer is not `{}`", self.issuer),
            Some(ErrorKind::MissingRequiredClaim(c)) => format!("it has no `{c}` claim"),
            Some(ErrorKind::InvalidAlgorithm) => "its algorithm does not match the key".to_owned(),
            _ => "it can't be read".to_owned(),
        };
        Err(refused(&why))
    }

    /// Mints an HS256 token for `staff`, valid from `now` for `ttl`.
    pub fn issue(
        &self,
        staff: &StaffId,
        now: chrono::DateTime<chrono::Utc>,
        ttl: chrono::Duration,
    ) -> Result<String, AppError> {
        let secret = self.hs256_secret.as_ref().ok_or_else(|| {
            AppError::invalid(
                "auth.hs256_secret_file",
                "HS256 is disabled: tokens come from your identity provider",
            )
        })?;
        if ttl <= chrono::Duration::zero() || ttl > MAX_TTL {
            return Err(AppError::invalid(
                "ttl",
                format!("must be positive and at most {} days", MAX_TTL.num_days()),
            ));
        }
        let claims = Claims {
            sub: staff.to_string(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: (now + ttl).timestamp(),
        };
        let key = EncodingKey::from_secret(secret)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("HS256 key: {e}")))?;
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("signing a token: {e}")))
    }
}

/// Parses a duration such as `8h`, `30m`, `7d` or `3600s`.
pub fn parse_ttl(text: &str) -> Result<chrono::Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: i64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 8h, 30m or 7d"))?;
    let ttl = match unit {
        "s" | "" => chrono::Duration::try_seconds(n),
        "m" => chrono::Duration::try_minutes(n),
        "h" => chrono::Duration::try_hours(n),
        "d" => chrono::Duration::try_days(n),
        _ => return Err(format!("`{text}`: the unit must be s, m, h or d")),
    };
    match ttl {
        Some(ttl) if ttl > chrono::Duration::zero() && ttl <= MAX_TTL => Ok(ttl),
        _ => Err(format!(
            "`{text}`: a token lives more than nothing and at most {} days ({}h)",
            MAX_TTL.num_days(),
            MAX_TTL.num_hours()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        Authenticator::hs256(&[7u8; 32], "callvault", "callvault").unwrap()
    }

    #[test]
    fn a_minted_token_names_its_staff_member() {
        let a = auth();
        let anna = StaffId::parse("anna.agent").unwrap();
        let token = a
            .issue(&anna, chrono::Utc::now(), chrono::Duration::hours(1))
            .unwrap();
        assert_eq!(a.verify(&token).unwrap(), anna);
    }

    #[test]
    fn forged_expired_and_foreign_tokens_are_refused_with_the_reason() {
        let a = auth();
        let anna = StaffId::parse("anna.agent").unwrap();
        let other = Authenticator::hs256(&[8u8; 32], "callvault", "callvault").unwrap();
        let forged = other
            .issue(&anna, chrono::Utc::now(), chrono::Duration::hours(1))
            .unwrap();
        assert!(
            a.verify(&forged)
                .unwrap_err()
                .to_string()
                .contains("signature")
        );
        let expired = a
            .issue(
                &anna,
                chrono::Utc::now() - chrono::Duration::hours(2),
                chrono::Duration::hours(1),
            )
            .unwrap();
        assert!(
            a.verify(&expired)
                .unwrap_err()
                .to_string()
                .contains("expired")
        );
        let elsewhere = Authenticator::hs256(&[7u8; 32], "callvault", "payroll").unwrap();
        let wrong_aud = elsewhere
            .issue(&anna, chrono::Utc::now(), chrono::Duration::hours(1))
            .unwrap();
        assert!(
            a.verify(&wrong_aud)
                .unwrap_err()
                .to_string()
                .contains("audience")
        );
        assert!(
            a.verify("not-a-token")
                .unwrap_err()
                .to_string()
                .contains("not a JWT")
        );
    }

    #[test]
    fn a_token_verified_before_still_expires_and_a_changed_one_is_checked_again() {
        let a = auth();
        let anna = StaffId::parse("anna.agent").unwrap();
        let now = chrono::Utc::now();
        let token = a.issue(&anna, now, chrono::Duration::hours(1)).unwrap();
        let t = now.timestamp();
        assert_eq!(a.verify_at(&token, t).unwrap(), anna);
        assert_eq!(
            a.verify_at(&token, t).unwrap(),
            anna,
            "from the kept answer"
        );
        // Past its expiry plus the leeway (30 s), the kept answer is not
        // used: the token is refused as expired, and forgotten.
        let err = a.verify_at(&token, t + 3600 + 31).unwrap_err().to_string();
        assert!(err.contains("expired"), "{err}");
        // Within the leeway it still passes, up to and including its last
        // second (as the library judges). The same claims make the same
        // token: it is verified in full again, and kept again.
        let again = a.issue(&anna, now, chrono::Duration::hours(1)).unwrap();
        assert_eq!(again, token);
        a.verify_at(&again, t).unwrap();
        assert_eq!(a.verify_at(&again, t + 3600 + 29).unwrap(), anna);
        assert_eq!(a.verify_at(&again, t + 3600 + 30).unwrap(), anna);
        // Before its `nbf` (minus the leeway): refused; at the edge, not.
        assert_eq!(a.verify_at(&again, t - 30).unwrap(), anna);
        let err = a.verify_at(&again, t - 31).unwrap_err().to_string();
        assert!(err.contains("not valid yet"), "{err}");
        let fresh = again;
        // A token altered by one character is a different token: checked
        // in full, and refused.
        let mut altered = fresh.clone().into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        let err = a.verify_at(&altered, t).unwrap_err().to_string();
        assert!(err.contains("signature"), "{err}");
    }

    #[test]
    fn the_secret_file_is_created_owner_only_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth/hs256.secret");
        let first = load_or_create_secret(&path).unwrap();
        let again = load_or_create_secret(&path).unwrap();
        assert_eq!(*first, *again);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, b"short").unwrap();
        assert!(load_or_create_secret(&path).is_err());
    }

    /// An Ed25519 key pair: (PKCS#8 DER private key, raw public key).
    fn ed25519() -> (Vec<u8>, Vec<u8>) {
        use aws_lc_rs::signature::KeyPair;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        (pkcs8.as_ref().to_vec(), pair.public_key().as_ref().to_vec())
    }

    fn eddsa_token(private: &[u8], kid: Option<&str>, audience: &str) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = kid.map(str::to_owned);
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: "idp.user".into(),
            iss: "callvault".into(),
            aud: audience.into(),
            iat: now,
            nbf: now,
            exp: now + 600,
        };
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(private)).unwrap()
    }

    fn config() -> AuthConfig {
        AuthConfig {
            issuer: "callvault".into(),
            audience: "callvault".into(),
            leeway_seconds: 30,
            hs256_secret_file: None,
            rs256_public_key_file: None,
            eddsa_public_key_file: None,
            jwks_file: None,
            bootstrap_admin: None,
        }
    }

    #[test]
    fn an_identity_providers_eddsa_tokens_verify_by_pem_and_by_jwks() {
        use base64::Engine as _;
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = ed25519();
        // SubjectPublicKeyInfo for Ed25519: a fixed prefix, then the key.
        let mut spki = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        spki.extend_from_slice(&public);
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&spki)
        );
        let pem_path = dir.path().join("idp.pem");
        std::fs::write(&pem_path, pem).unwrap();
        let by_pem = Authenticator::from_config(&AuthConfig {
            eddsa_public_key_file: Some(pem_path),
            ..config()
        })
        .unwrap();
        let token = eddsa_token(&private, None, "callvault");
        assert_eq!(by_pem.verify(&token).unwrap().as_str(), "idp.user");
        assert!(
            by_pem
                .verify(&eddsa_token(&private, None, "elsewhere"))
                .is_err()
        );
        // No HS256 secret configured: HS256 tokens are refused, and
        // minting is impossible.
        let hs = auth()
            .issue(
                &StaffId::parse("x.y").unwrap(),
                chrono::Utc::now(),
                chrono::Duration::hours(1),
            )
            .unwrap();
        assert!(
            by_pem
                .verify(&hs)
                .unwrap_err()
                .to_string()
                .contains("no configured key")
        );
        assert!(
            by_pem
                .issue(
                    &StaffId::parse("x.y").unwrap(),
                    chrono::Utc::now(),
                    chrono::Duration::hours(1)
                )
                .is_err()
        );

        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&public);
        let jwks = serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1", "alg": "EdDSA", "use": "sig"}
        ]});
        let jwks_path = dir.path().join("jwks.json");
        std::fs::write(&jwks_path, jwks.to_string()).unwrap();
        let by_jwks = Authenticator::from_config(&AuthConfig {
            jwks_file: Some(jwks_path),
            ..config()
        })
        .unwrap();
        assert_eq!(
            by_jwks
                .verify(&eddsa_token(&private, Some("k1"), "callvault"))
                .unwrap()
                .as_str(),
            "idp.user"
        );
        let unknown_kid = by_jwks
            .verify(&eddsa_token(&private, Some("k2"), "callvault"))
            .unwrap_err();
        assert!(
            unknown_kid.to_string().contains("kid `k2`"),
            "{unknown_kid}"
        );
        // A key of another pair does not verify.
        let (other, _) = ed25519();
        assert!(
            by_jwks
                .verify(&eddsa_token(&other, Some("k1"), "callvault"))
                .unwrap_err()
                .to_string()
                .contains("signature")
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// In place of a fuzzer: any header value is refused cleanly, and
        /// any change to a valid token makes it invalid (or, where base64
        /// padding bits don't matter, leaves it naming the same person).
        #[test]
        fn hostile_tokens_never_pass_as_someone_else(
            garbage in "[A-Za-z0-9._~+/=-]{0,300}",
            at in proptest::prelude::any::<proptest::sample::Index>(),
            with in "[A-Za-z0-9_.-]",
        ) {
            let a = auth();
            proptest::prop_assert!(a.verify(&garbage).is_err());
            let anna = StaffId::parse("anna.agent").unwrap();
            let token = a.issue(&anna, chrono::Utc::now(), chrono::Duration::hours(1)).unwrap();
            let i = at.index(token.len());
            let mut changed = token.clone();
            changed.replace_range(i..=i, &with);
            if changed != token {
                match a.verify(&changed) {
                    Err(e) => proptest::prop_assert!(!e.to_string().contains(&token[..20])),
                    Ok(who) => proptest::prop_assert_eq!(who, anna),
                }
            }
        }
    }

    #[test]
    fn ttls_parse_with_units() {
        assert_eq!(parse_ttl("8h").unwrap(), chrono::Duration::hours(8));
        assert_eq!(parse_ttl("90").unwrap(), chrono::Duration::seconds(90));
        assert!(parse_ttl("8 parsecs").is_err());
        assert!(parse_ttl("h").is_err());
        assert_eq!(parse_ttl("30d").unwrap(), MAX_TTL);
        for too_long in ["31d", "721h", "0", "0m", "99999999999999d"] {
            let e = parse_ttl(too_long).unwrap_err();
            assert!(e.contains("at most 30 days"), "{too_long}: {e}");
        }
    }
}
