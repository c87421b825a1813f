//! The prepaid-credit part of the storage behaviour suite: written once, run against every
//! [`Store`].
//!
//! A storage crate instantiates it in its integration tests next to [`crate::store_suite!`],
//! with the same factory:
//!
//! ```text
//! purser_testkit::credit_suite!(crate::fresh_store);
//! ```
//!
//! After every step that moves credit, [`assert_ledger_agrees`] checks the ledger's invariants:
//! debits equal credits over all transfers, and each payer's stored balance equals the sums over
//! its account's transfers.

use std::sync::Arc;
use std::time::Instant;

use purser_domain::auth::TenantScope;
use purser_domain::credits::{CreditKey, CreditReservation, CreditReservationState};
use purser_domain::id::{CreditReservationId, SettlementId, TenantId};
use purser_domain::ledger::{AccountBalance, AccountKind};
use purser_domain::money::Amount;
use purser_domain::repo::Store;
use purser_domain::settlement::{AuthorizationKey, NewSettlement, SettlementKind};
use purser_domain::{ErrorCode, time};

use crate::registry_suite::tenant;
use crate::store_suite::seed_settlement_for;

/// Instantiates every credit test as a `#[tokio::test]` in the calling module. `$factory` is an
/// async fn returning `(Arc<dyn Store>, guard)`; the guard lives until the test ends.
#[macro_export]
macro_rules! credit_suite {
    ($factory:path) => {
        $crate::credit_suite!(@tests $factory;
            top_ups_add_to_the_balance,
            a_settlement_tops_up_once,
            commit_spends_the_actual_amount_and_returns_the_rest,
            release_returns_everything,
            a_reservation_resolves_once,
            reserving_more_than_available_writes_nothing,
            credit_is_per_tenant,
            a_thousand_concurrent_reservations_never_overdraw,
            stale_reservations_are_listed_oldest_first,
        );
    };
    (@tests $factory:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _guard) = $factory().await;
                $crate::credit_suite::$name(store).await;
            }
        )*
    };
}

const ALICE: &str = "0xa11ce00000000000000000000000000000000001";
const BOB: &str = "0xb0b0000000000000000000000000000000000002";
/// The chain and asset of [`seed_settlement_for`]'s settlements.
const NETWORK: &str = "eip155:84532";
const ASSET: &str = "0x036cbd53842c5426634e7929541ec2318f3dcf7e";

fn key(wallet: &str) -> CreditKey {
    CreditKey::new(wallet, NETWORK, ASSET).unwrap()
}

fn units(n: u128) -> Amount {
    Amount::from_atomic(n)
}

async fn top_up(store: &Arc<dyn Store>, scope: TenantScope, wallet: &str, amount: u128) {
    store
        .top_up(scope, &key(wallet), units(amount), None)
        .await
        .expect("top up");
}

async fn reserve(
    store: &Arc<dyn Store>,
    scope: TenantScope,
    wallet: &str,
    amount: u128,
) -> CreditReservation {
    store
        .reserve(scope, &key(wallet), units(amount))
        .await
        .expect("reserve")
}

/// `(available, reserved)` of the wallet's balance.
async fn balance(store: &Arc<dyn Store>, scope: TenantScope, wallet: &str) -> (u128, u128) {
    let balance = store.credit_balance(scope, &key(wallet)).await.unwrap();
    assert_eq!(balance.tenant_id, scope.tenant_id());
    assert_eq!(balance.key, key(wallet));
    (balance.available.atomic(), balance.reserved.atomic())
}

fn find<'a>(
    balances: &'a [AccountBalance],
    kind: AccountKind,
    wallet: Option<&str>,
) -> Option<&'a AccountBalance> {
    balances.iter().find(|b| {
        b.account.kind == kind
            && b.account.wallet.as_deref() == wallet
            && b.account.network == NETWORK
            && b.account.asset == ASSET
    })
}

