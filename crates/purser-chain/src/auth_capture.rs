//! The EVM facts of x402's `auth-capture` scheme (escrowed payments through the Commerce
//! Payments Protocol's `AuthCaptureEscrow`): which escrow and collectors a payment names, the
//! `PaymentInfo` it commits to, and the hashes both sides derive from it.
//!
//! - A payment's identity is its `PaymentInfo`. The escrow keys its state by [`payment_hash`]
//!   (`AuthCaptureEscrow.getHash`: the struct's hash bound to the chain and the escrow).
//! - The payer's ERC-3009 (or Permit2) authorization carries [`signature_nonce`]: the same hash
//!   with the payer zeroed, so a client can sign before it knows nothing but its own address;
//!   a facilitator rebuilds `PaymentInfo` from the requirements and the payload and checks that
//!   nonce, which checks every field at once.
//! - When the payment names a receiver authorizer or a policy, its salt is a commitment to them
//!   ([`bound_salt`]), so a collected payment cannot be pointed at another authorizer.
//! - Later operations (charge, capture, void, refund) relayed by a facilitator carry an EIP-712
//!   signature of the receiver's authorizer in the domain of [`authorizer_domain`].
//!
//! Everything here is pure: no RPC.

pub mod call;
pub mod lifecycle;
pub mod onchain;
pub mod verify;

use alloy::primitives::{Address, B256, U256, address, keccak256};
use alloy::sol;
use alloy::sol_types::{Eip712Domain, SolStruct, SolValue};

sol! {
    /// The Commerce Payments Protocol's `AuthCaptureEscrow` as of v1.1 (an absolute `feeAmount`
    /// in `charge` and `capture`): what a facilitator calls, its events and its errors. Its
    /// `PaymentInfo` keeps the contract's field names and types, on which its EIP-712 type
    /// string, and so its typehash, depends.
    #[derive(Debug, PartialEq, Eq)]
    contract AuthCaptureEscrow {
        /// A payment's terms; `getHash` is its EIP-712 struct hash bound to the chain and escrow.
        /// (The contract's derives apply to it too.)
        #[derive(Default, Hash)]
        struct PaymentInfo {
            address operator;
            address payer;
            address receiver;
            address token;
            uint120 maxAmount;
            uint48 preApprovalExpiry;
            uint48 authorizationExpiry;
            uint48 refundExpiry;
            uint16 minFeeBps;
            uint16 maxFeeBps;
            address feeReceiver;
            uint256 salt;
        }

        event PaymentCharged(bytes32 indexed paymentInfoHash, PaymentInfo paymentInfo, uint256 amount, address tokenCollector, uint256 feeAmount, address feeReceiver);
        event PaymentAuthorized(bytes32 indexed paymentInfoHash, PaymentInfo paymentInfo, uint256 amount, address tokenCollector);
        event PaymentCaptured(bytes32 indexed paymentInfoHash, uint256 amount, uint256 feeAmount, address feeReceiver);
        event PaymentVoided(bytes32 indexed paymentInfoHash, uint256 amount);
        event PaymentReclaimed(bytes32 indexed paymentInfoHash, uint256 amount);
        event PaymentRefunded(bytes32 indexed paymentInfoHash, uint256 amount, address tokenCollector);
        event TokenStoreCreated(address indexed operator, address tokenStore);

        error Reentrancy();
        error InvalidSender(address sender, address expected);
        error ZeroAmount();
        error AmountOverflow(uint256 amount, uint256 limit);
        error ExceedsMaxAmount(uint256 amount, uint256 maxAmount);
        error AfterPreApprovalExpiry(uint48 timestamp, uint48 expiry);
        error InvalidExpiries(uint48 preApproval, uint48 authorization, uint48 refund);
        error FeeBpsOverflow(uint16 feeBps);
        error InvalidFeeBpsRange(uint16 minFeeBps, uint16 maxFeeBps);
        error FeeAmountOutOfRange(uint256 feeAmount, uint256 minFee, uint256 maxFee);
        error ZeroFeeReceiver();
        error InvalidFeeReceiver(address attempted, address expected);
        error InvalidCollectorForOperation();
        error TokenCollectionFailed();
        error PaymentAlreadyCollected(bytes32 paymentInfoHash);
        error AfterAuthorizationExpiry(uint48 timestamp, uint48 expiry);
        error InsufficientAuthorization(bytes32 paymentInfoHash, uint256 authorizedAmount, uint256 requestedAmount);
        error ZeroAuthorization(bytes32 paymentInfoHash);
        error BeforeAuthorizationExpiry(uint48 timestamp, uint48 expiry);
        error AfterRefundExpiry(uint48 timestamp, uint48 expiry);
        error RefundExceedsCapture(uint256 refund, uint256 captured);

        function PAYMENT_INFO_TYPEHASH() external view returns (bytes32);
        function authorize(PaymentInfo paymentInfo, uint256 amount, address tokenCollector, bytes collectorData) external;
        function charge(PaymentInfo paymentInfo, uint256 amount, address tokenCollector, bytes collectorData, uint256 feeAmount, address feeReceiver) external;
        function capture(PaymentInfo paymentInfo, uint256 amount, uint256 feeAmount, address feeReceiver) external;
        function void(PaymentInfo paymentInfo) external;
        function reclaim(PaymentInfo paymentInfo) external;
        function refund(PaymentInfo paymentInfo, uint256 amount, address tokenCollector, bytes collectorData) external;
        function getHash(PaymentInfo paymentInfo) external view returns (bytes32);
        function getTokenStore(address operator) external view returns (address);
        function paymentState(bytes32 paymentInfoHash) external view returns (bool hasCollectedPayment, uint120 capturableAmount, uint120 refundableAmount);
    }

    /// What the payer signs for the ERC-3009 collector: the token pulls, it does not push.
    #[derive(Debug, Default, PartialEq, Eq)]
    struct ReceiveWithAuthorization {
        address from;
        address to;
        uint256 value;
        uint256 validAfter;
        uint256 validBefore;
        bytes32 nonce;
    }
}

