//! The facilitator: verification, and settlement exactly once.
//!
//! Settlement is driven through the settlement record's state machine (see
//! `purser_domain::settlement`): claim the authorization, verify it on chain, record the signed
//! transaction, broadcast it, wait for a final receipt. Every step is durable before the next
//! one starts, so a crash, a timeout or a duplicate request resumes rather than repeats; the
//! reconciler (`crate::reconcile`) finishes what a request could not.

use std::sync::Arc;
use std::time::{Duration, Instant};

use purser_chain::eip3009::{Broadcast, ExactRequirement, ExactTransfer, Verdict, hex_of};
use purser_chain::rails::{Asset, Rail, Rails};
use purser_domain::auth::TenantScope;
use purser_domain::id::{AttemptId, SettlementId};
use purser_domain::money::Amount;
use purser_domain::repo::SettlementRepository;
use purser_domain::routing::RouteRecorder;
use purser_domain::settlement::{
    Attempt, AttemptKind, AuthorizationKey, ChainOutcome, Claim, NetworkCost, NewSettlement,
    PaymentIdentifierClaim, Settlement, SettlementStatus,
};
use purser_domain::{Error, ErrorCode, Result};
use purser_x402::facilitator::FacilitatorRequest;
use purser_x402::network::NetworkPattern;
use purser_x402::payment_identifier::{PAYMENT_IDENTIFIER, PaymentIdentifier};
use purser_x402::{
    PaymentPayload, PaymentRequirements, Reason, SettleResponse, SupportedKind, SupportedResponse,
    VerifyResponse, X402Version,
};
use sha2::{Digest, Sha256};

use crate::config::FacilitatorConfig;
use crate::replay::settles;
use crate::work::Work;

/// A waiting settlement looks at its record and the chain after this, then twice as long
/// each time, up to [`POLL_INTERVAL_MAX`]: a receipt that is there at once is seen at once,
/// a slow chain is not hammered.
const POLL_INTERVAL_FIRST: Duration = Duration::from_millis(5);
const POLL_INTERVAL_MAX: Duration = Duration::from_millis(200);
/// How much longer than the receipt timeout a duplicate request waits for the request that
/// owns the settlement to broadcast, before treating it as abandoned.
const JOIN_GRACE: Duration = Duration::from_secs(15);

pub struct Facilitator {
    pub(crate) store: Arc<dyn SettlementRepository>,
    pub(crate) rails: Arc<Rails>,
    pub(crate) config: FacilitatorConfig,
    anonymous: Option<TenantScope>,
    /// The settlement router, which says why each settlement's rail was chosen.
    routes: Option<Arc<dyn RouteRecorder>>,
}

/// A request that parsed and passed every check that needs no chain.
pub(crate) struct Prepared {
    pub rail: Arc<Rail>,
    pub asset: Asset,
    pub work: Work,
    pub payload: PaymentPayload,
    pub requirements: PaymentRequirements,
    /// The network as the request named it (a v1 name for v1 requests).
    pub network_label: String,
    pub version: X402Version,
}

impl Prepared {
    pub fn payer(&self) -> String {
        self.work.payer()
    }

    /// The authorization's key: unique per settlement.
    pub fn authorization_key(&self) -> Result<AuthorizationKey> {
        AuthorizationKey::new(
            &self.rail.network,
            &format!("{:#x}", self.asset.address),
            &format!("{:#x}", self.work.payer_address()),
            &hex_of(self.work.nonce().as_slice()),
        )
    }

    /// What an `exact` transfer must pay; `None` for escrow calls, which check their own.
    pub fn requirement(&self) -> Result<Option<ExactRequirement<'_>>, (Reason, String)> {
        if !matches!(self.work, Work::Exact(_)) {
            return Ok(None);
        }
        ExactRequirement::new(
            &self.asset,
            &self.requirements.pay_to,
            self.requirements.amount,
        )
        .map(Some)
        .map_err(|e| (Reason::InvalidPaymentRequirements, e.to_string()))
    }

    /// Everything the chain must agree to before the settlement is sent (`recorded`: the
    /// amount a claimed settlement holds).
    pub async fn check_on_chain(&self, recorded: Option<Amount>) -> Verdict {
        let requirement = match self.requirement() {
            Ok(r) => r,
            Err((reason, message)) => return Verdict::Invalid { reason, message },
        };
        match self
            .work
            .check_on_chain(&self.rail, requirement.as_ref(), recorded, unix_now())
            .await
        {
            Ok(Verdict::Invalid { reason, message }) => Verdict::Invalid {
                reason: versioned(reason, self.version),
                message,
            },
            Ok(Verdict::Valid) => Verdict::Valid,
            Err(rpc) => Verdict::Invalid {
                reason: Reason::UnexpectedVerifyError,
                message: format!("the chain could not be reached: {}", rpc.message()),
            },
        }
    }
}

pub(crate) enum Preparation {
    Ready(Box<Prepared>),
    Refused {
        reason: Reason,
        message: String,
        payer: Option<String>,
    },
}

