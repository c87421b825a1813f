//! The settlement router: which rail a payment should settle on, and when.
//!
//! [`Router::run`] quotes every rail in the background (each kind's fee model, in
//! `purser_chain::fees`) and reads the price feeds that turn gas into the payments' assets; it
//! publishes a [`Snapshot`] after every round. Writing a 402 reads that snapshot and nothing
//! else ([`Router`] implements `purser_domain::routing::OfferRouter`): no RPC, no lock, no
//! database on the request path. A rail whose quotes fail is taken out by its circuit breaker
//! ([`breaker`]) and probed back; one whose quote is stale, whose head stopped moving, whose
//! price feed is stale or whose signers cannot pay for gas is out until that changes.
//! [`policy::order`] orders and filters offers by a tenant's policy; [`when`] answers whether
//! scheduled work is worth settling now.

pub mod breaker;
pub mod config;
pub mod policy;
pub mod when;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy::primitives::Address;
use arc_swap::ArcSwap;
use purser_chain::config::PriceFeedConfig;
use purser_chain::fees::{FeedAnswer, SettlementCost};
use purser_chain::rails::{Rail, Rails};
use purser_domain::auth::TenantScope;
use purser_domain::money::Amount;
use purser_domain::repo::RoutingRepository;
use purser_domain::routing::{
    Candidate, OfferRouter, RouteDecision, RouteRecorder, Routed, RoutingPolicy,
};
use purser_domain::{Error, Result};

pub use config::RouterConfig;

use crate::breaker::Breaker;
use crate::policy::Standing;

/// Whether a rail (or a feed) may be offered, and if not why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Healthy,
    /// Out of offers: a stable reason (`rpc_unreachable`, `oracle_failed`, `quote_stale`,
    /// `head_stalled`, `signer_low_balance`, `no_signer`, `price_feed_stale`,
    /// `price_feed_failed`, `starting`) and what was seen.
    Unhealthy {
        reason: &'static str,
        detail: String,
    },
}

impl Health {
    pub fn is_healthy(&self) -> bool {
        matches!(self, Health::Healthy)
    }

    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Health::Healthy => None,
            Health::Unhealthy { reason, .. } => Some(reason),
        }
    }

    fn unhealthy(reason: &'static str, detail: impl Into<String>) -> Self {
        Health::Unhealthy {
            reason,
            detail: detail.into(),
        }
    }
}

/// A rail's last good quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    pub cost: SettlementCost,
    /// When it was read, unix milliseconds.
    pub quoted_at_ms: u64,
}

/// What the router knows of one rail.
#[derive(Debug, Clone)]
pub struct RailView {
    pub network: String,
    pub kind: &'static str,
    pub gas_token: String,
    pub confirmations: u64,
    pub quote: Option<Quote>,
    pub health: Health,
    /// The mean time between blocks seen, or the kind's usual when not yet seen.
    pub block_time_ms: u64,
    /// The poorest signer's balance of the gas token, when read.
    pub signer_balance_wei: Option<u128>,
}

impl RailView {
    /// The expected time from broadcast to the configured confirmations.
    pub fn expected_time_ms(&self) -> u64 {
        self.block_time_ms.saturating_mul(self.confirmations.max(1))
    }
}

/// A price feed as last read.
#[derive(Debug, Clone)]
pub struct FeedView {
    pub gas_token: String,
    pub currency: String,
    /// `fixed` or the aggregator's `network/address`.
    pub source: String,
    pub answer: Option<FeedAnswer>,
    pub health: Health,
}

/// Everything the router knows at one moment: what every 402 written until the next round reads.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub rails: BTreeMap<String, RailView>,
    pub feeds: Vec<FeedView>,
    /// Which round this is (0: none yet).
    pub round: u64,
}

impl Snapshot {
    pub fn feed(&self, gas_token: &str, currency: &str) -> Option<&FeedView> {
        self.feeds
            .iter()
            .find(|f| f.gas_token == gas_token && f.currency == currency)
    }
}

enum FeedSource {
    Fixed(FeedAnswer),
    Aggregator { rail: Arc<Rail>, address: Address },
}

struct Feed {
    gas_token: String,
    currency: String,
    source: FeedSource,
    max_age: Duration,
}