/// Checks the ledger of the scope's tenant: over all its accounts, debits equal credits, pending
/// and posted alike; each of `wallets` has its own `payer_credit` account whose sums equal its
/// stored balance (available = credits posted − debits posted − debits pending, reserved =
/// debits pending); and the issuance and earned accounts hold what was topped up and spent.
pub async fn assert_ledger_agrees(
    store: &Arc<dyn Store>,
    scope: TenantScope,
    wallets: &[&str],
    topped_up: u128,
    spent: u128,
) {
    let balances = store.account_balances(scope).await.unwrap();
    let sum = |side: fn(&AccountBalance) -> Amount| -> u128 {
        balances.iter().map(|b| side(b).atomic()).sum()
    };
    assert_eq!(
        sum(|b| b.debits_posted),
        sum(|b| b.credits_posted),
        "posted debits equal posted credits"
    );
    assert_eq!(
        sum(|b| b.debits_pending),
        sum(|b| b.credits_pending),
        "pending debits equal pending credits"
    );
    let (mut available_total, mut reserved_total) = (0, 0);
    for wallet in wallets {
        let account = find(&balances, AccountKind::PayerCredit, Some(wallet))
            .unwrap_or_else(|| panic!("{wallet} has a payer credit account"));
        assert_eq!(account.account.tenant_id, scope.tenant_id());
        let from_ledger = account.credits_posted.atomic()
            - account.debits_posted.atomic()
            - account.debits_pending.atomic();
        let (available, reserved) = balance(store, scope, wallet).await;
        assert_eq!(
            (from_ledger, account.debits_pending.atomic()),
            (available, reserved),
            "{wallet}'s stored balance equals its ledger account's sums"
        );
        assert!(account.credits_pending.is_zero(), "credit is never pending");
        available_total += available;
        reserved_total += reserved;
    }
    let issued = find(&balances, AccountKind::CreditIssuance, None).expect("issuance account");
    assert_eq!(issued.debits_posted.atomic(), topped_up, "issued credit");
    assert!(issued.credits_posted.is_zero() && issued.debits_pending.is_zero());
    let earned = find(&balances, AccountKind::CreditEarned, None).expect("earned account");
    assert_eq!(earned.credits_posted.atomic(), spent, "spent credit");
    assert_eq!(
        earned.credits_pending.atomic(),
        reserved_total,
        "held credit"
    );
    assert_eq!(
        available_total + reserved_total + spent,
        topped_up,
        "every unit issued is available, held or spent"
    );
}

/// A tenant with a topped-up payer, one committed and one released reservation, for tests of
/// what the database itself refuses.
pub async fn seed_resolved_reservations(store: &Arc<dyn Store>) {
    let scope = TenantScope::trusted(tenant(store, "Seeded Credit").await);
    top_up(store, scope, ALICE, 100).await;
    let committed = reserve(store, scope, ALICE, 30).await;
    store.commit(scope, committed.id, units(20)).await.unwrap();
    let released = reserve(store, scope, ALICE, 10).await;
    store.release(scope, released.id).await.unwrap();
    reserve(store, scope, ALICE, 5).await;
    assert_ledger_agrees(store, scope, &[ALICE], 100, 20).await;
}

