//! The reason strings a facilitator puts in `invalidReason` (verify) and `errorReason` (settle).
//!
//! Purser emits the TypeScript SDK's strings (`@x402/evm` `exact/facilitator/errors.ts`, which
//! its comment says are character-identical to the Go SDK's), because resource servers and
//! clients built on the SDK compare against them. Where the specification's text names the
//! same condition differently (`invalid_exact_evm_payload_signature` for the SDK's
//! `invalid_exact_evm_signature`), [`Reason::from_wire`] reads the spec alias too; reasons from
//! other facilitators stay opaque strings in the response types.

use std::fmt;

macro_rules! reasons {
    ($( $(#[doc = $doc:literal])* $variant:ident = $wire:literal, )*) => {
        /// A verify or settle failure reason, as it appears on the wire.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Reason {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl Reason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant),*];

            /// The exact wire string.
            pub const fn as_str(self) -> &'static str {
                match self { $(Reason::$variant => $wire,)* }
            }

            fn from_sdk_string(s: &str) -> Option<Reason> {
                match s { $($wire => Some(Reason::$variant),)* _ => None }
            }
        }
    };
}

reasons! {
    // ---- generic (specification section 9) ----
    /// The payer's balance is below the amount (generic form; EIP-3009 verification reports
    /// `invalid_exact_evm_insufficient_balance`).
    InsufficientFunds = "insufficient_funds",
    /// The network is not supported, malformed, or differs between payload and requirements.
    InvalidNetwork = "invalid_network",
    /// The payment payload is malformed (fields missing, wrong types, unparseable values).
    InvalidPayload = "invalid_payload",
    /// The payment requirements are malformed or inconsistent.
    InvalidPaymentRequirements = "invalid_payment_requirements",
    /// The scheme is malformed or differs between payload and requirements.
    InvalidScheme = "invalid_scheme",
    /// The scheme is well-formed but this facilitator does not implement it on this network.
    UnsupportedScheme = "unsupported_scheme",
    /// `x402Version` is missing or not one the facilitator speaks.
    InvalidX402Version = "invalid_x402_version",
    /// A settlement transaction ended in a state the facilitator cannot account for (also
    /// the SDK's fallback when a broadcast returns no valid transaction hash).
    InvalidTransactionState = "invalid_transaction_state",
    /// Verification failed unexpectedly (an RPC error, a bug); `invalidMessage` says more.
    UnexpectedVerifyError = "unexpected_verify_error",
    /// Settlement failed unexpectedly before a transaction was sent; `errorMessage` says more.
    UnexpectedSettleError = "unexpected_settle_error",

    // ---- exact scheme on EVM (SDK strings) ----
    /// `scheme` is not `exact` in the payload's `accepted` or in the requirements.
    InvalidExactEvmScheme = "invalid_exact_evm_scheme",
    /// The payload's `accepted.network` differs from the requirements' network.
    InvalidExactEvmNetworkMismatch = "invalid_exact_evm_network_mismatch",
    /// The requirements' `extra` lacks the token's EIP-712 `name` or `version`.
    InvalidExactEvmMissingEip712Domain = "invalid_exact_evm_missing_eip712_domain",
    /// `authorization.to` is not the requirements' `payTo` (spec alias:
    /// `invalid_exact_evm_payload_recipient_mismatch`).
    InvalidExactEvmRecipientMismatch = "invalid_exact_evm_recipient_mismatch",
    /// The signature does not recover `from` (EOA), or the contract at `from` rejects it
    /// (ERC-1271) (spec alias: `invalid_exact_evm_payload_signature`).
    InvalidExactEvmSignature = "invalid_exact_evm_signature",
    /// The signature bytes could not be parsed or classified (EOA, ERC-1271, ERC-6492).
    InvalidExactEvmFailedToParseSignature = "invalid_exact_evm_failed_to_parse_signature",
    /// `validBefore` is earlier than now plus the 6-second block buffer.
    InvalidExactEvmPayloadAuthorizationValidBefore =
        "invalid_exact_evm_payload_authorization_valid_before",
    /// `validAfter` is later than now.
    InvalidExactEvmPayloadAuthorizationValidAfter =
        "invalid_exact_evm_payload_authorization_valid_after",
    /// v2: `authorization.value` differs from the requirements' `amount` (equality is exact).
    InvalidExactEvmPayloadAuthorizationValueMismatch =
        "invalid_exact_evm_payload_authorization_value_mismatch",
    /// v1: `authorization.value` differs from `maxAmountRequired` (the v1 verifier's string).
    InvalidExactEvmAuthorizationValue = "invalid_exact_evm_authorization_value",
    /// The EIP-3009 nonce was already used (`authorizationState(from, nonce)` is true).
    InvalidExactEvmNonceAlreadyUsed = "invalid_exact_evm_nonce_already_used",
    /// The payer's token balance is below the amount.
    InvalidExactEvmInsufficientBalance = "invalid_exact_evm_insufficient_balance",
    /// Simulating `transferWithAuthorization` failed for a reason the diagnosis did not find;
    /// the message carries the revert text.
    InvalidExactEvmTransactionSimulationFailed =
        "invalid_exact_evm_transaction_simulation_failed",
    /// The settlement transaction was mined and reverted.
    InvalidExactEvmTransactionFailed = "invalid_exact_evm_transaction_failed",
    /// The receipt lacks the expected `Transfer(from, to, value)` log from the asset.
    InvalidExactEvmTransferEventMismatch = "invalid_exact_evm_transfer_event_mismatch",
    /// The token's on-chain `name()` differs from `extra.name`.
    InvalidExactEvmTokenNameMismatch = "invalid_exact_evm_token_name_mismatch",
    /// The token's on-chain `version()` differs from `extra.version`.
    InvalidExactEvmTokenVersionMismatch = "invalid_exact_evm_token_version_mismatch",
    /// The asset does not implement EIP-3009 (`authorizationState` reverted).
    InvalidExactEvmEip3009NotSupported = "invalid_exact_evm_eip3009_not_supported",
    /// The payer is an undeployed smart wallet and the signature carries no usable ERC-6492
    /// deployment (spec and Go SDK; TS SDK 2.27 reports these through simulation instead).
    InvalidExactEvmPayloadUndeployedSmartWallet =
        "invalid_exact_evm_payload_undeployed_smart_wallet",
    /// The `asset` address has no contract code.
    AssetNotDeployedContract = "asset_not_deployed_contract",
    /// An ERC-6492 signature's factory is not on the allowlist (empty by default: deny all).
    Eip6492FactoryNotAllowed = "eip6492_factory_not_allowed",
    /// Deploying the payer's smart wallet (ERC-6492 factory call) failed during settlement.
    SmartWalletDeploymentFailed = "smart_wallet_deployment_failed",
    /// The payload has a shape the scheme does not know (neither EIP-3009 nor Permit2).
    UnsupportedPayloadType = "unsupported_payload_type",
    /// Not terminal: the transaction was broadcast but its receipt was not seen in time;
    /// `transaction` holds its hash and a retry of the same payload resolves it.
    SettlementPending = "settlement_pending",

    // ---- auth-capture scheme on EVM (the specification's `invalid_auth_capture_evm_*`) ----
    /// The payload is neither the EIP-3009 nor the Permit2 shape, lacks `salt`, has
    /// `saltNonce` where it must not (or lacks it where it must), a partial charge group, or
    /// the fee field of the other escrow version.
    InvalidAuthCaptureEvmPayloadFormat = "invalid_auth_capture_evm_payload_format",
    /// A lifecycle payload's `type` is missing or not `capture`, `void` or `refund` (or names
    /// `capture`/`void` on the `authorization` flow).
    InvalidAuthCaptureEvmPayloadType = "invalid_auth_capture_evm_payload_type",
    /// `voidAuthorizerSignature` on a payload other than `capture`, or not the authorizer's.
    InvalidAuthCaptureEvmVoidAuthorizerSignature =
        "invalid_auth_capture_evm_void_authorizer_signature",
    /// `voidAuthorizerSignature` with a capture of everything capturable: nothing to void.
    InvalidAuthCaptureEvmVoidRemainderFullCapture =
        "invalid_auth_capture_evm_void_remainder_full_capture",
    /// `paymentFlow` is neither `escrow` nor `authorization`, or `extra` has `autoCapture: true`.
    InvalidAuthCaptureEvmUnsupportedPaymentFlow =
        "invalid_auth_capture_evm_unsupported_payment_flow",
    /// `scheme` is not `auth-capture`.
    InvalidAuthCaptureEvmScheme = "invalid_auth_capture_evm_scheme",
    /// The payload's network differs from the requirements'.
    InvalidAuthCaptureEvmNetworkMismatch = "invalid_auth_capture_evm_network_mismatch",
    /// `extra` lacks a required field, names an unknown escrow, or breaks the fee rules.
    InvalidAuthCaptureEvmExtra = "invalid_auth_capture_evm_extra",
    /// No non-zero `receiverAuthorizer` for a `charge` or a relayed lifecycle operation.
    InvalidAuthCaptureEvmMissingReceiverAuthorizer =
        "invalid_auth_capture_evm_missing_receiver_authorizer",
    /// `operatorType` is unknown, or a type this facilitator does not implement.
    InvalidAuthCaptureEvmUnsupportedOperatorType =
        "invalid_auth_capture_evm_unsupported_operator_type",
    /// `policy` does not fit the operator type.
    InvalidAuthCaptureEvmPolicy = "invalid_auth_capture_evm_policy",
    /// A lifecycle payload for an operator whose lifecycle the facilitator does not relay.
    InvalidAuthCaptureEvmLifecycleNotRelayed = "invalid_auth_capture_evm_lifecycle_not_relayed",
    /// The operator is not admitted (a `delegated` operator must be the facilitator's own).
    InvalidAuthCaptureEvmOperatorNotAdmitted = "invalid_auth_capture_evm_operator_not_admitted",
    /// `paymentInfo.operator` is not `extra.captureAuthorizer`.
    InvalidAuthCaptureEvmOperatorMismatch = "invalid_auth_capture_evm_operator_mismatch",
    /// A bound salt is not the commitment to the authorizer, the policy and the salt nonce.
    InvalidAuthCaptureEvmSaltBindingMismatch = "invalid_auth_capture_evm_salt_binding_mismatch",
    /// The authorizer signature does not recover to `extra.receiverAuthorizer`.
    InvalidAuthCaptureEvmAuthorizerSignature = "invalid_auth_capture_evm_authorizer_signature",
    /// A lifecycle request without an authorizer signature, for an authorizer delegated to the
    /// facilitator, that the facilitator could not authenticate out of band.
    InvalidAuthCaptureEvmUnauthenticatedAuthorizerRequest =
        "invalid_auth_capture_evm_unauthenticated_authorizer_request",
    /// The escrow's balances differ from the ones the authorizer signed for.
    InvalidAuthCaptureEvmUnexpectedPaymentState =
        "invalid_auth_capture_evm_unexpected_payment_state",
    /// No refund liquidity exists for the operator type.
    InvalidAuthCaptureEvmRefundFundingUnavailable =
        "invalid_auth_capture_evm_refund_funding_unavailable",
    /// `assetTransferMethod` is neither `eip3009` nor `permit2`.
    InvalidAuthCaptureEvmUnsupportedAssetTransferMethod =
        "invalid_auth_capture_evm_unsupported_asset_transfer_method",
    /// The payload's shape is not the one `assetTransferMethod` names.
    InvalidAuthCaptureEvmPayloadMethodMismatch =
        "invalid_auth_capture_evm_payload_method_mismatch",
    /// The capture deadline is past (or too close), or a capture came after it.
    InvalidAuthCaptureEvmCaptureDeadlineExpired =
        "invalid_auth_capture_evm_capture_deadline_expired",
    /// A refund came at or after the refund deadline.
    InvalidAuthCaptureEvmRefundDeadlineExpired =
        "invalid_auth_capture_evm_refund_deadline_expired",
    /// The deadlines are out of order.
    InvalidAuthCaptureEvmDeadlineOrdering = "invalid_auth_capture_evm_deadline_ordering",
    /// The token authorization expires too soon.
    InvalidAuthCaptureEvmAuthorizationExpired = "invalid_auth_capture_evm_authorization_expired",
    /// The token authorization is not valid yet.
    InvalidAuthCaptureEvmAuthorizationNotYetValid =
        "invalid_auth_capture_evm_authorization_not_yet_valid",
    /// The payer's signature does not verify.
    InvalidAuthCaptureEvmSignature = "invalid_auth_capture_evm_signature",
    /// A counterfactual payer's ERC-6492 factory is not allowed.
    InvalidAuthCaptureEvmErc6492FactoryNotAllowed =
        "invalid_auth_capture_evm_erc6492_factory_not_allowed",
    /// The authorized amount differs from the requirements' (or a charge exceeds it).
    InvalidAuthCaptureEvmAmountMismatch = "invalid_auth_capture_evm_amount_mismatch",
    /// The authorization names another collector than the deployment's.
    InvalidAuthCaptureEvmTokenCollectorMismatch =
        "invalid_auth_capture_evm_token_collector_mismatch",
    /// A Permit2 authorization names another token than the requirements' asset.
    InvalidAuthCaptureEvmTokenMismatch = "invalid_auth_capture_evm_token_mismatch",
    /// The authorization's nonce is not the payment's signature nonce.
    InvalidAuthCaptureEvmNonceMismatch = "invalid_auth_capture_evm_nonce_mismatch",
    /// The payer's balance is below the amount.
    InvalidAuthCaptureEvmInsufficientBalance = "invalid_auth_capture_evm_insufficient_balance",
    /// Simulating the escrow call failed for a reason no typed revert explains.
    InvalidAuthCaptureEvmSimulationFailed = "invalid_auth_capture_evm_simulation_failed",
    // Typed simulation reverts of the escrow, as the specification maps them.
    /// The payment was already authorized or charged (`PaymentAlreadyCollected`).
    InvalidAuthCaptureEvmPaymentAlreadyCollected =
        "invalid_auth_capture_evm_payment_already_collected",
    /// The collector could not pull the tokens (`TokenCollectionFailed`).
    InvalidAuthCaptureEvmTokenCollectionFailed = "invalid_auth_capture_evm_token_collection_failed",
    /// The collector may not serve this operation (`InvalidCollectorForOperation`).
    InvalidAuthCaptureEvmCollector = "invalid_auth_capture_evm_collector",
    /// An amount exceeds the escrow's `uint120` (`AmountOverflow`).
    InvalidAuthCaptureEvmAmountOverflow = "invalid_auth_capture_evm_amount_overflow",
    /// A fee in basis points above 10,000 (`FeeBpsOverflow`).
    InvalidAuthCaptureEvmFeeBps = "invalid_auth_capture_evm_fee_bps",
    /// `minFeeBps` above `maxFeeBps` (`InvalidFeeBpsRange`).
    InvalidAuthCaptureEvmFeeBpsRange = "invalid_auth_capture_evm_fee_bps_range",
    /// The submitted fee is outside the signed bounds (`FeeBpsOutOfRange`,
    /// `FeeAmountOutOfRange`).
    InvalidAuthCaptureEvmFeeBpsOutOfRange = "invalid_auth_capture_evm_fee_bps_out_of_range",
    /// A fee with no one to receive it (`ZeroFeeReceiver`).
    InvalidAuthCaptureEvmZeroFeeReceiver = "invalid_auth_capture_evm_zero_fee_receiver",
    /// Another fee receiver than the payment names (`InvalidFeeReceiver`).
    InvalidAuthCaptureEvmFeeReceiver = "invalid_auth_capture_evm_fee_receiver",
    /// A capture above what is held (`InsufficientAuthorization`).
    InvalidAuthCaptureEvmInsufficientAuthorization =
        "invalid_auth_capture_evm_insufficient_authorization",
    /// Nothing is held (`ZeroAuthorization`).
    InvalidAuthCaptureEvmZeroAuthorization = "invalid_auth_capture_evm_zero_authorization",
    /// A refund above what was captured (`RefundExceedsCapture`).
    InvalidAuthCaptureEvmRefundExceedsCapture = "invalid_auth_capture_evm_refund_exceeds_capture",
    /// Settling: re-verification failed.
    InvalidAuthCaptureEvmVerificationFailed = "invalid_auth_capture_evm_verification_failed",
    /// Settling: the transaction was mined and reverted.
    InvalidAuthCaptureEvmTransactionReverted = "invalid_auth_capture_evm_transaction_reverted",
}

