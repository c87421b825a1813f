//! Sign-In-With-X: the challenge a 402 carries, and the check of the `SIGN-IN-WITH-X` header
//! that answers it.
//!
//! A challenge holds a fresh nonce that stores nothing: it carries its issue time, randomness
//! and a MAC binding it to the tenant and the domain (module `nonce`), under a key every instance
//! shares through coordination (Redis, or the process on the embedded default). Anyone may ask
//! for challenges; none costs storage. A sign-in is accepted when, in this order: the header
//! decodes; its domain is the request's host and the request's URL starts with its URI; it is
//! issued at most [`SignInConfig::max_age`] ago and not in the future; it has not expired and is
//! valid already; its chain is one Purser settles on; its nonce was issued here for this tenant
//! and domain at most [`SignInConfig::nonce_ttl`] ago and is unused; its signature over the
//! EIP-4361 text of its fields is the address's (an EOA by EIP-191, a contract wallet by
//! ERC-1271 through the chain, a wallet not yet deployed by ERC-6492 only through an allowlisted
//! factory); and last its nonce is burned (`siwx:used:<nonce>`, put if absent for the nonce's
//! remaining lifetime), so that a nonce is used once across instances, a refused sign-in does not
//! spend it, and coordination holds only what sign-ins that passed every check put there. Each
//! refusal has its own code; none is logged with the signature.

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, Bytes, eip191_hash_message};
use chrono::{DateTime, SecondsFormat, Utc};
use purser_chain::eip3009::SignatureCheck;
use purser_chain::rails::Rails;
use purser_domain::coord::Coordination;
use purser_domain::id::TenantId;
use purser_domain::{Error, ErrorCode, Result};
use purser_x402::siwx::{self, SiwxInfo, SiwxOffer, SiwxPayload, SupportedChain};

mod nonce;

use nonce::Nonces;

/// How sign-ins are offered and judged.
#[derive(Debug, Clone)]
pub struct SignInConfig {
    /// The oldest `issuedAt` accepted (the SDK's default: five minutes).
    pub max_age: Duration,
    /// How long an offered nonce stays usable (also the offer's `expirationTime`), and how long
    /// a used one is remembered at most.
    pub nonce_ttl: Duration,
    /// The statement the client signs.
    pub statement: String,
}

impl Default for SignInConfig {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(300),
            nonce_ttl: Duration::from_secs(300),
            statement: "Sign in to use what this wallet already paid for".to_owned(),
        }
    }
}

/// A wallet that proved itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    pub address: Address,
    /// CAIP-2 network of the sign-in.
    pub network: String,
}

/// Offers and verifies sign-ins.
#[derive(Clone)]
pub struct SignIn {
    nonces: Nonces,
    rails: Arc<Rails>,
    config: SignInConfig,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// How far in the future an `issuedAt` or `notBefore` may lie: clocks of instances differ.
pub const CLOCK_LEEWAY_SECONDS: i64 = 30;

fn refuse(code: ErrorCode, message: impl Into<String>) -> Error {
    Error::new(code, message.into())
}

impl SignIn {
    pub fn new(
        coordination: Arc<dyn Coordination>,
        rails: Arc<Rails>,
        config: SignInConfig,
    ) -> Self {
        Self {
            nonces: Nonces::new(coordination, config.nonce_ttl),
            rails,
            config,
        }
    }

    /// The chains sign-ins are accepted from: every EVM rail.
    pub fn supported_chains(&self) -> Vec<SupportedChain> {
        self.rails
            .iter()
            .filter(|rail| rail.network.starts_with("eip155:"))
            .map(|rail| SupportedChain {
                chain_id: rail.network.clone(),
                kind: "eip191".to_owned(),
                signature_scheme: None,
            })
            .collect()
    }

    /// A challenge for a request to `url` (absolute) of `tenant`'s, with a fresh nonce bound to
    /// that tenant and `url`'s domain: a sign-in answering it is good there only.
    pub async fn offer(&self, tenant: TenantId, url: &str) -> Result<SiwxOffer> {
        let parsed = url::Url::parse(url)
            .map_err(|e| Error::invalid_input(format!("{url:?} is not an absolute URL: {e}")))?;
        let domain = authority(&parsed)
            .ok_or_else(|| Error::invalid_input(format!("{url:?} has no host")))?;
        let now = Utc::now();
        let nonce = self.nonces.issue(tenant, &domain, now).await?;
        let expires = now + chrono::Duration::from_std(self.config.nonce_ttl).unwrap_or_default();
        Ok(SiwxOffer {
            info: SiwxInfo {
                domain,
                uri: url.to_owned(),
                version: "1".to_owned(),
                nonce,
                issued_at: now.to_rfc3339_opts(SecondsFormat::Millis, true),
                expiration_time: Some(expires.to_rfc3339_opts(SecondsFormat::Millis, true)),
                not_before: None,
                statement: Some(self.config.statement.clone()),
                request_id: None,
                resources: Some(vec![url.to_owned()]),
            },
            supported_chains: self.supported_chains(),
            schema: siwx::payload_schema(),
        })
    }

