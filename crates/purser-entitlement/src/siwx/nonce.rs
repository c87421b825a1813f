//! Sign-in nonces that cost no storage to issue.
//!
//! A nonce is 80 lower-case hex digits: 8 bytes of issue time (Unix milliseconds, big-endian),
//! 16 random bytes, and the first 16 bytes of an HMAC-SHA256 over the scheme's label, the issue
//! time, the random bytes, the tenant's id and the lower-cased domain. Issuing one writes
//! nothing; checking one recomputes the MAC (compared in constant time) and its age (at most
//! the nonce TTL, issued at most [`CLOCK_LEEWAY_SECONDS`] in the future), so a nonce of another
//! tenant or domain, a tampered one or an expired one is refused without a lookup. Only a
//! sign-in that passed every check burns its nonce: `siwx:used:<nonce>` is put if absent in
//! coordination for the nonce's remaining lifetime (plus the clock leeway, since an instance
//! whose clock is behind accepts it that much longer), so a nonce is used once across instances
//! and of concurrent replays one wins. Storage thus grows only with sign-ins that each cost a
//! valid wallet signature over a fresh nonce.
//!
//! The MAC key is shared by every instance through coordination (`siwx:nonce-mac-key`, 32
//! random bytes put if absent, then read) and cached; each instance reads it again every
//! [`MAC_KEY_REFRESH`], putting back the key it holds when the stored one is gone (expired or
//! flushed), so outstanding nonces stay good and instances agree again within that interval.
//! A key lost with every instance's copy only invalidates the nonces of the last few minutes:
//! losing coordination loses speed, never value.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use purser_domain::coord::Coordination;
use purser_domain::id::TenantId;
use purser_domain::{Error, Result};
use rand::Rng as _;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use super::CLOCK_LEEWAY_SECONDS;

/// Where the MAC key lives in coordination.
pub(crate) const MAC_KEY: &str = "siwx:nonce-mac-key";
/// How long the key is kept in coordination when nobody puts it back: every running instance
/// does when it is gone, so it only lapses once no instance holds it.
const MAC_KEY_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long an instance uses the key it read before reading it again; also how long instances
/// may disagree after coordination lost the key and a new instance made another.
pub(crate) const MAC_KEY_REFRESH: Duration = Duration::from_secs(60);
const MAC_KEY_BYTES: usize = 32;
/// What the MAC covers first: this scheme and its version, so the key MACs nothing else alike.
const MAC_LABEL: &[u8] = b"purser/siwx-nonce/v1\0";

const ISSUED_BYTES: usize = 8;
const RANDOM_BYTES: usize = 16;
const TAG_BYTES: usize = 16;
const NONCE_BYTES: usize = ISSUED_BYTES + RANDOM_BYTES + TAG_BYTES;
/// The length of a nonce: lower-case hex of its bytes.
pub(crate) const NONCE_LENGTH: usize = NONCE_BYTES * 2;

type HmacSha256 = Hmac<Sha256>;

fn used_key(nonce: &str) -> String {
    format!("siwx:used:{nonce}")
}

/// Issues and checks nonces; clones share the cached key.
#[derive(Clone)]
pub(crate) struct Nonces {
    coordination: Arc<dyn Coordination>,
    ttl: Duration,
    refresh: Duration,
    key: Arc<Mutex<Option<CachedKey>>>,
}

#[derive(Clone, Copy)]
struct CachedKey {
    bytes: [u8; MAC_KEY_BYTES],
    read_at: Instant,
}

/// A nonce that passed every check but the last: it is to be burned once its sign-in is valid.
#[derive(Debug)]
pub(crate) struct CheckedNonce {
    used_key: String,
    remaining: Duration,
}

impl Nonces {
    /// Nonces good for `ttl` after they are issued.
    pub(crate) fn new(coordination: Arc<dyn Coordination>, ttl: Duration) -> Self {
        Self::with_refresh(coordination, ttl, MAC_KEY_REFRESH)
    }

    pub(crate) fn with_refresh(
        coordination: Arc<dyn Coordination>,
        ttl: Duration,
        refresh: Duration,
    ) -> Self {
        Self {
            coordination,
            ttl,
            refresh,
            key: Arc::default(),
        }
    }