impl Feed {
    fn shown(&self) -> String {
        match &self.source {
            FeedSource::Fixed(_) => "fixed".to_owned(),
            FeedSource::Aggregator { rail, address } => format!("{}/{address:#x}", rail.network),
        }
    }
}

/// The settlement router. Cheap to clone; one per process.
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
    /// Where tenants' policies are read for the decision kept with a settlement; without it
    /// a decision records the default policy.
    policies: Option<Arc<dyn RoutingRepository>>,
}

struct Inner {
    rails: Arc<Rails>,
    config: RouterConfig,
    feeds: Vec<Feed>,
    snapshot: ArcSwap<Snapshot>,
    /// What the rounds remember of each rail; held for the length of a round.
    tracks: tokio::sync::Mutex<BTreeMap<String, Track>>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("rails", &self.inner.rails.iter().count())
            .field("feeds", &self.inner.feeds.len())
            .finish()
    }
}

/// A fixed price such as `3000.25`, exactly (`Money`'s parsing, at 18 decimals).
fn parse_fixed_price(raw: &str) -> Option<FeedAnswer> {
    const DECIMALS: u8 = 18;
    let money = purser_domain::money::Money::parse_units(raw, DECIMALS).ok()?;
    (!money.amount().is_zero()).then_some(FeedAnswer {
        answer: money.amount().atomic(),
        decimals: DECIMALS,
        updated_at: u64::MAX,
    })
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// The usual time between blocks of a kind of chain, before any has been seen.
fn usual_block_time_ms(kind: &str) -> u64 {
    match kind {
        "op-stack" => 2_000,
        "arbitrum" => 250,
        _ => 12_000,
    }
}

impl Router {
    /// A router over `rails`. Every rail's gas token must have a price in the currency of each
    /// of its assets, and every feed must be one of a fixed price or an aggregator on a
    /// configured rail: anything else is a start-up error naming the key.
    pub fn new(rails: Arc<Rails>, config: RouterConfig) -> Result<Self> {
        let mut feeds = Vec::with_capacity(config.price_feeds.len());
        for (index, feed) in config.price_feeds.iter().enumerate() {
            feeds.push(open_feed(&rails, index, feed)?);
        }
        if config.enabled {
            for rail in rails.iter() {
                for asset in &rail.assets {
                    let priced = feeds
                        .iter()
                        .any(|f| f.gas_token == rail.gas_token && f.currency == asset.currency);
                    if !priced {
                        return Err(Error::invalid_input(format!(
                            "`router.price_feeds` has no price of {} in {}, which rail {} needs \
                             (its gas is paid in {} and its asset {:#x} is worth {}); add one, or \
                             set `router.enabled = false`",
                            rail.gas_token,
                            asset.currency,
                            rail.network,
                            rail.gas_token,
                            asset.address,
                            asset.currency
                        )));
                    }
                }
            }
        }
        let tracks = rails
            .iter()
            .map(|rail| {
                (
                    rail.network.clone(),
                    Track::new(&config, rail.kind.as_str()),
                )
            })
            .collect();
        let router = Self {
            inner: Arc::new(Inner {
                rails,
                config,
                feeds,
                snapshot: ArcSwap::from_pointee(Snapshot::default()),
                tracks: tokio::sync::Mutex::new(tracks),
            }),
            policies: None,
        };
        router.inner.snapshot.store(Arc::new(router.starting()));
        Ok(router)
    }

    /// Reads tenants' policies from `policies` for the decisions kept with settlements.
    #[must_use]
    pub fn with_policies(mut self, policies: Arc<dyn RoutingRepository>) -> Self {
        self.policies = Some(policies);
        self
    }

    pub fn config(&self) -> &RouterConfig {
        &self.inner.config
    }

    pub fn rails(&self) -> &Arc<Rails> {
        &self.inner.rails
    }

    /// What the router knows now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.snapshot.load_full()
    }

    /// The snapshot before any round: every rail `starting`, unquoted.
    fn starting(&self) -> Snapshot {
        Snapshot {
            rails: self
                .inner
                .rails
                .iter()
                .map(|rail| {
                    let track = Track::new(&self.inner.config, rail.kind.as_str());
                    let view = track.view(rail, Health::unhealthy("starting", "not quoted yet"));
                    (rail.network.clone(), view)
                })
                .collect(),
            feeds: self
                .inner
                .feeds
                .iter()
                .map(|f| FeedView {
                    gas_token: f.gas_token.clone(),
                    currency: f.currency.clone(),
                    source: f.shown(),
                    answer: match &f.source {
                        FeedSource::Fixed(answer) => Some(*answer),
                        FeedSource::Aggregator { .. } => None,
                    },
                    health: match &f.source {
                        FeedSource::Fixed(_) => Health::Healthy,
                        FeedSource::Aggregator { .. } => {
                            Health::unhealthy("starting", "not read yet")
                        }
                    },
                })
                .collect(),
            round: 0,
        }
    }

    /// Quotes every rail and reads every feed, once per interval, until `stop` resolves.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        if !self.inner.config.enabled {
            stop.await;
            return;
        }
        tokio::pin!(stop);
        let mut interval = tokio::time::interval(self.inner.config.quote_interval());
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = interval.tick() => {}
            }
            self.round_once().await;
        }
    }

    /// One round: every feed and every rail, concurrently; then the new snapshot. The loop of
    /// [`Router::run`] calls it; tests and tools may call it directly. Rounds never overlap.
    pub async fn round_once(&self) {
        let mut tracks = self.inner.tracks.lock().await;
        self.round(&mut tracks).await;
    }

    async fn round(&self, tracks: &mut BTreeMap<String, Track>) {
        let now = unix_now();
        let feeds = futures::future::join_all(self.inner.feeds.iter().map(|f| read_feed(f, now)));
        let quotes = futures::future::join_all(self.inner.rails.iter().map(|rail| {
            let attempt = tracks
                .get_mut(&rail.network)
                .is_some_and(|t| t.breaker.may_attempt(Instant::now()));
            async move {
                if !attempt {
                    return None;
                }
                let quoted = rail.estimate_settlement(now.as_secs()).await;
                let balance = match &quoted {
                    Ok(_) => Some(rail.poorest_signer_balance().await),
                    Err(_) => None,
                };
                Some((quoted, balance))
            }
        }));
        let (feeds, quotes) = tokio::join!(feeds, quotes);
        let previous = self.snapshot();
        let mut rails = BTreeMap::new();
        for (rail, outcome) in self.inner.rails.iter().zip(quotes) {
            let Some(track) = tracks.get_mut(&rail.network) else {
                continue;
            };
            let view = track.advance(rail, outcome, now, &self.inner.config);
            record_rail_metrics(&view, now);
            rails.insert(rail.network.clone(), view);
        }
        for feed in &feeds {
            metrics::gauge!("purser_router_feed_healthy", "gas_token" => feed.gas_token.clone(), "currency" => feed.currency.clone())
                .set(if feed.health.is_healthy() { 1.0 } else { 0.0 });
        }
        self.inner.snapshot.store(Arc::new(Snapshot {
            rails,
            feeds,
            round: previous.round + 1,
        }));
    }

    /// The standing of one offer in `snapshot`.
    fn standing(&self, snapshot: &Snapshot, candidate: &Candidate<'_>, now_ms: u64) -> Standing {
        let Some(view) = snapshot.rails.get(candidate.network) else {
            return Standing::Unknown;
        };
        if let Health::Unhealthy { reason, .. } = &view.health {
            // A rail still starting is not known to be broken.
            return if *reason == "starting" {
                Standing::Unknown
            } else {
                Standing::Unhealthy(reason)
            };
        }
        let Some(quote) = &view.quote else {
            return Standing::Unknown;
        };
        let max_age =
            u64::try_from(self.inner.config.max_quote_age().as_millis()).unwrap_or(u64::MAX);
        if now_ms.saturating_sub(quote.quoted_at_ms) > max_age {
            return Standing::Unhealthy("quote_stale");
        }
        let Some(asset) = self
            .inner
            .rails
            .get(candidate.network)
            .and_then(|rail| rail.asset(candidate.asset))
        else {
            return Standing::Unknown;
        };
        let Some(feed) = snapshot.feed(&view.gas_token, &asset.currency) else {
            return Standing::Unknown;
        };
        if let Health::Unhealthy { reason, .. } = &feed.health {
            return Standing::Unhealthy(reason);
        }
        let Some(answer) = feed.answer else {
            return Standing::Unknown;
        };
        Standing::Quoted {
            cost: answer.convert(quote.cost.total, asset.decimals),
            time_ms: view.expected_time_ms(),
        }
    }

    /// The all-in cost of settling on `network` in `asset` now, in the asset's atomic units;
    /// `None` when the rail has no usable quote. For the settle-now-or-wait question and for
    /// reports.
    pub fn cost_in_asset(&self, network: &str, asset: &str) -> Option<u128> {
        let snapshot = self.snapshot();
        let candidate = Candidate {
            network,
            asset,
            amount: Amount::from_atomic(0),
        };
        match self.standing(&snapshot, &candidate, now_ms()) {
            Standing::Quoted { cost, .. } => Some(cost),
            _ => None,
        }
    }
}

