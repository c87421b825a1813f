//! The `exact` scheme on EVM with EIP-3009: verifying a signed `TransferWithAuthorization`
//! and executing it through `transferWithAuthorization`.
//!
//! Verification runs the checks in the order x402 specifies — signature (EOA, ERC-1271 for
//! contract wallets, ERC-6492 for allowlisted factories), recipient, value, validity window
//! with a 6-second margin, nonce unused on chain, balance, simulation — and answers the first
//! failing check with the reason string the reference SDK uses.

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::BlockId;
use alloy::eips::eip2718::Encodable2718;
use alloy::network::TxSignerSync;
use alloy::primitives::{Address, B256, Bytes, FixedBytes, Signature, TxKind, U256};
use alloy::providers::Provider;
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::sol;
use alloy::sol_types::{Eip712Domain, SolCall, SolEvent, SolStruct, SolValue};

use purser_domain::money::Amount;
use purser_x402::{ExactEvmPayload, Reason};

use crate::fees::ActualCost;
use crate::rails::{Asset, Rail, Signer};
use crate::rpc::RpcFailure;

sol! {
    /// The EIP-712 message a payer signs.
    #[derive(Debug)]
    struct TransferWithAuthorization {
        address from;
        address to;
        uint256 value;
        uint256 validAfter;
        uint256 validBefore;
        bytes32 nonce;
    }

    interface IEip3009 {
        function transferWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, uint8 v, bytes32 r, bytes32 s) external;
        function transferWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, bytes signature) external;
        function authorizationState(address authorizer, bytes32 nonce) external view returns (bool);
        function balanceOf(address account) external view returns (uint256);
        event Transfer(address indexed from, address indexed to, uint256 value);
    }

    interface IErc1271 {
        function isValidSignature(bytes32 hash, bytes signature) external view returns (bytes4);
    }

    /// The constructor arguments of `Erc6492Probe`.
    struct ProbeArguments {
        uint8 mode;
        address factory;
        bytes factoryCalldata;
        address wallet;
        bytes32 hash;
        bytes signature;
        address target;
        bytes data;
    }
}

/// ERC-1271's magic value for a valid signature.
const ERC1271_MAGIC: [u8; 4] = [0x16, 0x26, 0xba, 0x7e];
/// The suffix that marks an ERC-6492 signature.
const ERC6492_MAGIC: [u8; 32] = [
    0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92,
    0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92,
];
/// `validBefore` must leave at least this long to get the transaction mined.
pub const VALID_BEFORE_MARGIN_SECONDS: u64 = 6;

/// A payer's signed authorization, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExactTransfer {
    pub from: Address,
    pub to: Address,
    pub value: U256,
    pub valid_after: u64,
    pub valid_before: u64,
    pub nonce: B256,
    pub signature: Bytes,
}

/// Why a payload could not even be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct PayloadError {
    pub field: &'static str,
    pub problem: String,
}

fn field_error(field: &'static str, problem: impl Into<String>) -> PayloadError {
    PayloadError {
        field,
        problem: problem.into(),
    }
}

fn parse_uint(field: &'static str, raw: &str) -> Result<U256, PayloadError> {
    let parsed = if let Some(hex) = raw.strip_prefix("0x") {
        U256::from_str_radix(hex, 16)
    } else {
        U256::from_str_radix(raw, 10)
    };
    parsed.map_err(|_| field_error(field, "not an unsigned integer"))
}

fn parse_seconds(field: &'static str, raw: &str) -> Result<u64, PayloadError> {
    let value = parse_uint(field, raw)?;
    // Far-future timestamps (some clients use 2^256-1 for "never") saturate.
    Ok(u64::try_from(value).unwrap_or(u64::MAX))
}

impl ExactTransfer {
    /// Parses the wire fields of an `exact` EVM payload.
    pub fn parse(
        from: &str,
        to: &str,
        value: &str,
        valid_after: &str,
        valid_before: &str,
        nonce: &str,
        signature: &str,
    ) -> Result<Self, PayloadError> {
        let address = |field, raw: &str| {
            raw.parse::<Address>()
                .map_err(|_| field_error(field, "not an EVM address"))
        };
        let hex_bytes = |field, raw: &str| -> Result<Vec<u8>, PayloadError> {
            let digits = raw
                .strip_prefix("0x")
                .ok_or_else(|| field_error(field, "must start with 0x"))?;
            alloy::hex::decode(digits).map_err(|_| field_error(field, "not hex"))
        };
        let nonce = hex_bytes("nonce", nonce)?;
        if nonce.len() != 32 {
            return Err(field_error("nonce", "must be 32 bytes"));
        }
        let signature = hex_bytes("signature", signature)?;
        if signature.is_empty() || signature.len() > 16 * 1024 {
            return Err(field_error("signature", "must be 1 to 16384 bytes"));
        }
        Ok(Self {
            from: address("from", from)?,
            to: address("to", to)?,
            value: parse_uint("value", value)?,
            valid_after: parse_seconds("validAfter", valid_after)?,
            valid_before: parse_seconds("validBefore", valid_before)?,
            nonce: B256::from_slice(&nonce),
            signature: signature.into(),
        })
    }