fn refused(reason: Reason, message: impl Into<String>, payer: Option<String>) -> Preparation {
    Preparation::Refused {
        reason,
        message: message.into(),
        payer,
    }
}

/// Where a settlement's transactions stand on chain.
pub(crate) enum ChainState {
    Confirmed(ChainOutcome),
    /// Mined and reverted, or mined without the expected transfer.
    Failed {
        reason: Reason,
        tx_hash: String,
        /// What the reverted transaction cost.
        cost: Option<NetworkCost>,
    },
    /// Every transaction's nonce was used by something else: nothing of ours will be mined.
    Dropped,
    Waiting,
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// SHA-256 of the payload's JSON with object keys sorted: one hash per payload, however its
/// keys were ordered on the wire.
pub(crate) fn payload_hash(payload: &PaymentPayload) -> Result<String> {
    let value = serde_json::to_value(payload)
        .map_err(|e| Error::internal("hashing a payment payload", e))?;
    // serde_json's maps are ordered by key, so serializing the value is canonical.
    let canonical =
        serde_json::to_vec(&value).map_err(|e| Error::internal("hashing a payment payload", e))?;
    Ok(hex_of(&Sha256::digest(canonical))
        .trim_start_matches("0x")
        .to_owned())
}

impl Facilitator {
    pub fn new(
        store: Arc<dyn SettlementRepository>,
        rails: Arc<Rails>,
        config: FacilitatorConfig,
    ) -> Result<Self> {
        let anonymous = match (config.allow_anonymous, &config.anonymous_tenant) {
            (false, _) => None,
            (true, Some(tenant)) => Some(TenantScope::trusted(tenant.parse()?)),
            (true, None) => {
                return Err(Error::invalid_input(
                    "facilitator.allow_anonymous needs facilitator.anonymous_tenant: the tenant anonymous settlements belong to",
                ));
            }
        };
        Ok(Self {
            store,
            rails,
            config,
            anonymous,
            routes: None,
        })
    }

    /// Keeps the settlement router's decision (every rail's quote, the estimate) with each
    /// settlement, and reports estimates against receipts.
    pub fn with_routes(mut self, routes: Arc<dyn RouteRecorder>) -> Self {
        self.routes = Some(routes);
        self
    }

    /// The scope for callers without an API key, when anonymous access is on.
    pub fn anonymous_scope(&self) -> Option<TenantScope> {
        self.anonymous
    }

    pub fn rails(&self) -> &Rails {
        &self.rails
    }

    /// The rails, shared (sign-in verification checks contract wallets on them).
    pub fn shared_rails(&self) -> Arc<Rails> {
        self.rails.clone()
    }

    /// `GET /supported`: every (version, scheme, network) served, and the signers.
    pub fn supported(&self) -> SupportedResponse {
        let mut kinds = Vec::new();
        let mut signers = Vec::new();
        for rail in self.rails.iter().filter(|r| !r.signers().is_empty()) {
            kinds.push(SupportedKind::new(
                X402Version::V2,
                "exact",
                rail.network.clone(),
            ));
            if let Some(name) = purser_x402::Network::parse(&rail.network)
                .ok()
                .and_then(|n| n.v1_name())
            {
                kinds.push(SupportedKind::new(X402Version::V1, "exact", name));
            }
            if let Some(kind) = crate::escrow::supported_kind(rail) {
                kinds.push(kind);
            }
            signers.extend(rail.signer_addresses());
        }
        signers.sort();
        signers.dedup();
        let mut response = SupportedResponse {
            kinds,
            extensions: vec![PAYMENT_IDENTIFIER.to_owned()],
            signers: Default::default(),
        };
        response
            .signers
            .insert(NetworkPattern::eip155().to_string(), signers);
        response
    }