pub async fn top_ups_add_to_the_balance(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Credit Acme").await;
    let scope = TenantScope::trusted(acme);
    assert_eq!(
        balance(&store, scope, ALICE).await,
        (0, 0),
        "never topped up"
    );

    let before = time::now();
    let first = store
        .top_up(scope, &key(ALICE), units(1_000), None)
        .await
        .unwrap();
    assert_eq!(first.tenant_id, acme);
    assert_eq!(first.key, key(ALICE));
    assert_eq!(first.amount, units(1_000));
    assert_eq!(first.settlement_id, None);
    assert!(first.created_at >= before && first.created_at <= time::now());
    assert_eq!(balance(&store, scope, ALICE).await, (1_000, 0));

    // Without a settlement, every top-up adds.
    let second = store
        .top_up(scope, &key(ALICE), units(500), None)
        .await
        .unwrap();
    assert_ne!(second.transfer_id, first.transfer_id);
    assert_eq!(balance(&store, scope, ALICE).await, (1_500, 0));
    assert_eq!(balance(&store, scope, BOB).await, (0, 0), "per wallet");
    top_up(&store, scope, BOB, 7).await;
    assert_eq!(balance(&store, scope, BOB).await, (7, 0));
    assert_ledger_agrees(&store, scope, &[ALICE, BOB], 1_507, 0).await;

    // Another asset is another balance.
    let other_asset =
        CreditKey::new(ALICE, NETWORK, "0x0000000000000000000000000000000000000001").unwrap();
    store
        .top_up(scope, &other_asset, units(3), None)
        .await
        .unwrap();
    let other = store.credit_balance(scope, &other_asset).await.unwrap();
    assert_eq!(other.available, units(3));
    assert_eq!(balance(&store, scope, ALICE).await, (1_500, 0));

    // Refused, and nothing written.
    let err = store
        .top_up(scope, &key(ALICE), Amount::ZERO, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    let err = store
        .top_up(
            TenantScope::trusted(TenantId::new()),
            &key(ALICE),
            units(5),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound, "{err:?}");
    assert_ledger_agrees(&store, scope, &[ALICE, BOB], 1_507, 0).await;
}

pub async fn a_settlement_tops_up_once(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Prepaid Acme").await;
    let globex = tenant(&store, "Prepaid Globex").await;
    let scope = TenantScope::trusted(acme);
    // A confirmed settlement of 1000 units on NETWORK in ASSET.
    let settlement = seed_settlement_for(&store, acme).await;

    let first = store
        .top_up(scope, &key(ALICE), units(900), Some(settlement))
        .await
        .unwrap();
    assert_eq!(first.settlement_id, Some(settlement));
    let again = store
        .top_up(scope, &key(ALICE), units(900), Some(settlement))
        .await
        .unwrap();
    assert_eq!(again, first, "a retried top-up answers the first");
    assert_eq!(balance(&store, scope, ALICE).await, (900, 0));

    // The same settlement for another wallet or amount conflicts.
    for (wallet, amount) in [(BOB, 900), (ALICE, 800)] {
        let err = store
            .top_up(scope, &key(wallet), units(amount), Some(settlement))
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            ErrorCode::Conflict,
            "{wallet} {amount}: {err:?}"
        );
    }

    // Concurrent retries of one settlement's top-up add credit once.
    let second = seed_settlement_for(&store, acme).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .top_up(scope, &key(BOB), units(1_000), Some(second))
                    .await
            })
        })
        .collect();
    let mut transfers = Vec::new();
    for task in tasks {
        transfers.push(task.await.unwrap().expect("top up").transfer_id);
    }
    transfers.dedup();
    assert_eq!(transfers.len(), 1, "one transfer for the settlement");
    assert_eq!(balance(&store, scope, BOB).await, (1_000, 0));

    // Settlements that cannot pay for the top-up.
    let third = seed_settlement_for(&store, acme).await;
    let elsewhere = CreditKey::new(ALICE, "eip155:8453", ASSET).unwrap();
    let unconfirmed = SettlementId::new();
    store
        .claim_settlement(NewSettlement {
            id: unconfirmed,
            tenant_id: acme,
            key: AuthorizationKey::new(NETWORK, ASSET, ALICE, &format!("0x{}", "c1".repeat(32)))
                .unwrap(),
            pay_to: "0x4444444444444444444444444444444444444444".to_owned(),
            amount: units(1_000),
            valid_after: 0,
            valid_before: 1,
            payload: "{}".to_owned(),
            requirements: "{}".to_owned(),
            payment_identifier: None,
            kind: SettlementKind::Exact,
            escrow: None,
            created_at: time::now(),
        })
        .await
        .unwrap();
    let refused = [
        (
            scope,
            key(ALICE),
            1_001,
            Some(third),
            ErrorCode::InvalidInput,
        ),
        (scope, elsewhere, 10, Some(third), ErrorCode::InvalidInput),
        (
            scope,
            key(ALICE),
            10,
            Some(unconfirmed),
            ErrorCode::Conflict,
        ),
        (
            scope,
            key(ALICE),
            10,
            Some(SettlementId::new()),
            ErrorCode::NotFound,
        ),
        (
            TenantScope::trusted(globex),
            key(ALICE),
            10,
            Some(third),
            ErrorCode::NotFound,
        ),
    ];
    for (scope, key, amount, settlement, code) in refused {
        let err = store
            .top_up(scope, &key, units(amount), settlement)
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{key:?} {amount} {settlement:?}: {err:?}");
    }
    assert_ledger_agrees(&store, scope, &[ALICE, BOB], 1_900, 0).await;
    assert_eq!(
        balance(&store, TenantScope::trusted(globex), ALICE).await,
        (0, 0)
    );
}

