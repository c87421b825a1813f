//! The storage behaviour suite: written once, run against every [`Store`] implementation.
//!
//! A storage crate instantiates it in its integration tests with a factory that returns a fresh,
//! migrated store and a guard that cleans up after it:
//!
//! ```text
//! purser_testkit::store_suite!(crate::fresh_store);
//! ```

use std::sync::Arc;

use chrono::Duration;
use purser_domain::auth::{
    ApiKeyToken, Authenticator, KeyOwner, NewApiKey, Role, TenantScope, mint_api_key,
};
use purser_domain::id::{ApiKeyId, TenantId};
use purser_domain::page::PageRequest;
use purser_domain::repo::Store;
use purser_domain::tenant::{
    NewTenant, Tenant, TenantKind, TenantName, TenantStatus, TenantUpdate,
};
use purser_domain::{ErrorCode, time};

/// Instantiates every suite test as a `#[tokio::test]` in the calling module. `$factory` is an
/// async fn returning `(Arc<dyn Store>, guard)`; the guard lives until the test ends.
#[macro_export]
macro_rules! store_suite {
    ($factory:path) => {
        $crate::store_suite!(@tests $factory;
            tenants_round_trip,
            tenant_names_are_unique_ignoring_case,
            concurrent_creates_of_one_name_admit_one,
            tenants_page_forward_and_backward,
            tenant_updates_apply_and_refuse_taken_names,
            api_keys_round_trip,
            api_keys_need_an_existing_tenant,
            api_key_listings_are_scoped_to_their_owner,
            api_key_revocation_is_scoped_and_first_wins,
            api_key_touch_is_throttled,
            authenticator_accepts_only_live_keys,
            ping_reaches_the_database,
        );
    };
    (@tests $factory:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _guard) = $factory().await;
                $crate::store_suite::$name(store).await;
            }
        )*
    };
}

async fn tenant(store: &Arc<dyn Store>, name: &str) -> Tenant {
    store
        .create_tenant(NewTenant::new(
            TenantName::parse(name).unwrap(),
            TenantKind::Merchant,
        ))
        .await
        .expect("create tenant")
}

async fn key(
    store: &Arc<dyn Store>,
    tenant: Option<TenantId>,
    role: Role,
) -> (NewApiKey, ApiKeyToken) {
    let (record, token) = mint_api_key(tenant, role, "suite key").unwrap();
    store
        .insert_api_key(record.clone())
        .await
        .expect("insert key");
    (record, token)
}

fn owner(tenant: &Tenant) -> KeyOwner {
    KeyOwner::Tenant(TenantScope::trusted(tenant.id))
}

pub async fn tenants_round_trip(store: Arc<dyn Store>) {
    let new = NewTenant::new(
        TenantName::parse("Acme Data").unwrap(),
        TenantKind::BusinessUnit,
    );
    let created = store.create_tenant(new.clone()).await.unwrap();
    assert_eq!(created.id, new.id);
    assert_eq!(created.name, "Acme Data");
    assert_eq!(created.kind, TenantKind::BusinessUnit);
    assert_eq!(created.status, TenantStatus::Active);
    assert_eq!(created.created_at, new.created_at);
    assert_eq!(store.get_tenant(new.id).await.unwrap(), Some(created));
    assert_eq!(store.get_tenant(TenantId::new()).await.unwrap(), None);
}

pub async fn tenant_names_are_unique_ignoring_case(store: Arc<dyn Store>) {
    tenant(&store, "Acme").await;
    let err = store
        .create_tenant(NewTenant::new(
            TenantName::parse("ACME").unwrap(),
            TenantKind::Merchant,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TenantNameTaken);
    let all = store
        .list_tenants(PageRequest::first(100).unwrap())
        .await
        .unwrap();
    assert_eq!(all.items.len(), 1, "the refused tenant was not written");
}

pub async fn concurrent_creates_of_one_name_admit_one(store: Arc<dyn Store>) {
    let attempts = (0..16).map(|_| {
        let store = store.clone();
        async move {
            store
                .create_tenant(NewTenant::new(
                    TenantName::parse("Race").unwrap(),
                    TenantKind::Merchant,
                ))
                .await
        }
    });
    let results = futures::future::join_all(attempts).await;
    let created = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(created, 1);
    for result in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(result.code(), ErrorCode::TenantNameTaken, "{result:?}");
    }
}