    /// Parses a request and makes every check that needs no chain, at unix time `now`.
    /// For settling (`settling`) or only verifying: an `auth-capture` charge may then be
    /// uncompleted.
    pub(crate) fn prepare(
        &self,
        request: &FacilitatorRequest,
        now: u64,
        settling: bool,
    ) -> Result<Preparation> {
        let (payload, requirements) = request.to_v2()?;
        let network_label = request.payload_network().to_owned();
        if requirements.scheme == purser_x402::auth_capture::SCHEME {
            return Ok(crate::escrow::prepare(
                &self.rails,
                payload,
                requirements,
                network_label,
                now,
                settling,
            ));
        }
        let payer = payload
            .exact_evm()
            .ok()
            .map(|p| ExactTransfer::from_payload(&p).payer());
        if payload.accepted.scheme != "exact" || requirements.scheme != "exact" {
            let reason = if requirements.scheme == "exact" {
                Reason::InvalidExactEvmScheme
            } else {
                Reason::UnsupportedScheme
            };
            return Ok(refused(
                reason,
                format!("scheme `{}` is not served", requirements.scheme),
                payer,
            ));
        }
        if payload.accepted.network != requirements.network {
            return Ok(refused(
                Reason::InvalidExactEvmNetworkMismatch,
                "the payload and the requirements name different networks",
                payer,
            ));
        }
        let Some(rail) = self.rails.get(requirements.network.as_str()) else {
            return Ok(refused(
                Reason::InvalidNetwork,
                format!(
                    "network {} is not served by this facilitator",
                    requirements.network
                ),
                payer,
            ));
        };
        if !matches!(requirements.asset_transfer_method(), None | Some("eip3009")) {
            return Ok(refused(
                Reason::UnsupportedPayloadType,
                "only EIP-3009 transfers are served",
                payer,
            ));
        }
        let Some(domain) = requirements.eip712_name_version() else {
            return Ok(refused(
                Reason::InvalidExactEvmMissingEip712Domain,
                "extra.name and extra.version are required",
                payer,
            ));
        };
        let Some(asset) = rail.asset(&requirements.asset) else {
            return Ok(refused(
                Reason::InvalidPaymentRequirements,
                format!(
                    "asset {} is not accepted on {}",
                    requirements.asset, rail.network
                ),
                payer,
            ));
        };
        if domain.name != asset.name {
            return Ok(refused(
                Reason::InvalidExactEvmTokenNameMismatch,
                format!("the token signs as `{}`, not `{}`", asset.name, domain.name),
                payer,
            ));
        }
        if domain.version != asset.version {
            return Ok(refused(
                Reason::InvalidExactEvmTokenVersionMismatch,
                format!(
                    "the token signs as version `{}`, not `{}`",
                    asset.version, domain.version
                ),
                payer,
            ));
        }
        let exact = match payload.exact_evm() {
            Ok(exact) => exact,
            Err(err) => return Ok(refused(err.reason(), err.to_string(), None)),
        };
        let transfer = ExactTransfer::from_payload(&exact);
        Ok(Preparation::Ready(Box::new(Prepared {
            asset: asset.clone(),
            rail: rail.clone(),
            work: Work::Exact(transfer),
            payload,
            requirements,
            network_label,
            version: request.version(),
        })))
    }

    /// `POST /verify`.
    pub async fn verify(&self, body: &[u8]) -> Result<VerifyResponse> {
        let request = FacilitatorRequest::from_json(body)?;
        // A payment that settle would refuse for its identifier is not valid: the resource
        // server must not run its handler for it.
        let (payload, _) = request.to_v2()?;
        if let Err(err) = payment_identifier_of(&payload) {
            return Ok(
                VerifyResponse::invalid(Reason::InvalidPayload, None).with_message(err.message())
            );
        }
        let prepared = match self.prepare(&request, unix_now(), false)? {
            Preparation::Ready(p) => p,
            Preparation::Refused {
                reason,
                message,
                payer,
            } => {
                return Ok(VerifyResponse::invalid(reason, payer).with_message(message));
            }
        };
        let payer = prepared.payer();
        Ok(match prepared.check_on_chain(None).await {
            Verdict::Valid => VerifyResponse::valid(payer),
            Verdict::Invalid { reason, message } => {
                VerifyResponse::invalid(reason, Some(payer)).with_message(message)
            }
        })
    }

    /// `POST /settle`, for the tenant `scope`.
    pub async fn settle(&self, scope: TenantScope, body: &[u8]) -> Result<SettleResponse> {
        let request = FacilitatorRequest::from_json(body)?;
        let (payload, _) = request.to_v2()?;
        let payment_id = payment_identifier_of(&payload)?;
        if let Some(id) = &payment_id {
            let hash = payload_hash(&payload)?;
            match self
                .store
                .claim_payment_identifier(scope, id.as_str(), &hash)
                .await?
            {
                PaymentIdentifierClaim::Conflict => {
                    return Err(Error::new(
                        ErrorCode::PaymentIdentifierConflict,
                        "this payment identifier was used with another payment payload",
                    ));
                }
                PaymentIdentifierClaim::Same(record) => {
                    // The payload hash does not cover the requirements: the stored response
                    // answers only a request for what was settled. Anything else goes on as a
                    // new payment, which settle_request refuses on the taken authorization.
                    if let Some(stored) = record.response
                        && self.settled_as_asked(scope, &request).await?.is_some()
                    {
                        return serde_json::from_str(&stored)
                            .map_err(|e| Error::internal("reading a stored settle response", e));
                    }
                }
                PaymentIdentifierClaim::New => {}
            }
        }
        let response = self
            .settle_request(scope, &request, payment_id.as_ref().map(|p| p.as_str()))
            .await?;
        let final_outcome =
            response.success || (!response.transaction.is_empty() && !response.is_pending());
        if let (Some(id), true) = (&payment_id, final_outcome) {
            let json = serde_json::to_string(&response)
                .map_err(|e| Error::internal("storing a settle response", e))?;
            self.store
                .store_payment_response(scope, id.as_str(), &json)
                .await?;
        }
        Ok(response)
    }