#[async_trait::async_trait]
impl RouteRecorder for Router {
    async fn decision(&self, scope: TenantScope, network: &str) -> RouteDecision {
        let policy = match &self.policies {
            Some(policies) => match policies.routing_policy(scope).await {
                Ok(policy) => Some(policy.unwrap_or_default()),
                // The record loses its policy, never the payment its settlement.
                Err(err) => {
                    tracing::warn!(error = %err.chain(), "reading the routing policy for a settlement's decision");
                    None
                }
            },
            None => Some(RoutingPolicy::default()),
        };
        let policy = policy.map(|p| {
            serde_json::json!({
                "strategy": p.strategy.as_str(),
                "costWeightPercent": p.cost_weight_percent,
                "maxFeeRatioBps": p.max_fee_ratio_bps,
            })
        });
        let snapshot = self.snapshot();
        let rails: Vec<serde_json::Value> = snapshot
            .rails
            .values()
            .map(|view| {
                serde_json::json!({
                    "network": view.network,
                    "kind": view.kind,
                    "healthy": view.health.is_healthy(),
                    "reason": view.health.reason(),
                    "costWei": view.quote.as_ref().map(|q| q.cost.total.to_string()),
                    "cost": view.quote.as_ref().map(|q| serde_json::json!({
                        "blockNumber": q.cost.block_number,
                        "executionGas": q.cost.execution_gas,
                        "baseFeePerGas": q.cost.base_fee_per_gas.to_string(),
                        "priorityFeePerGas": q.cost.priority_fee_per_gas.to_string(),
                        "executionFee": q.cost.execution_fee.to_string(),
                        "l1Gas": q.cost.l1_gas,
                        "l1Fee": q.cost.l1_fee.to_string(),
                        "operatorFee": q.cost.operator_fee.to_string(),
                    })),
                    "quotedAtMs": view.quote.as_ref().map(|q| q.quoted_at_ms),
                    "expectedTimeMs": view.expected_time_ms(),
                })
            })
            .collect();
        let estimated = snapshot
            .rails
            .get(network)
            .and_then(|view| view.quote.as_ref())
            .map(|q| Amount::from_atomic(q.cost.total));
        RouteDecision {
            estimated_cost_wei: estimated,
            json: serde_json::json!({
                "chosen": network,
                "routing": self.inner.config.enabled,
                "policy": policy,
                "round": snapshot.round,
                "rails": rails,
            })
            .to_string(),
        }
    }

