//! The escrow on a rail: what it holds of a payment, and a call simulated from the operator
//! before anything is sent, its refusal read as the specification's reason.

use alloy::eips::BlockId;
use alloy::primitives::{Address, B256, Bytes};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::{SolCall, SolInterface};
use purser_x402::Reason;

use super::AuthCaptureEscrow::{self, AuthCaptureEscrowErrors as Refused};
use super::call::EscrowCall;
use super::verify::Refusal;
use crate::rails::Rail;
use crate::rpc::RpcFailure;

/// What the escrow holds of one payment (`paymentState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentState {
    /// Authorized or charged once already.
    pub collected: bool,
    /// Held, and capturable until the authorization expires.
    pub capturable: u128,
    /// Captured, and refundable until the refund expires.
    pub refundable: u128,
}

/// The reason the specification gives each of the escrow's errors.
pub fn reason_of(error: &Refused) -> Reason {
    match error {
        Refused::AfterPreApprovalExpiry(_) => Reason::InvalidAuthCaptureEvmAuthorizationExpired,
        Refused::InvalidExpiries(_) => Reason::InvalidAuthCaptureEvmDeadlineOrdering,
        Refused::ExceedsMaxAmount(_) | Refused::ZeroAmount(_) => {
            Reason::InvalidAuthCaptureEvmAmountMismatch
        }
        Refused::AmountOverflow(_) => Reason::InvalidAuthCaptureEvmAmountOverflow,
        Refused::PaymentAlreadyCollected(_) => Reason::InvalidAuthCaptureEvmPaymentAlreadyCollected,
        Refused::TokenCollectionFailed(_) => Reason::InvalidAuthCaptureEvmTokenCollectionFailed,
        Refused::InvalidCollectorForOperation(_) => Reason::InvalidAuthCaptureEvmCollector,
        Refused::InvalidSender(_) => Reason::InvalidAuthCaptureEvmOperatorMismatch,
        Refused::FeeBpsOverflow(_) => Reason::InvalidAuthCaptureEvmFeeBps,
        Refused::InvalidFeeBpsRange(_) => Reason::InvalidAuthCaptureEvmFeeBpsRange,
        Refused::FeeAmountOutOfRange(_) => Reason::InvalidAuthCaptureEvmFeeBpsOutOfRange,
        Refused::ZeroFeeReceiver(_) => Reason::InvalidAuthCaptureEvmZeroFeeReceiver,
        Refused::InvalidFeeReceiver(_) => Reason::InvalidAuthCaptureEvmFeeReceiver,
        Refused::AfterAuthorizationExpiry(_) => Reason::InvalidAuthCaptureEvmCaptureDeadlineExpired,
        Refused::InsufficientAuthorization(_) => {
            Reason::InvalidAuthCaptureEvmInsufficientAuthorization
        }
        Refused::ZeroAuthorization(_) => Reason::InvalidAuthCaptureEvmZeroAuthorization,
        Refused::AfterRefundExpiry(_) => Reason::InvalidAuthCaptureEvmRefundDeadlineExpired,
        Refused::RefundExceedsCapture(_) => Reason::InvalidAuthCaptureEvmRefundExceedsCapture,
        Refused::Reentrancy(_) | Refused::BeforeAuthorizationExpiry(_) => {
            Reason::InvalidAuthCaptureEvmSimulationFailed
        }
    }
}

/// A node's refusal of a simulated escrow call: the escrow's typed error when its revert data
/// names one, else the opaque fallback with the node's message.
fn refusal(message: &str, data: Option<&str>) -> Refusal {
    let bytes = data
        .map(|d| d.trim().trim_matches('"'))
        .and_then(|hex| alloy::hex::decode(hex).ok());
    match bytes.and_then(|b| Refused::abi_decode(&b).ok()) {
        Some(error) => Refusal {
            reason: reason_of(&error),
            message: format!("the escrow refuses: {error:?}"),
        },
        None => Refusal {
            reason: Reason::InvalidAuthCaptureEvmSimulationFailed,
            message: message.to_owned(),
        },
    }
}

impl Rail {
    async fn escrow_call(
        &self,
        from: Option<Address>,
        escrow: Address,
        input: Vec<u8>,
    ) -> Result<Bytes, RpcFailure> {
        let mut request = TransactionRequest::default()
            .to(escrow)
            .input(Bytes::from(input).into());
        if let Some(from) = from {
            request = request.from(from);
        }
        self.rpc
            .request("eth_call", |p| {
                let request = request.clone();
                async move { p.call(request).block(BlockId::latest()).await }
            })
            .await
    }

    /// `paymentState(payment)` of `escrow`.
    pub async fn escrow_payment_state(
        &self,
        escrow: Address,
        payment: B256,
    ) -> Result<PaymentState, RpcFailure> {
        let input = AuthCaptureEscrow::paymentStateCall {
            paymentInfoHash: payment,
        }
        .abi_encode();
        let answer = self.escrow_call(None, escrow, input).await?;
        let state =
            AuthCaptureEscrow::paymentStateCall::abi_decode_returns(&answer).map_err(|e| {
                RpcFailure::Refused {
                    what: "eth_call",
                    code: 0,
                    message: format!("paymentState answered something else: {e}"),
                    data: None,
                }
            })?;
        Ok(PaymentState {
            collected: state.hasCollectedPayment,
            capturable: state.capturableAmount.to(),
            refundable: state.refundableAmount.to(),
        })
    }

    /// Simulates `call` from its operator, exactly as it will be sent. `Ok(Err(_))`: the
    /// escrow refuses, and why.
    pub async fn simulate_escrow(
        &self,
        call: &EscrowCall,
    ) -> Result<Result<(), Refusal>, RpcFailure> {
        match self
            .escrow_call(Some(call.operator()), call.escrow, call.calldata().to_vec())
            .await
        {
            Ok(_) => Ok(Ok(())),
            Err(RpcFailure::Refused { message, data, .. }) => {
                Ok(Err(refusal(&message, data.as_deref())))
            }
            Err(unreachable) => Err(unreachable),
        }
    }
}

#[cfg(test)]
mod tests {
    use alloy::sol_types::SolError;

    use super::*;

    #[test]
    fn typed_reverts_read_as_the_specifications_reasons() {
        let already = AuthCaptureEscrow::PaymentAlreadyCollected {
            paymentInfoHash: B256::repeat_byte(7),
        }
        .abi_encode();
        let data = format!("\"0x{}\"", alloy::hex::encode(&already));
        let read = refusal("execution reverted", Some(&data));
        assert_eq!(
            read.reason,
            Reason::InvalidAuthCaptureEvmPaymentAlreadyCollected
        );
        // Anything else is the opaque fallback, with the node's words.
        let other = refusal("execution reverted: boom", Some("\"0xdeadbeef\""));
        assert_eq!(other.reason, Reason::InvalidAuthCaptureEvmSimulationFailed);
        assert_eq!(other.message, "execution reverted: boom");
        assert_eq!(
            refusal("no data", None).reason,
            Reason::InvalidAuthCaptureEvmSimulationFailed
        );
    }
}