    /// The authorization of a validated x402 `exact` EVM payload.
    pub fn from_payload(payload: &ExactEvmPayload) -> Self {
        let a = &payload.authorization;
        Self {
            from: Address::from(a.from.to_bytes()),
            to: Address::from(a.to.to_bytes()),
            value: U256::from(a.value.atomic()),
            valid_after: a.valid_after,
            valid_before: a.valid_before,
            nonce: B256::from(a.nonce.to_bytes()),
            signature: payload.signature.to_bytes().into(),
        }
    }

    /// `from`, checksummed.
    pub fn payer(&self) -> String {
        self.from.to_checksum(None)
    }

    /// The calldata settlement sends: an ERC-6492 signature (of a deployed wallet) is
    /// unwrapped to the signature its ERC-1271 check expects.
    pub fn settlement_calldata(&self) -> Bytes {
        match unwrap_erc6492(&self.signature) {
            Some(Ok(wrapped)) => self.calldata(&wrapped.inner),
            _ => self.calldata(&self.signature),
        }
    }

    /// The EIP-712 digest the payer signed for `asset` on `chain_id`.
    pub fn signing_hash(&self, asset: &Asset, chain_id: u64) -> B256 {
        let domain = Eip712Domain::new(
            Some(asset.name.clone().into()),
            Some(asset.version.clone().into()),
            Some(U256::from(chain_id)),
            Some(asset.address),
            None,
        );
        TransferWithAuthorization {
            from: self.from,
            to: self.to,
            value: self.value,
            validAfter: U256::from(self.valid_after),
            validBefore: U256::from(self.valid_before),
            nonce: self.nonce,
        }
        .eip712_signing_hash(&domain)
    }

    /// Calldata for `transferWithAuthorization`: the `(v, r, s)` overload for a 65-byte
    /// signature, the `bytes signature` overload (USDC v2.2) for anything else.
    pub fn calldata(&self, signature: &[u8]) -> Bytes {
        if signature.len() == 65
            && let Ok(sig) = Signature::try_from(signature)
        {
            let v = if sig.v() { 28u8 } else { 27u8 };
            return IEip3009::transferWithAuthorization_0Call {
                from: self.from,
                to: self.to,
                value: self.value,
                validAfter: U256::from(self.valid_after),
                validBefore: U256::from(self.valid_before),
                nonce: self.nonce,
                v,
                r: sig.r().into(),
                s: sig.s().into(),
            }
            .abi_encode()
            .into();
        }
        IEip3009::transferWithAuthorization_1Call {
            from: self.from,
            to: self.to,
            value: self.value,
            validAfter: U256::from(self.valid_after),
            validBefore: U256::from(self.valid_before),
            nonce: self.nonce,
            signature: Bytes::copy_from_slice(signature),
        }
        .abi_encode()
        .into()
    }
}

/// What the requirements ask for, resolved against the rail's configuration.
#[derive(Debug, Clone)]
pub struct ExactRequirement<'a> {
    pub asset: &'a Asset,
    pub pay_to: Address,
    pub amount: U256,
}

impl<'a> ExactRequirement<'a> {
    /// The requirement to pay `amount` of `asset` to `pay_to`.
    pub fn new(asset: &'a Asset, pay_to: &str, amount: Amount) -> Result<Self, PayloadError> {
        Ok(Self {
            asset,
            pay_to: pay_to
                .parse()
                .map_err(|_| field_error("payTo", "not an EVM address"))?,
            amount: U256::from(amount.atomic()),
        })
    }
}

/// The verdict on a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    Invalid { reason: Reason, message: String },
}

/// The outcome of [`Rail::check_signature`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureCheck {
    /// Signed by the signer. `signature` is the inner signature (unwrapped from ERC-6492), and
    /// `deployment` the wallet's deployment when it has no code yet.
    Valid {
        signature: Bytes,
        deployment: Option<Deployment>,
    },
    Invalid {
        reason: Reason,
        message: String,
    },
}

/// A refused signature, as a check's answer.
fn refused(reason: Reason, message: impl Into<String>) -> SignatureCheck {
    SignatureCheck::Invalid {
        reason,
        message: message.into(),
    }
}

fn invalid(reason: Reason, message: impl Into<String>) -> Verdict {
    Verdict::Invalid {
        reason,
        message: message.into(),
    }
}

/// An ERC-6492 signature, unwrapped.
struct Erc6492 {
    factory: Address,
    calldata: Bytes,
    inner: Bytes,
}

/// A counterfactual smart wallet's deployment: the factory and the call that deploys it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub factory: Address,
    pub calldata: Bytes,
}