pub use AuthCaptureEscrow::PaymentInfo;

/// The receiver authorizer's signed operations, escrow v1.1 (an absolute fee).
pub mod v1_1 {
    alloy::sol! {
        #[derive(Debug)]
        struct Charge {
            bytes32 paymentInfoHash;
            uint256 amount;
            address tokenCollector;
            bytes32 collectorDataHash;
            uint256 feeAmount;
            address feeReceiver;
        }

        #[derive(Debug)]
        struct Capture {
            bytes32 paymentInfoHash;
            uint256 amount;
            uint256 feeAmount;
            address feeReceiver;
            uint256 expectedCapturableAmount;
            uint256 expectedRefundableAmount;
        }
    }
}

/// The receiver authorizer's signed operations, escrow v1.0 (a fee in basis points).
pub mod v1_0 {
    alloy::sol! {
        #[derive(Debug)]
        struct Charge {
            bytes32 paymentInfoHash;
            uint256 amount;
            address tokenCollector;
            bytes32 collectorDataHash;
            uint16 feeBps;
            address feeReceiver;
        }

        #[derive(Debug)]
        struct Capture {
            bytes32 paymentInfoHash;
            uint256 amount;
            uint16 feeBps;
            address feeReceiver;
            uint256 expectedCapturableAmount;
            uint256 expectedRefundableAmount;
        }
    }
}

sol! {
    /// Releases what is still held (both escrow versions).
    #[derive(Debug)]
    struct Void {
        bytes32 paymentInfoHash;
    }

    /// Returns captured funds (both escrow versions); the collector is always the operator
    /// refund collector.
    #[derive(Debug)]
    struct Refund {
        bytes32 paymentInfoHash;
        uint256 amount;
        address tokenCollector;
        uint256 expectedCapturableAmount;
        uint256 expectedRefundableAmount;
    }
}

/// Which commerce-payments contract set a payment is collected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscrowVersion {
    /// `charge` and `capture` take a fee in basis points.
    V1_0,
    /// `charge` and `capture` take an absolute fee amount.
    V1_1,
}