    async fn settle_request(
        &self,
        scope: TenantScope,
        request: &FacilitatorRequest,
        payment_id: Option<&str>,
    ) -> Result<SettleResponse> {
        let network_label = request.payload_network().to_owned();
        let prepared = match self.prepare(request, unix_now(), true)? {
            Preparation::Ready(p) => p,
            Preparation::Refused {
                reason,
                message,
                payer,
            } => {
                return Ok(
                    SettleResponse::failed(reason, network_label, payer).with_message(message)
                );
            }
        };
        let amount = match prepared.work.amount(prepared.requirements.amount) {
            Some(amount) => amount,
            // A void releases what is held; presented again, it is the void already claimed.
            None => match self
                .store
                .find_settlement_by_authorization(scope, &prepared.authorization_key()?)
                .await?
            {
                Some(claimed) if claimed.status != SettlementStatus::Rejected => claimed.amount,
                _ => match crate::escrow::held(&prepared).await {
                    Ok(amount) => amount,
                    Err(response) => return Ok(response),
                },
            },
        };
        if let Err(refusal) = crate::escrow::admit(&*self.store, scope, &prepared).await? {
            return Ok(refusal);
        }
        let key = prepared.authorization_key()?;
        let (valid_after, valid_before) = prepared.work.window();
        let new = NewSettlement {
            id: SettlementId::new(),
            tenant_id: scope.tenant_id(),
            key,
            pay_to: prepared.requirements.pay_to.clone(),
            amount,
            valid_after,
            valid_before,
            payload: to_json(&prepared.payload)?,
            requirements: to_json(&prepared.requirements)?,
            payment_identifier: payment_id.map(str::to_owned),
            kind: prepared.work.kind(),
            escrow: prepared.work.escrow_link(),
            created_at: purser_domain::time::now(),
        };
        let settlement = match self.store.claim_settlement(new).await? {
            Claim::Created(settlement) => self.drive(settlement, &prepared).await?,
            Claim::Existing(existing) => {
                if !settles(&existing, scope.tenant_id(), &prepared) {
                    return Ok(self.refuse_taken(&prepared).await);
                }
                self.join(existing, &prepared).await?
            }
        };
        if settlement.status == SettlementStatus::Confirmed
            && let Some(void) = crate::escrow::void_after(&prepared)
        {
            // The capture stands whatever becomes of the void that finishes it (a race may
            // have emptied the hold already).
            let request = FacilitatorRequest::V2(purser_x402::facilitator::VerifyRequest {
                x402_version: Some(purser_x402::V2),
                payment_payload: void,
                payment_requirements: prepared.requirements.clone(),
            });
            let voided = Box::pin(self.settle_request(scope, &request, None)).await?;
            if !voided.success {
                tracing::warn!(settlement = %settlement.id, reason = ?voided.error_reason, "the void after a capture did not settle");
            }
        }
        Ok(respond(&settlement, &prepared))
    }

    /// The scope's settlement of the request's authorization, when it settled what the request
    /// asks for (see [`crate::replay`]); `None` for anything else, including a request that
    /// would be refused before its authorization is looked at.
    async fn settled_as_asked(
        &self,
        scope: TenantScope,
        request: &FacilitatorRequest,
    ) -> Result<Option<Settlement>> {
        let Preparation::Ready(prepared) = self.prepare(request, unix_now(), true)? else {
            return Ok(None);
        };
        let settlement = self
            .store
            .find_settlement_by_authorization(scope, &prepared.authorization_key()?)
            .await?;
        Ok(settlement.filter(|s| settles(s, scope.tenant_id(), &prepared)))
    }

    /// The scope's settlement of `payload`'s authorization, when it settled `requirements` (the
    /// rule of [`crate::replay`]): for callers in process that answer a settled payment again
    /// without settling it (the gateway's credit top-ups). `None` when there is no such
    /// settlement, or when it settled something else.
    pub async fn settled_as_requested(
        &self,
        scope: TenantScope,
        payload: &PaymentPayload,
        requirements: &PaymentRequirements,
    ) -> Result<Option<Settlement>> {
        let request = FacilitatorRequest::V2(purser_x402::facilitator::VerifyRequest {
            x402_version: Some(purser_x402::V2),
            payment_payload: payload.clone(),
            payment_requirements: requirements.clone(),
        });
        self.settled_as_asked(scope, &request).await
    }

    /// The answer to a request for an authorization that was settled for something else (or
    /// by another tenant): judged as a new payment would be, so it gets the reason a new one
    /// gets (another amount, another recipient); when it would pass (the first settlement is
    /// not on chain yet, or differs only in what the chain does not check), the authorization
    /// is taken all the same.
    async fn refuse_taken(&self, prepared: &Prepared) -> SettleResponse {
        let payer = Some(prepared.payer());
        let network = prepared.network_label.clone();
        match prepared.check_on_chain(None).await {
            Verdict::Invalid { reason, message } if reason != Reason::UnexpectedVerifyError => {
                SettleResponse::failed(reason, network, payer).with_message(message)
            }
            _ => SettleResponse::failed(taken_reason(&prepared.work), network, payer)
                .with_message("this authorization is already being settled for another payment"),
        }
    }