pub async fn tenants_page_forward_and_backward(store: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(tenant(&store, &format!("tenant {i}")).await.id);
    }
    let page = |first, after: Option<TenantId>, last, before: Option<TenantId>| {
        PageRequest::relay(
            first,
            after.map(|i| i.as_uuid()),
            last,
            before.map(|i| i.as_uuid()),
        )
        .unwrap()
    };
    let first = store
        .list_tenants(page(Some(3), None, None, None))
        .await
        .unwrap();
    assert_eq!(
        first.items.iter().map(|t| t.id).collect::<Vec<_>>(),
        ids[0..3]
    );
    assert!(first.has_more);
    let second = store
        .list_tenants(page(Some(3), Some(ids[2]), None, None))
        .await
        .unwrap();
    assert_eq!(
        second.items.iter().map(|t| t.id).collect::<Vec<_>>(),
        ids[3..6]
    );
    let rest = store
        .list_tenants(page(Some(3), Some(ids[5]), None, None))
        .await
        .unwrap();
    assert_eq!(
        rest.items.iter().map(|t| t.id).collect::<Vec<_>>(),
        ids[6..7]
    );
    assert!(!rest.has_more);
    let tail = store
        .list_tenants(page(None, None, Some(2), None))
        .await
        .unwrap();
    assert_eq!(
        tail.items.iter().map(|t| t.id).collect::<Vec<_>>(),
        ids[5..7]
    );
    assert!(tail.has_more);
    let before = store
        .list_tenants(page(None, None, Some(2), Some(ids[5])))
        .await
        .unwrap();
    assert_eq!(
        before.items.iter().map(|t| t.id).collect::<Vec<_>>(),
        ids[3..5]
    );
    let window = store
        .list_tenants(page(Some(10), Some(ids[1]), None, Some(ids[4])))
        .await
        .unwrap();
    assert_eq!(
        window.items.iter().map(|t| t.id).collect::<Vec<_>>(),
        ids[2..4]
    );
    assert!(!window.has_more);
}

pub async fn tenant_updates_apply_and_refuse_taken_names(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Acme").await;
    let globex = tenant(&store, "Globex").await;
    let renamed = store
        .update_tenant(
            acme.id,
            TenantUpdate {
                name: Some(TenantName::parse("Acme Corp").unwrap()),
                status: Some(TenantStatus::Suspended),
            },
        )
        .await
        .unwrap()
        .expect("tenant exists");
    assert_eq!(renamed.name, "Acme Corp");
    assert_eq!(renamed.status, TenantStatus::Suspended);
    assert!(renamed.updated_at >= acme.updated_at);
    assert_eq!(
        store.get_tenant(acme.id).await.unwrap(),
        Some(renamed.clone())
    );
    let err = store
        .update_tenant(
            globex.id,
            TenantUpdate {
                name: Some(TenantName::parse("acme corp").unwrap()),
                status: Some(TenantStatus::Suspended),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TenantNameTaken);
    assert_eq!(
        store.get_tenant(globex.id).await.unwrap(),
        Some(globex),
        "nothing half-written"
    );
    let missing = store
        .update_tenant(TenantId::new(), TenantUpdate::default())
        .await
        .unwrap();
    assert_eq!(missing, None);
}

pub async fn api_keys_round_trip(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Acme").await;
    let (record, _) = mint_api_key(Some(acme.id), Role::TenantAdmin, "deploy").unwrap();
    let key = store.insert_api_key(record.clone()).await.unwrap();
    assert_eq!(key.id, record.id);
    assert_eq!(key.tenant_id, Some(acme.id));
    assert_eq!(key.role, Role::TenantAdmin);
    assert_eq!(key.name, "deploy");
    assert_eq!(key.prefix, record.prefix);
    assert_eq!(key.created_at, record.created_at);
    assert_eq!(key.last_used_at, None);
    assert_eq!(key.revoked_at, None);
    let stored = store
        .find_api_key_by_prefix(&record.prefix)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.key, key);
    assert_eq!(stored.secret_hash, record.secret_hash);
    assert_eq!(stored.tenant_status, Some(TenantStatus::Active));
    assert!(
        store
            .find_api_key_by_prefix("psk_0000000000000000")
            .await
            .unwrap()
            .is_none()
    );
    let (operator, _) = key_pair_operator(&store).await;
    let stored = store
        .find_api_key_by_prefix(&operator.prefix)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.key.tenant_id, None);
    assert_eq!(stored.tenant_status, None);
}

async fn key_pair_operator(store: &Arc<dyn Store>) -> (NewApiKey, ApiKeyToken) {
    key(store, None, Role::Operator).await
}