/// Specification spellings of conditions the SDK names differently.
const SPEC_ALIASES: &[(&str, Reason)] = &[
    (
        "invalid_exact_evm_payload_signature",
        Reason::InvalidExactEvmSignature,
    ),
    (
        "invalid_exact_evm_payload_recipient_mismatch",
        Reason::InvalidExactEvmRecipientMismatch,
    ),
    (
        "invalid_exact_evm_payload_authorization_value",
        Reason::InvalidExactEvmPayloadAuthorizationValueMismatch,
    ),
];

impl Reason {
    /// Reads a reason another facilitator wrote: the SDK's strings and the spec's aliases.
    /// Unknown strings are `None`; keep them as opaque text.
    pub fn from_wire(s: &str) -> Option<Reason> {
        Reason::from_sdk_string(s).or_else(|| {
            SPEC_ALIASES
                .iter()
                .find(|(alias, _)| *alias == s)
                .map(|(_, r)| *r)
        })
    }

    /// Whether the outcome may still change: only [`Reason::SettlementPending`].
    pub const fn is_pending(self) -> bool {
        matches!(self, Reason::SettlementPending)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn wire_strings_are_unique_and_read_back() {
        let mut seen = HashSet::new();
        for r in Reason::ALL {
            assert!(seen.insert(r.as_str()), "duplicate {r}");
            assert_eq!(Reason::from_wire(r.as_str()), Some(*r));
            assert!(
                r.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            );
        }
        for (alias, r) in SPEC_ALIASES {
            assert!(!seen.contains(alias));
            assert_eq!(Reason::from_wire(alias), Some(*r));
        }
        assert_eq!(Reason::from_wire("something_else"), None);
        assert!(Reason::SettlementPending.is_pending());
    }
}
