//! Session tokens: after a wallet signs in, Purser hands it a short-lived JWT (EdDSA, Ed25519)
//! naming the wallet and the tenant it signed in to. The client sends it back in
//! `X-Purser-Session` instead of signing in again; resource servers can verify it offline with
//! the keys published at `/.well-known/jwks.json`.
//!
//! Keys rotate by configuration: the first key signs, every key verifies, and the JWKS lists
//! them all, so a new key is put first and the old one kept until the last token it signed has
//! expired ([`SessionConfig::ttl`]). A token names the wallet only; what the wallet may use is
//! looked up on every request, so revoking a grant takes effect at once for requests that come
//! through Purser, and within the token's lifetime at most for a resource server that trusts
//! the token alone.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use purser_cache::BoundedCache;
use purser_domain::id::TenantId;
use purser_domain::{Error, ErrorCode, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// The header a session token travels in.
pub const SESSION_HEADER: &str = purser_x402::header::lowercase::PURSER_SESSION;

/// The `iss` of every token.
pub const ISSUER: &str = "purser";

/// How sessions are issued.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// How long a token is valid.
    pub ttl: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(900),
        }
    }
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    pub iss: String,
    /// The wallet, lower-case hex.
    pub sub: String,
    /// The tenant the wallet signed in to.
    pub tid: String,
    /// The tenant again, as the audience: a resource server verifying offline checks that the
    /// token is for its own merchant.
    pub aud: String,
    /// The CAIP-2 network of the sign-in.
    pub net: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

impl SessionClaims {
    pub fn tenant(&self) -> Result<TenantId> {
        self.tid.parse()
    }
}

/// One Ed25519 key: its id, and both halves as jsonwebtoken wants them.
struct SessionKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// The public key, raw (32 bytes).
    public: [u8; 32],
}

impl SessionKey {
    fn from_signing_key(key: &SigningKey) -> Result<Self> {
        let der = key
            .to_pkcs8_der()
            .map_err(|e| Error::internal("encoding a session key", e.to_string()))?;
        let public = key.verifying_key().to_bytes();
        // The id is the key's own fingerprint: stable across restarts and instances.
        let kid = URL_SAFE_NO_PAD.encode(&Sha256::digest(public)[..12]);
        Ok(Self {
            kid,
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            decoding: DecodingKey::from_ed_der(&public),
            public,
        })
    }
}

/// The signing key and every key that still verifies.
pub struct SessionKeys {
    keys: Vec<SessionKey>,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key ids only: never key material.
        f.debug_list()
            .entries(self.keys.iter().map(|k| &k.kid))
            .finish()
    }
}

impl SessionKeys {
    /// A fresh key, for one process (the embedded default): tokens do not survive a restart
    /// and are not accepted by other instances.
    pub fn generate() -> Result<Self> {
        let mut seed = [0u8; 32];
        rand::fill(&mut seed);
        Ok(Self {
            keys: vec![SessionKey::from_signing_key(&SigningKey::from_bytes(
                &seed,
            ))?],
        })
    }

