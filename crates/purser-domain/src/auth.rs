//! API keys, roles, and the principal a request acts as.
//!
//! A key looks like `psk_<16 hex>_<43 base64url>`. The first part (the prefix) identifies the
//! key and is stored in the clear so listings can show it; the whole token is stored only as its
//! SHA-256. Keys carry 256 random bits, so a fast hash is the right tool (as for GitHub and
//! Stripe tokens); slow password hashes exist for guessable secrets.
//!
//! Every tenant-owned query takes a [`TenantScope`], and the only way to get one for a request
//! is [`Principal::scope`], which checks the caller's role against the tenant it asks for.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use purser_cache::BoundedCache;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, ErrorCode, Result};
use crate::id::{ApiKeyId, TenantId};
use crate::macros::string_enum;
use crate::repo::{ApiKeyRepository, Store, TenantRepository};
use crate::tenant::TenantStatus;

const TOKEN_SCHEME: &str = "psk_";
const PREFIX_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

string_enum!(
    /// What a key may do.
    Role, "role" {
        /// The platform's operators: every tenant, every operation.
        Operator = "operator",
        /// A tenant's administrators: read and change their own tenant.
        TenantAdmin = "tenant_admin",
        /// Read-only access to their own tenant.
        TenantRead = "tenant_read",
        /// A merchant's resource server calling the facilitator and access checks.
        ResourceServer = "resource_server",
    }
);

/// A kind of operation on a tenant's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    /// Verify, settle and check access on the tenant's behalf.
    Facilitate,
}

impl Role {
    fn allows(self, access: Access) -> bool {
        match self {
            Role::Operator => true,
            Role::TenantAdmin => matches!(access, Access::Read | Access::Write),
            Role::TenantRead => matches!(access, Access::Read),
            Role::ResourceServer => matches!(access, Access::Facilitate),
        }
    }
}

/// An API key as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    /// `None` for operator keys, which belong to the platform.
    pub tenant_id: Option<TenantId>,
    pub role: Role,
    pub name: String,
    /// The public part of the token (`psk_…`), enough to recognise a key, useless to use it.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key as the authenticator reads it: with its hash and its tenant's status.
#[derive(Debug, Clone)]
pub struct StoredApiKey {
    pub key: ApiKey,
    pub secret_hash: String,
    pub tenant_status: Option<TenantStatus>,
}

/// A key about to be stored.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: ApiKeyId,
    pub tenant_id: Option<TenantId>,
    pub role: Role,
    pub name: String,
    pub prefix: String,
    pub secret_hash: String,
    pub created_at: DateTime<Utc>,
}

/// Whose keys a listing or revocation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOwner {
    Platform,
    Tenant(TenantScope),
}

/// The full token of a freshly made key. It is shown once and then only its hash exists.
pub struct ApiKeyToken(String);

impl ApiKeyToken {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKeyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKeyToken(***)")
    }
}

/// Makes a new key: the record to store and the token to show once.
pub fn mint_api_key(
    tenant_id: Option<TenantId>,
    role: Role,
    name: &str,
) -> Result<(NewApiKey, ApiKeyToken)> {
    if (role == Role::Operator) != tenant_id.is_none() {
        return Err(Error::invalid_input(
            "operator keys belong to the platform; every other role needs a tenant",
        ));
    }
    let name = name.trim();
    crate::text::API_KEY_NAME.check("key name", name)?;
    let mut rng = rand::rng();
    let mut prefix_bytes = [0u8; PREFIX_BYTES];
    let mut secret_bytes = [0u8; SECRET_BYTES];
    rng.fill_bytes(&mut prefix_bytes);
    rng.fill_bytes(&mut secret_bytes);
    let prefix = format!("{TOKEN_SCHEME}{}", hex(&prefix_bytes));
    let token = format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(secret_bytes));
    let record = NewApiKey {
        id: ApiKeyId::new(),
        tenant_id,
        role,
        name: name.to_owned(),
        prefix,
        secret_hash: hash_token(&token),
        created_at: crate::time::now(),
    };
    Ok((record, ApiKeyToken(token)))
}

/// Splits a presented token into its prefix, checking its shape before any lookup.
fn token_prefix(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(TOKEN_SCHEME)?;
    let (prefix_hex, secret) = rest.split_once('_')?;
    let shape_ok = prefix_hex.len() == PREFIX_BYTES * 2
        && prefix_hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && secret.len() == 43
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    shape_ok.then(|| &token[..TOKEN_SCHEME.len() + prefix_hex.len()])
}

fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// Who a request acts as, established from its API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub key_id: ApiKeyId,
    pub role: Role,
    /// The key's tenant; `None` for operators.
    pub tenant_id: Option<TenantId>,
}

impl Principal {
    pub fn is_operator(&self) -> bool {
        self.role == Role::Operator
    }

    pub fn require_operator(&self) -> Result<()> {
        if self.is_operator() {
            Ok(())
        } else {
            Err(Error::forbidden("this operation is for platform operators"))
        }
    }

    /// Which tenant this principal may act on, for `access`: its own (a tenant key, which
    /// belongs to a tenant that exists), or the one an operator names, not yet known to exist.
    fn resolve(&self, requested: Option<TenantId>, access: Access) -> Result<Resolved> {
        if !self.role.allows(access) {
            return Err(Error::forbidden(format!(
                "a {} key cannot {}",
                self.role,
                match access {
                    Access::Read => "read tenant data",
                    Access::Write => "change tenant data",
                    Access::Facilitate => "verify or settle payments",
                }
            )));
        }
        match (self.tenant_id, requested) {
            (None, Some(tenant)) => Ok(Resolved::Named(tenant)),
            (None, None) => Err(Error::invalid_input(
                "operator keys must name the tenant (`tenantId`)",
            )),
            (Some(own), None) => Ok(Resolved::Own(TenantScope(own))),
            (Some(own), Some(tenant)) if own == tenant => Ok(Resolved::Own(TenantScope(own))),
            (Some(_), Some(_)) => Err(Error::forbidden(
                "a tenant key can only act on its own tenant",
            )),
        }
    }

    /// A tenant key's own tenant, for `access`; naming any other tenant is refused. A
    /// tenant's keys exist only while it does (a foreign key; tenants are never deleted), so
    /// this needs no lookup. A tenant an *operator* names must be checked to exist: that is
    /// [`Self::checked_scope`] or [`Authenticator::scope`], and this answers `internal` for
    /// it (a caller that skipped the check is a bug, and gets no scope).
    pub fn scope(&self, requested: Option<TenantId>, access: Access) -> Result<TenantScope> {
        match self.resolve(requested, access)? {
            Resolved::Own(scope) => Ok(scope),
            Resolved::Named(_) => Err(unchecked_tenant()),
        }
    }

    /// The tenant this principal may act on, for `access`: a tenant key's own (naming another
    /// is `forbidden`), or the one an operator names, which must exist (`not_found`
    /// otherwise). One lookup in `tenants` per call that names a tenant;
    /// [`Authenticator::scope`] remembers the tenants it found.
    pub async fn checked_scope(
        &self,
        tenants: &dyn TenantRepository,
        requested: Option<TenantId>,
        access: Access,
    ) -> Result<TenantScope> {
        match self.resolve(requested, access)? {
            Resolved::Own(scope) => Ok(scope),
            Resolved::Named(tenant) => match tenants.get_tenant(tenant).await? {
                Some(_) => Ok(TenantScope(tenant)),
                None => Err(Error::not_found(TenantId::WHAT)),
            },
        }
    }

    /// Whose keys this principal manages, for `access`: operators name a tenant, or none for
    /// the platform's own keys; tenant keys get their own tenant's. Like [`Self::scope`], a
    /// tenant an operator names needs [`Self::checked_key_owner`] (this answers `internal`).
    pub fn key_owner(&self, requested: Option<TenantId>, access: Access) -> Result<KeyOwner> {
        if self.is_operator() && requested.is_none() {
            return Ok(KeyOwner::Platform);
        }
        self.scope(requested, access).map(KeyOwner::Tenant)
    }

    /// Like [`Self::key_owner`], with the tenant an operator names checked to exist, as
    /// [`Self::checked_scope`] does.
    pub async fn checked_key_owner(
        &self,
        tenants: &dyn TenantRepository,
        requested: Option<TenantId>,
        access: Access,
    ) -> Result<KeyOwner> {
        if self.is_operator() && requested.is_none() {
            return Ok(KeyOwner::Platform);
        }
        self.checked_scope(tenants, requested, access)
            .await
            .map(KeyOwner::Tenant)
    }

