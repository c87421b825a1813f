//! `purser demo`: the whole flow on one machine, narrated. A local chain (anvil standing in for
//! Base Sepolia, with a USDC-like EIP-3009 token), Purser on its embedded defaults (SQLite in a
//! throwaway folder, in-process coordination), a merchant onboarded through the registry with a
//! plain HTTP API behind the gateway, and an agent that finds the API in the discovery catalog,
//! is challenged with a 402, signs an EIP-3009 authorization, pays through the gateway, and sees
//! the settlement on chain and in the ledger. Then everything keeps serving until Ctrl-C.
//!
//! The agent speaks plain HTTP to Purser, as any client would: nothing in it reaches into the
//! process but its wallet, which is one of the devnet's public test accounts.
//!
//! The demo runs the real application, which the binary assembles: it is written against
//! [`Application`], which `purser` implements with its own wiring (so this crate does not
//! depend on the binary's, which depends on this one for `purser demo`). Like the devnet it
//! stands on, it is a development tool that no library crate Purser runs in production
//! depends on.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider as _;
use anyhow::{Context as _, anyhow, bail, ensure};
use purser_chain::config::RailConfig;
use purser_chain::rails::Rails;
use purser_chain::rpc::RpcPolicy;
use purser_devnet::payment::{Payment, now, random_nonce};
use purser_devnet::{Devnet, DevnetChain, DevnetChainSpec, DevnetOptions, FeeLevels, TestAccount};
use purser_domain::auth::{Role, TenantScope, mint_api_key};
use purser_domain::entitlement::RepeatAccess;
use purser_domain::id::{ResourceId, TenantId};
use purser_domain::ledger::Transfer;
use purser_domain::money::{Amount, Money};
use purser_domain::page::PageRequest;
use purser_domain::registry::{PriceSpec, ResourceKind};
use purser_domain::repo::Store;
use purser_domain::tenant::{NewTenant, TenantKind, TenantName};
use purser_gateway::GatewayRoute;
use purser_metering::Metering;
use purser_registry::{AcceptDraft, Registry, ResourceDraft};
use purser_x402::header::{
    PAYMENT_REQUIRED, PAYMENT_RESPONSE, PAYMENT_SIGNATURE, SIGN_IN_WITH_X, decode_payment_required,
    decode_payment_response, encode_json,
};
use purser_x402::siwx::SiwxOffer;
use purser_x402::{PaymentRequired, PaymentRequirements};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The demo API's price, in US dollars.
const PRICE_USD: &str = "0.01";
/// One gwei, in wei.
const GWEI: u128 = 1_000_000_000;
/// The L1 base fee the demo's fee spike sets on Base: a hundred thousand gwei.
const L1_SPIKE_WEI: u128 = 100_000 * GWEI;
/// What the demo's Purser prices ETH at (`DemoApplication`'s fixed feed), in USD.
const ETH_USD: f64 = 3_000.0;
/// The usage event the demo API reports for each forecast it serves.
const FORECAST_EVENT: &str = "demo.weather.forecast";
const FORECAST_SOURCE: &str = "//demo-weather/forecasts";
/// What the agent searches the catalog for.
const QUERY: &str = "weather forecast";
/// The city the agent asks about.
const CITY: &str = "lisbon";

/// Purser as the demo runs it: the application the binary assembles, on its embedded defaults.
/// The `purser` crate implements it for `purser demo`.
pub trait Application: Sized + Send + 'static {
    /// Opens Purser on its embedded defaults (SQLite in `data_dir`, migrated; in-process
    /// coordination), settling on `rails`, with the registry's prober allowed to look at
    /// loopback addresses, where the demo's API lives.
    fn open(data_dir: &Path, rails: Rails) -> impl Future<Output = anyhow::Result<Self>> + Send;

    /// The storage every service shares.
    fn store(&self) -> Arc<dyn Store>;

    /// The registry, to onboard the merchant.
    fn registry(&self) -> &Registry;

    /// Metering, to define the merchant's meters.
    fn metering(&self) -> &Metering;

    /// Serves Purser's API on `listener`, and the gateway with `routes` on `gateway_listener`,
    /// until `shutdown` resolves; then drains.
    fn serve(
        self,
        listener: TcpListener,
        gateway_listener: TcpListener,
        routes: Vec<GatewayRoute>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Where the demo listens, and whether it stays up afterwards.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Purser's API: GraphQL, the facilitator, discovery, the delegated checks.
    pub listen: SocketAddr,
    /// The gateway, in front of the merchant's API.
    pub gateway_listen: SocketAddr,
    /// Keep serving after the walkthrough until Ctrl-C (or `shutdown`).
    pub keep_serving: bool,
}

