//! The devnet's contracts: the committed solc artefacts (compiled into the binary, so an
//! installed `purser` can start a devnet without the repository) and their ABI bindings.
//!
//! The artefacts are `contracts/out/*.json`, built from `contracts/src` by
//! `cargo xtask contracts`; CI checks they match the sources.

use alloy::primitives::Bytes;
use serde::Deserialize;

/// `contracts/out/PurserUSD.json`.
pub const PURSER_USD_ARTEFACT: &str = include_str!("../../../contracts/out/PurserUSD.json");
/// `contracts/out/TestSmartWallet.json`.
pub const TEST_SMART_WALLET_ARTEFACT: &str =
    include_str!("../../../contracts/out/TestSmartWallet.json");

/// The parts of an artefact the devnet uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artefact {
    pub contract_name: String,
    /// Creation code (constructor arguments are appended).
    pub bytecode: Bytes,
    /// Runtime code, as `anvil_setCode` places it.
    pub deployed_bytecode: Bytes,
    pub solc_version: String,
}

impl Artefact {
    fn parse(json: &str) -> Artefact {
        serde_json::from_str(json).expect("committed contract artefacts are valid")
    }

    pub fn purser_usd() -> Artefact {
        Self::parse(PURSER_USD_ARTEFACT)
    }

    pub fn test_smart_wallet() -> Artefact {
        Self::parse(TEST_SMART_WALLET_ARTEFACT)
    }
}

alloy::sol! {
    /// The devnet's EIP-3009 token (`contracts/src/PurserUSD.sol`).
    #[derive(Debug, PartialEq, Eq)]
    contract PurserUSD {
        event Transfer(address indexed from, address indexed to, uint256 value);
        event Approval(address indexed owner, address indexed spender, uint256 value);
        event Mint(address indexed minter, address indexed to, uint256 amount);
        event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce);
        event AuthorizationCanceled(address indexed authorizer, bytes32 indexed nonce);

        constructor(string tokenName, string tokenVersion, string tokenSymbol, address tokenOwner);
        function initialize(string tokenName, string tokenVersion, string tokenSymbol, address tokenOwner) external;

        function name() external view returns (string);
        function symbol() external view returns (string);
        function version() external view returns (string);
        function decimals() external view returns (uint8);
        function owner() external view returns (address);
        function totalSupply() external view returns (uint256);
        function balanceOf(address account) external view returns (uint256);
        function allowance(address holder, address spender) external view returns (uint256);
        function DOMAIN_SEPARATOR() external view returns (bytes32);
        function authorizationState(address authorizer, bytes32 nonce) external view returns (bool);

        function mint(address to, uint256 amount) external returns (bool);
        function transfer(address to, uint256 value) external returns (bool);
        function approve(address spender, uint256 value) external returns (bool);
        function transferFrom(address from, address to, uint256 value) external returns (bool);

        function transferWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, uint8 v, bytes32 r, bytes32 s) external;
        function transferWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, bytes signature) external;
        function receiveWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, uint8 v, bytes32 r, bytes32 s) external;
        function receiveWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, bytes signature) external;
        function cancelAuthorization(address authorizer, bytes32 nonce, uint8 v, bytes32 r, bytes32 s) external;
        function cancelAuthorization(address authorizer, bytes32 nonce, bytes signature) external;
    }

    /// The minimal ERC-1271 wallet (`contracts/src/TestSmartWallet.sol`).
    #[derive(Debug, PartialEq, Eq)]
    contract TestSmartWallet {
        constructor(address walletOwner);
        function owner() external view returns (address);
        function isValidSignature(bytes32 hash, bytes signature) external view returns (bytes4);
        function execute(address target, uint256 value, bytes data) external returns (bytes);
    }

    /// EIP-3009's transfer authorization, the EIP-712 struct x402's `exact` scheme signs.
    #[derive(Debug, Default, PartialEq, Eq)]
    struct TransferWithAuthorization {
        address from;
        address to;
        uint256 value;
        uint256 validAfter;
        uint256 validBefore;
        bytes32 nonce;
    }

    /// EIP-3009's receive authorization (only the payee may submit it).
    #[derive(Debug, Default, PartialEq, Eq)]
    struct ReceiveWithAuthorization {
        address from;
        address to;
        uint256 value;
        uint256 validAfter;
        uint256 validBefore;
        bytes32 nonce;
    }

    /// EIP-3009's cancellation of an unused authorization.
    #[derive(Debug, Default, PartialEq, Eq)]
    struct CancelAuthorization {
        address authorizer;
        bytes32 nonce;
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::keccak256;
    use alloy::sol_types::SolStruct;

    use super::*;

    #[test]
    fn artefacts_parse_and_type_hashes_match_eip3009() {
        let token = Artefact::purser_usd();
        assert_eq!(token.contract_name, "PurserUSD");
        assert!(token.bytecode.len() > token.deployed_bytecode.len());
        assert!(token.solc_version.starts_with("0.8."));
        assert_eq!(
            Artefact::test_smart_wallet().contract_name,
            "TestSmartWallet"
        );
        // The type hashes FiatToken v2 publishes.
        assert_eq!(
            TransferWithAuthorization::eip712_type_hash(&Default::default()),
            "0x7c7c6cdb67a18743f49ec6fa9b35f50d52ed05cbed4cc592e13b44501c1a2267"
                .parse::<alloy::primitives::B256>()
                .unwrap()
        );
        assert_eq!(
            ReceiveWithAuthorization::eip712_type_hash(&Default::default()),
            keccak256(
                "ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
            )
        );
        assert_eq!(
            CancelAuthorization::eip712_type_hash(&Default::default()),
            "0x158b0a9edf7a828aad02f63cd515c68ef2f50ba807396f6d12842833a1597429"
                .parse::<alloy::primitives::B256>()
                .unwrap()
        );
    }
}
