//! The facilitator's checks of a lifecycle payload (`capture`, `void`, `refund` of a held
//! payment), in the specification's order: admission (checks 2 to 5 of a collect), then the
//! operator, the salt binding, the payment's fields against the requirements, and the
//! authorizer's signatures, all without a chain; then, against the escrow's `paymentState`,
//! the operation's preconditions ([`Lifecycle::check_state`]).

use alloy::primitives::{Address, B256, U256};
use alloy::sol_types::SolStruct;
use purser_x402::Reason;
use purser_x402::auth_capture::{
    LifecycleOperation, LifecyclePayload, PaymentFlow, SubmittedFee, WirePaymentInfo,
};
use purser_x402::v2::PaymentRequirements;

use super::call::{EscrowCall, EscrowOperation};
use super::onchain::PaymentState;
use super::verify::{
    Admitted, Refusal, admit, check_fee_receiver, evm, refuse, seconds, signed_by,
};
use super::{
    Deployment, EscrowVersion, PaymentInfo, Refund, Void, authorizer_domain, bound_salt,
    fee_amount_bounds, payment_hash, v1_1,
};

/// What is checked.
#[derive(Debug, Clone, Copy)]
pub struct LifecycleRequest<'a> {
    pub requirements: &'a PaymentRequirements,
    pub accepted: &'a PaymentRequirements,
    pub payload: &'a LifecyclePayload,
    /// The addresses this facilitator submits from.
    pub submitters: &'a [Address],
    /// The receiver authorizers this facilitator signs for (it advertises them): a payload
    /// for one of them may omit its signature, and is authenticated out of band.
    pub delegated: &'a [Address],
}

/// How the operation was authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorization {
    /// The receiver authorizer's signature recovered.
    Signed,
    /// No signature: the authorizer is delegated to this facilitator, which must authenticate
    /// the request itself.
    Delegated,
}

/// A lifecycle payload that passed the checks that need no chain.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    pub chain_id: u64,
    pub deployment: Deployment,
    pub info: PaymentInfo,
    pub payment_hash: B256,
    pub operation: LifecycleOperation,
    /// `capture` and `refund`.
    pub amount: U256,
    /// `capture`.
    pub fee_amount: U256,
    pub fee_receiver: Address,
    /// The balances the authorizer signed against (`capture`, `refund`).
    pub expected: Option<(U256, U256)>,
    /// A `capture` that also voids what remains.
    pub void_after: bool,
    pub authorization: Authorization,
}

fn wire_info(info: &WirePaymentInfo) -> Result<PaymentInfo, Refusal> {
    let max_amount =
        alloy::primitives::aliases::U120::try_from(info.max_amount.atomic()).map_err(|_| {
            refuse(
                Reason::InvalidAuthCaptureEvmAmountOverflow,
                "paymentInfo.maxAmount exceeds the escrow's uint120",
            )
        })?;
    Ok(PaymentInfo {
        operator: evm(&info.operator),
        payer: evm(&info.payer),
        receiver: evm(&info.receiver),
        token: evm(&info.token),
        maxAmount: max_amount,
        preApprovalExpiry: seconds(info.pre_approval_expiry, "preApprovalExpiry")?,
        authorizationExpiry: seconds(info.authorization_expiry, "authorizationExpiry")?,
        refundExpiry: seconds(info.refund_expiry, "refundExpiry")?,
        minFeeBps: info.min_fee_bps,
        maxFeeBps: info.max_fee_bps,
        feeReceiver: evm(&info.fee_receiver),
        salt: U256::from_be_bytes(info.salt.to_bytes()),
    })
}

fn amount_of(value: Option<purser_domain::money::Amount>) -> U256 {
    value.map_or(U256::ZERO, |a| U256::from(a.atomic()))
}

