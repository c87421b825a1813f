//! Prepaid credit bought with x402: `GET /v1/credits/top-up?tenant=…&network=…&amount=…`.
//!
//! Without a payment it answers 402 with the price: `amount` atomic units of the rail's asset on
//! `network` (or `asset`, when the rail settles several), paid to the merchant's payout address
//! there. With a payment (`PAYMENT-SIGNATURE`, or v1's `X-PAYMENT`) it settles it through
//! Purser's facilitator and adds the amount to the payer's credit with that merchant, on the
//! ledger, once per settlement: presenting the same payment again answers the same top-up and
//! moves nothing (the spent authorization is not verified anew; the stored settlement of the
//! same signed authorization answers, when the facilitator finds it settled for this top-up's
//! requirements: for another amount or merchant the payment is refused as a new one would be).
//! Credit is issued only for a confirmed settlement: when the outcome is not known yet, the
//! answer is 202 with the settlement's id, and the same payment presented once it has confirmed
//! collects the credit.
//!
//! Any x402 client pays it; the balance is then spent by usage-priced calls through the
//! entitlement check's reservations (see [`crate::entitled`]).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::request::Parts;
use http::{HeaderMap, StatusCode};
use purser_axum::{MemoryReplayGuard, Offer, Paywall, Settled};
use purser_domain::auth::TenantScope;
use purser_domain::credits::CreditKey;
use purser_domain::id::TenantId;
use purser_domain::money::Amount;
use purser_domain::registry::Accept;
use purser_domain::settlement::{AuthorizationKey, Settlement, SettlementStatus};
use purser_domain::tenant::TenantStatus;
use purser_domain::{Error, ErrorCode};
use purser_http::ApiError;
use purser_registry::challenge;
use purser_x402::v2::{JsonObject, PaymentRequired, ResourceInfo};
use serde::Deserialize;
use serde_json::json;

use crate::check::AccessState;
use crate::{InProcessFacilitator, authorization_key};

/// How long a top-up's payment authorization may take to settle.
const TOP_UP_TIMEOUT_SECONDS: u32 = 300;