    /// Takes a freshly claimed settlement to an outcome, or to `pending`.
    async fn drive(&self, settlement: Settlement, prepared: &Prepared) -> Result<Settlement> {
        match prepared.check_on_chain(Some(settlement.amount)).await {
            Verdict::Valid => {}
            Verdict::Invalid { reason, message } => {
                let reason = if reason == Reason::UnexpectedVerifyError {
                    Reason::UnexpectedSettleError
                } else {
                    reason
                };
                return self
                    .store
                    .reject_settlement(settlement.id, reason.as_str(), &message)
                    .await;
            }
        }
        let verified = self.store.mark_verified(settlement.id).await?;
        if verified.status != SettlementStatus::Verified {
            return Ok(verified);
        }
        if let Err(message) = self
            .submit(&verified, &prepared.rail, &prepared.work, &prepared.asset)
            .await
        {
            // Nothing was recorded, so nothing was sent.
            return self
                .store
                .reject_settlement(
                    settlement.id,
                    Reason::UnexpectedSettleError.as_str(),
                    &message,
                )
                .await;
        }
        self.await_outcome(settlement.id, prepared, prepared.rail.receipt_timeout, true)
            .await
    }

    /// A second request for a settlement someone else claimed: wait for its outcome.
    async fn join(&self, existing: Settlement, prepared: &Prepared) -> Result<Settlement> {
        if existing.status.is_terminal() || existing.status == SettlementStatus::Rejected {
            return Ok(existing);
        }
        let waited = self
            .await_outcome(
                existing.id,
                prepared,
                prepared.rail.receipt_timeout + JOIN_GRACE,
                false,
            )
            .await?;
        if matches!(
            waited.status,
            SettlementStatus::Received | SettlementStatus::Verified
        ) {
            // Still not broadcast after all this time: its request died. Nothing was sent, and
            // the guarded transition keeps anything from being sent now.
            return self
                .store
                .reject_settlement(
                    existing.id,
                    Reason::UnexpectedSettleError.as_str(),
                    "the request settling this authorization stopped before broadcasting; retry",
                )
                .await;
        }
        Ok(waited)
    }

    /// Leases a nonce, signs, records and broadcasts the settlement transaction. An `Err` means
    /// nothing was recorded, hence nothing can have been sent.
    ///
    /// Only leasing, signing, recording and sending happen under the signer's lock (so this
    /// process sends one signer's transactions in nonce order); reading fees and estimating
    /// gas come before it, recording the broadcast after it.
    pub(crate) async fn submit(
        &self,
        settlement: &Settlement,
        rail: &Rail,
        work: &Work,
        asset: &Asset,
    ) -> Result<(), String> {
        let signer = work.sender(rail).ok_or_else(|| {
            format!(
                "no signer that may send this is configured for {}",
                rail.network
            )
        })?;
        // The router's decision is kept with the settlement, in the transaction that records
        // its transfer.
        let decision = async {
            match &self.routes {
                Some(routes) => Some(
                    routes
                        .decision(TenantScope::trusted(settlement.tenant_id), &rail.network)
                        .await,
                ),
                None => None,
            }
        };
        let deployment = async {
            match work {
                Work::Exact(transfer) => rail.deployment_needed(transfer).await,
                Work::Escrow(_) => Ok(None),
            }
        };
        let (deployment, quote, mut route) = tokio::join!(deployment, rail.fee_quote(), decision);
        let deployment = deployment.map_err(|e| format!("reading the payer's code: {e}"))?;
        let fees = quote.map_err(|e| format!("reading fees: {e}"))?.offer();
        let (target, calldata) = work.call(asset);
        let deployment_gas = match &deployment {
            Some(d) => {
                rail.call_gas(signer.address(), d.factory, &d.calldata)
                    .await
            }
            None => 0,
        };
        let transfer_gas = rail.call_gas(signer.address(), target, &calldata).await;
        let mut record =
            |kind: AttemptKind, nonce: u64, signed: purser_chain::eip3009::SignedTransaction| {
                Attempt {
                    id: AttemptId::new(),
                    settlement_id: Some(settlement.id),
                    kind,
                    network: rail.network.clone(),
                    signer: signer.address_lower(),
                    signer_nonce: nonce,
                    tx_hash: hex_of(signed.hash.as_slice()),
                    raw_tx: signed.raw.to_vec(),
                    max_fee_per_gas: signed.max_fee_per_gas,
                    max_priority_fee_per_gas: signed.max_priority_fee_per_gas,
                    created_at: purser_domain::time::now(),
                    broadcast_at: None,
                    route: if kind == AttemptKind::Transfer {
                        route.take()
                    } else {
                        None
                    },
                }
            };
        let mut sent = Vec::with_capacity(2);
        {
            let _in_order = signer.lock().await;
            let chain_pending = rail
                .pending_nonce(signer.address())
                .await
                .map_err(|e| format!("reading the signer's nonce: {e}"))?;
            let mut nonce = self
                .store
                .lease_signer_nonce(&rail.network, &signer.address_lower(), chain_pending)
                .await
                .map_err(|e| format!("leasing a nonce: {}", e.message()))?;
            if let Some(deployment) = deployment {
                // A counterfactual wallet (ERC-6492, allowlisted factory) is deployed first, at
                // the lower nonce, so the transfer after it finds the wallet's code.
                let signed = rail
                    .sign(
                        &signer,
                        nonce,
                        deployment.factory,
                        deployment.calldata,
                        deployment_gas,
                        fees,
                    )
                    .map_err(|e| format!("signing the wallet deployment: {e}"))?;
                let attempt = record(AttemptKind::Deploy, nonce, signed);
                self.store
                    .record_attempt(attempt.clone())
                    .await
                    .map_err(|e| format!("recording the wallet deployment: {}", e.message()))?;
                tracing::info!(settlement = %settlement.id, tx = %attempt.tx_hash, nonce, "wallet deployment recorded");
                if self.send(rail, &attempt).await {
                    sent.push(attempt.id);
                }
                nonce = self
                    .store
                    .lease_signer_nonce(&rail.network, &signer.address_lower(), nonce + 1)
                    .await
                    .map_err(|e| format!("leasing a nonce: {}", e.message()))?;
            }
            let signed = rail
                .sign(&signer, nonce, target, calldata, transfer_gas, fees)
                .map_err(|e| format!("signing: {e}"))?;
            let attempt = record(AttemptKind::Transfer, nonce, signed);
            self.store
                .record_attempt(attempt.clone())
                .await
                .map_err(|e| format!("recording the transaction: {}", e.message()))?;
            tracing::info!(settlement = %settlement.id, tx = %attempt.tx_hash, nonce, signer = %attempt.signer, "settlement transaction recorded");
            if self.send(rail, &attempt).await {
                sent.push(attempt.id);
            }
        }
        for attempt in sent {
            self.note_broadcast(attempt).await;
        }
        Ok(())
    }