/// The creation code of `contracts/src/Erc6492Probe.sol`, run as a deployless `eth_call` to
/// answer what a counterfactual wallet would do once deployed.
static ERC6492_PROBE: std::sync::LazyLock<Bytes> = std::sync::LazyLock::new(|| {
    let artefact: serde_json::Value =
        serde_json::from_str(include_str!("../../../contracts/out/Erc6492Probe.json"))
            .expect("the committed Erc6492Probe artefact is JSON");
    let code = artefact["bytecode"]
        .as_str()
        .expect("the artefact has bytecode")
        .trim_start_matches("0x");
    alloy::hex::decode(code)
        .expect("the artefact's bytecode is hex")
        .into()
});

fn unwrap_erc6492(signature: &[u8]) -> Option<Result<Erc6492, ()>> {
    if signature.len() < 32 || signature[signature.len() - 32..] != ERC6492_MAGIC {
        return None;
    }
    let body = &signature[..signature.len() - 32];
    Some(
        <(Address, Bytes, Bytes)>::abi_decode_params(body)
            .map(|(factory, calldata, inner)| Erc6492 {
                factory,
                calldata,
                inner,
            })
            .map_err(|_| ()),
    )
}

/// A transaction signed and ready to broadcast.
#[derive(Debug, Clone)]
pub struct SignedTransaction {
    pub signer: Address,
    pub nonce: u64,
    pub hash: B256,
    pub raw: Bytes,
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
}

/// Fees to offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fees {
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
}

impl Fees {
    /// At least 12.5 % above `self` on both fields (what nodes require of a replacement), and
    /// at least `floor`.
    pub fn bumped(self, floor: Fees) -> Fees {
        let bump = |v: u128| v.saturating_add(v / 8).saturating_add(1);
        Fees {
            max_fee_per_gas: bump(self.max_fee_per_gas).max(floor.max_fee_per_gas),
            max_priority_fee_per_gas: bump(self.max_priority_fee_per_gas)
                .max(floor.max_priority_fee_per_gas),
        }
    }
}

/// What the chain charges now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeQuote {
    pub base_fee_per_gas: u128,
    pub priority_fee_per_gas: u128,
}

impl FeeQuote {
    /// The fees to offer: room for the base fee to double before inclusion, plus the tip.
    pub fn offer(&self) -> Fees {
        Fees {
            max_fee_per_gas: self
                .base_fee_per_gas
                .saturating_mul(2)
                .saturating_add(self.priority_fee_per_gas),
            max_priority_fee_per_gas: self.priority_fee_per_gas,
        }
    }
}

/// What a node said to a broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broadcast {
    /// Accepted into the mempool (or already there).
    Accepted,
    /// The signer's nonce was already used: by this transaction, a replacement, or another.
    NonceUsed,
    /// Refused for its fees (underpriced, or below the base fee).
    Underpriced(String),
    /// Refused for another reason.
    Rejected(String),
}

/// A receipt, as far as settlement cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptView {
    pub tx_hash: B256,
    pub success: bool,
    pub block_number: u64,
    /// The receipt holds the event the settlement expects (the asset's `Transfer(from, to,
    /// value)`, or the escrow's event of the operation on the payment).
    pub logged: bool,
    /// What the escrow's event says the operation moved (escrow operations only).
    pub escrow_amount: Option<U256>,
    /// What the transaction cost its sender, as the receipt reports it.
    pub cost: ActualCost,
}

/// What a settlement's transaction is expected to log.
#[derive(Debug, Clone, Copy)]
pub enum Expected<'a> {
    /// The `exact` transfer, by the token at `asset`.
    Transfer {
        transfer: &'a ExactTransfer,
        asset: Address,
    },
    /// The escrow's event of this call.
    Escrow(&'a crate::auth_capture::call::EscrowCall),
}

/// A receipt with the fee fields OP Stack nodes add (absent elsewhere).
#[derive(Debug, serde::Deserialize)]
struct ReceiptWithFees {
    #[serde(flatten)]
    receipt: TransactionReceipt,
    #[serde(rename = "l1Fee", default)]
    l1_fee: Option<U256>,
    #[serde(rename = "operatorFeeScalar", default)]
    operator_fee_scalar: Option<alloy::primitives::U64>,
    #[serde(rename = "operatorFeeConstant", default)]
    operator_fee_constant: Option<U256>,
}