pub fn router(state: AccessState) -> Router {
    Router::new()
        .route("/v1/credits/top-up", get(top_up).post(top_up))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopUpQuery {
    tenant: String,
    /// The network to pay on; `None`: every network the merchant has a payout address on,
    /// ordered by the settlement router under the tenant's policy.
    #[serde(default)]
    network: Option<String>,
    /// Atomic units of the asset.
    amount: String,
    /// The token; `None`: the rail's first asset. Only with `network`.
    #[serde(default)]
    asset: Option<String>,
}

async fn top_up(
    State(state): State<AccessState>,
    Query(query): Query<TopUpQuery>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let tenant: TenantId = query.tenant.parse()?;
    let amount = Amount::parse_atomic(&query.amount)?;
    purser_domain::credits::check_credit_amount(amount)?;
    let scope = TenantScope::trusted(tenant);
    let offer = offer(&state, scope, &query, amount, &parts).await?;
    let repositories = state.gateway.repositories();
    // A payment presented before for this very top-up: its settlement answers again, without
    // verifying an authorization that is spent by now. The facilitator decides whether the
    // settlement is this top-up's (the same authorization, settled for these requirements);
    // one settled for another amount or merchant goes on as a new payment and is refused.
    if let Ok(Some((payload, _))) = purser_axum::engine::read_payment(&offer, &parts.headers)
        && let Some(requirements) = offer
            .required
            .accepts
            .iter()
            .find(|o| purser_x402::matching::accepted_matches(o, &payload.accepted))
        && let Ok(key) = authorization_key(&payload)
        && let Some(settlement) = state
            .gateway
            .facilitator
            .settled_as_requested(scope, &payload, requirements)
            .await?
        && !matches!(
            settlement.status,
            SettlementStatus::Failed | SettlementStatus::Rejected
        )
    {
        return credit(&state, scope, &settlement, &key, HeaderMap::new()).await;
    }
    // A new payment is settled (the facilitator settles an authorization at most once), then
    // credited (once per settlement).
    let paywall = Paywall::new(
        Arc::new(InProcessFacilitator::new(
            state.gateway.facilitator.clone(),
            scope,
        )),
        Arc::new(MemoryReplayGuard::default()),
    );
    let admitted = match paywall.admit(&offer, &parts.headers).await {
        Ok(admitted) => admitted,
        Err(reply) => return Ok(reply.into_response()),
    };
    let headers = match paywall.settle(&offer, &admitted).await {
        Settled::Paid { headers, .. } => headers,
        Settled::Refused(reply) => return Ok(reply.into_response()),
    };
    let key = authorization_key(&admitted.payload)?;
    let settlement = repositories
        .settlements
        .find_settlement_by_authorization(scope, &key)
        .await?
        .ok_or_else(|| Error::new(ErrorCode::Internal, "a settled top-up has no settlement"))?;
    credit(&state, scope, &settlement, &key, headers).await
}

/// The credit a settlement buys: added once it is confirmed (202 until then), answered with
/// the payer's balance and `headers` (the payment's response headers).
async fn credit(
    state: &AccessState,
    scope: TenantScope,
    settlement: &Settlement,
    key: &AuthorizationKey,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let repositories = state.gateway.repositories();
    let credit = CreditKey::new(&key.payer, &key.network, &key.asset)?;
    let mut response = if settlement.status == SettlementStatus::Confirmed {
        let topped_up = repositories
            .credits
            .top_up(scope, &credit, settlement.amount, Some(settlement.id))
            .await?;
        let balance = repositories.credits.credit_balance(scope, &credit).await?;
        tracing::info!(tenant = %scope.tenant_id(), settlement = %settlement.id, amount = %topped_up.amount, "credit topped up");
        Json(json!({
            "status": "credited",
            "settlementId": settlement.id.to_string(),
            "wallet": credit.wallet(),
            "network": credit.network(),
            "asset": credit.asset(),
            "amount": topped_up.amount.to_string(),
            "available": balance.available.to_string(),
        }))
        .into_response()
    } else {
        (
            StatusCode::ACCEPTED,
            Json(json!({
                "status": "pending",
                "settlementId": settlement.id.to_string(),
                "message": "the payment is not confirmed yet; present the same payment again to collect the credit once it is",
            })),
        )
            .into_response()
    };
    response.headers_mut().extend(headers);
    Ok(response)
}

/// The 402 for this top-up: the amount on the network's asset, to the merchant's payout
/// address there, for this very URL. Without a network: on every network the merchant takes
/// payments on (whose first asset counts in the same units), ordered by the settlement router.
async fn offer(
    state: &AccessState,
    scope: TenantScope,
    query: &TopUpQuery,
    amount: Amount,
    parts: &Parts,
) -> Result<Offer, Error> {
    let repositories = state.gateway.repositories();
    let not_found = || Error::not_found("tenant taking top-ups on this network");
    let tenant = repositories
        .tenants
        .get_tenant(scope.tenant_id())
        .await?
        .ok_or_else(not_found)?;
    if tenant.status != TenantStatus::Active {
        return Err(not_found());
    }
    if query.network.is_none() && query.asset.is_some() {
        return Err(Error::invalid_input(
            "asset names a token on one network: give network too",
        ));
    }
    let payouts = repositories.resources.payout_addresses(scope).await?;
    let rails = state.gateway.facilitator.rails();
    let mut accepts = Vec::new();
    let mut units: Option<(u8, &str)> = None;
    for payout in &payouts {
        let rail = match &query.network {
            Some(network) if *network != payout.network => continue,
            Some(network) => rails
                .get(network)
                .ok_or_else(|| Error::invalid_input("Purser does not settle on this network"))?,
            None => match rails.get(&payout.network) {
                Some(rail) => rail,
                None => continue,
            },
        };
        let asset = rail.assets.iter().find(|a| {
            query
                .asset
                .as_deref()
                .is_none_or(|wanted| wanted.eq_ignore_ascii_case(&a.address.to_string()))
        });
        let Some(asset) = asset else {
            if query.network.is_some() {
                return Err(Error::invalid_input(
                    "Purser does not settle this asset on this network",
                ));
            }
            continue;
        };
        // One amount, so one unit: networks whose token counts otherwise are not offered.
        let unit = (asset.decimals, asset.currency.as_str());
        if *units.get_or_insert(unit) != unit {
            continue;
        }
        let accept = Accept {
            scheme: "exact".into(),
            network: rail.network.clone(),
            asset: asset.address.to_checksum(None),
            amount,
            pay_to: payout.address.clone(),
            eip712_name: asset.name.clone(),
            eip712_version: asset.version.clone(),
            extra: None,
        };
        accepts.push(challenge::requirements(&accept, TOP_UP_TIMEOUT_SECONDS)?);
    }
    if accepts.is_empty() {
        return Err(not_found());
    }
    let mut resource = ResourceInfo::new(purser_axum::layer::url_of(&parts.headers, &parts.uri));
    resource.description = Some(format!("Prepaid credit with {}", tenant.name));
    resource.mime_type = Some("application/json".into());
    let mut required = PaymentRequired {
        x402_version: purser_x402::V2,
        error: None,
        resource,
        accepts,
        extensions: None,
        other: JsonObject::new(),
    };
    if query.network.is_none() {
        let policy = repositories
            .routing
            .routing_policy(scope)
            .await?
            .unwrap_or_default();
        challenge::route(&mut required, state.gateway.offer_router(), &policy);
        if required.accepts.is_empty() {
            // Only the tenant's fee guard leaves nothing to offer.
            return Err(Error::invalid_input(
                "no network settles a top-up of this amount within the merchant's fee limit",
            ));
        }
    }
    Ok(Offer::new(required))
}
