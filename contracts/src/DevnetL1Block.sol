// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title DevnetL1Block: the devnet's stand-in for the OP Stack's L1Block predeploy
/// @notice Placed with `anvil_setCode` at `0x4200000000000000000000000000000000000015` on the
/// devnet's OP Stack chains. Its storage has the layout of the real predeploy as of Isthmus, so a
/// tool that writes the L1 fee parameters into the slots where the OP Stack keeps them (as the
/// depositor's L1-attributes transaction does on a real chain, or `anvil_setStorageAt` here)
/// moves these getters, and with them `DevnetGasPriceOracle`'s fees:
///
/// | slot | contents (low-order bits first)                                                      |
/// |------|--------------------------------------------------------------------------------------|
/// | 0    | `number` (uint64, bits 0-63), `timestamp` (uint64, bits 64-127)                       |
/// | 1    | `basefee`: the L1 base fee, wei                                                      |
/// | 2    | `hash`                                                                               |
/// | 3    | `sequenceNumber` (uint64, bits 0-63), `blobBaseFeeScalar` (uint32, bits 64-95),       |
/// |      | `baseFeeScalar` (uint32, bits 96-127)                                                |
/// | 4    | `batcherHash`                                                                        |
/// | 5, 6 | `l1FeeOverhead`, `l1FeeScalar` (pre-Ecotone, unused by the Fjord formula)            |
/// | 7    | `blobBaseFee`: the L1 blob base fee, wei                                             |
/// | 8    | `operatorFeeConstant` (uint64, bits 0-63), `operatorFeeScalar` (uint32, bits 64-95)   |
///
/// @dev There are no setters: on a real chain only the depositor account writes this contract,
/// once per L2 block; on the devnet every value arrives by a storage write. The declarations
/// below are in storage order and must stay so: Solidity packs consecutive small values into
/// one slot from the low-order end, which is how the slots above come about.
contract DevnetL1Block {
    uint64 public number;
    uint64 public timestamp;
    uint256 public basefee;
    bytes32 public hash;
    uint64 public sequenceNumber;
    uint32 public blobBaseFeeScalar;
    uint32 public baseFeeScalar;
    bytes32 public batcherHash;
    uint256 public l1FeeOverhead;
    uint256 public l1FeeScalar;
    uint256 public blobBaseFee;
    uint64 public operatorFeeConstant;
    uint32 public operatorFeeScalar;
}
