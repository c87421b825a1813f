//! The authenticator's memories: bounded, expiring, forgotten when told, and never keeping a
//! check that raced an invalidation. Over an in-memory fake of the two repositories it reads,
//! which can hold a read until the test lets it go (a slow database).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use tokio::sync::oneshot;

use super::*;
use crate::coord::{Forget as _, Invalidation};
use crate::page::{Page, PageRequest};
use crate::tenant::{NewTenant, Tenant, TenantKind, TenantUpdate};

/// A held read: told when the key has been read, answering once let go.
struct Held {
    read: oneshot::Sender<()>,
    go: oneshot::Receiver<()>,
}

#[derive(Default)]
struct Fake {
    keys: Mutex<HashMap<String, StoredApiKey>>,
    /// Every tenant exists unless listed here.
    missing_tenants: Mutex<Vec<TenantId>>,
    held: Mutex<Option<Held>>,
    key_reads: AtomicUsize,
}

impl Fake {
    fn add_key(&self, tenant: TenantId) -> String {
        let (record, token) = mint_api_key(Some(tenant), Role::TenantAdmin, "test").unwrap();
        let stored = StoredApiKey {
            key: ApiKey {
                id: record.id,
                tenant_id: record.tenant_id,
                role: record.role,
                name: record.name,
                prefix: record.prefix.clone(),
                created_at: record.created_at,
                last_used_at: Some(record.created_at),
                revoked_at: None,
            },
            secret_hash: record.secret_hash,
            tenant_status: Some(TenantStatus::Active),
        };
        self.keys.lock().unwrap().insert(record.prefix, stored);
        token.expose().to_owned()
    }

    fn revoke(&self, token: &str) {
        let prefix = token_prefix(token).unwrap();
        self.keys
            .lock()
            .unwrap()
            .get_mut(prefix)
            .unwrap()
            .key
            .revoked_at = Some(crate::time::now());
    }

    /// Holds the next key read after it has read: answers when it has read, and the sender
    /// that lets it answer.
    fn hold_next_read(&self) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (read, has_read) = oneshot::channel();
        let (go, let_go) = oneshot::channel();
        *self.held.lock().unwrap() = Some(Held { read, go: let_go });
        (has_read, go)
    }
}

fn unused<T>() -> Result<T> {
    Err(Error::internal("the fake", "not used by the authenticator"))
}

#[async_trait]
impl ApiKeyRepository for Fake {
    async fn insert_api_key(&self, _: NewApiKey) -> Result<ApiKey> {
        unused()
    }

    async fn find_api_key_by_prefix(&self, prefix: &str) -> Result<Option<StoredApiKey>> {
        self.key_reads.fetch_add(1, Ordering::SeqCst);
        let found = self.keys.lock().unwrap().get(prefix).cloned();
        let held = self.held.lock().unwrap().take();
        if let Some(held) = held {
            held.read.send(()).unwrap();
            held.go.await.unwrap();
        }
        Ok(found)
    }

    async fn get_api_key(&self, _: KeyOwner, _: ApiKeyId) -> Result<Option<ApiKey>> {
        unused()
    }

    async fn list_api_keys(&self, _: KeyOwner, _: bool, _: PageRequest) -> Result<Page<ApiKey>> {
        unused()
    }

    async fn revoke_api_key(
        &self,
        _: KeyOwner,
        _: ApiKeyId,
        _: DateTime<Utc>,
    ) -> Result<Option<ApiKey>> {
        unused()
    }

    async fn touch_api_key(&self, _: ApiKeyId, _: DateTime<Utc>, _: DateTime<Utc>) -> Result<()> {
        Ok(())
    }
}

#[async_trait]
impl TenantRepository for Fake {
    async fn create_tenant(&self, _: NewTenant) -> Result<Tenant> {
        unused()
    }

    async fn get_tenant(&self, id: TenantId) -> Result<Option<Tenant>> {
        if self.missing_tenants.lock().unwrap().contains(&id) {
            return Ok(None);
        }
        let now = crate::time::now();
        Ok(Some(Tenant {
            id,
            name: "tenant".to_owned(),
            kind: TenantKind::Merchant,
            status: TenantStatus::Active,
            created_at: now,
            updated_at: now,
        }))
    }

    async fn list_tenants(&self, _: PageRequest) -> Result<Page<Tenant>> {
        unused()
    }

    async fn update_tenant(&self, _: TenantId, _: TenantUpdate) -> Result<Option<Tenant>> {
        unused()
    }
}

fn authenticator(fake: &Arc<Fake>) -> Arc<Authenticator> {
    Arc::new(Authenticator::with_repositories(fake.clone(), fake.clone()))
}

