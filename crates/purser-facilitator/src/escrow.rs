//! `auth-capture` at the facilitator: a collect payload settles as an `authorize` into the
//! escrow; a lifecycle payload (`capture`, `void`, `refund`) as the operation it names, on a
//! payment this facilitator collected for the caller's tenant. Both then run through the same
//! settlement machinery as `exact` (see [`crate::work`]).
//!
//! Purser is the operator (`captureAuthorizer`, one of its submitters) and may stand in for the
//! receiver's authorizer: it advertises its submitters as `receiverAuthorizer`, and a lifecycle
//! payload for such a payment carries no signature; the caller's API key, of the tenant whose
//! payment it is, is the out-of-band authentication the specification asks for. A payload
//! naming the receiver's own authorizer carries its signature, checked over the operation.

use purser_chain::auth_capture::lifecycle::{Lifecycle, LifecycleRequest, check_lifecycle};
use purser_chain::auth_capture::verify::{CollectRequest, check_collect};
use purser_chain::primitives::Address;
use purser_chain::rails::{Rail, Rails};
use purser_domain::Result;
use purser_domain::auth::TenantScope;
use purser_domain::escrow::{EscrowBalances, EscrowCommand, EscrowDesk};
use purser_domain::money::Amount;
use purser_domain::repo::SettlementRepository;
use purser_domain::settlement::{SettlementKind, SettlementStatus};
use purser_x402::auth_capture::{AuthCapturePayload, LifecycleOperation, PaymentFlow};
use purser_x402::{
    JsonObject, PaymentPayload, PaymentRequirements, Reason, SettleResponse, SupportedKind,
};

use crate::Facilitator;
use crate::service::{Preparation, Prepared};
use crate::work::{EscrowWork, Work};

/// The `auth-capture` terms a rail with an escrow offers (`extra` of its `/supported` kind):
/// Purser's first submitter as the operator it submits from, and as the receiver authorizer it
/// stands in for; the escrow; the rail's fee terms, for servers to copy.
pub fn auth_capture_terms(rail: &Rail) -> Option<JsonObject> {
    let escrow = rail.auth_capture.as_ref()?;
    let operator = rail.signers().first()?.address_string();
    let mut extra = JsonObject::new();
    extra.insert("captureAuthorizer".into(), operator.clone().into());
    extra.insert("receiverAuthorizer".into(), operator.into());
    extra.insert(
        "authCaptureEscrow".into(),
        escrow.deployment.escrow.to_checksum(None).into(),
    );
    let recipient = escrow.fee_recipient.unwrap_or_default();
    extra.insert("feeRecipient".into(), recipient.to_checksum(None).into());
    extra.insert("minFeeBps".into(), escrow.min_fee_bps.into());
    extra.insert("maxFeeBps".into(), escrow.max_fee_bps.into());
    Some(extra)
}

/// The `auth-capture` kind a rail with an escrow serves.
pub(crate) fn supported_kind(rail: &Rail) -> Option<SupportedKind> {
    let mut kind = SupportedKind::new(
        purser_x402::X402Version::V2,
        purser_x402::auth_capture::SCHEME,
        rail.network.clone(),
    );
    kind.extra = Some(auth_capture_terms(rail)?);
    Some(kind)
}

fn refused(reason: Reason, message: impl Into<String>, payer: Option<String>) -> Preparation {
    Preparation::Refused {
        reason,
        message: message.into(),
        payer,
    }
}

