//! The checks of a client's `auth-capture` collect payload that need no chain, in the
//! specification's order ("Verification: client payment payload", steps 1 to 13): shape,
//! scheme, network, extra, operator, transfer method, deadlines, validity window, collector,
//! amount and fee, and the nonce that binds every `PaymentInfo` field. What is left for the
//! chain is the payer's signature when it is not a plain ECDSA one (a contract wallet answers
//! ERC-1271, a counterfactual one is proven by simulating the collect) and the simulation
//! itself.

use alloy::primitives::aliases::{U48, U120};
use alloy::primitives::{Address, B256, Bytes, Signature, U256, keccak256};
use alloy::sol_types::SolStruct;
use purser_x402::auth_capture::{
    AssetTransferMethod, AuthCaptureExtra, ChargeTerms, CollectPayload, OperatorType, PaymentFlow,
    SubmittedFee, TokenAuthorization,
};
use purser_x402::exact_evm::EvmAddress;
use purser_x402::v2::PaymentRequirements;
use purser_x402::{Reason, auth_capture};

use super::call::{EscrowCall, EscrowOperation};
use super::{
    Deployment, EscrowVersion, PaymentInfo, ReceiveWithAuthorization, authorizer_domain,
    bound_salt, deployment, fee_amount_bounds, payment_hash, receive_authorization_digest,
    signature_nonce, v1_1,
};

/// How far in the future a deadline must be for a transaction to be mined before it (the
/// specification's floor).
pub const DEADLINE_SKEW_SECONDS: u64 = 6;

/// A refusal: the reason a facilitator answers, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub message: String,
}

pub(crate) fn refuse(reason: Reason, message: impl Into<String>) -> Refusal {
    Refusal {
        reason,
        message: message.into(),
    }
}

/// What is checked.
#[derive(Debug, Clone, Copy)]
pub struct CollectRequest<'a> {
    /// The requirements the server sent for verification.
    pub requirements: &'a PaymentRequirements,
    /// The requirements the client says it accepted (`payload.accepted`).
    pub accepted: &'a PaymentRequirements,
    pub payload: &'a CollectPayload,
    /// `true` at `/settle`: a `charge` must be completed by then.
    pub settling: bool,
    /// The addresses this facilitator submits from: the only `delegated` operators it admits.
    pub submitters: &'a [Address],
    /// Unix seconds.
    pub now: u64,
}

/// How the payer's signature stands after the checks that need no chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayerSignature {
    /// A 65-byte ECDSA signature that recovers to the payer.
    Verified,
    /// Any other length: a contract wallet (ERC-1271) or a counterfactual one (ERC-6492), for
    /// the chain to check.
    ContractWallet,
}

/// A collect payload that passed: the payment it commits to, and where it is collected.
#[derive(Debug, Clone)]
pub struct Collect {
    pub chain_id: u64,
    pub deployment: Deployment,
    pub extra: AuthCaptureExtra,
    pub info: PaymentInfo,
    /// `getHash(info)`: the escrow's key for this payment.
    pub payment_hash: B256,
    /// What settling calls: `authorize` on the escrow flow, `charge` on the authorization flow.
    pub flow: PaymentFlow,
    pub payer_signature: PayerSignature,
}

/// Where a charge's or capture's `fee` goes: to the fee receiver the payment committed to (any,
/// when it committed to none), and somewhere when there is a fee.
pub(crate) fn check_fee_receiver(
    info: &PaymentInfo,
    fee: U256,
    receiver: Address,
) -> Result<(), Refusal> {
    if info.feeReceiver != Address::ZERO && receiver != info.feeReceiver {
        return Err(refuse(
            Reason::InvalidAuthCaptureEvmFeeReceiver,
            "feeReceiver is not the payment's fee receiver",
        ));
    }
    if fee > U256::ZERO && receiver == Address::ZERO {
        return Err(refuse(
            Reason::InvalidAuthCaptureEvmZeroFeeReceiver,
            "a fee needs a fee receiver",
        ));
    }
    Ok(())
}

