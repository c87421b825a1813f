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

crate::macros::string_enum!(
    /// When a resource priced with escrow captures what it holds.
    CapturePolicy, "capture policy" {
        /// Capture the whole hold as soon as it is authorized, before the request is served.
        Immediate = "immediate",
        /// Capture when the upstream answers below 400; void when it fails. The default.
        OnSuccess = "on_success",
        /// Capture `capture_delay_seconds` after the hold (a window for the payer to dispute).
        AfterDelay = "after_delay",
        /// The merchant captures by hand (GraphQL); what is still held near the deadline is
        /// voided back to the payer.
        Manual = "manual",
    }
);

impl serde::Serialize for CapturePolicy {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for CapturePolicy {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse()
            .map_err(|e: Error| serde::de::Error::custom(e.message()))
    }
}

impl CapturePolicy {
    /// Whether the request itself finishes the hold (`captureMode: sync` in the offer).
    pub fn is_sync(self) -> bool {
        matches!(self, Self::Immediate | Self::OnSuccess)
    }
}

/// How a resource priced with escrow holds and finishes its payments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EscrowTerms {
    pub capture: CapturePolicy,
    /// `after_delay` only: how long after the hold it is captured.
    #[serde(default)]
    pub capture_delay_seconds: u32,
    /// How long a hold may be captured (the offer's `captureDeadline` is this far ahead).
    pub capture_window_seconds: u32,
    /// How long captured funds may be refunded or disputed (`refundDeadline`), counted from
    /// the capture deadline.
    pub refund_window_seconds: u32,
}

impl Default for EscrowTerms {
    fn default() -> Self {
        Self {
            capture: CapturePolicy::OnSuccess,
            capture_delay_seconds: 0,
            capture_window_seconds: 24 * 3600,
            refund_window_seconds: 7 * 24 * 3600,
        }
    }
}

/// The shortest capture window: long enough for a payment's own timeout and the schedule's
/// margin.
pub const MIN_CAPTURE_WINDOW_SECONDS: u32 = 15 * 60;
/// The longest window of either kind (the escrow keeps seconds in `uint48`; a year is plenty).
pub const MAX_WINDOW_SECONDS: u32 = 366 * 24 * 3600;

impl EscrowTerms {
    pub fn check(&self) -> Result<()> {
        let window = |value: u32, min: u32, what: &str| {
            if (min..=MAX_WINDOW_SECONDS).contains(&value) {
                Ok(())
            } else {
                Err(Error::invalid_input(format!(
                    "escrow.{what} must be {min} to {MAX_WINDOW_SECONDS} seconds"
                )))
            }
        };
        window(
            self.capture_window_seconds,
            MIN_CAPTURE_WINDOW_SECONDS,
            "captureWindowSeconds",
        )?;
        window(self.refund_window_seconds, 0, "refundWindowSeconds")?;
        match self.capture {
            CapturePolicy::AfterDelay
                if self.capture_delay_seconds >= self.capture_window_seconds =>
            {
                Err(Error::invalid_input(
                    "escrow.captureDelaySeconds must be shorter than the capture window",
                ))
            }
            CapturePolicy::AfterDelay => Ok(()),
            _ if self.capture_delay_seconds != 0 => Err(Error::invalid_input(
                "escrow.captureDelaySeconds goes with the after_delay policy only",
            )),
            _ => Ok(()),
        }
    }
}

crate::macros::string_enum!(
    /// What the schedule does with a hold when it comes due.
    EscrowAction, "escrow action" {
        Capture = "capture",
        Void = "void",
    }
);

/// A hold Purser finishes itself, by its resource's policy: `action` once `due_at` (unix
/// seconds of chain time) has come, which is never later than the capture deadline less the
/// configured margin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscrowSchedule {
    /// The escrow's key for the payment.
    pub payment: String,
    pub tenant_id: crate::id::TenantId,
    pub network: String,
    pub action: EscrowAction,
    pub due_at: i64,
    pub capture_deadline: i64,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// When it was finished, and how.
    pub resolved_at: Option<chrono::DateTime<chrono::Utc>>,
    pub outcome: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The schedule of holds Purser finishes itself.
#[async_trait]
pub trait EscrowScheduleRepository: Send + Sync {
    /// Schedules `action` on the payment at `due_at`; a payment scheduled before keeps its
    /// first schedule (answers false).
    async fn schedule_escrow(&self, schedule: EscrowSchedule) -> Result<bool>;

    /// Changes what an unresolved schedule does, and when.
    async fn reschedule_escrow(
        &self,
        payment: &str,
        action: EscrowAction,
        due_at: i64,
    ) -> Result<()>;

    /// Unresolved schedules on `network` due at `now` (chain seconds), earliest first.
    async fn due_escrow_schedules(
        &self,
        network: &str,
        now: i64,
        limit: u32,
    ) -> Result<Vec<EscrowSchedule>>;

    /// Marks the schedule finished, with what became of it.
    async fn resolve_escrow_schedule(&self, payment: &str, outcome: &str) -> Result<()>;

    /// Counts a failed attempt, with its error.
    async fn note_escrow_attempt(&self, payment: &str, error: &str) -> Result<()>;

    /// The payment's schedule, of any tenant (for the schedule and tests).
    async fn escrow_schedule(&self, payment: &str) -> Result<Option<EscrowSchedule>>;
}