impl EscrowVersion {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::V1_0 => "1.0",
            Self::V1_1 => "1.1",
        }
    }
}

/// One canonical CREATE2 set: the escrow and its collectors, the same on every chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployment {
    pub version: EscrowVersion,
    pub escrow: Address,
    pub eip3009_collector: Address,
    pub permit2_collector: Address,
    pub operator_refund_collector: Address,
}

/// The v1.1 set as the official client (`@x402/evm` 2.27) signs for it, and the default: a
/// requirement that names no escrow is collected here, because that is where a client that
/// reads none signs its nonce and collector.
pub const V1_1: Deployment = Deployment {
    version: EscrowVersion::V1_1,
    escrow: address!("0xf96815976523E00e65Be8f34cA5e64b4f41EB19c"),
    eip3009_collector: address!("0x8612dfdc421f80336cd14E8EF9cb1E765dB5ab88"),
    permit2_collector: address!("0xD69831Aed5bfe262067ec4c751f4F830EcdD446e"),
    operator_refund_collector: address!("0x7a03443724d14798c4AB4622F1DAAcA761Fea486"),
};

/// The v1.1 set as the scheme's specification text names it (`scheme_auth_capture_evm.md`),
/// which differs from the one the official client ships. Accepted when a requirement names its
/// escrow explicitly.
pub const V1_1_SPECIFIED: Deployment = Deployment {
    version: EscrowVersion::V1_1,
    escrow: address!("0x13AC3b34322D12FE27D5e192D0c2b2266d4F29CB"),
    eip3009_collector: address!("0xEA902B37036bcb4944577ec2101ABdEDF56EbD28"),
    permit2_collector: address!("0x1aacb38b16a1a8709e80746825E53A0C9Cae9b70"),
    operator_refund_collector: address!("0x6a1ADdEEb4bD9c5811a613e20c172b6CE61A4aaB"),
};

/// The v1.0 set (the same in the specification and the official client).
pub const V1_0: Deployment = Deployment {
    version: EscrowVersion::V1_0,
    escrow: address!("0xBdEA0D1bcC5966192B070Fdf62aB4EF5b4420cff"),
    eip3009_collector: address!("0x0E3dF9510de65469C4518D7843919c0b8C7A7757"),
    permit2_collector: address!("0x992476B9Ee81d52a5BdA0622C333938D0Af0aB26"),
    operator_refund_collector: address!("0x934907bffd0901b6A21e398B9C53A4A38F02fa5d"),
};

/// Every deployment a requirement may name.
pub const DEPLOYMENTS: [Deployment; 3] = [V1_1, V1_1_SPECIFIED, V1_0];

/// The deployment `escrow` names (`extra.authCaptureEscrow`), [`V1_1`] when it names none;
/// `None` for any other address.
pub fn deployment(escrow: Option<Address>) -> Option<Deployment> {
    match escrow {
        None => Some(V1_1),
        Some(escrow) => DEPLOYMENTS.into_iter().find(|d| d.escrow == escrow),
    }
}

/// `keccak256("x402AuthCaptureSaltBinding(address receiverAuthorizer,address policy,uint256 saltNonce)")`.
pub fn salt_binding_typehash() -> B256 {
    keccak256(
        "x402AuthCaptureSaltBinding(address receiverAuthorizer,address policy,uint256 saltNonce)",
    )
}

/// Whether a payment's salt must be a commitment: it names a receiver authorizer or a policy.
pub fn is_bound(receiver_authorizer: Address, policy: Address) -> bool {
    !receiver_authorizer.is_zero() || !policy.is_zero()
}

/// The salt of a bound payment: the commitment to its receiver authorizer and policy, opened by
/// the client's `salt_nonce`.
pub fn bound_salt(receiver_authorizer: Address, policy: Address, salt_nonce: U256) -> U256 {
    let encoded = (
        salt_binding_typehash(),
        receiver_authorizer,
        policy,
        salt_nonce,
    )
        .abi_encode();
    U256::from_be_bytes(keccak256(encoded).0)
}