impl Rail {
    /// Verifies `transfer` against `requirement`, at unix time `now`.
    pub async fn verify_exact(
        &self,
        transfer: &ExactTransfer,
        requirement: &ExactRequirement<'_>,
        now: u64,
    ) -> Result<Verdict, RpcFailure> {
        let asset = requirement.asset;
        let digest = transfer.signing_hash(asset, self.chain_id);
        let (signature, deployment) = match self
            .check_signature(transfer.from, digest, &transfer.signature)
            .await?
        {
            SignatureCheck::Valid {
                signature,
                deployment,
            } => (signature, deployment),
            SignatureCheck::Invalid { reason, message } => return Ok(invalid(reason, message)),
        };
        if transfer.to != requirement.pay_to {
            return Ok(invalid(
                Reason::InvalidExactEvmRecipientMismatch,
                format!(
                    "authorization pays {}, not {}",
                    transfer.to, requirement.pay_to
                ),
            ));
        }
        if transfer.value != requirement.amount {
            return Ok(invalid(
                Reason::InvalidExactEvmPayloadAuthorizationValueMismatch,
                format!(
                    "authorization is for {}, not {}",
                    transfer.value, requirement.amount
                ),
            ));
        }
        if transfer.valid_before < now.saturating_add(VALID_BEFORE_MARGIN_SECONDS) {
            return Ok(invalid(
                Reason::InvalidExactEvmPayloadAuthorizationValidBefore,
                "the authorization expires too soon to be mined",
            ));
        }
        if transfer.valid_after > now {
            return Ok(invalid(
                Reason::InvalidExactEvmPayloadAuthorizationValidAfter,
                "the authorization is not valid yet",
            ));
        }
        // Nonce, balance and asset code, read together; judged in order.
        let (used, balance, asset_code) = tokio::join!(
            self.call(
                asset.address,
                IEip3009::authorizationStateCall {
                    authorizer: transfer.from,
                    nonce: transfer.nonce
                }
                .abi_encode()
                .into()
            ),
            self.call(
                asset.address,
                IEip3009::balanceOfCall {
                    account: transfer.from
                }
                .abi_encode()
                .into()
            ),
            self.rpc.request("eth_getCode", |p| {
                let address = asset.address;
                async move { p.get_code_at(address).await }
            }),
        );
        if asset_code?.is_empty() {
            return Ok(invalid(
                Reason::AssetNotDeployedContract,
                "no contract at the asset address",
            ));
        }
        let used = match used {
            Ok(bytes) => bool::abi_decode(&bytes).unwrap_or(false),
            Err(RpcFailure::Refused { message, .. }) => {
                return Ok(invalid(
                    Reason::InvalidExactEvmTransactionSimulationFailed,
                    format!("the asset does not answer authorizationState: {message}"),
                ));
            }
            Err(unreachable) => return Err(unreachable),
        };
        if used {
            return Ok(invalid(
                Reason::InvalidExactEvmNonceAlreadyUsed,
                "the authorization was already used",
            ));
        }
        let balance = match balance {
            Ok(bytes) => U256::abi_decode(&bytes).unwrap_or_default(),
            Err(RpcFailure::Refused { .. }) => U256::ZERO,
            Err(unreachable) => return Err(unreachable),
        };
        if balance < transfer.value {
            return Ok(invalid(
                Reason::InvalidExactEvmInsufficientBalance,
                format!("the payer holds {balance}, less than {}", transfer.value),
            ));
        }
        // Simulation: the call settlement will make, from a signer's address (after deploying
        // the wallet, for a counterfactual one).
        if let Some(deployment) = &deployment {
            let transfer_call = transfer.calldata(&signature);
            return Ok(
                if self
                    .probe(
                        deployment,
                        transfer.from,
                        digest,
                        &signature,
                        Some((asset.address, transfer_call)),
                    )
                    .await?
                {
                    Verdict::Valid
                } else {
                    invalid(
                        Reason::InvalidExactEvmTransactionSimulationFailed,
                        "deploying the wallet and transferring does not succeed",
                    )
                },
            );
        }
        let caller = self
            .signers
            .first()
            .map(|s| s.address())
            .unwrap_or(Address::ZERO);
        let request = TransactionRequest::default()
            .from(caller)
            .to(asset.address)
            .input(transfer.calldata(&signature).into());
        match self
            .rpc
            .request("eth_call", |p| {
                let request = request.clone();
                async move { p.call(request).block(BlockId::latest()).await }
            })
            .await
        {
            Ok(_) => Ok(Verdict::Valid),
            Err(RpcFailure::Refused { message, .. }) => Ok(invalid(
                Reason::InvalidExactEvmTransactionSimulationFailed,
                message,
            )),
            Err(unreachable) => Err(unreachable),
        }
    }

