// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title DevnetNodeInterface: the devnet's stand-in for Arbitrum's NodeInterface
/// @notice Placed with `anvil_setCode` at `0x00000000000000000000000000000000000000C8` on the
/// devnet's Arbitrum chain, answering the two gas-estimation calls of the real (virtual) contract
/// with the same ABI, for `eth_call`:
///
/// - `gasEstimateL1Component(to, contractCreation, data)` answers `(gasEstimateForL1, baseFee,
///   l1BaseFeeEstimate)`: the L1 cost of posting the transaction, in L2 gas. The L1 cost is
///   `16 × (data.length + perTxOverheadBytes) × l1BaseFeeEstimate` wei (16 L1 gas units per byte,
///   as Arbitrum prices a posted byte, plus a fixed per-transaction overhead), divided by the L2
///   base fee (`block.basefee`), rounded down.
/// - `gasEstimateComponents(to, contractCreation, data)` answers `(gasEstimate,
///   gasEstimateForL1, baseFee, l1BaseFeeEstimate)`, where `gasEstimate` includes the L1
///   component, as on Arbitrum: the L2 gas is the transaction's intrinsic gas (21,000 plus 4 per
///   zero and 16 per non-zero calldata byte, or the EIP-7623 floor of 21,000 plus 10 per token
///   when higher) plus the execution gas of calling `to` with `data`, measured (to within a few
///   dozen gas of what the transaction itself would use; nothing for an account without code).
///
/// The figures (`l1BaseFeeEstimate`, `perTxOverheadBytes`) are kept in this contract's storage
/// (slots 0 and 1) and anyone may set them: it is a development tool. The devnet's
/// `DevnetArbGasInfo` reads them from here.
///
/// @dev How it differs from Arbitrum: the L1 size is the raw calldata length, where Arbitrum
/// Brotli-compresses the whole signed transaction and pads its estimate; no padding is applied;
/// contract creation is not supported. The call to `to` is made from this contract, so a call
/// whose outcome depends on `msg.sender` is measured as this contract's call; it runs in a frame
/// that is always reverted, so measuring never changes state, even in a transaction.
contract DevnetNodeInterface {
    /// L1 gas units per posted byte (the EIP-2028 price of a non-zero calldata byte).
    uint256 public constant L1_UNITS_PER_BYTE = 16;

    uint256 internal constant TRANSACTION_GAS = 21_000;
    uint256 internal constant ZERO_BYTE_GAS = 4;
    uint256 internal constant NON_ZERO_BYTE_GAS = 16;
    /// EIP-7623: a transaction pays at least this much per calldata token (a zero byte is one
    /// token, a non-zero byte four).
    uint256 internal constant FLOOR_GAS_PER_TOKEN = 10;
    /// What a CALL to a warm account costs itself (EIP-2929).
    uint256 internal constant WARM_CALL_GAS = 100;

    /// ArbOS's estimate of the L1 base fee: the price of one L1 gas unit, in wei (slot 0).
    uint256 public l1BaseFeeEstimate;
    /// Bytes charged to every transaction besides its calldata (slot 1; Arbitrum's fixed-cost
    /// estimate is 140).
    uint256 public perTxOverheadBytes;

    event FiguresChanged(uint256 l1BaseFeeEstimate, uint256 perTxOverheadBytes);

    /// How a measurement leaves the frame that is always reverted.
    error Measured(uint256 executionGas);

    function setL1BaseFeeEstimate(uint256 l1BaseFeeEstimateWei) external {
        l1BaseFeeEstimate = l1BaseFeeEstimateWei;
        emit FiguresChanged(l1BaseFeeEstimateWei, perTxOverheadBytes);
    }

    function setPerTxOverheadBytes(uint256 overheadBytes) external {
        perTxOverheadBytes = overheadBytes;
        emit FiguresChanged(l1BaseFeeEstimate, overheadBytes);
    }

    function gasEstimateComponents(address to, bool contractCreation, bytes calldata data)
        external
        payable
        returns (uint64 gasEstimate, uint64 gasEstimateForL1, uint256 baseFee, uint256 l1BaseFeeEstimateWei)
    {
        (gasEstimateForL1, baseFee, l1BaseFeeEstimateWei) = gasEstimateL1Component(to, contractCreation, data);
        uint256 total = _l2Gas(data, _executionGas(to, data)) + gasEstimateForL1;
        require(total <= type(uint64).max, "DevnetNodeInterface: the estimate exceeds uint64");
        gasEstimate = uint64(total);
    }

    function gasEstimateL1Component(address, bool contractCreation, bytes calldata data)
        public
        payable
        returns (uint64 gasEstimateForL1, uint256 baseFee, uint256 l1BaseFeeEstimateWei)
    {
        require(!contractCreation, "DevnetNodeInterface: contract creation is not supported");
        baseFee = block.basefee;
        require(baseFee != 0, "DevnetNodeInterface: the L2 base fee is zero");
        l1BaseFeeEstimateWei = l1BaseFeeEstimate;
        uint256 l1Cost = (data.length + perTxOverheadBytes) * L1_UNITS_PER_BYTE * l1BaseFeeEstimateWei;
        uint256 gasForL1 = l1Cost / baseFee;
        require(gasForL1 <= type(uint64).max, "DevnetNodeInterface: the estimate exceeds uint64");
        gasEstimateForL1 = uint64(gasForL1);
    }

    /// Calls `to` with `data` and reverts with `Measured(gas it took)`, or with the callee's own
    /// revert data when it fails. Called by this contract on itself, so that whatever the call
    /// changed is undone.
    function measureExecution(address to, bytes calldata data) external {
        // A transaction to an account without code executes nothing. Asking also makes `to`
        // warm, as a transaction's recipient is from its start (EIP-2929), so the call below
        // pays what the transaction would.
        if (to.code.length == 0) {
            revert Measured(0);
        }
        uint256 used;
        bool succeeded;
        assembly ("memory-safe") {
            let input := mload(0x40)
            calldatacopy(input, data.offset, data.length)
            let before := gas()
            succeeded := call(gas(), to, 0, input, data.length, 0, 0)
            // Less the CALL's own cost to a warm account, which the transaction does not pay.
            used := sub(sub(before, gas()), WARM_CALL_GAS)
        }
        if (!succeeded) {
            assembly ("memory-safe") {
                let reason := mload(0x40)
                returndatacopy(reason, 0, returndatasize())
                revert(reason, returndatasize())
            }
        }
        revert Measured(used);
    }

    /// The execution gas of calling `to` with `data`, bubbling up the callee's revert.
    function _executionGas(address to, bytes calldata data) internal returns (uint256 used) {
        try this.measureExecution(to, data) {
            revert("DevnetNodeInterface: the measurement did not revert");
        } catch (bytes memory reason) {
            if (reason.length == 36 && bytes4(reason) == Measured.selector) {
                assembly ("memory-safe") {
                    used := mload(add(reason, 36))
                }
            } else {
                assembly ("memory-safe") {
                    revert(add(reason, 32), mload(reason))
                }
            }
        }
    }

    /// A transaction's L2 gas: intrinsic plus execution, or the EIP-7623 calldata floor.
    function _l2Gas(bytes calldata data, uint256 executionGas) internal pure returns (uint256) {
        uint256 zeros = 0;
        for (uint256 i = 0; i < data.length; i++) {
            if (data[i] == 0) {
                zeros += 1;
            }
        }
        uint256 nonZeros = data.length - zeros;
        uint256 standard = TRANSACTION_GAS + zeros * ZERO_BYTE_GAS + nonZeros * NON_ZERO_BYTE_GAS + executionGas;
        uint256 floor = TRANSACTION_GAS + (zeros + 4 * nonZeros) * FLOOR_GAS_PER_TOKEN;
        return standard > floor ? standard : floor;
    }
}