    /// Sends a recorded transaction and notes that a node accepted it; failures are left to
    /// the reconciler.
    pub(crate) async fn broadcast(&self, rail: &Rail, attempt: &Attempt) {
        if self.send(rail, attempt).await {
            self.note_broadcast(attempt.id).await;
        }
    }

    async fn note_broadcast(&self, attempt: AttemptId) {
        if let Err(err) = self
            .store
            .mark_broadcast(attempt, purser_domain::time::now())
            .await
        {
            tracing::warn!(%attempt, error = %err.chain(), "could not record a broadcast");
        }
    }

    /// Sends a recorded transaction; true when a node accepted it.
    async fn send(&self, rail: &Rail, attempt: &Attempt) -> bool {
        match rail.broadcast(&attempt.raw_tx).await {
            Ok(Broadcast::Accepted) => return true,
            Ok(Broadcast::NonceUsed) => {
                tracing::warn!(tx = %attempt.tx_hash, nonce = attempt.signer_nonce, "the node says the nonce is used");
            }
            Ok(Broadcast::Underpriced(message)) => {
                tracing::warn!(tx = %attempt.tx_hash, %message, "the node refused the fee; the reconciler will raise it");
            }
            Ok(Broadcast::Rejected(message)) => {
                tracing::error!(tx = %attempt.tx_hash, %message, "the node refused the transaction");
            }
            Err(rpc) => {
                tracing::warn!(tx = %attempt.tx_hash, error = %rpc, "broadcast did not reach a node; the reconciler will resend it");
            }
        }
        false
    }