/// What the walkthrough observed, for callers that check it (the tests do).
#[derive(Debug, Clone)]
pub struct DemoReport {
    pub purser_url: String,
    pub gateway_url: String,
    /// The URL the agent paid for.
    pub paid_url: String,
    /// Atomic units the API costs.
    pub price: u128,
    pub payer: Address,
    pub merchant: Address,
    /// The upstream's answer, delivered by the gateway after payment.
    pub body: Value,
    pub transaction: B256,
    pub block_number: u64,
    /// The merchant's token balance after minus before.
    pub merchant_received: U256,
    /// The settlement's ledger transfers.
    pub transfers: Vec<Transfer>,
    /// The status the same payment got when sent again.
    pub replay_status: u16,
    pub replay_code: Option<String>,
    /// The status of the request made again, signed in instead of paying.
    pub repeat_status: u16,
    /// The merchant's balance change over that request (zero: nothing was paid).
    pub repeat_received: U256,
    /// What the `forecasts` meter counted for the agent (a decimal string).
    pub metered_forecasts: String,
    /// What the `paid-requests` meter summed (atomic units, a decimal string).
    pub metered_paid_amount: String,
    /// The rated cost of the agent's forecasts, in atomic units of a 6-decimal stablecoin.
    pub rated_forecast_cost: String,
}