    fn observed(&self, network: &str, estimated_wei: u128, actual_wei: u128) {
        if actual_wei == 0 {
            return;
        }
        // (estimate - actual) / actual: positive when the estimate was high.
        let error = (estimated_wei as f64 - actual_wei as f64) / actual_wei as f64;
        metrics::histogram!("purser_router_estimation_error_ratio", "network" => network.to_owned())
            .record(error);
    }
}

fn now_ms() -> u64 {
    u64::try_from(unix_now().as_millis()).unwrap_or(u64::MAX)
}

impl OfferRouter for Router {
    fn route(&self, policy: &RoutingPolicy, candidates: &[Candidate<'_>]) -> Routed {
        if !self.inner.config.enabled {
            return purser_domain::routing::Unrouted.route(policy, candidates);
        }
        let snapshot = self.inner.snapshot.load();
        let now = now_ms();
        let standings: Vec<Standing> = candidates
            .iter()
            .map(|c| self.standing(&snapshot, c, now))
            .collect();
        let amounts: Vec<_> = candidates.iter().map(|c| c.amount).collect();
        policy::order(policy, &amounts, &standings)
    }
}

fn open_feed(rails: &Rails, index: usize, config: &PriceFeedConfig) -> Result<Feed> {
    let key = format!("router.price_feeds[{index}]");
    let source = match (&config.fixed, &config.network, &config.aggregator) {
        (Some(fixed), None, None) => {
            FeedSource::Fixed(parse_fixed_price(fixed).ok_or_else(|| {
                Error::invalid_input(format!(
                    "`{key}.fixed` must be a positive decimal number such as \"3000.50\""
                ))
            })?)
        }
        (None, Some(network), Some(aggregator)) => {
            let rail = rails.get(network).cloned().ok_or_else(|| {
                Error::invalid_input(format!(
                    "`{key}.network` names {network}, which is not a configured rail"
                ))
            })?;
            let address = aggregator.parse::<Address>().map_err(|_| {
                Error::invalid_input(format!("`{key}.aggregator` is not an EVM address"))
            })?;
            FeedSource::Aggregator { rail, address }
        }
        _ => {
            return Err(Error::invalid_input(format!(
                "`{key}` needs either `fixed`, or both `network` and `aggregator`"
            )));
        }
    };
    if config.gas_token.is_empty() || config.currency.is_empty() {
        return Err(Error::invalid_input(format!(
            "`{key}` needs a `gas_token` and a `currency`"
        )));
    }
    Ok(Feed {
        gas_token: config.gas_token.clone(),
        currency: config.currency.clone(),
        source,
        max_age: Duration::from_secs(config.max_age_seconds.max(1)),
    })
}

async fn read_feed(feed: &Feed, now: Duration) -> FeedView {
    let (answer, health) = match &feed.source {
        FeedSource::Fixed(answer) => (Some(*answer), Health::Healthy),
        FeedSource::Aggregator { rail, address } => match rail.read_price_feed(*address).await {
            Ok(answer) => {
                let age = now.as_secs().saturating_sub(answer.updated_at);
                let health = if age > feed.max_age.as_secs() {
                    Health::unhealthy(
                        "price_feed_stale",
                        format!(
                            "the feed last changed {age} s ago, more than its bound of {} s",
                            feed.max_age.as_secs()
                        ),
                    )
                } else {
                    Health::Healthy
                };
                (Some(answer), health)
            }
            Err(fault) => (
                None,
                Health::unhealthy("price_feed_failed", fault.to_string()),
            ),
        },
    };
    FeedView {
        gas_token: feed.gas_token.clone(),
        currency: feed.currency.clone(),
        source: feed.shown(),
        answer,
        health,
    }
}

/// What the loop remembers of one rail between rounds.
struct Track {
    breaker: Breaker,
    quote: Option<Quote>,
    last_failure: Option<(&'static str, String)>,
    head: Option<(u64, u64)>,
    block_time_ms: u64,
    signer_balance_wei: Option<u128>,
}

type Outcome = Option<(
    std::result::Result<SettlementCost, purser_chain::fees::FeeFault>,
    Option<std::result::Result<Option<u128>, purser_chain::rpc::RpcFailure>>,
)>;

impl Track {
    fn new(config: &RouterConfig, kind: &str) -> Self {
        Self {
            breaker: Breaker::new(config.failures_to_open, config.open_for()),
            quote: None,
            last_failure: None,
            head: None,
            block_time_ms: usual_block_time_ms(kind),
            signer_balance_wei: None,
        }
    }