    /// Checks that `signer` signed `digest`: an ECDSA signature when the address has no code,
    /// ERC-1271 `isValidSignature` when it is a contract, and for an ERC-6492 wrapped signature
    /// of a wallet not yet deployed, a deployless probe through an allowlisted factory.
    pub async fn check_signature(
        &self,
        signer: Address,
        digest: B256,
        signature: &Bytes,
    ) -> Result<SignatureCheck, RpcFailure> {
        let code = self
            .rpc
            .request(
                "eth_getCode",
                |p| async move { p.get_code_at(signer).await },
            )
            .await?;
        let mut inner: Bytes = signature.clone();
        let mut deployment = None;
        if let Some(wrapped) = unwrap_erc6492(signature) {
            let Ok(wrapped) = wrapped else {
                return Ok(refused(
                    Reason::InvalidExactEvmFailedToParseSignature,
                    "malformed ERC-6492 wrapper",
                ));
            };
            if code.is_empty() {
                if !self.erc6492_factories.contains(&wrapped.factory) {
                    return Ok(refused(
                        Reason::Eip6492FactoryNotAllowed,
                        format!("factory {} is not allowlisted", wrapped.factory),
                    ));
                }
                deployment = Some(Deployment {
                    factory: wrapped.factory,
                    calldata: wrapped.calldata,
                });
            }
            inner = wrapped.inner;
        }
        let valid = if let Some(deployment) = &deployment {
            // The wallet does not exist yet: deploy it inside one call, then ask it.
            self.probe(deployment, signer, digest, &inner, None).await?
        } else if code.is_empty() {
            match Signature::try_from(inner.as_ref()) {
                Ok(sig) => sig
                    .recover_address_from_prehash(&digest)
                    .is_ok_and(|recovered| recovered == signer),
                Err(err) => {
                    return Ok(refused(
                        Reason::InvalidExactEvmFailedToParseSignature,
                        format!(
                            "the signer has no code, so the signature must be a 65-byte ECDSA signature; this one ({} bytes) is not: {err}",
                            inner.len()
                        ),
                    ));
                }
            }
        } else {
            let call = IErc1271::isValidSignatureCall {
                hash: digest,
                signature: inner.clone(),
            };
            match self.call(signer, call.abi_encode().into()).await {
                Ok(bytes) => bytes.len() >= 4 && bytes[..4] == ERC1271_MAGIC,
                Err(RpcFailure::Refused { .. }) => false,
                Err(unreachable) => return Err(unreachable),
            }
        };
        Ok(if valid {
            SignatureCheck::Valid {
                signature: inner,
                deployment,
            }
        } else {
            refused(
                Reason::InvalidExactEvmSignature,
                "the signature does not match the signed data and signer",
            )
        })
    }

    /// Runs [`ERC6492_PROBE`] as a deployless call: deploys the wallet through its factory,
    /// then checks `signature` over `digest` (`then = None`) or makes the call `then`.
    async fn probe(
        &self,
        deployment: &Deployment,
        wallet: Address,
        digest: B256,
        signature: &Bytes,
        then: Option<(Address, Bytes)>,
    ) -> Result<bool, RpcFailure> {
        let (mode, target, data) = match then {
            None => (0u8, Address::ZERO, Bytes::new()),
            Some((target, data)) => (1u8, target, data),
        };
        let arguments = ProbeArguments {
            mode,
            factory: deployment.factory,
            factoryCalldata: deployment.calldata.clone(),
            wallet,
            hash: digest,
            signature: signature.clone(),
            target,
            data,
        }
        .abi_encode_params();
        let mut code = ERC6492_PROBE.to_vec();
        code.extend_from_slice(&arguments);
        let mut request = TransactionRequest::default().input(Bytes::from(code).into());
        request.to = Some(TxKind::Create);
        match self
            .rpc
            .request("eth_call", |p| {
                let request = request.clone();
                async move { p.call(request).block(BlockId::latest()).await }
            })
            .await
        {
            Ok(answer) => Ok(answer.first() == Some(&1)),
            Err(RpcFailure::Refused { .. }) => Ok(false),
            Err(unreachable) => Err(unreachable),
        }
    }

    /// The deployment a settlement must send before its transfer: the payer is a counterfactual
    /// wallet of an allowlisted factory that still has no code.
    pub async fn deployment_needed(
        &self,
        transfer: &ExactTransfer,
    ) -> Result<Option<Deployment>, RpcFailure> {
        let Some(Ok(wrapped)) = unwrap_erc6492(&transfer.signature) else {
            return Ok(None);
        };
        if !self.erc6492_factories.contains(&wrapped.factory) {
            return Ok(None);
        }
        let code = self
            .rpc
            .request("eth_getCode", |p| {
                let from = transfer.from;
                async move { p.get_code_at(from).await }
            })
            .await?;
        Ok(code.is_empty().then_some(Deployment {
            factory: wrapped.factory,
            calldata: wrapped.calldata,
        }))
    }

    async fn call(&self, to: Address, input: Bytes) -> Result<Bytes, RpcFailure> {
        let request = TransactionRequest::default().to(to).input(input.into());
        self.rpc
            .request("eth_call", |p| {
                let request = request.clone();
                async move { p.call(request).block(BlockId::latest()).await }
            })
            .await
    }

