//! The delegated checks over gRPC, with a real tonic client over HTTP/2 to the test Purser's
//! main listener, on both backend pairs: `purser.access.v1.AccessService` (`Check`, `Settle`)
//! and Envoy's `envoy.service.auth.v3.Authorization/Check`, spoken on the wire as Envoy's
//! `ext_authz` filter speaks it (Envoy itself is not run). Payments are signed by the official
//! x402 client (`tests/interop/sdk-sign.mjs`) and settle on the devnet.

use std::collections::HashMap;

use alloy::primitives::U256;
use base64::Engine as _;
use prost::Message as _;
use purser_domain::money::Amount;
use purser_gateway::grpc::proto::envoy::service::auth::v3 as envoy;
use purser_gateway::grpc::proto::google::rpc;
use purser_gateway::grpc::proto::purser::access::v1 as access;
use serde_json::{Value, json};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use crate::harness::{Backends, on_both_backend_pairs};
use crate::interop::{Interop, NETWORK, PRICE, assert_same_address, is_tx_hash, run_script};

on_both_backend_pairs!(
    grpc_access_service_checks_and_settles,
    envoy_ext_authz_checks_and_settles,
    grpc_entitlement_service_answers_grants_and_credit,
);

type AccessClient = access::access_service_client::AccessServiceClient<Channel>;
type EnvoyClient = envoy::authorization_client::AuthorizationClient<Channel>;

/// The origin of the merchant's API that the tests price; it is never called.
const API: &str = "https://weather.example";

/// A channel to the app's main listener: HTTP/2 with prior knowledge, the same port as HTTP/1.
async fn channel(fx: &Interop) -> Channel {
    Channel::from_shared(fx.app.base.clone())
        .unwrap()
        .connect()
        .await
        .expect("connect to the main listener over HTTP/2")
}

/// `message` with the key in its metadata, as Envoy's `grpc_service.initial_metadata` sends it.
fn with_key<T>(message: T, key: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {key}").parse().expect("a metadata value"),
    );
    request
}

/// Asserts that `status` has `code` and carries Purser's error code `reason`, both in the
/// details (`google.rpc.ErrorInfo`) and in the `purser-error-code` trailer.
#[track_caller]
fn assert_error(status: &Status, code: Code, reason: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    let details = rpc::Status::decode(status.details()).expect("google.rpc.Status details");
    assert_eq!(details.code, code as i32);
    assert_eq!(details.details.len(), 1, "{details:?}");
    let any = &details.details[0];
    assert_eq!(any.type_url, "type.googleapis.com/google.rpc.ErrorInfo");
    let info = rpc::ErrorInfo::decode(any.value.as_slice()).expect("an ErrorInfo");
    assert_eq!(info.domain, "purser");
    assert_eq!(info.reason, reason, "{status:?}");
    assert_eq!(
        status
            .metadata()
            .get("purser-error-code")
            .and_then(|v| v.to_str().ok()),
        Some(reason),
        "{status:?}"
    );
}

/// Signs a payment for the challenge `payment_required` with the official x402 client; the
/// `PAYMENT-SIGNATURE` header.
async fn sign(fx: &Interop, payment_required: &str) -> String {
    let mut env = fx.script_env(PRICE);
    env.push(("X402_PAYMENT_REQUIRED", payment_required.to_owned()));
    let out = run_script("sdk-sign.mjs", &env).await;
    assert_same_address(&out["payer"], fx.payer().address());
    out["paymentSignature"]
        .as_str()
        .unwrap_or_else(|| panic!("no paymentSignature: {out}"))
        .to_owned()
}

/// Asserts that the challenge header asks for the published price, for `url`.
#[track_caller]
fn assert_prices(payment_required: &str, url: &str) {
    let required = purser_x402::header::decode_payment_required(payment_required)
        .expect("a PAYMENT-REQUIRED header");
    assert_eq!(required.resource.url, url);
    assert_eq!(required.accepts.len(), 1, "{required:?}");
    assert_eq!(required.accepts[0].amount, Amount::from_atomic(PRICE));
    assert_eq!(required.accepts[0].network.to_string(), NETWORK);
}

