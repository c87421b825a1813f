//! One call a facilitator sends to the escrow from the operator (`PaymentInfo.operator`): the
//! operation, its calldata, and the event a successful one logs, by which its receipt is read.

use alloy::primitives::{Address, B256, Bytes, Log, U256};
use alloy::sol_types::{SolCall, SolEvent};

use super::AuthCaptureEscrow::{self, PaymentInfo};

/// What the call does to the payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EscrowOperation {
    /// Collects the whole `maxAmount` from the payer through `collector` and holds it.
    Authorize {
        collector: Address,
        /// The payer's signature, as the collector takes it (wrapper intact).
        collector_data: Bytes,
    },
    /// Collects `amount` from the payer through `collector` and pays it out at once: to the
    /// receiver, `fee_amount` of it to `fee_receiver` (the authorization flow: no hold).
    Charge {
        amount: U256,
        collector: Address,
        collector_data: Bytes,
        fee_amount: U256,
        fee_receiver: Address,
    },
    /// Sends `amount` of the hold to the receiver, `fee_amount` of it to `fee_receiver`.
    Capture {
        amount: U256,
        fee_amount: U256,
        fee_receiver: Address,
    },
    /// Returns everything still held to the payer.
    Void,
    /// Returns `amount` of what was captured to the payer, pulled from the operator by the
    /// operator refund collector.
    Refund { amount: U256, collector: Address },
}

impl EscrowOperation {
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Authorize { .. } => "authorize",
            Self::Charge { .. } => "charge",
            Self::Capture { .. } => "capture",
            Self::Void => "void",
            Self::Refund { .. } => "refund",
        }
    }
}

/// A call to `escrow` on the payment `info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscrowCall {
    pub escrow: Address,
    pub info: PaymentInfo,
    /// `getHash(info)` on this chain and escrow.
    pub payment_hash: B256,
    pub operation: EscrowOperation,
}

impl EscrowCall {
    /// The only sender the escrow accepts for it.
    pub fn operator(&self) -> Address {
        self.info.operator
    }

    pub fn calldata(&self) -> Bytes {
        let info = self.info.clone();
        Bytes::from(match &self.operation {
            EscrowOperation::Authorize {
                collector,
                collector_data,
            } => AuthCaptureEscrow::authorizeCall {
                paymentInfo: info,
                amount: U256::from(self.info.maxAmount),
                tokenCollector: *collector,
                collectorData: collector_data.clone(),
            }
            .abi_encode(),
            EscrowOperation::Charge {
                amount,
                collector,
                collector_data,
                fee_amount,
                fee_receiver,
            } => AuthCaptureEscrow::chargeCall {
                paymentInfo: info,
                amount: *amount,
                tokenCollector: *collector,
                collectorData: collector_data.clone(),
                feeAmount: *fee_amount,
                feeReceiver: *fee_receiver,
            }
            .abi_encode(),
            EscrowOperation::Capture {
                amount,
                fee_amount,
                fee_receiver,
            } => AuthCaptureEscrow::captureCall {
                paymentInfo: info,
                amount: *amount,
                feeAmount: *fee_amount,
                feeReceiver: *fee_receiver,
            }
            .abi_encode(),
            EscrowOperation::Void => AuthCaptureEscrow::voidCall { paymentInfo: info }.abi_encode(),
            EscrowOperation::Refund { amount, collector } => AuthCaptureEscrow::refundCall {
                paymentInfo: info,
                amount: *amount,
                tokenCollector: *collector,
                collectorData: Bytes::new(),
            }
            .abi_encode(),
        })
    }

    /// What the call moves, as far as it is known before it runs: the whole hold for an
    /// authorize, the named amount for a charge, capture or refund; `None` for a void
    /// (whatever is held when it runs).
    pub fn amount(&self) -> Option<U256> {
        match &self.operation {
            EscrowOperation::Authorize { .. } => Some(U256::from(self.info.maxAmount)),
            EscrowOperation::Charge { amount, .. }
            | EscrowOperation::Capture { amount, .. }
            | EscrowOperation::Refund { amount, .. } => Some(*amount),
            EscrowOperation::Void => None,
        }
    }

    /// The fee the call pays out of its amount: a charge's or a capture's, else zero.
    pub fn fee(&self) -> U256 {
        match &self.operation {
            EscrowOperation::Charge { fee_amount, .. }
            | EscrowOperation::Capture { fee_amount, .. } => *fee_amount,
            _ => U256::ZERO,
        }
    }

