//! The hot path of entitlement checks: a wallet's grants, read from the database once and then
//! answered from memory.
//!
//! What is cached is, per tenant and wallet, the grants that held when they were read. The
//! database stays the truth:
//!
//! - a grant **without a use limit** (for a time, or without end) admits from memory. Its uses
//!   are counted in memory and added to the database in batches ([`GrantCache::flush_uses`],
//!   every second while serving and once at shutdown);
//! - a grant **with a use limit** is always used in the database (one atomic statement per
//!   use), so a grant of N uses admits exactly N requests across every instance. The cache
//!   only tells which wallets have nothing, without a database read;
//! - when a grant is made, used up or revoked, the instance that changed it announces it on
//!   the coordination backend ([`purser_domain::coord::Invalidation::Grants`]); every instance
//!   drops the wallet's entry. An entry is also dropped on its own after the configured TTL,
//!   which bounds how long a revoked grant can still admit if an announcement is lost (a
//!   reconnect to Redis drops every entry, see [`GrantCache::forget_all`]).
//!
//! The wallets are a [`BoundedCache`]: at most [`MAX_ENTRIES`] of them, the least used evicted
//! first, and a read of the database that began before an invalidation is not kept (it may
//! predate the change announced). The uses counted in memory are not a cache: they are owed to
//! the database, so none is ever dropped; each is a grant found in the database, and the map is
//! emptied every second.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use purser_cache::BoundedCache;
use purser_domain::Result;
use purser_domain::auth::TenantScope;
use purser_domain::coord::{Forget, Invalidation};
use purser_domain::entitlement::{Grant, GrantFilter, GrantScope};
use purser_domain::id::{GrantId, ResourceId, TenantId};
use purser_domain::page::PageRequest;
use purser_domain::repo::GrantRepository;

/// How long a wallet's grants are answered from memory, by default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5);

/// How many wallets' grants are kept at most.
pub const MAX_ENTRIES: u64 = 200_000;

/// The most grants read for one wallet; a wallet with more is checked in the database.
const MAX_GRANTS_READ: u32 = 100;

type Key = (TenantId, Box<str>);

/// A wallet's grants as they were read.
struct Entry {
    /// The grants that held when read.
    grants: Arc<[Grant]>,
    /// False when the wallet had more grants than were read.
    complete: bool,
}

/// The wallets' grants: at most `max` wallets, each for `ttl`.
fn wallet_cache(max: u64, ttl: Duration) -> BoundedCache<Key, Arc<Entry>> {
    BoundedCache::builder("wallet grants", max)
        .time_to_live(ttl)
        .build()
}

/// What the cache knows about one request.
enum Known {
    /// A grant without a use limit holds: admit, counting the use in memory.
    Unlimited(Grant),
    /// Nothing holds.
    Nothing,
    /// A grant with a use limit may hold (or the list was incomplete): ask the database.
    AskDatabase,
}

/// A wallet's grants per tenant, in memory, with the database as truth.
pub struct GrantCache {
    store: Arc<dyn GrantRepository>,
    ttl: Duration,
    entries: BoundedCache<Key, Arc<Entry>>,
    /// Uses of unlimited grants not yet added to the database.
    uses: Mutex<HashMap<GrantId, u32>>,
}

impl std::fmt::Debug for GrantCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrantCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl GrantCache {
    /// A cache over `store` whose entries live `ttl`; a zero TTL reads the database on every
    /// request.
    pub fn new(store: Arc<dyn GrantRepository>, ttl: Duration) -> Self {
        Self {
            store,
            ttl,
            entries: wallet_cache(MAX_ENTRIES, ttl),
            uses: Mutex::default(),
        }
    }

