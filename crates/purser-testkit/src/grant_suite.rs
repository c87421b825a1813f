//! The grants part of the storage behaviour suite: written once, run against every [`Store`].
//!
//! A storage crate instantiates it in its integration tests next to [`crate::store_suite!`],
//! with the same factory:
//!
//! ```text
//! purser_testkit::grant_suite!(crate::fresh_store);
//! ```

use std::sync::Arc;

use chrono::Duration;
use purser_domain::auth::TenantScope;
use purser_domain::entitlement::{Grant, GrantFilter, GrantScope, NewGrant};
use purser_domain::id::{GrantId, ResourceId, SettlementId, TenantId};
use purser_domain::page::PageRequest;
use purser_domain::registry::ResourceStatus;
use purser_domain::repo::Store;
use purser_domain::{ErrorCode, time};

use crate::registry_suite::{new_resource, tenant};
use crate::store_suite::{seed_settlement_for, seed_submitted_settlement_for};

/// Instantiates every grant test as a `#[tokio::test]` in the calling module. `$factory` is an
/// async fn returning `(Arc<dyn Store>, guard)`; the guard lives until the test ends.
#[macro_export]
macro_rules! grant_suite {
    ($factory:path) => {
        $crate::grant_suite!(@tests $factory;
            grants_are_created_found_and_checked,
            one_grant_per_settlement,
            grants_admit_their_resource_or_group_only,
            expired_and_revoked_grants_admit_nothing,
            uses_go_to_unlimited_then_soonest_lapsing_grants,
            concurrent_uses_are_counted_exactly,
            grants_are_listed_newest_first_with_filters,
            uses_counted_elsewhere_are_added_to_unlimited_grants_only,
            a_failed_settlement_revokes_what_it_bought,
        );
    };
    (@tests $factory:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _guard) = $factory().await;
                $crate::grant_suite::$name(store).await;
            }
        )*
    };
}

const ALICE: &str = "0xa11ce00000000000000000000000000000000001";
const BOB: &str = "0xb0b0000000000000000000000000000000000002";

async fn resource(store: &Arc<dyn Store>, tenant: TenantId, path: &str) -> ResourceId {
    store
        .create_resource(new_resource(
            tenant,
            &format!("https://api.example/{path}"),
            ResourceStatus::Published,
        ))
        .await
        .expect("create resource")
        .id
}

fn for_resource(tenant: TenantId, resource: ResourceId, wallet: &str) -> NewGrant {
    NewGrant {
        tenant_id: tenant,
        scope: GrantScope::Resource(resource),
        wallet: wallet.to_owned(),
        settlement_id: None,
        expires_at: None,
        uses_allowed: None,
    }
}

fn for_group(tenant: TenantId, group: &str, wallet: &str) -> NewGrant {
    NewGrant {
        scope: GrantScope::Group(group.to_owned()),
        ..for_resource(tenant, ResourceId::new(), wallet)
    }
}

async fn create(store: &Arc<dyn Store>, grant: NewGrant) -> Grant {
    store.create_grant(grant).await.expect("create grant")
}

fn ids(grants: &[Grant]) -> Vec<GrantId> {
    grants.iter().map(|g| g.id).collect()
}