    /// Whether the authorization was already executed on chain.
    pub async fn authorization_used(
        &self,
        asset: Address,
        from: Address,
        nonce: B256,
    ) -> Result<bool, RpcFailure> {
        let answer = self
            .call(
                asset,
                IEip3009::authorizationStateCall {
                    authorizer: from,
                    nonce,
                }
                .abi_encode()
                .into(),
            )
            .await?;
        Ok(bool::abi_decode(&answer).unwrap_or(false))
    }

    /// The latest block's base fee and the node's suggested tip (none on Arbitrum, which
    /// charges the base fee alone and ignores tips, so a tip only raises what a node that does
    /// charge one, such as the devnet's stand-in, takes).
    pub async fn fee_quote(&self) -> Result<FeeQuote, RpcFailure> {
        if self.kind == crate::config::RailKind::Arbitrum {
            let block = self
                .rpc
                .request("eth_getBlockByNumber", |p| async move {
                    p.get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
                        .await
                })
                .await?;
            return Ok(FeeQuote {
                base_fee_per_gas: block
                    .and_then(|b| b.header.base_fee_per_gas)
                    .map_or(1_000_000_000, u128::from),
                priority_fee_per_gas: 0,
            });
        }
        let (block, tip) = tokio::join!(
            self.rpc.request("eth_getBlockByNumber", |p| async move {
                p.get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
                    .await
            }),
            self.rpc
                .request("eth_maxPriorityFeePerGas", |p| async move {
                    p.get_max_priority_fee_per_gas().await
                }),
        );
        let base_fee = block?
            .and_then(|b| b.header.base_fee_per_gas)
            .map(u128::from)
            .unwrap_or(1_000_000_000);
        let tip = tip.unwrap_or(1_000_000_000);
        Ok(FeeQuote {
            base_fee_per_gas: base_fee,
            priority_fee_per_gas: tip,
        })
    }

    /// The signer's next nonce as the node sees it, counting its mempool.
    pub async fn pending_nonce(&self, signer: Address) -> Result<u64, RpcFailure> {
        self.rpc
            .request("eth_getTransactionCount", |p| async move {
                p.get_transaction_count(signer).pending().await
            })
            .await
    }

    /// The signer's nonce in the latest block: every lower nonce is mined.
    pub async fn mined_nonce(&self, signer: Address) -> Result<u64, RpcFailure> {
        self.rpc
            .request("eth_getTransactionCount", |p| async move {
                p.get_transaction_count(signer).latest().await
            })
            .await
    }

    /// [`Rail::mined_nonce`] of a `0x` address.
    pub async fn mined_nonce_of(&self, signer: &str) -> Result<u64, RpcFailure> {
        let address = signer.parse::<Address>().map_err(|_| RpcFailure::Refused {
            what: "eth_getTransactionCount",
            code: 0,
            message: "not an address".to_owned(),
            data: None,
        })?;
        self.mined_nonce(address).await
    }

    pub async fn block_number(&self) -> Result<u64, RpcFailure> {
        self.rpc
            .request(
                "eth_blockNumber",
                |p| async move { p.get_block_number().await },
            )
            .await
    }

    /// The latest block's timestamp (unix seconds): the time the chain's contracts judge
    /// deadlines by.
    pub async fn latest_block_time(&self) -> Result<u64, RpcFailure> {
        let block = self
            .rpc
            .request("eth_getBlockByNumber", |p| async move {
                p.get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
                    .await
            })
            .await?;
        block
            .map(|b| b.header.timestamp)
            .ok_or_else(|| RpcFailure::Refused {
                what: "eth_getBlockByNumber",
                code: 0,
                message: "the node has no latest block".to_owned(),
                data: None,
            })
    }

    /// Gas for a call from `signer` to `to`, with a fifth on top; a fixed allowance when the
    /// node cannot estimate.
    pub async fn call_gas(&self, signer: Address, to: Address, calldata: &Bytes) -> u64 {
        // Enough for transferWithAuthorization with an ERC-1271 check, when the node cannot
        // estimate (the payer's wallet is deployed only by an earlier transaction, say).
        const FALLBACK_GAS: u64 = 250_000;
        let request = TransactionRequest::default()
            .from(signer)
            .to(to)
            .input(calldata.clone().into());
        match self
            .rpc
            .request("eth_estimateGas", |p| {
                let request = request.clone();
                async move { p.estimate_gas(request).block(BlockId::latest()).await }
            })
            .await
        {
            Ok(gas) => gas.saturating_add(gas / 5),
            Err(_) => FALLBACK_GAS,
        }
    }

    /// Signs a transaction calling `to` with `input` at `nonce`.
    pub fn sign(
        &self,
        signer: &Signer,
        nonce: u64,
        to: Address,
        input: Bytes,
        gas_limit: u64,
        fees: Fees,
    ) -> Result<SignedTransaction, alloy::signers::Error> {
        let mut tx = TxEip1559 {
            chain_id: self.chain_id,
            nonce,
            gas_limit,
            max_fee_per_gas: fees.max_fee_per_gas,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
            to: TxKind::Call(to),
            value: U256::ZERO,
            access_list: Default::default(),
            input,
        };
        let signature = signer.key.sign_transaction_sync(&mut tx)?;
        let envelope = TxEnvelope::Eip1559(tx.into_signed(signature));
        Ok(SignedTransaction {
            signer: signer.address(),
            nonce,
            hash: *envelope.tx_hash(),
            raw: envelope.encoded_2718().into(),
            max_fee_per_gas: fees.max_fee_per_gas,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
        })
    }

