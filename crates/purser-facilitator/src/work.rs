//! What a settlement's transaction does, per scheme: an `exact` transfer, or one call to the
//! `auth-capture` escrow (collecting a payment into it, or an operation on a payment it holds).
//! The settlement machinery (claim, verify, record, broadcast, receipts, reconciliation) is the
//! same for both; it asks the work what to check, what to send, from whom, and what the
//! receipt must show.

use std::sync::Arc;

use purser_chain::auth_capture::call::{EscrowCall, EscrowOperation};
use purser_chain::auth_capture::lifecycle::Lifecycle;
use purser_chain::auth_capture::verify::Refusal;
use purser_chain::eip3009::{ExactRequirement, ExactTransfer, Expected, Verdict, hex_of};
use purser_chain::primitives::{Address, B256, Bytes, U256, keccak256};
use purser_chain::rails::{Asset, Rail, Signer};
use purser_chain::rpc::RpcFailure;
use purser_domain::money::Amount;
use purser_domain::settlement::{EscrowLink, SettlementKind};
use purser_x402::Reason;
use purser_x402::auth_capture::LifecycleOperation;

/// A settlement's transaction.
#[derive(Debug, Clone)]
pub(crate) enum Work {
    Exact(ExactTransfer),
    Escrow(Box<EscrowWork>),
}

/// A call to the escrow.
#[derive(Debug, Clone)]
pub(crate) struct EscrowWork {
    pub call: EscrowCall,
    /// `None` for the `authorize` or `charge` that collects the payment.
    pub lifecycle: Option<Lifecycle>,
    /// The ERC-3009 nonce the payer signed (`authorize`, `charge`).
    pub collect_nonce: Option<B256>,
    /// The unix seconds the payer's authorization is valid from and until (a collect).
    pub window: (u64, u64),
}

fn invalid(refusal: Refusal) -> Verdict {
    Verdict::Invalid {
        reason: refusal.reason,
        message: refusal.message,
    }
}

fn amount(value: U256) -> Amount {
    Amount::from_atomic(value.try_into().unwrap_or(u128::MAX))
}

impl EscrowWork {
    pub fn kind(&self) -> SettlementKind {
        match self.call.operation {
            EscrowOperation::Authorize { .. } => SettlementKind::EscrowAuthorize,
            EscrowOperation::Charge { .. } => SettlementKind::EscrowCharge,
            EscrowOperation::Capture { .. } => SettlementKind::EscrowCapture,
            EscrowOperation::Void => SettlementKind::EscrowVoid,
            EscrowOperation::Refund { .. } => SettlementKind::EscrowRefund,
        }
    }

    /// What makes the operation unique: the payer's nonce for a collect; for an operation
    /// on a held payment, the payment with the balances it expects, which the escrow's state
    /// never shows twice, so the same signed operation is one settlement however often it
    /// comes, and two operations signed against the same balances are one too many.
    pub fn nonce(&self) -> B256 {
        if let Some(nonce) = self.collect_nonce {
            return nonce;
        }
        let (capturable, refundable) = self
            .lifecycle
            .as_ref()
            .and_then(|l| l.expected)
            .unwrap_or_default();
        let mut preimage = Vec::with_capacity(128);
        preimage.extend_from_slice(self.kind().as_str().as_bytes());
        preimage.extend_from_slice(self.call.payment_hash.as_slice());
        preimage.extend_from_slice(&capturable.to_be_bytes::<32>());
        preimage.extend_from_slice(&refundable.to_be_bytes::<32>());
        keccak256(preimage)
    }
}

impl Work {
    pub fn payer(&self) -> String {
        match self {
            Work::Exact(transfer) => transfer.payer(),
            Work::Escrow(escrow) => escrow.call.info.payer.to_checksum(None),
        }
    }

    pub fn payer_address(&self) -> Address {
        match self {
            Work::Exact(transfer) => transfer.from,
            Work::Escrow(escrow) => escrow.call.info.payer,
        }
    }

    /// The nonce of the settlement's key.
    pub fn nonce(&self) -> B256 {
        match self {
            Work::Exact(transfer) => transfer.nonce,
            Work::Escrow(escrow) => escrow.nonce(),
        }
    }

    /// The unix seconds the settlement may be sent from and until.
    pub fn window(&self) -> (u64, u64) {
        match self {
            Work::Exact(transfer) => (transfer.valid_after, transfer.valid_before),
            Work::Escrow(escrow) => escrow.window,
        }
    }

    pub fn kind(&self) -> SettlementKind {
        match self {
            Work::Exact(_) => SettlementKind::Exact,
            Work::Escrow(escrow) => escrow.kind(),
        }
    }

    pub fn escrow(&self) -> Option<&EscrowWork> {
        match self {
            Work::Exact(_) => None,
            Work::Escrow(escrow) => Some(escrow),
        }
    }