    /// Waits until the settlement is final, or `patience` runs out. The request that drives a
    /// settlement reads receipts itself; a duplicate only reads the record, unless the
    /// settlement is `pending` (its driver gave up waiting).
    async fn await_outcome(
        &self,
        id: SettlementId,
        prepared: &Prepared,
        patience: Duration,
        driving: bool,
    ) -> Result<Settlement> {
        let deadline = Instant::now() + patience;
        let mut pause = POLL_INTERVAL_FIRST;
        loop {
            let settlement = self
                .store
                .get_settlement(id)
                .await?
                .ok_or_else(|| Error::not_found(SettlementId::WHAT))?;
            let reads_chain = settlement.status == SettlementStatus::Pending
                || (driving && settlement.status == SettlementStatus::Submitted);
            match settlement.status {
                status if status.is_terminal() || status == SettlementStatus::Rejected => {
                    return Ok(settlement);
                }
                _ if reads_chain => {
                    if let Some(resolved) = self
                        .resolve_from_chain(&settlement, &prepared.rail, &prepared.work)
                        .await?
                    {
                        return Ok(resolved);
                    }
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                if settlement.status == SettlementStatus::Submitted {
                    return self
                        .store
                        .mark_pending(
                            id,
                            "the transaction was sent; its receipt was not seen in time",
                        )
                        .await;
                }
                return Ok(settlement);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(POLL_INTERVAL_MAX);
        }
    }

    /// Applies what the chain says; `None` while there is nothing final to apply.
    pub(crate) async fn resolve_from_chain(
        &self,
        settlement: &Settlement,
        rail: &Rail,
        work: &Work,
    ) -> Result<Option<Settlement>> {
        let resolved = self.apply_chain_state(settlement, rail, work).await?;
        if let (Some(routes), Some(resolved)) = (&self.routes, &resolved)
            && let (Some(estimated), Some(actual)) =
                (resolved.estimated_network_cost, resolved.network_cost)
        {
            routes.observed(&rail.network, estimated.atomic(), actual.total.atomic());
        }
        Ok(resolved)
    }

    async fn apply_chain_state(
        &self,
        settlement: &Settlement,
        rail: &Rail,
        work: &Work,
    ) -> Result<Option<Settlement>> {
        match self.chain_state(settlement, rail, work).await? {
            ChainState::Confirmed(outcome) => {
                tracing::info!(settlement = %settlement.id, tx = %outcome.tx_hash, block = outcome.block_number, "settlement confirmed");
                count_escrow_outcome(settlement, "confirmed");
                self.store
                    .confirm_settlement(settlement.id, outcome)
                    .await
                    .map(Some)
            }
            ChainState::Failed {
                reason,
                tx_hash,
                cost,
            } => {
                tracing::warn!(settlement = %settlement.id, tx = %tx_hash, %reason, "settlement failed on chain");
                count_escrow_outcome(settlement, "failed");
                self.store
                    .fail_settlement(
                        settlement.id,
                        Some(&tx_hash),
                        cost.as_ref(),
                        reason.as_str(),
                        "the settlement transaction did not transfer",
                    )
                    .await
                    .map(Some)
            }
            ChainState::Dropped | ChainState::Waiting => Ok(None),
        }
    }

    /// Reads the receipts of every transaction sent for the settlement. Replacements share a
    /// nonce, so at most one of them is mined.
    pub(crate) async fn chain_state(
        &self,
        settlement: &Settlement,
        rail: &Rail,
        work: &Work,
    ) -> Result<ChainState> {
        // Only transfers decide the outcome; a wallet deployment merely precedes one.
        let attempts: Vec<Attempt> = self
            .store
            .attempts_for(settlement.id)
            .await?
            .into_iter()
            .filter(|a| a.kind == AttemptKind::Transfer)
            .collect();
        if attempts.is_empty() {
            return Ok(ChainState::Waiting);
        }
        let Ok(latest_block) = rail.block_number().await else {
            return Ok(ChainState::Waiting);
        };
        let asset = rail.asset(&settlement.key.asset);
        let mut reverted = None;
        let mut unresolved_nonces = std::collections::BTreeSet::new();
        for attempt in &attempts {
            unresolved_nonces.insert((attempt.signer.clone(), attempt.signer_nonce));
        }
        for attempt in &attempts {
            let receipt = match rail
                .receipt(&attempt.tx_hash, asset.map(|a| work.expected(a)))
                .await
            {
                Ok(receipt) => receipt,
                Err(_) => return Ok(ChainState::Waiting),
            };
            let Some(receipt) = receipt else { continue };
            if !rail.is_final(&receipt, latest_block) {
                return Ok(ChainState::Waiting);
            }
            unresolved_nonces.remove(&(attempt.signer.clone(), attempt.signer_nonce));
            if receipt.success && receipt.logged {
                return Ok(ChainState::Confirmed(ChainOutcome {
                    tx_hash: attempt.tx_hash.clone(),
                    block_number: receipt.block_number,
                    cost: network_cost(&receipt),
                }));
            }
            let reason = match (work, receipt.success) {
                (Work::Exact(_), true) => Reason::InvalidExactEvmTransferEventMismatch,
                (Work::Exact(_), false) => Reason::InvalidExactEvmTransactionFailed,
                (Work::Escrow(_), true) => Reason::InvalidAuthCaptureEvmVerificationFailed,
                (Work::Escrow(_), false) => Reason::InvalidAuthCaptureEvmTransactionReverted,
            };
            reverted = Some((reason, attempt.tx_hash.clone(), network_cost(&receipt)));
        }
        // Nonces with no mined transaction of ours: used by something else, or still to come.
        let mut dropped_all = true;
        for (signer, nonce) in &unresolved_nonces {
            let mined = rail.mined_nonce_of(signer).await.ok();
            match mined {
                Some(mined) if mined > *nonce => {}
                _ => dropped_all = false,
            }
        }
        if !unresolved_nonces.is_empty() && !dropped_all {
            return Ok(ChainState::Waiting);
        }
        Ok(match reverted {
            Some((reason, tx_hash, cost)) => ChainState::Failed {
                reason,
                tx_hash,
                cost,
            },
            None => ChainState::Dropped,
        })
    }
}

/// Counts an escrow operation's outcome on chain: `purser_escrow_operations_total{operation,
/// outcome}` (`operation` from the settlement's kind, a closed set).
fn count_escrow_outcome(settlement: &Settlement, outcome: &'static str) {
    if settlement.kind.is_escrow() {
        let operation = settlement.kind.as_str().trim_start_matches("escrow_");
        metrics::counter!(
            "purser_escrow_operations_total",
            "operation" => operation,
            "outcome" => outcome,
        )
        .increment(1);
    }
}

/// What a mined transaction cost, in the domain's terms.
fn network_cost(receipt: &purser_chain::eip3009::ReceiptView) -> Option<NetworkCost> {
    let cost = receipt.cost;
    NetworkCost::of(
        cost.gas_used,
        cost.effective_gas_price,
        cost.l1_fee,
        cost.operator_fee,
    )
}

/// The payload's `payment-identifier`: its id when it carries one, or an
/// `invalid_payment_identifier` error when it is malformed or required (by the server's
/// declaration, echoed) and missing.
fn payment_identifier_of(payload: &PaymentPayload) -> Result<Option<purser_x402::PaymentId>> {
    let identifier = payload.payment_identifier();
    let required = matches!(
        identifier,
        PaymentIdentifier::Declared { required: true }
            | PaymentIdentifier::Present { required: true, .. }
    );
    identifier.require(required)
}

/// Why an authorization already being settled for something else is refused.
pub(crate) fn taken_reason(work: &Work) -> Reason {
    match work {
        Work::Exact(_) => Reason::InvalidExactEvmNonceAlreadyUsed,
        Work::Escrow(escrow) if escrow.lifecycle.is_none() => {
            Reason::InvalidAuthCaptureEvmPaymentAlreadyCollected
        }
        Work::Escrow(_) => Reason::InvalidAuthCaptureEvmUnexpectedPaymentState,
    }
}

/// v1 clients know the value mismatch by the v1 verifier's string.
fn versioned(reason: Reason, version: X402Version) -> Reason {
    match (reason, version) {
        (Reason::InvalidExactEvmPayloadAuthorizationValueMismatch, X402Version::V1) => {
            Reason::InvalidExactEvmAuthorizationValue
        }
        (reason, _) => reason,
    }
}

/// The `/settle` answer for a settlement's current state.
pub(crate) fn respond(settlement: &Settlement, prepared: &Prepared) -> SettleResponse {
    let payer = Some(prepared.payer());
    let network = prepared.network_label.clone();
    let tx = settlement.tx_hash.clone().unwrap_or_default();
    let reason = || {
        settlement
            .error_reason
            .as_deref()
            .and_then(Reason::from_wire)
            .unwrap_or(Reason::UnexpectedSettleError)
    };
    let message = settlement.error_message.clone();
    let with_message = |response: SettleResponse| match &message {
        Some(m) => response.with_message(m.clone()),
        None => response,
    };
    match settlement.status {
        SettlementStatus::Confirmed if settlement.kind.is_escrow() => {
            let mut settled = SettleResponse::settled(tx, network, prepared.payer());
            settled.amount = Some(settlement.amount);
            settled
        }
        SettlementStatus::Confirmed => SettleResponse::settled(tx, network, prepared.payer()),
        SettlementStatus::Failed => with_message(SettleResponse::failed_after_broadcast(
            reason(),
            tx,
            network,
            payer,
        )),
        SettlementStatus::Rejected => {
            with_message(SettleResponse::failed(reason(), network, payer))
        }
        SettlementStatus::Submitted | SettlementStatus::Pending => SettleResponse::pending(
            tx,
            network,
            payer,
            "the transaction was sent and is not final yet; settle again with the same payload to learn the outcome",
        ),
        SettlementStatus::Received | SettlementStatus::Verified => with_message(
            SettleResponse::failed(Reason::UnexpectedSettleError, network, payer),
        ),
    }
}

impl Facilitator {
    /// The work a stored settlement does, read back from its payload and requirements as they
    /// were checked when it was claimed.
    pub(crate) fn work_of(&self, settlement: &Settlement) -> Result<Work> {
        let what = "reading a settlement's payload";
        let request = FacilitatorRequest::V2(purser_x402::facilitator::VerifyRequest {
            x402_version: Some(purser_x402::V2),
            payment_payload: serde_json::from_str(&settlement.payload)
                .map_err(|e| Error::internal(what, e))?,
            payment_requirements: serde_json::from_str(&settlement.requirements)
                .map_err(|e| Error::internal(what, e))?,
        });
        let claimed = u64::try_from(settlement.created_at.timestamp()).unwrap_or_default();
        match self.prepare(&request, claimed, true)? {
            Preparation::Ready(prepared) => Ok(prepared.work),
            Preparation::Refused { message, .. } => Err(Error::internal(what, message)),
        }
    }
}

/// JSON for the settlement record.
fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::internal("serializing for the record", e))
}
