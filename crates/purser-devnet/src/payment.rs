//! x402 `exact` payments signed the way SDK clients sign them, for tests, benchmarks and the
//! demo's paying agent.

use std::time::{SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::signers::SignerSync;
use purser_chain::eip3009::ExactTransfer;
use purser_chain::rails::Asset;
use serde_json::{Value, json};

use crate::{DevnetChain, TestAccount, TokenInfo};

/// Unix seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A fresh EIP-3009 nonce: unique in this process, and across processes by the clock.
pub fn random_nonce() -> B256 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    keccak256(format!(
        "{nanos}-{}",
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ))
}

/// What a payment says, before signing; tests bend one field at a time.
#[derive(Clone, Debug)]
pub struct Payment {
    pub network: String,
    pub token: TokenInfo,
    pub from: Address,
    pub to: Address,
    pub value: u128,
    pub valid_after: u64,
    pub valid_before: u64,
    pub nonce: B256,
    /// The amount the requirements ask for (normally `value`).
    pub amount: u128,
    /// `payTo` in the requirements (normally `to`).
    pub pay_to: Address,
    pub extensions: Option<Value>,
}

impl Payment {
    /// `value` of the chain's token from `payer` to `pay_to`, valid for five minutes.
    pub fn new(chain: &DevnetChain, payer: &TestAccount, pay_to: Address, value: u128) -> Self {
        Self {
            network: chain.network(),
            token: chain.token().clone(),
            from: payer.address(),
            to: pay_to,
            value,
            valid_after: 0,
            valid_before: now() + 300,
            nonce: random_nonce(),
            amount: value,
            pay_to,
            extensions: None,
        }
    }

    pub fn requirements(&self) -> Value {
        json!({
            "scheme": "exact",
            "network": self.network,
            "amount": self.amount.to_string(),
            "asset": self.token.address.to_checksum(None),
            "payTo": self.pay_to.to_checksum(None),
            "maxTimeoutSeconds": 300,
            "extra": { "name": self.token.name, "version": self.token.version },
        })
    }

    fn transfer(&self, signature: Vec<u8>) -> ExactTransfer {
        ExactTransfer {
            from: self.from,
            to: self.to,
            value: U256::from(self.value),
            valid_after: self.valid_after,
            valid_before: self.valid_before,
            nonce: self.nonce,
            signature: signature.into(),
        }
    }

    /// The EIP-712 digest of the authorization.
    pub fn digest(&self, chain_id: u64) -> B256 {
        let asset = Asset {
            address: self.token.address,
            name: self.token.name.clone(),
            version: self.token.version.clone(),
            decimals: self.token.decimals,
            symbol: None,
            currency: "USD".to_owned(),
        };
        self.transfer(vec![]).signing_hash(&asset, chain_id)
    }

    /// The x402 `PaymentPayload` signed by `key` (with `suffix` bytes after the signature).
    pub fn payload_signed_with(&self, key: &TestAccount, chain_id: u64, suffix: &[u8]) -> Value {
        let signature = key.signer().sign_hash_sync(&self.digest(chain_id)).unwrap();
        let mut bytes = signature.as_bytes().to_vec();
        bytes.extend_from_slice(suffix);
        let mut payload = json!({
            "x402Version": 2,
            "resource": { "url": "https://merchant.example/paid", "description": "a paid thing" },
            "accepted": self.requirements(),
            "payload": {
                "signature": format!("0x{}", alloy::hex::encode(&bytes)),
                "authorization": {
                    "from": self.from.to_checksum(None),
                    "to": self.to.to_checksum(None),
                    "value": self.value.to_string(),
                    "validAfter": self.valid_after.to_string(),
                    "validBefore": self.valid_before.to_string(),
                    "nonce": self.nonce.to_string(),
                },
            },
        });
        if let Some(extensions) = &self.extensions {
            payload["extensions"] = extensions.clone();
        }
        payload
    }

    /// The payload answering the 402 `required` with its requirements `accepted`, as SDK
    /// clients build it: `resource`, `accepted` and `extensions` echoed from the 402.
    pub fn payload_answering(
        &self,
        key: &TestAccount,
        chain_id: u64,
        required: &purser_x402::PaymentRequired,
        accepted: &purser_x402::PaymentRequirements,
    ) -> Value {
        let mut payload = self.payload_signed_with(key, chain_id, &[]);
        payload["resource"] = serde_json::to_value(&required.resource).unwrap_or(Value::Null);
        payload["accepted"] = serde_json::to_value(accepted).unwrap_or(Value::Null);
        if let Some(extensions) = &required.extensions {
            payload["extensions"] = Value::Object(extensions.clone());
        }
        payload
    }

    /// The `/verify` and `/settle` body, signed by the payer (`key`).
    pub fn body(&self, key: &TestAccount, chain_id: u64) -> Value {
        json!({
            "x402Version": 2,
            "paymentPayload": self.payload_signed_with(key, chain_id, &[]),
            "paymentRequirements": self.requirements(),
        })
    }
}
