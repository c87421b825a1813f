// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title TestSmartWallet: the smallest ERC-1271 contract wallet, for tests
/// @notice Owned by one EOA. `isValidSignature(hash, signature)` answers the ERC-1271 magic value
/// `0x1626ba7e` when the owner signed `hash` itself (65-byte ECDSA, low `s`, `v` 27 or 28,
/// optionally followed by wallet-specific bytes, as some wallets append), and `0xffffffff`
/// otherwise; it never reverts on a malformed signature. The optional suffix lets tests produce
/// signatures longer than 65 bytes, which take the token's `bytes signature` overload. The owner can make the
/// wallet call anything through `execute`.
/// @dev Real wallets sign a hash wrapped with their own address (so one owner's signature is
/// not valid for all of their wallets); this one signs the bare hash on purpose, so a test signs
/// EIP-712 typed data or an EIP-191 message with the owner key exactly as for an EOA.
contract TestSmartWallet {
    bytes4 internal constant ERC1271_MAGIC_VALUE = 0x1626ba7e;
    bytes4 internal constant ERC1271_INVALID = 0xffffffff;
    uint256 private constant SECP256K1_HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    address public immutable owner;

    constructor(address walletOwner) {
        require(walletOwner != address(0), "TestSmartWallet: owner is the zero address");
        owner = walletOwner;
    }

    receive() external payable {}

    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        return _recover(hash, signature) == owner ? ERC1271_MAGIC_VALUE : ERC1271_INVALID;
    }

    /// Calls `target` as the wallet; only the owner may.
    function execute(address target, uint256 value, bytes calldata data) external returns (bytes memory) {
        require(msg.sender == owner, "TestSmartWallet: caller is not the owner");
        (bool success, bytes memory result) = target.call{value: value}(data);
        if (!success) {
            assembly {
                revert(add(result, 0x20), mload(result))
            }
        }
        return result;
    }

    /// The signer of `hash`, or the zero address when the signature is malformed.
    function _recover(bytes32 hash, bytes calldata signature) internal pure returns (address) {
        if (signature.length < 65) {
            return address(0);
        }
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (uint256(s) > SECP256K1_HALF_ORDER || (v != 27 && v != 28)) {
            return address(0);
        }
        return ecrecover(hash, v, r, s);
    }
}