/// Runs the demo on `A`: sets everything up, walks the agent through, prints each step on
/// `out`, then serves until `shutdown` resolves (or returns at once without `keep_serving`).
pub async fn run<A: Application>(
    options: DemoOptions,
    out: &mut (dyn Write + Send),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<DemoReport> {
    writeln!(
        out,
        "Purser demo: a merchant's API behind the gateway, and an agent that finds it, pays for \
         it and gets it, on a local chain.\n"
    )?;
    let data = tempfile::Builder::new()
        .prefix("purser-demo-")
        .tempdir()
        .context("creating the demo's data folder")?;

    // 1. The chains: an OP Stack rollup, an Arbitrum chain (busy today: 2 gwei) and an
    // Ethereum L1, each with its fee mechanics.
    let devnet = Devnet::start(DevnetOptions {
        payer_accounts: 2,
        ..DevnetOptions::with_chains(vec![
            DevnetChainSpec::base_sepolia(),
            DevnetChainSpec {
                base_fee_wei: 2 * GWEI,
                ..DevnetChainSpec::arbitrum_sepolia()
            },
            DevnetChainSpec::ethereum_sepolia(),
        ])
    })
    .await
    .context("starting the devnet (anvil)")?;
    let chains = devnet.chains();
    let agent = devnet.accounts().payers[0].clone();
    let merchant = devnet.accounts().payers[1].address();
    let mut lines = Vec::new();
    for chain in chains {
        let token = chain.token();
        lines.push(format!(
            "anvil as {} ({}) at {}: {} fees, base fee {} gwei",
            chain.name(),
            chain.network(),
            chain.rpc_url(),
            chain.fee_kind().as_str(),
            gwei(chain.spec().base_fee_wei)
        ));
        lines.push(format!(
            "  token {} \"{}\" v{} ({} decimals), EIP-3009 transferWithAuthorization; the agent \
             wallet {} holds {}",
            token.address,
            token.name,
            token.version,
            token.decimals,
            agent.address(),
            units(chain.balance_of(agent.address()).await?, token.decimals)
        ));
    }
    step(out, 1, "chain", &lines)?;

    // 2. Purser, on the embedded defaults, settling on that chain.
    let listener = bind(options.listen, "Purser").await?;
    let gateway_listener = bind(options.gateway_listen, "the gateway").await?;
    let purser_url = format!("http://{}", listener.local_addr()?);
    let gateway_url = format!("http://{}", gateway_listener.local_addr()?);
    let rails: Vec<RailConfig> = chains
        .iter()
        .map(|chain| rail(chain, &devnet.accounts().settlement_signer, data.path()))
        .collect::<anyhow::Result<_>>()?;
    let rails = Rails::open(&rails, RpcPolicy::default())
        .await
        .context("opening the devnet rails")?;
    let networks: Vec<String> = chains.iter().map(DevnetChain::network).collect();
    let application = A::open(&data.path().join("db"), rails).await?;
    step(
        out,
        2,
        "purser",
        &[
            format!("API at {purser_url} (GraphQL at {purser_url}/graphql)"),
            format!("gateway at {gateway_url}"),
            format!(
                "embedded SQLite in {}, in-process coordination, settling on {} with signer {}",
                data.path().display(),
                networks.join(", "),
                devnet.accounts().settlement_signer.address()
            ),
        ],
    )?;

    // 3. The merchant: a tenant, a payout address, a plain API, and its price in the registry.
    let store = application.store();
    let tenant = store
        .create_tenant(NewTenant::new(
            TenantName::parse("Demo Weather Co")?,
            TenantKind::Merchant,
        ))
        .await?;
    let scope = TenantScope::trusted(tenant.id);
    for network in &networks {
        application
            .registry()
            .set_payout_address(scope, network, &merchant.to_checksum(None))
            .await?;
    }
    // The merchant lists its networks dearest first; the settlement router reorders them.
    let listed: Vec<String> = networks.iter().rev().cloned().collect();
    let resource = application
        .registry()
        .create_resource(scope, weather_resource(&gateway_url, &listed), true)
        .await?;
    let admin_key = mint_key(&*store, Some(tenant.id), Role::TenantAdmin, "demo merchant").await?;
    let server_key = mint_key(
        &*store,
        Some(tenant.id),
        Role::ResourceServer,
        "demo resource server",
    )
    .await?;
    let operator_key = mint_key(&*store, None, Role::Operator, "demo operator").await?;
    let upstream = start_upstream(purser_url.clone(), server_key.clone()).await?;
    let meters = define_meters(application.metering(), scope).await?;
    let routes = vec![GatewayRoute {
        host: None,
        path: "/weather/*".into(),
        upstream: upstream.clone(),
        resource: resource.id.to_string(),
        settle: Default::default(),
        timeout_seconds: Some(10),
        upstream_http2: false,
    }];
    step(
        out,
        3,
        "merchant",
        &[
            format!("tenant \"{}\" ({})", tenant.name, tenant.id),
            format!("payout address {merchant} on {}", networks.join(", ")),
            format!(
                "its API at {upstream} knows nothing of payments; the gateway routes /weather/* to it"
            ),
            format!(
                "published resource {} \"{}\": GET {} at ${PRICE_USD}, payable on {} (in that \
                 order); a payment buys the paying wallet a day of repeat access",
                resource.id,
                resource.metadata.name,
                resource.url,
                listed.join(", ")
            ),
            meters,
        ],
    )?;

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        application.serve(listener, gateway_listener, routes, async move {
            let _ = stop_rx.await;
        }),
    );

    let agent = Agent {
        http: reqwest::Client::new(),
        purser_url: purser_url.clone(),
        wallet: agent,
    };
    let walked = match walk(
        out,
        &agent,
        &Walk {
            chains,
            store: store.as_ref(),
            tenant: tenant.id,
            resource: resource.id,
            merchant,
            operator_key: &operator_key,
        },
    )
    .await
    {
        Ok(walked) => metered(out, &agent, &admin_key, walked).await,
        Err(e) => Err(e),
    };
    let report = match walked {
        Ok(walk) => DemoReport {
            purser_url: purser_url.clone(),
            gateway_url: gateway_url.clone(),
            ..walk
        },
        Err(e) => {
            let _ = stop_tx.send(());
            let _ = server.await;
            return Err(e);
        }
    };

    if options.keep_serving {
        writeln!(
            out,
            "\nEverything keeps running; explore, then press Ctrl-C to stop (the chain and the \
             data go with it):"
        )?;
        writeln!(
            out,
            "  curl -i {gateway_url}/weather/paris                       the 402 an agent sees"
        )?;
        writeln!(
            out,
            "  curl '{purser_url}/facilitator/discovery/search?query=weather'   the catalog"
        )?;
        writeln!(
            out,
            "  GraphiQL at {purser_url}/graphql with the header Authorization: Bearer <key>"
        )?;
        writeln!(out, "    merchant (tenant-admin) key: {admin_key}")?;
        writeln!(out, "    operator key:                {operator_key}")?;
        writeln!(
            out,
            "  the merchant's resource-server key, for /facilitator and /v1/access (and the \
             purser-axum example merchant): {server_key}"
        )?;
        writeln!(
            out,
            "  try: {{ settlements(first: 5) {{ edges {{ node {{ status txHash amount }} }} }} }}"
        )?;
        out.flush()?;
        shutdown.await;
    }
    let _ = stop_tx.send(());
    server.await.context("the server task")??;
    drop(devnet);
    Ok(report)
}

/// The paying agent: an HTTP client and a wallet.
struct Agent {
    http: reqwest::Client,
    purser_url: String,
    wallet: TestAccount,
}

/// What the walkthrough works with.
struct Walk<'a> {
    chains: &'a [DevnetChain],
    store: &'a dyn Store,
    tenant: TenantId,
    resource: ResourceId,
    merchant: Address,
    operator_key: &'a str,
}