    /// Keys from PKCS#8 PEM texts (`openssl genpkey -algorithm ed25519`): the first signs,
    /// all verify.
    pub fn from_pems(pems: &[String]) -> Result<Self> {
        if pems.is_empty() {
            return Err(Error::invalid_input("no session keys"));
        }
        let keys = pems
            .iter()
            .enumerate()
            .map(|(i, pem)| {
                let key = SigningKey::from_pkcs8_pem(pem).map_err(|_| {
                    Error::invalid_input(format!(
                        "session key {} is not an Ed25519 private key in PKCS#8 PEM",
                        i + 1
                    ))
                })?;
                SessionKey::from_signing_key(&key)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { keys })
    }

    /// Keys read from PEM files, in order.
    pub fn from_files(paths: &[impl AsRef<Path>]) -> Result<Self> {
        let pems = paths
            .iter()
            .map(|path| {
                std::fs::read_to_string(path.as_ref()).map_err(|e| {
                    Error::invalid_input(format!(
                        "cannot read the session key {}: {e}",
                        path.as_ref().display()
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Self::from_pems(&pems)
    }

    /// A new key's PKCS#8 PEM, for operators rotating keys.
    pub fn generate_pem() -> Result<String> {
        let mut seed = [0u8; 32];
        rand::fill(&mut seed);
        SigningKey::from_bytes(&seed)
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map(|pem| pem.to_string())
            .map_err(|e| Error::internal("encoding a session key", e.to_string()))
    }

    /// The JWK Set of every verifying key (`/.well-known/jwks.json`).
    pub fn jwks(&self) -> Value {
        json!({
            "keys": self.keys.iter().map(|k| json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "alg": "EdDSA",
                "use": "sig",
                "kid": k.kid,
                "x": URL_SAFE_NO_PAD.encode(k.public),
            })).collect::<Vec<_>>()
        })
    }

    fn signing(&self) -> &SessionKey {
        &self.keys[0]
    }

    fn by_kid(&self, kid: &str) -> Option<&SessionKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

/// Issues and verifies session tokens.
#[derive(Debug)]
pub struct Sessions {
    keys: SessionKeys,
    config: SessionConfig,
    /// Tokens whose signature checked out, with their claims: a token is immutable, so the
    /// same bytes verify the same way until they expire (checked on every use). Each is kept
    /// for a session's lifetime at most, which outlasts the token when it was issued with
    /// this configuration; a token is never trusted past its own expiry all the same.
    verified: BoundedCache<Box<str>, Arc<SessionClaims>>,
}

/// How many verified tokens are remembered at most.
pub const VERIFIED_TOKENS: u64 = 100_000;

/// Verified tokens: at most `max`, each for `ttl`.
fn verified_cache(max: u64, ttl: Duration) -> BoundedCache<Box<str>, Arc<SessionClaims>> {
    BoundedCache::builder("verified session tokens", max)
        .time_to_live(ttl)
        .build()
}

fn invalid(message: &str) -> Error {
    Error::new(ErrorCode::SessionInvalid, message.to_owned())
}

impl Sessions {
    pub fn new(keys: SessionKeys, config: SessionConfig) -> Self {
        Self {
            verified: verified_cache(VERIFIED_TOKENS, config.ttl),
            keys,
            config,
        }
    }

    pub fn jwks(&self) -> Value {
        self.keys.jwks()
    }

    /// A token for `wallet` signed in to `tenant` on `network` at `now`, and when it expires.
    pub fn issue(
        &self,
        tenant: TenantId,
        wallet: &str,
        network: &str,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>)> {
        let ttl = chrono::Duration::from_std(self.config.ttl).unwrap_or_default();
        let expires = now + ttl;
        let mut jti = [0u8; 16];
        rand::fill(&mut jti);
        let claims = SessionClaims {
            iss: ISSUER.to_owned(),
            sub: wallet.to_ascii_lowercase(),
            tid: tenant.to_string(),
            aud: tenant.to_string(),
            net: network.to_owned(),
            iat: now.timestamp(),
            exp: expires.timestamp(),
            jti: URL_SAFE_NO_PAD.encode(jti),
        };
        let key = self.keys.signing();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &key.encoding)
            .map_err(|e| Error::internal("signing a session token", e.to_string()))?;
        Ok((token, expires))
    }

    /// The claims of a token this Purser issued that is valid at `now`:
    /// `session_expired` when it has run out, `session_invalid` for anything else.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<SessionClaims> {
        let claims = match self.verified.get(token) {
            Some(claims) => claims,
            None => {
                let read = self.verified.begin_read();
                let claims = Arc::new(self.verify_signature(token)?);
                self.verified.insert(read, token.into(), claims.clone());
                claims
            }
        };
        if claims.exp <= now.timestamp() {
            return Err(Error::new(
                ErrorCode::SessionExpired,
                "the session token has expired; sign in again",
            ));
        }
        Ok(SessionClaims::clone(&claims))
    }

    /// The token's claims once its header, key and signature check out; expiry aside.
    fn verify_signature(&self, token: &str) -> Result<SessionClaims> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| invalid("the session token is not a JWT"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(invalid("the session token is not signed with EdDSA"));
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.by_kid(kid))
            .ok_or_else(|| invalid("the session token was signed by a key Purser does not hold"))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        // Expiry is judged below against `now`, to the second; the tenant by the caller.
        validation.validate_exp = false;
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<SessionClaims>(token, &key.decoding, &validation)
            .map_err(|_| invalid("the session token's signature or claims are not valid"))?
            .claims;
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `tid` of a token, read without verifying (what an offline verifier expects as `aud`).
    fn decoded_tenant(token: &str) -> String {
        let claims = token.split('.').nth(1).unwrap();
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
        claims["tid"].as_str().unwrap().to_owned()
    }

    fn sessions(keys: SessionKeys) -> Sessions {
        Sessions::new(keys, SessionConfig::default())
    }

    #[test]
    fn tokens_round_trip_and_expire() {
        let s = sessions(SessionKeys::generate().unwrap());
        let tenant = TenantId::new();
        let now = Utc::now();
        let (token, expires) = s.issue(tenant, "0xABC", "eip155:84532", now).unwrap();
        assert_eq!(expires, now + chrono::Duration::seconds(900));
        let claims = s.verify(&token, now).unwrap();
        assert_eq!(claims.sub, "0xabc");
        assert_eq!(claims.tenant().unwrap(), tenant);
        assert_eq!(claims.net, "eip155:84532");
        let later = now + chrono::Duration::seconds(901);
        assert_eq!(
            s.verify(&token, later).unwrap_err().code(),
            ErrorCode::SessionExpired
        );
    }

    #[test]
    fn foreign_tampered_and_malformed_tokens_are_invalid() {
        let s = sessions(SessionKeys::generate().unwrap());
        let other = sessions(SessionKeys::generate().unwrap());
        let now = Utc::now();
        let (foreign, _) = other
            .issue(TenantId::new(), "0xabc", "eip155:1", now)
            .unwrap();
        let (token, _) = s.issue(TenantId::new(), "0xabc", "eip155:1", now).unwrap();
        // Another wallet in the claims, the original signature.
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        claims["sub"] = json!("0xdef");
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            parts[2]
        );
        for bad in [foreign.as_str(), tampered.as_str(), "not-a-jwt", ""] {
            assert_eq!(
                s.verify(bad, now).unwrap_err().code(),
                ErrorCode::SessionInvalid,
                "{bad}"
            );
        }
    }

    #[test]
    fn rotated_keys_keep_verifying_and_are_published() {
        let old = SessionKeys::generate_pem().unwrap();
        let new = SessionKeys::generate_pem().unwrap();
        let before = sessions(SessionKeys::from_pems(std::slice::from_ref(&old)).unwrap());
        let after = sessions(SessionKeys::from_pems(&[new, old]).unwrap());
        let now = Utc::now();
        let (token, _) = before
            .issue(TenantId::new(), "0xabc", "eip155:1", now)
            .unwrap();
        assert_eq!(after.verify(&token, now).unwrap().sub, "0xabc");
        let jwks = after.jwks();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids.len(), 2);
        assert_eq!(
            before.jwks()["keys"][0]["kid"],
            kids[1],
            "the old key stays listed"
        );
        // A resource server verifies offline with the published key alone.
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwks["keys"][1].clone()).unwrap();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[decoded_tenant(&token)]);
        let decoded = jsonwebtoken::decode::<SessionClaims>(
            &token,
            &DecodingKey::from_jwk(&jwk).unwrap(),
            &validation,
        )
        .unwrap();
        assert_eq!(decoded.claims.sub, "0xabc");
        assert!(SessionKeys::from_pems(&["not a key".into()]).is_err());
        assert!(
            format!("{:?}", after.keys).starts_with("[\""),
            "Debug shows key ids only"
        );
    }