/// Runs the checks in order; the first that fails answers.
pub fn check_lifecycle(request: LifecycleRequest<'_>) -> Result<Lifecycle, Refusal> {
    let LifecycleRequest {
        requirements,
        accepted,
        payload,
        submitters,
        delegated,
    } = request;
    let Admitted {
        chain_id,
        extra,
        deployment,
        operator,
    } = admit(requirements, accepted, submitters)?;
    if !extra.relays_lifecycle() {
        return Err(refuse(
            Reason::InvalidAuthCaptureEvmLifecycleNotRelayed,
            "this payment names no receiver authorizer: its lifecycle is not relayed",
        ));
    }
    if extra.payment_flow == PaymentFlow::Authorization
        && payload.operation != LifecycleOperation::Refund
    {
        return Err(refuse(
            Reason::InvalidAuthCaptureEvmPayloadType,
            "a charged payment holds nothing to capture or void",
        ));
    }
    if deployment.version != EscrowVersion::V1_1 {
        return Err(refuse(
            Reason::InvalidAuthCaptureEvmExtra,
            "this facilitator relays lifecycle on escrow v1.1 only",
        ));
    }
    // 1. Operator.
    let info = wire_info(&payload.payment_info)?;
    if info.operator != operator {
        return Err(refuse(
            Reason::InvalidAuthCaptureEvmOperatorMismatch,
            "paymentInfo.operator is not extra.captureAuthorizer",
        ));
    }
    // 2. The salt opens to the authorizer (and no policy).
    let receiver_authorizer = extra
        .receiver_authorizer
        .as_ref()
        .map(evm)
        .unwrap_or_default();
    let salt_nonce = U256::from_be_bytes(payload.salt_nonce.to_bytes());
    if bound_salt(receiver_authorizer, Address::ZERO, salt_nonce) != info.salt {
        return Err(refuse(
            Reason::InvalidAuthCaptureEvmSaltBindingMismatch,
            "paymentInfo.salt is not the commitment to the receiver authorizer and saltNonce",
        ));
    }
    // 3. Every other field is what the requirements dictate.
    let mismatch = |field: &str| {
        refuse(
            Reason::InvalidAuthCaptureEvmExtra,
            format!("paymentInfo.{field} is not what the requirements dictate"),
        )
    };
    if !requirements
        .pay_to
        .parse::<Address>()
        .is_ok_and(|a| a == info.receiver)
    {
        return Err(mismatch("receiver"));
    }
    if !requirements
        .asset
        .parse::<Address>()
        .is_ok_and(|a| a == info.token)
    {
        return Err(mismatch("token"));
    }
    if U256::from(info.maxAmount) != U256::from(requirements.amount.atomic()) {
        return Err(mismatch("maxAmount"));
    }
    if info.authorizationExpiry.to::<u64>() != extra.capture_deadline {
        return Err(mismatch("authorizationExpiry"));
    }
    if info.refundExpiry.to::<u64>() != extra.refund_deadline {
        return Err(mismatch("refundExpiry"));
    }
    if info.minFeeBps != extra.min_fee_bps || info.maxFeeBps != extra.max_fee_bps {
        return Err(mismatch("minFeeBps"));
    }
    if info.feeReceiver != evm(&extra.fee_recipient) {
        return Err(mismatch("feeReceiver"));
    }
    let hash = payment_hash(chain_id, deployment.escrow, &info);
    let amount = amount_of(payload.amount);
    let expected = payload
        .expected_capturable
        .zip(payload.expected_refundable)
        .map(|(c, r)| (U256::from(c.atomic()), U256::from(r.atomic())));
    let (expected_capturable, expected_refundable) = expected.unwrap_or_default();
    // The fee: an amount within the bounds, to the receiver the payment committed to.
    let (fee_amount, fee_receiver) = match (payload.fee, &payload.fee_receiver) {
        (Some(SubmittedFee::Amount(fee)), Some(receiver)) => {
            let fee = U256::from(fee.atomic());
            let (low, high) = fee_amount_bounds(amount, info.minFeeBps, info.maxFeeBps);
            if fee < low || fee > high {
                return Err(refuse(
                    Reason::InvalidAuthCaptureEvmFeeBpsOutOfRange,
                    "feeAmount is outside the fee bounds for this amount",
                ));
            }
            let receiver = evm(receiver);
            check_fee_receiver(&info, fee, receiver)?;
            (fee, receiver)
        }
        (Some(SubmittedFee::Bps(_)), _) => {
            return Err(refuse(
                Reason::InvalidAuthCaptureEvmPayloadFormat,
                "feeBps is the v1.0 escrow's fee field; this payment is on v1.1",
            ));
        }
        _ => (U256::ZERO, Address::ZERO),
    };
    // 4. and 5. The authorizer's signatures, or the delegation that stands in for them.
    let domain = authorizer_domain(chain_id, operator);
    let digest = match payload.operation {
        LifecycleOperation::Capture => v1_1::Capture {
            paymentInfoHash: hash,
            amount,
            feeAmount: fee_amount,
            feeReceiver: fee_receiver,
            expectedCapturableAmount: expected_capturable,
            expectedRefundableAmount: expected_refundable,
        }
        .eip712_signing_hash(&domain),
        LifecycleOperation::Void => Void {
            paymentInfoHash: hash,
        }
        .eip712_signing_hash(&domain),
        LifecycleOperation::Refund => Refund {
            paymentInfoHash: hash,
            amount,
            tokenCollector: deployment.operator_refund_collector,
            expectedCapturableAmount: expected_capturable,
            expectedRefundableAmount: expected_refundable,
        }
        .eip712_signing_hash(&domain),
    };
    let is_delegated = delegated.contains(&receiver_authorizer);
    let authorization = match &payload.authorizer_signature {
        Some(signature) if signed_by(signature, digest, receiver_authorizer) => {
            Authorization::Signed
        }
        Some(_) => {
            return Err(refuse(
                Reason::InvalidAuthCaptureEvmAuthorizerSignature,
                "authorizerSignature is not the receiver authorizer's over this operation",
            ));
        }
        None if is_delegated => Authorization::Delegated,
        None => {
            return Err(refuse(
                Reason::InvalidAuthCaptureEvmAuthorizerSignature,
                "authorizerSignature is missing, and the receiver authorizer is not delegated to this facilitator",
            ));
        }
    };
    let void_digest = Void {
        paymentInfoHash: hash,
    }
    .eip712_signing_hash(&domain);
    let void_after = match &payload.void_authorizer_signature {
        Some(signature) if signed_by(signature, void_digest, receiver_authorizer) => true,
        Some(_) => {
            return Err(refuse(
                Reason::InvalidAuthCaptureEvmVoidAuthorizerSignature,
                "voidAuthorizerSignature is not the receiver authorizer's over the void",
            ));
        }
        None => false,
    };
    Ok(Lifecycle {
        chain_id,
        deployment,
        info,
        payment_hash: hash,
        operation: payload.operation,
        amount,
        fee_amount,
        fee_receiver,
        expected,
        void_after,
        authorization,
    })
}