/// Parses an `auth-capture` request and makes every check that needs no chain, at unix time
/// `now`.
pub(crate) fn prepare(
    rails: &Rails,
    payload: PaymentPayload,
    requirements: PaymentRequirements,
    network_label: String,
    now: u64,
    settling: bool,
) -> Preparation {
    let Some(rail) = rails.get(requirements.network.as_str()) else {
        return refused(
            Reason::InvalidNetwork,
            format!(
                "network {} is not served by this facilitator",
                requirements.network
            ),
            None,
        );
    };
    if rail.auth_capture.is_none() {
        return refused(
            Reason::UnsupportedScheme,
            format!("auth-capture is not offered on {}", rail.network),
            None,
        );
    }
    let Some(asset) = rail.asset(&requirements.asset) else {
        return refused(
            Reason::InvalidPaymentRequirements,
            format!(
                "asset {} is not accepted on {}",
                requirements.asset, rail.network
            ),
            None,
        );
    };
    let parsed = match AuthCapturePayload::from_json(&payload.payload) {
        Ok(parsed) => parsed,
        Err(err) => return refused(err.reason(), err.to_string(), None),
    };
    let submitters: Vec<Address> = rail.signers().iter().map(|s| s.address()).collect();
    let work = match parsed {
        AuthCapturePayload::Collect(collect) => {
            let payer = Some(collect.authorization.from().to_string());
            let checked = check_collect(CollectRequest {
                requirements: &requirements,
                accepted: &payload.accepted,
                payload: &collect,
                settling,
                submitters: &submitters,
                now,
            });
            let checked = match checked {
                Ok(checked) => checked,
                Err(refusal) => return refused(refusal.reason, refusal.message, payer),
            };
            let purser_x402::auth_capture::TokenAuthorization::Eip3009(authorization) =
                &collect.authorization
            else {
                return refused(
                    Reason::InvalidAuthCaptureEvmUnsupportedAssetTransferMethod,
                    "this facilitator collects through the ERC-3009 collector only",
                    payer,
                );
            };
            let signature = purser_chain::primitives::Bytes::from(collect.signature.to_bytes());
            let call = match checked.flow {
                PaymentFlow::Escrow => checked.authorize_call(signature),
                // Charged at once, on the server's completion (a raw payload at `/verify`: the
                // provisional charge).
                PaymentFlow::Authorization => {
                    match checked.charge_call(signature, collect.charge.as_ref(), &submitters) {
                        Ok(call) => call,
                        Err(refusal) => return refused(refusal.reason, refusal.message, payer),
                    }
                }
            };
            Work::Escrow(Box::new(EscrowWork {
                call,
                lifecycle: None,
                collect_nonce: Some(authorization.nonce.to_bytes().into()),
                window: (authorization.valid_after, authorization.valid_before),
            }))
        }
        AuthCapturePayload::Lifecycle(lifecycle) => {
            let payer = Some(lifecycle.payment_info.payer.to_string());
            let checked = check_lifecycle(LifecycleRequest {
                requirements: &requirements,
                accepted: &payload.accepted,
                payload: &lifecycle,
                submitters: &submitters,
                delegated: &submitters,
            });
            let checked = match checked {
                Ok(checked) => checked,
                Err(refusal) => return refused(refusal.reason, refusal.message, payer),
            };
            lifecycle_work(checked)
        }
    };
    Preparation::Ready(Box::new(Prepared {
        rail: rail.clone(),
        asset: asset.clone(),
        work,
        payload,
        requirements,
        network_label,
        version: purser_x402::X402Version::V2,
    }))
}

fn lifecycle_work(lifecycle: Lifecycle) -> Work {
    let until = match lifecycle.operation {
        LifecycleOperation::Refund => lifecycle.info.refundExpiry,
        _ => lifecycle.info.authorizationExpiry,
    };
    Work::Escrow(Box::new(EscrowWork {
        call: lifecycle.call(),
        window: (0, until.to::<u64>()),
        lifecycle: Some(lifecycle),
        collect_nonce: None,
    }))
}

/// What a void will release: what the escrow holds now. A refusal when nothing is, or the
/// chain cannot say.
pub(crate) async fn held(prepared: &Prepared) -> std::result::Result<Amount, SettleResponse> {
    let refuse = |reason: Reason, message: String| {
        SettleResponse::failed(
            reason,
            prepared.network_label.clone(),
            Some(prepared.payer()),
        )
        .with_message(message)
    };
    let Some(escrow) = prepared.work.escrow() else {
        return Err(refuse(
            Reason::UnexpectedSettleError,
            "only a void settles what is held".into(),
        ));
    };
    match prepared
        .rail
        .escrow_payment_state(escrow.call.escrow, escrow.call.payment_hash)
        .await
    {
        Ok(state) if state.capturable > 0 => Ok(Amount::from_atomic(state.capturable)),
        Ok(_) => Err(refuse(
            Reason::InvalidAuthCaptureEvmZeroAuthorization,
            "nothing is held to void".into(),
        )),
        Err(rpc) => Err(refuse(
            Reason::UnexpectedSettleError,
            format!("the chain could not be reached: {}", rpc.message()),
        )),
    }
}

