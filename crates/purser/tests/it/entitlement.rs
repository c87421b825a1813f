//! Repeat access through the gateway, with the official client: a resource that grants repeat
//! access offers Sign-In-With-X in its 402; a wallet that paid once signs in and comes back
//! without paying while its grant holds; a contract wallet (ERC-1271) signs in too; a replayed
//! sign-in is refused.

use purser_domain::auth::TenantScope;
use purser_domain::entitlement::{GrantFilter, GrantScope, NewGrant, RepeatAccess};
use purser_domain::page::PageRequest;
use serde_json::{Value, json};

use crate::harness::{Backends, on_both_backend_pairs};
use crate::interop::{Interop, NETWORK, PRICE, Upstream, assert_same_address, run_script};

on_both_backend_pairs!(
    sdk_client_pays_once_then_signs_in,
    contract_wallet_signs_in_with_erc1271,
    delegated_checks_let_signed_in_wallets_through,
    one_payment_settled_twice_grants_once,
    entitlement_checks_answer_grants_credit_and_denials,
    sdk_client_signs_in_to_the_native_layer,
    sdk_client_tops_up_credit_then_spends_it,
    a_top_up_payment_answers_only_its_own_top_up,
);

/// The gateway in front of `upstream`, pricing `/weather/*` with a resource that grants
/// `policy`; answers the gateway's base URL and the resource.
async fn gateway(
    fx: &Interop,
    upstream: &Upstream,
    policy: RepeatAccess,
) -> (String, purser_domain::id::ResourceId) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let resource = fx
        .publish_with(
            &format!("{base}/weather/:city"),
            "Weather",
            "Weather, paid once per wallet",
            Some(policy),
        )
        .await;
    fx.serve_gateway(listener, upstream, &[("/weather/*", resource)]);
    (base, resource)
}

fn requests(call: &Value) -> Vec<(bool, bool)> {
    call["requests"]
        .as_array()
        .unwrap_or_else(|| panic!("no requests in {call}"))
        .iter()
        .map(|r| (r["signIn"] == true, r["payment"] == true))
        .collect()
}