pub async fn api_keys_need_an_existing_tenant(store: Arc<dyn Store>) {
    let (record, _) = mint_api_key(Some(TenantId::new()), Role::TenantRead, "orphan").unwrap();
    let err = store.insert_api_key(record.clone()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound, "{err:?}");
    assert!(
        store
            .find_api_key_by_prefix(&record.prefix)
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn api_key_listings_are_scoped_to_their_owner(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Acme").await;
    let globex = tenant(&store, "Globex").await;
    let (a1, _) = key(&store, Some(acme.id), Role::TenantAdmin).await;
    let (a2, _) = key(&store, Some(acme.id), Role::TenantRead).await;
    let (g1, _) = key(&store, Some(globex.id), Role::TenantAdmin).await;
    let (op, _) = key(&store, None, Role::Operator).await;
    let ids = |page: purser_domain::page::Page<purser_domain::auth::ApiKey>| {
        page.items
            .into_iter()
            .map(|k| k.id)
            .collect::<Vec<ApiKeyId>>()
    };
    let all = PageRequest::first(100).unwrap();
    assert_eq!(
        ids(store.list_api_keys(owner(&acme), false, all).await.unwrap()),
        vec![a1.id, a2.id]
    );
    assert_eq!(
        ids(store
            .list_api_keys(owner(&globex), false, all)
            .await
            .unwrap()),
        vec![g1.id]
    );
    assert_eq!(
        ids(store
            .list_api_keys(KeyOwner::Platform, false, all)
            .await
            .unwrap()),
        vec![op.id]
    );
    assert!(
        store
            .get_api_key(owner(&globex), a1.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_api_key(KeyOwner::Platform, a1.id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .get_api_key(owner(&acme), a1.id)
            .await
            .unwrap()
            .unwrap()
            .id,
        a1.id
    );
    store
        .revoke_api_key(owner(&acme), a1.id, time::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ids(store.list_api_keys(owner(&acme), false, all).await.unwrap()),
        vec![a2.id]
    );
    assert_eq!(
        ids(store.list_api_keys(owner(&acme), true, all).await.unwrap()),
        vec![a1.id, a2.id]
    );
    let first = store
        .list_api_keys(owner(&acme), true, PageRequest::first(1).unwrap())
        .await
        .unwrap();
    assert!(first.has_more);
    assert_eq!(ids(first), vec![a1.id]);
}

pub async fn api_key_revocation_is_scoped_and_first_wins(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Acme").await;
    let globex = tenant(&store, "Globex").await;
    let (a1, _) = key(&store, Some(acme.id), Role::TenantAdmin).await;
    assert_eq!(
        store
            .revoke_api_key(owner(&globex), a1.id, time::now())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .revoke_api_key(KeyOwner::Platform, a1.id, time::now())
            .await
            .unwrap(),
        None
    );
    let live = store
        .get_api_key(owner(&acme), a1.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        live.revoked_at, None,
        "another owner's revocation changed nothing"
    );
    let first_at = time::now();
    let revoked = store
        .revoke_api_key(owner(&acme), a1.id, first_at)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(first_at));
    let again = store
        .revoke_api_key(owner(&acme), a1.id, first_at + Duration::seconds(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.revoked_at, Some(first_at));
}

pub async fn api_key_touch_is_throttled(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Acme").await;
    let (a1, _) = key(&store, Some(acme.id), Role::TenantRead).await;
    let t0 = time::now();
    store
        .touch_api_key(a1.id, t0, t0 - Duration::seconds(60))
        .await
        .unwrap();
    let read = || async {
        store
            .get_api_key(owner(&acme), a1.id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at
    };
    assert_eq!(read().await, Some(t0));
    let t1 = t0 + Duration::seconds(10);
    store
        .touch_api_key(a1.id, t1, t1 - Duration::seconds(60))
        .await
        .unwrap();
    assert_eq!(
        read().await,
        Some(t0),
        "a use within the resolution is not written"
    );
    let t2 = t0 + Duration::seconds(61);
    store
        .touch_api_key(a1.id, t2, t2 - Duration::seconds(60))
        .await
        .unwrap();
    assert_eq!(read().await, Some(t2));
}

pub async fn authenticator_accepts_only_live_keys(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Acme").await;
    let (record, token) = key(&store, Some(acme.id), Role::TenantAdmin).await;
    let auth = Authenticator::new(store.clone());
    let principal = auth.authenticate(token.expose()).await.unwrap();
    assert_eq!(principal.key_id, record.id);
    assert_eq!(principal.role, Role::TenantAdmin);
    assert_eq!(principal.tenant_id, Some(acme.id));
    let used = store
        .get_api_key(owner(&acme), record.id)
        .await
        .unwrap()
        .unwrap();
    assert!(used.last_used_at.is_some(), "use was recorded");

    // Same prefix, another secret.
    let forged = format!("{}_{}", record.prefix, "A".repeat(43));
    assert_eq!(
        auth.authenticate(&forged).await.unwrap_err().code(),
        ErrorCode::InvalidApiKey
    );
    assert_eq!(
        auth.authenticate("psk_nonsense").await.unwrap_err().code(),
        ErrorCode::InvalidApiKey
    );

    store
        .update_tenant(
            acme.id,
            TenantUpdate {
                name: None,
                status: Some(TenantStatus::Suspended),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        auth.authenticate(token.expose()).await.unwrap_err().code(),
        ErrorCode::Forbidden
    );
    store
        .update_tenant(
            acme.id,
            TenantUpdate {
                name: None,
                status: Some(TenantStatus::Active),
            },
        )
        .await
        .unwrap();
    assert!(auth.authenticate(token.expose()).await.is_ok());

    store
        .revoke_api_key(owner(&acme), record.id, time::now())
        .await
        .unwrap();
    assert_eq!(
        auth.authenticate(token.expose()).await.unwrap_err().code(),
        ErrorCode::ApiKeyRevoked
    );
}

pub async fn ping_reaches_the_database(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
    assert!(["postgres", "sqlite"].contains(&store.backend()));
}