pub async fn commit_spends_the_actual_amount_and_returns_the_rest(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Usage Acme").await;
    let scope = TenantScope::trusted(acme);
    top_up(&store, scope, ALICE, 100).await;

    let before = time::now();
    let held = reserve(&store, scope, ALICE, 30).await;
    assert_eq!(held.tenant_id, acme);
    assert_eq!(held.key, key(ALICE));
    assert_eq!(held.amount, units(30));
    assert_eq!(held.state, CreditReservationState::Pending);
    assert_eq!((held.committed_amount, held.resolved_at), (None, None));
    assert!(held.created_at >= before);
    assert_eq!(
        store
            .find_credit_reservation(scope, held.id)
            .await
            .unwrap()
            .as_ref(),
        Some(&held)
    );
    assert_eq!(balance(&store, scope, ALICE).await, (70, 30));
    assert_ledger_agrees(&store, scope, &[ALICE], 100, 0).await;

    // More than reserved is refused, and changes nothing.
    let err = store.commit(scope, held.id, units(31)).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    assert_eq!(balance(&store, scope, ALICE).await, (70, 30));

    // Less than reserved: the rest returns.
    let committed = store.commit(scope, held.id, units(12)).await.unwrap();
    assert_eq!(committed.state, CreditReservationState::Committed);
    assert_eq!(committed.committed_amount, Some(units(12)));
    assert!(
        committed
            .resolved_at
            .is_some_and(|at| at >= held.created_at)
    );
    assert_eq!((committed.id, committed.amount), (held.id, held.amount));
    assert_eq!(balance(&store, scope, ALICE).await, (88, 0));
    assert_ledger_agrees(&store, scope, &[ALICE], 100, 12).await;

    // All of it.
    let held = reserve(&store, scope, ALICE, 20).await;
    store.commit(scope, held.id, units(20)).await.unwrap();
    assert_eq!(balance(&store, scope, ALICE).await, (68, 0));
    assert_ledger_agrees(&store, scope, &[ALICE], 100, 32).await;

    // Nothing: the call cost nothing, and the reservation is still committed, not released.
    let held = reserve(&store, scope, ALICE, 10).await;
    let free = store.commit(scope, held.id, Amount::ZERO).await.unwrap();
    assert_eq!(free.state, CreditReservationState::Committed);
    assert_eq!(free.committed_amount, Some(Amount::ZERO));
    assert_eq!(balance(&store, scope, ALICE).await, (68, 0));

    // The whole balance.
    let held = reserve(&store, scope, ALICE, 68).await;
    assert_eq!(balance(&store, scope, ALICE).await, (0, 68));
    store.commit(scope, held.id, units(68)).await.unwrap();
    assert_eq!(balance(&store, scope, ALICE).await, (0, 0));
    assert_ledger_agrees(&store, scope, &[ALICE], 100, 100).await;
}

pub async fn release_returns_everything(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Release Acme").await;
    let scope = TenantScope::trusted(acme);
    top_up(&store, scope, ALICE, 50).await;
    let first = reserve(&store, scope, ALICE, 20).await;
    let second = reserve(&store, scope, ALICE, 25).await;
    assert_eq!(balance(&store, scope, ALICE).await, (5, 45));

    let released = store.release(scope, first.id).await.unwrap();
    assert_eq!(released.state, CreditReservationState::Released);
    assert_eq!(released.committed_amount, None);
    assert!(released.resolved_at.is_some());
    assert_eq!(balance(&store, scope, ALICE).await, (25, 25));
    assert_ledger_agrees(&store, scope, &[ALICE], 50, 0).await;

    store.release(scope, second.id).await.unwrap();
    assert_eq!(balance(&store, scope, ALICE).await, (50, 0));
    assert_ledger_agrees(&store, scope, &[ALICE], 50, 0).await;
    // What was released can be reserved again.
    reserve(&store, scope, ALICE, 50).await;
    assert_eq!(balance(&store, scope, ALICE).await, (0, 50));
}