#[tokio::test]
async fn a_check_that_began_before_a_revocation_is_not_remembered() {
    let fake = Arc::new(Fake::default());
    let auth = authenticator(&fake);
    let token = fake.add_key(TenantId::new());

    // A check reads the key (live), and is slow to answer; meanwhile the key is revoked and
    // the revocation announced.
    let (has_read, go) = fake.hold_next_read();
    let checking = tokio::spawn({
        let (auth, token) = (auth.clone(), token.clone());
        async move { auth.authenticate(&token).await }
    });
    has_read.await.unwrap();
    fake.revoke(&token);
    auth.forget(&Invalidation::ApiKey {
        prefix: token_prefix(&token).unwrap().to_owned(),
    });
    go.send(()).unwrap();
    // It answers what it read; what matters is that it is not kept.
    assert!(checking.await.unwrap().is_ok());
    assert_eq!(
        auth.authenticate(&token).await.unwrap_err().code(),
        ErrorCode::ApiKeyRevoked,
        "a key revoked while it was being checked was remembered as live"
    );
}

#[tokio::test]
async fn the_same_holds_when_every_key_is_forgotten() {
    let fake = Arc::new(Fake::default());
    let auth = authenticator(&fake);
    let token = fake.add_key(TenantId::new());
    let (has_read, go) = fake.hold_next_read();
    let checking = tokio::spawn({
        let (auth, token) = (auth.clone(), token.clone());
        async move { auth.authenticate(&token).await }
    });
    has_read.await.unwrap();
    fake.revoke(&token);
    // A gap in the announcements: everything is forgotten.
    auth.forget_all();
    go.send(()).unwrap();
    assert!(checking.await.unwrap().is_ok());
    assert_eq!(
        auth.authenticate(&token).await.unwrap_err().code(),
        ErrorCode::ApiKeyRevoked
    );
}

#[tokio::test]
async fn checked_keys_are_remembered_until_told_or_expired() {
    let fake = Arc::new(Fake::default());
    let auth = Authenticator::with_repositories(fake.clone(), fake.clone())
        .with_cache_ttl(std::time::Duration::from_millis(200));
    let tenant = TenantId::new();
    let (first, second) = (fake.add_key(tenant), fake.add_key(tenant));
    auth.authenticate(&first).await.unwrap();
    auth.authenticate(&second).await.unwrap();
    assert_eq!(fake.key_reads.load(Ordering::SeqCst), 2);
    auth.authenticate(&first).await.unwrap();
    assert_eq!(
        fake.key_reads.load(Ordering::SeqCst),
        2,
        "answered from memory"
    );

    // Revoked behind the authenticator's back: remembered as live until it expires.
    fake.revoke(&first);
    assert!(auth.authenticate(&first).await.is_ok());
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(
        auth.authenticate(&first).await.unwrap_err().code(),
        ErrorCode::ApiKeyRevoked
    );

    // Told: forgotten at once, the tenant's other keys with it.
    auth.authenticate(&second).await.unwrap();
    let reads = fake.key_reads.load(Ordering::SeqCst);
    auth.forget(&Invalidation::Tenant(tenant));
    auth.authenticate(&second).await.unwrap();
    assert_eq!(
        fake.key_reads.load(Ordering::SeqCst),
        reads + 1,
        "read again"
    );
}

#[tokio::test]
async fn without_a_time_to_live_every_check_reads_the_database() {
    let fake = Arc::new(Fake::default());
    let auth = Authenticator::with_repositories(fake.clone(), fake.clone())
        .with_cache_ttl(std::time::Duration::ZERO);
    let token = fake.add_key(TenantId::new());
    for _ in 0..3 {
        auth.authenticate(&token).await.unwrap();
    }
    assert_eq!(fake.key_reads.load(Ordering::SeqCst), 3);
    assert_eq!(auth.cached_entries().0, 0);
}

/// Ten times as many live keys as the memory holds, each checked: it holds at most its cap.
#[tokio::test]
async fn a_flood_of_keys_is_remembered_up_to_the_cap() {
    let fake = Arc::new(Fake::default());
    let auth = authenticator(&fake);
    let tenant = TenantId::new();
    for _ in 0..KEY_CACHE_ENTRIES * 10 {
        let token = fake.add_key(tenant);
        auth.authenticate(&token).await.unwrap();
    }
    let (keys, _) = auth.cached_entries();
    assert!(keys <= KEY_CACHE_ENTRIES, "{keys} keys remembered");
    assert!(keys > 0);
}

/// Ten times as many existing tenants as the memory holds, each named by an operator: it holds
/// at most its cap; a missing tenant is never remembered.
#[tokio::test]
async fn a_flood_of_tenants_is_remembered_up_to_the_cap() {
    let fake = Arc::new(Fake::default());
    let auth = authenticator(&fake);
    let operator = Principal {
        key_id: ApiKeyId::new(),
        role: Role::Operator,
        tenant_id: None,
    };
    for _ in 0..KNOWN_TENANT_ENTRIES * 10 {
        auth.scope(&operator, Some(TenantId::new()), Access::Read)
            .await
            .unwrap();
    }
    let (_, tenants) = auth.cached_entries();
    assert!(
        tenants <= KNOWN_TENANT_ENTRIES,
        "{tenants} tenants remembered"
    );
    assert!(tenants > 0);

    let missing = TenantId::new();
    fake.missing_tenants.lock().unwrap().push(missing);
    for _ in 0..2 {
        let err = auth
            .scope(&operator, Some(missing), Access::Read)
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::NotFound);
    }
}