    /// Whether this principal may create a key with `role`: operators may create any; tenant
    /// administrators any tenant role; nobody else any.
    pub fn may_grant(&self, role: Role) -> Result<()> {
        let allowed = match self.role {
            Role::Operator => true,
            Role::TenantAdmin => role != Role::Operator,
            Role::TenantRead | Role::ResourceServer => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(Error::forbidden(format!(
                "a {} key cannot create {role} keys",
                self.role
            )))
        }
    }
}

/// What [`Principal::resolve`] found.
enum Resolved {
    Own(TenantScope),
    Named(TenantId),
}

fn unchecked_tenant() -> Error {
    Error::internal(
        "scoping a tenant an operator names",
        "a named tenant's scope comes from Principal::checked_scope or Authenticator::scope, \
         which check that it exists",
    )
}

/// Proof that the holder may touch one tenant's rows. Repositories take it for every
/// tenant-owned query and put its id in the `WHERE` clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TenantScope(TenantId);

impl TenantScope {
    /// A scope for trusted code that acts without an API key: the bootstrap CLI and background
    /// jobs. Request handlers must use [`Principal::scope`].
    pub fn trusted(tenant: TenantId) -> Self {
        Self(tenant)
    }

    pub fn tenant_id(&self) -> TenantId {
        self.0
    }
}

/// How long an API key checked against the database is trusted from memory. Revoking a key
/// or suspending its tenant announces it to every instance at once (see
/// [`crate::coord::Invalidation`]); this bounds how long a lost announcement leaves a key working.
pub const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// How many checked keys are kept in memory at most.
const KEY_CACHE_ENTRIES: u64 = 10_000;

/// The length of a key's prefix, `psk_` and 16 hex digits.
const PREFIX_LEN: usize = TOKEN_SCHEME.len() + PREFIX_BYTES * 2;

/// A key that passed the checks, remembered by the hash of the presented token. Copied out on
/// every hit, so it holds nothing behind a pointer.
#[derive(Debug, Clone, Copy)]
struct CheckedKey {
    principal: Principal,
    prefix: [u8; PREFIX_LEN],
}

/// How many tenants found to exist are remembered at most.
const KNOWN_TENANT_ENTRIES: u64 = 10_000;

/// The checked keys, by the hash of the presented token, each trusted for `ttl`.
fn key_cache(ttl: std::time::Duration) -> BoundedCache<String, CheckedKey> {
    BoundedCache::builder("checked api keys", KEY_CACHE_ENTRIES)
        .time_to_live(ttl)
        .build()
}

/// Checks presented API keys: against the database, then from memory for [`KEY_CACHE_TTL`],
/// so the hot paths (payment checks on every request) do not read the database per request.
/// Also scopes principals to the tenants they name ([`Self::scope`]), remembering the tenants
/// found to exist: tenants are never deleted (a trigger refuses it on both backends), so a
/// tenant once found exists for good and the memory needs no expiry, only a size cap.
///
/// Both memories are [`BoundedCache`]s: at most `KEY_CACHE_ENTRIES` (10,000) keys and
/// `KNOWN_TENANT_ENTRIES` (10,000) tenants, the least used evicted first. A check that began
/// before a key's or a tenant's invalidation is not remembered (the cache's generation guard).
pub struct Authenticator {
    keys: Arc<dyn ApiKeyRepository>,
    tenants: Arc<dyn TenantRepository>,
    last_used_resolution: Duration,
    checked: BoundedCache<String, CheckedKey>,
    known_tenants: BoundedCache<TenantId, ()>,
}

