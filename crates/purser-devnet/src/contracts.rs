//! The devnet's contracts: the committed solc artefacts (compiled into the binary, so an
//! installed `purser` can start a devnet without the repository) and their ABI bindings.
//!
//! The artefacts are `contracts/out/*.json`, built from `contracts/src` by
//! `cargo xtask contracts`; CI checks they match the sources.

use alloy::primitives::Bytes;
use serde::Deserialize;

/// The escrow's ABI and the receive authorization are the facilitator's own
/// (`purser_chain::auth_capture`): the devnet's stand-ins answer exactly what Purser calls.
pub use purser_chain::auth_capture::{AuthCaptureEscrow, ReceiveWithAuthorization};

/// `contracts/out/PurserUSD.json`.
pub const PURSER_USD_ARTEFACT: &str = include_str!("../../../contracts/out/PurserUSD.json");
/// `contracts/out/TestSmartWallet.json`.
pub const TEST_SMART_WALLET_ARTEFACT: &str =
    include_str!("../../../contracts/out/TestSmartWallet.json");
/// `contracts/out/DevnetL1Block.json`: the OP Stack's L1Block predeploy, stood in for.
pub const DEVNET_L1_BLOCK_ARTEFACT: &str =
    include_str!("../../../contracts/out/DevnetL1Block.json");
/// `contracts/out/DevnetGasPriceOracle.json`: the OP Stack's GasPriceOracle, stood in for.
pub const DEVNET_GAS_PRICE_ORACLE_ARTEFACT: &str =
    include_str!("../../../contracts/out/DevnetGasPriceOracle.json");
/// `contracts/out/DevnetNodeInterface.json`: Arbitrum's NodeInterface, stood in for.
pub const DEVNET_NODE_INTERFACE_ARTEFACT: &str =
    include_str!("../../../contracts/out/DevnetNodeInterface.json");
/// `contracts/out/DevnetArbGasInfo.json`: Arbitrum's ArbGasInfo, stood in for.
pub const DEVNET_ARB_GAS_INFO_ARTEFACT: &str =
    include_str!("../../../contracts/out/DevnetArbGasInfo.json");
/// `contracts/out/DevnetPriceFeed.json`: a Chainlink-style price feed.
pub const DEVNET_PRICE_FEED_ARTEFACT: &str =
    include_str!("../../../contracts/out/DevnetPriceFeed.json");

/// `contracts/out/DevnetAuthCaptureEscrow.json`: x402 `auth-capture`'s escrow, stood in for.
pub const DEVNET_AUTH_CAPTURE_ESCROW_ARTEFACT: &str =
    include_str!("../../../contracts/out/DevnetAuthCaptureEscrow.json");
/// `contracts/out/DevnetErc3009PaymentCollector.json`: the escrow's EIP-3009 payment collector.
pub const DEVNET_ERC3009_PAYMENT_COLLECTOR_ARTEFACT: &str =
    include_str!("../../../contracts/out/DevnetErc3009PaymentCollector.json");