    /// Admits one request of `wallet` to `resource` (in `group`, when it has one) at `now`:
    /// the grant that pays for it, its use counted, or `None` when no grant holds.
    pub async fn admit(
        &self,
        scope: TenantScope,
        wallet: &str,
        resource: ResourceId,
        group: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<Grant>> {
        let key: Key = (scope.tenant_id(), wallet.into());
        let known = match self.known(&key, resource, group, now) {
            Some(known) => known,
            None => {
                self.read(scope, &key, now).await?;
                self.known(&key, resource, group, now)
                    .unwrap_or(Known::AskDatabase)
            }
        };
        match known {
            Known::Unlimited(grant) => {
                *self
                    .uses
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(grant.id)
                    .or_default() += 1;
                Ok(Some(grant))
            }
            Known::Nothing => Ok(None),
            Known::AskDatabase => {
                let used = self
                    .store
                    .use_grant(scope, wallet, resource, group, now)
                    .await?;
                if used.as_ref().is_none_or(|g| !g.holds_at(now)) {
                    // Used up, here or elsewhere: read the wallet afresh next time.
                    self.forget(scope.tenant_id(), wallet);
                }
                Ok(used)
            }
        }
    }

    /// What the fresh entry for `key` says about `resource`; `None` when there is no fresh
    /// entry.
    fn known(
        &self,
        key: &Key,
        resource: ResourceId,
        group: Option<&str>,
        now: DateTime<Utc>,
    ) -> Option<Known> {
        let entry = self.entries.get(key)?;
        let covers = |grant: &&Grant| match &grant.scope {
            GrantScope::Resource(id) => *id == resource,
            GrantScope::Group(name) => Some(name.as_str()) == group,
        };
        let mut limited = false;
        for grant in entry.grants.iter().filter(covers) {
            if !grant.holds_at(now) {
                continue;
            }
            if grant.uses_allowed.is_none() {
                return Some(Known::Unlimited(grant.clone()));
            }
            limited = true;
        }
        Some(if limited || !entry.complete {
            Known::AskDatabase
        } else {
            Known::Nothing
        })
    }

    /// Reads the wallet's grants that hold now and keeps them, unless an invalidation arrived
    /// meanwhile (the read may predate it).
    async fn read(&self, scope: TenantScope, key: &Key, now: DateTime<Utc>) -> Result<()> {
        if !self.entries.is_enabled() {
            return Ok(());
        }
        let read = self.entries.begin_read();
        let page = self
            .store
            .list_grants(
                scope,
                GrantFilter {
                    wallet: Some(key.1.to_string()),
                    resource_id: None,
                    active_only: true,
                },
                now,
                PageRequest::first(MAX_GRANTS_READ)?,
            )
            .await?;
        self.entries.insert(
            read,
            key.clone(),
            Arc::new(Entry {
                grants: page.items.into(),
                complete: !page.has_more,
            }),
        );
        Ok(())
    }

    /// Drops what is cached about `wallet`'s grants with `tenant`.
    pub fn forget(&self, tenant: TenantId, wallet: &str) {
        self.entries.forget(&(tenant, Box::from(wallet)));
    }

    /// How many wallets' grants are cached (pending evictions applied).
    #[doc(hidden)]
    pub fn cached_wallets(&self) -> u64 {
        self.entries.entry_count()
    }

    /// Uses counted in memory and not yet in the database.
    pub fn unflushed_uses(&self) -> u64 {
        self.uses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|n| u64::from(*n))
            .sum()
    }

    /// Adds the uses counted in memory to the database. Uses that cannot be written are kept
    /// for the next flush.
    pub async fn flush_uses(&self) -> Result<()> {
        let batch: Vec<(GrantId, u32)> =
            std::mem::take(&mut *self.uses.lock().unwrap_or_else(|p| p.into_inner()))
                .into_iter()
                .collect();
        if let Err(error) = self.store.add_grant_uses(&batch).await {
            let mut uses = self.uses.lock().unwrap_or_else(|p| p.into_inner());
            for (id, n) in batch {
                let count = uses.entry(id).or_default();
                *count = count.saturating_add(n);
            }
            return Err(error);
        }
        Ok(())
    }
}

impl Forget for GrantCache {
    fn forget(&self, what: &Invalidation) {
        if let Invalidation::Grants { tenant, wallet } = what {
            GrantCache::forget(self, *tenant, wallet);
        }
    }

    /// Drops every cached wallet (announcements may have been missed).
    fn forget_all(&self) {
        self.entries.forget_all();
    }
}

#[cfg(test)]
mod tests;