impl Lifecycle {
    /// Check 6: the operation's preconditions against what the escrow holds, at unix time
    /// `now`.
    pub fn check_state(&self, state: PaymentState, now: u64) -> Result<(), Refusal> {
        let capturable = U256::from(state.capturable);
        let refundable = U256::from(state.refundable);
        let single_use = || match self.expected {
            Some(expected) if expected == (capturable, refundable) => Ok(()),
            _ => Err(refuse(
                Reason::InvalidAuthCaptureEvmUnexpectedPaymentState,
                format!(
                    "the escrow holds {capturable} capturable and {refundable} refundable, not what the authorizer signed for"
                ),
            )),
        };
        match self.operation {
            LifecycleOperation::Capture => {
                if now >= self.info.authorizationExpiry.to::<u64>() {
                    return Err(refuse(
                        Reason::InvalidAuthCaptureEvmCaptureDeadlineExpired,
                        "the authorization has expired: nothing can be captured",
                    ));
                }
                if self.amount.is_zero() || self.amount > capturable {
                    return Err(refuse(
                        Reason::InvalidAuthCaptureEvmInsufficientAuthorization,
                        format!("{} is more than the {capturable} held", self.amount),
                    ));
                }
                if self.void_after && self.amount == capturable {
                    return Err(refuse(
                        Reason::InvalidAuthCaptureEvmVoidRemainderFullCapture,
                        "the capture takes everything held: nothing remains to void",
                    ));
                }
                single_use()
            }
            LifecycleOperation::Void => {
                if capturable.is_zero() {
                    return Err(refuse(
                        Reason::InvalidAuthCaptureEvmZeroAuthorization,
                        "nothing is held to void",
                    ));
                }
                Ok(())
            }
            LifecycleOperation::Refund => {
                if now >= self.info.refundExpiry.to::<u64>() {
                    return Err(refuse(
                        Reason::InvalidAuthCaptureEvmRefundDeadlineExpired,
                        "the refund window has closed",
                    ));
                }
                if self.amount.is_zero() || self.amount > refundable {
                    return Err(refuse(
                        Reason::InvalidAuthCaptureEvmRefundExceedsCapture,
                        format!("{} is more than the {refundable} refundable", self.amount),
                    ));
                }
                single_use()
            }
        }
    }

