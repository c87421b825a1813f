//! Interop with the official x402 SDK (`@x402/*` 2.27, pinned in `tests/interop`): the SDK's
//! clients and resource server, run by node as child processes, use Purser's facilitator
//! (`/facilitator/verify`, `/settle`, `/supported`), which runs in-process on both backend pairs
//! and settles on an anvil devnet of the test's own.
//!
//! The scripts live in `tests/interop` (found through `PURSER_INTEROP_DIR`, which
//! `cargo xtask test` sets, or next to this repository), take their inputs from the environment
//! and print one JSON line; the assertions are made here, on that line and on the chain.

use std::path::{Path, PathBuf};

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use purser::config::Config;
use purser_chain::config::RailConfig;
use purser_chain::rails::Rails;
use purser_chain::rpc::RpcPolicy;
use purser_devnet::{Devnet, DevnetChain, DevnetChainSpec, DevnetOptions, TestAccount};
use purser_domain::auth::{Role, TenantScope, mint_api_key};
use purser_domain::id::TenantId;
use purser_domain::ledger::AccountKind;
use purser_domain::money::Amount;
use purser_domain::tenant::{NewTenant, TenantKind, TenantName};
use serde_json::{Value, json};

pub(crate) use purser_testkit::interop::{interop_dir, run_script};

use crate::harness::{Backends, TestApp, on_both_backend_pairs};

/// The network the devnet's chain stands for (Base Sepolia).
pub(crate) const NETWORK: &str = "eip155:84532";

on_both_backend_pairs!(
    sdk_client_signs_and_purser_verifies_and_settles,
    sdk_express_server_uses_purser_and_fetch_pays_it,
    bazaar_clients_find_merchant_and_learned_resources,
    sdk_clients_pay_through_the_gateway,
    a_retry_with_its_payment_identifier_is_served_and_settled_once,
    sdk_client_pays_through_the_native_layer,
    sdk_client_pays_the_example_merchant,
);

// ---------------------------------------------------------------------------------------------
// Fixture: a devnet, Purser settling on it, a merchant tenant with a resource_server key (the
// nginx tests use it too).

pub(crate) struct Interop {
    // Declared first so the app stops before its chain goes away.
    pub(crate) app: TestApp,
    pub(crate) devnet: Devnet,
    pub(crate) tenant: TenantId,
    /// A `resource_server` key of the merchant tenant.
    pub(crate) key: String,
}

pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl Interop {
    pub(crate) async fn start(backends: Backends) -> Self {
        Self::start_with(backends, |_| {}).await
    }

    /// Like [`Self::start`], with `configure` applied to Purser's configuration.
    pub(crate) async fn start_with(
        backends: Backends,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        // Fail fast, before any chain starts, when the npm packages are missing.
        interop_dir();
        let devnet = Devnet::start(DevnetOptions {
            repo_root: Some(repo_root()),
            payer_accounts: 4,
            ..DevnetOptions::with_chains(vec![DevnetChainSpec::base_sepolia()])
        })
        .await
        .expect("start the devnet");
        let chain = &devnet.chains()[0];
        assert_eq!(chain.network(), NETWORK);
        let key_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            key_file.path(),
            devnet.accounts().settlement_signer.private_key_hex(),
        )
        .unwrap();
        let rail = RailConfig {
            confirmations: 1,
            receipt_timeout_seconds: 20,
            ..chain.rail_config(key_file.path())
        };
        let rails = Rails::open(&[rail], RpcPolicy::default())
            .await
            .expect("open the rail");
        drop(key_file);
        let mut config = Config::default();
        config.router.price_feeds = vec![fixed_eth_usd()];
        configure(&mut config);
        let app = TestApp::start_with_rails(backends, config, rails).await;
        let tenant = app
            .store
            .create_tenant(NewTenant::new(
                TenantName::parse("Interop Merchant").unwrap(),
                TenantKind::Merchant,
            ))
            .await
            .unwrap();
        let (record, token) =
            mint_api_key(Some(tenant.id), Role::ResourceServer, "interop tests").unwrap();
        app.store.insert_api_key(record).await.unwrap();
        Self {
            app,
            devnet,
            tenant: tenant.id,
            key: token.expose().to_owned(),
        }
    }

    pub(crate) fn chain(&self) -> &DevnetChain {
        &self.devnet.chains()[0]
    }

    pub(crate) fn payer(&self) -> &TestAccount {
        &self.devnet.accounts().payers[0]
    }

    pub(crate) fn merchant(&self) -> Address {
        self.devnet.accounts().payers[3].address()
    }

    pub(crate) async fn balance(&self, owner: Address) -> U256 {
        self.chain().balance_of(owner).await.expect("balanceOf")
    }

    /// The merchant's posted receivable in Purser's ledger.
    async fn receivable(&self) -> Amount {
        self.app
            .store
            .account_balances(TenantScope::trusted(self.tenant))
            .await
            .unwrap()
            .into_iter()
            .find(|b| b.account.kind == AccountKind::MerchantReceivable)
            .and_then(|b| b.posted_credit_balance())
            .unwrap_or(Amount::ZERO)
    }

    /// What every script is given: where Purser is, the key, the payer, the token, the price.
    pub(crate) fn script_env(&self, amount: u128) -> Vec<(&'static str, String)> {
        let token = self.chain().token();
        vec![
            ("PURSER_FACILITATOR_URL", self.app.url("/facilitator")),
            ("PURSER_API_KEY", self.key.clone()),
            ("X402_PAYER_KEY", self.payer().private_key_hex()),
            ("X402_NETWORK", NETWORK.to_owned()),
            ("X402_ASSET", token.address.to_checksum(None)),
            ("X402_ASSET_NAME", token.name.clone()),
            ("X402_ASSET_VERSION", token.version.clone()),
            ("X402_PAY_TO", self.merchant().to_checksum(None)),
            ("X402_AMOUNT", amount.to_string()),
        ]
    }

    /// Asserts that `tx` is mined on the devnet chain and succeeded.
    pub(crate) async fn assert_transaction_succeeded(&self, tx: &str) {
        let hash: B256 = tx
            .parse()
            .unwrap_or_else(|e| panic!("{tx} is not a hash: {e}"));
        let receipt = self
            .chain()
            .provider()
            .get_transaction_receipt(hash)
            .await
            .expect("eth_getTransactionReceipt")
            .unwrap_or_else(|| panic!("transaction {tx} is not on the chain"));
        assert!(receipt.status(), "transaction {tx} reverted: {receipt:?}");
        assert_eq!(
            receipt.to,
            Some(self.chain().token().address),
            "the settlement calls the token"
        );
        assert_eq!(
            receipt.from,
            self.devnet.accounts().settlement_signer.address(),
            "Purser's settlement signer sent it"
        );
        // Its gas is on the settlement exactly as the receipt says, with the router's decision.
        let settlements = self
            .app
            .store
            .list_settlements(
                TenantScope::trusted(self.tenant),
                purser_domain::page::PageRequest::first(100).unwrap(),
            )
            .await
            .unwrap();
        let settlement = settlements
            .items
            .iter()
            .find(|s| s.tx_hash.as_deref() == Some(tx))
            .unwrap_or_else(|| panic!("no settlement of {tx}"));
        let cost = settlement.network_cost.expect("the receipt's cost is kept");
        assert_eq!(
            cost.total.atomic(),
            u128::from(receipt.gas_used) * receipt.effective_gas_price
        );
        let decision: serde_json::Value = serde_json::from_str(
            settlement
                .route_decision
                .as_deref()
                .expect("a route decision"),
        )
        .unwrap();
        assert_eq!(decision["chosen"], NETWORK, "{decision}");
        // The tenant never set a policy: the default is what was in force.
        assert_eq!(decision["policy"]["strategy"], "cheapest", "{decision}");
        // The chosen rail's quote, with each part: execution and L1 add up to the estimate.
        let chosen = decision["rails"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["network"] == NETWORK)
            .unwrap();
        let part = |name: &str| -> u128 { chosen["cost"][name].as_str().unwrap().parse().unwrap() };
        assert_eq!(
            part("executionFee") + part("l1Fee") + part("operatorFee"),
            settlement.estimated_network_cost.unwrap().atomic(),
            "{decision}"
        );
        assert!(
            decision["rails"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["network"] == NETWORK),
            "{decision}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The tests.

async fn sdk_client_signs_and_purser_verifies_and_settles(backends: Backends) {
    let fx = Interop::start(backends).await;
    let amount: u128 = 12_345;
    let payer = fx.payer().address();
    let merchant = fx.merchant();
    let before = (fx.balance(payer).await, fx.balance(merchant).await);

    let out = run_script("sdk-facilitator.mjs", &fx.script_env(amount)).await;

    // The payload is the SDK's own (v2, EIP-3009), for the requirements it was given.
    let payload = &out["payload"];
    assert_eq!(payload["x402Version"], 2, "{payload}");
    assert_eq!(
        payload["accepted"]["amount"],
        amount.to_string(),
        "{payload}"
    );
    assert_eq!(
        payload["payload"]["authorization"]["value"],
        amount.to_string()
    );
    assert_same_address(&out["payer"], payer);

    // /supported lists the chain (v2 and its v1 name) and the signer.
    let supported = &out["supported"];
    let kinds = supported["kinds"].as_array().expect("kinds");
    assert!(
        kinds
            .iter()
            .any(|k| k["x402Version"] == 2 && k["scheme"] == "exact" && k["network"] == NETWORK),
        "{supported}"
    );
    assert!(
        kinds.iter().any(|k| k["x402Version"] == 1
            && k["scheme"] == "exact"
            && k["network"] == "base-sepolia"),
        "{supported}"
    );
    let signers = supported["signers"]["eip155:*"]
        .as_array()
        .expect("eip155 signers");
    let signer = fx.devnet.accounts().settlement_signer.address();
    assert!(
        signers
            .iter()
            .any(|s| s.as_str().and_then(|s| s.parse::<Address>().ok()) == Some(signer)),
        "{supported}"
    );

    // Verification succeeds and names the payer.
    let verify = &out["verify"];
    assert_eq!(verify["isValid"], true, "{verify}");
    assert_same_address(&verify["payer"], payer);

    // Failures are results, not thrown errors.
    let wrong = &out["verifyWrongAmount"];
    assert_eq!(wrong.get("threw"), None, "{wrong}");
    assert_eq!(wrong["isValid"], false, "{wrong}");
    assert_eq!(
        wrong["invalidReason"], "invalid_exact_evm_payload_authorization_value_mismatch",
        "{wrong}"
    );
    assert_same_address(&wrong["payer"], payer);
    let wrong = &out["settleWrongAmount"];
    assert_eq!(wrong.get("threw"), None, "{wrong}");
    assert_eq!(wrong["success"], false, "{wrong}");
    assert_eq!(
        wrong["errorReason"], "invalid_exact_evm_payload_authorization_value_mismatch",
        "{wrong}"
    );
    assert_eq!(wrong["transaction"], "", "{wrong}");
    assert_eq!(wrong["network"], NETWORK, "{wrong}");

    // Settlement succeeds (after the refused attempt with the same authorization).
    let settle = &out["settle"];
    assert_eq!(settle["success"], true, "{settle}");
    assert_eq!(settle["network"], NETWORK, "{settle}");
    assert_same_address(&settle["payer"], payer);
    let tx = settle["transaction"].as_str().expect("a transaction hash");
    assert!(is_tx_hash(tx), "{settle}");

    // Settling the same payload again answers the same success, without a second transfer.
    let again = &out["settleAgain"];
    assert_eq!(again.get("threw"), None, "{again}");
    assert_eq!(again["success"], true, "{again}");
    assert_eq!(again["transaction"], tx, "{again}");

    // Verifying it afterwards says the authorization is spent.
    let spent = &out["verifyAfterSettle"];
    assert_eq!(spent["isValid"], false, "{spent}");
    assert_eq!(
        spent["invalidReason"], "invalid_exact_evm_nonce_already_used",
        "{spent}"
    );

    // A caller without a key is refused with 401, which the SDK throws.
    let anonymous = &out["verifyWithoutKey"];
    assert_eq!(anonymous["threw"], true, "{anonymous}");
    assert!(
        anonymous["message"]
            .as_str()
            .is_some_and(|m| m.contains("401")),
        "{anonymous}"
    );

    // The chain and the ledger agree: exactly one transfer of `amount`.
    fx.assert_transaction_succeeded(tx).await;
    let after = (fx.balance(payer).await, fx.balance(merchant).await);
    assert_eq!(
        before.0 - after.0,
        U256::from(amount),
        "the payer paid once"
    );
    assert_eq!(
        after.1 - before.1,
        U256::from(amount),
        "the merchant was paid once"
    );
    assert_eq!(fx.receivable().await, Amount::from_atomic(amount));
    fx.app.stop().await;
}

async fn sdk_express_server_uses_purser_and_fetch_pays_it(backends: Backends) {
    let fx = Interop::start(backends).await;
    let amount: u128 = 25_000;
    let payer = fx.payer().address();
    let merchant = fx.merchant();
    let token = fx.chain().token().clone();
    let before = (fx.balance(payer).await, fx.balance(merchant).await);

    let out = run_script("sdk-express-fetch.mjs", &fx.script_env(amount)).await;

    // Without payment: 402 with the requirements in PAYMENT-REQUIRED.
    let unpaid = &out["unpaid"];
    assert_eq!(unpaid["status"], 402, "{unpaid}");
    assert!(
        unpaid["headers"]["payment-required"].is_string(),
        "{unpaid}"
    );
    let required = &unpaid["paymentRequired"];
    assert_eq!(required["x402Version"], 2, "{required}");
    let offer = &required["accepts"][0];
    assert_eq!(offer["scheme"], "exact", "{required}");
    assert_eq!(offer["network"], NETWORK, "{required}");
    assert_eq!(offer["amount"], amount.to_string(), "{required}");
    assert_same_address(&offer["asset"], token.address);
    assert_same_address(&offer["payTo"], merchant);
    assert_eq!(offer["extra"]["name"], token.name, "{required}");
    assert_eq!(offer["extra"]["version"], token.version, "{required}");

    // With @x402/fetch: paid, served, settled by Purser.
    let paid = &out["paid"];
    assert_eq!(paid["status"], 200, "{paid}");
    assert_eq!(
        paid["body"],
        json!({ "paid": true, "message": "hello from behind the paywall" }),
        "{paid}"
    );
    assert!(paid["headers"]["payment-response"].is_string(), "{paid}");
    let receipt = &paid["paymentResponse"];
    assert_eq!(receipt["success"], true, "{receipt}");
    assert_eq!(receipt["network"], NETWORK, "{receipt}");
    assert_same_address(&receipt["payer"], payer);
    let tx = receipt["transaction"].as_str().expect("a transaction hash");
    assert!(is_tx_hash(tx), "{receipt}");
    assert_eq!(out["signaturesSent"], 1, "one payment was signed: {out}");

    // The same PAYMENT-SIGNATURE again: Purser's verify finds the authorization spent, and the
    // server answers 402 with that reason instead of serving (or charging) twice.
    let replay = &out["replay"];
    assert_eq!(replay["status"], 402, "{replay}");
    assert_eq!(
        replay["paymentRequired"]["error"], "invalid_exact_evm_nonce_already_used",
        "{replay}"
    );
    assert_eq!(replay["paymentResponse"], Value::Null, "{replay}");

    fx.assert_transaction_succeeded(tx).await;
    let after = (fx.balance(payer).await, fx.balance(merchant).await);
    assert_eq!(
        before.0 - after.0,
        U256::from(amount),
        "the payer paid once"
    );
    assert_eq!(
        after.1 - before.1,
        U256::from(amount),
        "the merchant was paid once"
    );
    assert_eq!(fx.receivable().await, Amount::from_atomic(amount));
    fx.app.stop().await;
}

/// A merchant lists a resource; an @x402/express server declaring the bazaar extension is
/// paid through Purser and so cataloged; the SDK's discovery client finds both.
async fn bazaar_clients_find_merchant_and_learned_resources(backends: Backends) {
    let fx = Interop::start(backends).await;
    let token = fx.chain().token().clone();
    let merchant = fx.merchant().to_checksum(None);
    let registry = purser_registry::Registry::new(
        fx.app.store.clone(),
        fx.app.store.clone(),
        purser_registry::AssetCatalog::new([purser_registry::AssetInfo {
            network: NETWORK.into(),
            address: token.address.to_checksum(None),
            decimals: token.decimals,
            eip712_name: token.name.clone(),
            eip712_version: token.version.clone(),
            symbol: Some(token.symbol.clone()),
        }]),
    );
    let scope = TenantScope::trusted(fx.tenant);
    registry
        .set_payout_address(scope, NETWORK, &merchant)
        .await
        .unwrap();
    let listed = registry
        .create_resource(
            scope,
            purser_registry::ResourceDraft {
                kind: purser_domain::registry::ResourceKind::Http,
                url: "https://translate.example/v1/translate".into(),
                method: Some("POST".into()),
                tool: None,
                name: "Translation".into(),
                description: "Machine translation between 40 languages".into(),
                mime_type: Some("application/json".into()),
                service_name: None,
                tags: vec!["language".into()],
                icon_url: None,
                input_schema: Some(
                    json!({"type": "object", "properties": {"text": {"type": "string"}}}),
                ),
                output_schema: None,
                input_example: Some(json!({"text": "bom dia"})),
                output_example: None,
                body_type: None,
                price: purser_domain::registry::PriceSpec::Usd {
                    usd: "0.002".into(),
                },
                accepts: vec![purser_registry::AcceptDraft {
                    network: NETWORK.into(),
                    ..Default::default()
                }],
                max_timeout_seconds: None,
                repeat_access: None,
                escrow: None,
            },
            true,
        )
        .await
        .unwrap();

    let out = run_script("sdk-bazaar.mjs", &fx.script_env(30_000)).await;
    assert_eq!(out["paidStatus"], 200, "{out}");
    let base = out["base"].as_str().unwrap();
    let learned_url = format!("{base}/forecast/:day");

    let items = out["listed"]["items"].as_array().expect("items");
    assert_eq!(out["listed"]["x402Version"], 2, "{out}");
    assert_eq!(out["listed"]["pagination"]["total"], 2, "{out}");
    let urls: Vec<&str> = items
        .iter()
        .filter_map(|i| i["resource"].as_str())
        .collect();
    assert!(urls.contains(&learned_url.as_str()), "{urls:?}");
    assert!(urls.contains(&listed.url.as_str()), "{urls:?}");
    let learned = items
        .iter()
        .find(|i| i["resource"] == learned_url.as_str())
        .unwrap();
    assert_eq!(learned["type"], "http");
    assert_eq!(learned["accepts"][0]["amount"], "30000", "{learned}");
    assert_eq!(learned["serviceName"], "Interop Weather", "{learned}");
    assert_eq!(
        learned["extensions"]["bazaar"]["routeTemplate"], "/forecast/:day",
        "{learned}"
    );
    assert_eq!(
        learned["extensions"]["bazaar"]["info"]["input"]["method"], "GET",
        "{learned}"
    );
    let translation = items
        .iter()
        .find(|i| i["resource"] == listed.url.as_str())
        .unwrap();
    assert_eq!(
        translation["accepts"][0]["amount"], "2000",
        "$0.002 in 6 decimals"
    );
    assert_same_address(&translation["accepts"][0]["payTo"], fx.merchant());
    assert_eq!(
        translation["extensions"]["bazaar"]["info"]["input"]["body"],
        json!({"text": "bom dia"})
    );
    assert_eq!(
        out["byNetwork"]["items"].as_array().unwrap().len(),
        2,
        "{out}"
    );

    let found = |key: &str| -> Vec<&str> {
        out[key]["resources"]
            .as_array()
            .unwrap_or_else(|| panic!("{key}: {out}"))
            .iter()
            .map(|r| r["resource"].as_str().unwrap())
            .collect()
    };
    assert_eq!(found("searched"), [learned_url.as_str()]);
    assert_eq!(
        found("byField"),
        [learned_url.as_str()],
        "schema field names are searched"
    );
    assert_eq!(found("merchant"), [listed.url.as_str()]);
    assert_eq!(out["searched"]["pagination"]["cursor"], Value::Null);

    let malformed = &out["malformed"];
    assert_eq!(malformed["threw"], true, "{malformed}");
    assert!(
        malformed["message"].as_str().unwrap().contains("400"),
        "{malformed}"
    );
    fx.app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Helpers.

pub(crate) fn is_tx_hash(tx: &str) -> bool {
    tx.len() == 66 && tx.starts_with("0x") && tx[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// `value` is a string naming `expected` (in any letter case).
#[track_caller]
pub(crate) fn assert_same_address(value: &Value, expected: Address) {
    let parsed = value.as_str().and_then(|s| s.parse::<Address>().ok());
    assert_eq!(parsed, Some(expected), "{value} is not {expected}");
}

// ---------------------------------------------------------------------------------------------
// Resource servers: the gateway in front of an upstream, and the native axum layer.

/// An upstream API that records the headers of every request it serves.
pub(crate) struct Upstream {
    pub(crate) base: String,
    pub(crate) seen: std::sync::Arc<std::sync::Mutex<Vec<http::HeaderMap>>>,
}

impl Upstream {
    pub(crate) async fn start() -> Self {
        use axum::routing::get;
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let app = axum::Router::new()
            .route(
                "/weather/{city}",
                get(
                    move |axum::extract::Path(city): axum::extract::Path<String>,
                          headers: http::HeaderMap| async move {
                        record.lock().unwrap().push(headers);
                        axum::Json(json!({ "city": city, "forecast": "sunny" }))
                    },
                ),
            )
            .route(
                "/broken/{city}",
                get(|| async { (http::StatusCode::INTERNAL_SERVER_ERROR, "upstream failed") }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, seen }
    }

    pub(crate) fn calls(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Interop {
    fn registry(&self) -> purser_registry::Registry {
        let token = self.chain().token().clone();
        purser_registry::Registry::new(
            self.app.store.clone(),
            self.app.store.clone(),
            purser_registry::AssetCatalog::new([purser_registry::AssetInfo {
                network: NETWORK.into(),
                address: token.address.to_checksum(None),
                decimals: token.decimals,
                eip712_name: token.name.clone(),
                eip712_version: token.version.clone(),
                symbol: Some(token.symbol.clone()),
            }]),
        )
    }

    /// A `PAYMENT-SIGNATURE` for the first requirements of `required`, signed in Rust the way
    /// SDK clients sign (echoing `resource` and `accepted`), valid until `valid_before`.
    pub(crate) fn sign_for(
        &self,
        required: &purser_x402::PaymentRequired,
        valid_before: u64,
    ) -> String {
        use purser_devnet::payment::{Payment, random_nonce};
        let offer = &required.accepts[0];
        let payment = Payment {
            valid_before,
            nonce: random_nonce(),
            ..Payment::new(
                self.chain(),
                self.payer(),
                offer.pay_to.parse().unwrap(),
                offer.amount.atomic(),
            )
        };
        let payload =
            payment.payload_answering(self.payer(), self.chain().chain_id(), required, offer);
        purser_x402::header::encode_json(&payload)
    }

    /// A published GET resource at `url` for $0.01 (10000 atomic units).
    pub(crate) async fn publish(&self, url: &str, name: &str) -> purser_domain::id::ResourceId {
        self.publish_described(url, name, &format!("{name}, paid per call"))
            .await
    }

    /// Like [`Self::publish`], with its `description`.
    pub(crate) async fn publish_described(
        &self,
        url: &str,
        name: &str,
        description: &str,
    ) -> purser_domain::id::ResourceId {
        self.publish_with(url, name, description, None).await
    }

    /// Like [`Self::publish_described`], granting `repeat_access` to payers.
    pub(crate) async fn publish_with(
        &self,
        url: &str,
        name: &str,
        description: &str,
        repeat_access: Option<purser_domain::entitlement::RepeatAccess>,
    ) -> purser_domain::id::ResourceId {
        self.publish_priced(
            url,
            name,
            description,
            repeat_access,
            purser_domain::registry::PriceSpec::Usd { usd: "0.01".into() },
        )
        .await
        .unwrap()
    }

    /// Like [`Self::publish_with`], at `price`: the registry's answer.
    pub(crate) async fn publish_priced(
        &self,
        url: &str,
        name: &str,
        description: &str,
        repeat_access: Option<purser_domain::entitlement::RepeatAccess>,
        price: purser_domain::registry::PriceSpec,
    ) -> Result<purser_domain::id::ResourceId, purser_domain::Error> {
        let registry = self.registry();
        let scope = TenantScope::trusted(self.tenant);
        registry
            .set_payout_address(scope, NETWORK, &self.merchant().to_checksum(None))
            .await
            .unwrap();
        registry
            .create_resource(
                scope,
                purser_registry::ResourceDraft {
                    kind: purser_domain::registry::ResourceKind::Http,
                    url: url.into(),
                    method: Some("GET".into()),
                    tool: None,
                    name: name.into(),
                    description: description.into(),
                    mime_type: Some("application/json".into()),
                    service_name: None,
                    tags: vec![],
                    icon_url: None,
                    input_schema: None,
                    output_schema: None,
                    input_example: None,
                    output_example: None,
                    body_type: None,
                    price,
                    accepts: vec![purser_registry::AcceptDraft {
                        network: NETWORK.into(),
                        ..Default::default()
                    }],
                    max_timeout_seconds: None,
                    repeat_access,
                    escrow: None,
                },
                true,
            )
            .await
            .map(|resource| resource.id)
    }

    /// Serves the gateway's proxy on `listener` with `routes` to `upstream`, each a path
    /// pattern and the resource it sells.
    pub(crate) fn serve_gateway(
        &self,
        listener: tokio::net::TcpListener,
        upstream: &Upstream,
        routes: &[(&str, purser_domain::id::ResourceId)],
    ) {
        use purser_gateway::{GatewayConfig, GatewayRoute, proxy::Proxy};
        let config = GatewayConfig {
            routes: routes
                .iter()
                .map(|(path, resource)| GatewayRoute {
                    host: None,
                    path: (*path).into(),
                    upstream: upstream.base.clone(),
                    resource: resource.to_string(),
                    settle: Default::default(),
                    timeout_seconds: Some(10),
                    upstream_http2: false,
                })
                .collect(),
            ..GatewayConfig::default()
        };
        let proxy = Proxy::new(self.app.platform.gateway.clone(), &config)
            .unwrap()
            .router();
        tokio::spawn(async move {
            axum::serve(
                listener,
                proxy.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await
        });
    }
}

/// A client that lost the answer retries its payment with the same `payment-identifier`: the
/// gateway serves it again with the first settlement's answer, and nothing moves twice. The
/// same identifier with another payload is refused before the upstream runs.
async fn a_retry_with_its_payment_identifier_is_served_and_settled_once(backends: Backends) {
    let fx = Interop::start(backends).await;
    let upstream = Upstream::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = format!("http://{}", listener.local_addr().unwrap());
    let weather = fx
        .publish(&format!("{gateway}/weather/:city"), "Weather")
        .await;
    fx.serve_gateway(listener, &upstream, &[("/weather/*", weather)]);
    let url = format!("{gateway}/weather/porto");
    let client = purser_testkit::http_client();
    let unpaid = client.get(&url).send().await.unwrap();
    assert_eq!(unpaid.status(), 402);
    let required = purser_x402::header::decode_payment_required(
        unpaid.headers()["payment-required"].to_str().unwrap(),
    )
    .unwrap();
    let valid_before = purser_domain::time::now().timestamp() as u64 + 300;
    // The identifier travels in the payload's extensions; the signature covers only the
    // authorization, so adding it after signing is what an SDK client's retry looks like.
    let with_id = |header: String, id: &str| {
        let mut payload = Value::Object(
            purser_x402::header::decode_json_object("payment-signature", &header).unwrap(),
        );
        payload["extensions"]["payment-identifier"] = json!({ "info": { "id": id } });
        purser_x402::header::encode_json(&payload)
    };
    let payment = with_id(
        fx.sign_for(&required, valid_before),
        "retry_7f3a_0123456789",
    );
    let merchant_before = fx.balance(fx.merchant()).await;

    let first = client
        .get(&url)
        .header("payment-signature", &payment)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let first_receipt = first.headers()["payment-response"]
        .to_str()
        .unwrap()
        .to_owned();
    let retried = client
        .get(&url)
        .header("payment-signature", &payment)
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), 200, "a retry is served again");
    let retried_receipt = retried.headers()["payment-response"]
        .to_str()
        .unwrap()
        .to_owned();
    let decode = |receipt: &str| -> Value {
        Value::Object(purser_x402::header::decode_json_object("payment-response", receipt).unwrap())
    };
    let (first_receipt, retried_receipt) = (decode(&first_receipt), decode(&retried_receipt));
    assert_eq!(first_receipt["success"], true, "{first_receipt}");
    assert_eq!(
        retried_receipt["transaction"], first_receipt["transaction"],
        "the retry answers the first settlement"
    );
    fx.assert_transaction_succeeded(first_receipt["transaction"].as_str().unwrap())
        .await;
    assert_eq!(
        fx.balance(fx.merchant()).await,
        merchant_before + U256::from(PRICE),
        "paid once"
    );
    assert_eq!(
        upstream.calls(),
        2,
        "both the request and its retry were served"
    );

    // The same identifier on another payment is refused before the upstream.
    let other = with_id(
        fx.sign_for(&required, valid_before),
        "retry_7f3a_0123456789",
    );
    let conflict = client
        .get(&url)
        .header("payment-signature", &other)
        .send()
        .await
        .unwrap();
    assert_eq!(conflict.status(), 409);
    let body: Value = conflict.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payment_identifier_conflict");
    assert_eq!(upstream.calls(), 2);
    fx.app.stop().await;
}

/// The price of what [`Interop::publish`] lists, in atomic units ($0.01).
pub(crate) const PRICE: u128 = 10_000;

async fn sdk_clients_pay_through_the_gateway(backends: Backends) {
    let fx = Interop::start(backends).await;
    let upstream = Upstream::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = format!("http://{}", listener.local_addr().unwrap());
    let weather = fx
        .publish(&format!("{gateway}/weather/:city"), "Weather")
        .await;
    let broken = fx
        .publish(&format!("{gateway}/broken/:city"), "Broken weather")
        .await;
    fx.serve_gateway(
        listener,
        &upstream,
        &[("/weather/*", weather), ("/broken/*", broken)],
    );
    let merchant_before = fx.balance(fx.merchant()).await;

    // v2: @x402/fetch.
    let url = format!("{gateway}/weather/lisbon");
    let mut env = fx.script_env(PRICE);
    env.push(("X402_URL", url.clone()));
    let out = run_script("sdk-pay-url.mjs", &env).await;
    assert_eq!(out["unpaid"]["status"], 402, "{out}");
    let required = &out["unpaid"]["paymentRequired"];
    assert_eq!(required["resource"]["url"], url.as_str(), "{out}");
    assert_eq!(required["accepts"][0]["amount"], PRICE.to_string(), "{out}");
    assert_eq!(required["accepts"][0]["network"], NETWORK, "{out}");
    assert_eq!(out["paid"]["status"], 200, "{out}");
    assert_eq!(out["paid"]["body"]["city"], "lisbon", "{out}");
    let settled = &out["paid"]["paymentResponse"];
    assert_eq!(settled["success"], true, "{out}");
    let tx = settled["transaction"].as_str().unwrap();
    fx.assert_transaction_succeeded(tx).await;
    assert_eq!(
        fx.balance(fx.merchant()).await,
        merchant_before + U256::from(PRICE)
    );
    // The upstream ran once, for the paid request, and saw the payer but not the payment.
    assert_eq!(
        upstream.calls(),
        1,
        "the unpaid request never reached the upstream"
    );
    {
        let seen = upstream.seen.lock().unwrap();
        assert_same_address(
            &json!(seen[0]["x-purser-payer"].to_str().unwrap()),
            fx.payer().address(),
        );
        assert!(!seen[0].contains_key("payment-signature"));
        assert!(seen[0].contains_key("x-forwarded-for"));
    }
    // The same payment again: refused before the upstream, nothing more moves.
    assert_eq!(out["replay"]["status"], 409, "{out}");
    assert_eq!(
        out["replay"]["body"]["error"]["code"],
        "payment_already_used"
    );
    assert_eq!(upstream.calls(), 1);

    // v1: x402-fetch 1.x reads the JSON body and pays with X-PAYMENT.
    let mut env = fx.script_env(PRICE);
    env.push(("X402_URL", format!("{gateway}/weather/porto")));
    env.push(("X402_CLIENT", "v1".into()));
    let out = run_script("sdk-pay-url.mjs", &env).await;
    assert_eq!(out["unpaid"]["body"]["x402Version"], 1, "{out}");
    assert_eq!(
        out["unpaid"]["body"]["accepts"][0]["network"],
        "base-sepolia"
    );
    assert_eq!(out["sent"], json!(["x-payment"]), "{out}");
    assert_eq!(out["paid"]["status"], 200, "{out}");
    assert_eq!(out["paid"]["body"]["city"], "porto", "{out}");
    let settled = &out["paid"]["xPaymentResponse"];
    assert_eq!(settled["success"], true, "{out}");
    assert_eq!(settled["network"], "base-sepolia", "{out}");
    fx.assert_transaction_succeeded(settled["transaction"].as_str().unwrap())
        .await;
    assert_eq!(
        fx.balance(fx.merchant()).await,
        merchant_before + U256::from(2 * PRICE)
    );
    assert_eq!(upstream.calls(), 2);

    // An upstream that fails is not paid for.
    let mut env = fx.script_env(PRICE);
    env.push(("X402_URL", format!("{gateway}/broken/faro")));
    let out = run_script("sdk-pay-url.mjs", &env).await;
    assert_eq!(out["paid"]["status"], 500, "{out}");
    assert!(out["paid"]["paymentResponse"].is_null(), "{out}");
    assert_eq!(
        fx.balance(fx.merchant()).await,
        merchant_before + U256::from(2 * PRICE),
        "nothing settled for a failed upstream"
    );
    // A route that does not exist is the gateway's 404, not a 402.
    let missing = reqwest::get(format!("{gateway}/nowhere")).await.unwrap();
    assert_eq!(missing.status(), 404);

    // A payment made for another route, and one whose authorization has expired: each gets the
    // 402 again, and the upstream is not called.
    let calls = upstream.calls();
    let challenge_at = |url: String| async move {
        let answer = reqwest::get(&url).await.unwrap();
        assert_eq!(answer.status(), 402, "{url}");
        purser_x402::header::decode_payment_required(
            answer.headers()["payment-required"].to_str().unwrap(),
        )
        .unwrap()
    };
    let faro = format!("{gateway}/weather/faro");
    let elsewhere = challenge_at(format!("{gateway}/broken/faro")).await;
    let here = challenge_at(faro.clone()).await;
    let in_an_hour = purser_devnet::payment::now() + 3_600;
    let an_hour_ago = purser_devnet::payment::now() - 3_600;
    for (what, payment, error) in [
        (
            "a payment for another route",
            fx.sign_for(&elsewhere, in_an_hour),
            purser_axum::engine::RESOURCE_MISMATCH,
        ),
        (
            "an expired authorization",
            fx.sign_for(&here, an_hour_ago),
            "invalid_exact_evm_payload_authorization_valid_before",
        ),
    ] {
        let answer = reqwest::Client::new()
            .get(&faro)
            .header("payment-signature", payment)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 402, "{what}");
        let required = purser_x402::header::decode_payment_required(
            answer.headers()["payment-required"].to_str().unwrap(),
        )
        .unwrap();
        assert_eq!(required.error.as_deref(), Some(error), "{what}");
    }
    assert_eq!(upstream.calls(), calls, "the upstream was not called");

    // The delegated check finds the resource by URL and answers the same 402 as the gateway.
    let client = reqwest::Client::new();
    let check = |body: Value, key: Option<String>| {
        let mut request = client.post(fx.app.url("/v1/access/check")).json(&body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send()
    };
    let url = format!("{gateway}/weather/braga");
    let answer = check(json!({ "method": "GET", "url": url }), None)
        .await
        .unwrap();
    assert_eq!(answer.status(), 401, "checks need a resource_server key");
    let answer: Value = check(json!({ "method": "GET", "url": url }), Some(fx.key.clone()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["decision"], "deny", "{answer}");
    assert_eq!(answer["status"], 402, "{answer}");
    let header = answer["headers"]["payment-required"].as_str().unwrap();
    let required = purser_x402::header::decode_payment_required(header).unwrap();
    assert_eq!(required.resource.url, url);
    assert_eq!(required.accepts[0].amount, Amount::from_atomic(PRICE));
    let unknown: Value = check(
        json!({ "method": "GET", "url": format!("{gateway}/elsewhere") }),
        Some(fx.key.clone()),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(unknown["error"]["code"], "not_found", "{unknown}");
    // The native layer's registry prices: public, the current 402.
    let priced: Value = reqwest::get(
        fx.app
            .url(&format!("/v1/resources/{weather}/payment-required")),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        priced["paymentRequired"]["accepts"][0]["amount"],
        PRICE.to_string(),
        "{priced}"
    );
}

async fn sdk_client_pays_through_the_native_layer(backends: Backends) {
    use purser_axum::{
        ExactPrice, HttpFacilitator, MemoryReplayGuard, Payer, Paywall, PaywallLayer,
    };
    let fx = Interop::start(backends).await;
    let token = fx.chain().token();
    let price = ExactPrice {
        network: NETWORK.into(),
        asset: token.address.to_checksum(None),
        amount: Amount::from_atomic(PRICE),
        pay_to: fx.merchant().to_checksum(None),
        eip712_name: token.name.clone(),
        eip712_version: token.version.clone(),
        max_timeout_seconds: 60,
    };
    let facilitator = HttpFacilitator::new(fx.app.url("/facilitator")).with_api_key(fx.key.clone());
    let paywall = Paywall::new(
        std::sync::Arc::new(facilitator),
        std::sync::Arc::new(MemoryReplayGuard::default()),
    );
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = served.clone();
    let app = axum::Router::new()
        .route(
            "/report",
            axum::routing::get(
                move |axum::Extension(payer): axum::Extension<Payer>| async move {
                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    axum::Json(json!({ "report": "quarterly", "for": payer.0 }))
                },
            ),
        )
        .route("/free", axum::routing::get(|| async { "free" }))
        .layer(PaywallLayer::new(paywall).route(
            "GET",
            "/report",
            price.offer("A quarterly report").unwrap(),
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let merchant_before = fx.balance(fx.merchant()).await;

    let free = reqwest::get(format!("{base}/free")).await.unwrap();
    assert_eq!(free.status(), 200, "unpriced routes pass through");
    let mut env = fx.script_env(PRICE);
    env.push(("X402_URL", format!("{base}/report")));
    let out = run_script("sdk-pay-url.mjs", &env).await;
    assert_eq!(out["unpaid"]["status"], 402, "{out}");
    assert_eq!(
        out["unpaid"]["paymentRequired"]["resource"]["url"],
        format!("{base}/report"),
        "{out}"
    );
    assert_eq!(out["paid"]["status"], 200, "{out}");
    assert_same_address(&out["paid"]["body"]["for"], fx.payer().address());
    let settled = &out["paid"]["paymentResponse"];
    assert_eq!(settled["success"], true, "{out}");
    fx.assert_transaction_succeeded(settled["transaction"].as_str().unwrap())
        .await;
    assert_eq!(
        fx.balance(fx.merchant()).await,
        merchant_before + U256::from(PRICE)
    );
    assert_eq!(out["replay"]["status"], 409, "{out}");
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// The example merchant app of `purser-axum`, compiled into this test for its `app`.
#[allow(dead_code)]
#[path = "../../../purser-axum/examples/merchant.rs"]
pub(crate) mod merchant_example;

/// Serves the example merchant app on `listener`: its own routes at `price`, `/forecast/{city}`
/// priced by the registry resource `forecast`.
pub(crate) fn serve_example_merchant(
    fx: &Interop,
    listener: tokio::net::TcpListener,
    price: u128,
    forecast: purser_domain::id::ResourceId,
) {
    let token = fx.chain().token();
    let config = merchant_example::MerchantConfig {
        purser_url: fx.app.url(""),
        api_key: fx.key.clone(),
        price: purser_axum::ExactPrice {
            network: NETWORK.into(),
            asset: token.address.to_checksum(None),
            amount: Amount::from_atomic(price),
            pay_to: fx.merchant().to_checksum(None),
            eip712_name: token.name.clone(),
            eip712_version: token.version.clone(),
            max_timeout_seconds: 60,
        },
        registry_resource: Some(forecast.to_string()),
    };
    let app = merchant_example::app(&config).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
}

async fn sdk_client_pays_the_example_merchant(backends: Backends) {
    let fx = Interop::start(backends).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let forecast = fx
        .publish(&format!("{base}/forecast/:city"), "Forecast")
        .await;
    serve_example_merchant(&fx, listener, 2 * PRICE, forecast);
    let merchant_before = fx.balance(fx.merchant()).await;

    let free = reqwest::get(format!("{base}/")).await.unwrap();
    assert_eq!(free.status(), 200);
    // Fixed prices (settled after, then before, the handler) and the registry's price.
    let mut paid = U256::ZERO;
    for (path, price, body_key) in [
        ("/reports/q3", 2 * PRICE, "report"),
        ("/exports/customers", 2 * PRICE, "export"),
        ("/forecast/porto", PRICE, "city"),
    ] {
        let mut env = fx.script_env(price);
        env.push(("X402_URL", format!("{base}{path}")));
        let out = run_script("sdk-pay-url.mjs", &env).await;
        assert_eq!(out["unpaid"]["status"], 402, "{path}: {out}");
        assert_eq!(
            out["unpaid"]["paymentRequired"]["accepts"][0]["amount"],
            price.to_string(),
            "{path}: {out}"
        );
        assert_eq!(out["paid"]["status"], 200, "{path}: {out}");
        assert!(out["paid"]["body"][body_key].is_string(), "{path}: {out}");
        assert_same_address(&out["paid"]["body"]["paid_by"], fx.payer().address());
        let settled = &out["paid"]["paymentResponse"];
        assert_eq!(settled["success"], true, "{path}: {out}");
        fx.assert_transaction_succeeded(settled["transaction"].as_str().unwrap())
            .await;
        assert_eq!(out["replay"]["status"], 409, "{path}: {out}");
        paid += U256::from(price);
        assert_eq!(fx.balance(fx.merchant()).await, merchant_before + paid);
    }
}

/// ETH at a fixed 3,000 USD: what the settlement router converts gas costs with here.
fn fixed_eth_usd() -> purser_chain::config::PriceFeedConfig {
    purser_chain::config::PriceFeedConfig {
        gas_token: "ETH".to_owned(),
        currency: "USD".to_owned(),
        network: None,
        aggregator: None,
        fixed: Some("3000".to_owned()),
        max_age_seconds: 3600,
    }
}