    /// Ten times as many distinct valid tokens as the memory holds, each verified: it holds at
    /// most its cap, and every token still verifies. (At a cap of 20, since each token costs an
    /// Ed25519 signature and verification; [`Sessions::new`] is checked to use
    /// [`VERIFIED_TOKENS`].)
    #[test]
    fn a_flood_of_tokens_is_remembered_up_to_the_cap() {
        let s = sessions(SessionKeys::generate().unwrap());
        assert_eq!(s.verified.max(), VERIFIED_TOKENS);
        let s = Sessions {
            verified: verified_cache(20, Duration::from_secs(900)),
            ..s
        };
        let now = Utc::now();
        let tenant = TenantId::new();
        let tokens: Vec<String> = (0..200)
            .map(|n| {
                let wallet = format!("0x{n:040x}");
                s.issue(tenant, &wallet, "eip155:1", now).unwrap().0
            })
            .collect();
        for token in &tokens {
            s.verify(token, now).unwrap();
        }
        let held = s.verified.entry_count();
        assert!(held <= 20, "{held} tokens remembered");
        assert!(held > 0);
        for token in &tokens {
            s.verify(token, now).unwrap();
        }
    }

    /// A verified token is remembered for a session's lifetime at most (here a second), and
    /// refused once expired even while remembered.
    #[test]
    fn verified_tokens_are_forgotten_after_a_session_lifetime() {
        let s = Sessions::new(
            SessionKeys::generate().unwrap(),
            SessionConfig {
                ttl: Duration::from_secs(1),
            },
        );
        let now = Utc::now();
        let (token, _) = s.issue(TenantId::new(), "0xabc", "eip155:1", now).unwrap();
        s.verify(&token, now).unwrap();
        assert_eq!(s.verified.entry_count(), 1);
        assert_eq!(
            s.verify(&token, now + chrono::Duration::seconds(2))
                .unwrap_err()
                .code(),
            ErrorCode::SessionExpired
        );
        std::thread::sleep(Duration::from_millis(1_200));
        assert_eq!(s.verified.entry_count(), 0);
    }
}