    /// The escrow call of the operation.
    pub fn call(&self) -> EscrowCall {
        let operation = match self.operation {
            LifecycleOperation::Capture => EscrowOperation::Capture {
                amount: self.amount,
                fee_amount: self.fee_amount,
                fee_receiver: self.fee_receiver,
            },
            LifecycleOperation::Void => EscrowOperation::Void,
            LifecycleOperation::Refund => EscrowOperation::Refund {
                amount: self.amount,
                collector: self.deployment.operator_refund_collector,
            },
        };
        EscrowCall {
            escrow: self.deployment.escrow,
            info: self.info.clone(),
            payment_hash: self.payment_hash,
            operation,
        }
    }

    /// The void that follows a capture with a `voidAuthorizerSignature`.
    pub fn void_call(&self) -> Option<EscrowCall> {
        self.void_after.then(|| EscrowCall {
            operation: EscrowOperation::Void,
            ..self.call()
        })
    }
}

#[cfg(test)]
mod tests {
    use alloy::signers::SignerSync;
    use alloy::signers::local::PrivateKeySigner;
    use purser_domain::money::Amount;
    use purser_x402::auth_capture::{AuthCapturePayload, LifecycleOrder};
    use purser_x402::exact_evm::{Bytes32, EvmAddress, HexSignature};
    use serde_json::{Value, json};

    use super::*;
    use crate::auth_capture::V1_1;

    const OPERATOR: &str = "0x1111111111111111111111111111111111111111";
    const RECEIVER: &str = "0x3333333333333333333333333333333333333333";
    const TOKEN: &str = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
    const FEES: &str = "0x4444444444444444444444444444444444444444";
    const CHAIN: u64 = 84532;

    struct Case {
        authorizer: PrivateKeySigner,
        requirements: PaymentRequirements,
        salt_nonce: Bytes32,
    }

    impl Case {
        fn new() -> Self {
            let authorizer = PrivateKeySigner::random();
            let requirements: PaymentRequirements = serde_json::from_value(json!({
                "scheme": "auth-capture", "network": format!("eip155:{CHAIN}"),
                "amount": "1000000", "asset": TOKEN, "payTo": RECEIVER, "maxTimeoutSeconds": 60,
                "extra": {
                    "name": "USDC", "version": "2", "captureAuthorizer": OPERATOR,
                    "receiverAuthorizer": authorizer.address().to_checksum(None),
                    "captureDeadline": 1_900_000_000u64, "refundDeadline": 1_900_100_000u64,
                    "minFeeBps": 100, "maxFeeBps": 200, "feeRecipient": FEES,
                },
            }))
            .unwrap();
            Self {
                authorizer,
                requirements,
                salt_nonce: Bytes32::parse(&format!("0x{}", "0a".repeat(32))).unwrap(),
            }
        }

        fn info(&self) -> purser_x402::auth_capture::WirePaymentInfo {
            let salt = bound_salt(
                self.authorizer.address(),
                Address::ZERO,
                U256::from_be_bytes(self.salt_nonce.to_bytes()),
            );
            purser_x402::auth_capture::WirePaymentInfo {
                operator: EvmAddress::parse(OPERATOR).unwrap(),
                payer: EvmAddress::parse("0x2222222222222222222222222222222222222222").unwrap(),
                receiver: EvmAddress::parse(RECEIVER).unwrap(),
                token: EvmAddress::parse(TOKEN).unwrap(),
                max_amount: Amount::from_atomic(1_000_000),
                pre_approval_expiry: 1_800_000_000,
                authorization_expiry: 1_900_000_000,
                refund_expiry: 1_900_100_000,
                min_fee_bps: 100,
                max_fee_bps: 200,
                fee_receiver: EvmAddress::parse(FEES).unwrap(),
                salt: Bytes32::parse(&format!("{salt:#066x}")).unwrap(),
            }
        }

        fn capture(&self, amount: u128, fee: u128) -> LifecyclePayload {
            LifecyclePayload::unsigned(
                self.info(),
                self.salt_nonce.clone(),
                LifecycleOrder {
                    operation: LifecycleOperation::Capture,
                    amount: Some(Amount::from_atomic(amount)),
                    fee: Some((Amount::from_atomic(fee), EvmAddress::parse(FEES).unwrap())),
                    expected: Some((Amount::from_atomic(1_000_000), Amount::ZERO)),
                },
            )
        }