/// `AuthCaptureEscrow.getHash(info)`: the payment's identity on `chain_id` in `escrow`, which
/// keys `paymentState` and every authorizer signature.
pub fn payment_hash(chain_id: u64, escrow: Address, info: &PaymentInfo) -> B256 {
    let struct_hash = info.eip712_hash_struct();
    keccak256((U256::from(chain_id), escrow, struct_hash).abi_encode())
}

/// The nonce of the payer's token authorization: [`payment_hash`] with the payer zeroed.
pub fn signature_nonce(chain_id: u64, escrow: Address, info: &PaymentInfo) -> B256 {
    let agnostic = PaymentInfo {
        payer: Address::ZERO,
        ..info.clone()
    };
    payment_hash(chain_id, escrow, &agnostic)
}

/// The domain every receiver-authorizer signature is made in: the operator (the capture
/// authorizer) as the verifying contract.
pub fn authorizer_domain(chain_id: u64, capture_authorizer: Address) -> Eip712Domain {
    Eip712Domain::new(
        Some("x402 Auth Capture Operator".into()),
        Some("1".into()),
        Some(U256::from(chain_id)),
        Some(capture_authorizer),
        None,
    )
}

/// The digest the payer signs for the ERC-3009 collector, in the token's domain.
pub fn receive_authorization_digest(
    authorization: &ReceiveWithAuthorization,
    token_name: &str,
    token_version: &str,
    chain_id: u64,
    token: Address,
) -> B256 {
    let domain = Eip712Domain::new(
        Some(token_name.to_owned().into()),
        Some(token_version.to_owned().into()),
        Some(U256::from(chain_id)),
        Some(token),
        None,
    );
    authorization.eip712_signing_hash(&domain)
}

/// The fee bounds the escrow enforces on a v1.1 `charge` or `capture` of `amount`: the
/// smallest and largest `feeAmount` (integer division, as the escrow divides).
pub fn fee_amount_bounds(amount: U256, min_fee_bps: u16, max_fee_bps: u16) -> (U256, U256) {
    let of = |bps: u16| amount * U256::from(bps) / U256::from(10_000u32);
    (of(min_fee_bps), of(max_fee_bps))
}

#[cfg(test)]
mod tests {
    use alloy::primitives::aliases::{U48, U120};

    use super::*;

    fn info() -> PaymentInfo {
        PaymentInfo {
            operator: address!("0x1111111111111111111111111111111111111111"),
            payer: address!("0x2222222222222222222222222222222222222222"),
            receiver: address!("0x3333333333333333333333333333333333333333"),
            token: address!("0x036CbD53842c5426634e7929541eC2318f3dCF7e"),
            maxAmount: U120::from(1_000_000u64),
            preApprovalExpiry: U48::from(1_740_675_754u64),
            authorizationExpiry: U48::from(1_740_758_554u64),
            refundExpiry: U48::from(1_741_276_954u64),
            minFeeBps: 100,
            maxFeeBps: 100,
            feeReceiver: address!("0x4444444444444444444444444444444444444444"),
            salt: U256::from(0xabcu64),
        }
    }

    #[test]
    fn the_payment_typehash_is_the_escrows() {
        // The type string the escrow (and the official client) hashes, written out.
        let expected = keccak256(
            "PaymentInfo(address operator,address payer,address receiver,address token,\
             uint120 maxAmount,uint48 preApprovalExpiry,uint48 authorizationExpiry,\
             uint48 refundExpiry,uint16 minFeeBps,uint16 maxFeeBps,address feeReceiver,\
             uint256 salt)",
        );
        assert_eq!(info().eip712_type_hash(), expected);
    }