    /// A zero-value transfer from the signer to itself at `nonce`: fills a nonce that no
    /// transaction will use, so the signer's later transactions can be mined.
    pub fn sign_gap_fill(
        &self,
        signer: &Signer,
        nonce: u64,
        fees: Fees,
    ) -> Result<SignedTransaction, alloy::signers::Error> {
        self.sign(signer, nonce, signer.address(), Bytes::new(), 21_000, fees)
    }

    /// Signs `raw`'s transaction again with other fees: a replacement at the same nonce.
    pub fn resign_with_fees(
        &self,
        signer: &Signer,
        raw: &[u8],
        fees: Fees,
    ) -> Result<SignedTransaction, String> {
        use alloy::eips::eip2718::Decodable2718;
        let envelope = TxEnvelope::decode_2718(&mut &raw[..])
            .map_err(|e| format!("undecodable transaction: {e}"))?;
        let TxEnvelope::Eip1559(signed) = envelope else {
            return Err("not an EIP-1559 transaction".to_owned());
        };
        let tx = signed.tx();
        let TxKind::Call(to) = tx.to else {
            return Err("not a call".to_owned());
        };
        self.sign(signer, tx.nonce, to, tx.input.clone(), tx.gas_limit, fees)
            .map_err(|e| format!("signing: {e}"))
    }

    /// Sends a signed transaction. "Already known" counts as accepted.
    pub async fn broadcast(&self, raw: &[u8]) -> Result<Broadcast, RpcFailure> {
        let raw = Bytes::copy_from_slice(raw);
        let sent = self
            .rpc
            .request("eth_sendRawTransaction", |p| {
                let raw = raw.clone();
                async move {
                    p.send_raw_transaction(&raw)
                        .await
                        .map(|pending| *pending.tx_hash())
                }
            })
            .await;
        match sent {
            Ok(_) => Ok(Broadcast::Accepted),
            Err(RpcFailure::Refused { message, .. }) => {
                let lower = message.to_ascii_lowercase();
                Ok(
                    if lower.contains("already known") || lower.contains("already imported") {
                        Broadcast::Accepted
                    } else if lower.contains("nonce too low")
                        || lower.contains("nonce has already been used")
                    {
                        Broadcast::NonceUsed
                    } else if lower.contains("underpriced")
                        || lower.contains("fee") && lower.contains("base fee")
                        || lower.contains("max fee per gas less than block base fee")
                    {
                        Broadcast::Underpriced(message)
                    } else {
                        Broadcast::Rejected(message)
                    },
                )
            }
            Err(unreachable) => Err(unreachable),
        }
    }

    /// The receipt of the transaction with `0x` hash `hash`, if mined, and whether it logged
    /// what `expected` names.
    pub async fn receipt(
        &self,
        hash: &str,
        expected: Option<Expected<'_>>,
    ) -> Result<Option<ReceiptView>, RpcFailure> {
        let hash = parse_hash(hash).ok_or_else(|| RpcFailure::Refused {
            what: "eth_getTransactionReceipt",
            code: 0,
            message: format!(
                "`{}` is not a transaction hash",
                hash.chars().take(80).collect::<String>()
            ),
            data: None,
        })?;
        let receipt: Option<ReceiptWithFees> = self
            .rpc
            .request("eth_getTransactionReceipt", |p| async move {
                p.raw_request("eth_getTransactionReceipt".into(), (hash,))
                    .await
            })
            .await?;
        Ok(receipt.map(|fees| {
            let r = &fees.receipt;
            let logs = || r.inner.logs().iter().map(|log| &log.inner);
            let (logged, escrow_amount) = match expected {
                Some(Expected::Transfer { transfer, asset }) => {
                    (transfer_in_logs(r, transfer, asset), None)
                }
                Some(Expected::Escrow(call)) => {
                    let amount = call.logged_amount(logs());
                    (amount.is_some(), amount)
                }
                None => (false, None),
            };
            let cost = ActualCost::from_parts(
                r.gas_used,
                r.effective_gas_price,
                fees.l1_fee.map(|f| u128::try_from(f).unwrap_or(u128::MAX)),
                fees.operator_fee_scalar.map(|s| s.to::<u64>()),
                fees.operator_fee_constant
                    .map(|c| u128::try_from(c).unwrap_or(u128::MAX)),
            );
            if logged && r.status() {
                self.settlement_gas.observe(hash, r.gas_used);
            }
            ReceiptView {
                tx_hash: hash,
                success: r.status(),
                block_number: r.block_number.unwrap_or_default(),
                logged,
                escrow_amount,
                cost,
            }
        }))
    }

