//! x402's `auth-capture` escrow on the devnet: the Commerce Payments Protocol's
//! `AuthCaptureEscrow`, `ERC3009PaymentCollector` and `OperatorRefundCollector` as our
//! stand-ins (`contracts/src/DevnetAuthCaptureEscrow.sol`, commerce-payments v1.1's ABI: `charge`
//! and `capture` take an absolute `feeAmount`) placed at canonical addresses on every chain, and
//! the hashes a payment is identified and signed by.
//!
//! Version 1.1 of the `auth-capture` specification names one set of v1.1 addresses, but two
//! sets are published as "v1.1": the x402 specification's table (and Purser's protocol digest)
//! names [`EscrowContracts::spec_v1_1`] (`0x13AC…`), while the official client Purser pins
//! (`@x402/evm` 2.27.0), which refuses any other escrow in `extra.authCaptureEscrow` and signs
//! for its own set when the field is absent, and commerce-payments' README name
//! [`EscrowContracts::sdk_v1_1`] (`0xf968…`). The devnet places the stand-ins at both, each set
//! a deployment of its own (its collectors serve its escrow only), so a server may write either
//! escrow into its offers. The v1.0 set (`feeBps` in `charge` and `capture`) is not placed.
//!
//! Everything is placed with `anvil_setCode` (no constructor runs) and the collectors' one piece
//! of state, the escrow they serve, written into their storage slot 0 with
//! `anvil_setStorageAt`: no transaction is sent, so the deployer's nonce, and with it the
//! addresses of what it deploys, stay as they were.

use alloy::primitives::{Address, U256};
use purser_chain::auth_capture;
use serde::{Deserialize, Serialize};

use crate::DevnetError;
use crate::chain::DevnetChain;
use crate::contracts::{Artefact, AuthCaptureEscrow, ReceiveWithAuthorization};

/// The version of x402's `auth-capture` scheme the devnet's contracts follow.
pub const AUTH_CAPTURE_SPEC_VERSION: &str = "1.1";

/// One deployment of the escrow contracts on a chain, as `devnet.json` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EscrowContracts {
    /// Which published address set this is: `spec-v1.1` or `sdk-v1.1`.
    pub deployment: String,
    #[serde(with = "crate::files::checksummed")]
    pub auth_capture_escrow: Address,
    /// Collects payments by EIP-3009 `receiveWithAuthorization` (x402's
    /// `EIP3009_TOKEN_COLLECTOR_ADDRESS`).
    #[serde(with = "crate::files::checksummed")]
    pub erc3009_payment_collector: Address,
    /// Collects refunds from the operator's allowance (`OPERATOR_REFUND_COLLECTOR_ADDRESS`).
    #[serde(with = "crate::files::checksummed")]
    pub operator_refund_collector: Address,
}

impl EscrowContracts {
    /// The v1.1 addresses of the x402 specification's `auth-capture` EVM binding (its
    /// "Commerce-payments deployments" table) and of Purser's protocol digest.
    pub fn spec_v1_1() -> Self {
        Self::of("spec-v1.1", auth_capture::V1_1_SPECIFIED)
    }

    /// The v1.1 addresses `@x402/evm` 2.27.0's `auth-capture` client uses (its default when
    /// `extra.authCaptureEscrow` is absent) and commerce-payments' README lists for v1.1.0.
    pub fn sdk_v1_1() -> Self {
        Self::of("sdk-v1.1", auth_capture::V1_1)
    }

    fn of(deployment: &str, addresses: auth_capture::Deployment) -> Self {
        Self {
            deployment: deployment.to_owned(),
            auth_capture_escrow: addresses.escrow,
            erc3009_payment_collector: addresses.eip3009_collector,
            operator_refund_collector: addresses.operator_refund_collector,
        }
    }

    /// Every set the devnet places, the official client's default first.
    pub fn all() -> Vec<Self> {
        vec![Self::sdk_v1_1(), Self::spec_v1_1()]
    }
}

/// The EIP-3009 authorization a payer signs (on the token's domain) for `info` to be collected
/// by `contracts`: `maxAmount` to the payment collector, valid from 0 until the pre-approval
/// expiry, with the payment's signature nonce ([`auth_capture::signature_nonce`]) as nonce. Its signature is the collector data of
/// `authorize` and `charge`.
pub fn receive_authorization(
    chain_id: u64,
    contracts: &EscrowContracts,
    info: &AuthCaptureEscrow::PaymentInfo,
) -> ReceiveWithAuthorization {
    ReceiveWithAuthorization {
        from: info.payer,
        to: contracts.erc3009_payment_collector,
        value: U256::from(info.maxAmount),
        validAfter: U256::ZERO,
        validBefore: U256::from(info.preApprovalExpiry),
        nonce: auth_capture::signature_nonce(chain_id, contracts.auth_capture_escrow, info),
    }
}

/// Where the collectors keep the escrow they serve (`authCaptureEscrow`).
const COLLECTOR_ESCROW_SLOT: u64 = 0;

impl DevnetChain {
    /// Places every set of [`EscrowContracts::all`].
    pub(crate) async fn place_escrow_contracts(&mut self) -> Result<(), DevnetError> {
        let escrow_code = Artefact::devnet_auth_capture_escrow().deployed_bytecode;
        let payment_collector_code = Artefact::devnet_erc3009_payment_collector().deployed_bytecode;
        let refund_collector_code = Artefact::devnet_operator_refund_collector().deployed_bytecode;
        let sets = EscrowContracts::all();
        for set in &sets {
            self.set_code(set.auth_capture_escrow, escrow_code.clone())
                .await?;
            for (collector, code) in [
                (set.erc3009_payment_collector, &payment_collector_code),
                (set.operator_refund_collector, &refund_collector_code),
            ] {
                self.set_code(collector, code.clone()).await?;
                self.set_storage_at(
                    collector,
                    U256::from(COLLECTOR_ESCROW_SLOT),
                    set.auth_capture_escrow.into_word(),
                )
                .await?;
            }
        }
        self.escrow_contracts = sets;
        Ok(())
    }

    /// The escrow deployments on the chain ([`EscrowContracts::all`]; none on a chain attached
    /// from a `devnet.json` written before they existed).
    pub fn escrow_contracts(&self) -> &[EscrowContracts] {
        &self.escrow_contracts
    }

    /// `paymentState(getHash(info))` of `escrow`: whether the payment was collected, what is
    /// capturable and what is refundable.
    pub async fn payment_state(
        &self,
        escrow: Address,
        info: &AuthCaptureEscrow::PaymentInfo,
    ) -> Result<AuthCaptureEscrow::paymentStateReturn, DevnetError> {
        let hash = auth_capture::payment_hash(self.chain_id(), escrow, info);
        self.call(
            escrow,
            &AuthCaptureEscrow::paymentStateCall {
                paymentInfoHash: hash,
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_sets_are_distinct_and_serialize_checksummed() {
        let [sdk, spec] = <[EscrowContracts; 2]>::try_from(EscrowContracts::all()).unwrap();
        assert_ne!(sdk.auth_capture_escrow, spec.auth_capture_escrow);
        let json = serde_json::to_value(&sdk).unwrap();
        assert_eq!(json["deployment"], "sdk-v1.1");
        assert_eq!(
            json["authCaptureEscrow"],
            "0xf96815976523E00e65Be8f34cA5e64b4f41EB19c"
        );
        assert_eq!(
            serde_json::from_value::<EscrowContracts>(json).unwrap(),
            sdk
        );
    }
}