    /// Takes one round's outcome (`None`: not attempted, the breaker is open) and answers the
    /// rail's view.
    fn advance(
        &mut self,
        rail: &Rail,
        outcome: Outcome,
        now: Duration,
        config: &RouterConfig,
    ) -> RailView {
        let now_ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        match outcome {
            Some((Ok(cost), balance)) => {
                self.breaker.succeeded();
                self.last_failure = None;
                if let Some((block, timestamp)) = self.head
                    && cost.block_number > block
                    && cost.block_timestamp >= timestamp
                {
                    let per_block = (cost.block_timestamp - timestamp).saturating_mul(1_000)
                        / (cost.block_number - block);
                    // A running mean, a quarter per observation.
                    let mean = i128::from(self.block_time_ms);
                    let next = mean + (i128::from(per_block) - mean) / 4;
                    self.block_time_ms = u64::try_from(next.max(1)).unwrap_or(1);
                }
                if self.head.is_none_or(|(block, _)| cost.block_number > block) {
                    self.head = Some((cost.block_number, cost.block_timestamp));
                }
                // A balance that could not be read keeps the last one read.
                if let Some(Ok(balance)) = balance {
                    self.signer_balance_wei = balance;
                }
                self.quote = Some(Quote {
                    cost,
                    quoted_at_ms: now_ms,
                });
            }
            Some((Err(fault), _)) => {
                self.breaker.failed(Instant::now());
                tracing::warn!(network = %rail.network, error = %fault, "a rail's quote failed");
                self.last_failure = Some((fault.label(), fault.to_string()));
            }
            None => {}
        }
        let health = self.health(rail, now, config);
        self.view(rail, health)
    }