pub async fn grants_are_created_found_and_checked(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Grants Acme").await;
    let globex = tenant(&store, "Grants Globex").await;
    let scope = TenantScope::trusted(acme);
    let report = resource(&store, acme, "report").await;
    let settlement = seed_settlement_for(&store, acme).await;
    let expires_at = time::now() + Duration::hours(1);
    let new = NewGrant {
        settlement_id: Some(settlement),
        expires_at: Some(expires_at),
        uses_allowed: Some(5),
        ..for_resource(acme, report, ALICE)
    };
    let before = time::now();
    let grant = create(&store, new).await;
    assert_eq!(grant.tenant_id, acme);
    assert_eq!(grant.scope, GrantScope::Resource(report));
    assert_eq!(grant.wallet, ALICE);
    assert_eq!(grant.settlement_id, Some(settlement));
    assert_eq!(grant.expires_at, Some(expires_at));
    assert_eq!(grant.uses_allowed, Some(5));
    assert_eq!(grant.uses_count, 0);
    assert_eq!(grant.revoked_at, None);
    assert!(grant.created_at >= before && grant.created_at <= time::now());
    assert_eq!(
        store.find_grant(scope, grant.id).await.unwrap(),
        Some(grant.clone())
    );
    assert_eq!(
        store
            .find_grant(TenantScope::trusted(globex), grant.id)
            .await
            .unwrap(),
        None,
        "another tenant does not see the grant"
    );
    assert_eq!(store.find_grant(scope, GrantId::new()).await.unwrap(), None);

    let group = create(&store, for_group(acme, "reports", BOB)).await;
    assert_eq!(group.scope, GrantScope::Group("reports".into()));
    assert_eq!((group.expires_at, group.uses_allowed), (None, None));
    assert_eq!(
        store.find_grant(scope, group.id).await.unwrap(),
        Some(group)
    );

    // Bad input is refused with its code, and nothing is written.
    let refused = [
        (
            for_resource(acme, report, &ALICE.to_uppercase().replace("0X", "0x")),
            ErrorCode::InvalidInput,
        ),
        (
            for_resource(acme, report, "0x1234"),
            ErrorCode::InvalidInput,
        ),
        (for_group(acme, "no spaces", ALICE), ErrorCode::InvalidInput),
        (
            NewGrant {
                uses_allowed: Some(0),
                ..for_resource(acme, report, ALICE)
            },
            ErrorCode::InvalidInput,
        ),
        (
            for_resource(acme, ResourceId::new(), ALICE),
            ErrorCode::NotFound,
        ),
        (for_resource(globex, report, ALICE), ErrorCode::NotFound),
        (
            NewGrant {
                settlement_id: Some(SettlementId::new()),
                ..for_group(acme, "reports", ALICE)
            },
            ErrorCode::NotFound,
        ),
        (
            for_group(TenantId::new(), "reports", ALICE),
            ErrorCode::NotFound,
        ),
    ];
    for (grant, code) in refused {
        let err = store.create_grant(grant.clone()).await.unwrap_err();
        assert_eq!(err.code(), code, "{grant:?}: {err:?}");
    }
    let all = store
        .list_grants(
            scope,
            GrantFilter::default(),
            time::now(),
            PageRequest::first(100).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(all.items.len(), 2, "refused grants were not written");
}

pub async fn one_grant_per_settlement(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Settled Acme").await;
    let globex = tenant(&store, "Settled Globex").await;
    let report = resource(&store, acme, "report").await;
    let settlement = seed_settlement_for(&store, acme).await;
    let first = create(
        &store,
        NewGrant {
            settlement_id: Some(settlement),
            uses_allowed: Some(3),
            ..for_resource(acme, report, ALICE)
        },
    )
    .await;
    // A retry, even with other terms, answers the first grant.
    let again = create(
        &store,
        NewGrant {
            settlement_id: Some(settlement),
            ..for_group(acme, "reports", BOB)
        },
    )
    .await;
    assert_eq!(again, first);
    // Another tenant cannot attach a grant to (or read one through) this settlement.
    let err = store
        .create_grant(NewGrant {
            settlement_id: Some(settlement),
            ..for_group(globex, "reports", ALICE)
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound, "{err:?}");

    // Concurrent deliveries of one payment make one grant.
    let other = seed_settlement_for(&store, acme).await;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create_grant(NewGrant {
                        settlement_id: Some(other),
                        ..for_resource(acme, report, BOB)
                    })
                    .await
                    .expect("create grant")
                    .id
            })
        })
        .collect();
    let mut made = Vec::new();
    for task in tasks {
        made.push(task.await.unwrap());
    }
    made.dedup();
    assert_eq!(made.len(), 1, "one grant for one settlement: {made:?}");
    let all = store
        .list_grants(
            TenantScope::trusted(acme),
            GrantFilter::default(),
            time::now(),
            PageRequest::first(100).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(ids(&all.items), vec![made[0], first.id]);
}