    /// A fresh nonce for `tenant` and `domain`, issued at `now`. Stores nothing (but the shared
    /// key, the first time any instance needs it).
    pub(crate) async fn issue(
        &self,
        tenant: TenantId,
        domain: &str,
        now: DateTime<Utc>,
    ) -> Result<String> {
        let key = self.mac_key().await?;
        let issued = unix_millis(now);
        let mut random = [0u8; RANDOM_BYTES];
        rand::rng().fill(&mut random[..]);
        let mut bytes = Vec::with_capacity(NONCE_BYTES);
        bytes.extend_from_slice(&issued.to_be_bytes());
        bytes.extend_from_slice(&random);
        bytes.extend_from_slice(&tag_of(&key, issued, &random, tenant, domain)?);
        Ok(alloy::hex::encode(bytes))
    }

    /// Checks `nonce` for `tenant` and `domain` at `now`: issued here for them, not expired,
    /// not used. `None` when it is not good; an error only when coordination fails.
    pub(crate) async fn check(
        &self,
        nonce: &str,
        tenant: TenantId,
        domain: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<CheckedNonce>> {
        // One spelling per nonce (lower case), or a nonce would have several used-keys.
        let canonical = nonce.len() == NONCE_LENGTH
            && nonce
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let Some(bytes) = canonical.then(|| alloy::hex::decode(nonce).ok()).flatten() else {
            return Ok(None);
        };
        let (issued, rest) = bytes.split_at(ISSUED_BYTES);
        let (random, tag) = rest.split_at(RANDOM_BYTES);
        let mut issued_bytes = [0u8; ISSUED_BYTES];
        issued_bytes.copy_from_slice(issued);
        let issued = u64::from_be_bytes(issued_bytes);
        let key = self.mac_key().await?;
        let expected = tag_of(&key, issued, random, tenant, domain)?;
        if !bool::from(expected.as_slice().ct_eq(tag)) {
            return Ok(None);
        }
        let now = unix_millis(now);
        let leeway = CLOCK_LEEWAY_SECONDS.unsigned_abs() * 1000;
        let ttl = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        if issued > now.saturating_add(leeway) || now.saturating_sub(issued) > ttl {
            return Ok(None);
        }
        let used_key = used_key(nonce);
        if self.coordination.get(&used_key).await?.is_some() {
            // Used already: refused before its signature costs anything to check.
            return Ok(None);
        }
        let remaining = issued
            .saturating_add(ttl)
            .saturating_add(leeway)
            .saturating_sub(now);
        Ok(Some(CheckedNonce {
            used_key,
            // Coordination keeps nothing for less than a second.
            remaining: Duration::from_millis(remaining).max(Duration::from_secs(1)),
        }))
    }

    /// Burns a checked nonce: true for the one caller that used it.
    pub(crate) async fn burn(&self, nonce: &CheckedNonce) -> Result<bool> {
        self.coordination
            .put_if_absent(&nonce.used_key, b"1", nonce.remaining)
            .await
    }

    /// The shared key: cached, read again every `refresh`. A failed read keeps the cached key
    /// (and tries again after another `refresh`); without one it is an error.
    async fn mac_key(&self) -> Result<[u8; MAC_KEY_BYTES]> {
        let cached = *self.key.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cached) = cached
            && cached.read_at.elapsed() < self.refresh
        {
            return Ok(cached.bytes);
        }
        let proposed = match cached {
            Some(cached) => cached.bytes,
            None => {
                let mut fresh = [0u8; MAC_KEY_BYTES];
                rand::rng().fill(&mut fresh[..]);
                fresh
            }
        };
        let bytes = match (self.read_key(&proposed).await, cached) {
            (Ok(bytes), _) => bytes,
            (Err(e), Some(cached)) => {
                tracing::warn!(error = %e.chain(), "the sign-in nonce key could not be read again; the cached one stays in use");
                cached.bytes
            }
            (Err(e), None) => return Err(e),
        };
        *self.key.lock().unwrap_or_else(|e| e.into_inner()) = Some(CachedKey {
            bytes,
            read_at: Instant::now(),
        });
        Ok(bytes)
    }

    /// The key in coordination, after putting `proposed` there if there is none.
    async fn read_key(&self, proposed: &[u8; MAC_KEY_BYTES]) -> Result<[u8; MAC_KEY_BYTES]> {
        for _ in 0..3 {
            if self
                .coordination
                .put_if_absent(MAC_KEY, proposed, MAC_KEY_TTL)
                .await?
            {
                return Ok(*proposed);
            }
            // Gone in between (expired, flushed): the next round puts it again.
            if let Some(stored) = self.coordination.get(MAC_KEY).await? {
                match <[u8; MAC_KEY_BYTES]>::try_from(stored.as_slice()) {
                    Ok(key) => return Ok(key),
                    Err(_) => {
                        tracing::warn!(
                            length = stored.len(),
                            "the stored sign-in nonce key is malformed; replacing it"
                        );
                        self.coordination.delete(MAC_KEY).await?;
                    }
                }
            }
        }
        Err(Error::unavailable(
            "reading the sign-in nonce key",
            "the key in coordination kept changing",
        ))
    }
}

