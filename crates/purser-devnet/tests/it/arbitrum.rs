//! The Arbitrum stand-ins against real anvil: `DevnetNodeInterface` measures a settlement's L2
//! gas and prices its L1 component from the figures it keeps, changing nothing; and
//! `DevnetArbGasInfo` answers the same figures.

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolCall;
use purser_devnet::contracts::{DevnetArbGasInfo, DevnetNodeInterface};
use purser_devnet::fees::{ARB_GAS_INFO_ADDRESS, NODE_INTERFACE_ADDRESS};
use purser_devnet::{DevnetChain, DevnetChainSpec, FeeLevels};

use crate::devnet::{authorization, one_chain, sign, transfer_vrs};

/// `eth_call` of `call` on `to` from `from`, with the node's revert message on failure.
async fn call_from<C: SolCall>(
    chain: &DevnetChain,
    from: Address,
    to: Address,
    call: &C,
) -> Result<C::Return, String> {
    let tx = TransactionRequest::default()
        .with_from(from)
        .with_to(to)
        .with_input(Bytes::from(call.abi_encode()));
    let output = chain.provider().call(tx).await.map_err(|e| e.to_string())?;
    Ok(C::abi_decode_returns(&output).unwrap())
}

/// The L1 component the stand-in charges: 16 units per byte of calldata and overhead at the
/// estimate, in L2 gas, rounded down.
fn l1_gas(calldata: usize, overhead: u64, estimate: u128, base_fee: U256) -> u64 {
    let wei = U256::from(16) * U256::from(calldata as u64 + overhead) * U256::from(estimate);
    (wei / base_fee).to::<u64>()
}

