// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// The figures `DevnetNodeInterface` keeps.
interface IDevnetArbitrumFigures {
    function l1BaseFeeEstimate() external view returns (uint256);
    function perTxOverheadBytes() external view returns (uint256);
}

/// @title DevnetArbGasInfo: the devnet's stand-in for Arbitrum's ArbGasInfo precompile
/// @notice Placed with `anvil_setCode` at `0x000000000000000000000000000000000000006C` on the
/// devnet's Arbitrum chain. It keeps no figures of its own: it reads the L1 base fee estimate
/// and the per-transaction overhead from `DevnetNodeInterface` at
/// `0x00000000000000000000000000000000000000C8`, so one setter moves both contracts' answers.
///
/// `getPricesInWei()` answers, as ArbOS does: per L2 transaction `16 × overhead × estimate`, per
/// L1 calldata byte `16 × estimate`, per storage allocation `20,000 × base fee`, and the L2 base
/// fee as the per-gas total. ArbOS splits that total into a floor (the chain's minimum gas price)
/// and congestion above it; this stand-in has no floor, so all of it is the base part and the
/// congestion part is zero.
contract DevnetArbGasInfo {
    address internal constant NODE_INTERFACE = address(uint160(0xC8));
    uint256 internal constant L1_UNITS_PER_BYTE = 16;
    /// The gas of a new storage slot, which ArbOS quotes as a storage allocation.
    uint256 internal constant STORAGE_ALLOCATION_GAS = 20_000;

    function getPricesInWei()
        public
        view
        returns (
            uint256 perL2Tx,
            uint256 perL1CalldataByte,
            uint256 perStorageAllocation,
            uint256 perArbGasBase,
            uint256 perArbGasCongestion,
            uint256 perArbGasTotal
        )
    {
        IDevnetArbitrumFigures figures = IDevnetArbitrumFigures(NODE_INTERFACE);
        perL1CalldataByte = figures.l1BaseFeeEstimate() * L1_UNITS_PER_BYTE;
        perL2Tx = perL1CalldataByte * figures.perTxOverheadBytes();
        perStorageAllocation = block.basefee * STORAGE_ALLOCATION_GAS;
        perArbGasBase = block.basefee;
        perArbGasCongestion = 0;
        perArbGasTotal = block.basefee;
    }

    /// The same as `getPricesInWei()`: the devnet has one aggregator.
    function getPricesInWeiWithAggregator(address)
        external
        view
        returns (uint256, uint256, uint256, uint256, uint256, uint256)
    {
        return getPricesInWei();
    }

    /// The prices in L2 gas: per L2 transaction, per L1 calldata byte, per storage allocation.
    function getPricesInArbGas() external view returns (uint256, uint256, uint256) {
        (uint256 perL2Tx, uint256 perL1CalldataByte,,,,) = getPricesInWei();
        uint256 baseFee = block.basefee;
        if (baseFee == 0) {
            return (0, 0, STORAGE_ALLOCATION_GAS);
        }
        return (perL2Tx / baseFee, perL1CalldataByte / baseFee, STORAGE_ALLOCATION_GAS);
    }

    function getL1BaseFeeEstimate() public view returns (uint256) {
        return IDevnetArbitrumFigures(NODE_INTERFACE).l1BaseFeeEstimate();
    }

    /// The deprecated name of `getL1BaseFeeEstimate()`.
    function getL1GasPriceEstimate() external view returns (uint256) {
        return getL1BaseFeeEstimate();
    }
}