/// Whether `signature` is `signer`'s over `digest` (65-byte ECDSA).
pub(crate) fn signed_by(
    signature: &purser_x402::HexSignature,
    digest: B256,
    signer: Address,
) -> bool {
    Signature::try_from(signature.to_bytes().as_slice())
        .ok()
        .and_then(|s| s.recover_address_from_prehash(&digest).ok())
        == Some(signer)
}

impl Collect {
    /// The `charge` that collects this payment (the authorization flow): the amount, fee and
    /// fee receiver the server completed it with (`terms`), authorized by the receiver
    /// authorizer's `Charge` signature or, without one, by its delegation to this facilitator
    /// (an authorizer in `delegated`). Without `terms` (a raw payload at `/verify`), the
    /// provisional charge the specification simulates: the whole amount at the lowest fee.
    pub fn charge_call(
        &self,
        collector_data: Bytes,
        terms: Option<&ChargeTerms>,
        delegated: &[Address],
    ) -> Result<EscrowCall, Refusal> {
        let max = U256::from(self.info.maxAmount);
        let lowest_fee =
            |amount: U256| amount * U256::from(self.info.minFeeBps) / U256::from(10_000u32);
        let (amount, fee_amount, fee_receiver) = match terms {
            None => (max, lowest_fee(max), self.info.feeReceiver),
            Some(terms) => {
                let SubmittedFee::Amount(fee) = terms.fee else {
                    return Err(refuse(
                        Reason::InvalidAuthCaptureEvmPayloadFormat,
                        "feeBps is the v1.0 escrow's fee field",
                    ));
                };
                (
                    U256::from(terms.amount.atomic()),
                    U256::from(fee.atomic()),
                    evm(&terms.fee_receiver),
                )
            }
        };
        check_fee_receiver(&self.info, fee_amount, fee_receiver)?;
        if let Some(terms) = terms {
            let authorizer = self
                .extra
                .receiver_authorizer
                .as_ref()
                .map(evm)
                .unwrap_or_default();
            let digest = v1_1::Charge {
                paymentInfoHash: self.payment_hash,
                amount,
                tokenCollector: self.deployment.eip3009_collector,
                collectorDataHash: keccak256(&collector_data),
                feeAmount: fee_amount,
                feeReceiver: fee_receiver,
            }
            .eip712_signing_hash(&authorizer_domain(self.chain_id, self.info.operator));
            let authorized = match &terms.authorizer_signature {
                Some(signature) => signed_by(signature, digest, authorizer),
                None => delegated.contains(&authorizer),
            };
            if !authorized {
                return Err(refuse(
                    Reason::InvalidAuthCaptureEvmAuthorizerSignature,
                    "the charge is not the receiver authorizer's, nor delegated to this facilitator",
                ));
            }
        }
        Ok(EscrowCall {
            escrow: self.deployment.escrow,
            info: self.info.clone(),
            payment_hash: self.payment_hash,
            operation: EscrowOperation::Charge {
                amount,
                collector: self.deployment.eip3009_collector,
                collector_data,
                fee_amount,
                fee_receiver,
            },
        })
    }

    /// The `authorize` that collects this payment: the whole amount, through the deployment's
    /// ERC-3009 collector, with the payer's signature (`collector_data`) as it came.
    pub fn authorize_call(&self, collector_data: Bytes) -> EscrowCall {
        EscrowCall {
            escrow: self.deployment.escrow,
            info: self.info.clone(),
            payment_hash: self.payment_hash,
            operation: EscrowOperation::Authorize {
                collector: self.deployment.eip3009_collector,
                collector_data,
            },
        }
    }
}

/// An address the wire parsing already validated.
pub(crate) fn evm(address: &EvmAddress) -> Address {
    Address::from(address.to_bytes())
}