#[tokio::test]
async fn node_interface_estimates_a_settlement_with_its_l1_component_and_changes_nothing() {
    let devnet = one_chain(DevnetChainSpec::arbitrum_sepolia()).await;
    let chain = &devnet.chains()[0];
    let accounts = chain.accounts();
    let (payer, payee, relayer) = (
        &accounts.payers[0],
        &accounts.payers[1],
        &accounts.settlement_signer,
    );
    let token = chain.token().address;
    let auth = authorization(payer.address(), payee.address(), 250_000);
    let signature = sign(payer, chain.token(), chain.chain_id(), &auth);
    let data = transfer_vrs(&auth, &signature);

    let estimate = DevnetNodeInterface::gasEstimateComponentsCall {
        to: token,
        contractCreation: false,
        data: data.clone(),
    };
    let components = call_from(chain, relayer.address(), NODE_INTERFACE_ADDRESS, &estimate)
        .await
        .unwrap();
    assert!(components.baseFee > U256::ZERO);
    assert_eq!(components.l1BaseFeeEstimate, U256::from(100_000_000u64));
    assert_eq!(
        components.gasEstimateForL1,
        l1_gas(data.len(), 140, 100_000_000, components.baseFee)
    );
    assert!(components.gasEstimateForL1 > 0);
    let l1_only = call_from(
        chain,
        relayer.address(),
        NODE_INTERFACE_ADDRESS,
        &DevnetNodeInterface::gasEstimateL1ComponentCall {
            to: token,
            contractCreation: false,
            data: data.clone(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (
            l1_only.gasEstimateForL1,
            l1_only.baseFee,
            l1_only.l1BaseFeeEstimate
        ),
        (
            components.gasEstimateForL1,
            components.baseFee,
            components.l1BaseFeeEstimate
        )
    );

    // Sent as a transaction, the estimate runs the call and undoes it: the authorization stays
    // unused and no token moves.
    chain
        .send_as(
            &accounts.deployer,
            NODE_INTERFACE_ADDRESS,
            estimate.abi_encode().into(),
            "estimate in a transaction",
        )
        .await
        .unwrap();
    assert!(
        !chain
            .authorization_state(token, payer.address(), auth.nonce)
            .await
            .unwrap()
    );
    let payee_before = chain.balance_of(payee.address()).await.unwrap();

    // The real settlement uses what the estimate's L2 part says, within the cost of the call
    // that measured it.
    let receipt = chain
        .send_as(relayer, token, data.clone(), "settle")
        .await
        .unwrap();
    assert_eq!(
        chain.balance_of(payee.address()).await.unwrap() - payee_before,
        U256::from(250_000)
    );
    let l2_estimate = components.gasEstimate - components.gasEstimateForL1;
    eprintln!(
        "settlement: estimated L2 gas {l2_estimate}, used {}",
        receipt.gas_used
    );
    assert!(
        l2_estimate >= receipt.gas_used && l2_estimate - receipt.gas_used <= 50,
        "estimated {l2_estimate}, used {}",
        receipt.gas_used
    );

    // A call that would fail fails the estimate with the target's own reason.
    let reverted = call_from(chain, relayer.address(), NODE_INTERFACE_ADDRESS, &estimate)
        .await
        .unwrap_err();
    assert!(
        reverted.contains("authorization is used or canceled"),
        "{reverted}"
    );
    let creation = call_from(
        chain,
        relayer.address(),
        NODE_INTERFACE_ADDRESS,
        &DevnetNodeInterface::gasEstimateComponentsCall {
            to: Address::ZERO,
            contractCreation: true,
            data,
        },
    )
    .await
    .unwrap_err();
    assert!(creation.contains("contract creation"), "{creation}");
}

#[tokio::test]
async fn arb_gas_info_and_node_interface_answer_the_figures_set_fees_writes() {
    let devnet = one_chain(DevnetChainSpec::arbitrum_sepolia()).await;
    let chain = &devnet.chains()[0];
    let someone = chain.accounts().payers[2].address();
    let prices = call_from(
        chain,
        someone,
        ARB_GAS_INFO_ADDRESS,
        &DevnetArbGasInfo::getPricesInWeiCall {},
    )
    .await
    .unwrap();
    let base_fee = prices.perArbGasTotal;
    assert!(base_fee > U256::ZERO);
    assert_eq!(prices.perL1CalldataByte, U256::from(16 * 100_000_000u64));
    assert_eq!(prices.perL2Tx, U256::from(16 * 140 * 100_000_000u64));
    assert_eq!(prices.perStorageAllocation, base_fee * U256::from(20_000));
    assert_eq!(prices.perArbGasBase, base_fee);
    assert_eq!(prices.perArbGasCongestion, U256::ZERO);
    let in_gas = call_from(
        chain,
        someone,
        ARB_GAS_INFO_ADDRESS,
        &DevnetArbGasInfo::getPricesInArbGasCall {},
    )
    .await
    .unwrap();
    assert_eq!(in_gas._1, prices.perL1CalldataByte / base_fee);

    chain
        .set_fees(&FeeLevels {
            l1_base_fee_wei: Some(5_000_000_000),
            per_tx_overhead_bytes: Some(200),
            base_fee_wei: Some(400_000_000),
            ..FeeLevels::default()
        })
        .await
        .unwrap();
    let levels = chain.fee_levels().await.unwrap();
    assert_eq!(
        levels,
        FeeLevels {
            base_fee_wei: Some(400_000_000),
            l1_base_fee_wei: Some(5_000_000_000),
            per_tx_overhead_bytes: Some(200),
            ..FeeLevels::default()
        }
    );
    assert_eq!(
        call_from(
            chain,
            someone,
            ARB_GAS_INFO_ADDRESS,
            &DevnetArbGasInfo::getL1BaseFeeEstimateCall {}
        )
        .await
        .unwrap(),
        U256::from(5_000_000_000u64)
    );
    let prices = call_from(
        chain,
        someone,
        ARB_GAS_INFO_ADDRESS,
        &DevnetArbGasInfo::getPricesInWeiCall {},
    )
    .await
    .unwrap();
    assert_eq!(prices.perL2Tx, U256::from(16 * 200 * 5_000_000_000u64));
    let data = Bytes::from(vec![1u8; 100]);
    let l1 = call_from(
        chain,
        someone,
        NODE_INTERFACE_ADDRESS,
        &DevnetNodeInterface::gasEstimateL1ComponentCall {
            to: someone,
            contractCreation: false,
            data: data.clone(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        l1.gasEstimateForL1,
        l1_gas(100, 200, 5_000_000_000, l1.baseFee)
    );
    // An EOA runs no code, and 100 non-zero bytes of calldata cost more by EIP-7623's floor
    // (10 per token, 4 tokens a byte) than by the standard 16 per byte: the L2 part is the floor.
    let components = call_from(
        chain,
        someone,
        NODE_INTERFACE_ADDRESS,
        &DevnetNodeInterface::gasEstimateComponentsCall {
            to: someone,
            contractCreation: false,
            data,
        },
    )
    .await
    .unwrap();
    let l2 = components.gasEstimate - components.gasEstimateForL1;
    assert_eq!(l2, 21_000 + 10 * 4 * 100);

    // Fields of other kinds are refused.
    let error = chain
        .set_fees(&FeeLevels {
            blob_base_fee_wei: Some(1),
            ..FeeLevels::default()
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("blob_base_fee_wei"), "{error}");
}