/// The JSON of an answer body.
#[track_caller]
fn json_body(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

async fn grpc_access_service_checks_and_settles(backends: Backends) {
    let fx = Interop::start(backends).await;
    fx.publish(&format!("{API}/weather/:city"), "Weather").await;
    let mut client = AccessClient::new(channel(&fx).await);
    let url = format!("{API}/weather/lisbon");
    let question = |headers: HashMap<String, String>| access::CheckRequest {
        method: "GET".into(),
        url: url.clone(),
        resource: String::new(),
        headers,
    };

    // The key is required, and must be a real one.
    let status = client
        .check(Request::new(question(HashMap::new())))
        .await
        .unwrap_err();
    assert_error(&status, Code::Unauthenticated, "unauthenticated");
    let status = client
        .check(with_key(
            question(HashMap::new()),
            "psk_0000000000000000_nope",
        ))
        .await
        .unwrap_err();
    assert_error(&status, Code::Unauthenticated, "invalid_api_key");

    // A URL no published resource of the tenant answers.
    let status = client
        .check(with_key(
            access::CheckRequest {
                url: format!("{API}/elsewhere"),
                ..question(HashMap::new())
            },
            &fx.key,
        ))
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "not_found");

    // Unpaid: denied with the 402 to send, its challenge carrying the price.
    let answer = client
        .check(with_key(question(HashMap::new()), &fx.key))
        .await
        .unwrap()
        .into_inner();
    let Some(access::check_response::Decision::Deny(deny)) = answer.decision else {
        panic!("an unpaid request is denied: {answer:?}");
    };
    assert_eq!(deny.status, 402);
    let payment_required = &deny.headers["payment-required"];
    assert_prices(payment_required, &url);
    assert_eq!(json_body(&deny.body)["x402Version"], 1, "the v1 challenge");

    // Paid by the official client: allowed, naming the payer.
    let signature = sign(&fx, payment_required).await;
    let paid = HashMap::from([("PAYMENT-SIGNATURE".to_owned(), signature)]);
    let answer = client
        .check(with_key(question(paid.clone()), &fx.key))
        .await
        .unwrap()
        .into_inner();
    let Some(access::check_response::Decision::Allow(allow)) = answer.decision else {
        panic!("a paid request is allowed: {answer:?}");
    };
    assert_same_address(&json!(allow.payer), fx.payer().address());
    assert!(!allow.settle_token.is_empty());

    // The same payment again, before it is even settled: a replay.
    let answer = client
        .check(with_key(question(paid), &fx.key))
        .await
        .unwrap()
        .into_inner();
    let Some(access::check_response::Decision::Deny(replay)) = answer.decision else {
        panic!("a replay is denied: {answer:?}");
    };
    assert_eq!(replay.status, 409);
    assert_eq!(
        json_body(&replay.body)["error"]["code"],
        "payment_already_used"
    );

    // Settled once served: the transfer is on the chain and the response gets its header.
    let merchant_before = fx.balance(fx.merchant()).await;
    let status = client
        .settle(with_key(
            access::SettleRequest {
                settle_token: "not-a-token".into(),
            },
            &fx.key,
        ))
        .await
        .unwrap_err();
    assert_error(&status, Code::InvalidArgument, "invalid_input");
    let status = client
        .settle(Request::new(access::SettleRequest {
            settle_token: allow.settle_token.clone(),
        }))
        .await
        .unwrap_err();
    assert_error(&status, Code::Unauthenticated, "unauthenticated");
    let answer = client
        .settle(with_key(
            access::SettleRequest {
                settle_token: allow.settle_token,
            },
            &fx.key,
        ))
        .await
        .unwrap()
        .into_inner();
    let Some(access::settle_response::Outcome::Settled(settled)) = answer.outcome else {
        panic!("the payment settles: {answer:?}");
    };
    assert!(is_tx_hash(&settled.transaction), "{settled:?}");
    assert!(!settled.pending, "{settled:?}");
    assert_eq!(settled.network, NETWORK);
    assert_same_address(&json!(settled.payer), fx.payer().address());
    assert_eq!(
        json_body(&settled.response)["transaction"],
        settled.transaction.as_str()
    );
    let receipt =
        purser_x402::header::decode_payment_response(&settled.headers["payment-response"])
            .expect("a PAYMENT-RESPONSE header");
    assert!(receipt.success, "{receipt:?}");
    assert_eq!(receipt.transaction, settled.transaction);
    fx.assert_transaction_succeeded(&settled.transaction).await;
    assert_eq!(
        fx.balance(fx.merchant()).await,
        merchant_before + U256::from(PRICE)
    );
    fx.app.stop().await;
}

