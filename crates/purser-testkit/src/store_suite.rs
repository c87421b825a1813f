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

pub use crate::registry_suite::*;

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
            settlements_are_claimed_once_per_authorization,
            settlement_lifecycle_posts_the_ledger_once,
            failure_after_broadcast_voids_the_pending_transfer,
            concurrent_resolutions_apply_one_outcome,
            transitions_are_guarded,
            signer_nonce_leases_are_unique_and_follow_the_chain,
            attempts_are_recorded_before_broadcast,
            unfinished_settlements_are_listed_for_reconciliation,
            payment_identifiers_map_to_one_payload,
            settlements_are_listed_per_tenant,
            payout_addresses_are_per_tenant_and_network,
            resources_version_and_stay_scoped,
            one_live_listing_per_tenant_and_key,
            catalog_lists_searches_and_filters,
            learning_keeps_one_listing_per_key,
            probes_mark_health_and_hide_late,
            resources_refuse_text_the_stores_would_not_keep_alike,
            registry_writes_for_a_tenant_that_does_not_exist_are_not_found,
            names_refuse_nul_and_control_characters_and_keep_any_script,
            operators_scope_only_tenants_that_exist,
            outcome_messages_from_outside_are_stored_printable,
            routing_policies_are_per_tenant_and_checked,
            mined_transactions_post_their_network_fee_once,
            escrow_operations_post_by_kind_one_at_a_time,
            escrow_schedules_come_due_once,
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

    // A checked key is remembered: a change in the database is seen once the authenticator
    // is told (the announcement every instance receives) or, without one, after its TTL. An
    // authenticator without memory sees every change at once.
    use purser_domain::coord::{Forget as _, Invalidation};
    let uncached = Authenticator::new(store.clone()).with_cache_ttl(std::time::Duration::ZERO);
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
    assert!(
        auth.authenticate(token.expose()).await.is_ok(),
        "remembered until told"
    );
    assert_eq!(
        uncached
            .authenticate(token.expose())
            .await
            .unwrap_err()
            .code(),
        ErrorCode::Forbidden
    );
    auth.forget(&Invalidation::Tenant(acme.id));
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
    auth.forget(&Invalidation::ApiKey {
        prefix: "psk_other".into(),
    });
    assert!(
        auth.authenticate(token.expose()).await.is_ok(),
        "another key's announcement leaves this one remembered"
    );
    auth.forget(&Invalidation::ApiKey {
        prefix: record.prefix.clone(),
    });
    assert_eq!(
        auth.authenticate(token.expose()).await.unwrap_err().code(),
        ErrorCode::ApiKeyRevoked
    );
    assert_eq!(
        uncached
            .authenticate(token.expose())
            .await
            .unwrap_err()
            .code(),
        ErrorCode::ApiKeyRevoked
    );
}

pub async fn ping_reaches_the_database(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
    assert!(["postgres", "sqlite"].contains(&store.backend()));
}

// ---- settlements and the ledger ----

use purser_domain::id::{AttemptId, SettlementId};
use purser_domain::ledger::{AccountKind, TransferCode, TransferState};
use purser_domain::money::Amount;
use purser_domain::settlement::{
    Attempt, AttemptKind, AuthorizationKey, ChainOutcome, Claim, EscrowLink, InFlightQuery,
    NewSettlement, PaymentIdentifierClaim, Settlement, SettlementKind, SettlementStatus,
};

const NETWORK: &str = "eip155:84532";
const ASSET: &str = "0x036cbd53842c5426634e7929541ec2318f3dcf7e";
const SIGNER: &str = "0x1111111111111111111111111111111111111111";

fn new_settlement(tenant: TenantId, nonce_byte: u8, amount: u128) -> NewSettlement {
    NewSettlement {
        id: SettlementId::new(),
        tenant_id: tenant,
        key: AuthorizationKey::new(
            NETWORK,
            ASSET,
            "0xAbCdEf0123456789abcdef0123456789ABCDEF01",
            &format!("0x{}", format!("{nonce_byte:02x}").repeat(32)),
        )
        .unwrap(),
        pay_to: "0x2222222222222222222222222222222222222222".to_owned(),
        amount: Amount::from_atomic(amount),
        valid_after: 0,
        valid_before: 4_000_000_000,
        payload: r#"{"x402Version":2}"#.to_owned(),
        requirements: r#"{"scheme":"exact"}"#.to_owned(),
        payment_identifier: None,
        kind: SettlementKind::Exact,
        escrow: None,
        created_at: time::now(),
    }
}

fn attempt(settlement: &Settlement, nonce: u64, hash_byte: u8) -> Attempt {
    Attempt {
        id: AttemptId::new(),
        settlement_id: Some(settlement.id),
        kind: AttemptKind::Transfer,
        network: NETWORK.to_owned(),
        signer: SIGNER.to_owned(),
        signer_nonce: nonce,
        tx_hash: format!("0x{}", format!("{hash_byte:02x}").repeat(32)),
        raw_tx: vec![0x02, hash_byte, 0xff],
        max_fee_per_gas: 3_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        created_at: time::now(),
        broadcast_at: None,
        route: None,
    }
}

async fn created(store: &Arc<dyn Store>, new: NewSettlement) -> Settlement {
    match store.claim_settlement(new).await.unwrap() {
        Claim::Created(s) => s,
        Claim::Existing(s) => panic!("expected a new claim, found {s:?}"),
    }
}

/// Drives a fresh settlement to `submitted` with one recorded transaction.
async fn submitted(
    store: &Arc<dyn Store>,
    tenant: TenantId,
    nonce_byte: u8,
    amount: u128,
) -> Settlement {
    let settlement = created(store, new_settlement(tenant, nonce_byte, amount)).await;
    assert_eq!(
        store.mark_verified(settlement.id).await.unwrap().status,
        SettlementStatus::Verified
    );
    let nonce = store.lease_signer_nonce(NETWORK, SIGNER, 0).await.unwrap();
    store
        .record_attempt(attempt(&settlement, nonce, nonce_byte))
        .await
        .unwrap();
    let settlement = store.get_settlement(settlement.id).await.unwrap().unwrap();
    assert_eq!(settlement.status, SettlementStatus::Submitted);
    settlement
}