pub async fn a_reservation_resolves_once(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Once Acme").await;
    let scope = TenantScope::trusted(acme);
    top_up(&store, scope, ALICE, 100).await;

    let committed = reserve(&store, scope, ALICE, 40).await;
    let first = store.commit(scope, committed.id, units(15)).await.unwrap();
    assert_eq!(
        store.commit(scope, committed.id, units(15)).await.unwrap(),
        first,
        "a retried commit answers the first"
    );
    for err in [
        store
            .commit(scope, committed.id, units(16))
            .await
            .unwrap_err(),
        store.release(scope, committed.id).await.unwrap_err(),
    ] {
        assert_eq!(err.code(), ErrorCode::Conflict, "{err:?}");
    }
    assert_eq!(balance(&store, scope, ALICE).await, (85, 0));

    let released = reserve(&store, scope, ALICE, 30).await;
    let first = store.release(scope, released.id).await.unwrap();
    assert_eq!(store.release(scope, released.id).await.unwrap(), first);
    let err = store
        .commit(scope, released.id, units(30))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict);
    assert_eq!(balance(&store, scope, ALICE).await, (85, 0));
    assert_eq!(
        store
            .find_credit_reservation(scope, released.id)
            .await
            .unwrap(),
        Some(first),
        "the first outcome stands"
    );

    // Racing resolutions of one reservation: exactly one outcome applies.
    let raced = reserve(&store, scope, ALICE, 50).await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    store.commit(scope, raced.id, units(50)).await
                } else {
                    store.release(scope, raced.id).await
                }
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(reservation) => outcomes.push(reservation.state),
            Err(err) => assert_eq!(err.code(), ErrorCode::Conflict, "{err:?}"),
        }
    }
    outcomes.dedup();
    assert_eq!(outcomes.len(), 1, "every success saw the same outcome");
    let spent = if outcomes[0] == CreditReservationState::Committed {
        65
    } else {
        15
    };
    assert_eq!(balance(&store, scope, ALICE).await, (100 - spent, 0));
    assert_ledger_agrees(&store, scope, &[ALICE], 100, spent).await;

    let err = store
        .commit(scope, CreditReservationId::new(), units(1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
    let err = store
        .release(scope, CreditReservationId::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
}

pub async fn reserving_more_than_available_writes_nothing(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Short Acme").await;
    let scope = TenantScope::trusted(acme);
    let err = store
        .reserve(scope, &key(ALICE), units(1))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        ErrorCode::InsufficientCredit,
        "no balance at all"
    );
    assert_eq!(err.code().http_status(), 402);

    top_up(&store, scope, ALICE, 10).await;
    let held = reserve(&store, scope, ALICE, 4).await;
    let ledger_before = store.account_balances(scope).await.unwrap();
    for amount in [7, 11, u128::MAX] {
        let err = store
            .reserve(scope, &key(ALICE), units(amount))
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InsufficientCredit, "{amount}");
    }
    let err = store
        .reserve(scope, &key(ALICE), Amount::ZERO)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    assert_eq!(balance(&store, scope, ALICE).await, (6, 4));
    assert_eq!(
        store.account_balances(scope).await.unwrap(),
        ledger_before,
        "no transfer was written"
    );
    // Exactly what is available is fine.
    reserve(&store, scope, ALICE, 6).await;
    store.release(scope, held.id).await.unwrap();
    assert_eq!(balance(&store, scope, ALICE).await, (4, 6));
    assert_ledger_agrees(&store, scope, &[ALICE], 10, 0).await;
}