    /// The amount this operation's event in `logs` says it moved: `Some` only when the escrow
    /// logged this operation on this payment (with the expected amounts, where the call names
    /// them).
    pub fn logged_amount<'a>(&self, logs: impl IntoIterator<Item = &'a Log>) -> Option<U256> {
        logs.into_iter()
            .filter(|log| log.address == self.escrow)
            .find_map(|log| self.amount_in(log))
    }

    fn amount_in(&self, log: &Log) -> Option<U256> {
        let ours = |hash: B256| hash == self.payment_hash;
        match &self.operation {
            EscrowOperation::Authorize { collector, .. } => {
                AuthCaptureEscrow::PaymentAuthorized::decode_log_data(&log.data)
                    .ok()
                    .filter(|e| {
                        ours(e.paymentInfoHash)
                            && e.tokenCollector == *collector
                            && Some(e.amount) == self.amount()
                    })
                    .map(|e| e.amount)
            }
            EscrowOperation::Charge {
                amount,
                collector,
                fee_amount,
                fee_receiver,
                ..
            } => AuthCaptureEscrow::PaymentCharged::decode_log_data(&log.data)
                .ok()
                .filter(|e| {
                    ours(e.paymentInfoHash)
                        && e.amount == *amount
                        && e.tokenCollector == *collector
                        && e.feeAmount == *fee_amount
                        && e.feeReceiver == *fee_receiver
                })
                .map(|e| e.amount),
            EscrowOperation::Capture {
                amount,
                fee_amount,
                fee_receiver,
            } => AuthCaptureEscrow::PaymentCaptured::decode_log_data(&log.data)
                .ok()
                .filter(|e| {
                    ours(e.paymentInfoHash)
                        && e.amount == *amount
                        && e.feeAmount == *fee_amount
                        && e.feeReceiver == *fee_receiver
                })
                .map(|e| e.amount),
            EscrowOperation::Void => AuthCaptureEscrow::PaymentVoided::decode_log_data(&log.data)
                .ok()
                .filter(|e| ours(e.paymentInfoHash))
                .map(|e| e.amount),
            EscrowOperation::Refund { amount, collector } => {
                AuthCaptureEscrow::PaymentRefunded::decode_log_data(&log.data)
                    .ok()
                    .filter(|e| {
                        ours(e.paymentInfoHash)
                            && e.amount == *amount
                            && e.tokenCollector == *collector
                    })
                    .map(|e| e.amount)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::address;
    use alloy::sol_types::SolEvent;

    use super::*;

    fn call(operation: EscrowOperation) -> EscrowCall {
        EscrowCall {
            escrow: address!("0x1000000000000000000000000000000000000001"),
            info: PaymentInfo {
                maxAmount: alloy::primitives::Uint::from(1_000u64),
                ..Default::default()
            },
            payment_hash: B256::repeat_byte(9),
            operation,
        }
    }

    fn log_of(escrow: Address, event: &impl SolEvent) -> Log {
        Log {
            address: escrow,
            data: event.encode_log_data(),
        }
    }

    #[test]
    fn a_receipt_counts_only_this_operation_on_this_payment_with_its_amounts() {
        let capture = call(EscrowOperation::Capture {
            amount: U256::from(300),
            fee_amount: U256::from(3),
            fee_receiver: Address::repeat_byte(4),
        });
        let logged = |hash, amount, fee| AuthCaptureEscrow::PaymentCaptured {
            paymentInfoHash: hash,
            amount: U256::from(amount),
            feeAmount: U256::from(fee),
            feeReceiver: Address::repeat_byte(4),
        };
        let right = log_of(capture.escrow, &logged(capture.payment_hash, 300, 3));
        assert_eq!(capture.logged_amount([&right]), Some(U256::from(300)));
        // Another payment, another amount or fee, another contract: not this capture.
        for wrong in [
            log_of(capture.escrow, &logged(B256::repeat_byte(8), 300, 3)),
            log_of(capture.escrow, &logged(capture.payment_hash, 299, 3)),
            log_of(capture.escrow, &logged(capture.payment_hash, 300, 0)),
            log_of(
                Address::repeat_byte(2),
                &logged(capture.payment_hash, 300, 3),
            ),
        ] {
            assert_eq!(capture.logged_amount([&wrong]), None);
        }
        // A void's amount is whatever the escrow released.
        let void = call(EscrowOperation::Void);
        let voided = log_of(
            void.escrow,
            &AuthCaptureEscrow::PaymentVoided {
                paymentInfoHash: void.payment_hash,
                amount: U256::from(700),
            },
        );
        assert_eq!(void.logged_amount([&right, &voided]), Some(U256::from(700)));
        assert_eq!(void.amount(), None);
        assert_eq!(capture.amount(), Some(U256::from(300)));
    }

    #[test]
    fn calldata_is_the_escrow_function_of_the_operation() {
        let selector = |c: &EscrowCall| c.calldata()[..4].to_vec();
        assert_eq!(
            selector(&call(EscrowOperation::Void)),
            AuthCaptureEscrow::voidCall::SELECTOR.to_vec()
        );
        assert_eq!(
            selector(&call(EscrowOperation::Refund {
                amount: U256::from(1),
                collector: Address::ZERO
            })),
            AuthCaptureEscrow::refundCall::SELECTOR.to_vec()
        );
        let authorize = call(EscrowOperation::Authorize {
            collector: Address::repeat_byte(5),
            collector_data: Bytes::from(vec![1, 2, 3]),
        });
        let decoded =
            AuthCaptureEscrow::authorizeCall::abi_decode(&authorize.calldata()).expect("decodes");
        assert_eq!(decoded.amount, U256::from(1_000));
        assert_eq!(decoded.tokenCollector, Address::repeat_byte(5));
    }
}