pub async fn grants_admit_their_resource_or_group_only(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Scope Acme").await;
    let globex = tenant(&store, "Scope Globex").await;
    let scope = TenantScope::trusted(acme);
    let report = resource(&store, acme, "report").await;
    let chart = resource(&store, acme, "chart").await;
    let theirs = resource(&store, globex, "report").await;
    let now = time::now();
    let on_report = create(&store, for_resource(acme, report, ALICE)).await;

    let used = store
        .use_grant(scope, ALICE, report, None, now)
        .await
        .unwrap()
        .expect("the resource's grant admits the wallet");
    assert_eq!(used.id, on_report.id);
    assert_eq!(used.uses_count, 1);
    let used = store
        .use_grant(scope, ALICE, report, Some("reports"), now)
        .await
        .unwrap()
        .expect("a resource grant holds whatever group the resource is in");
    assert_eq!((used.id, used.uses_count), (on_report.id, 2));
    for (tenant, wallet, resource, group) in [
        (acme, ALICE, chart, None),
        (acme, BOB, report, None),
        (globex, ALICE, report, None),
        (globex, ALICE, theirs, None),
    ] {
        assert_eq!(
            store
                .use_grant(TenantScope::trusted(tenant), wallet, resource, group, now)
                .await
                .unwrap(),
            None,
            "{tenant:?} {wallet} {resource:?}"
        );
    }

    let on_group = create(&store, for_group(acme, "reports", ALICE)).await;
    let used = store
        .use_grant(scope, ALICE, chart, Some("reports"), now)
        .await
        .unwrap()
        .expect("the group's grant admits a member resource");
    assert_eq!((used.id, used.uses_count), (on_group.id, 1));
    for (tenant, wallet, resource, group) in [
        (acme, ALICE, chart, None),
        (acme, ALICE, chart, Some("charts")),
        (acme, BOB, chart, Some("reports")),
        (globex, ALICE, theirs, Some("reports")),
    ] {
        assert_eq!(
            store
                .use_grant(TenantScope::trusted(tenant), wallet, resource, group, now)
                .await
                .unwrap(),
            None,
            "{tenant:?} {wallet} {resource:?} {group:?}"
        );
    }
    let err = store
        .use_grant(
            scope,
            &ALICE.to_uppercase().replace("0X", "0x"),
            report,
            None,
            now,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    assert_eq!(
        store
            .find_grant(TenantScope::trusted(globex), on_report.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .find_grant(scope, on_report.id)
            .await
            .unwrap()
            .unwrap()
            .uses_count,
        2,
        "refused uses counted nothing"
    );
}

pub async fn expired_and_revoked_grants_admit_nothing(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Lapse Acme").await;
    let globex = tenant(&store, "Lapse Globex").await;
    let scope = TenantScope::trusted(acme);
    let report = resource(&store, acme, "report").await;
    let now = time::now();

    let expired = create(
        &store,
        NewGrant {
            expires_at: Some(now - Duration::seconds(1)),
            ..for_resource(acme, report, ALICE)
        },
    )
    .await;
    assert_eq!(
        store
            .use_grant(scope, ALICE, report, None, now)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .find_grant(scope, expired.id)
            .await
            .unwrap()
            .unwrap()
            .uses_count,
        0
    );

    let hour = create(
        &store,
        NewGrant {
            expires_at: Some(now + Duration::hours(1)),
            ..for_resource(acme, report, BOB)
        },
    )
    .await;
    assert!(
        store
            .use_grant(scope, BOB, report, None, now)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store
            .use_grant(scope, BOB, report, None, now + Duration::hours(1))
            .await
            .unwrap(),
        None,
        "a grant lapses at its expiry"
    );

    // Revocation: scoped to the tenant, final, and the first time is kept.
    assert_eq!(
        store
            .revoke_grant(TenantScope::trusted(globex), hour.id, now)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .revoke_grant(scope, GrantId::new(), now)
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .use_grant(scope, BOB, report, None, now)
            .await
            .unwrap()
            .is_some(),
        "another tenant's revocation changed nothing"
    );
    let revoked_at = now + Duration::seconds(5);
    let revoked = store
        .revoke_grant(scope, hour.id, revoked_at)
        .await
        .unwrap()
        .expect("the tenant's grant");
    assert_eq!(revoked.revoked_at, Some(revoked_at));
    assert_eq!(revoked.uses_count, 2);
    let again = store
        .revoke_grant(scope, hour.id, revoked_at + Duration::seconds(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.revoked_at, Some(revoked_at), "the first time is kept");
    assert_eq!(
        store
            .use_grant(scope, BOB, report, None, now)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.find_grant(scope, hour.id).await.unwrap(), Some(again));
}

pub async fn uses_go_to_unlimited_then_soonest_lapsing_grants(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Order Acme").await;
    let scope = TenantScope::trusted(acme);
    let report = resource(&store, acme, "report").await;
    let now = time::now();
    let late = create(
        &store,
        NewGrant {
            expires_at: Some(now + Duration::hours(2)),
            uses_allowed: Some(1),
            ..for_resource(acme, report, ALICE)
        },
    )
    .await;
    let endless = create(
        &store,
        NewGrant {
            uses_allowed: Some(1),
            ..for_group(acme, "reports", ALICE)
        },
    )
    .await;
    let soon = create(
        &store,
        NewGrant {
            expires_at: Some(now + Duration::hours(1)),
            uses_allowed: Some(1),
            ..for_resource(acme, report, ALICE)
        },
    )
    .await;
    let mut order = Vec::new();
    while let Some(used) = store
        .use_grant(scope, ALICE, report, Some("reports"), now)
        .await
        .unwrap()
    {
        order.push(used.id);
        assert!(order.len() <= 3, "three single-use grants admit three uses");
    }
    assert_eq!(
        order,
        vec![soon.id, late.id, endless.id],
        "the grant that lapses first is spent first"
    );

    let unlimited = create(
        &store,
        NewGrant {
            expires_at: Some(now + Duration::minutes(1)),
            ..for_resource(acme, report, ALICE)
        },
    )
    .await;
    let counted = create(
        &store,
        NewGrant {
            expires_at: Some(now + Duration::seconds(30)),
            uses_allowed: Some(1),
            ..for_resource(acme, report, ALICE)
        },
    )
    .await;
    for _ in 0..3 {
        let used = store
            .use_grant(scope, ALICE, report, None, now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(used.id, unlimited.id, "a grant without a count goes first");
    }
    let counted = store.find_grant(scope, counted.id).await.unwrap().unwrap();
    assert_eq!(counted.uses_count, 0, "its paid use is kept");
}

pub async fn concurrent_uses_are_counted_exactly(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Race Acme").await;
    let scope = TenantScope::trusted(acme);
    let report = resource(&store, acme, "report").await;
    let now = time::now();
    let five = create(
        &store,
        NewGrant {
            uses_allowed: Some(5),
            ..for_resource(acme, report, ALICE)
        },
    )
    .await;

    let race = |calls: usize, group: Option<&'static str>| {
        let tasks: Vec<_> = (0..calls)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .use_grant(scope, ALICE, report, group, now)
                        .await
                        .expect("use grant")
                })
            })
            .collect();
        async move {
            let mut admitted = Vec::new();
            for task in tasks {
                if let Some(grant) = task.await.unwrap() {
                    admitted.push(grant);
                }
            }
            admitted
        }
    };

    let admitted = race(50, None).await;
    assert_eq!(
        admitted.len(),
        5,
        "a grant of five uses admits five requests"
    );
    assert!(admitted.iter().all(|g| g.id == five.id));
    let mut counts: Vec<u32> = admitted.iter().map(|g| g.uses_count).collect();
    counts.sort_unstable();
    assert_eq!(counts, vec![1, 2, 3, 4, 5], "each use saw its own count");
    let five = store.find_grant(scope, five.id).await.unwrap().unwrap();
    assert_eq!(five.uses_count, 5);
    assert_eq!(
        store
            .use_grant(scope, ALICE, report, None, now)
            .await
            .unwrap(),
        None
    );

    // Two grants contended at once: a caller that loses one grant moves on to the other rather
    // than answering `None` while uses remain.
    let four = create(
        &store,
        NewGrant {
            uses_allowed: Some(4),
            ..for_resource(acme, report, ALICE)
        },
    )
    .await;
    let three = create(
        &store,
        NewGrant {
            uses_allowed: Some(3),
            ..for_group(acme, "reports", ALICE)
        },
    )
    .await;
    let admitted = race(50, Some("reports")).await;
    assert_eq!(
        admitted.len(),
        7,
        "four and three uses admit seven requests"
    );
    for (grant, allowed) in [(four.id, 4), (three.id, 3)] {
        let stored = store.find_grant(scope, grant).await.unwrap().unwrap();
        assert_eq!(stored.uses_count, allowed);
        assert_eq!(
            admitted.iter().filter(|g| g.id == grant).count(),
            allowed as usize
        );
    }
}