async fn envoy_ext_authz_checks_and_settles(backends: Backends) {
    let fx = Interop::start(backends).await;
    let weather = fx.publish(&format!("{API}/weather/:city"), "Weather").await;
    let mut client = EnvoyClient::new(channel(&fx).await);
    // What Envoy sends for `GET https://weather.example/weather/porto`.
    let question = |path: &str, headers: &[(&str, &str)], context: &[(&str, &str)]| {
        let mut all = HashMap::from([
            (":authority".to_owned(), "weather.example".to_owned()),
            (":method".to_owned(), "GET".to_owned()),
            (":path".to_owned(), path.to_owned()),
            (":scheme".to_owned(), "https".to_owned()),
            ("x-purser-payer".to_owned(), "0xforged".to_owned()),
        ]);
        all.extend(
            headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        envoy::CheckRequest {
            attributes: Some(envoy::AttributeContext {
                request: Some(envoy::attribute_context::Request {
                    http: Some(envoy::attribute_context::HttpRequest {
                        method: "GET".into(),
                        headers: all,
                        path: path.into(),
                        host: "weather.example".into(),
                        scheme: "https".into(),
                    }),
                }),
                context_extensions: context
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            }),
        }
    };
    let denied = |answer: envoy::CheckResponse| {
        let status = answer.status.expect("a status");
        assert_eq!(status.code, Code::PermissionDenied as i32, "{status:?}");
        let Some(envoy::check_response::HttpResponse::DeniedResponse(denied)) =
            answer.http_response
        else {
            panic!("a denied response: {:?}", answer.http_response);
        };
        let headers: HashMap<String, String> = denied
            .headers
            .iter()
            .map(|h| {
                let h = h.header.as_ref().expect("a header");
                (h.key.clone(), h.value.clone())
            })
            .collect();
        let http_status = denied.status.expect("an HTTP status").code;
        (
            status.message,
            http_status,
            headers,
            json_body(&denied.body),
        )
    };
    let allowed = |answer: envoy::CheckResponse| {
        assert_eq!(answer.status.expect("a status").code, Code::Ok as i32);
        let Some(envoy::check_response::HttpResponse::OkResponse(ok)) = answer.http_response else {
            panic!("an ok response: {:?}", answer.http_response);
        };
        ok
    };
    let header =
        |options: &[purser_gateway::grpc::proto::envoy::config::core::v3::HeaderValueOption],
         name: &str| {
            options
                .iter()
                .filter_map(|o| o.header.as_ref())
                .find(|h| h.key == name)
                .map(|h| h.value.clone())
        };

    // The key is required.
    let status = client
        .check(Request::new(question("/weather/porto", &[], &[])))
        .await
        .unwrap_err();
    assert_error(&status, Code::Unauthenticated, "unauthenticated");

    // A path no resource prices: denied with Purser's 404.
    let answer = client
        .check(with_key(question("/nowhere", &[], &[]), &fx.key))
        .await
        .unwrap()
        .into_inner();
    let (reason, http_status, _, body) = denied(answer);
    assert_eq!((reason.as_str(), http_status), ("not_found", 404));
    assert_eq!(body["error"]["code"], "not_found");

    // Unpaid: the 402 with its challenge, for the client.
    let url = format!("{API}/weather/porto");
    let answer = client
        .check(with_key(question("/weather/porto", &[], &[]), &fx.key))
        .await
        .unwrap()
        .into_inner();
    let (reason, http_status, headers, body) = denied(answer);
    assert_eq!((reason.as_str(), http_status), ("payment_required", 402));
    let payment_required = headers["payment-required"].clone();
    assert_prices(&payment_required, &url);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body["x402Version"], 1);

    // A route may name its resource (`purser_resource`): the path is then not matched.
    let weather = weather.to_string();
    let answer = client
        .check(with_key(
            question(
                "/v2/forecast",
                &[],
                &[("purser_resource", weather.as_str())],
            ),
            &fx.key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(denied(answer).1, 402);

    // Paid: settled before Envoy forwards, as Envoy cannot settle after its upstream.
    let merchant_before = fx.balance(fx.merchant()).await;
    let signature = sign(&fx, &payment_required).await;
    let paid = [("payment-signature", signature.as_str())];
    let ok = allowed(
        client
            .check(with_key(question("/weather/porto", &paid, &[]), &fx.key))
            .await
            .unwrap()
            .into_inner(),
    );
    let payer = header(&ok.headers, "x-purser-payer").expect("x-purser-payer for the upstream");
    assert_same_address(&json!(payer), fx.payer().address());
    assert!(
        ok.headers.iter().all(|h| h.append_action == 2),
        "headers overwrite the client's (the forged x-purser-payer): {ok:?}"
    );
    for name in ["payment-signature", "x-payment", "x-purser-settle"] {
        assert!(ok.headers_to_remove.iter().any(|h| h == name), "{name}");
    }
    let receipt = header(&ok.response_headers_to_add, "payment-response")
        .expect("payment-response for the client");
    let receipt = purser_x402::header::decode_payment_response(&receipt).unwrap();
    assert!(receipt.success, "{receipt:?}");
    fx.assert_transaction_succeeded(&receipt.transaction).await;
    assert_eq!(
        fx.balance(fx.merchant()).await,
        merchant_before + U256::from(PRICE)
    );

    // The same payment again: the 409 for the client.
    let answer = client
        .check(with_key(question("/weather/porto", &paid, &[]), &fx.key))
        .await
        .unwrap()
        .into_inner();
    let (reason, http_status, _, body) = denied(answer);
    assert_eq!(
        (reason.as_str(), http_status),
        ("payment_already_used", 409)
    );
    assert_eq!(body["error"]["code"], "payment_already_used");

    // `purser_settle: after`: verified only; the upstream gets a token and settles after
    // serving (here through the HTTP API, which takes the token's JSON).
    let after = [("purser_settle", "after")];
    let status = client
        .check(with_key(
            question("/weather/porto", &[], &[("purser_settle", "later")]),
            &fx.key,
        ))
        .await
        .unwrap_err();
    assert_error(&status, Code::InvalidArgument, "invalid_input");
    let signature = sign(&fx, &payment_required).await;
    let ok = allowed(
        client
            .check(with_key(
                question(
                    "/weather/porto",
                    &[("payment-signature", signature.as_str())],
                    &after,
                ),
                &fx.key,
            ))
            .await
            .unwrap()
            .into_inner(),
    );
    assert!(ok.response_headers_to_add.is_empty(), "nothing settled yet");
    assert_eq!(
        fx.balance(fx.merchant()).await,
        merchant_before + U256::from(PRICE)
    );
    let token = header(&ok.headers, "x-purser-settle").expect("x-purser-settle for the upstream");
    let token: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .expect("base64url"),
    )
    .expect("the settle object's JSON");
    let settled: Value = reqwest::Client::new()
        .post(fx.app.url("/v1/access/settle"))
        .bearer_auth(&fx.key)
        .json(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settled["settled"], true, "{settled}");
    let tx = settled["response"]["transaction"].as_str().unwrap();
    fx.assert_transaction_succeeded(tx).await;
    assert_eq!(
        fx.balance(fx.merchant()).await,
        merchant_before + U256::from(2 * PRICE)
    );
    fx.app.stop().await;
}

/// `purser.entitlement.v1.EntitlementService`: a wallet without a session is denied with the
/// 402, a granted wallet is let in, credit is held, committed and released, and bad input fails
/// with its code.
async fn grpc_entitlement_service_answers_grants_and_credit(backends: Backends) {
    use purser_domain::auth::TenantScope;
    use purser_domain::credits::CreditKey;
    use purser_domain::entitlement::RepeatAccess;
    use purser_gateway::grpc::proto::purser::entitlement::v1 as entitlement;

    let fx = Interop::start(backends).await;
    let url = format!("{API}/forecast/lisbon");
    let policy = RepeatAccess {
        group: None,
        duration_seconds: None,
        uses: Some(1),
    };
    let resource = fx
        .publish_with(
            &format!("{API}/forecast/:city"),
            "Forecast",
            "Forecasts, once more after paying",
            Some(policy.clone()),
        )
        .await;
    let scope = TenantScope::trusted(fx.tenant);
    let wallet = format!("{:#x}", fx.payer().address());
    let session = fx
        .app
        .platform
        .gateway
        .entitlements()
        .sessions()
        .issue(fx.tenant, &wallet, NETWORK, purser_domain::time::now())
        .unwrap()
        .0;
    let mut client =
        entitlement::entitlement_service_client::EntitlementServiceClient::new(channel(&fx).await);
    let question = |proof: Option<entitlement::check_request::Proof>, reserve: &str| {
        with_key(
            entitlement::CheckRequest {
                resource: String::new(),
                method: "GET".into(),
                url: url.clone(),
                proof,
                reserve: reserve.into(),
                network: String::new(),
            },
            &fx.key,
        )
    };
    let by_session = || Some(entitlement::check_request::Proof::Session(session.clone()));
    let decision = |response: entitlement::CheckResponse| response.decision.expect("a decision");

    // No proof: denied, with the 402 to send.
    let denied = decision(client.check(question(None, "")).await.unwrap().into_inner());
    let entitlement::check_response::Decision::Deny(deny) = denied else {
        panic!("not denied: {denied:?}");
    };
    assert_eq!(deny.reason, "sign_in_required");
    let answer = deny.answer.expect("the 402");
    assert_eq!(answer.status, 402);
    assert_prices(&answer.headers["payment-required"], &url);

    // One use granted: let in once, then denied.
    fx.app
        .platform
        .gateway
        .entitlements()
        .grant(
            scope,
            resource,
            &wallet,
            None,
            &policy,
            purser_domain::time::now(),
        )
        .await
        .unwrap();
    let allowed = decision(
        client
            .check(question(by_session(), ""))
            .await
            .unwrap()
            .into_inner(),
    );
    let entitlement::check_response::Decision::Allow(allow) = allowed else {
        panic!("not allowed: {allowed:?}");
    };
    assert_eq!(allow.wallet, wallet);
    let Some(entitlement::allow::By::Grant(grant)) = allow.by else {
        panic!("not by a grant: {allow:?}");
    };
    assert_eq!(grant.uses_left, Some(0));
    let spent = decision(
        client
            .check(question(by_session(), ""))
            .await
            .unwrap()
            .into_inner(),
    );
    assert!(
        matches!(&spent, entitlement::check_response::Decision::Deny(d) if d.reason == "no_entitlement"),
        "{spent:?}"
    );

    // Credit: held, committed for less, then a second hold released.
    let asset = fx
        .chain()
        .token()
        .address
        .to_checksum(None)
        .to_ascii_lowercase();
    let key = CreditKey::new(&wallet, NETWORK, &asset).unwrap();
    fx.app
        .store
        .top_up(scope, &key, Amount::from_atomic(1_000), None)
        .await
        .unwrap();
    let hold = |client: &mut entitlement::entitlement_service_client::EntitlementServiceClient<
        Channel,
    >| {
        let request = question(by_session(), "600");
        let mut client = client.clone();
        async move {
            match decision(client.check(request).await.unwrap().into_inner()) {
                entitlement::check_response::Decision::Allow(entitlement::Allow {
                    by: Some(entitlement::allow::By::Reservation(held)),
                    ..
                }) => Ok(held),
                other => Err(other),
            }
        }
    };
    let held = hold(&mut client).await.expect("credit held");
    assert_eq!(
        (held.amount.as_str(), held.state.as_str()),
        ("600", "pending")
    );
    let refused = hold(&mut client).await.expect_err("400 left, 600 asked");
    assert!(
        matches!(&refused, entitlement::check_response::Decision::Deny(d) if d.reason == "insufficient_credit"),
        "{refused:?}"
    );
    let committed = client
        .commit_reservation(with_key(
            entitlement::CommitReservationRequest {
                id: held.id.clone(),
                amount: "250".into(),
            },
            &fx.key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(committed.state, "committed");
    assert_eq!(committed.committed_amount, "250");
    let again = hold(&mut client).await.expect("750 left");
    let released = client
        .release_reservation(with_key(
            entitlement::ReleaseReservationRequest { id: again.id },
            &fx.key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(released.state, "released");
    let balance = fx.app.store.credit_balance(scope, &key).await.unwrap();
    assert_eq!(balance.available, Amount::from_atomic(750));

    // Bad input and a second resolution fail with their codes.
    let status = client
        .release_reservation(with_key(
            entitlement::ReleaseReservationRequest { id: held.id },
            &fx.key,
        ))
        .await
        .unwrap_err();
    assert_error(&status, Code::Aborted, "conflict");
    let status = client
        .check(question(by_session(), "lots"))
        .await
        .unwrap_err();
    assert_error(&status, Code::InvalidArgument, "invalid_input");
    let status = client
        .check(Request::new(entitlement::CheckRequest {
            url: url.clone(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_error(&status, Code::Unauthenticated, "unauthenticated");

    // The access service lets a signed-in wallet with a grant in and hands it a session token
    // for the sign-in.
    let reports = fx
        .publish_with(
            &format!("{API}/reports/:id"),
            "Reports",
            "Reports, paid once per wallet",
            Some(RepeatAccess {
                group: None,
                duration_seconds: None,
                uses: None,
            }),
        )
        .await;
    fx.app
        .platform
        .gateway
        .entitlements()
        .grant(
            scope,
            reports,
            &wallet,
            None,
            &RepeatAccess {
                group: None,
                duration_seconds: None,
                uses: None,
            },
            purser_domain::time::now(),
        )
        .await
        .unwrap();
    let mut access = AccessClient::new(channel(&fx).await);
    let report_url = format!("{API}/reports/q3");
    let ask = |headers: HashMap<String, String>| {
        with_key(
            access::CheckRequest {
                method: "GET".into(),
                url: report_url.clone(),
                resource: String::new(),
                headers,
            },
            &fx.key,
        )
    };
    let challenge = access
        .check(ask(HashMap::new()))
        .await
        .unwrap()
        .into_inner();
    let Some(access::check_response::Decision::Deny(answer)) = challenge.decision else {
        panic!("not denied: {challenge:?}");
    };
    let required =
        purser_x402::header::decode_payment_required(&answer.headers["payment-required"]).unwrap();
    let header = crate::entitlement::sign_in_header(&required, fx.payer());
    let signed_in = access
        .check(ask(HashMap::from([("sign-in-with-x".to_owned(), header)])))
        .await
        .unwrap()
        .into_inner();
    let Some(access::check_response::Decision::Allow(allow)) = signed_in.decision else {
        panic!("not allowed: {signed_in:?}");
    };
    assert!(!allow.grant_id.is_empty(), "{allow:?}");
    assert!(
        allow.settle_token.is_empty(),
        "nothing to settle: {allow:?}"
    );
    let claims = fx
        .app
        .platform
        .gateway
        .entitlements()
        .sessions()
        .verify(&allow.session, purser_domain::time::now())
        .expect("a session token for the sign-in");
    assert_eq!(claims.sub, wallet);
}