    /// Verifies the `SIGN-IN-WITH-X` header of a request to `url` (the URL the challenge was
    /// made for, not one taken from the request's `Host`) of `tenant`'s at `now`, burning its
    /// nonce.
    pub async fn verify(
        &self,
        header: &str,
        tenant: TenantId,
        url: &str,
        now: DateTime<Utc>,
    ) -> Result<SignedIn> {
        let payload = siwx::decode(header)
            .map_err(|e| refuse(ErrorCode::MalformedSignIn, e.message().to_owned()))?;
        let request = url::Url::parse(url)
            .map_err(|e| Error::invalid_input(format!("{url:?} is not an absolute URL: {e}")))?;
        let host = authority(&request).unwrap_or_default();
        if payload.domain != host {
            return Err(refuse(
                ErrorCode::SignInDomainMismatch,
                format!(
                    "signed in to {:?}, but the request went to {host:?}",
                    payload.domain
                ),
            ));
        }
        if !within_uri(&request, &payload.uri) {
            return Err(refuse(
                ErrorCode::SignInUriMismatch,
                format!("{url} is not under the signed-in URI {:?}", payload.uri),
            ));
        }
        self.check_times(&payload, now)?;
        let message = message_of(&payload)?;
        let rail = self
            .rails
            .get(&payload.chain_id)
            .filter(|_| payload.kind == "eip191")
            .ok_or_else(|| {
                refuse(
                    ErrorCode::SignInUnsupportedChain,
                    format!(
                        "sign-ins of type {:?} on {:?} are not accepted here",
                        payload.kind, payload.chain_id
                    ),
                )
            })?;
        if rail.chain_id != message.chain_id {
            return Err(refuse(
                ErrorCode::SignInUnsupportedChain,
                format!("{} is not chain {}", payload.chain_id, message.chain_id),
            ));
        }
        let signature: Bytes = payload.signature.parse().map_err(|_| {
            refuse(
                ErrorCode::MalformedSignIn,
                "the signature is not 0x-prefixed hex",
            )
        })?;
        // A nonce this Purser did not issue, for this tenant and domain, an expired one and a
        // used one are refused before anything costs a call to the chain.
        let nonce_refused = || {
            refuse(
                ErrorCode::SignInNonceInvalid,
                "the nonce was not issued here for this merchant, has expired, or was used already",
            )
        };
        let Some(nonce) = self
            .nonces
            .check(&payload.nonce, tenant, &payload.domain, now)
            .await?
        else {
            return Err(nonce_refused());
        };
        let address = Address::from(message.address);
        let digest = eip191_hash_message(message.to_string());
        // A key's own signature is checked offline; only contract wallets need the chain.
        let by_key = alloy::primitives::Signature::try_from(signature.as_ref())
            .ok()
            .and_then(|sig| sig.recover_address_from_prehash(&digest).ok())
            == Some(address);
        let checked = if by_key {
            Ok(SignatureCheck::Valid {
                signature: signature.clone(),
                deployment: None,
            })
        } else {
            rail.check_signature(address, digest, &signature).await
        };
        match checked {
            Ok(SignatureCheck::Valid { .. }) => {}
            Ok(SignatureCheck::Invalid { message, .. }) => {
                return Err(refuse(
                    ErrorCode::SignInSignatureInvalid,
                    format!("the signature is not {address}'s: {message}"),
                ));
            }
            Err(failure) => {
                return Err(Error::unavailable(
                    format!("checking a sign-in signature on {}", payload.chain_id),
                    failure.to_string(),
                ));
            }
        }
        // Last, so that only a valid sign-in spends its nonce; atomic, so of concurrent
        // replays one wins.
        if !self.nonces.burn(&nonce).await? {
            return Err(nonce_refused());
        }
        Ok(SignedIn {
            address,
            network: payload.chain_id,
        })
    }