    /// Whether `receipt` is buried under enough blocks.
    pub fn is_final(&self, receipt: &ReceiptView, latest_block: u64) -> bool {
        latest_block.saturating_add(1) >= receipt.block_number.saturating_add(self.confirmations)
    }
}

fn transfer_in_logs(
    receipt: &TransactionReceipt,
    transfer: &ExactTransfer,
    asset: Address,
) -> bool {
    receipt.inner.logs().iter().any(|log| {
        log.address() == asset
            && IEip3009::Transfer::decode_log_data(log.data()).is_ok_and(|e| {
                e.from == transfer.from && e.to == transfer.to && e.value == transfer.value
            })
    })
}

/// Hex with `0x`, lower case.
pub fn hex_of(bytes: &[u8]) -> String {
    format!("0x{}", alloy::hex::encode(bytes))
}

/// Parses a `0x` transaction hash.
pub fn parse_hash(raw: &str) -> Option<B256> {
    raw.parse::<FixedBytes<32>>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer(signature: &str) -> Result<ExactTransfer, PayloadError> {
        ExactTransfer::parse(
            "0x1111111111111111111111111111111111111111",
            "0x2222222222222222222222222222222222222222",
            "10000",
            "0",
            "0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            &format!("0x{}", "ab".repeat(32)),
            signature,
        )
    }

    #[test]
    fn payloads_parse_strictly() {
        let sig = format!("0x{}", "11".repeat(65));
        let t = transfer(&sig).unwrap();
        assert_eq!(t.value, U256::from(10_000u64));
        assert_eq!(t.valid_before, u64::MAX, "2^256-1 saturates to never");
        assert_eq!(transfer("0x").unwrap_err().field, "signature");
        assert_eq!(transfer("1234").unwrap_err().field, "signature");
        let bad_nonce = ExactTransfer::parse(
            "0x1111111111111111111111111111111111111111",
            "0x2222222222222222222222222222222222222222",
            "1",
            "0",
            "1",
            "0x12",
            &sig,
        );
        assert_eq!(bad_nonce.unwrap_err().field, "nonce");
        let bad_value = ExactTransfer::parse(
            "0x1111111111111111111111111111111111111111",
            "0x2222222222222222222222222222222222222222",
            "-1",
            "0",
            "1",
            &format!("0x{}", "00".repeat(32)),
            &sig,
        );
        assert_eq!(bad_value.unwrap_err().field, "value");
    }

    #[test]
    fn calldata_picks_the_overload_by_signature_length() {
        let eoa = transfer(&format!("0x{}1b", "11".repeat(64))).unwrap();
        let data = eoa.calldata(&eoa.signature);
        assert_eq!(
            data[..4],
            IEip3009::transferWithAuthorization_0Call::SELECTOR
        );
        let contract = transfer(&format!("0x{}", "22".repeat(100))).unwrap();
        let data = contract.calldata(&contract.signature);
        assert_eq!(
            data[..4],
            IEip3009::transferWithAuthorization_1Call::SELECTOR
        );
    }

    #[test]
    fn erc6492_wrappers_are_recognised() {
        let inner = Bytes::from(vec![7u8; 65]);
        let factory = Address::repeat_byte(9);
        let mut wrapped = (factory, Bytes::from(vec![1u8, 2]), inner.clone()).abi_encode_params();
        wrapped.extend_from_slice(&ERC6492_MAGIC);
        let unwrapped = unwrap_erc6492(&wrapped).unwrap().unwrap();
        assert_eq!((unwrapped.factory, unwrapped.inner), (factory, inner));
        assert!(unwrap_erc6492(&[0u8; 65]).is_none());
        let mut junk = vec![0u8; 10];
        junk.extend_from_slice(&ERC6492_MAGIC);
        assert!(unwrap_erc6492(&junk).unwrap().is_err());
    }

    #[test]
    fn fee_bumps_clear_the_replacement_threshold() {
        let old = Fees {
            max_fee_per_gas: 100,
            max_priority_fee_per_gas: 10,
        };
        let bumped = old.bumped(Fees {
            max_fee_per_gas: 0,
            max_priority_fee_per_gas: 0,
        });
        assert!(bumped.max_fee_per_gas * 8 >= old.max_fee_per_gas * 9);
        assert!(bumped.max_priority_fee_per_gas * 8 >= old.max_priority_fee_per_gas * 9);
        let floored = old.bumped(Fees {
            max_fee_per_gas: 1_000,
            max_priority_fee_per_gas: 50,
        });
        assert_eq!(
            floored,
            Fees {
                max_fee_per_gas: 1_000,
                max_priority_fee_per_gas: 50
            }
        );
    }
}