    /// What a snapshot shows of the rail.
    fn view(&self, rail: &Rail, health: Health) -> RailView {
        RailView {
            network: rail.network.clone(),
            kind: rail.kind.as_str(),
            gas_token: rail.gas_token.clone(),
            confirmations: rail.confirmations,
            quote: self.quote.clone(),
            health,
            block_time_ms: self.block_time_ms,
            signer_balance_wei: self.signer_balance_wei,
        }
    }

    fn health(&self, rail: &Rail, now: Duration, config: &RouterConfig) -> Health {
        if self.breaker.is_tripped() {
            let (reason, detail) = self
                .last_failure
                .clone()
                .unwrap_or(("rpc_unreachable", "quotes failed".to_owned()));
            return Health::unhealthy(reason, detail);
        }
        let Some(quote) = &self.quote else {
            return match &self.last_failure {
                Some((reason, detail)) => Health::unhealthy(reason, detail.clone()),
                None => Health::unhealthy("starting", "not quoted yet"),
            };
        };
        let now_ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        let max_age = u64::try_from(config.max_quote_age().as_millis()).unwrap_or(u64::MAX);
        if now_ms.saturating_sub(quote.quoted_at_ms) > max_age {
            return Health::unhealthy("quote_stale", "no fresh quote");
        }
        if config.stall_after_seconds > 0 {
            let age = now.as_secs().saturating_sub(quote.cost.block_timestamp);
            if age > config.stall_after_seconds {
                return Health::unhealthy(
                    "head_stalled",
                    format!(
                        "the latest block is {age} s old (block {})",
                        quote.cost.block_number
                    ),
                );
            }
        }
        if rail.signers().is_empty() {
            return Health::unhealthy("no_signer", "the rail has no settlement signer");
        }
        if let Some(balance) = self.signer_balance_wei {
            let needed = quote
                .cost
                .total
                .saturating_mul(u128::from(config.min_signer_settlements));
            if balance < needed {
                return Health::unhealthy(
                    "signer_low_balance",
                    format!(
                        "a signer holds {balance} wei, less than {} settlements at {} wei",
                        config.min_signer_settlements, quote.cost.total
                    ),
                );
            }
        }
        Health::Healthy
    }
}

fn record_rail_metrics(view: &RailView, now: Duration) {
    let network = view.network.clone();
    metrics::gauge!("purser_router_rail_healthy", "network" => network.clone())
        .set(if view.health.is_healthy() { 1.0 } else { 0.0 });
    if let Some(quote) = &view.quote {
        let age = (now.as_millis() as f64 - quote.quoted_at_ms as f64).max(0.0) / 1_000.0;
        metrics::gauge!("purser_router_quote_age_seconds", "network" => network.clone()).set(age);
        metrics::gauge!("purser_router_quote_cost_wei", "network" => network)
            .set(quote.cost.total as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_prices_parse_exactly() {
        let answer = parse_fixed_price("3000.25").unwrap();
        assert_eq!(
            (answer.answer, answer.decimals),
            (3_000_250_000_000_000_000_000, 18)
        );
        // The same price converts gas the same way whatever its spelling.
        assert_eq!(
            parse_fixed_price("3000")
                .unwrap()
                .convert(10u128.pow(15), 6),
            parse_fixed_price("3000.000")
                .unwrap()
                .convert(10u128.pow(15), 6)
        );
        assert_eq!(
            parse_fixed_price("3000")
                .unwrap()
                .convert(10u128.pow(15), 6),
            3_000_000
        );
        for bad in ["", "-1", "0", "1e3", "3,000", ".5", "1.0000000000000000001"] {
            assert!(parse_fixed_price(bad).is_none(), "{bad}");
        }
    }
}