pub async fn credit_is_per_tenant(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Isolated Acme").await;
    let globex = tenant(&store, "Isolated Globex").await;
    let (acme_scope, globex_scope) = (TenantScope::trusted(acme), TenantScope::trusted(globex));
    top_up(&store, acme_scope, ALICE, 100).await;
    assert_eq!(balance(&store, globex_scope, ALICE).await, (0, 0));
    let err = store
        .reserve(globex_scope, &key(ALICE), units(1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InsufficientCredit);

    let held = reserve(&store, acme_scope, ALICE, 60).await;
    assert_eq!(
        store
            .find_credit_reservation(globex_scope, held.id)
            .await
            .unwrap(),
        None
    );
    for err in [
        store
            .commit(globex_scope, held.id, units(1))
            .await
            .unwrap_err(),
        store.release(globex_scope, held.id).await.unwrap_err(),
    ] {
        assert_eq!(err.code(), ErrorCode::NotFound, "{err:?}");
    }
    assert_eq!(
        store
            .find_credit_reservation(acme_scope, held.id)
            .await
            .unwrap()
            .map(|r| r.state),
        Some(CreditReservationState::Pending),
        "untouched by the other tenant"
    );

    top_up(&store, globex_scope, ALICE, 5).await;
    assert_eq!(balance(&store, globex_scope, ALICE).await, (5, 0));
    assert_eq!(balance(&store, acme_scope, ALICE).await, (40, 60));
    assert!(
        store
            .account_balances(globex_scope)
            .await
            .unwrap()
            .iter()
            .all(|b| b.account.tenant_id == globex)
    );
    assert_ledger_agrees(&store, acme_scope, &[ALICE], 100, 0).await;
    assert_ledger_agrees(&store, globex_scope, &[ALICE], 5, 0).await;
}

/// The no-overdraft guarantee: 1,000 reservations of 10 race, as real tasks, against a balance
/// that covers 500 of them.
pub async fn a_thousand_concurrent_reservations_never_overdraw(store: Arc<dyn Store>) {
    const CALLS: usize = 1_000;
    const COVERED: usize = 500;
    const EACH: u128 = 10;
    let acme = tenant(&store, "Race Credit Acme").await;
    let scope = TenantScope::trusted(acme);
    let funded = COVERED as u128 * EACH;
    top_up(&store, scope, ALICE, funded).await;
    // Bob's balance shares the tenant's accounts and must not move.
    top_up(&store, scope, BOB, 30).await;

    let started = Instant::now();
    let tasks: Vec<_> = (0..CALLS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.reserve(scope, &key(ALICE), units(EACH)).await })
        })
        .collect();
    let (mut held, mut refused) = (Vec::new(), 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(reservation) => held.push(reservation),
            Err(err) if err.code() == ErrorCode::InsufficientCredit => refused += 1,
            Err(err) => panic!("a reservation failed otherwise than insufficient_credit: {err:?}"),
        }
    }
    eprintln!(
        "{} concurrent reservations on {}: {} held, {} insufficient_credit, in {:?}",
        CALLS,
        store.backend(),
        held.len(),
        refused,
        started.elapsed()
    );
    assert_eq!(held.len(), COVERED, "exactly as many as the balance covers");
    assert_eq!(refused, CALLS - COVERED);
    let mut ids: Vec<_> = held.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), COVERED, "distinct reservations");
    assert_eq!(
        balance(&store, scope, ALICE).await,
        (0, funded),
        "the balance ends at zero, all of it held"
    );
    assert_eq!(balance(&store, scope, BOB).await, (30, 0));
    assert_ledger_agrees(&store, scope, &[ALICE, BOB], funded + 30, 0).await;
    let err = store
        .reserve(scope, &key(ALICE), units(1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InsufficientCredit);

    // Resolve them concurrently too: half committed for 7 of their 10, half released.
    let tasks: Vec<_> = held
        .iter()
        .enumerate()
        .map(|(i, reservation)| {
            let store = store.clone();
            let id = reservation.id;
            tokio::spawn(async move {
                if i % 2 == 0 {
                    store.commit(scope, id, units(7)).await
                } else {
                    store.release(scope, id).await
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("resolve");
    }
    let spent = (COVERED as u128 / 2) * 7;
    assert_eq!(
        balance(&store, scope, ALICE).await,
        (funded - spent, 0),
        "what was not spent came back"
    );
    assert_ledger_agrees(&store, scope, &[ALICE, BOB], funded + 30, spent).await;
}

pub async fn stale_reservations_are_listed_oldest_first(store: Arc<dyn Store>) {
    let acme = tenant(&store, "Stale Acme").await;
    let globex = tenant(&store, "Stale Globex").await;
    let (a, g) = (TenantScope::trusted(acme), TenantScope::trusted(globex));
    top_up(&store, a, ALICE, 100).await;
    top_up(&store, g, ALICE, 100).await;
    let first = reserve(&store, a, ALICE, 10).await;
    let second = reserve(&store, g, ALICE, 20).await;
    let resolved = reserve(&store, a, ALICE, 30).await;
    store.release(a, resolved.id).await.unwrap();
    let cut = purser_domain::time::now() + chrono::Duration::seconds(1);
    let stale = |before, limit| {
        let store = store.clone();
        async move {
            store
                .stale_credit_reservations(before, limit)
                .await
                .unwrap()
                .into_iter()
                .filter(|r| r.tenant_id == acme || r.tenant_id == globex)
                .map(|r| r.id)
                .collect::<Vec<_>>()
        }
    };
    // Pending ones of every tenant, oldest first; resolved ones never.
    assert_eq!(stale(cut, 1_000).await, vec![first.id, second.id]);
    assert!(
        stale(first.created_at, 1_000).await.is_empty(),
        "only those made before the bound"
    );
    let one = store.stale_credit_reservations(cut, 1).await.unwrap();
    assert_eq!(one.len(), 1);
    store.commit(a, first.id, units(5)).await.unwrap();
    assert_eq!(stale(cut, 1_000).await, vec![second.id]);
}
