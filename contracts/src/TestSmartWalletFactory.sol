// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {TestSmartWallet} from "./TestSmartWallet.sol";

/// @title TestSmartWalletFactory: deploys TestSmartWallets at addresses known in advance
/// (CREATE2), so tests can pay from a wallet before it exists, with an ERC-6492 signature.
contract TestSmartWalletFactory {
    event WalletDeployed(address indexed wallet, address indexed owner, bytes32 salt);

    /// Deploys the wallet of `owner` and `salt`, or returns it when it already exists.
    function deploy(address owner, bytes32 salt) external returns (address wallet) {
        wallet = predict(owner, salt);
        if (wallet.code.length == 0) {
            wallet = address(new TestSmartWallet{salt: salt}(owner));
            emit WalletDeployed(wallet, owner, salt);
        }
    }

    /// The address `deploy(owner, salt)` deploys to.
    function predict(address owner, bytes32 salt) public view returns (address) {
        bytes32 codeHash = keccak256(abi.encodePacked(type(TestSmartWallet).creationCode, abi.encode(owner)));
        return address(uint160(uint256(keccak256(abi.encodePacked(bytes1(0xff), address(this), salt, codeHash)))));
    }
}