        /// `signer`'s signature over `payload`'s capture, as the receiver authorizer makes it.
        fn sign(&self, payload: &mut LifecyclePayload, signer: &PrivateKeySigner) {
            let info = wire_info(&payload.payment_info).unwrap();
            let domain = authorizer_domain(CHAIN, OPERATOR.parse().unwrap());
            let fee = match payload.fee {
                Some(SubmittedFee::Amount(fee)) => U256::from(fee.atomic()),
                _ => U256::ZERO,
            };
            let digest = v1_1::Capture {
                paymentInfoHash: payment_hash(CHAIN, V1_1.escrow, &info),
                amount: amount_of(payload.amount),
                feeAmount: fee,
                feeReceiver: FEES.parse().unwrap(),
                expectedCapturableAmount: amount_of(payload.expected_capturable),
                expectedRefundableAmount: amount_of(payload.expected_refundable),
            }
            .eip712_signing_hash(&domain);
            payload.authorizer_signature = Some(signed(signer, digest));
        }

        fn void_signature(&self, signer: &PrivateKeySigner) -> HexSignature {
            let info = wire_info(&self.info()).unwrap();
            let digest = Void {
                paymentInfoHash: payment_hash(CHAIN, V1_1.escrow, &info),
            }
            .eip712_signing_hash(&authorizer_domain(CHAIN, OPERATOR.parse().unwrap()));
            signed(signer, digest)
        }

        fn check_with(
            &self,
            payload: &LifecyclePayload,
            delegated: &[Address],
        ) -> Result<Lifecycle, Refusal> {
            // Round-trips through the wire, as a facilitator reads it.
            let wire = payload.to_json();
            let AuthCapturePayload::Lifecycle(read) = AuthCapturePayload::from_json(&wire).unwrap()
            else {
                panic!("a lifecycle payload");
            };
            check_lifecycle(LifecycleRequest {
                requirements: &self.requirements,
                accepted: &self.requirements,
                payload: &read,
                submitters: &[OPERATOR.parse().unwrap()],
                delegated,
            })
        }

        fn check(&self, payload: &LifecyclePayload) -> Result<Lifecycle, Refusal> {
            self.check_with(payload, &[])
        }
    }

    fn signed(signer: &PrivateKeySigner, digest: B256) -> HexSignature {
        let signature = signer.sign_hash_sync(&digest).unwrap();
        HexSignature::parse(&format!("0x{}", alloy::hex::encode(signature.as_bytes()))).unwrap()
    }

    fn reason(result: Result<Lifecycle, Refusal>) -> Reason {
        result.map(|_| ()).unwrap_err().reason
    }

    #[test]
    fn the_receiver_authorizers_signature_admits_exactly_what_it_signed() {
        let case = Case::new();
        let mut capture = case.capture(300_000, 3_000);
        case.sign(&mut capture, &case.authorizer);
        let checked = case.check(&capture).unwrap();
        assert_eq!(checked.authorization, Authorization::Signed);
        assert_eq!(checked.amount, U256::from(300_000));
        assert!(!checked.void_after);
        // Another amount under the same signature, or another signer: refused.
        let mut altered = capture.clone();
        altered.amount = Some(Amount::from_atomic(300_001));
        assert_eq!(
            reason(case.check(&altered)),
            Reason::InvalidAuthCaptureEvmAuthorizerSignature
        );
        let mut forged = case.capture(300_000, 3_000);
        case.sign(&mut forged, &PrivateKeySigner::random());
        assert_eq!(
            reason(case.check(&forged)),
            Reason::InvalidAuthCaptureEvmAuthorizerSignature
        );
        // Unsigned: only for an authorizer delegated to this facilitator.
        let unsigned = case.capture(300_000, 3_000);
        assert_eq!(
            reason(case.check(&unsigned)),
            Reason::InvalidAuthCaptureEvmAuthorizerSignature
        );
        let delegated = case
            .check_with(&unsigned, &[case.authorizer.address()])
            .unwrap();
        assert_eq!(delegated.authorization, Authorization::Delegated);
        // A void signature makes it a capture-and-void; a void signed by another is refused.
        let mut and_void = capture.clone();
        and_void.void_authorizer_signature = Some(case.void_signature(&case.authorizer));
        assert!(case.check(&and_void).unwrap().void_after);
        and_void.void_authorizer_signature = Some(case.void_signature(&PrivateKeySigner::random()));
        assert_eq!(
            reason(case.check(&and_void)),
            Reason::InvalidAuthCaptureEvmVoidAuthorizerSignature
        );
    }