/// Steps 4 to 10: discovery, the 402 in the router's order, a fee spike that reorders it,
/// payment, settlement and the ledger, a replay, and repeat access.
async fn walk(
    out: &mut (dyn Write + Send),
    agent: &Agent,
    walk: &Walk<'_>,
) -> anyhow::Result<DemoReport> {
    let Walk {
        chains,
        store,
        tenant,
        resource,
        merchant,
        operator_key,
    } = *walk;

    // 4. Discovery: the agent knows what it wants, not where it is.
    let found: Value = agent
        .http
        .get(format!(
            "{}/facilitator/discovery/search?query={}",
            agent.purser_url,
            QUERY.replace(' ', "+")
        ))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let items = found["resources"].as_array().cloned().unwrap_or_default();
    let item = items
        .first()
        .ok_or_else(|| anyhow!("the catalog found nothing for {QUERY:?}: {found}"))?;
    let template = item["resource"]
        .as_str()
        .ok_or_else(|| anyhow!("a catalog item without a resource URL: {item}"))?;
    step(
        out,
        4,
        "discovery",
        &[
            format!(
                "the agent searched {}/facilitator/discovery/search?query={} : {} result(s)",
                agent.purser_url,
                QUERY.replace(' ', "+"),
                items.len()
            ),
            format!(
                "first: \"{}\" {} for {} atomic units on {}",
                item["metadata"]["name"].as_str().unwrap_or("?"),
                template,
                item["accepts"][0]["amount"].as_str().unwrap_or("?"),
                item["accepts"][0]["network"].as_str().unwrap_or("?"),
            ),
        ],
    )?;
    let url = template.replace(":city", CITY).replace("{city}", CITY);

    // 5. The challenge, once the settlement router has quoted every rail: the offers come
    // cheapest settlement first, whatever order the merchant listed them in.
    let base = &chains[0];
    let required = challenge_led_by(agent, &url, |network| network == base.network()).await?;
    let quotes = rail_quotes(agent, operator_key).await?;
    let mut lines = vec![
        format!("GET {url} -> 402 Payment Required"),
        "its offers, in the settlement router's order (cheapest settlement first):".to_owned(),
    ];
    lines.extend(offer_lines(&required, &quotes));
    step(out, 5, "challenge", &lines)?;

    // 6. A fee spike: Base's L1 base fee jumps, as `purser devnet fees` (or any tool writing the
    // L1Block predeploy) would set it; the router's next quote reorders the offers.
    let before = base.fee_levels().await?;
    base.set_fees(&FeeLevels {
        l1_base_fee_wei: Some(L1_SPIKE_WEI),
        ..FeeLevels::default()
    })
    .await?;
    let required = challenge_led_by(agent, &url, |network| network != base.network()).await?;
    let quotes = rail_quotes(agent, operator_key).await?;
    let mut lines = vec![format!(
        "{}'s L1 base fee: {} gwei -> {} gwei (the L1Block predeploy, slot 1)",
        base.name(),
        gwei(before.l1_base_fee_wei.unwrap_or_default()),
        gwei(L1_SPIKE_WEI)
    )];
    lines.push("the same 402 now offers:".to_owned());
    lines.extend(offer_lines(&required, &quotes));
    step(out, 6, "routing", &lines)?;

    // The agent takes the first offer, as the official x402 clients do by default.
    let offer = required
        .accepts
        .first()
        .filter(|a| a.scheme == "exact")
        .ok_or_else(|| anyhow!("the 402 offers no exact payment first"))?
        .clone();
    let chain = chains
        .iter()
        .find(|c| c.network() == offer.network.as_str())
        .ok_or_else(|| anyhow!("the 402 offers {}, not a devnet chain", offer.network))?;
    let token = chain.token();
    let price = offer.amount.atomic();

    // 7. Payment: sign the EIP-3009 authorization the first offer describes, and send it.
    let signed = sign(agent, chain, &required, &offer)?;
    let merchant_before = chain.balance_of(merchant).await?;
    let paid = agent
        .http
        .get(&url)
        .header(PAYMENT_SIGNATURE, &signed)
        .send()
        .await?;
    let status = paid.status();
    let settle_header = paid
        .headers()
        .get(PAYMENT_RESPONSE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = paid.json().await.unwrap_or(Value::Null);
    ensure!(
        status == 200,
        "the paid request answered {status}, not 200: {body}"
    );
    let settled = decode_payment_response(
        settle_header
            .as_deref()
            .ok_or_else(|| anyhow!("the paid answer has no {PAYMENT_RESPONSE} header"))?,
    )?;
    ensure!(settled.success, "the settlement failed: {settled:?}");
    step(
        out,
        7,
        "payment",
        &[
            format!(
                "the agent ({}) took the first offer: {} atomic units ({}) of {} on {}, to {}",
                agent.wallet.address(),
                offer.amount,
                units(U256::from(price), token.decimals),
                offer.asset,
                offer.network,
                offer.pay_to
            ),
            format!(
                "and signed transferWithAuthorization for it, valid {} s",
                offer.max_timeout_seconds
            ),
            format!("GET {url} with {PAYMENT_SIGNATURE} -> 200 OK {body}"),
        ],
    )?;

    // 8. Settlement: the transaction on chain, and what the ledger recorded.
    let transaction: B256 = settled
        .transaction
        .parse()
        .with_context(|| format!("{:?} is not a transaction hash", settled.transaction))?;
    let receipt = chain
        .provider()
        .get_transaction_receipt(transaction)
        .await?
        .ok_or_else(|| anyhow!("transaction {transaction} has no receipt on the chain"))?;
    ensure!(
        receipt.status(),
        "transaction {transaction} reverted on chain"
    );
    let block_number = receipt.block_number.unwrap_or_default();
    let merchant_received = chain.balance_of(merchant).await? - merchant_before;
    let scope = TenantScope::trusted(tenant);
    let settlement = store
        .list_settlements(scope, PageRequest::first(100)?)
        .await?
        .items
        .into_iter()
        .find(|s| {
            s.tx_hash
                .as_deref()
                .is_some_and(|h| h.eq_ignore_ascii_case(&settled.transaction))
        })
        .ok_or_else(|| anyhow!("no settlement of the merchant has transaction {transaction}"))?;
    let transfers = store.transfers_for_settlement(scope, settlement.id).await?;
    let mut lines = vec![
        format!(
            "{PAYMENT_RESPONSE}: success, transaction {transaction} on {}",
            settled.network
        ),
        format!(
            "mined in block {block_number}; the merchant's balance rose by {}",
            units(merchant_received, token.decimals)
        ),
        format!(
            "settlement {} ({}) for resource {resource}, ledger:",
            settlement.id, settlement.status
        ),
    ];
    if let (Some(estimated), Some(actual)) =
        (settlement.estimated_network_cost, settlement.network_cost)
    {
        lines.push(format!(
            "its gas: the router estimated {} wei of ETH, the receipt says {} wei (gas {} × {} \
             wei, L1 fee {} wei)",
            estimated, actual.total, actual.gas_used, actual.effective_gas_price, actual.l1_fee
        ));
    }
    for t in &transfers {
        // Gas is in wei of the chain's own token; the rest in the payment's asset.
        let unit = if t.asset == purser_domain::settlement::NATIVE_ASSET {
            "wei of gas   "
        } else {
            "atomic units "
        };
        lines.push(format!(
            "  {:<11} {:>14} {unit} debit {:<20} credit {:<19} {}",
            t.code.to_string(),
            t.amount.to_string(),
            t.debit.to_string(),
            t.credit.to_string(),
            t.state
        ));
    }
    step(out, 8, "settlement", &lines)?;

    // 9. The same payment again is refused before the API runs.
    let replay = agent
        .http
        .get(&url)
        .header(PAYMENT_SIGNATURE, &signed)
        .send()
        .await?;
    let replay_status = replay.status().as_u16();
    let replay_body: Value = replay.json().await.unwrap_or(Value::Null);
    let replay_code = replay_body["error"]["code"].as_str().map(str::to_owned);
    step(
        out,
        9,
        "replay",
        &[format!(
            "the same {PAYMENT_SIGNATURE} again -> {replay_status} {}; nothing moves twice",
            replay_code.as_deref().unwrap_or("")
        )],
    )?;

    // 10. Repeat access: the wallet that paid signs in and is let in again without paying.
    let before = chain.balance_of(merchant).await?;
    let again = agent.http.get(&url).send().await?;
    ensure!(
        again.status() == 402,
        "GET {url} without payment or sign-in answered {}, not 402",
        again.status()
    );
    let header = again
        .headers()
        .get(PAYMENT_REQUIRED)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| anyhow!("the second 402 has no {PAYMENT_REQUIRED} header"))?;
    let challenge = decode_payment_required(header)?;
    let sign_in = sign_in(agent, &challenge)?;
    let repeat = agent
        .http
        .get(&url)
        .header(SIGN_IN_WITH_X, &sign_in)
        .send()
        .await?;
    let repeat_status = repeat.status().as_u16();
    let repeat_paid = repeat.headers().contains_key(PAYMENT_RESPONSE);
    let repeat_body: Value = repeat.json().await.unwrap_or(Value::Null);
    ensure!(
        repeat_status == 200 && !repeat_paid,
        "signed in, the agent got {repeat_status} (paid: {repeat_paid}): {repeat_body}"
    );
    let repeat_received = chain.balance_of(merchant).await? - before;
    ensure!(
        repeat_received.is_zero(),
        "the merchant was paid {repeat_received} for a signed-in request"
    );
    step(
        out,
        10,
        "sign-in",
        &[
            format!(
                "GET {url} -> 402, whose {} extension offers a one-time nonce",
                purser_x402::siwx::EXTENSION
            ),
            format!(
                "the agent signs the EIP-4361 message with its wallet: {SIGN_IN_WITH_X} -> \
                 {repeat_status} {repeat_body}"
            ),
            format!(
                "no payment: the grant its first payment bought let it in (merchant balance +{})",
                units(repeat_received, chain.token().decimals)
            ),
        ],
    )?;

    Ok(DemoReport {
        repeat_status,
        repeat_received,
        purser_url: String::new(),
        gateway_url: String::new(),
        paid_url: url,
        price,
        payer: agent.wallet.address(),
        merchant,
        body,
        transaction,
        block_number,
        merchant_received,
        transfers,
        replay_status,
        replay_code,
        metered_forecasts: String::new(),
        metered_paid_amount: String::new(),
        rated_forecast_cost: String::new(),
    })
}