/// Whether an operation collected the payment (`authorize` or `charge`).
pub(crate) fn is_collect(kind: SettlementKind) -> bool {
    matches!(
        kind,
        SettlementKind::EscrowAuthorize | SettlementKind::EscrowCharge
    )
}

/// Whether the scope may settle this: anything but an operation on a held payment may; an
/// operation only on a payment collected for the scope's tenant, whose authorization is
/// confirmed. The refusal answers otherwise (the same for another tenant's payment as for one
/// never collected, so nothing is learnt of other tenants).
pub(crate) async fn admit(
    store: &dyn SettlementRepository,
    scope: TenantScope,
    prepared: &Prepared,
) -> Result<std::result::Result<(), SettleResponse>> {
    let Some(escrow) = prepared.work.escrow().filter(|e| e.lifecycle.is_some()) else {
        return Ok(Ok(()));
    };
    let payment = purser_chain::eip3009::hex_of(escrow.call.payment_hash.as_slice());
    let operations = store.escrow_operations(scope, &payment).await?;
    let collected = operations
        .iter()
        .any(|op| is_collect(op.kind) && op.status == SettlementStatus::Confirmed);
    if collected {
        return Ok(Ok(()));
    }
    Ok(Err(SettleResponse::failed(
        Reason::InvalidAuthCaptureEvmUnauthenticatedAuthorizerRequest,
        prepared.network_label.clone(),
        Some(prepared.payer()),
    )
    .with_message(
        "no payment held for this tenant matches this paymentInfo",
    )))
}

/// The `void` payload that finishes a `capture` carrying a `voidAuthorizerSignature`: the same
/// payment, the void's own signature.
pub(crate) fn void_after(prepared: &Prepared) -> Option<PaymentPayload> {
    let escrow = prepared.work.escrow()?;
    escrow.lifecycle.as_ref().filter(|l| l.void_after)?;
    let mut payload = prepared.payload.clone();
    let object = &mut payload.payload;
    let signature = object.remove("voidAuthorizerSignature")?;
    for field in [
        "amount",
        "feeAmount",
        "feeReceiver",
        "expectedCapturableAmount",
        "expectedRefundableAmount",
    ] {
        object.remove(field);
    }
    object.insert("type".into(), "void".into());
    object.insert("authorizerSignature".into(), signature);
    Some(payload)
}

/// The scope's confirmed authorization (or charge) of `payment`, and what it collected: the
/// payload and requirements it was settled with.
struct Held {
    authorization: purser_domain::settlement::Settlement,
    payload: PaymentPayload,
    requirements: PaymentRequirements,
}

fn corrupt(what: impl std::fmt::Display) -> purser_domain::Error {
    purser_domain::Error::internal(
        "reading an escrowed payment's authorization",
        what.to_string(),
    )
}

impl Held {
    async fn find(
        store: &dyn SettlementRepository,
        scope: TenantScope,
        payment: &str,
    ) -> Result<Self> {
        let authorization = store
            .escrow_operations(scope, payment)
            .await?
            .into_iter()
            .find(|op| is_collect(op.kind) && op.status == SettlementStatus::Confirmed)
            .ok_or_else(|| purser_domain::Error::not_found("escrowed payment"))?;
        Ok(Self {
            payload: serde_json::from_str(&authorization.payload).map_err(corrupt)?,
            requirements: serde_json::from_str(&authorization.requirements).map_err(corrupt)?,
            authorization,
        })
    }