impl Authenticator {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self::with_repositories(store.clone(), store)
    }

    /// Over the two repositories it reads: keys, and tenants (for [`Self::scope`]).
    pub fn with_repositories(
        keys: Arc<dyn ApiKeyRepository>,
        tenants: Arc<dyn TenantRepository>,
    ) -> Self {
        Self {
            keys,
            tenants,
            last_used_resolution: Duration::seconds(60),
            checked: key_cache(KEY_CACHE_TTL),
            known_tenants: BoundedCache::builder("known tenants", KNOWN_TENANT_ENTRIES).build(),
        }
    }

    /// How stale `last_used_at` may get, bounding writes to one per key per period.
    pub fn with_last_used_resolution(mut self, resolution: Duration) -> Self {
        self.last_used_resolution = resolution;
        self
    }

    /// How long a checked key is trusted from memory; zero checks every request against the
    /// database.
    pub fn with_cache_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.checked = key_cache(ttl);
        self
    }

    /// Forgets what was checked about the key with this prefix (it was revoked).
    pub fn forget_key(&self, prefix: &str) {
        self.checked
            .forget_if(|_, k| k.prefix == *prefix.as_bytes());
    }

    /// Forgets what was checked about the tenant's keys (it was suspended or reinstated).
    pub fn forget_tenant(&self, tenant: TenantId) {
        self.checked
            .forget_if(|_, k| k.principal.tenant_id == Some(tenant));
    }

    /// How many checked keys and known tenants are remembered (pending evictions applied).
    #[doc(hidden)]
    pub fn cached_entries(&self) -> (u64, u64) {
        (self.checked.entry_count(), self.known_tenants.entry_count())
    }
}

impl crate::coord::Forget for Authenticator {
    fn forget(&self, what: &crate::coord::Invalidation) {
        use crate::coord::Invalidation;
        match what {
            Invalidation::ApiKey { prefix } => self.forget_key(prefix),
            Invalidation::Tenant(tenant) => self.forget_tenant(*tenant),
            Invalidation::Grants { .. } | Invalidation::Meters(_) => {}
        }
    }

    fn forget_all(&self) {
        self.checked.forget_all();
    }
}

impl Authenticator {
    /// The tenant `principal` may act on, for `access`, as [`Principal::checked_scope`]
    /// answers it: a tenant an operator names must exist (`not_found`), and is looked up once
    /// per instance.
    pub async fn scope(
        &self,
        principal: &Principal,
        requested: Option<TenantId>,
        access: Access,
    ) -> Result<TenantScope> {
        match principal.resolve(requested, access)? {
            Resolved::Own(scope) => Ok(scope),
            Resolved::Named(tenant) => {
                self.known_tenant(tenant).await?;
                Ok(TenantScope(tenant))
            }
        }
    }

    /// Like [`Principal::checked_key_owner`], with the tenants found remembered.
    pub async fn key_owner(
        &self,
        principal: &Principal,
        requested: Option<TenantId>,
        access: Access,
    ) -> Result<KeyOwner> {
        if principal.is_operator() && requested.is_none() {
            return Ok(KeyOwner::Platform);
        }
        self.scope(principal, requested, access)
            .await
            .map(KeyOwner::Tenant)
    }

    /// `not_found` unless the tenant exists.
    async fn known_tenant(&self, tenant: TenantId) -> Result<()> {
        if self.known_tenants.get(&tenant).is_some() {
            return Ok(());
        }
        let read = self.known_tenants.begin_read();
        if self.tenants.get_tenant(tenant).await?.is_none() {
            return Err(Error::not_found(TenantId::WHAT));
        }
        self.known_tenants.insert(read, tenant, ());
        Ok(())
    }

    pub async fn authenticate(&self, token: &str) -> Result<Principal> {
        let invalid = || Error::new(ErrorCode::InvalidApiKey, "the API key is not valid");
        let prefix = token_prefix(token).ok_or_else(invalid)?;
        let presented = hash_token(token);
        if let Some(key) = self.checked.get(&presented) {
            return Ok(key.principal);
        }
        let read = self.checked.begin_read();
        let principal = self.check(prefix, &presented).await?;
        if let Ok(prefix) = prefix.as_bytes().try_into() {
            self.checked
                .insert(read, presented, CheckedKey { principal, prefix });
        }
        Ok(principal)
    }

    /// Checks a key against the database: its hash, revocation and tenant.
    async fn check(&self, prefix: &str, presented: &str) -> Result<Principal> {
        let invalid = || Error::new(ErrorCode::InvalidApiKey, "the API key is not valid");
        let stored = self
            .keys
            .find_api_key_by_prefix(prefix)
            .await?
            .ok_or_else(invalid)?;
        if !bool::from(presented.as_bytes().ct_eq(stored.secret_hash.as_bytes())) {
            return Err(invalid());
        }
        if stored.key.revoked_at.is_some() {
            return Err(Error::new(
                ErrorCode::ApiKeyRevoked,
                "the API key was revoked",
            ));
        }
        if stored.tenant_status == Some(TenantStatus::Suspended) {
            return Err(Error::forbidden("the key's tenant is suspended"));
        }
        let now = crate::time::now();
        let stale = stored
            .key
            .last_used_at
            .is_none_or(|at| now - at >= self.last_used_resolution);
        if stale
            && let Err(err) = self
                .keys
                .touch_api_key(stored.key.id, now, now - self.last_used_resolution)
                .await
        {
            tracing::warn!(key_id = %stored.key.id, error = %err.chain(), "could not record key use");
        }
        Ok(Principal {
            key_id: stored.key.id,
            role: stored.key.role,
            tenant_id: stored.key.tenant_id,
        })
    }
}

