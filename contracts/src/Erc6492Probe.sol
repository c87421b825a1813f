// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Erc6492Probe: answers, from a single `eth_call` with no deployment, what would happen
/// if a counterfactual smart wallet were deployed first.
/// @notice Never deployed. The facilitator sends its creation code with constructor arguments as
/// an `eth_call` without a `to`; the constructor runs the wallet's factory call (so the wallet
/// exists within the call), then either checks a signature (`mode = 0`: ERC-1271
/// `isValidSignature(hash, signature)` on `wallet`) or makes a call (`mode = 1`: `target` with
/// `data`, e.g. the token's `transferWithAuthorization`), and returns one byte: 1 for yes,
/// 0 for no, as the "runtime code" of the contract that is never created. This is the technique
/// the ERC-6492 reference validator uses, without needing Multicall3 on the chain.
contract Erc6492Probe {
    bytes4 internal constant ERC1271_MAGIC_VALUE = 0x1626ba7e;

    constructor(
        uint8 mode,
        address factory,
        bytes memory factoryCalldata,
        address wallet,
        bytes32 hash,
        bytes memory signature,
        address target,
        bytes memory data
    ) {
        bool answer = false;
        if (wallet.code.length == 0) {
            (bool deployed,) = factory.call(factoryCalldata);
            if (!deployed || wallet.code.length == 0) {
                _answer(false);
            }
        }
        if (mode == 0) {
            (bool ok, bytes memory result) =
                wallet.staticcall(abi.encodeWithSelector(ERC1271_MAGIC_VALUE, hash, signature));
            answer = ok && result.length >= 32 && abi.decode(result, (bytes4)) == ERC1271_MAGIC_VALUE;
        } else {
            (bool ok,) = target.call(data);
            answer = ok;
        }
        _answer(answer);
    }

    function _answer(bool answer) private pure {
        assembly {
            mstore(0, answer)
            return(31, 1)
        }
    }
}