fn balance(
    balances: &[purser_domain::ledger::AccountBalance],
    kind: AccountKind,
) -> &purser_domain::ledger::AccountBalance {
    balances
        .iter()
        .find(|b| b.account.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} account"))
}

pub async fn settlements_are_claimed_once_per_authorization(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Acme").await;
    let globex = tenant(&store, "Globex").await;
    let first = created(&store, new_settlement(acme.id, 1, 10_000)).await;
    assert_eq!(first.status, SettlementStatus::Received);
    assert_eq!(first.amount, Amount::from_atomic(10_000));
    assert_eq!(
        first.key.payer, "0xabcdef0123456789abcdef0123456789abcdef01",
        "addresses are stored lower-case"
    );
    for tenant_id in [acme.id, globex.id] {
        match store
            .claim_settlement(new_settlement(tenant_id, 1, 10_000))
            .await
            .unwrap()
        {
            Claim::Existing(existing) => {
                assert_eq!(existing.id, first.id);
                assert_eq!(existing.tenant_id, acme.id);
            }
            Claim::Created(_) => panic!("an authorization was claimed twice"),
        }
    }
    assert!(
        store
            .find_settlement(TenantScope::trusted(globex.id), first.id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .find_settlement(TenantScope::trusted(acme.id), first.id)
            .await
            .unwrap()
            .unwrap()
            .id,
        first.id
    );
    let by_key = |tenant_id| {
        let store = store.clone();
        let key = first.key.clone();
        async move {
            store
                .find_settlement_by_authorization(TenantScope::trusted(tenant_id), &key)
                .await
                .unwrap()
                .map(|s| s.id)
        }
    };
    assert_eq!(by_key(acme.id).await, Some(first.id));
    assert_eq!(by_key(globex.id).await, None, "another tenant's settlement");
    let mut other_nonce = first.key.clone();
    other_nonce.nonce = format!("0x{}", "77".repeat(32));
    assert!(
        store
            .find_settlement_by_authorization(TenantScope::trusted(acme.id), &other_nonce)
            .await
            .unwrap()
            .is_none()
    );

    let claims = futures::future::join_all((0..20).map(|_| {
        let store = store.clone();
        async move {
            store
                .claim_settlement(new_settlement(acme.id, 2, 5))
                .await
                .unwrap()
        }
    }))
    .await;
    let winners = claims
        .iter()
        .filter(|c| matches!(c, Claim::Created(_)))
        .count();
    assert_eq!(winners, 1, "exactly one concurrent claim wins");
}

pub async fn settlement_lifecycle_posts_the_ledger_once(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Acme").await;
    let scope = TenantScope::trusted(acme.id);
    let settlement = submitted(&store, acme.id, 3, 250_000).await;
    let transfers = store
        .transfers_for_settlement(scope, settlement.id)
        .await
        .unwrap();
    assert_eq!(transfers.len(), 1);
    assert_eq!(transfers[0].state, TransferState::Pending);
    assert_eq!(
        (transfers[0].debit, transfers[0].credit),
        (AccountKind::PayerClearing, AccountKind::SettlementInFlight)
    );

    let pending = store
        .mark_pending(settlement.id, "receipt not seen in 30 s")
        .await
        .unwrap();
    assert_eq!(pending.status, SettlementStatus::Pending);
    assert!(pending.status.is_in_flight());
    let tx_hash = pending.tx_hash.clone().unwrap();
    let outcome = ChainOutcome {
        tx_hash: tx_hash.clone(),
        block_number: 42,
        cost: None,
    };
    let confirmed = store
        .confirm_settlement(settlement.id, outcome.clone())
        .await
        .unwrap();
    assert_eq!(confirmed.status, SettlementStatus::Confirmed);
    assert_eq!(confirmed.block_number, Some(42));
    // Confirming again, or failing now, changes nothing.
    assert_eq!(
        store
            .confirm_settlement(settlement.id, outcome)
            .await
            .unwrap(),
        confirmed
    );
    let failed = store
        .fail_settlement(settlement.id, None, None, "x", "y")
        .await
        .unwrap();
    assert_eq!(failed.status, SettlementStatus::Confirmed);

    let transfers = store
        .transfers_for_settlement(scope, settlement.id)
        .await
        .unwrap();
    assert_eq!(transfers.len(), 2);
    assert!(
        transfers
            .iter()
            .all(|t| t.state == TransferState::Posted && t.amount == Amount::from_atomic(250_000))
    );
    assert!(
        transfers
            .iter()
            .any(|t| t.code == TransferCode::Payout && t.credit == AccountKind::MerchantReceivable)
    );
    let balances = store.account_balances(scope).await.unwrap();
    assert_eq!(
        balance(&balances, AccountKind::PayerClearing).posted_debit_balance(),
        Some(Amount::from_atomic(250_000))
    );
    assert_eq!(
        balance(&balances, AccountKind::MerchantReceivable).posted_credit_balance(),
        Some(Amount::from_atomic(250_000))
    );
    let in_flight = balance(&balances, AccountKind::SettlementInFlight);
    assert_eq!(in_flight.posted_credit_balance(), Some(Amount::ZERO));
    assert_eq!(in_flight.credits_pending, Amount::ZERO);
    // Another tenant sees none of it.
    let globex = tenant(&store, "Globex").await;
    assert!(
        store
            .account_balances(TenantScope::trusted(globex.id))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .transfers_for_settlement(TenantScope::trusted(globex.id), settlement.id)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn failure_after_broadcast_voids_the_pending_transfer(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Acme").await;
    let scope = TenantScope::trusted(acme.id);
    let settlement = submitted(&store, acme.id, 4, 77).await;
    let balances = store.account_balances(scope).await.unwrap();
    assert_eq!(
        balance(&balances, AccountKind::SettlementInFlight).credits_pending,
        Amount::from_atomic(77)
    );
    let failed = store
        .fail_settlement(
            settlement.id,
            None,
            None,
            "invalid_exact_evm_transaction_failed",
            "reverted",
        )
        .await
        .unwrap();
    assert_eq!(failed.status, SettlementStatus::Failed);
    assert_eq!(
        failed.error_reason.as_deref(),
        Some("invalid_exact_evm_transaction_failed")
    );
    assert_eq!(
        failed.tx_hash, settlement.tx_hash,
        "the transaction hash is kept"
    );
    let transfers = store
        .transfers_for_settlement(scope, settlement.id)
        .await
        .unwrap();
    assert_eq!(transfers.len(), 1);
    assert_eq!(transfers[0].state, TransferState::Voided);
    assert!(transfers[0].resolved_at.is_some());
    let balances = store.account_balances(scope).await.unwrap();
    for b in &balances {
        assert_eq!(
            (
                b.debits_pending,
                b.credits_pending,
                b.debits_posted,
                b.credits_posted
            ),
            (Amount::ZERO, Amount::ZERO, Amount::ZERO, Amount::ZERO),
            "{b:?}"
        );
    }
    // A failed (broadcast) settlement is never claimed afresh.
    assert!(matches!(
        store
            .claim_settlement(new_settlement(acme.id, 4, 77))
            .await
            .unwrap(),
        Claim::Existing(_)
    ));
}

pub async fn concurrent_resolutions_apply_one_outcome(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Acme").await;
    let scope = TenantScope::trusted(acme.id);
    let settlement = submitted(&store, acme.id, 5, 1_000).await;
    let outcomes = futures::future::join_all((0..20).map(|i| {
        let store = store.clone();
        let hash = settlement.tx_hash.clone().unwrap();
        async move {
            if i % 2 == 0 {
                store
                    .confirm_settlement(
                        settlement.id,
                        ChainOutcome {
                            tx_hash: hash,
                            block_number: 7,
                            cost: None,
                        },
                    )
                    .await
            } else {
                store
                    .fail_settlement(settlement.id, None, None, "r", "m")
                    .await
            }
        }
    }))
    .await;
    let statuses: std::collections::HashSet<SettlementStatus> =
        outcomes.into_iter().map(|o| o.unwrap().status).collect();
    assert_eq!(
        statuses.len(),
        1,
        "every caller saw the same outcome: {statuses:?}"
    );
    let final_status = *statuses.iter().next().unwrap();
    let transfers = store
        .transfers_for_settlement(scope, settlement.id)
        .await
        .unwrap();
    match final_status {
        SettlementStatus::Confirmed => {
            assert_eq!(transfers.len(), 2);
            assert!(transfers.iter().all(|t| t.state == TransferState::Posted));
        }
        SettlementStatus::Failed => {
            assert_eq!(transfers.len(), 1);
            assert_eq!(transfers[0].state, TransferState::Voided);
        }
        other => panic!("unexpected outcome {other}"),
    }
}

pub async fn transitions_are_guarded(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Acme").await;
    let settlement = created(&store, new_settlement(acme.id, 6, 9)).await;
    // Nothing can be sent for an unverified settlement.
    let err = store
        .record_attempt(attempt(&settlement, 0, 6))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict);
    assert!(
        store.attempts_for(settlement.id).await.unwrap().is_empty(),
        "nothing half-written"
    );
    // Confirming or failing something never sent changes nothing.
    let outcome = ChainOutcome {
        tx_hash: format!("0x{}", "ab".repeat(32)),
        block_number: 1,
        cost: None,
    };
    assert_eq!(
        store
            .confirm_settlement(settlement.id, outcome)
            .await
            .unwrap()
            .status,
        SettlementStatus::Received
    );
    assert_eq!(
        store.mark_pending(settlement.id, "m").await.unwrap().status,
        SettlementStatus::Received
    );
    let rejected = store
        .reject_settlement(
            settlement.id,
            "invalid_exact_evm_insufficient_balance",
            "balance 0",
        )
        .await
        .unwrap();
    assert_eq!(rejected.status, SettlementStatus::Rejected);
    assert_eq!(
        store.mark_verified(settlement.id).await.unwrap().status,
        SettlementStatus::Rejected
    );
    // A rejected authorization (nothing was broadcast) may be presented again by its tenant...
    let globex = tenant(&store, "Globex").await;
    assert!(matches!(
        store
            .claim_settlement(new_settlement(globex.id, 6, 9))
            .await
            .unwrap(),
        Claim::Existing(_)
    ));
    let again = created(&store, new_settlement(acme.id, 6, 9)).await;
    assert_eq!(again.id, settlement.id);
    assert_eq!(again.status, SettlementStatus::Received);
    assert_eq!(again.error_reason, None);
    let missing = store.mark_verified(SettlementId::new()).await.unwrap_err();
    assert_eq!(missing.code(), ErrorCode::NotFound);
}

/// A node's error text may hold anything, NUL included; the outcome it explains is recorded on
/// both backends alike, printable and bounded, rather than lost.
pub async fn outcome_messages_from_outside_are_stored_printable(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Acme").await;
    let settlement = created(&store, new_settlement(acme.id, 6, 9)).await;
    let raw = format!("node said \0 and \u{1b}[31m{}", "x".repeat(5000));
    let rejected = store
        .reject_settlement(settlement.id, "unexpected_settle_error", &raw)
        .await
        .unwrap();
    assert_eq!(rejected.status, SettlementStatus::Rejected);
    let stored = rejected.error_message.unwrap();
    assert!(stored.starts_with("node said   and  [31m"), "{stored}");
    assert_eq!(
        stored.chars().count(),
        purser_domain::text::OUTCOME_MESSAGE_MAX_CHARS
    );
    assert!(!stored.chars().any(char::is_control));
}

pub async fn signer_nonce_leases_are_unique_and_follow_the_chain(store: Arc<dyn Store>) {
    assert_eq!(
        store.signer_next_nonce(NETWORK, SIGNER).await.unwrap(),
        None
    );
    let leases = futures::future::join_all((0..40).map(|_| {
        let store = store.clone();
        async move { store.lease_signer_nonce(NETWORK, SIGNER, 5).await.unwrap() }
    }))
    .await;
    let mut sorted = leases.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (5..45).collect::<Vec<u64>>(),
        "40 distinct, consecutive nonces from the chain's"
    );
    assert_eq!(
        store.signer_next_nonce(NETWORK, SIGNER).await.unwrap(),
        Some(45)
    );
    // The chain moved on without us (another tool used the key): follow it.
    assert_eq!(
        store
            .lease_signer_nonce(NETWORK, SIGNER, 100)
            .await
            .unwrap(),
        100
    );
    // The chain lagging behind our leases does not rewind them.
    assert_eq!(
        store.lease_signer_nonce(NETWORK, SIGNER, 3).await.unwrap(),
        101
    );
    // Signers and chains are independent.
    assert_eq!(
        store
            .lease_signer_nonce("eip155:421614", SIGNER, 0)
            .await
            .unwrap(),
        0
    );
}

pub async fn attempts_are_recorded_before_broadcast(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Acme").await;
    let settlement = submitted(&store, acme.id, 7, 100).await;
    let first = store.attempts_for(settlement.id).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].broadcast_at, None);
    assert_eq!(first[0].raw_tx, vec![0x02, 7, 0xff]);
    let at = time::now();
    store.mark_broadcast(first[0].id, at).await.unwrap();
    // A fee-bumped replacement at the same nonce points the settlement at the new hash.
    let replacement = attempt(&settlement, first[0].signer_nonce, 8);
    store.record_attempt(replacement.clone()).await.unwrap();
    let attempts = store.attempts_for(settlement.id).await.unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].broadcast_at, Some(at));
    let current = store.get_settlement(settlement.id).await.unwrap().unwrap();
    assert_eq!(current.tx_hash, Some(replacement.tx_hash.clone()));
    assert_eq!(current.status, SettlementStatus::Submitted);
    let transfers = store
        .transfers_for_settlement(TenantScope::trusted(acme.id), settlement.id)
        .await
        .unwrap();
    assert_eq!(transfers.len(), 1, "a replacement opens no second transfer");
    // A gap filler belongs to no settlement.
    let filler = Attempt {
        id: AttemptId::new(),
        settlement_id: None,
        kind: AttemptKind::GapFill,
        ..attempt(&settlement, 9, 9)
    };
    store.record_attempt(filler).await.unwrap();
    let by_nonce = store
        .signer_attempts_from(NETWORK, SIGNER, 0)
        .await
        .unwrap();
    assert_eq!(
        by_nonce.iter().map(|a| a.signer_nonce).collect::<Vec<_>>(),
        vec![0, 0, 9]
    );
    assert_eq!(by_nonce[2].kind, AttemptKind::GapFill);
    assert_eq!(
        store
            .signer_attempts_from(NETWORK, SIGNER, 1)
            .await
            .unwrap()
            .len(),
        1
    );
    // The same transaction hash cannot be recorded twice.
    assert!(store.record_attempt(replacement).await.is_err());
}