/// `contracts/out/DevnetOperatorRefundCollector.json`: the escrow's operator refund collector.
pub const DEVNET_OPERATOR_REFUND_COLLECTOR_ARTEFACT: &str =
    include_str!("../../../contracts/out/DevnetOperatorRefundCollector.json");

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

    pub fn devnet_l1_block() -> Artefact {
        Self::parse(DEVNET_L1_BLOCK_ARTEFACT)
    }

    pub fn devnet_gas_price_oracle() -> Artefact {
        Self::parse(DEVNET_GAS_PRICE_ORACLE_ARTEFACT)
    }

    pub fn devnet_node_interface() -> Artefact {
        Self::parse(DEVNET_NODE_INTERFACE_ARTEFACT)
    }

    pub fn devnet_arb_gas_info() -> Artefact {
        Self::parse(DEVNET_ARB_GAS_INFO_ARTEFACT)
    }

    pub fn devnet_price_feed() -> Artefact {
        Self::parse(DEVNET_PRICE_FEED_ARTEFACT)
    }

    pub fn devnet_auth_capture_escrow() -> Artefact {
        Self::parse(DEVNET_AUTH_CAPTURE_ESCROW_ARTEFACT)
    }

    pub fn devnet_erc3009_payment_collector() -> Artefact {
        Self::parse(DEVNET_ERC3009_PAYMENT_COLLECTOR_ARTEFACT)
    }

    pub fn devnet_operator_refund_collector() -> Artefact {
        Self::parse(DEVNET_OPERATOR_REFUND_COLLECTOR_ARTEFACT)
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

    /// The OP Stack's L1Block predeploy as `contracts/src/DevnetL1Block.sol` stands in for it:
    /// the getters of the storage the L1 fee formula reads (and the rest of the layout).
    #[derive(Debug, PartialEq, Eq)]
    contract DevnetL1Block {
        function number() external view returns (uint64);
        function timestamp() external view returns (uint64);
        function basefee() external view returns (uint256);
        function hash() external view returns (bytes32);
        function sequenceNumber() external view returns (uint64);
        function blobBaseFeeScalar() external view returns (uint32);
        function baseFeeScalar() external view returns (uint32);
        function batcherHash() external view returns (bytes32);
        function l1FeeOverhead() external view returns (uint256);
        function l1FeeScalar() external view returns (uint256);
        function blobBaseFee() external view returns (uint256);
        function operatorFeeConstant() external view returns (uint64);
        function operatorFeeScalar() external view returns (uint32);
    }

    /// The OP Stack's GasPriceOracle predeploy (Fjord and Isthmus) as
    /// `contracts/src/DevnetGasPriceOracle.sol` stands in for it; `flzCompressedLength` is the
    /// stand-in's own, for tests.
    #[derive(Debug, PartialEq, Eq)]
    contract DevnetGasPriceOracle {
        function DECIMALS() external view returns (uint256);
        function decimals() external pure returns (uint256);
        function isEcotone() external view returns (bool);
        function isFjord() external view returns (bool);
        function isIsthmus() external view returns (bool);
        function isJovian() external view returns (bool);
        function gasPrice() external view returns (uint256);
        function baseFee() external view returns (uint256);
        function l1BaseFee() external view returns (uint256);
        function blobBaseFee() external view returns (uint256);
        function baseFeeScalar() external view returns (uint32);
        function blobBaseFeeScalar() external view returns (uint32);
        function operatorFeeScalar() external view returns (uint32);
        function operatorFeeConstant() external view returns (uint64);
        function getL1Fee(bytes unsignedTx) external view returns (uint256);
        function getL1FeeUpperBound(uint256 unsignedTxSize) external view returns (uint256);
        function getL1GasUsed(bytes unsignedTx) external view returns (uint256);
        function getOperatorFee(uint256 gasUsed) external view returns (uint256);
        function flzCompressedLength(bytes data) external pure returns (uint256);
    }

    /// Arbitrum's NodeInterface as `contracts/src/DevnetNodeInterface.sol` stands in for it,
    /// with the setters of its figures.
    #[derive(Debug, PartialEq, Eq)]
    contract DevnetNodeInterface {
        event FiguresChanged(uint256 l1BaseFeeEstimate, uint256 perTxOverheadBytes);
        error Measured(uint256 executionGas);

        function gasEstimateComponents(address to, bool contractCreation, bytes data) external payable returns (uint64 gasEstimate, uint64 gasEstimateForL1, uint256 baseFee, uint256 l1BaseFeeEstimate);
        function gasEstimateL1Component(address to, bool contractCreation, bytes data) external payable returns (uint64 gasEstimateForL1, uint256 baseFee, uint256 l1BaseFeeEstimate);
        function l1BaseFeeEstimate() external view returns (uint256);
        function perTxOverheadBytes() external view returns (uint256);
        function L1_UNITS_PER_BYTE() external view returns (uint256);
        function setL1BaseFeeEstimate(uint256 l1BaseFeeEstimateWei) external;
        function setPerTxOverheadBytes(uint256 overheadBytes) external;
        function measureExecution(address to, bytes data) external;
    }

    /// Arbitrum's ArbGasInfo precompile as `contracts/src/DevnetArbGasInfo.sol` stands in for it.
    #[derive(Debug, PartialEq, Eq)]
    contract DevnetArbGasInfo {
        function getPricesInWei() external view returns (uint256 perL2Tx, uint256 perL1CalldataByte, uint256 perStorageAllocation, uint256 perArbGasBase, uint256 perArbGasCongestion, uint256 perArbGasTotal);
        function getPricesInWeiWithAggregator(address aggregator) external view returns (uint256, uint256, uint256, uint256, uint256, uint256);
        function getPricesInArbGas() external view returns (uint256, uint256, uint256);
        function getL1BaseFeeEstimate() external view returns (uint256);
        function getL1GasPriceEstimate() external view returns (uint256);
    }

    /// A Chainlink-style price feed (`AggregatorV3Interface` and the older getters) whose
    /// owner records rounds (`contracts/src/DevnetPriceFeed.sol`).
    #[derive(Debug, PartialEq, Eq)]
    contract DevnetPriceFeed {
        event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);
        event NewRound(uint256 indexed roundId, address indexed startedBy, uint256 startedAt);

        constructor(uint8 feedDecimals, string feedDescription, int256 initialAnswer, address feedOwner);
        function decimals() external view returns (uint8);
        function description() external view returns (string);
        function version() external view returns (uint256);
        function owner() external view returns (address);
        function latestRoundData() external view returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
        function getRoundData(uint80 roundId) external view returns (uint80, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
        function latestAnswer() external view returns (int256);
        function latestTimestamp() external view returns (uint256);
        function latestRound() external view returns (uint256);
        function setAnswer(int256 answer) external returns (uint80);
        function setAnswerUpdatedAt(int256 answer, uint256 updatedAt) external returns (uint80);
    }

    /// A token collector of the escrow (`ERC3009PaymentCollector`, `OperatorRefundCollector`):
    /// the escrow it serves and whether it collects payments (0) or refunds (1).
    #[derive(Debug, PartialEq, Eq)]
    contract TokenCollector {
        error OnlyAuthCaptureEscrow();
        error AlreadyInitialized();
        error ZeroEscrow();

        function authCaptureEscrow() external view returns (address);
        function collectorType() external view returns (uint8);
        function initialize(address escrow) external;
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
    use alloy::sol_types::{SolCall, SolStruct};

    use super::*;

    /// The canonical types of ABI parameters, comma-separated, tuples spelled out.
    fn canonical_types(params: &serde_json::Value) -> String {
        params
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let kind = p["type"].as_str().unwrap();
                match kind.strip_prefix("tuple") {
                    Some(array_suffix) => {
                        format!("({}){array_suffix}", canonical_types(&p["components"]))
                    }
                    None => kind.to_owned(),
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `name(inputs)` -> `(outputs)` of every function in an artefact's ABI.
    fn functions(artefact_json: &str) -> Vec<(String, String)> {
        let json: serde_json::Value = serde_json::from_str(artefact_json).unwrap();
        let types = canonical_types;
        json["abi"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|item| item["type"] == "function")
            .map(|f| {
                (
                    format!("{}({})", f["name"].as_str().unwrap(), types(&f["inputs"])),
                    format!("({})", types(&f["outputs"])),
                )
            })
            .collect()
    }

    /// The stand-ins answer the real contracts' functions with the real argument and return
    /// types, so a client written for the real chain calls them unchanged.
    #[test]
    fn the_stand_ins_have_the_real_contracts_abi() {
        let expected: &[(&str, &[(&str, &str)])] = &[
            (
                DEVNET_L1_BLOCK_ARTEFACT,
                &[
                    ("number()", "(uint64)"),
                    ("timestamp()", "(uint64)"),
                    ("basefee()", "(uint256)"),
                    ("hash()", "(bytes32)"),
                    ("sequenceNumber()", "(uint64)"),
                    ("blobBaseFeeScalar()", "(uint32)"),
                    ("baseFeeScalar()", "(uint32)"),
                    ("batcherHash()", "(bytes32)"),
                    ("l1FeeOverhead()", "(uint256)"),
                    ("l1FeeScalar()", "(uint256)"),
                    ("blobBaseFee()", "(uint256)"),
                    ("operatorFeeConstant()", "(uint64)"),
                    ("operatorFeeScalar()", "(uint32)"),
                ],
            ),
            (
                DEVNET_GAS_PRICE_ORACLE_ARTEFACT,
                &[
                    ("getL1Fee(bytes)", "(uint256)"),
                    ("getL1FeeUpperBound(uint256)", "(uint256)"),
                    ("getL1GasUsed(bytes)", "(uint256)"),
                    ("getOperatorFee(uint256)", "(uint256)"),
                    ("isEcotone()", "(bool)"),
                    ("isFjord()", "(bool)"),
                    ("isIsthmus()", "(bool)"),
                    ("isJovian()", "(bool)"),
                    ("l1BaseFee()", "(uint256)"),
                    ("blobBaseFee()", "(uint256)"),
                    ("baseFeeScalar()", "(uint32)"),
                    ("blobBaseFeeScalar()", "(uint32)"),
                    ("operatorFeeScalar()", "(uint32)"),
                    ("operatorFeeConstant()", "(uint64)"),
                    ("decimals()", "(uint256)"),
                    ("DECIMALS()", "(uint256)"),
                    ("gasPrice()", "(uint256)"),
                    ("baseFee()", "(uint256)"),
                ],
            ),
            (
                DEVNET_NODE_INTERFACE_ARTEFACT,
                &[
                    (
                        "gasEstimateComponents(address,bool,bytes)",
                        "(uint64,uint64,uint256,uint256)",
                    ),
                    (
                        "gasEstimateL1Component(address,bool,bytes)",
                        "(uint64,uint256,uint256)",
                    ),
                ],
            ),
            (
                DEVNET_ARB_GAS_INFO_ARTEFACT,
                &[
                    (
                        "getPricesInWei()",
                        "(uint256,uint256,uint256,uint256,uint256,uint256)",
                    ),
                    (
                        "getPricesInWeiWithAggregator(address)",
                        "(uint256,uint256,uint256,uint256,uint256,uint256)",
                    ),
                    ("getPricesInArbGas()", "(uint256,uint256,uint256)"),
                    ("getL1BaseFeeEstimate()", "(uint256)"),
                    ("getL1GasPriceEstimate()", "(uint256)"),
                ],
            ),
            (
                DEVNET_PRICE_FEED_ARTEFACT,
                &[
                    ("decimals()", "(uint8)"),
                    ("description()", "(string)"),
                    ("version()", "(uint256)"),
                    (
                        "latestRoundData()",
                        "(uint80,int256,uint256,uint256,uint80)",
                    ),
                    (
                        "getRoundData(uint80)",
                        "(uint80,int256,uint256,uint256,uint80)",
                    ),
                    ("latestAnswer()", "(int256)"),
                    ("latestTimestamp()", "(uint256)"),
                    ("latestRound()", "(uint256)"),
                ],
            ),
            (
                DEVNET_AUTH_CAPTURE_ESCROW_ARTEFACT,
                &[
                    (
                        "authorize((address,address,address,address,uint120,uint48,uint48,uint48,uint16,uint16,address,uint256),uint256,address,bytes)",
                        "()",
                    ),
                    (
                        "charge((address,address,address,address,uint120,uint48,uint48,uint48,uint16,uint16,address,uint256),uint256,address,bytes,uint256,address)",
                        "()",
                    ),
                    (
                        "capture((address,address,address,address,uint120,uint48,uint48,uint48,uint16,uint16,address,uint256),uint256,uint256,address)",
                        "()",
                    ),
                    (
                        "void((address,address,address,address,uint120,uint48,uint48,uint48,uint16,uint16,address,uint256))",
                        "()",
                    ),
                    (
                        "reclaim((address,address,address,address,uint120,uint48,uint48,uint48,uint16,uint16,address,uint256))",
                        "()",
                    ),
                    (
                        "refund((address,address,address,address,uint120,uint48,uint48,uint48,uint16,uint16,address,uint256),uint256,address,bytes)",
                        "()",
                    ),
                    (
                        "getHash((address,address,address,address,uint120,uint48,uint48,uint48,uint16,uint16,address,uint256))",
                        "(bytes32)",
                    ),
                    ("paymentState(bytes32)", "(bool,uint120,uint120)"),
                    ("getTokenStore(address)", "(address)"),
                    ("PAYMENT_INFO_TYPEHASH()", "(bytes32)"),
                ],
            ),
            (
                DEVNET_ERC3009_PAYMENT_COLLECTOR_ARTEFACT,
                &[
                    (
                        "collectTokens((address,address,address,address,uint120,uint48,uint48,uint48,uint16,uint16,address,uint256),address,uint256,bytes)",
                        "()",
                    ),
                    ("collectorType()", "(uint8)"),
                    ("authCaptureEscrow()", "(address)"),
                ],
            ),
            (
                DEVNET_OPERATOR_REFUND_COLLECTOR_ARTEFACT,
                &[
                    (
                        "collectTokens((address,address,address,address,uint120,uint48,uint48,uint48,uint16,uint16,address,uint256),address,uint256,bytes)",
                        "()",
                    ),
                    ("collectorType()", "(uint8)"),
                    ("authCaptureEscrow()", "(address)"),
                ],
            ),
        ];
        for (artefact, wanted) in expected {
            let have = functions(artefact);
            for (signature, outputs) in *wanted {
                assert!(
                    have.iter().any(|(s, o)| s == signature && o == outputs),
                    "{signature} -> {outputs} is not in {have:?}"
                );
            }
        }
        // Selectors as published in the OP Stack's Go bindings.
        assert_eq!(
            DevnetGasPriceOracle::getOperatorFeeCall::SELECTOR,
            [0x27, 0x5a, 0xed, 0xd2]
        );
        assert_eq!(
            DevnetGasPriceOracle::getL1GasUsedCall::SELECTOR,
            [0xde, 0x26, 0xc4, 0xa1]
        );
        // commerce-payments v1.1's event topics (its fee documentation publishes them; the
        // `feeAmount` events differ from v1.0's `feeBps` ones) and some of its error selectors.
        use alloy::sol_types::{SolError, SolEvent};
        assert_eq!(
            AuthCaptureEscrow::PaymentCharged::SIGNATURE_HASH,
            alloy::primitives::b256!(
                "0x137b0e73e4453f43c2e1ad2552980a0e0c7e988764619974ca26d37a7159940c"
            )
        );
        assert_eq!(
            AuthCaptureEscrow::PaymentCaptured::SIGNATURE_HASH,
            alloy::primitives::b256!(
                "0xac1e0db1957daedbc6944bcb4c8dc947ff8101d710671ac2ec26309f7f38d58e"
            )
        );
        assert_eq!(
            AuthCaptureEscrow::FeeAmountOutOfRange::SELECTOR,
            [0x7c, 0x2d, 0xcc, 0x22]
        );
        assert_eq!(
            AuthCaptureEscrow::InsufficientAuthorization::SELECTOR,
            [0x60, 0x4b, 0x09, 0x47]
        );
        assert_eq!(
            AuthCaptureEscrow::RefundExceedsCapture::SELECTOR,
            [0x62, 0x95, 0xd6, 0x04]
        );
    }

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
        for (artefact, name) in [
            (Artefact::devnet_l1_block(), "DevnetL1Block"),
            (Artefact::devnet_gas_price_oracle(), "DevnetGasPriceOracle"),
            (Artefact::devnet_node_interface(), "DevnetNodeInterface"),
            (Artefact::devnet_arb_gas_info(), "DevnetArbGasInfo"),
            (Artefact::devnet_price_feed(), "DevnetPriceFeed"),
            (
                Artefact::devnet_auth_capture_escrow(),
                "DevnetAuthCaptureEscrow",
            ),
            (
                Artefact::devnet_erc3009_payment_collector(),
                "DevnetErc3009PaymentCollector",
            ),
            (
                Artefact::devnet_operator_refund_collector(),
                "DevnetOperatorRefundCollector",
            ),
        ] {
            assert_eq!(artefact.contract_name, name);
            assert!(!artefact.deployed_bytecode.is_empty());
        }
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