    /// The escrowed payment and the fee paid out of the operation.
    pub fn escrow_link(&self) -> Option<EscrowLink> {
        self.escrow().map(|escrow| EscrowLink {
            payment: hex_of(escrow.call.payment_hash.as_slice()),
            fee: amount(escrow.call.fee()),
        })
    }

    /// What the settlement moves, where the payload says (all but a void, whose amount is
    /// what the escrow holds).
    pub fn amount(&self, required: Amount) -> Option<Amount> {
        match self {
            Work::Exact(_) => Some(required),
            Work::Escrow(escrow) => escrow.call.amount().map(amount),
        }
    }

    /// What the receipt must log.
    pub fn expected<'a>(&'a self, asset: &Asset) -> Expected<'a> {
        match self {
            Work::Exact(transfer) => Expected::Transfer {
                transfer,
                asset: asset.address,
            },
            Work::Escrow(escrow) => Expected::Escrow(&escrow.call),
        }
    }

    /// Who sends it: any signer for a transfer; the payment's operator, the only sender the
    /// escrow accepts, for an escrow call.
    pub fn sender(&self, rail: &Rail) -> Option<Arc<Signer>> {
        match self {
            Work::Exact(_) => rail.pick_signer(),
            Work::Escrow(escrow) => rail.signer(&format!("{:#x}", escrow.call.operator())),
        }
    }

    /// The contract called, and the calldata.
    pub fn call(&self, asset: &Asset) -> (Address, Bytes) {
        match self {
            Work::Exact(transfer) => (asset.address, transfer.settlement_calldata()),
            Work::Escrow(escrow) => (escrow.call.escrow, escrow.call.calldata()),
        }
    }

    /// Everything the chain must agree to before the transaction is sent, at unix time `now`:
    /// the transfer's checks; or the escrow's state for an operation on a held payment
    /// (a void's `recorded` amount must still be what is held), then a simulation from the
    /// operator.
    pub async fn check_on_chain(
        &self,
        rail: &Rail,
        requirement: Option<&ExactRequirement<'_>>,
        recorded: Option<Amount>,
        now: u64,
    ) -> Result<Verdict, RpcFailure> {
        let escrow = match (self, requirement) {
            (Work::Exact(transfer), Some(requirement)) => {
                return rail.verify_exact(transfer, requirement, now).await;
            }
            (Work::Exact(_), None) => {
                return Ok(Verdict::Invalid {
                    reason: Reason::InvalidPaymentRequirements,
                    message: "the requirements name no payable transfer".into(),
                });
            }
            (Work::Escrow(escrow), _) => escrow,
        };
        if let Some(lifecycle) = &escrow.lifecycle {
            let state = rail
                .escrow_payment_state(escrow.call.escrow, escrow.call.payment_hash)
                .await?;
            if let Err(refusal) = lifecycle.check_state(state, now) {
                return Ok(invalid(refusal));
            }
            if lifecycle.operation == LifecycleOperation::Void
                && let Some(recorded) = recorded
                && recorded.atomic() != state.capturable
            {
                return Ok(Verdict::Invalid {
                    reason: Reason::InvalidAuthCaptureEvmUnexpectedPaymentState,
                    message: format!(
                        "the escrow now holds {} where {} was to be voided; void again",
                        state.capturable,
                        recorded.atomic()
                    ),
                });
            }
        }
        Ok(match rail.simulate_escrow(&escrow.call).await? {
            Ok(()) => Verdict::Valid,
            Err(refusal) => invalid(refusal),
        })
    }

    /// Whether something else already did what this settlement was to do, when none of its
    /// own transactions can still be mined: the payer's authorization was used, or the payment
    /// no longer holds the balances the operation expected.
    pub async fn done_elsewhere(&self, rail: &Rail, asset: &Asset) -> Result<bool, RpcFailure> {
        let escrow = match self {
            Work::Exact(transfer) => {
                return rail
                    .authorization_used(asset.address, transfer.from, transfer.nonce)
                    .await;
            }
            Work::Escrow(escrow) => escrow,
        };
        if let Some(nonce) = escrow.collect_nonce {
            return rail
                .authorization_used(asset.address, escrow.call.info.payer, nonce)
                .await;
        }
        let state = rail
            .escrow_payment_state(escrow.call.escrow, escrow.call.payment_hash)
            .await?;
        let lifecycle = escrow.lifecycle.as_ref();
        Ok(match lifecycle.and_then(|l| l.expected) {
            Some((capturable, refundable)) => {
                (U256::from(state.capturable), U256::from(state.refundable))
                    != (capturable, refundable)
            }
            // A void: nothing is held any more.
            None => state.capturable == 0,
        })
    }
}