pub async fn unfinished_settlements_are_listed_for_reconciliation(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Acme").await;
    let received = created(&store, new_settlement(acme.id, 10, 1)).await;
    let in_flight = submitted(&store, acme.id, 11, 1).await;
    let done = submitted(&store, acme.id, 12, 1).await;
    store
        .confirm_settlement(
            done.id,
            ChainOutcome {
                tx_hash: done.tx_hash.clone().unwrap(),
                block_number: 1,
                cost: None,
            },
        )
        .await
        .unwrap();
    let later = time::now() + Duration::seconds(1);
    let listed = store
        .unfinished_settlements(InFlightQuery {
            updated_before: later,
            limit: 10,
        })
        .await
        .unwrap();
    let ids: Vec<SettlementId> = listed.iter().map(|s| s.id).collect();
    assert!(ids.contains(&received.id) && ids.contains(&in_flight.id));
    assert!(!ids.contains(&done.id));
    let earlier = received.created_at - Duration::seconds(1);
    assert!(
        store
            .unfinished_settlements(InFlightQuery {
                updated_before: earlier,
                limit: 10
            })
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .unfinished_settlements(InFlightQuery {
                updated_before: later,
                limit: 1
            })
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn payment_identifiers_map_to_one_payload(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Acme").await;
    let globex = tenant(&store, "Globex").await;
    let scope = TenantScope::trusted(acme.id);
    let id = "pay_0123456789abcdef";
    let hash_a = "a".repeat(64);
    let hash_b = "b".repeat(64);
    assert_eq!(
        store
            .claim_payment_identifier(scope, id, &hash_a)
            .await
            .unwrap(),
        PaymentIdentifierClaim::New
    );
    match store
        .claim_payment_identifier(scope, id, &hash_a)
        .await
        .unwrap()
    {
        PaymentIdentifierClaim::Same(record) => assert_eq!(record.response, None),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store
            .claim_payment_identifier(scope, id, &hash_b)
            .await
            .unwrap(),
        PaymentIdentifierClaim::Conflict
    );
    store
        .store_payment_response(scope, id, r#"{"success":true}"#)
        .await
        .unwrap();
    match store
        .claim_payment_identifier(scope, id, &hash_a)
        .await
        .unwrap()
    {
        PaymentIdentifierClaim::Same(record) => {
            assert_eq!(record.response.as_deref(), Some(r#"{"success":true}"#))
        }
        other => panic!("{other:?}"),
    }
    // Identifiers are per tenant.
    assert_eq!(
        store
            .claim_payment_identifier(TenantScope::trusted(globex.id), id, &hash_b)
            .await
            .unwrap(),
        PaymentIdentifierClaim::New
    );
}

/// A tenant with one confirmed settlement, so the ledger has accounts and transfers.
pub async fn seed_confirmed_settlement(store: &Arc<dyn Store>) {
    let tenant = tenant(store, "Ledger").await;
    seed_settlement_for(store, tenant.id).await;
}

/// One confirmed settlement of 1000 units for `tenant`, through the repository's transitions.
pub async fn seed_settlement_for(store: &Arc<dyn Store>, tenant: TenantId) -> SettlementId {
    let (settlement, tx_hash) = seed_submitted_settlement_for(store, tenant).await;
    store
        .confirm_settlement(
            settlement,
            ChainOutcome {
                tx_hash,
                block_number: 1,
                cost: None,
            },
        )
        .await
        .unwrap();
    settlement
}

/// A settlement of `tenant` whose transaction was recorded but has no receipt yet: its id and
/// the transaction's hash.
pub async fn seed_submitted_settlement_for(
    store: &Arc<dyn Store>,
    tenant: TenantId,
) -> (SettlementId, String) {
    seed_submitted(store, tenant, SettlementKind::Exact, None, 1_000).await
}

/// A settlement of `kind` (on the escrowed payment `escrow` names) submitted for `tenant`.
async fn seed_submitted(
    store: &Arc<dyn Store>,
    tenant: TenantId,
    kind: SettlementKind,
    escrow: Option<EscrowLink>,
    amount: u128,
) -> (SettlementId, String) {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let new = NewSettlement {
        id: SettlementId::new(),
        tenant_id: tenant,
        key: AuthorizationKey::new(
            "eip155:84532",
            "0x036cbd53842c5426634e7929541ec2318f3dcf7e",
            "0x3333333333333333333333333333333333333333",
            &format!("0x{nonce}{nonce}"),
        )
        .unwrap(),
        pay_to: "0x4444444444444444444444444444444444444444".to_owned(),
        amount: Amount::from_atomic(amount),
        valid_after: 0,
        valid_before: 1,
        payload: "{}".to_owned(),
        requirements: "{}".to_owned(),
        payment_identifier: None,
        kind,
        escrow,
        created_at: time::now(),
    };
    let settlement = created(store, new).await;
    store.mark_verified(settlement.id).await.unwrap();
    let tx_hash = format!("0x{nonce}{nonce}");
    store
        .record_attempt(Attempt {
            id: AttemptId::new(),
            settlement_id: Some(settlement.id),
            kind: AttemptKind::Transfer,
            network: "eip155:84532".to_owned(),
            signer: "0x5555555555555555555555555555555555555555".to_owned(),
            signer_nonce: 0,
            tx_hash: tx_hash.clone(),
            raw_tx: vec![1],
            max_fee_per_gas: 1,
            max_priority_fee_per_gas: 1,
            created_at: time::now(),
            broadcast_at: None,
            route: None,
        })
        .await
        .unwrap();
    (settlement.id, tx_hash)
}

/// An escrowed payment of `amount` held for `tenant` (its `authorize` confirmed): the escrow's
/// key for it, and the authorization's settlement.
pub async fn seed_escrow_payment_for(
    store: &Arc<dyn Store>,
    tenant: TenantId,
    amount: u128,
) -> (String, SettlementId) {
    let payment = format!("0x{}", uuid::Uuid::new_v4().simple().to_string().repeat(2));
    let id = seed_escrow_operation(
        store,
        tenant,
        &payment,
        SettlementKind::EscrowAuthorize,
        amount,
        0,
    )
    .await;
    (payment, id)
}

/// One operation of `kind` on `payment`, submitted and confirmed.
async fn seed_escrow_operation(
    store: &Arc<dyn Store>,
    tenant: TenantId,
    payment: &str,
    kind: SettlementKind,
    amount: u128,
    fee: u128,
) -> SettlementId {
    let link = EscrowLink {
        payment: payment.to_owned(),
        fee: Amount::from_atomic(fee),
    };
    let (id, tx_hash) = seed_submitted(store, tenant, kind, Some(link), amount).await;
    store
        .confirm_settlement(
            id,
            ChainOutcome {
                tx_hash,
                block_number: 1,
                cost: None,
            },
        )
        .await
        .unwrap();
    id
}

/// The tenant's posted balance of its `kind` accounts in tokens (gas, in `native`, left out):
/// credits less debits.
pub async fn posted(store: &Arc<dyn Store>, tenant: TenantId, kind: AccountKind) -> i128 {
    store
        .account_balances(TenantScope::trusted(tenant))
        .await
        .unwrap()
        .into_iter()
        .filter(|b| {
            b.account.kind == kind && b.account.asset != purser_domain::settlement::NATIVE_ASSET
        })
        .map(|b| b.credits_posted.atomic() as i128 - b.debits_posted.atomic() as i128)
        .sum()
}

pub async fn escrow_operations_post_by_kind_one_at_a_time(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Acme").await.id;
    let globex = tenant(&store, "Globex").await.id;
    let (payment, _) = seed_escrow_payment_for(&store, acme, 1_000).await;
    assert_eq!(posted(&store, acme, AccountKind::EscrowHeld).await, 1_000);
    assert_eq!(
        posted(&store, acme, AccountKind::PayerClearing).await,
        -1_000
    );

    // A capture of 300 paying a fee of 3: 297 to the merchant, 3 to fees.
    seed_escrow_operation(
        &store,
        acme,
        &payment,
        SettlementKind::EscrowCapture,
        300,
        3,
    )
    .await;
    assert_eq!(posted(&store, acme, AccountKind::EscrowHeld).await, 700);
    assert_eq!(
        posted(&store, acme, AccountKind::MerchantReceivable).await,
        297
    );
    assert_eq!(posted(&store, acme, AccountKind::Fees).await, 3);

    // While one operation is in flight, a second on the same payment is refused; another
    // payment is not held up.
    let (in_flight, _) = seed_submitted(
        &store,
        acme,
        SettlementKind::EscrowRefund,
        Some(EscrowLink {
            payment: payment.clone(),
            fee: Amount::ZERO,
        }),
        100,
    )
    .await;
    let second = store
        .claim_settlement(NewSettlement {
            kind: SettlementKind::EscrowVoid,
            escrow: Some(EscrowLink {
                payment: payment.clone(),
                fee: Amount::ZERO,
            }),
            ..new_settlement(acme, 201, 700)
        })
        .await
        .unwrap_err();
    assert_eq!(second.code(), ErrorCode::EscrowOperationInFlight);
    seed_escrow_payment_for(&store, acme, 50).await;
    // The refund fails on chain: its pending transfer is voided, and the payment is free again.
    store
        .fail_settlement(in_flight, None, None, "reverted", "reverted")
        .await
        .unwrap();
    assert_eq!(posted(&store, acme, AccountKind::RefundAdvances).await, 0);
    seed_escrow_operation(&store, acme, &payment, SettlementKind::EscrowRefund, 100, 0).await;
    assert_eq!(
        posted(&store, acme, AccountKind::RefundAdvances).await,
        -100
    );
    seed_escrow_operation(&store, acme, &payment, SettlementKind::EscrowVoid, 700, 0).await;
    assert_eq!(posted(&store, acme, AccountKind::EscrowHeld).await, 50);
    assert_eq!(posted(&store, acme, AccountKind::PayerReturned).await, 800);

    // The payment's operations, its authorization first, for its tenant only.
    let operations = store
        .escrow_operations(
            TenantScope::trusted(acme),
            &payment.to_ascii_uppercase().replace("0X", "0x"),
        )
        .await
        .unwrap();
    let kinds: Vec<_> = operations.iter().map(|o| (o.kind, o.status)).collect();
    assert_eq!(
        kinds,
        [
            (SettlementKind::EscrowAuthorize, SettlementStatus::Confirmed),
            (SettlementKind::EscrowCapture, SettlementStatus::Confirmed),
            (SettlementKind::EscrowRefund, SettlementStatus::Failed),
            (SettlementKind::EscrowRefund, SettlementStatus::Confirmed),
            (SettlementKind::EscrowVoid, SettlementStatus::Confirmed),
        ]
    );
    assert!(
        store
            .escrow_operations(TenantScope::trusted(globex), &payment)
            .await
            .unwrap()
            .is_empty()
    );
    let listed = store
        .list_escrow_payments(TenantScope::trusted(acme), PageRequest::first(10).unwrap())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2);
    assert!(
        listed
            .items
            .iter()
            .all(|s| s.kind == SettlementKind::EscrowAuthorize)
    );

    // A reclaim of the other payment's hold posts once.
    let (_, other_authorization) = seed_escrow_payment_for(&store, globex, 40).await;
    assert!(
        store
            .record_escrow_reclaim(other_authorization, Amount::from_atomic(40))
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_escrow_reclaim(other_authorization, Amount::from_atomic(40))
            .await
            .unwrap()
    );
    assert_eq!(posted(&store, globex, AccountKind::EscrowHeld).await, 0);
    assert_eq!(posted(&store, globex, AccountKind::PayerReturned).await, 40);
}

pub async fn escrow_schedules_come_due_once(store: Arc<dyn Store>) {
    use purser_domain::escrow::{EscrowAction, EscrowSchedule};
    let acme = tenant(&store, "Acme").await.id;
    let schedule = |payment: &str, due_at: i64| EscrowSchedule {
        payment: payment.to_owned(),
        tenant_id: acme,
        network: "eip155:84532".into(),
        action: EscrowAction::Void,
        due_at,
        capture_deadline: 5_000,
        attempts: 0,
        last_error: None,
        resolved_at: None,
        outcome: None,
        created_at: time::now(),
    };
    let early = format!("0x{}", "a1".repeat(32));
    let late = format!("0x{}", "b2".repeat(32));
    assert!(
        store
            .schedule_escrow(schedule(&early, 1_000))
            .await
            .unwrap()
    );
    assert!(store.schedule_escrow(schedule(&late, 3_000)).await.unwrap());
    // A second schedule of one payment keeps the first.
    assert!(!store.schedule_escrow(schedule(&early, 9)).await.unwrap());
    let due = store
        .due_escrow_schedules("eip155:84532", 2_000, 10)
        .await
        .unwrap();
    assert_eq!(
        due.iter().map(|d| d.payment.as_str()).collect::<Vec<_>>(),
        [early.as_str()]
    );
    assert!(
        store
            .due_escrow_schedules("eip155:1", 9_999, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Rescheduled sooner, and as a capture; a failed attempt is counted.
    store
        .reschedule_escrow(&late, EscrowAction::Capture, 1_500)
        .await
        .unwrap();
    store
        .note_escrow_attempt(&late, "the chain was away")
        .await
        .unwrap();
    let due = store
        .due_escrow_schedules("eip155:84532", 2_000, 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 2);
    let late_row = store.escrow_schedule(&late).await.unwrap().unwrap();
    assert_eq!(
        (late_row.action, late_row.attempts),
        (EscrowAction::Capture, 1)
    );
    assert_eq!(late_row.last_error.as_deref(), Some("the chain was away"));
    // Resolved, it is due no more, and keeps its outcome.
    store
        .resolve_escrow_schedule(&early, "voided by the schedule")
        .await
        .unwrap();
    store
        .resolve_escrow_schedule(&early, "again")
        .await
        .unwrap();
    let due = store
        .due_escrow_schedules("eip155:84532", 9_999, 10)
        .await
        .unwrap();
    assert_eq!(
        due.iter().map(|d| d.payment.as_str()).collect::<Vec<_>>(),
        [late.as_str()]
    );
    let early_row = store.escrow_schedule(&early).await.unwrap().unwrap();
    assert_eq!(early_row.outcome.as_deref(), Some("voided by the schedule"));
    assert!(early_row.resolved_at.is_some());
}

pub async fn settlements_are_listed_per_tenant(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Acme").await;
    let globex = tenant(&store, "Globex").await;
    let mut mine = Vec::new();
    for byte in 20..25 {
        mine.push(created(&store, new_settlement(acme.id, byte, 1)).await.id);
    }
    let theirs = created(&store, new_settlement(globex.id, 30, 1)).await.id;
    let page = store
        .list_settlements(
            TenantScope::trusted(acme.id),
            PageRequest::first(3).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        page.items.iter().map(|s| s.id).collect::<Vec<_>>(),
        mine[0..3]
    );
    assert!(page.has_more);
    let rest = store
        .list_settlements(
            TenantScope::trusted(acme.id),
            PageRequest::relay(Some(10), Some(mine[2].as_uuid()), None, None).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        rest.items.iter().map(|s| s.id).collect::<Vec<_>>(),
        mine[3..5]
    );
    let other = store
        .list_settlements(
            TenantScope::trusted(globex.id),
            PageRequest::first(10).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        other.items.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![theirs]
    );
}

/// Names follow the text rules (`purser_domain::text`) before any store sees them: NUL, which
/// PostgreSQL refuses and SQLite keeps, and every other control character are refused alike,
/// while any script is kept and read back as written.
pub async fn names_refuse_nul_and_control_characters_and_keep_any_script(store: Arc<dyn Store>) {
    assert_eq!(
        TenantName::parse("\t").unwrap_err().code(),
        ErrorCode::InvalidInput
    );
    for bad in ["Acme\u{0}", "Ac\u{7}me", "Acme\nCorp", "Ac\u{85}me"] {
        let err = TenantName::parse(bad).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidInput, "{bad:?}");
        assert!(err.message().contains("tenant name"), "{}", err.message());
        let err = mint_api_key(None, Role::Operator, bad).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidInput, "{bad:?}");
        assert!(err.message().contains("key name"), "{}", err.message());
    }
    let name = "Café 東京 🚀 \u{200d}Ünïcödé";
    let created = tenant(&store, name).await;
    assert_eq!(created.name, name);
    assert_eq!(
        store.get_tenant(created.id).await.unwrap().unwrap().name,
        name
    );
    let (record, _) = mint_api_key(Some(created.id), Role::TenantRead, " clé 🔑 ").unwrap();
    store.insert_api_key(record.clone()).await.unwrap();
    let read = store
        .get_api_key(owner(&created), record.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.name, "clé 🔑");
}

/// A tenant an operator names is checked to exist: `not_found` otherwise, with or without the
/// authenticator's memory; a tenant key's own tenant needs no look-up, and another is
/// `forbidden` whether it exists or not. A scope for a named tenant is never minted unchecked.
pub async fn operators_scope_only_tenants_that_exist(store: Arc<dyn Store>) {
    use purser_domain::auth::Access;

    let acme = tenant(&store, "Acme").await;
    let globex = tenant(&store, "Globex").await;
    let missing = TenantId::new();
    let (_, operator_token) = key(&store, None, Role::Operator).await;
    let (_, admin_token) = key(&store, Some(acme.id), Role::TenantAdmin).await;
    let auth = Authenticator::new(store.clone());
    let operator = auth.authenticate(operator_token.expose()).await.unwrap();
    let admin = auth.authenticate(admin_token.expose()).await.unwrap();

    for _ in 0..2 {
        // The second time, from memory.
        let scope = auth
            .scope(&operator, Some(acme.id), Access::Write)
            .await
            .unwrap();
        assert_eq!(scope.tenant_id(), acme.id);
        let err = auth
            .scope(&operator, Some(missing), Access::Read)
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::NotFound, "{}", err.message());
        assert!(err.message().contains("tenant"), "{}", err.message());
    }
    let checked = operator
        .checked_scope(store.as_ref(), Some(globex.id), Access::Read)
        .await
        .unwrap();
    assert_eq!(checked.tenant_id(), globex.id);
    assert_eq!(
        operator
            .checked_scope(store.as_ref(), Some(missing), Access::Read)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::NotFound
    );
    assert_eq!(
        operator
            .scope(Some(acme.id), Access::Read)
            .unwrap_err()
            .code(),
        ErrorCode::Internal,
        "an unchecked scope for a named tenant is never minted"
    );
    assert_eq!(
        auth.key_owner(&operator, None, Access::Write)
            .await
            .unwrap(),
        KeyOwner::Platform
    );
    assert_eq!(
        auth.key_owner(&operator, Some(missing), Access::Write)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::NotFound
    );
    assert_eq!(
        operator
            .checked_key_owner(store.as_ref(), Some(missing), Access::Write)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::NotFound
    );

    assert_eq!(
        auth.scope(&admin, None, Access::Write)
            .await
            .unwrap()
            .tenant_id(),
        acme.id
    );
    for other in [globex.id, missing] {
        assert_eq!(
            auth.scope(&admin, Some(other), Access::Read)
                .await
                .unwrap_err()
                .code(),
            ErrorCode::Forbidden
        );
    }
}

pub async fn routing_policies_are_per_tenant_and_checked(store: Arc<dyn Store>) {
    use purser_domain::routing::{RoutingPolicy, Strategy};
    let a = TenantScope::trusted(tenant(&store, "Routing A").await.id);
    let b = TenantScope::trusted(tenant(&store, "Routing B").await.id);
    assert_eq!(store.routing_policy(a).await.unwrap(), None);
    let weighted = RoutingPolicy {
        strategy: Strategy::Weighted,
        cost_weight_percent: 70,
        max_fee_ratio_bps: Some(250),
    };
    let stored = store
        .set_routing_policy(a, weighted, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(stored, weighted);
    assert_eq!(store.routing_policy(a).await.unwrap(), Some(weighted));
    assert_eq!(store.routing_policy(b).await.unwrap(), None);
    // Replacing keeps one row, and a guard can be removed.
    let pinned = RoutingPolicy {
        strategy: Strategy::Pinned,
        cost_weight_percent: 0,
        max_fee_ratio_bps: None,
    };
    store
        .set_routing_policy(a, pinned, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(store.routing_policy(a).await.unwrap(), Some(pinned));
    // Out of range: refused before any SQL, alike on both backends, nothing written.
    let err = store
        .set_routing_policy(
            b,
            RoutingPolicy {
                max_fee_ratio_bps: Some(0),
                ..RoutingPolicy::default()
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    assert_eq!(store.routing_policy(b).await.unwrap(), None);
    // A tenant that does not exist is not found, not internal.
    let ghost = TenantScope::trusted(TenantId::new());
    let err = store
        .set_routing_policy(ghost, RoutingPolicy::default(), chrono::Utc::now())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound, "{err:?}");
}

pub async fn mined_transactions_post_their_network_fee_once(store: Arc<dyn Store>) {
    use purser_domain::settlement::{NATIVE_ASSET, NetworkCost};
    let acme = tenant(&store, "Gas Acme").await;
    let scope = TenantScope::trusted(acme.id);
    use purser_domain::routing::RouteDecision;
    // A confirmed settlement: 61,234 gas at 1.5 gwei, with an OP Stack L1 and operator fee.
    // Its transfer carries the router's decision, kept in the same write.
    let confirmed = created(&store, new_settlement(acme.id, 31, 10_000)).await;
    store.mark_verified(confirmed.id).await.unwrap();
    let nonce = store.lease_signer_nonce(NETWORK, SIGNER, 0).await.unwrap();
    let routed = |estimate: Option<u128>, chosen: &str| RouteDecision {
        estimated_cost_wei: estimate.map(Amount::from_atomic),
        json: format!("{{\"chosen\":\"{chosen}\"}}"),
    };
    store
        .record_attempt(Attempt {
            route: Some(routed(Some(91_000_000_000_000), "a")),
            ..attempt(&confirmed, nonce, 31)
        })
        .await
        .unwrap();
    let confirmed = store.get_settlement(confirmed.id).await.unwrap().unwrap();
    assert_eq!(
        confirmed.route_decision.as_deref(),
        Some("{\"chosen\":\"a\"}")
    );
    // The route is kept once: a replacement's decision does not replace the first.
    store
        .record_attempt(Attempt {
            route: Some(routed(None, "b")),
            ..attempt(&confirmed, nonce, 0x31)
        })
        .await
        .unwrap();
    let cost = NetworkCost::of(61_234, 1_500_000_000, 123_456_789, 42).unwrap();
    assert_eq!(
        cost.total.atomic(),
        61_234 * 1_500_000_000 + 123_456_789 + 42
    );
    let outcome = ChainOutcome {
        tx_hash: confirmed.tx_hash.clone().unwrap(),
        block_number: 7,
        cost: Some(cost),
    };
    let done = store
        .confirm_settlement(confirmed.id, outcome.clone())
        .await
        .unwrap();
    assert_eq!(done.network_cost, Some(cost));
    assert_eq!(
        done.estimated_network_cost,
        Some(Amount::from_atomic(91_000_000_000_000))
    );
    assert_eq!(done.route_decision.as_deref(), Some("{\"chosen\":\"a\"}"));
    // Confirming again posts nothing more.
    store
        .confirm_settlement(confirmed.id, outcome)
        .await
        .unwrap();
    // A reverted transaction costs gas too.
    let reverted = submitted(&store, acme.id, 32, 10_000).await;
    let revert_cost = NetworkCost::of(30_000, 1_000_000_000, 0, 0).unwrap();
    let failed = store
        .fail_settlement(
            reverted.id,
            reverted.tx_hash.as_deref(),
            Some(&revert_cost),
            "invalid_exact_evm_transaction_failed",
            "reverted",
        )
        .await
        .unwrap();
    assert_eq!(failed.network_cost, Some(revert_cost));
    // Nothing mined, nothing posted.
    let dropped = submitted(&store, acme.id, 33, 10_000).await;
    store
        .fail_settlement(dropped.id, None, None, "dropped", "nothing mined")
        .await
        .unwrap();
    let fees = |id| {
        let store = store.clone();
        async move {
            store
                .transfers_for_settlement(scope, id)
                .await
                .unwrap()
                .into_iter()
                .filter(|t| t.code == TransferCode::NetworkFee)
                .collect::<Vec<_>>()
        }
    };
    let confirmed_fees = fees(confirmed.id).await;
    assert_eq!(confirmed_fees.len(), 1, "posted once");
    let fee = &confirmed_fees[0];
    assert_eq!(fee.amount, cost.total);
    assert_eq!(fee.asset, NATIVE_ASSET);
    assert_eq!(fee.state, TransferState::Posted);
    assert_eq!(
        (fee.debit, fee.credit),
        (AccountKind::NetworkFees, AccountKind::SignerGas)
    );
    assert_eq!(fees(reverted.id).await[0].amount, revert_cost.total);
    assert!(fees(dropped.id).await.is_empty());
    // The tenant's network fees on the chain are the sum of both receipts, and balance.
    let balances = store.account_balances(scope).await.unwrap();
    let native = |kind| {
        balances
            .iter()
            .find(|b| b.account.kind == kind && b.account.asset == NATIVE_ASSET)
            .unwrap()
            .clone()
    };
    let total = cost.total.checked_add(revert_cost.total).unwrap();
    assert_eq!(native(AccountKind::NetworkFees).debits_posted, total);
    assert_eq!(native(AccountKind::SignerGas).credits_posted, total);
    // Per day and chain: both mined transactions, the estimate beside its own settlement's cost.
    let now = chrono::Utc::now();
    let days = store
        .network_costs(scope, now - Duration::days(1), now + Duration::days(1))
        .await
        .unwrap();
    assert_eq!(days.len(), 1, "{days:?}");
    assert_eq!(days[0].network, NETWORK);
    assert_eq!(days[0].settlements, 2);
    assert_eq!(days[0].total, total);
    assert_eq!(days[0].estimated, Amount::from_atomic(91_000_000_000_000));
    assert_eq!(days[0].estimated_actual, cost.total);
    // Another tenant sees none of it; a period too long or backwards is refused.
    let other = TenantScope::trusted(tenant(&store, "Gas Other").await.id);
    assert!(
        store
            .network_costs(other, now - Duration::days(1), now + Duration::days(1))
            .await
            .unwrap()
            .is_empty()
    );
    for (from, to) in [(now, now), (now - Duration::days(94), now)] {
        let err = store.network_costs(scope, from, to).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidInput);
    }
}