fn address(text: &str, what: &str, reason: Reason) -> Result<Address, Refusal> {
    text.parse()
        .map_err(|_| refuse(reason, format!("{what} is not an address")))
}

/// A time as the escrow keeps it (`uint48`).
pub(crate) fn seconds(value: u64, what: &str) -> Result<U48, Refusal> {
    U48::try_from(value).map_err(|_| {
        refuse(
            Reason::InvalidAuthCaptureEvmDeadlineOrdering,
            format!("{what} is beyond the escrow's uint48 seconds"),
        )
    })
}

/// What checks 2 to 5 establish, for collect and lifecycle payloads alike.
pub(crate) struct Admitted {
    pub chain_id: u64,
    pub extra: AuthCaptureExtra,
    pub deployment: Deployment,
    /// `extra.captureAuthorizer`: one of this facilitator's submitters.
    pub operator: Address,
}

/// Checks 2 to 5: the scheme, the network, `extra` and the deployment it names, and the
/// operator's admission.
pub(crate) fn admit(
    requirements: &PaymentRequirements,
    accepted: &PaymentRequirements,
    submitters: &[Address],
) -> Result<Admitted, Refusal> {
    // 2. Scheme, 3. network.
    if requirements.scheme != auth_capture::SCHEME || accepted.scheme != auth_capture::SCHEME {
        return Err(refuse(
            Reason::InvalidAuthCaptureEvmScheme,
            "the scheme is not auth-capture",
        ));
    }
    if accepted.network != requirements.network {
        return Err(refuse(
            Reason::InvalidAuthCaptureEvmNetworkMismatch,
            "the payment is for another network than the requirements",
        ));
    }
    let chain_id = requirements.network.evm_chain_id().ok_or_else(|| {
        refuse(
            Reason::InvalidNetwork,
            "the network is not eip155:<chain id>",
        )
    })?;
    // 4. Extra, and the deployment it names.
    let raw_extra = serde_json::Value::Object(requirements.extra.clone().unwrap_or_default());
    let extra =
        AuthCaptureExtra::from_json(&raw_extra).map_err(|e| refuse(e.reason(), e.to_string()))?;
    let escrow = extra.auth_capture_escrow.as_ref().map(evm);
    let deployment = deployment(escrow).ok_or_else(|| {
        refuse(
            Reason::InvalidAuthCaptureEvmExtra,
            "authCaptureEscrow is not a canonical escrow",
        )
    })?;
    // 5. Operator: a `delegated` one is this facilitator's own submitter; contract operators
    // are admitted by no allowlist here.
    let operator = evm(&extra.capture_authorizer);
    match extra.operator_type {
        OperatorType::Delegated if submitters.contains(&operator) => {}
        OperatorType::Delegated => {
            return Err(refuse(
                Reason::InvalidAuthCaptureEvmOperatorNotAdmitted,
                "captureAuthorizer is not an address this facilitator submits from",
            ));
        }
        OperatorType::Custom => {
            return Err(refuse(
                Reason::InvalidAuthCaptureEvmOperatorNotAdmitted,
                "this facilitator admits no contract operator",
            ));
        }
    }
    Ok(Admitted {
        chain_id,
        extra,
        deployment,
        operator,
    })
}