    fn check_times(&self, payload: &SiwxPayload, now: DateTime<Utc>) -> Result<()> {
        let issued = timestamp("issuedAt", &payload.issued_at)?;
        // Instances' clocks differ a little: an offer made on one is checked on another.
        let leeway = chrono::Duration::seconds(CLOCK_LEEWAY_SECONDS);
        if issued > now + leeway {
            return Err(refuse(
                ErrorCode::SignInIssuedInFuture,
                format!("issuedAt {} is in the future", payload.issued_at),
            ));
        }
        let max_age = chrono::Duration::from_std(self.config.max_age).unwrap_or_default();
        if now - issued > max_age {
            return Err(refuse(
                ErrorCode::SignInStale,
                format!(
                    "issued at {}, more than {} s ago",
                    payload.issued_at,
                    self.config.max_age.as_secs()
                ),
            ));
        }
        if let Some(expiry) = &payload.expiration_time
            && timestamp("expirationTime", expiry)? <= now
        {
            return Err(refuse(
                ErrorCode::SignInExpired,
                format!("expired at {expiry}"),
            ));
        }
        if let Some(not_before) = &payload.not_before
            && timestamp("notBefore", not_before)? > now + leeway
        {
            return Err(refuse(
                ErrorCode::SignInNotYetValid,
                format!("valid from {not_before}"),
            ));
        }
        Ok(())
    }
}

/// `host[:port]` as a browser names it (the port only when not the scheme's default).
fn authority(url: &url::Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// The request's URL lies under the signed-in URI: same origin, and its path starts with the
/// URI's path.
fn within_uri(request: &url::Url, uri: &str) -> bool {
    let Ok(signed) = url::Url::parse(uri) else {
        return false;
    };
    if signed.origin() != request.origin() {
        return false;
    }
    // Whole path segments: `/weather` covers `/weather/lisbon`, not `/weatherman`.
    let (prefix, path) = (signed.path().trim_end_matches('/'), request.path());
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn timestamp(field: &str, value: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            refuse(
                ErrorCode::MalformedSignIn,
                format!("{field} {value:?} is not an RFC 3339 time: {e}"),
            )
        })
}

/// What a wallet answers to `offer` on `chain`: the offered fields, its address, and its EIP-191
/// signature over their EIP-4361 text — what `@x402/extensions`' client sends, for Purser's own
/// agents (the demo, the benchmark) and tests.
pub fn answer(
    offer: &SiwxOffer,
    chain: &SupportedChain,
    signer: &alloy::signers::local::PrivateKeySigner,
) -> Result<SiwxPayload> {
    use alloy::signers::SignerSync as _;
    let info = offer.info.clone();
    let mut payload = SiwxPayload {
        domain: info.domain,
        address: signer.address().to_checksum(None),
        statement: info.statement,
        uri: info.uri,
        version: info.version,
        chain_id: chain.chain_id.clone(),
        kind: chain.kind.clone(),
        nonce: info.nonce,
        issued_at: info.issued_at,
        expiration_time: info.expiration_time,
        not_before: info.not_before,
        request_id: info.request_id,
        resources: info.resources,
        signature_scheme: None,
        signature: String::new(),
    };
    let text = message_of(&payload)?.to_string();
    let signature = signer
        .sign_message_sync(text.as_bytes())
        .map_err(|e| Error::internal("signing a sign-in", e))?;
    payload.signature = format!("0x{}", alloy::hex::encode(signature.as_bytes()));
    Ok(payload)
}

/// The EIP-4361 message the client signed, from the payload's fields; each field is checked as
/// EIP-4361 requires.
pub fn message_of(payload: &SiwxPayload) -> Result<siwe::Message> {
    let malformed = |what: &str| refuse(ErrorCode::MalformedSignIn, what.to_owned());
    let chain_id = payload
        .chain_id
        .strip_prefix("eip155:")
        .and_then(|id| id.parse::<u64>().ok())
        .ok_or_else(|| {
            refuse(
                ErrorCode::SignInUnsupportedChain,
                format!("{:?} is not an eip155 chain", payload.chain_id),
            )
        })?;
    let address = Address::from_str(&payload.address)
        .map_err(|_| malformed("the address is not a 20-byte hex address"))?;
    if payload.nonce.len() < 8 || !payload.nonce.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(malformed(
            "the nonce must be at least 8 alphanumeric characters",
        ));
    }
    if payload.version != "1" {
        return Err(malformed("the version must be \"1\""));
    }
    if payload
        .statement
        .as_deref()
        .is_some_and(|s| s.contains('\n'))
    {
        return Err(malformed("the statement must be one line"));
    }
    let time = |field: &str, value: &str| {
        siwe::TimeStamp::from_str(value).map_err(|_| {
            refuse(
                ErrorCode::MalformedSignIn,
                format!("{field} {value:?} is not an RFC 3339 time"),
            )
        })
    };
    let uri = |value: &str| {
        value.parse().map_err(|_| {
            refuse(
                ErrorCode::MalformedSignIn,
                format!("{value:?} is not a URI"),
            )
        })
    };
    Ok(siwe::Message {
        domain: payload
            .domain
            .parse()
            .map_err(|_| malformed("the domain is not an RFC 3986 authority"))?,
        address: address.into_array(),
        statement: payload.statement.clone(),
        uri: uri(&payload.uri)?,
        version: siwe::Version::V1,
        chain_id,
        nonce: payload.nonce.clone(),
        issued_at: time("issuedAt", &payload.issued_at)?,
        expiration_time: payload
            .expiration_time
            .as_deref()
            .map(|t| time("expirationTime", t))
            .transpose()?,
        not_before: payload
            .not_before
            .as_deref()
            .map(|t| time("notBefore", t))
            .transpose()?,
        request_id: payload.request_id.clone(),
        resources: payload
            .resources
            .iter()
            .flatten()
            .map(|r| uri(r))
            .collect::<Result<_>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> SiwxPayload {
        SiwxPayload {
            domain: "127.0.0.1:8403".into(),
            address: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC".into(),
            statement: Some("Sign in".into()),
            uri: "http://127.0.0.1:8403/weather/lisbon".into(),
            version: "1".into(),
            chain_id: "eip155:84532".into(),
            kind: "eip191".into(),
            nonce: "abcdefgh1234".into(),
            issued_at: "2026-11-30T12:00:00.000Z".into(),
            expiration_time: Some("2026-11-30T12:05:00.000Z".into()),
            not_before: None,
            request_id: None,
            resources: Some(vec!["http://127.0.0.1:8403/weather/lisbon".into()]),
            signature_scheme: None,
            signature: "0x00".into(),
        }
    }

    /// The text `@signinwithethereum/siwe`'s `prepareMessage` builds from the same fields (the
    /// SDK's `formatSIWEMessage`).
    #[test]
    fn messages_have_the_eip4361_text() {
        let text = message_of(&payload()).unwrap().to_string();
        assert_eq!(
            text,
            "127.0.0.1:8403 wants you to sign in with your Ethereum account:\n\
             0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC\n\
             \n\
             Sign in\n\
             \n\
             URI: http://127.0.0.1:8403/weather/lisbon\n\
             Version: 1\n\
             Chain ID: 84532\n\
             Nonce: abcdefgh1234\n\
             Issued At: 2026-11-30T12:00:00.000Z\n\
             Expiration Time: 2026-11-30T12:05:00.000Z\n\
             Resources:\n\
             - http://127.0.0.1:8403/weather/lisbon"
        );
    }

    #[test]
    fn malformed_fields_are_refused_with_their_code() {
        type Bend = fn(&mut SiwxPayload);
        let cases: Vec<(Bend, ErrorCode)> = vec![
            (|p| p.address = "0x1234".into(), ErrorCode::MalformedSignIn),
            (|p| p.nonce = "short".into(), ErrorCode::MalformedSignIn),
            (
                |p| p.nonce = "has spaces in it".into(),
                ErrorCode::MalformedSignIn,
            ),
            (
                |p| p.issued_at = "yesterday".into(),
                ErrorCode::MalformedSignIn,
            ),
            (|p| p.uri = "not a uri".into(), ErrorCode::MalformedSignIn),
            (|p| p.version = "2".into(), ErrorCode::MalformedSignIn),
            (
                |p| p.statement = Some("two\nlines".into()),
                ErrorCode::MalformedSignIn,
            ),
            (
                |p| p.chain_id = "solana:mainnet".into(),
                ErrorCode::SignInUnsupportedChain,
            ),
        ];
        for (bend, code) in cases {
            let mut p = payload();
            bend(&mut p);
            assert_eq!(message_of(&p).unwrap_err().code(), code, "{p:?}");
        }
    }

    #[test]
    fn request_urls_must_lie_under_the_signed_uri() {
        let signed = "http://127.0.0.1:8403/weather";
        let under = |url: &str| within_uri(&url::Url::parse(url).unwrap(), signed);
        assert!(under("http://127.0.0.1:8403/weather/lisbon"));
        assert!(under("http://127.0.0.1:8403/weather"));
        assert!(!under("http://127.0.0.1:8403/reports"));
        assert!(!under("http://127.0.0.1:8403/weatherman"));
        assert!(!under("https://127.0.0.1:8403/weather/lisbon"));
        assert!(!under("http://127.0.0.1:9999/weather/lisbon"));
    }

    #[test]
    fn authorities_name_the_port_only_when_not_the_default() {
        let of = |url: &str| authority(&url::Url::parse(url).unwrap()).unwrap();
        assert_eq!(of("https://api.example.com/x"), "api.example.com");
        assert_eq!(of("https://api.example.com:443/x"), "api.example.com");
        assert_eq!(of("http://127.0.0.1:8403/x"), "127.0.0.1:8403");
    }
}