    /// The lifecycle request for `command` against the balances the escrow holds now, as the
    /// `/settle` body that carries it.
    fn request(
        &self,
        command: EscrowCommand,
        balances: EscrowBalances,
    ) -> Result<serde_json::Value> {
        use purser_x402::auth_capture::{LifecycleOrder, LifecyclePayload, collected_payment};
        let (info, salt_nonce) = collected_payment(&self.payload.payload, &self.requirements)
            .map_err(|e| match e.reason() {
                Reason::InvalidAuthCaptureEvmLifecycleNotRelayed => purser_domain::Error::new(
                    purser_domain::ErrorCode::EscrowOperationRefused,
                    "this payment names no receiver authorizer: its capture, void and refund are not relayed",
                ),
                _ => corrupt(e),
            })?;
        let expected = (balances.capturable, balances.refundable);
        let order = match command {
            EscrowCommand::Capture { amount } => {
                LifecycleOrder::capture(&info, amount.unwrap_or(balances.capturable), expected)
            }
            EscrowCommand::Void => LifecycleOrder::void(),
            EscrowCommand::Refund { amount } => {
                LifecycleOrder::refund(amount.unwrap_or(balances.refundable), expected)
            }
        };
        let payload = LifecyclePayload::unsigned(info, salt_nonce, order);
        Ok(serde_json::json!({
            "x402Version": 2,
            "paymentPayload": {
                "x402Version": 2,
                "accepted": self.requirements,
                "payload": payload.to_json(),
            },
            "paymentRequirements": self.requirements,
        }))
    }
}

impl Facilitator {
    async fn balances_of(&self, held: &Held) -> Result<EscrowBalances> {
        let work = self.work_of(&held.authorization)?;
        let escrow = work
            .escrow()
            .ok_or_else(|| corrupt("an authorization that is no escrow call"))?;
        let rail = self
            .rails
            .get(&held.authorization.key.network)
            .ok_or_else(|| {
                purser_domain::Error::new(
                    purser_domain::ErrorCode::UnsupportedNetwork,
                    "the payment's network is no longer served",
                )
            })?;
        let state = rail
            .escrow_payment_state(escrow.call.escrow, escrow.call.payment_hash)
            .await
            .map_err(|e| purser_domain::Error::unavailable("reading the escrow", e))?;
        Ok(EscrowBalances {
            capturable: Amount::from_atomic(state.capturable),
            refundable: Amount::from_atomic(state.refundable),
        })
    }
}

#[async_trait::async_trait]
impl EscrowDesk for Facilitator {
    async fn command(
        &self,
        scope: TenantScope,
        payment: &str,
        command: EscrowCommand,
    ) -> Result<purser_domain::settlement::Settlement> {
        let held = Held::find(&*self.store, scope, payment).await?;
        let balances = self.balances_of(&held).await?;
        let body = held.request(command, balances)?;
        let bytes = serde_json::to_vec(&body).map_err(corrupt)?;
        let answer = self.settle(scope, &bytes).await?;
        if !answer.success && !answer.is_pending() {
            return Err(purser_domain::escrow::refused(
                answer
                    .error_reason
                    .as_deref()
                    .unwrap_or("unexpected_settle_error"),
                answer
                    .error_message
                    .as_deref()
                    .unwrap_or("the escrow operation was refused"),
            ));
        }
        let kind = match command {
            EscrowCommand::Capture { .. } => SettlementKind::EscrowCapture,
            EscrowCommand::Void => SettlementKind::EscrowVoid,
            EscrowCommand::Refund { .. } => SettlementKind::EscrowRefund,
        };
        self.store
            .escrow_operations(scope, payment)
            .await?
            .into_iter()
            .rev()
            .find(|op| op.kind == kind && op.tx_hash.as_deref() == Some(&answer.transaction))
            .ok_or_else(|| corrupt("the operation's settlement is missing"))
    }

    async fn balances(&self, scope: TenantScope, payment: &str) -> Result<EscrowBalances> {
        let held = Held::find(&*self.store, scope, payment).await?;
        self.balances_of(&held).await
    }
}