/// The merchant's meters: forecasts served (counted per city, priced per forecast after a
/// free one), and the payments Purser settled for it (summed per network).
async fn define_meters(metering: &Metering, scope: TenantScope) -> anyhow::Result<String> {
    use purser_domain::metering::{Aggregation, MeterPrice, NewMeter, PriceModel, ValuePath};
    use rust_decimal::Decimal;
    metering
        .create_meter(
            scope,
            NewMeter {
                slug: "forecasts".into(),
                name: "Forecasts served".into(),
                description: None,
                event_type: FORECAST_EVENT.into(),
                aggregation: Aggregation::Count,
                value: None,
                group_by: [("city".to_owned(), ValuePath::parse("$.city")?)].into(),
                price: Some(MeterPrice {
                    model: PriceModel::Standard {
                        unit_amount: Decimal::new(2, 3),
                    },
                    free_units: Decimal::ONE,
                }),
            },
        )
        .await?;
    metering
        .create_meter(
            scope,
            NewMeter {
                slug: "paid-requests".into(),
                name: "Payments settled".into(),
                description: None,
                event_type: purser_gateway::PAYMENT_EVENT_TYPE.into(),
                aggregation: Aggregation::Sum,
                value: Some(ValuePath::parse("$.amount")?),
                group_by: [("network".to_owned(), ValuePath::parse("$.network")?)].into(),
                price: None,
            },
        )
        .await?;
    Ok(format!(
        "meters: `forecasts` (COUNT of {FORECAST_EVENT} per city, $0.002 each after 1 free) and \
         `paid-requests` (SUM of the amounts of {})",
        purser_gateway::PAYMENT_EVENT_TYPE
    ))
}