async fn sdk_client_pays_once_then_signs_in(backends: Backends) {
    let fx = Interop::start(backends).await;
    let upstream = Upstream::start().await;
    let policy = RepeatAccess {
        group: None,
        duration_seconds: Some(3600),
        uses: Some(2),
    };
    let (base, resource) = gateway(&fx, &upstream, policy).await;
    let merchant_before = fx.balance(fx.merchant()).await;

    // The 402 offers a sign-in bound to this origin, with a fresh nonce each time.
    let challenge = |body: reqwest::Response| {
        let header = body.headers()["payment-required"]
            .to_str()
            .unwrap()
            .to_owned();
        purser_x402::header::decode_payment_required(&header).unwrap()
    };
    let url = format!("{base}/weather/lisbon");
    let first = challenge(reqwest::get(&url).await.unwrap());
    let second = challenge(reqwest::get(&url).await.unwrap());
    let offer = |required: &purser_x402::PaymentRequired| {
        required.extensions.as_ref().unwrap()["sign-in-with-x"].clone()
    };
    let (a, b) = (offer(&first), offer(&second));
    assert_eq!(a["info"]["domain"], base.trim_start_matches("http://"));
    assert_eq!(a["info"]["uri"], url.as_str());
    assert_eq!(a["supportedChains"][0]["chainId"], NETWORK);
    assert_ne!(
        a["info"]["nonce"], b["info"]["nonce"],
        "nonces are single use"
    );
    assert_eq!(upstream.calls(), 0);

    let mut env = fx.script_env(PRICE);
    env.push(("X402_URL", url.clone()));
    let out = run_script("sdk-siwx.mjs", &env).await;
    let calls = out["calls"].as_array().unwrap();
    // Round 1: the sign-in finds nothing bought, so the client pays.
    assert_eq!(calls[0]["status"], 200, "{out}");
    assert_eq!(
        requests(&calls[0]),
        vec![(false, false), (true, false), (false, true)],
        "{out}"
    );
    let settled = &calls[0]["paymentResponse"];
    assert_eq!(settled["success"], true, "{out}");
    fx.assert_transaction_succeeded(settled["transaction"].as_str().unwrap())
        .await;
    // Round 2: the sign-in alone lets it in; nothing is paid.
    assert_eq!(calls[1]["status"], 200, "{out}");
    assert_eq!(calls[1]["body"]["city"], "lisbon", "{out}");
    assert!(calls[1]["paymentResponse"].is_null(), "{out}");
    assert_eq!(
        requests(&calls[1]),
        vec![(false, false), (true, false)],
        "{out}"
    );
    assert_eq!(
        fx.balance(fx.merchant()).await,
        merchant_before + alloy::primitives::U256::from(PRICE),
        "paid exactly once"
    );
    // The upstream ran twice, for the paying wallet, and never saw the sign-in.
    assert_eq!(upstream.calls(), 2);
    for seen in upstream.seen.lock().unwrap().iter() {
        assert!(!seen.contains_key("x-purser-session"));
        // One spelling per wallet: lower case, as after a sign-in (below), though the payment
        // named it checksummed.
        assert_eq!(
            seen["x-purser-payer"].to_str().unwrap(),
            format!("{:#x}", fx.payer().address())
        );
        assert!(!seen.contains_key("sign-in-with-x"));
    }
    // The same sign-in again: its nonce is spent, so it is a 402, and the upstream is not called.
    assert_eq!(out["replay"]["status"], 402, "{out}");
    assert_eq!(upstream.calls(), 2);

    // The sign-in came back with a session token: sent instead of signing in, it spends the
    // grant's second use; then the grant is used up and the token alone gets a 402.
    assert!(
        calls[0]["session"].is_null(),
        "a paid request gets no session: {out}"
    );
    let session = calls[1]["session"]
        .as_str()
        .expect("a session token")
        .to_owned();
    let with_session = || {
        reqwest::Client::new()
            .get(&url)
            .header("x-purser-session", &session)
            .send()
    };
    let again = with_session().await.unwrap();
    assert_eq!(again.status(), 200);
    assert!(!again.headers().contains_key("payment-response"));
    assert_eq!(upstream.calls(), 3);
    assert_eq!(with_session().await.unwrap().status(), 402);
    assert_eq!(upstream.calls(), 3);
    // A token that was tampered with is not a session.
    let forged = reqwest::Client::new()
        .get(&url)
        .header("x-purser-session", format!("{session}x"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 402);
    // The keys that sign sessions are public, for resource servers that verify offline.
    let jwks: Value = reqwest::get(fx.app.url("/.well-known/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519", "{jwks}");

    // The grant: two uses of two, so it no longer holds.
    let grants = fx
        .app
        .store
        .list_grants(
            TenantScope::trusted(fx.tenant),
            GrantFilter::default(),
            purser_domain::time::now(),
            PageRequest::first(10).unwrap(),
        )
        .await
        .unwrap()
        .items;
    assert_eq!(grants.len(), 1, "{grants:?}");
    let grant = &grants[0];
    assert_eq!(grant.scope, GrantScope::Resource(resource));
    assert_eq!(
        grant.wallet,
        format!("{:#x}", fx.payer().address()),
        "the grant is the payer's"
    );
    assert_eq!((grant.uses_count, grant.uses_allowed), (2, Some(2)));
    assert!(!grant.holds_at(purser_domain::time::now()));
}

async fn contract_wallet_signs_in_with_erc1271(backends: Backends) {
    let fx = Interop::start(backends).await;
    let upstream = Upstream::start().await;
    let policy = RepeatAccess {
        group: Some("weather".into()),
        duration_seconds: None,
        uses: None,
    };
    let (base, _) = gateway(&fx, &upstream, policy).await;
    // A wallet contract owned by the payer's key; its grant (for the group) was bought before.
    let wallet = fx
        .chain()
        .deploy_smart_wallet(fx.payer().address())
        .await
        .unwrap();
    let wallet_hex = format!("{wallet:#x}");
    fx.app
        .store
        .create_grant(NewGrant {
            tenant_id: fx.tenant,
            scope: GrantScope::Group("weather".into()),
            wallet: wallet_hex.clone(),
            settlement_id: None,
            expires_at: None,
            uses_allowed: None,
        })
        .await
        .unwrap();

    let mut env = fx.script_env(PRICE);
    env.push(("X402_URL", format!("{base}/weather/porto")));
    env.push(("X402_SIGN_IN_ONLY", "1".into()));
    env.push(("X402_WALLET", wallet.to_checksum(None)));
    let out = run_script("sdk-siwx.mjs", &env).await;
    let call = &out["calls"][0];
    assert_eq!(call["status"], 200, "{out}");
    assert_eq!(requests(call), vec![(false, false), (true, false)], "{out}");
    assert_eq!(upstream.calls(), 1);
    assert_eq!(
        upstream.seen.lock().unwrap()[0]["x-purser-payer"],
        wallet_hex.as_str(),
        "the upstream is told the contract wallet came in"
    );

    // The owner's key signing in as itself holds no grant: after the sign-in the client is left
    // with the 402 and, having no way to pay registered, gives up; the API is not reached.
    let mut env = fx.script_env(PRICE);
    env.push(("X402_URL", format!("{base}/weather/faro")));
    env.push(("X402_SIGN_IN_ONLY", "1".into()));
    env.push(("X402_WALLET", fx.payer().address().to_checksum(None)));
    let out = run_script("sdk-siwx.mjs", &env).await;
    assert!(
        out["calls"][0]["threw"]
            .as_str()
            .is_some_and(|e| e.contains("payment")),
        "{out}"
    );
    assert_eq!(upstream.calls(), 1);
}

/// The `SIGN-IN-WITH-X` header a wallet sends in answer to the 402 `required`, signed by `key`.
pub(crate) fn sign_in_header(
    required: &purser_x402::PaymentRequired,
    key: &purser_devnet::TestAccount,
) -> String {
    let offer: purser_x402::siwx::SiwxOffer =
        serde_json::from_value(required.extensions.as_ref().unwrap()["sign-in-with-x"].clone())
            .unwrap();
    let payload =
        purser_entitlement::siwx::answer(&offer, &offer.supported_chains[0], &key.signer())
            .unwrap();
    purser_x402::siwx::encode(&payload)
}

async fn delegated_checks_let_signed_in_wallets_through(backends: Backends) {
    let fx = Interop::start(backends).await;
    let url = "https://api.example.com/reports/q3";
    let resource = fx
        .publish_with(
            "https://api.example.com/reports/:id",
            "Reports",
            "Reports, paid once per wallet for two more reads",
            Some(RepeatAccess {
                group: None,
                duration_seconds: None,
                uses: Some(2),
            }),
        )
        .await;
    let client = reqwest::Client::new();
    let check = |headers: Value| {
        client
            .post(fx.app.url("/v1/access/check"))
            .bearer_auth(&fx.key)
            .json(&json!({ "method": "GET", "url": url, "headers": headers }))
            .send()
    };
    let challenge = |answer: &Value| {
        purser_x402::header::decode_payment_required(
            answer["headers"]["payment-required"].as_str().unwrap(),
        )
        .unwrap()
    };

    // No payment, no sign-in: the 402 offers both.
    let answer: Value = check(json!({})).await.unwrap().json().await.unwrap();
    assert_eq!(answer["decision"], "deny", "{answer}");
    let required = challenge(&answer);
    assert!(
        required
            .extensions
            .as_ref()
            .unwrap()
            .contains_key("sign-in-with-x")
    );
    // A wallet that holds no grant signs in: still the 402 (it may pay).
    let header = sign_in_header(&required, fx.payer());
    let answer: Value = check(json!({ "sign-in-with-x": header }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["decision"], "deny", "{answer}");
    assert_eq!(answer["status"], 402, "{answer}");

    // It pays once (as the grant the payment buys, made the way a settlement makes it, which
    // drops the "no grant" the sign-in above left in the cache): then each sign-in is let in,
    // twice.
    let grant = fx
        .app
        .platform
        .gateway
        .entitlements()
        .grant(
            TenantScope::trusted(fx.tenant),
            resource,
            &format!("{:#x}", fx.payer().address()),
            None,
            &RepeatAccess {
                group: None,
                duration_seconds: None,
                uses: Some(2),
            },
            purser_domain::time::now(),
        )
        .await
        .unwrap();
    let mut required = challenge(&answer);
    for round in 0..2 {
        let header = sign_in_header(&required, fx.payer());
        let answer: Value = check(json!({ "sign-in-with-x": header.clone() }))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["decision"], "allow", "round {round}: {answer}");
        assert_same_address(&answer["payer"], fx.payer().address());
        assert_eq!(answer["grant"], grant.id.to_string());
        assert!(answer["settle"].is_null(), "nothing to settle: {answer}");
        assert!(
            answer["session"].is_string(),
            "a session for the sign-in: {answer}"
        );
        // The same header again: its nonce is spent.
        let again: Value = check(json!({ "sign-in-with-x": header }))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(again["decision"], "deny", "{again}");
        required = challenge(&again);
    }
    // Two uses, both spent: the next sign-in is refused, and the store agrees.
    let header = sign_in_header(&required, fx.payer());
    let answer: Value = check(json!({ "sign-in-with-x": header }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["decision"], "deny", "{answer}");
    let stored = fx
        .app
        .store
        .find_grant(TenantScope::trusted(fx.tenant), grant.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.uses_count, 2);
}

async fn one_payment_settled_twice_grants_once(backends: Backends) {
    let fx = Interop::start(backends).await;
    let url = "https://api.example.com/maps/lisbon";
    fx.publish_with(
        "https://api.example.com/maps/:city",
        "Maps",
        "Maps, paid once per wallet",
        Some(RepeatAccess {
            group: None,
            duration_seconds: None,
            uses: None,
        }),
    )
    .await;
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        client
            .post(fx.app.url(path))
            .bearer_auth(&fx.key)
            .json(&body)
            .send()
    };
    let check = |headers: Value| {
        post(
            "/v1/access/check",
            json!({ "method": "GET", "url": url, "headers": headers }),
        )
    };
    let denied: Value = check(json!({})).await.unwrap().json().await.unwrap();
    let challenge = denied["headers"]["payment-required"].as_str().unwrap();
    // The official client signs for the challenge, as @x402/fetch does before it retries.
    let mut env = fx.script_env(PRICE);
    env.push(("X402_PAYMENT_REQUIRED", challenge.to_owned()));
    let signed = run_script("sdk-sign.mjs", &env).await;
    let payment = signed["paymentSignature"].as_str().unwrap();
    let allowed: Value = check(json!({ "payment-signature": payment }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(allowed["decision"], "allow", "{allowed}");
    // The resource server settles, then settles again (a retry after a lost answer).
    for attempt in 0..2 {
        let settled: Value = post("/v1/access/settle", allowed["settle"].clone())
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(settled["settled"], true, "attempt {attempt}: {settled}");
    }
    let grants = fx
        .app
        .store
        .list_grants(
            TenantScope::trusted(fx.tenant),
            GrantFilter::default(),
            purser_domain::time::now(),
            PageRequest::first(10).unwrap(),
        )
        .await
        .unwrap()
        .items;
    assert_eq!(grants.len(), 1, "one payment, one grant: {grants:?}");
    assert_eq!(grants[0].wallet, format!("{:#x}", fx.payer().address()));
    // The grant names the settlement that bought it (and would be revoked should it fail).
    let settlement = grants[0].settlement_id.expect("the grant's settlement");
    let settlement = fx
        .app
        .store
        .find_settlement(TenantScope::trusted(fx.tenant), settlement)
        .await
        .unwrap()
        .expect("the tenant's settlement");
    assert_eq!(settlement.key.payer, grants[0].wallet);
}

/// `POST /v1/entitlements/check` and the reservation endpoints, with every kind of answer, bad
/// input, and another merchant's key.
async fn entitlement_checks_answer_grants_credit_and_denials(backends: Backends) {
    use purser_domain::credits::CreditKey;
    use purser_domain::money::Amount;

    let fx = Interop::start(backends).await;
    let url = "https://api.example.com/reports/q3";
    let resource = fx
        .publish_with(
            "https://api.example.com/reports/:id",
            "Reports",
            "Reports, for an hour after paying",
            Some(RepeatAccess {
                group: None,
                duration_seconds: Some(3600),
                uses: None,
            }),
        )
        .await;
    let scope = TenantScope::trusted(fx.tenant);
    let payer = format!("{:#x}", fx.payer().address());
    let sessions = fx.app.platform.gateway.entitlements().sessions();
    let now = purser_domain::time::now();
    let session = |wallet: &str| sessions.issue(fx.tenant, wallet, NETWORK, now).unwrap().0;
    let client = reqwest::Client::new();
    let post = |path: &str, key: &str, body: Value| {
        client
            .post(fx.app.url(path))
            .bearer_auth(key)
            .json(&body)
            .send()
    };
    let check = |body: Value| async {
        let response = post("/v1/entitlements/check", &fx.key, body).await.unwrap();
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()
    };
    let denied = |answer: &Value, reason: &str| {
        assert_eq!(answer["decision"], "deny", "{answer}");
        assert_eq!(answer["reason"], reason, "{answer}");
        assert_eq!(answer["status"], 402, "{answer}");
        let required = purser_x402::header::decode_payment_required(
            answer["headers"]["payment-required"].as_str().unwrap(),
        )
        .unwrap();
        assert_eq!(required.error.as_deref(), Some(reason));
        assert_eq!(
            required.resource.url, url,
            "the 402 names the URL asked for"
        );
        assert!(
            required
                .extensions
                .as_ref()
                .is_some_and(|e| e.contains_key("sign-in-with-x")),
            "the 402 offers a sign-in: {answer}"
        );
        required
    };

    // Nobody signed in; then a wallet with nothing.
    let answer = check(json!({ "method": "GET", "url": url })).await;
    let required = denied(&answer, "sign_in_required");
    let answer = check(json!({ "method": "GET", "url": url, "session": session(&payer) })).await;
    denied(&answer, "no_entitlement");

    // Proofs that do not hold: each denial names why.
    let expired = sessions
        .issue(
            fx.tenant,
            &payer,
            NETWORK,
            now - std::time::Duration::from_secs(7200),
        )
        .unwrap()
        .0;
    let foreign = sessions
        .issue(purser_domain::id::TenantId::new(), &payer, NETWORK, now)
        .unwrap()
        .0;
    let stranger = purser_entitlement::Sessions::new(
        purser_entitlement::SessionKeys::generate().unwrap(),
        Default::default(),
    )
    .issue(fx.tenant, &payer, NETWORK, now)
    .unwrap()
    .0;
    for (token, reason) in [
        (expired.as_str(), "session_expired"),
        (foreign.as_str(), "session_invalid"),
        (stranger.as_str(), "session_invalid"),
        ("not.a.jwt", "session_invalid"),
    ] {
        let answer =
            check(json!({ "resource": resource.to_string(), "url": url, "session": token })).await;
        denied(&answer, reason);
    }
    let answer = check(json!({ "method": "GET", "url": url, "signIn": "%%%" })).await;
    denied(&answer, "malformed_sign_in");

    // The wallet pays once: its grant admits a session, and a fresh sign-in (which earns a
    // session token of its own; its nonce is burned).
    let grant = fx
        .app
        .platform
        .gateway
        .entitlements()
        .grant(
            scope,
            resource,
            &payer,
            None,
            &RepeatAccess {
                group: None,
                duration_seconds: Some(3600),
                uses: None,
            },
            now,
        )
        .await
        .unwrap();
    let answer = check(json!({ "method": "GET", "url": url, "session": session(&payer) })).await;
    assert_eq!(answer["decision"], "allow", "{answer}");
    assert_eq!(answer["reason"], "grant");
    assert_eq!(answer["wallet"], payer);
    assert_eq!(answer["grant"]["id"], grant.id.to_string());
    assert!(answer["grant"]["usesLeft"].is_null());
    assert!(answer["session"].is_null());
    let header = sign_in_header(&required, fx.payer());
    let answer = check(json!({ "method": "GET", "url": url, "signIn": header.clone() })).await;
    assert_eq!(answer["decision"], "allow", "{answer}");
    let fresh = answer["session"]
        .as_str()
        .expect("a session for the sign-in");
    assert_eq!(sessions.verify(fresh, now).unwrap().sub, payer);
    let again = check(json!({ "method": "GET", "url": url, "signIn": header })).await;
    denied(&again, "sign_in_nonce_invalid");

    // Revoked through GraphQL: the next check is denied (the instance that revokes forgets at
    // once).
    let token = fx.app.operator_token.clone();
    fx.app
        .graphql_ok(
            &token,
            "mutation($id: ID!, $t: ID) { revokeGrant(id: $id, tenantId: $t) { id } }",
            json!({ "id": grant.id.to_string(), "t": fx.tenant.to_string() }),
        )
        .await;
    let answer = check(json!({ "method": "GET", "url": url, "session": session(&payer) })).await;
    denied(&answer, "no_entitlement");

    // Prepaid credit: a usage-priced call holds up to 3,000 of 5,000, commits 1,200; the next
    // holds 3,000 and is released; a hold beyond the balance is denied.
    let asset = fx
        .chain()
        .token()
        .address
        .to_checksum(None)
        .to_ascii_lowercase();
    let key = CreditKey::new(&payer, NETWORK, &asset).unwrap();
    fx.app
        .store
        .top_up(scope, &key, Amount::from_atomic(5_000), None)
        .await
        .unwrap();
    let reserve = |amount: &str| {
        check(json!({
            "method": "GET", "url": url, "session": session(&payer), "reserve": amount,
        }))
    };
    let held = reserve("3000").await;
    assert_eq!(held["decision"], "allow", "{held}");
    assert_eq!(held["reason"], "credit");
    assert_eq!(held["reservation"]["amount"], "3000");
    assert_eq!(held["reservation"]["network"], NETWORK);
    assert_eq!(held["reservation"]["state"], "pending");
    let id = held["reservation"]["id"].as_str().unwrap().to_owned();
    let commit = |id: &str, amount: &str| {
        post(
            &format!("/v1/entitlements/reservations/{id}/commit"),
            &fx.key,
            json!({ "amount": amount }),
        )
    };
    let too_much = commit(&id, "3001").await.unwrap();
    assert_eq!(too_much.status(), 400);
    let committed: Value = commit(&id, "1200").await.unwrap().json().await.unwrap();
    assert_eq!(committed["state"], "committed", "{committed}");
    assert_eq!(committed["committedAmount"], "1200");
    let repeated: Value = commit(&id, "1200").await.unwrap().json().await.unwrap();
    assert_eq!(repeated, committed, "a retried commit answers the same");
    let release_committed = post(
        &format!("/v1/entitlements/reservations/{id}/release"),
        &fx.key,
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(release_committed.status(), 409);
    let balance = fx.app.store.credit_balance(scope, &key).await.unwrap();
    assert_eq!(balance.available, Amount::from_atomic(3_800));

    let held = reserve("3000").await;
    let second = held["reservation"]["id"].as_str().unwrap().to_owned();
    let denied_now = reserve("1000").await;
    denied(&denied_now, "insufficient_credit");
    let released: Value = post(
        &format!("/v1/entitlements/reservations/{second}/release"),
        &fx.key,
        json!({}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(released["state"], "released", "{released}");
    let balance = fx.app.store.credit_balance(scope, &key).await.unwrap();
    assert_eq!(balance.available, Amount::from_atomic(3_800));
    assert_eq!(balance.reserved, Amount::ZERO);

    // Bad input, with its code.
    for (body, code) in [
        (json!({ "session": "x" }), "invalid_input"),
        (
            json!({ "url": url, "reserve": "-5", "session": "x" }),
            "invalid_input",
        ),
        (json!({ "url": url, "bogus": 1 }), "malformed_json"),
        (json!({ "resource": "not-an-id" }), "invalid_input"),
        (
            json!({ "url": "https://api.example.com/elsewhere" }),
            "not_found",
        ),
    ] {
        let response = post("/v1/entitlements/check", &fx.key, body.clone())
            .await
            .unwrap();
        assert!(response.status().is_client_error(), "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], code, "{body}: {error}");
    }

    // Another merchant's key finds neither the resource nor the reservations.
    let other = fx
        .app
        .store
        .create_tenant(purser_domain::tenant::NewTenant::new(
            purser_domain::tenant::TenantName::parse("Other").unwrap(),
            purser_domain::tenant::TenantKind::Merchant,
        ))
        .await
        .unwrap();
    let (record, other_key) = purser_domain::auth::mint_api_key(
        Some(other.id),
        purser_domain::auth::Role::ResourceServer,
        "other",
    )
    .unwrap();
    fx.app.store.insert_api_key(record).await.unwrap();
    let other_key = other_key.expose().to_owned();
    for body in [
        json!({ "resource": resource.to_string(), "session": session(&payer) }),
        json!({ "method": "GET", "url": url, "session": session(&payer) }),
    ] {
        let response = post("/v1/entitlements/check", &other_key, body)
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
    }
    let response = post(
        &format!("/v1/entitlements/reservations/{second}/release"),
        &other_key,
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 404);
    let response = client
        .post(fx.app.url("/v1/entitlements/check"))
        .json(&json!({ "resource": resource.to_string() }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "no key");
}

/// The example merchant app (the native layer, settling through Purser's facilitator over
/// HTTP): the official client pays once for a registry resource that grants repeat access;
/// Purser grants it when the payment settles; then the client signs in and the layer, asking
/// Purser's entitlement check, lets it in without paying.
async fn sdk_client_signs_in_to_the_native_layer(backends: Backends) {
    let fx = Interop::start(backends).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let forecast = fx
        .publish_with(
            &format!("{base}/forecast/:city"),
            "Forecast",
            "Forecasts, paid once per wallet for two more",
            Some(RepeatAccess {
                group: None,
                duration_seconds: Some(600),
                uses: Some(2),
            }),
        )
        .await;
    crate::interop::serve_example_merchant(&fx, listener, PRICE, forecast);
    let merchant_before = fx.balance(fx.merchant()).await;

    let url = format!("{base}/forecast/lisbon");
    let unpaid = reqwest::get(&url).await.unwrap();
    assert_eq!(unpaid.status(), 402);
    let required = purser_x402::header::decode_payment_required(
        unpaid.headers()["payment-required"].to_str().unwrap(),
    )
    .unwrap();
    assert_eq!(
        required.resource.url, url,
        "the 402 names the path asked for"
    );
    let sign_in = &required.extensions.as_ref().unwrap()["sign-in-with-x"];
    assert_eq!(sign_in["info"]["uri"], url.as_str(), "{sign_in}");

    let mut env = fx.script_env(PRICE);
    env.push(("X402_URL", url.clone()));
    let out = run_script("sdk-siwx.mjs", &env).await;
    let calls = out["calls"].as_array().unwrap();
    assert_eq!(calls[0]["status"], 200, "{out}");
    assert_eq!(
        requests(&calls[0]),
        vec![(false, false), (true, false), (false, true)],
        "the first round pays: {out}"
    );
    assert_eq!(calls[0]["paymentResponse"]["success"], true, "{out}");
    assert_eq!(calls[1]["status"], 200, "{out}");
    assert_eq!(
        requests(&calls[1]),
        vec![(false, false), (true, false)],
        "the second round signs in only: {out}"
    );
    assert_eq!(calls[1]["body"]["city"], "lisbon", "{out}");
    assert_same_address(&calls[1]["body"]["paid_by"], fx.payer().address());
    assert!(calls[1]["paymentResponse"].is_null(), "{out}");
    assert_eq!(
        fx.balance(fx.merchant()).await,
        merchant_before + alloy::primitives::U256::from(PRICE),
        "paid exactly once"
    );
    // The session token the sign-in earned spends the second use; then the grant is used up.
    let session = calls[1]["session"]
        .as_str()
        .expect("a session token")
        .to_owned();
    let with_session = || {
        reqwest::Client::new()
            .get(&url)
            .header("x-purser-session", &session)
            .send()
    };
    assert_eq!(with_session().await.unwrap().status(), 200);
    assert_eq!(with_session().await.unwrap().status(), 402);
}

/// Prepaid credit bought with x402: the official client pays `GET /v1/credits/top-up`, the
/// payer's balance grows by exactly the amount once however often the payment is presented, and
/// a usage-priced check then holds part of it. Both x402 versions pay.
async fn sdk_client_tops_up_credit_then_spends_it(backends: Backends) {
    use purser_domain::credits::CreditKey;
    use purser_domain::money::Amount;

    let fx = Interop::start(backends).await;
    // Publishing sets the merchant's payout address on the network.
    let resource = fx
        .publish("https://api.example.com/llm/complete", "Completions")
        .await;
    let scope = TenantScope::trusted(fx.tenant);
    let payer = format!("{:#x}", fx.payer().address());
    let asset = fx
        .chain()
        .token()
        .address
        .to_checksum(None)
        .to_ascii_lowercase();
    let key = CreditKey::new(&payer, NETWORK, &asset).unwrap();
    let top_up_url = |amount: u128| {
        fx.app.url(&format!(
            "/v1/credits/top-up?tenant={}&network={NETWORK}&amount={amount}",
            fx.tenant
        ))
    };
    let merchant_before = fx.balance(fx.merchant()).await;

    let mut available = 0;
    for (client, amount) in [("v2", 50_000u128), ("v1", 20_000)] {
        let mut env = fx.script_env(amount);
        env.push(("X402_URL", top_up_url(amount)));
        env.push(("X402_CLIENT", client.to_owned()));
        let out = run_script("sdk-pay-url.mjs", &env).await;
        assert_eq!(out["unpaid"]["status"], 402, "{client}: {out}");
        assert_eq!(out["paid"]["status"], 200, "{client}: {out}");
        let body = &out["paid"]["body"];
        available += amount;
        assert_eq!(body["status"], "credited", "{client}: {out}");
        assert_eq!(body["amount"], amount.to_string(), "{client}: {out}");
        assert_eq!(body["available"], available.to_string(), "{client}: {out}");
        assert_same_address(&body["wallet"], fx.payer().address());
        // The same payment again: the same top-up, nothing more.
        assert_eq!(out["replay"]["status"], 200, "{client}: {out}");
        assert_eq!(out["replay"]["body"]["settlementId"], body["settlementId"]);
        assert_eq!(
            out["replay"]["body"]["available"],
            available.to_string(),
            "{client}: credited once: {out}"
        );
    }
    assert_eq!(
        fx.balance(fx.merchant()).await,
        merchant_before + alloy::primitives::U256::from(available),
        "the merchant received what was credited"
    );
    let balance = fx.app.store.credit_balance(scope, &key).await.unwrap();
    assert_eq!(balance.available, Amount::from_atomic(available));

    // Spent by a usage-priced call: held through the entitlement check.
    let session = fx
        .app
        .platform
        .gateway
        .entitlements()
        .sessions()
        .issue(fx.tenant, &payer, NETWORK, purser_domain::time::now())
        .unwrap()
        .0;
    let held: Value = reqwest::Client::new()
        .post(fx.app.url("/v1/entitlements/check"))
        .bearer_auth(&fx.key)
        .json(&json!({ "resource": resource.to_string(), "session": session, "reserve": "60000" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(held["reason"], "credit", "{held}");
    let balance = fx.app.store.credit_balance(scope, &key).await.unwrap();
    assert_eq!(balance.available, Amount::from_atomic(available - 60_000));

    // Bad input, with its code; nothing is charged.
    let client = reqwest::Client::new();
    for (url, status, code) in [
        (top_up_url(0), 400, "invalid_input"),
        (
            fx.app.url(&format!(
                "/v1/credits/top-up?tenant={}&network=eip155:1&amount=5",
                fx.tenant
            )),
            404,
            "not_found",
        ),
        (
            fx.app.url(&format!(
                "/v1/credits/top-up?tenant={}&network={NETWORK}&amount=5",
                purser_domain::id::TenantId::new()
            )),
            404,
            "not_found",
        ),
        (
            fx.app.url("/v1/credits/top-up?tenant=x&network=y&amount=1"),
            400,
            "invalid_input",
        ),
        (
            // A token without its network is ambiguous.
            fx.app.url(&format!(
                "/v1/credits/top-up?tenant={}&amount=5&asset=0x0000000000000000000000000000000000000001",
                fx.tenant
            )),
            400,
            "invalid_input",
        ),
    ] {
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), status, "{url}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], code, "{url}: {error}");
    }
}

/// A top-up payment answers only the top-up it paid for: presented again for a top-up of
/// another amount, in either x402 version, it is refused with a 402 (the facilitator finds its
/// settlement settled for other requirements) and nothing is credited or moved; presented for
/// its own top-up, it answers the same credit.
async fn a_top_up_payment_answers_only_its_own_top_up(backends: Backends) {
    use purser_domain::credits::CreditKey;
    use purser_domain::money::Amount;

    let fx = Interop::start(backends).await;
    fx.publish("https://api.example.com/llm/complete", "Completions")
        .await;
    let scope = TenantScope::trusted(fx.tenant);
    let asset = format!("{:#x}", fx.chain().token().address);
    let payer = format!("{:#x}", fx.payer().address());
    let key = CreditKey::new(&payer, NETWORK, &asset).unwrap();
    let top_up_url = |amount: u128| {
        fx.app.url(&format!(
            "/v1/credits/top-up?tenant={}&network={NETWORK}&amount={amount}",
            fx.tenant
        ))
    };
    let client = reqwest::Client::new();
    let unpaid = client.get(top_up_url(30_000)).send().await.unwrap();
    assert_eq!(unpaid.status(), 402);
    let required = purser_x402::header::decode_payment_required(
        unpaid.headers()["payment-required"].to_str().unwrap(),
    )
    .unwrap();
    let v2 = fx.sign_for(&required, purser_devnet::payment::now() + 300);
    let paid = client
        .get(top_up_url(30_000))
        .header("payment-signature", &v2)
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 200);
    let paid: Value = paid.json().await.unwrap();
    assert_eq!(paid["status"], "credited", "{paid}");
    assert_eq!(paid["available"], "30000", "{paid}");
    // The same signed authorization as a v1 client sends it.
    let payload = purser_x402::header::decode_payment_signature(&v2).unwrap();
    let v1 = purser_x402::header::encode_json(&json!({
        "x402Version": 1,
        "scheme": "exact",
        "network": "base-sepolia",
        "payload": payload.payload,
    }));
    let merchant_before = fx.balance(fx.merchant()).await;

    for (what, header, value) in [("v2", "payment-signature", &v2), ("v1", "x-payment", &v1)] {
        let dearer = client
            .get(top_up_url(90_000))
            .header(header, value)
            .send()
            .await
            .unwrap();
        let status = dearer.status();
        let body = dearer.text().await.unwrap();
        assert_eq!(status, 402, "{what}: a dearer top-up is not paid: {body}");
        let own = client
            .get(top_up_url(30_000))
            .header(header, value)
            .send()
            .await
            .unwrap();
        assert_eq!(own.status(), 200, "{what}");
        let own: Value = own.json().await.unwrap();
        assert_eq!(own["status"], "credited", "{what}: {own}");
        assert_eq!(own["settlementId"], paid["settlementId"], "{what}: {own}");
        assert_eq!(own["available"], "30000", "{what}: credited once: {own}");
    }
    let balance = fx.app.store.credit_balance(scope, &key).await.unwrap();
    assert_eq!(balance.available, Amount::from_atomic(30_000));
    assert_eq!(fx.balance(fx.merchant()).await, merchant_before);
}
