//! The grant cache over an in-memory fake of the grant repository, which counts its reads and
//! can hold one until the test lets it go (a slow database).

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use purser_domain::entitlement::NewGrant;
use purser_domain::page::Page;
use tokio::sync::oneshot;

use super::*;

/// A held read: told when the grants have been read, answering once let go.
struct Held {
    read: oneshot::Sender<()>,
    go: oneshot::Receiver<()>,
}

#[derive(Default)]
struct Fake {
    grants: Mutex<Vec<Grant>>,
    held: Mutex<Option<Held>>,
    reads: AtomicUsize,
}

impl Fake {
    fn add(&self, tenant: TenantId, wallet: &str, resource: ResourceId) -> Grant {
        let grant = Grant {
            id: GrantId::new(),
            tenant_id: tenant,
            scope: GrantScope::Resource(resource),
            wallet: wallet.to_owned(),
            settlement_id: None,
            expires_at: None,
            uses_allowed: None,
            uses_count: 0,
            revoked_at: None,
            created_at: purser_domain::time::now(),
        };
        self.grants.lock().unwrap().push(grant.clone());
        grant
    }

    fn revoke(&self, id: GrantId) {
        for grant in self.grants.lock().unwrap().iter_mut() {
            if grant.id == id {
                grant.revoked_at = Some(purser_domain::time::now());
            }
        }
    }

    fn hold_next_read(&self) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (read, has_read) = oneshot::channel();
        let (go, let_go) = oneshot::channel();
        *self.held.lock().unwrap() = Some(Held { read, go: let_go });
        (has_read, go)
    }

    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    fn holding(
        &self,
        tenant: TenantId,
        wallet: &str,
        resource: Option<ResourceId>,
        now: DateTime<Utc>,
    ) -> Vec<Grant> {
        self.grants
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.tenant_id == tenant && g.wallet == wallet && g.holds_at(now))
            .filter(|g| resource.is_none_or(|r| g.scope == GrantScope::Resource(r)))
            .cloned()
            .collect()
    }
}

fn unused<T>() -> Result<T> {
    Err(purser_domain::Error::internal(
        "the fake",
        "not used by the cache",
    ))
}

#[async_trait]
impl GrantRepository for Fake {
    async fn create_grant(&self, _: NewGrant) -> Result<Grant> {
        unused()
    }

    async fn use_grant(
        &self,
        scope: TenantScope,
        wallet: &str,
        resource: ResourceId,
        _: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<Grant>> {
        Ok(self
            .holding(scope.tenant_id(), wallet, Some(resource), now)
            .into_iter()
            .next())
    }

    async fn find_grant(&self, _: TenantScope, _: GrantId) -> Result<Option<Grant>> {
        unused()
    }

    async fn add_grant_uses(&self, _: &[(GrantId, u32)]) -> Result<()> {
        Ok(())
    }

    async fn list_grants(
        &self,
        scope: TenantScope,
        filter: GrantFilter,
        now: DateTime<Utc>,
        _: PageRequest,
    ) -> Result<Page<Grant>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let wallet = filter.wallet.unwrap_or_default();
        let items = self.holding(scope.tenant_id(), &wallet, None, now);
        let held = self.held.lock().unwrap().take();
        if let Some(held) = held {
            held.read.send(()).unwrap();
            held.go.await.unwrap();
        }
        Ok(Page {
            items,
            has_more: false,
        })
    }

    async fn revoke_grant(
        &self,
        _: TenantScope,
        _: GrantId,
        _: DateTime<Utc>,
    ) -> Result<Option<Grant>> {
        unused()
    }
}

fn wallet(n: u64) -> String {
    format!("0x{n:040x}")
}

struct Setup {
    fake: Arc<Fake>,
    cache: Arc<GrantCache>,
    scope: TenantScope,
    resource: ResourceId,
}

fn setup(ttl: Duration) -> Setup {
    let fake = Arc::new(Fake::default());
    Setup {
        cache: Arc::new(GrantCache::new(fake.clone(), ttl)),
        fake,
        scope: TenantScope::trusted(TenantId::new()),
        resource: ResourceId::new(),
    }
}