#[cfg(test)]
mod authenticator_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_have_the_documented_shape_and_hash() {
        let tenant = TenantId::new();
        let (record, token) = mint_api_key(Some(tenant), Role::TenantRead, " ci ").unwrap();
        assert_eq!(record.name, "ci");
        assert_eq!(token_prefix(token.expose()), Some(record.prefix.as_str()));
        assert_eq!(record.secret_hash, hash_token(token.expose()));
        assert_eq!(record.secret_hash.len(), 64);
        assert!(!format!("{token:?}").contains(&token.expose()[5..]));
        let (_, other) = mint_api_key(Some(tenant), Role::TenantRead, "ci").unwrap();
        assert_ne!(token.expose(), other.expose());
    }

    #[test]
    fn operator_keys_and_tenant_keys_do_not_mix() {
        assert!(mint_api_key(None, Role::TenantAdmin, "x").is_err());
        assert!(mint_api_key(Some(TenantId::new()), Role::Operator, "x").is_err());
        assert!(mint_api_key(None, Role::Operator, "x").is_ok());
    }

    #[test]
    fn malformed_tokens_are_rejected_before_lookup() {
        for bad in [
            "",
            "psk_",
            "psk_0123456789abcdef",
            "psk_0123456789ABCDEF_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "psk_0123456789abcdef_aaaa",
            "sk_0123456789abcdef_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "psk_0123456789abcdef_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!",
        ] {
            assert_eq!(token_prefix(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn scopes_follow_roles_and_tenants() {
        let own = TenantId::new();
        let other = TenantId::new();
        let key = |role, tenant_id| Principal {
            key_id: ApiKeyId::new(),
            role,
            tenant_id,
        };
        let admin = key(Role::TenantAdmin, Some(own));
        assert_eq!(admin.scope(None, Access::Write).unwrap().tenant_id(), own);
        assert_eq!(
            admin.scope(Some(other), Access::Read).unwrap_err().code(),
            ErrorCode::Forbidden
        );
        let reader = key(Role::TenantRead, Some(own));
        assert!(reader.scope(None, Access::Read).is_ok());
        assert_eq!(
            reader.scope(None, Access::Write).unwrap_err().code(),
            ErrorCode::Forbidden
        );
        let server = key(Role::ResourceServer, Some(own));
        assert!(server.scope(None, Access::Read).is_err());
        assert!(server.scope(None, Access::Facilitate).is_ok());
        let operator = key(Role::Operator, None);
        // A tenant an operator names is checked to exist elsewhere (the store suite); a scope
        // for it that skipped the check is never minted.
        assert_eq!(
            operator
                .scope(Some(other), Access::Write)
                .unwrap_err()
                .code(),
            ErrorCode::Internal
        );
        assert_eq!(
            operator
                .key_owner(Some(other), Access::Write)
                .unwrap_err()
                .code(),
            ErrorCode::Internal
        );
        assert_eq!(
            operator.scope(None, Access::Read).unwrap_err().code(),
            ErrorCode::InvalidInput
        );
        assert!(admin.require_operator().is_err());
        assert_eq!(
            operator.key_owner(None, Access::Write).unwrap(),
            KeyOwner::Platform
        );
        assert_eq!(
            admin.key_owner(None, Access::Write).unwrap(),
            KeyOwner::Tenant(TenantScope::trusted(own))
        );
        assert!(reader.key_owner(None, Access::Write).is_err());
        assert!(admin.may_grant(Role::TenantRead).is_ok());
        assert!(admin.may_grant(Role::Operator).is_err());
        assert!(reader.may_grant(Role::TenantRead).is_err());
        assert!(operator.may_grant(Role::Operator).is_ok());
        assert!(operator.require_operator().is_ok());
    }
}
