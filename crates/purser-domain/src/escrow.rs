//! Escrowed payments (x402 `auth-capture`) as a merchant, and Purser's own jobs, act on them:
//! capture all or part of what is held, void the rest, refund what was captured. Each command
//! becomes one operation on the escrow, settled exactly once like any payment (see
//! [`crate::settlement`]).

use async_trait::async_trait;

use crate::auth::TenantScope;
use crate::error::{Error, ErrorCode, Result};
use crate::money::Amount;
use crate::settlement::Settlement;

/// What is asked of a held payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscrowCommand {
    /// Capture `amount` (everything still held when `None`) for the merchant.
    Capture { amount: Option<Amount> },
    /// Return everything still held to the payer.
    Void,
    /// Return `amount` of what was captured (all of it when `None`) to the payer.
    Refund { amount: Option<Amount> },
}

/// What the escrow holds of a payment, as the chain says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscrowBalances {
    /// Held, and capturable until the authorization expires.
    pub capturable: Amount,
    /// Captured, and refundable until the refund window closes.
    pub refundable: Amount,
}

/// Carries out escrow commands for a tenant.
#[async_trait]
pub trait EscrowDesk: Send + Sync {
    /// Runs `command` on the scope's escrowed payment `payment` (`getHash(paymentInfo)`),
    /// answering the operation's settlement (`confirmed`, or `pending` while its receipt is
    /// awaited). Refusals carry their own codes: `not_found` (no such payment of the scope's),
    /// `escrow_exceeds_held`, `escrow_capture_expired`, `escrow_exceeds_captured`,
    /// `escrow_refund_expired`, `escrow_operation_in_flight`, `escrow_operation_refused`.
    async fn command(
        &self,
        scope: TenantScope,
        payment: &str,
        command: EscrowCommand,
    ) -> Result<Settlement>;

    /// What the escrow holds of the scope's payment now.
    async fn balances(&self, scope: TenantScope, payment: &str) -> Result<EscrowBalances>;
}

/// The error for an escrow operation refused with the x402 `reason`.
pub fn refused(reason: &str, message: &str) -> Error {
    let code = match reason {
        "invalid_auth_capture_evm_insufficient_authorization"
        | "invalid_auth_capture_evm_zero_authorization" => ErrorCode::EscrowExceedsHeld,
        "invalid_auth_capture_evm_capture_deadline_expired" => ErrorCode::EscrowCaptureExpired,
        "invalid_auth_capture_evm_refund_exceeds_capture" => ErrorCode::EscrowExceedsCaptured,
        "invalid_auth_capture_evm_refund_deadline_expired" => ErrorCode::EscrowRefundExpired,
        _ => ErrorCode::EscrowOperationRefused,
    };
    Error::new(code, format!("{message} ({reason})"))
}