    #[test]
    fn the_payment_hash_binds_the_chain_the_escrow_and_every_field() {
        let base = payment_hash(84532, V1_1.escrow, &info());
        // By hand: keccak(abi.encode(chainId, escrow, keccak(abi.encode(typehash, fields...)))).
        let i = info();
        let fields = (
            i.eip712_type_hash(),
            i.operator,
            i.payer,
            i.receiver,
            i.token,
            U256::from(1_000_000u64),
            U256::from(1_740_675_754u64),
            U256::from(1_740_758_554u64),
            U256::from(1_741_276_954u64),
            U256::from(100u64),
            U256::from(100u64),
            i.feeReceiver,
            i.salt,
        )
            .abi_encode();
        let by_hand =
            keccak256((U256::from(84532u64), V1_1.escrow, keccak256(fields)).abi_encode());
        assert_eq!(base, by_hand);
        assert_ne!(base, payment_hash(8453, V1_1.escrow, &info()));
        assert_ne!(base, payment_hash(84532, V1_0.escrow, &info()));
        let mut other = info();
        other.refundExpiry = U48::from(1_741_276_955u64);
        assert_ne!(base, payment_hash(84532, V1_1.escrow, &other));
        // The signature nonce is the same hash without the payer.
        let nonce = signature_nonce(84532, V1_1.escrow, &info());
        let mut anyone = info();
        anyone.payer = address!("0x9999999999999999999999999999999999999999");
        assert_eq!(nonce, signature_nonce(84532, V1_1.escrow, &anyone));
        assert_ne!(nonce, base);
    }

    #[test]
    fn the_signature_nonce_matches_the_official_clients_derivation() {
        // Computed with viem's `encodeAbiParameters` and `keccak256`, as `@x402/evm` 2.27
        // derives it, for this payment on Base Sepolia in the client's v1.1 escrow.
        let info = PaymentInfo {
            operator: address!("0x1111111111111111111111111111111111111111"),
            payer: address!("0x2222222222222222222222222222222222222222"),
            receiver: address!("0x3333333333333333333333333333333333333333"),
            token: address!("0x4444444444444444444444444444444444444444"),
            maxAmount: U120::from(1_000_000u64),
            preApprovalExpiry: U48::from(100u64),
            authorizationExpiry: U48::from(200u64),
            refundExpiry: U48::from(300u64),
            minFeeBps: 10,
            maxFeeBps: 100,
            feeReceiver: address!("0x5555555555555555555555555555555555555555"),
            salt: U256::from(7u64),
        };
        assert_eq!(
            signature_nonce(84532, V1_1.escrow, &info),
            alloy::primitives::b256!(
                "0xb1c35ca3d6f7dc5daa1d971869131227a338bf94d7cb3f80c0c3b1de9be5852d"
            )
        );
    }

    #[test]
    fn a_bound_salt_commits_to_the_authorizer_and_the_policy() {
        let authorizer = address!("0x5555555555555555555555555555555555555555");
        let nonce = U256::from(7u64);
        let salt = bound_salt(authorizer, Address::ZERO, nonce);
        assert_ne!(
            salt,
            bound_salt(authorizer, Address::ZERO, U256::from(8u64))
        );
        assert_ne!(
            salt,
            bound_salt(
                address!("0x6666666666666666666666666666666666666666"),
                Address::ZERO,
                nonce
            )
        );
        assert!(is_bound(authorizer, Address::ZERO));
        assert!(!is_bound(Address::ZERO, Address::ZERO));
    }

    #[test]
    fn deployments_resolve_by_escrow_and_default_to_the_clients_v1_1() {
        assert_eq!(deployment(None), Some(V1_1));
        assert_eq!(deployment(Some(V1_0.escrow)), Some(V1_0));
        assert_eq!(
            deployment(Some(V1_1_SPECIFIED.escrow)),
            Some(V1_1_SPECIFIED)
        );
        assert_eq!(deployment(Some(Address::repeat_byte(1))), None);
    }

    #[test]
    fn fee_bounds_divide_as_the_escrow_does() {
        let (low, high) = fee_amount_bounds(U256::from(750_000u64), 100, 250);
        assert_eq!(low, U256::from(7_500u64));
        assert_eq!(high, U256::from(18_750u64));
        let (low, _) = fee_amount_bounds(U256::from(99u64), 100, 100);
        assert_eq!(low, U256::ZERO);
    }
}