/// Step 10: the usage the walk left behind, as the merchant's finance team reads it.
async fn metered(
    out: &mut (dyn Write + Send),
    agent: &Agent,
    admin_key: &str,
    walked: DemoReport,
) -> anyhow::Result<DemoReport> {
    let now = chrono::Utc::now();
    let from =
        (now - chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let to =
        (now + chrono::Duration::minutes(5)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let query = |meter: &str, group_by: &str| {
        agent
            .http
            .get(format!(
                "{}/v1/meters/{meter}/query?from={from}&to={to}&groupBy={group_by}",
                agent.purser_url
            ))
            .bearer_auth(admin_key)
            .send()
    };
    let forecasts: Value = query("forecasts", "subject")
        .await?
        .error_for_status()?
        .json()
        .await?;
    let payments: Value = query("paid-requests", "network")
        .await?
        .error_for_status()?
        .json()
        .await?;
    let rated: Value = agent
        .http
        .post(format!("{}/graphql", agent.purser_url))
        .bearer_auth(admin_key)
        .json(&json!({
            "query": "query($from: DateTime!, $to: DateTime!) { ratedUsage(meter: \"forecasts\", from: $from, to: $to) { subject quantity billable amountUsd amountAtomic } }",
            "variables": { "from": from, "to": to },
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let row = |answer: &Value| answer["rows"][0].clone();
    let forecast_count = row(&forecasts)["value"].as_str().unwrap_or("0").to_owned();
    let paid_amount = row(&payments)["value"].as_str().unwrap_or("0").to_owned();
    let line = rated["data"]["ratedUsage"][0].clone();
    ensure!(
        line.is_object(),
        "no rated usage for the forecasts meter: {rated}"
    );
    let cost_atomic = line["amountAtomic"].as_str().unwrap_or("0").to_owned();
    step(
        out,
        11,
        "metering",
        &[
            format!(
                "the API reported each forecast it served as a CloudEvent to POST /v1/events: \
                 `forecasts` counts {forecast_count} for {}",
                row(&forecasts)["subject"].as_str().unwrap_or("?")
            ),
            format!(
                "Purser metered its own paid requests: `paid-requests` sums {paid_amount} atomic \
                 units on {}",
                row(&payments)["groups"]["network"].as_str().unwrap_or("?")
            ),
            format!(
                "rated (GraphQL ratedUsage): {} forecasts, {} billable after the free one, ${} \
                 = {cost_atomic} atomic units of USDC",
                line["quantity"].as_str().unwrap_or("?"),
                line["billable"].as_str().unwrap_or("?"),
                line["amountUsd"].as_str().unwrap_or("?"),
            ),
        ],
    )?;
    Ok(DemoReport {
        metered_forecasts: forecast_count,
        metered_paid_amount: paid_amount,
        rated_forecast_cost: cost_atomic,
        ..walked
    })
}

/// The `SIGN-IN-WITH-X` header answering the challenge's sign-in offer, signed by the agent.
fn sign_in(agent: &Agent, challenge: &PaymentRequired) -> anyhow::Result<String> {
    let offer: SiwxOffer = serde_json::from_value(
        challenge
            .extensions
            .as_ref()
            .and_then(|e| e.get(purser_x402::siwx::EXTENSION))
            .cloned()
            .ok_or_else(|| anyhow!("the 402 offers no sign-in"))?,
    )?;
    // The chain the payment is offered on, as the SDK's client picks it.
    let network = challenge.accepts.first().map(|a| a.network.as_str());
    let chain = offer
        .supported_chains
        .iter()
        .find(|c| Some(c.chain_id.as_str()) == network)
        .ok_or_else(|| anyhow!("the sign-in offer names no chain the payment is offered on"))?;
    let payload = purser_entitlement::siwx::answer(&offer, chain, &agent.wallet.signer())?;
    Ok(purser_x402::siwx::encode(&payload))
}

/// The `PAYMENT-SIGNATURE` header: an `exact` payload for `offer`, signed by the agent.
fn sign(
    agent: &Agent,
    chain: &DevnetChain,
    required: &PaymentRequired,
    offer: &PaymentRequirements,
) -> anyhow::Result<String> {
    let token = chain.token();
    let asset: Address = offer.asset.parse()?;
    if asset != token.address {
        bail!(
            "the offer asks for token {asset}, the agent's wallet holds {}",
            token.address
        );
    }
    let pay_to: Address = offer.pay_to.parse()?;
    let value = offer.amount.atomic();
    let payment = Payment {
        valid_before: now() + offer.max_timeout_seconds,
        nonce: random_nonce(),
        ..Payment::new(chain, &agent.wallet, pay_to, value)
    };
    let payload = payment.payload_answering(&agent.wallet, chain.chain_id(), required, offer);
    Ok(encode_json(&payload))
}

/// The merchant's API: a forecast per city, unaware of payments. It reports each forecast it
/// serves to Purser as a usage event (a CloudEvent), for the payer the gateway names in
/// `X-Purser-Payer`, before answering.
async fn start_upstream(purser_url: String, key: String) -> anyhow::Result<String> {
    use axum::extract::Path;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::get;
    let http = reqwest::Client::new();
    let app = axum::Router::new().route(
        "/weather/{city}",
        get(move |Path(city): Path<String>, headers: HeaderMap| {
            let (http, purser_url, key) = (http.clone(), purser_url.clone(), key.clone());
            async move {
                if let Some(payer) = headers
                    .get(purser_axum::PAYER_HEADER)
                    .and_then(|v| v.to_str().ok())
                {
                    let event = json!({
                        "specversion": "1.0",
                        "id": uuid::Uuid::now_v7().to_string(),
                        "source": FORECAST_SOURCE,
                        "type": FORECAST_EVENT,
                        // One subject per wallet: the gateway names it in lower case.
                        "subject": payer,
                        "data": { "city": city },
                    });
                    let sent = http
                        .post(format!("{purser_url}/v1/events"))
                        .bearer_auth(&key)
                        .header("content-type", "application/cloudevents+json")
                        .body(event.to_string())
                        .send()
                        .await;
                    if !sent.is_ok_and(|r| r.status().is_success()) {
                        return Err(StatusCode::SERVICE_UNAVAILABLE);
                    }
                }
                Ok(axum::Json(
                    json!({ "city": city, "forecast": "sunny", "high_c": 24, "low_c": 15 }),
                ))
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

fn weather_resource(gateway_url: &str, networks: &[String]) -> ResourceDraft {
    ResourceDraft {
        kind: ResourceKind::Http,
        url: format!("{gateway_url}/weather/:city"),
        method: Some("GET".into()),
        tool: None,
        name: "Weather forecast".into(),
        description: "Today's weather forecast for a city: outlook, high and low".into(),
        mime_type: Some("application/json".into()),
        service_name: Some("Demo Weather Co".into()),
        tags: vec!["weather".into(), "forecast".into()],
        icon_url: None,
        input_schema: None,
        output_schema: None,
        input_example: None,
        output_example: Some(
            json!({ "city": "lisbon", "forecast": "sunny", "high_c": 24, "low_c": 15 }),
        ),
        body_type: None,
        price: PriceSpec::Usd {
            usd: PRICE_USD.into(),
        },
        accepts: networks
            .iter()
            .map(|network| AcceptDraft {
                network: network.clone(),
                ..Default::default()
            })
            .collect(),
        max_timeout_seconds: None,
        // One payment buys a day of forecasts for the paying wallet.
        repeat_access: Some(RepeatAccess {
            group: None,
            duration_seconds: Some(86_400),
            uses: None,
        }),
        escrow: None,
    }
}

/// Asks for `url` until its 402's first offer is on a network `leads` accepts (the router
/// quotes every rail in the background; a fresh quote shows within a second or two).
async fn challenge_led_by(
    agent: &Agent,
    url: &str,
    leads: impl Fn(&str) -> bool,
) -> anyhow::Result<PaymentRequired> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let unpaid = agent.http.get(url).send().await?;
        ensure!(
            unpaid.status() == 402,
            "GET {url} without payment answered {}, not 402",
            unpaid.status()
        );
        let header = unpaid
            .headers()
            .get(PAYMENT_REQUIRED)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| anyhow!("the 402 has no {PAYMENT_REQUIRED} header"))?;
        let required: PaymentRequired = decode_payment_required(header)?;
        if required
            .accepts
            .first()
            .is_some_and(|a| leads(a.network.as_str()))
        {
            return Ok(required);
        }
        if tokio::time::Instant::now() >= deadline {
            let order: Vec<&str> = required
                .accepts
                .iter()
                .map(|a| a.network.as_str())
                .collect();
            bail!("the 402's offers stayed in the order {order:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Every rail's last quote, as GraphQL's `railQuotes` answers it to the operator.
async fn rail_quotes(agent: &Agent, operator_key: &str) -> anyhow::Result<Value> {
    let answer: Value = agent
        .http
        .post(format!("{}/graphql", agent.purser_url))
        .bearer_auth(operator_key)
        .json(&json!({
            "query": "{ railQuotes { network kind healthy cost { executionFee l1Fee total } } }"
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    answer
        .pointer("/data/railQuotes")
        .cloned()
        .ok_or_else(|| anyhow!("railQuotes answered {answer}"))
}

/// One line per offer of `required`, with what settling on its rail costs.
fn offer_lines(required: &PaymentRequired, quotes: &Value) -> Vec<String> {
    required
        .accepts
        .iter()
        .enumerate()
        .map(|(i, offer)| {
            let quote = quotes
                .as_array()
                .and_then(|q| q.iter().find(|q| q["network"] == offer.network.as_str()));
            let cost = |field: &str| -> u128 {
                quote
                    .and_then(|q| q["cost"][field].as_str())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_default()
            };
            format!(
                "  {}. {} ({}): settling costs {} wei of ETH = ${:.4} (execution {}, L1 {})",
                i + 1,
                offer.network,
                quote.and_then(|q| q["kind"].as_str()).unwrap_or("?"),
                cost("total"),
                // At the demo's fixed price of ETH.
                cost("total") as f64 / 1e18 * ETH_USD,
                cost("executionFee"),
                cost("l1Fee"),
            )
        })
        .collect()
}

fn gwei(wei: u128) -> String {
    purser_domain::money::Money::new(Amount::from_atomic(wei), 9)
        .map_or_else(|_| wei.to_string(), |m| m.to_units_string())
}

/// The devnet's rail: its token, and its settlement signer's key in a file under `dir`.
fn rail(chain: &DevnetChain, signer: &TestAccount, dir: &Path) -> anyhow::Result<RailConfig> {
    let key_file = dir.join("settlement-signer.key");
    std::fs::write(&key_file, signer.private_key_hex())
        .with_context(|| format!("writing {}", key_file.display()))?;
    Ok(RailConfig {
        confirmations: 1,
        receipt_timeout_seconds: 20,
        ..chain.rail_config(&key_file)
    })
}

async fn mint_key(
    store: &dyn Store,
    tenant: Option<TenantId>,
    role: Role,
    name: &str,
) -> anyhow::Result<String> {
    let (record, token) = mint_api_key(tenant, role, name)?;
    store.insert_api_key(record).await?;
    Ok(token.expose().to_owned())
}

async fn bind(address: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address).await.with_context(|| {
        format!("{what} cannot listen on {address} (is another Purser running? choose another address with --listen / --gateway-listen)")
    })
}

/// Whole tokens, for people.
fn units(atomic: U256, decimals: u8) -> String {
    let amount = u128::try_from(atomic).unwrap_or(u128::MAX);
    match Money::new(Amount::from_atomic(amount), decimals) {
        Ok(money) => format!("{} USDC", money.to_units_string()),
        Err(_) => format!("{atomic} atomic units"),
    }
}

fn step(out: &mut (dyn Write + Send), n: u8, name: &str, lines: &[String]) -> std::io::Result<()> {
    for (i, line) in lines.iter().enumerate() {
        if i == 0 {
            writeln!(out, "[{n}] {name:<11} {line}")?;
        } else {
            writeln!(out, "    {:<11} {line}", "")?;
        }
    }
    out.flush()
}