    #[test]
    fn the_payment_must_be_the_one_the_requirements_and_salt_describe() {
        let case = Case::new();
        let delegated = [case.authorizer.address()];
        let refused = |change: &dyn Fn(&mut LifecyclePayload)| {
            let mut payload = case.capture(300_000, 3_000);
            change(&mut payload);
            reason(case.check_with(&payload, &delegated))
        };
        assert_eq!(
            refused(&|p| p.payment_info.operator = EvmAddress::parse(FEES).unwrap()),
            Reason::InvalidAuthCaptureEvmOperatorMismatch
        );
        assert_eq!(
            refused(&|p| p.salt_nonce = Bytes32::parse(&format!("0x{}", "0b".repeat(32))).unwrap()),
            Reason::InvalidAuthCaptureEvmSaltBindingMismatch
        );
        assert_eq!(
            refused(&|p| p.payment_info.receiver = EvmAddress::parse(FEES).unwrap()),
            Reason::InvalidAuthCaptureEvmExtra
        );
        assert_eq!(
            refused(&|p| p.payment_info.refund_expiry += 1),
            Reason::InvalidAuthCaptureEvmExtra
        );
        // The fee: within the bounds for the amount (1% to 2% here), to the committed receiver.
        assert_eq!(
            refused(&|p| p.fee = Some(SubmittedFee::Amount(Amount::from_atomic(2_999)))),
            Reason::InvalidAuthCaptureEvmFeeBpsOutOfRange
        );
        assert_eq!(
            refused(&|p| p.fee = Some(SubmittedFee::Amount(Amount::from_atomic(6_001)))),
            Reason::InvalidAuthCaptureEvmFeeBpsOutOfRange
        );
        assert_eq!(
            refused(&|p| p.fee_receiver = Some(EvmAddress::parse(RECEIVER).unwrap())),
            Reason::InvalidAuthCaptureEvmFeeReceiver
        );
        assert_eq!(
            refused(&|p| p.fee = Some(SubmittedFee::Bps(100))),
            Reason::InvalidAuthCaptureEvmPayloadFormat
        );
        // No receiver authorizer: nothing is relayed.
        let mut unbound = Case::new();
        let mut extra: Value = Value::Object(unbound.requirements.extra.clone().unwrap());
        extra.as_object_mut().unwrap().remove("receiverAuthorizer");
        unbound.requirements.extra = extra.as_object().cloned();
        assert_eq!(
            reason(unbound.check(&unbound.capture(1, 0))),
            Reason::InvalidAuthCaptureEvmLifecycleNotRelayed
        );
    }

    #[test]
    fn preconditions_are_read_against_the_escrows_balances() {
        let case = Case::new();
        let delegated = [case.authorizer.address()];
        let capture = case
            .check_with(&case.capture(300_000, 3_000), &delegated)
            .unwrap();
        let state = |capturable: u128, refundable: u128| PaymentState {
            collected: true,
            capturable,
            refundable,
        };
        let now = 1_850_000_000;
        assert!(capture.check_state(state(1_000_000, 0), now).is_ok());
        // Balances that moved since the request was made: single use.
        assert_eq!(
            capture
                .check_state(state(700_000, 300_000), now)
                .unwrap_err()
                .reason,
            Reason::InvalidAuthCaptureEvmUnexpectedPaymentState
        );
        assert_eq!(
            capture
                .check_state(state(200_000, 0), now)
                .unwrap_err()
                .reason,
            Reason::InvalidAuthCaptureEvmInsufficientAuthorization
        );
        assert_eq!(
            capture
                .check_state(state(1_000_000, 0), 1_900_000_000)
                .unwrap_err()
                .reason,
            Reason::InvalidAuthCaptureEvmCaptureDeadlineExpired
        );
        let mut refund = case.capture(0, 0);
        refund.operation = LifecycleOperation::Refund;
        refund.amount = Some(Amount::from_atomic(400_000));
        refund.fee = None;
        refund.fee_receiver = None;
        refund.expected_capturable = Some(Amount::ZERO);
        refund.expected_refundable = Some(Amount::from_atomic(300_000));
        let refund = case.check_with(&refund, &delegated).unwrap();
        assert_eq!(
            refund
                .check_state(state(0, 300_000), now)
                .unwrap_err()
                .reason,
            Reason::InvalidAuthCaptureEvmRefundExceedsCapture
        );
        assert_eq!(
            refund
                .check_state(state(0, 300_000), 1_900_100_000)
                .unwrap_err()
                .reason,
            Reason::InvalidAuthCaptureEvmRefundDeadlineExpired
        );
    }
}