fn unix_millis(time: DateTime<Utc>) -> u64 {
    u64::try_from(time.timestamp_millis()).unwrap_or_default()
}

fn tag_of(
    key: &[u8; MAC_KEY_BYTES],
    issued: u64,
    random: &[u8],
    tenant: TenantId,
    domain: &str,
) -> Result<[u8; TAG_BYTES]> {
    let mut mac = HmacSha256::new_from_slice(key)
        .map_err(|e| Error::internal("keying the sign-in nonce MAC", e.to_string()))?;
    mac.update(MAC_LABEL);
    mac.update(&issued.to_be_bytes());
    mac.update(random);
    mac.update(tenant.as_uuid().as_bytes());
    // Last and alone of variable length, so the input is unambiguous.
    mac.update(domain.to_ascii_lowercase().as_bytes());
    let full = mac.finalize().into_bytes();
    let mut tag = [0u8; TAG_BYTES];
    tag.copy_from_slice(&full[..TAG_BYTES]);
    Ok(tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use purser_coord::MemoryCoordination;

    const TTL: Duration = Duration::from_secs(300);
    const DOMAIN: &str = "api.example.com";

    fn instance(coordination: &Arc<MemoryCoordination>) -> Nonces {
        Nonces::with_refresh(coordination.clone(), TTL, Duration::ZERO)
    }

    fn at(base: DateTime<Utc>, offset_ms: i64) -> DateTime<Utc> {
        base + chrono::Duration::milliseconds(offset_ms)
    }

    #[tokio::test]
    async fn nonces_are_alphanumeric_and_good_where_issued() {
        let coordination = Arc::new(MemoryCoordination::new());
        let nonces = instance(&coordination);
        let tenant = TenantId::new();
        let now = Utc::now();
        let nonce = nonces.issue(tenant, DOMAIN, now).await.unwrap();
        assert_eq!(nonce.len(), NONCE_LENGTH);
        assert!(nonce.chars().all(|c| c.is_ascii_alphanumeric()), "{nonce}");
        assert_ne!(nonce, nonces.issue(tenant, DOMAIN, now).await.unwrap());
        let checked = nonces.check(&nonce, tenant, DOMAIN, now).await.unwrap();
        assert!(checked.is_some());
        // The domain is bound without case, as hosts are.
        let upper = nonces.check(&nonce, tenant, "API.Example.com", now).await;
        assert!(upper.unwrap().is_some());
    }

    #[tokio::test]
    async fn foreign_tampered_and_misspelled_nonces_are_refused() {
        let coordination = Arc::new(MemoryCoordination::new());
        let nonces = instance(&coordination);
        let tenant = TenantId::new();
        let now = Utc::now();
        let nonce = nonces.issue(tenant, DOMAIN, now).await.unwrap();
        let refused = |nonce: String, tenant: TenantId, domain: &'static str| {
            let nonces = nonces.clone();
            async move {
                nonces
                    .check(&nonce, tenant, domain, now)
                    .await
                    .unwrap()
                    .is_none()
            }
        };
        assert!(refused(nonce.clone(), TenantId::new(), DOMAIN).await);
        assert!(refused(nonce.clone(), tenant, "api.example.org").await);
        // Every digit counts: the issue time, the randomness and the tag.
        for position in [0, 15, 16, 47, 48, NONCE_LENGTH - 1] {
            let mut bent = nonce.clone().into_bytes();
            bent[position] = if bent[position] == b'0' { b'1' } else { b'0' };
            let bent = String::from_utf8(bent).unwrap();
            assert!(refused(bent, tenant, DOMAIN).await, "digit {position}");
        }
        assert!(refused(nonce.to_ascii_uppercase(), tenant, DOMAIN).await);
        assert!(refused(nonce[..NONCE_LENGTH - 2].to_owned(), tenant, DOMAIN).await);
        assert!(refused(format!("{nonce}00"), tenant, DOMAIN).await);
        assert!(refused("NeverIssued0123".to_owned(), tenant, DOMAIN).await);
        // Another deployment's key: not issued here.
        let elsewhere = instance(&Arc::new(MemoryCoordination::new()));
        let foreign = elsewhere.issue(tenant, DOMAIN, now).await.unwrap();
        assert!(refused(foreign, tenant, DOMAIN).await);
    }

    #[tokio::test]
    async fn nonces_last_their_ttl_and_allow_for_clock_differences() {
        let coordination = Arc::new(MemoryCoordination::new());
        let nonces = instance(&coordination);
        let tenant = TenantId::new();
        let issued = Utc::now();
        let nonce = nonces.issue(tenant, DOMAIN, issued).await.unwrap();
        let ttl_ms = TTL.as_millis() as i64;
        let leeway_ms = CLOCK_LEEWAY_SECONDS * 1000;
        let good_at = |offset_ms: i64| {
            let (nonces, nonce) = (nonces.clone(), nonce.clone());
            async move {
                nonces
                    .check(&nonce, tenant, DOMAIN, at(issued, offset_ms))
                    .await
                    .unwrap()
            }
        };
        assert!(
            good_at(ttl_ms).await.is_some(),
            "good to the end of its TTL"
        );
        assert!(good_at(ttl_ms + 1).await.is_none(), "expired");
        // Issued by an instance whose clock is ahead: tolerated within the leeway.
        assert!(good_at(-leeway_ms).await.is_some());
        assert!(good_at(-leeway_ms - 1).await.is_none());
        // Kept as used for what remains of its life, plus the leeway.
        let checked = good_at(100_000).await.unwrap();
        assert_eq!(
            checked.remaining,
            Duration::from_millis((ttl_ms - 100_000 + leeway_ms) as u64)
        );
    }

    #[tokio::test]
    async fn a_nonce_is_burned_once_and_issuing_stores_nothing() {
        let coordination = Arc::new(MemoryCoordination::new());
        let nonces = instance(&coordination);
        let tenant = TenantId::new();
        let now = Utc::now();
        let mut issued = Vec::new();
        for _ in 0..1_000 {
            issued.push(nonces.issue(tenant, DOMAIN, now).await.unwrap());
        }
        assert_eq!(
            coordination.key_count(),
            1,
            "the shared key, nothing per nonce"
        );
        let checked = nonces.check(&issued[0], tenant, DOMAIN, now).await.unwrap();
        let again = nonces.check(&issued[0], tenant, DOMAIN, now).await.unwrap();
        let (checked, again) = (checked.unwrap(), again.unwrap());
        assert!(nonces.burn(&checked).await.unwrap());
        assert!(
            !nonces.burn(&again).await.unwrap(),
            "checked twice, burned once"
        );
        let after = nonces.check(&issued[0], tenant, DOMAIN, now).await.unwrap();
        assert!(after.is_none(), "used");
        assert!(
            nonces
                .check(&issued[1], tenant, DOMAIN, now)
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(coordination.key_count(), 2, "the key and one used nonce");
    }

    #[tokio::test]
    async fn instances_share_the_key_and_put_it_back_when_it_is_lost() {
        let coordination = Arc::new(MemoryCoordination::new());
        let (first, second) = (instance(&coordination), instance(&coordination));
        let tenant = TenantId::new();
        let now = Utc::now();
        let nonce = first.issue(tenant, DOMAIN, now).await.unwrap();
        let checked = second.check(&nonce, tenant, DOMAIN, now).await.unwrap();
        assert!(checked.is_some(), "another instance's nonce");
        // Coordination loses the key: the first instance to read again puts its own back, so
        // outstanding nonces stay good and a newcomer reads the same key.
        coordination.delete(MAC_KEY).await.unwrap();
        assert!(
            first
                .check(&nonce, tenant, DOMAIN, now)
                .await
                .unwrap()
                .is_some()
        );
        let newcomer = instance(&coordination);
        assert!(
            newcomer
                .check(&nonce, tenant, DOMAIN, now)
                .await
                .unwrap()
                .is_some()
        );
        // A malformed key is replaced; nonces of the old key are then refused.
        coordination
            .put(MAC_KEY, b"short", Duration::from_secs(60))
            .await
            .unwrap();
        let replaced = instance(&coordination);
        let fresh = replaced.issue(tenant, DOMAIN, now).await.unwrap();
        assert!(
            replaced
                .check(&fresh, tenant, DOMAIN, now)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            first
                .check(&nonce, tenant, DOMAIN, now)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            first
                .check(&fresh, tenant, DOMAIN, now)
                .await
                .unwrap()
                .is_some(),
            "the first instance follows the new key"
        );
        assert_eq!(
            coordination.get(MAC_KEY).await.unwrap().map(|k| k.len()),
            Some(MAC_KEY_BYTES)
        );
    }
}