pub async fn grants_are_listed_newest_first_with_filters(store: Arc<dyn Store>) {
    let acme = tenant(&store, "List Acme").await;
    let globex = tenant(&store, "List Globex").await;
    let scope = TenantScope::trusted(acme);
    let report = resource(&store, acme, "report").await;
    let chart = resource(&store, acme, "chart").await;
    let now = time::now();
    let mut made = Vec::new();
    for (i, grant) in [
        for_resource(acme, report, ALICE),
        for_resource(acme, chart, ALICE),
        for_group(acme, "reports", BOB),
        NewGrant {
            expires_at: Some(now - Duration::seconds(1)),
            ..for_resource(acme, report, BOB)
        },
        NewGrant {
            uses_allowed: Some(1),
            ..for_resource(acme, chart, BOB)
        },
        for_resource(acme, report, BOB),
        for_group(acme, "charts", ALICE),
    ]
    .into_iter()
    .enumerate()
    {
        made.push(create(&store, grant).await.id);
        if i == 0 {
            create(&store, for_group(globex, "reports", ALICE)).await;
        }
    }
    // One used up, one revoked.
    let used_up = store
        .use_grant(scope, BOB, chart, None, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((used_up.id, used_up.uses_count), (made[4], 1));
    store.revoke_grant(scope, made[5], now).await.unwrap();

    let newest_first: Vec<GrantId> = made.iter().rev().copied().collect();
    let list = |filter: GrantFilter, page: PageRequest| {
        let store = store.clone();
        async move { store.list_grants(scope, filter, now, page).await.unwrap() }
    };
    let all = GrantFilter::default();
    let page = |first, after: Option<GrantId>, last, before: Option<GrantId>| {
        PageRequest::relay(
            first,
            after.map(|i| i.as_uuid()),
            last,
            before.map(|i| i.as_uuid()),
        )
        .unwrap()
    };

    let everything = list(all.clone(), page(Some(100), None, None, None)).await;
    assert_eq!(ids(&everything.items), newest_first);
    assert!(!everything.has_more);
    let first = list(all.clone(), page(Some(3), None, None, None)).await;
    assert_eq!(ids(&first.items), newest_first[0..3]);
    assert!(first.has_more);
    let second = list(
        all.clone(),
        page(Some(3), Some(newest_first[2]), None, None),
    )
    .await;
    assert_eq!(ids(&second.items), newest_first[3..6]);
    assert!(second.has_more);
    let rest = list(
        all.clone(),
        page(Some(3), Some(newest_first[5]), None, None),
    )
    .await;
    assert_eq!(ids(&rest.items), newest_first[6..7]);
    assert!(!rest.has_more);
    let oldest = list(all.clone(), page(None, None, Some(2), None)).await;
    assert_eq!(ids(&oldest.items), newest_first[5..7]);
    assert!(oldest.has_more);
    let before = list(
        all.clone(),
        page(None, None, Some(2), Some(newest_first[5])),
    )
    .await;
    assert_eq!(ids(&before.items), newest_first[3..5]);
    let window = list(
        all.clone(),
        page(Some(10), Some(newest_first[1]), None, Some(newest_first[5])),
    )
    .await;
    assert_eq!(ids(&window.items), newest_first[2..5]);

    let filtered = |filter: GrantFilter| {
        let list = &list;
        async move { ids(&list(filter, page(Some(100), None, None, None)).await.items) }
    };
    assert_eq!(
        filtered(GrantFilter {
            wallet: Some(ALICE.into()),
            ..GrantFilter::default()
        })
        .await,
        vec![made[6], made[1], made[0]]
    );
    assert_eq!(
        filtered(GrantFilter {
            resource_id: Some(report),
            ..GrantFilter::default()
        })
        .await,
        vec![made[5], made[3], made[0]]
    );
    assert_eq!(
        filtered(GrantFilter {
            active_only: true,
            ..GrantFilter::default()
        })
        .await,
        vec![made[6], made[2], made[1], made[0]],
        "expired, used up and revoked grants are not active"
    );
    assert_eq!(
        filtered(GrantFilter {
            wallet: Some(BOB.into()),
            resource_id: Some(report),
            active_only: true,
        })
        .await,
        Vec::<GrantId>::new()
    );
    let err = store
        .list_grants(
            scope,
            GrantFilter {
                wallet: Some(ALICE.to_uppercase()),
                ..GrantFilter::default()
            },
            now,
            PageRequest::first(10).unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    let theirs = store
        .list_grants(
            TenantScope::trusted(globex),
            GrantFilter::default(),
            now,
            PageRequest::first(10).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(theirs.items.len(), 1);
    assert!(!made.contains(&theirs.items[0].id));
}

pub async fn uses_counted_elsewhere_are_added_to_unlimited_grants_only(store: Arc<dyn Store>) {
    let tenant = tenant(&store, "Acme").await;
    let scope = TenantScope::trusted(tenant);
    let paid = resource(&store, tenant, "batched").await;
    let unlimited = create(&store, for_resource(tenant, paid, ALICE)).await;
    let limited = create(
        &store,
        NewGrant {
            uses_allowed: Some(5),
            ..for_resource(tenant, paid, BOB)
        },
    )
    .await;
    store.add_grant_uses(&[]).await.unwrap();
    store
        .add_grant_uses(&[(unlimited.id, 3), (limited.id, 2), (GrantId::new(), 9)])
        .await
        .unwrap();
    store.add_grant_uses(&[(unlimited.id, 4)]).await.unwrap();
    let uses = |id| {
        let store = store.clone();
        async move {
            store
                .find_grant(scope, id)
                .await
                .unwrap()
                .unwrap()
                .uses_count
        }
    };
    assert_eq!(uses(unlimited.id).await, 7);
    assert_eq!(
        uses(limited.id).await,
        0,
        "a limited grant counts only its own uses"
    );
    store
        .add_grant_uses(&[(unlimited.id, u32::MAX)])
        .await
        .unwrap();
    assert_eq!(uses(unlimited.id).await, u32::MAX, "the count saturates");
}

pub async fn a_failed_settlement_revokes_what_it_bought(store: Arc<dyn Store>) {
    let tenant = tenant(&store, "Failing Acme").await;
    let scope = TenantScope::trusted(tenant);
    let report = resource(&store, tenant, "failing").await;
    let (failing, _) = seed_submitted_settlement_for(&store, tenant).await;
    let (landing, hash) = seed_submitted_settlement_for(&store, tenant).await;
    let lost = create(
        &store,
        NewGrant {
            settlement_id: Some(failing),
            ..for_resource(tenant, report, ALICE)
        },
    )
    .await;
    let kept = create(
        &store,
        NewGrant {
            settlement_id: Some(landing),
            ..for_resource(tenant, report, BOB)
        },
    )
    .await;
    let now = time::now();
    assert!(lost.holds_at(now), "granted while the payment was pending");
    let failed = store
        .fail_settlement(failing, None, None, "transaction_reverted", "reverted")
        .await
        .unwrap();
    store
        .confirm_settlement(
            landing,
            purser_domain::settlement::ChainOutcome {
                tx_hash: hash,
                block_number: 2,
                cost: None,
            },
        )
        .await
        .unwrap();
    let lost = store.find_grant(scope, lost.id).await.unwrap().unwrap();
    assert_eq!(
        lost.revoked_at,
        Some(failed.updated_at),
        "revoked with the failure"
    );
    assert!(
        store
            .use_grant(scope, ALICE, report, None, time::now())
            .await
            .unwrap()
            .is_none()
    );
    let kept = store.find_grant(scope, kept.id).await.unwrap().unwrap();
    assert!(kept.revoked_at.is_none());
    assert!(
        store
            .use_grant(scope, BOB, report, None, time::now())
            .await
            .unwrap()
            .is_some()
    );
}
