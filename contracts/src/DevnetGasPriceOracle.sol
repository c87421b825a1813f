// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// The L1Block getters the oracle reads (`DevnetL1Block`, or a real L1Block predeploy).
interface IL1BlockFeeParameters {
    function basefee() external view returns (uint256);
    function blobBaseFee() external view returns (uint256);
    function baseFeeScalar() external view returns (uint32);
    function blobBaseFeeScalar() external view returns (uint32);
    function operatorFeeScalar() external view returns (uint32);
    function operatorFeeConstant() external view returns (uint64);
}

/// @title DevnetGasPriceOracle: the devnet's stand-in for the OP Stack's GasPriceOracle predeploy
/// @notice Placed with `anvil_setCode` at `0x420000000000000000000000000000000000000F` on the
/// devnet's OP Stack chains. It answers as the real oracle does on a chain past Fjord and Isthmus
/// (and before Jovian), reading the fee parameters from the L1Block predeploy at
/// `0x4200000000000000000000000000000000000015` on every call:
///
/// - `getL1Fee(unsignedTx)`: the Fjord L1 data fee of an unsigned, fully RLP-encoded
///   transaction. Its FastLZ-compressed length plus 68 (what the signature adds) becomes an
///   estimated Brotli size, `max(836_500 × length - 42_585_600, 100 × 10^6)` (in millionths of a
///   byte), charged at `baseFeeScalar × 16 × l1BaseFee + blobBaseFeeScalar × blobBaseFee` per
///   byte, the product divided by 10^12.
/// - `getL1FeeUpperBound(unsignedTxSize)`: the same, with the compressed length bounded by
///   `n + n / 255 + 16` where `n = unsignedTxSize + 68`.
/// - `getL1GasUsed(unsignedTx)`: the estimated size × 16 / 10^6.
/// - `getOperatorFee(gasUsed)`: `gasUsed × operatorFeeScalar / 10^6 + operatorFeeConstant`,
///   each step saturating at 2^256 - 1 (the Isthmus formula).
///
/// @dev The compressed length is that of level-1 FastLZ as the OP Stack counts it (Solady's
/// `LibZip.flzCompress`, which the real oracle runs, and op-geth's `FlzCompressLen`): this
/// contract walks the input the same way and adds up the lengths of the literal runs and match
/// codes it would emit, without writing them. `flzCompressedLength` is exposed for tests; the
/// real oracle has no such function.
contract DevnetGasPriceOracle {
    /// The scalars' fixed-point decimals.
    uint256 public constant DECIMALS = 6;

    address internal constant L1_BLOCK = 0x4200000000000000000000000000000000000015;

    /// Fjord's linear regression from a FastLZ length to a Brotli size, in millionths of a byte.
    int256 internal constant COST_INTERCEPT = -42_585_600;
    uint256 internal constant COST_FASTLZ_COEF = 836_500;
    /// The smallest estimated size, in bytes.
    uint256 internal constant MIN_TRANSACTION_SIZE = 100;
    /// What a signature adds to the RLP encoding of an unsigned transaction, in bytes.
    uint256 internal constant SIGNATURE_PADDING = 68;
    /// The operator fee scalar's fixed-point factor.
    uint256 internal constant OPERATOR_FEE_SCALE = 1e6;

    /// FastLZ level 1: a 13-bit hash of each 3-byte sequence, matches up to 8191 bytes back.
    uint256 internal constant FLZ_HASH_ENTRIES = 8192;
    uint256 internal constant FLZ_MAX_DISTANCE = 8192;
    /// Matches are searched while at least this many bytes are left.
    uint256 internal constant FLZ_TAIL = 13;

    function isEcotone() external pure returns (bool) {
        return true;
    }

    function isFjord() external pure returns (bool) {
        return true;
    }

    function isIsthmus() external pure returns (bool) {
        return true;
    }

    function isJovian() external pure returns (bool) {
        return false;
    }

    /// The L2 base fee.
    function gasPrice() external view returns (uint256) {
        return block.basefee;
    }

    /// The L2 base fee.
    function baseFee() external view returns (uint256) {
        return block.basefee;
    }

    function decimals() external pure returns (uint256) {
        return DECIMALS;
    }

    function l1BaseFee() public view returns (uint256) {
        return IL1BlockFeeParameters(L1_BLOCK).basefee();
    }

    function blobBaseFee() public view returns (uint256) {
        return IL1BlockFeeParameters(L1_BLOCK).blobBaseFee();
    }

    function baseFeeScalar() public view returns (uint32) {
        return IL1BlockFeeParameters(L1_BLOCK).baseFeeScalar();
    }

    function blobBaseFeeScalar() public view returns (uint32) {
        return IL1BlockFeeParameters(L1_BLOCK).blobBaseFeeScalar();
    }

    function operatorFeeScalar() public view returns (uint32) {
        return IL1BlockFeeParameters(L1_BLOCK).operatorFeeScalar();
    }

    function operatorFeeConstant() public view returns (uint64) {
        return IL1BlockFeeParameters(L1_BLOCK).operatorFeeConstant();
    }

    /// The L1 data fee of `unsignedTx`, an unsigned, fully RLP-encoded transaction, in wei.
    function getL1Fee(bytes memory unsignedTx) external view returns (uint256) {
        return _l1Cost(_flzCompressedLength(unsignedTx) + SIGNATURE_PADDING);
    }

    /// An upper bound of the L1 data fee of an unsigned transaction of `unsignedTxSize` bytes.
    function getL1FeeUpperBound(uint256 unsignedTxSize) external view returns (uint256) {
        uint256 size = unsignedTxSize + SIGNATURE_PADDING;
        return _l1Cost(size + size / 255 + 16);
    }

    /// The L1 gas the OP Stack counts for `unsignedTx` (16 per byte of its estimated size).
    function getL1GasUsed(bytes memory unsignedTx) external pure returns (uint256) {
        return _estimatedSize(_flzCompressedLength(unsignedTx) + SIGNATURE_PADDING) * 16 / 1e6;
    }

    /// The operator fee of a transaction that used `gasUsed` gas, in wei.
    function getOperatorFee(uint256 gasUsed) external view returns (uint256) {
        uint256 scalar = operatorFeeScalar();
        uint256 scaled = (gasUsed != 0 && scalar > type(uint256).max / gasUsed)
            ? type(uint256).max
            : gasUsed * scalar;
        uint256 fee = scaled / OPERATOR_FEE_SCALE;
        uint256 constantPart = operatorFeeConstant();
        return fee > type(uint256).max - constantPart ? type(uint256).max : fee + constantPart;
    }

    /// The length of `data` compressed with level-1 FastLZ, as the OP Stack counts it.
    function flzCompressedLength(bytes memory data) external pure returns (uint256) {
        return _flzCompressedLength(data);
    }

    /// The fee of a transaction whose compressed length is `flzLength` bytes.
    function _l1Cost(uint256 flzLength) internal view returns (uint256) {
        uint256 perByte = uint256(baseFeeScalar()) * 16 * l1BaseFee() + uint256(blobBaseFeeScalar()) * blobBaseFee();
        return _estimatedSize(flzLength) * perByte / (10 ** (2 * DECIMALS));
    }

    /// Fjord's estimate of the Brotli size of a transaction from its FastLZ length, in millionths
    /// of a byte, never below the minimum size.
    function _estimatedSize(uint256 flzLength) internal pure returns (uint256) {
        int256 estimate = COST_INTERCEPT + int256(COST_FASTLZ_COEF * flzLength);
        int256 floor = int256(MIN_TRANSACTION_SIZE * 1e6);
        return uint256(estimate < floor ? floor : estimate);
    }

    /// Walks `data` as level-1 FastLZ compresses it and answers the length of the output: runs of
    /// literal bytes (a control byte per run of up to 32) and back-references to an earlier
    /// occurrence of at least three equal bytes (two or three bytes each, a longer match taking
    /// several codes).
    function _flzCompressedLength(bytes memory data) internal pure returns (uint256 total) {
        uint256 length = data.length;
        // For each hash of a 3-byte sequence, the last position it was seen at: 32 bits each,
        // eight to a word.
        uint256[] memory lastSeen = new uint256[](FLZ_HASH_ENTRIES / 8);
        uint256 limit = length > FLZ_TAIL ? length - FLZ_TAIL : 0;
        // Where the pending run of literals starts.
        uint256 anchor = 0;
        uint256 position = 2;
        while (position < limit) {
            // Find the next position whose sequence occurred within reach before.
            uint256 earlier;
            while (true) {
                uint256 sequence = _read24(data, position);
                uint256 bucket = _flzHash(sequence);
                earlier = _lastSeenAt(lastSeen, bucket);
                _see(lastSeen, bucket, position);
                if (position >= limit) {
                    break;
                }
                uint256 distance = position - earlier;
                position += 1;
                if (distance < FLZ_MAX_DISTANCE && sequence == _read24(data, earlier)) {
                    break;
                }
            }
            if (position >= limit) {
                break;
            }
            position -= 1;
            total += _literalsLength(position - anchor);
            uint256 matched = _matchLength(data, earlier + 3, position + 3, limit + 9);
            total += _matchCodeLength(matched);
            position += matched;
            _see(lastSeen, _flzHash(_read24(data, position)), position);
            _see(lastSeen, _flzHash(_read24(data, position + 1)), position + 1);
            position += 2;
            anchor = position;
        }
        total += _literalsLength(length - anchor);
    }

    /// The little-endian 24-bit value of `data[index..index + 3]`.
    function _read24(bytes memory data, uint256 index) internal pure returns (uint256) {
        return uint256(uint8(data[index])) | (uint256(uint8(data[index + 1])) << 8) | (uint256(uint8(data[index + 2])) << 16);
    }

    function _flzHash(uint256 sequence) internal pure returns (uint256) {
        return ((sequence * 2654435769) >> 19) & (FLZ_HASH_ENTRIES - 1);
    }

    function _lastSeenAt(uint256[] memory lastSeen, uint256 bucket) internal pure returns (uint256) {
        return (lastSeen[bucket >> 3] >> ((bucket & 7) * 32)) & 0xffffffff;
    }

    function _see(uint256[] memory lastSeen, uint256 bucket, uint256 position) internal pure {
        uint256 shift = (bucket & 7) * 32;
        uint256 word = lastSeen[bucket >> 3] & ~(uint256(0xffffffff) << shift);
        lastSeen[bucket >> 3] = word | (position << shift);
    }

    /// How many bytes from `from` and `to` on are equal, counting the first unequal one, up to
    /// `end - to`.
    function _matchLength(bytes memory data, uint256 from, uint256 to, uint256 end) internal pure returns (uint256 count) {
        uint256 most = end - to;
        while (count < most) {
            bool equal = data[from + count] == data[to + count];
            count += 1;
            if (!equal) {
                break;
            }
        }
    }

    /// The output length of `runs` literal bytes: a control byte per 32 and the bytes themselves.
    function _literalsLength(uint256 runs) internal pure returns (uint256) {
        uint256 remainder = runs % 32;
        return (runs / 32) * 33 + (remainder == 0 ? 0 : remainder + 1);
    }

    /// The output length of a match of `matched` (as `_matchLength` counts): three bytes per full
    /// 262, then two bytes for a short remainder or three for a long one.
    function _matchCodeLength(uint256 matched) internal pure returns (uint256) {
        uint256 rest = matched - 1;
        return (rest / 262) * 3 + (rest % 262 >= 6 ? 3 : 2);
    }
}