impl Setup {
    async fn admit(&self, wallet: &str) -> Option<Grant> {
        self.cache
            .admit(
                self.scope,
                wallet,
                self.resource,
                None,
                purser_domain::time::now(),
            )
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_read_that_began_before_a_revocation_is_not_kept() {
    let s = setup(Duration::from_secs(60));
    let grant = s.fake.add(s.scope.tenant_id(), &wallet(1), s.resource);

    // A request reads the wallet's grants (the grant holds) and the database is slow to
    // answer; meanwhile the grant is revoked and the revocation announced.
    let (has_read, go) = s.fake.hold_next_read();
    let admitting = tokio::spawn({
        let (cache, scope, resource) = (s.cache.clone(), s.scope, s.resource);
        async move {
            cache
                .admit(
                    scope,
                    &wallet(1),
                    resource,
                    None,
                    purser_domain::time::now(),
                )
                .await
        }
    });
    has_read.await.unwrap();
    s.fake.revoke(grant.id);
    Forget::forget(
        s.cache.as_ref(),
        &Invalidation::Grants {
            tenant: s.scope.tenant_id(),
            wallet: wallet(1),
        },
    );
    go.send(()).unwrap();
    // The read it began is not kept, so the request asked the database itself.
    assert_eq!(admitting.await.unwrap().unwrap(), None);
    assert_eq!(s.admit(&wallet(1)).await, None);
    assert_eq!(s.fake.reads(), 2, "read afresh: nothing was kept");
}

#[tokio::test]
async fn a_wallets_grants_are_read_once_per_time_to_live() {
    let s = setup(Duration::from_millis(200));
    let grant = s.fake.add(s.scope.tenant_id(), &wallet(1), s.resource);
    for _ in 0..3 {
        assert_eq!(s.admit(&wallet(1)).await.map(|g| g.id), Some(grant.id));
        assert_eq!(s.admit(&wallet(2)).await, None);
    }
    assert_eq!(s.fake.reads(), 2, "one read per wallet");
    assert_eq!(s.cache.unflushed_uses(), 3);

    // Revoked without an announcement: answered from memory until it expires.
    s.fake.revoke(grant.id);
    assert!(s.admit(&wallet(1)).await.is_some());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.admit(&wallet(1)).await, None);
}

#[tokio::test]
async fn forgetting_everything_reads_every_wallet_again() {
    let s = setup(Duration::from_secs(60));
    s.fake.add(s.scope.tenant_id(), &wallet(1), s.resource);
    assert!(s.admit(&wallet(1)).await.is_some());
    assert_eq!(s.admit(&wallet(2)).await, None);
    Forget::forget_all(s.cache.as_ref());
    assert_eq!(s.cache.cached_wallets(), 0);
    assert!(s.admit(&wallet(1)).await.is_some());
    assert_eq!(s.admit(&wallet(2)).await, None);
    assert_eq!(s.fake.reads(), 4);
}

#[tokio::test]
async fn a_zero_time_to_live_reads_the_database_every_time() {
    let s = setup(Duration::ZERO);
    s.fake.add(s.scope.tenant_id(), &wallet(1), s.resource);
    for _ in 0..3 {
        assert!(s.admit(&wallet(1)).await.is_some());
    }
    // No list read at all: every request is a use in the database.
    assert_eq!(s.fake.reads(), 0);
    assert_eq!(s.cache.cached_wallets(), 0);
    assert_eq!(s.cache.unflushed_uses(), 0);
}

/// Ten times as many wallets as the cache holds, each checked: it holds at most its cap. (At a
/// cap of 1,000: the production cap, [`MAX_ENTRIES`], is checked below to be what
/// [`GrantCache::new`] uses, and the cap itself is the cache type's, tested there.)
#[tokio::test]
async fn a_flood_of_wallets_leaves_at_most_the_cap() {
    let s = setup(Duration::from_secs(60));
    assert_eq!(s.cache.entries.max(), MAX_ENTRIES);
    let cache = GrantCache {
        entries: wallet_cache(1_000, Duration::from_secs(60)),
        ..GrantCache::new(s.fake.clone(), Duration::from_secs(60))
    };
    for n in 0..10_000 {
        let found = cache
            .admit(
                s.scope,
                &wallet(n),
                s.resource,
                None,
                purser_domain::time::now(),
            )
            .await
            .unwrap();
        assert_eq!(found, None);
    }
    let held = cache.cached_wallets();
    assert!(held <= 1_000, "{held} wallets cached");
    assert!(held > 0);
}