/// Runs the checks in order; the first that fails answers.
pub fn check_collect(request: CollectRequest<'_>) -> Result<Collect, Refusal> {
    let CollectRequest {
        requirements,
        accepted,
        payload,
        settling,
        submitters,
        now,
    } = request;
    let Admitted {
        chain_id,
        extra,
        deployment,
        operator,
    } = admit(requirements, accepted, submitters)?;
    let receiver_authorizer = extra.receiver_authorizer.as_ref().map(evm);
    if extra.payment_flow == PaymentFlow::Authorization && receiver_authorizer.is_none() {
        return Err(refuse(
            Reason::InvalidAuthCaptureEvmMissingReceiverAuthorizer,
            "a charge needs a receiverAuthorizer",
        ));
    }
    // 1. Shape: the salt nonce exactly when the salt is a commitment; a charge completed only
    // where one is settled.
    if extra.is_bound() != payload.salt_nonce.is_some() {
        return Err(refuse(
            Reason::InvalidAuthCaptureEvmPayloadFormat,
            if extra.is_bound() {
                "saltNonce is missing: the salt commits to the receiver authorizer"
            } else {
                "saltNonce is present, but the salt commits to nothing"
            },
        ));
    }
    match (extra.payment_flow, &payload.charge, settling) {
        (PaymentFlow::Escrow, Some(_), _) => {
            return Err(refuse(
                Reason::InvalidAuthCaptureEvmPayloadFormat,
                "an authorize settles the payload as the client sent it: no charge fields",
            ));
        }
        (PaymentFlow::Authorization, None, true) => {
            return Err(refuse(
                Reason::InvalidAuthCaptureEvmPayloadFormat,
                "a charge is settled only once the server completed it",
            ));
        }
        _ => {}
    }
    // 6. Transfer method.
    let TokenAuthorization::Eip3009(authorization) = &payload.authorization else {
        return Err(refuse(
            if extra.asset_transfer_method == AssetTransferMethod::Permit2 {
                Reason::InvalidAuthCaptureEvmUnsupportedAssetTransferMethod
            } else {
                Reason::InvalidAuthCaptureEvmPayloadMethodMismatch
            },
            "this facilitator collects through the ERC-3009 collector only",
        ));
    };
    if extra.asset_transfer_method != AssetTransferMethod::Eip3009 {
        return Err(refuse(
            Reason::InvalidAuthCaptureEvmPayloadMethodMismatch,
            "the payload is ERC-3009, the requirements name another method",
        ));
    }
    // 7. Deadlines, 8. the authorization's window.
    let capture_deadline = extra.capture_deadline;
    if capture_deadline <= now + DEADLINE_SKEW_SECONDS {
        return Err(refuse(
            Reason::InvalidAuthCaptureEvmCaptureDeadlineExpired,
            "captureDeadline has passed or is too close",
        ));
    }
    if now + requirements.max_timeout_seconds > capture_deadline
        || authorization.valid_before > capture_deadline
    {
        return Err(refuse(
            Reason::InvalidAuthCaptureEvmDeadlineOrdering,
            "the authorization may outlive the capture deadline",
        ));
    }
    if authorization.valid_before <= now + DEADLINE_SKEW_SECONDS {
        return Err(refuse(
            Reason::InvalidAuthCaptureEvmAuthorizationExpired,
            "validBefore has passed or is too close",
        ));
    }
    if authorization.valid_after > now {
        return Err(refuse(
            Reason::InvalidAuthCaptureEvmAuthorizationNotYetValid,
            "validAfter is in the future",
        ));
    }
    // 9. Collector.
    let to = evm(&authorization.to);
    if to != deployment.eip3009_collector {
        return Err(refuse(
            Reason::InvalidAuthCaptureEvmTokenCollectorMismatch,
            "authorization.to is not the deployment's ERC-3009 collector",
        ));
    }
    // 12. Amount and fee.
    if authorization.value != requirements.amount {
        return Err(refuse(
            Reason::InvalidAuthCaptureEvmAmountMismatch,
            "authorization.value is not the required amount",
        ));
    }
    let max_amount = requirements.amount.atomic();
    let max_amount_u120 = U120::try_from(max_amount).map_err(|_| {
        refuse(
            Reason::InvalidAuthCaptureEvmAmountMismatch,
            "the amount exceeds the escrow's uint120",
        )
    })?;
    if let Some(charge) = &payload.charge {
        if charge.amount.is_zero() || charge.amount > requirements.amount {
            return Err(refuse(
                Reason::InvalidAuthCaptureEvmAmountMismatch,
                "a charge takes more than nothing and at most the required amount",
            ));
        }
        let amount = U256::from(charge.amount.atomic());
        match (deployment.version, charge.fee) {
            (EscrowVersion::V1_1, SubmittedFee::Amount(fee)) => {
                let (low, high) = fee_amount_bounds(amount, extra.min_fee_bps, extra.max_fee_bps);
                let fee = U256::from(fee.atomic());
                if fee < low || fee > high {
                    return Err(refuse(
                        Reason::InvalidAuthCaptureEvmExtra,
                        "feeAmount is outside the fee bounds for this amount",
                    ));
                }
            }
            (EscrowVersion::V1_0, SubmittedFee::Bps(bps)) => {
                if bps < extra.min_fee_bps || bps > extra.max_fee_bps {
                    return Err(refuse(
                        Reason::InvalidAuthCaptureEvmExtra,
                        "feeBps is outside the fee bounds",
                    ));
                }
            }
            _ => {
                return Err(refuse(
                    Reason::InvalidAuthCaptureEvmPayloadFormat,
                    "the fee field is the other escrow version's",
                ));
            }
        }
    }
    // 13. The nonce binds every PaymentInfo field; a bound salt must open to the authorizer.
    let payer = evm(&authorization.from);
    let salt = U256::from_be_bytes(payload.salt.to_bytes());
    if let Some(salt_nonce) = &payload.salt_nonce {
        let policy = Address::ZERO;
        let opened = bound_salt(
            receiver_authorizer.unwrap_or(Address::ZERO),
            policy,
            U256::from_be_bytes(salt_nonce.to_bytes()),
        );
        if opened != salt {
            return Err(refuse(
                Reason::InvalidAuthCaptureEvmSaltBindingMismatch,
                "salt is not the commitment to the receiver authorizer and saltNonce",
            ));
        }
    }
    let info = PaymentInfo {
        operator,
        payer,
        receiver: address(
            &requirements.pay_to,
            "payTo",
            Reason::InvalidAuthCaptureEvmExtra,
        )?,
        token: address(
            &requirements.asset,
            "asset",
            Reason::InvalidAuthCaptureEvmExtra,
        )?,
        maxAmount: max_amount_u120,
        preApprovalExpiry: seconds(authorization.valid_before, "validBefore")?,
        authorizationExpiry: seconds(capture_deadline, "captureDeadline")?,
        refundExpiry: seconds(extra.refund_deadline, "refundDeadline")?,
        minFeeBps: extra.min_fee_bps,
        maxFeeBps: extra.max_fee_bps,
        feeReceiver: evm(&extra.fee_recipient),
        salt,
    };
    let nonce = B256::from(authorization.nonce.to_bytes());
    if signature_nonce(chain_id, deployment.escrow, &info) != nonce {
        return Err(refuse(
            Reason::InvalidAuthCaptureEvmNonceMismatch,
            "authorization.nonce is not this payment's signature nonce",
        ));
    }
    // 11. The payer's signature, where no chain is needed to check it.
    let payer_signature = if payload.signature.is_eoa_length() {
        let message = ReceiveWithAuthorization {
            from: payer,
            to,
            value: U256::from(max_amount),
            validAfter: U256::from(authorization.valid_after),
            validBefore: U256::from(authorization.valid_before),
            nonce,
        };
        let digest = receive_authorization_digest(
            &message,
            &extra.name,
            &extra.version,
            chain_id,
            info.token,
        );
        let recovered = Signature::try_from(payload.signature.to_bytes().as_slice())
            .ok()
            .and_then(|s| s.recover_address_from_prehash(&digest).ok());
        if recovered != Some(payer) {
            return Err(refuse(
                Reason::InvalidAuthCaptureEvmSignature,
                "the signature is not the payer's",
            ));
        }
        PayerSignature::Verified
    } else {
        PayerSignature::ContractWallet
    };
    Ok(Collect {
        chain_id,
        deployment,
        payment_hash: payment_hash(chain_id, deployment.escrow, &info),
        flow: extra.payment_flow,
        extra,
        info,
        payer_signature,
    })
}
