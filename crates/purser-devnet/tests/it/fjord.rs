//! The OP Stack stand-ins against real anvil: `DevnetGasPriceOracle` computes the Fjord L1 fee
//! and the Isthmus operator fee from what `DevnetL1Block` holds, equal to a reference written
//! here in Rust; the L1Block slots are where the OP Stack keeps them; and what anvil's own OP mode
//! charges.

use alloy::consensus::{SignableTransaction, TxEip1559};
use alloy::primitives::{Address, Bytes, TxKind, U256, hex};
use alloy::providers::Provider;
use alloy::sol_types::SolCall;
use purser_devnet::contracts::{DevnetGasPriceOracle, DevnetL1Block, PurserUSD};
use purser_devnet::fees::{GAS_PRICE_ORACLE_ADDRESS, L1_BLOCK_ADDRESS, l1_block_slots};
use purser_devnet::{ChainFees, DevnetChain, DevnetChainSpec, FeeLevels, OpStackFees};

use crate::devnet::{authorization, one_chain, sign, transfer_vrs};

/// The fee formulas, written from the OP Stack's specification, for checking the contracts.
pub(crate) mod reference {
    use alloy::primitives::U256;

    /// The length of `input` compressed with level-1 FastLZ (ariya/FastLZ), as op-geth and
    /// Solady count it: a 13-bit hash table of 3-byte sequences, matches at most 8191 bytes
    /// back, searched while more than 13 bytes remain; literal runs cost a control byte per 32,
    /// matches two bytes, three for a length of 7 or more, three per further 262.
    pub fn flz_len(input: &[u8]) -> usize {
        fn hash(sequence: u32) -> usize {
            ((u64::from(sequence) * 2_654_435_769) >> 19) as usize & 0x1fff
        }
        fn literals(runs: usize) -> usize {
            runs / 32 * 33
                + if runs.is_multiple_of(32) {
                    0
                } else {
                    runs % 32 + 1
                }
        }
        let sequence_at = |i: usize| {
            u32::from(input[i]) | u32::from(input[i + 1]) << 8 | u32::from(input[i + 2]) << 16
        };
        let mut last_seen = vec![0usize; 8192];
        let limit = input.len().saturating_sub(13);
        let mut output = 0;
        let mut anchor = 0;
        let mut at = 2;
        'search: while at < limit {
            let earlier = loop {
                let sequence = sequence_at(at);
                let bucket = hash(sequence);
                let earlier = last_seen[bucket];
                last_seen[bucket] = at;
                if at >= limit {
                    break 'search;
                }
                at += 1;
                if at - 1 - earlier < 8192 && sequence_at(earlier) == sequence {
                    break earlier;
                }
            };
            if at >= limit {
                break;
            }
            at -= 1;
            output += literals(at - anchor);
            // Bytes equal after the three that matched, plus the first unequal one.
            let most = limit + 9 - (at + 3);
            let mut length = 0;
            while length < most {
                let equal = input[earlier + 3 + length] == input[at + 3 + length];
                length += 1;
                if !equal {
                    break;
                }
            }
            output += (length - 1) / 262 * 3 + if (length - 1) % 262 >= 6 { 3 } else { 2 };
            at += length;
            last_seen[hash(sequence_at(at))] = at;
            last_seen[hash(sequence_at(at + 1))] = at + 1;
            at += 2;
            anchor = at;
        }
        output + literals(input.len() - anchor)
    }

    /// The L1 fee parameters the formula reads.
    #[derive(Debug, Clone, Copy)]
    pub struct L1Params {
        pub l1_base_fee: u128,
        pub blob_base_fee: u128,
        pub base_fee_scalar: u32,
        pub blob_base_fee_scalar: u32,
    }

    /// Fjord: the estimated Brotli size of a transaction whose FastLZ length is `flz`, in
    /// millionths of a byte, at least 100 bytes.
    pub fn estimated_size(flz: usize) -> U256 {
        let estimate = 836_500i128 * flz as i128 - 42_585_600;
        U256::from(estimate.max(100_000_000) as u128)
    }

    /// Fjord: the L1 fee of a transaction whose FastLZ length is `flz`.
    pub fn l1_fee(flz: usize, p: L1Params) -> U256 {
        let per_byte = U256::from(p.base_fee_scalar) * U256::from(16) * U256::from(p.l1_base_fee)
            + U256::from(p.blob_base_fee_scalar) * U256::from(p.blob_base_fee);
        estimated_size(flz) * per_byte / U256::from(1_000_000_000_000u64)
    }

    /// `getL1Fee` of an unsigned transaction: its FastLZ length plus 68 for the signature.
    pub fn l1_fee_of_unsigned(unsigned: &[u8], p: L1Params) -> U256 {
        l1_fee(flz_len(unsigned) + 68, p)
    }

    /// `getL1FeeUpperBound`: the FastLZ length bounded by `n + n / 255 + 16`, `n` the size with
    /// the signature.
    pub fn l1_fee_upper_bound(unsigned_size: usize, p: L1Params) -> U256 {
        let n = unsigned_size + 68;
        l1_fee(n + n / 255 + 16, p)
    }

    /// Isthmus: `gas × scalar / 10^6 + constant`, saturating.
    pub fn operator_fee(gas_used: U256, scalar: u32, constant: u64) -> U256 {
        gas_used
            .saturating_mul(U256::from(scalar))
            .wrapping_div(U256::from(1_000_000))
            .saturating_add(U256::from(constant))
    }
}

use reference::L1Params;

/// FastLZ lengths that op-alloy's and op-geth's tests check (the last two are a contract call and
/// a Base mainnet transaction).
const FLZ_VECTORS: &[(&str, usize)] = &[
    ("", 0),
    ("facade", 4),
    (
        "02f901550a758302df1483be21b88304743f94f80e51afb613d764fa61751affd3313c190a86bb870151bd62fd12adb8e41ef24f3f000000000000000000000000000000000000000000000000000000000000006e000000000000000000000000af88d065e77c8cc2239327c5edb3a432268e5831000000000000000000000000000000000000000000000000000000000003c1e5000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000a000000000000000000000000000000000000000000000000000000000000000148c89ed219d02f1a5be012c689b4f5b731827bebe000000000000000000000000c001a033fd89cb37c31b2cba46b6466e040c61fc9b2a3675a7f5f493ebd5ad77c497f8a07cdf65680e238392693019b4092f610222e71b7cec06449cb922b93b6a12744e",
        202,
    ),
];

/// Deterministic, incompressible-looking bytes (xorshift).
fn noise(seed: u64, length: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Inputs that take every path of the compressor: short ones, runs, noise, long matches (over
/// 262 bytes), matches farther back than the 8191-byte window, and mixtures.
fn compressor_inputs() -> Vec<Vec<u8>> {
    let mut inputs: Vec<Vec<u8>> = (0..20).map(|n| noise(n as u64, n)).collect();
    inputs.push(vec![0; 1000]);
    inputs.push(vec![42; 1000]);
    inputs.push(noise(7, 700));
    let block = noise(11, 40);
    inputs.push(block.repeat(20));
    let mut far = noise(13, 300);
    far.extend(noise(17, 8_200));
    far.extend_from_within(..300);
    inputs.push(far);
    let mut mixed = Vec::new();
    for i in 0..30u64 {
        mixed.extend(noise(i % 4, (i as usize * 7) % 50 + 3));
        mixed.extend(std::iter::repeat_n(i as u8, (i as usize * 13) % 300));
    }
    inputs.push(mixed);
    // ABI calldata: zero padding and repeated words, as settlements send.
    inputs.push(
        PurserUSD::transferCall {
            to: Address::repeat_byte(0x11),
            value: U256::from(1_000_000u64),
        }
        .abi_encode(),
    );
    inputs
}

#[test]
fn the_reference_compressor_matches_the_published_vectors() {
    for (input, expected) in FLZ_VECTORS {
        assert_eq!(reference::flz_len(&hex::decode(input).unwrap()), *expected);
    }
    assert_eq!(reference::flz_len(&[0; 1000]), 21);
    assert_eq!(reference::flz_len(&[42; 1000]), 21);
    // Incompressible input costs a control byte per 32 bytes on top.
    assert_eq!(reference::flz_len(&noise(3, 64)), 66);
    // Growing input never compresses smaller than a prefix of it with no repeats.
    let mut previous = 0;
    for n in 1..=256 {
        let input: Vec<u8> = (0..n).map(|i| i as u8).collect();
        let length = reference::flz_len(&input);
        assert!(length > previous, "{n}: {length} <= {previous}");
        previous = length;
    }
}

/// An EIP-1559 settlement (`transferWithAuthorization` with a real signature) as the router
/// would quote it: the unsigned transaction, RLP-encoded with its type byte.
fn unsigned_settlement(chain: &DevnetChain) -> Vec<u8> {
    let accounts = chain.accounts();
    let auth = authorization(
        accounts.payers[0].address(),
        accounts.payers[1].address(),
        1_000_000,
    );
    let signature = sign(&accounts.payers[0], chain.token(), chain.chain_id(), &auth);
    let tx = TxEip1559 {
        chain_id: chain.chain_id(),
        nonce: 7,
        gas_limit: 90_000,
        max_fee_per_gas: 20_000_000,
        max_priority_fee_per_gas: 1_000_000,
        to: TxKind::Call(chain.token().address),
        value: U256::ZERO,
        access_list: Default::default(),
        input: transfer_vrs(&auth, &signature),
    };
    tx.encoded_for_signing()
}

fn params_of(fees: &OpStackFees) -> L1Params {
    L1Params {
        l1_base_fee: fees.l1_base_fee_wei,
        blob_base_fee: fees.blob_base_fee_wei,
        base_fee_scalar: fees.base_fee_scalar,
        blob_base_fee_scalar: fees.blob_base_fee_scalar,
    }
}

async fn oracle<C: SolCall>(chain: &DevnetChain, call: C) -> C::Return {
    chain.call(GAS_PRICE_ORACLE_ADDRESS, &call).await.unwrap()
}

#[tokio::test]
async fn the_oracle_charges_the_fjord_formula_on_its_l1_block_parameters() {
    let devnet = one_chain(DevnetChainSpec::base_sepolia()).await;
    let chain = &devnet.chains()[0];
    let ChainFees::OpStack(fees) = &chain.spec().fees else {
        panic!("base is an OP Stack chain")
    };
    let params = params_of(fees);

    // The stand-in compresses as the reference does, including on the published vectors.
    let mut inputs: Vec<Vec<u8>> = FLZ_VECTORS
        .iter()
        .map(|(input, _)| hex::decode(input).unwrap())
        .collect();
    inputs.extend(compressor_inputs());
    let lengths = futures::future::try_join_all(inputs.iter().map(|input| async move {
        let call = DevnetGasPriceOracle::flzCompressedLengthCall {
            data: input.clone().into(),
        };
        chain.call(GAS_PRICE_ORACLE_ADDRESS, &call).await
    }))
    .await
    .unwrap();
    for (input, length) in inputs.iter().zip(&lengths) {
        assert_eq!(
            *length,
            U256::from(reference::flz_len(input)),
            "{} bytes",
            input.len()
        );
    }
    assert_eq!(lengths[2], U256::from(202));

    // A settlement's fee, gas and upper bound.
    let unsigned = unsigned_settlement(chain);
    let flz = reference::flz_len(&unsigned);
    assert!(flz < unsigned.len(), "ABI padding compresses");
    let fee = oracle(
        chain,
        DevnetGasPriceOracle::getL1FeeCall {
            unsignedTx: unsigned.clone().into(),
        },
    )
    .await;
    assert_eq!(fee, reference::l1_fee_of_unsigned(&unsigned, params));
    // Above the 100-byte floor, so the regression itself is exercised: by hand,
    // (836,500 × (flz + 68) - 42,585,600) × (2,269 × 16 × 1 gwei + 1,055,762 × 1 wei) / 10^12.
    assert!(reference::estimated_size(flz + 68) > U256::from(100_000_000));
    let by_hand = (U256::from(836_500u64 * (flz as u64 + 68) - 42_585_600)
        * U256::from(2_269u64 * 16 * 1_000_000_000 + 1_055_762))
        / U256::from(10u64.pow(12));
    assert_eq!(fee, by_hand);
    let upper = oracle(
        chain,
        DevnetGasPriceOracle::getL1FeeUpperBoundCall {
            unsignedTxSize: U256::from(unsigned.len()),
        },
    )
    .await;
    assert_eq!(upper, reference::l1_fee_upper_bound(unsigned.len(), params));
    assert!(upper >= fee, "{upper} < {fee}");
    let gas_used = oracle(
        chain,
        DevnetGasPriceOracle::getL1GasUsedCall {
            unsignedTx: unsigned.clone().into(),
        },
    )
    .await;
    assert_eq!(
        gas_used,
        reference::estimated_size(flz + 68) * U256::from(16) / U256::from(1_000_000)
    );

    // A transaction too small for the regression pays for the 100-byte minimum.
    let tiny = oracle(
        chain,
        DevnetGasPriceOracle::getL1FeeCall {
            unsignedTx: Bytes::from_static(&[2, 0xc0]),
        },
    )
    .await;
    assert_eq!(tiny, reference::l1_fee(0, params));
    assert_eq!(
        tiny,
        U256::from(100_000_000u64) * U256::from(2_269u64 * 16 * 1_000_000_000 + 1_055_762)
            / U256::from(10u64.pow(12))
    );

    // What the oracle says it is.
    assert!(oracle(chain, DevnetGasPriceOracle::isEcotoneCall {}).await);
    assert!(oracle(chain, DevnetGasPriceOracle::isFjordCall {}).await);
    assert!(oracle(chain, DevnetGasPriceOracle::isIsthmusCall {}).await);
    assert!(!oracle(chain, DevnetGasPriceOracle::isJovianCall {}).await);
    assert_eq!(
        oracle(chain, DevnetGasPriceOracle::decimalsCall {}).await,
        U256::from(6)
    );
    assert_eq!(
        oracle(chain, DevnetGasPriceOracle::baseFeeScalarCall {}).await,
        2_269
    );
    assert_eq!(
        oracle(chain, DevnetGasPriceOracle::l1BaseFeeCall {}).await,
        U256::from(1_000_000_000u64)
    );
    // No operator fee on Base by default.
    assert_eq!(
        oracle(
            chain,
            DevnetGasPriceOracle::getOperatorFeeCall {
                gasUsed: U256::from(80_000)
            }
        )
        .await,
        U256::ZERO
    );
}

#[tokio::test]
async fn writing_the_l1_block_slots_moves_its_getters_and_the_oracle() {
    let devnet = one_chain(DevnetChainSpec::optimism_sepolia()).await;
    let chain = &devnet.chains()[0];
    let slot = |n: u64| U256::from(n);
    let write = |n: u64, value: U256| chain.set_storage_at(L1_BLOCK_ADDRESS, slot(n), value.into());

    // As a tool writes them: whole words, the packed ones built by hand (big-endian bytes
    // 16..20 baseFeeScalar, 20..24 blobBaseFeeScalar, 24..32 sequenceNumber; 20..24
    // operatorFeeScalar, 24..32 operatorFeeConstant), with unrelated bits set around them.
    let mut scalars = [0u8; 32];
    scalars[0] = 0xff;
    scalars[16..20].copy_from_slice(&1_234u32.to_be_bytes());
    scalars[20..24].copy_from_slice(&987_654u32.to_be_bytes());
    scalars[24..32].copy_from_slice(&0xdead_beefu64.to_be_bytes());
    let mut operator = [0u8; 32];
    operator[18..20].copy_from_slice(&400u16.to_be_bytes()); // Jovian's DA footprint scalar
    operator[20..24].copy_from_slice(&1_500_000u32.to_be_bytes());
    operator[24..32].copy_from_slice(&7_000_000_000u64.to_be_bytes());
    write(l1_block_slots::L1_BASE_FEE, U256::from(45_000_000_000u64))
        .await
        .unwrap();
    write(l1_block_slots::FEE_SCALARS, U256::from_be_bytes(scalars))
        .await
        .unwrap();
    write(l1_block_slots::BLOB_BASE_FEE, U256::from(3_000_000u64))
        .await
        .unwrap();
    write(l1_block_slots::OPERATOR_FEE, U256::from_be_bytes(operator))
        .await
        .unwrap();

    // Each getter reads its field out of the packed slots.
    let read = tokio::try_join!(
        chain.call(L1_BLOCK_ADDRESS, &DevnetL1Block::basefeeCall {}),
        chain.call(L1_BLOCK_ADDRESS, &DevnetL1Block::baseFeeScalarCall {}),
        chain.call(L1_BLOCK_ADDRESS, &DevnetL1Block::blobBaseFeeScalarCall {}),
        chain.call(L1_BLOCK_ADDRESS, &DevnetL1Block::sequenceNumberCall {}),
        chain.call(L1_BLOCK_ADDRESS, &DevnetL1Block::blobBaseFeeCall {}),
        chain.call(L1_BLOCK_ADDRESS, &DevnetL1Block::operatorFeeScalarCall {}),
        chain.call(L1_BLOCK_ADDRESS, &DevnetL1Block::operatorFeeConstantCall {}),
    )
    .unwrap();
    assert_eq!(
        read,
        (
            U256::from(45_000_000_000u64),
            1_234,
            987_654,
            0xdead_beef,
            U256::from(3_000_000u64),
            1_500_000,
            7_000_000_000,
        )
    );

    // The oracle follows at once, without a block.
    let params = L1Params {
        l1_base_fee: 45_000_000_000,
        blob_base_fee: 3_000_000,
        base_fee_scalar: 1_234,
        blob_base_fee_scalar: 987_654,
    };
    let unsigned = unsigned_settlement(chain);
    assert_eq!(
        oracle(
            chain,
            DevnetGasPriceOracle::getL1FeeCall {
                unsignedTx: unsigned.clone().into()
            }
        )
        .await,
        reference::l1_fee_of_unsigned(&unsigned, params)
    );
    assert_eq!(
        oracle(chain, DevnetGasPriceOracle::blobBaseFeeScalarCall {}).await,
        987_654
    );
    assert_eq!(
        oracle(chain, DevnetGasPriceOracle::blobBaseFeeCall {}).await,
        U256::from(3_000_000u64)
    );
    for gas in [U256::ZERO, U256::from(1), U256::from(85_123), U256::MAX] {
        assert_eq!(
            oracle(
                chain,
                DevnetGasPriceOracle::getOperatorFeeCall { gasUsed: gas }
            )
            .await,
            reference::operator_fee(gas, 1_500_000, 7_000_000_000),
            "{gas}"
        );
    }
    // 85,123 × 1.5 + 7 gwei, rounded down; the product saturates rather than wrapping.
    assert_eq!(
        reference::operator_fee(U256::from(85_123), 1_500_000, 7_000_000_000),
        U256::from(127_684u64 + 7_000_000_000)
    );
    assert_eq!(
        reference::operator_fee(U256::MAX, 1_500_000, 7),
        U256::MAX / U256::from(1_000_000) + U256::from(7)
    );

    // set_fees writes the same slots, keeping the packed values it does not change.
    chain
        .set_fees(&FeeLevels {
            base_fee_scalar: Some(2_000),
            operator_fee_constant_wei: Some(5),
            ..FeeLevels::default()
        })
        .await
        .unwrap();
    let scalars = chain
        .storage_at(L1_BLOCK_ADDRESS, slot(l1_block_slots::FEE_SCALARS))
        .await
        .unwrap()
        .to_be_bytes::<32>();
    assert_eq!(scalars[16..20], 2_000u32.to_be_bytes());
    assert_eq!(scalars[20..24], 987_654u32.to_be_bytes());
    assert_eq!(scalars[24..32], 0xdead_beefu64.to_be_bytes());
    assert_eq!(scalars[0], 0xff);
    let operator = chain
        .storage_at(L1_BLOCK_ADDRESS, slot(l1_block_slots::OPERATOR_FEE))
        .await
        .unwrap()
        .to_be_bytes::<32>();
    assert_eq!(operator[18..20], 400u16.to_be_bytes());
    assert_eq!(operator[20..24], 1_500_000u32.to_be_bytes());
    assert_eq!(operator[24..32], 5u64.to_be_bytes());
    let levels = chain.fee_levels().await.unwrap();
    assert_eq!(levels.base_fee_scalar, Some(2_000));
    assert_eq!(levels.blob_base_fee_scalar, Some(987_654));
    assert_eq!(levels.operator_fee_constant_wei, Some(5));
    assert_eq!(levels.l1_base_fee_wei, Some(45_000_000_000));
    assert_eq!(levels.per_tx_overhead_bytes, None);
}

#[tokio::test]
async fn set_fees_moves_every_op_stack_level_and_refuses_others_before_changing_anything() {
    let devnet = one_chain(DevnetChainSpec::base_sepolia()).await;
    let chain = &devnet.chains()[0];
    let before = chain.fee_levels().await.unwrap();
    assert_eq!(
        before.base_fee_wei,
        Some(chain.latest_base_fee().await.unwrap())
    );
    assert_eq!(before.l1_base_fee_wei, Some(1_000_000_000));
    assert_eq!(before.base_fee_scalar, Some(2_269));
    assert_eq!(before.blob_base_fee_scalar, Some(1_055_762));

    // A field of another kind fails, naming it, and changes nothing.
    let error = chain
        .set_fees(&FeeLevels {
            base_fee_wei: Some(1),
            l1_base_fee_wei: Some(2),
            per_tx_overhead_bytes: Some(3),
            ..FeeLevels::default()
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("per_tx_overhead_bytes"), "{error}");
    assert_eq!(chain.fee_levels().await.unwrap(), before);

    let wanted = FeeLevels {
        base_fee_wei: Some(3_000_000_000),
        l1_base_fee_wei: Some(80_000_000_000),
        blob_base_fee_wei: Some(12_345),
        base_fee_scalar: Some(3_000),
        blob_base_fee_scalar: Some(800_000),
        operator_fee_scalar: Some(2_000_000),
        operator_fee_constant_wei: Some(1_000),
        per_tx_overhead_bytes: None,
    };
    chain.set_fees(&wanted).await.unwrap();
    assert_eq!(chain.fee_levels().await.unwrap(), wanted);
    // The base fee is the latest block's, and the next block moves it as EIP-1559 does.
    assert_eq!(chain.latest_base_fee().await.unwrap(), 3_000_000_000);
    chain.mine().await.unwrap();
    assert_eq!(
        chain.latest_base_fee().await.unwrap(),
        3_000_000_000 * 7 / 8
    );
    let unsigned = unsigned_settlement(chain);
    assert_eq!(
        oracle(
            chain,
            DevnetGasPriceOracle::getL1FeeCall {
                unsignedTx: unsigned.clone().into()
            }
        )
        .await,
        reference::l1_fee_of_unsigned(
            &unsigned,
            L1Params {
                l1_base_fee: 80_000_000_000,
                blob_base_fee: 12_345,
                base_fee_scalar: 3_000,
                blob_base_fee_scalar: 800_000,
            }
        )
    );
    assert_eq!(
        oracle(
            chain,
            DevnetGasPriceOracle::getOperatorFeeCall {
                gasUsed: U256::from(70_000)
            }
        )
        .await,
        U256::from(140_000 + 1_000)
    );
}

/// Starts anvil (`extra` arguments added) and answers its process and URL.
async fn raw_anvil(extra: &[&str]) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let anvil = purser_devnet::locate_anvil(Some(&crate::devnet::repo_root()))
        .await
        .unwrap();
    let mut child = tokio::process::Command::new(anvil)
        .args(["--port", "0", "--color", "never"])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(address) = line.trim().strip_prefix("Listening on ") {
            // Keep draining its output so it never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return (child, format!("http://{}", address.trim()));
        }
    }
    panic!("anvil exited before listening");
}

/// What the pinned anvil does in its OP mode (`--network optimism`), which the devnet does not
/// use (ARCHITECTURE.md, purser-devnet): it charges the sender an L1 data fee by the Fjord
/// formula on the *signed* transaction, from the L1Block slots the devnet writes, and the Isthmus
/// operator fee from slot 8, crediting the L1 and operator fee vaults; and its receipts report
/// neither. This test fails when a new anvil changes that.
#[tokio::test]
async fn anvil_in_op_mode_charges_the_l1_fee_of_the_l1_block_slots_but_receipts_omit_it() {
    let (_anvil, url) = raw_anvil(&[
        "--network",
        "optimism",
        "--chain-id",
        "84532",
        "--base-fee",
        "10000000",
    ])
    .await;
    purser_chain::rails::ensure_crypto_provider();
    let provider = alloy::providers::ProviderBuilder::new()
        .connect_http(url.parse().unwrap())
        .erased();
    let accounts = provider.get_accounts().await.unwrap();
    let (from, to) = (accounts[0], accounts[1]);
    let raw = |method: &'static str, params: serde_json::Value| {
        let provider = provider.clone();
        async move {
            provider
                .raw_request::<_, serde_json::Value>(method.into(), params)
                .await
                .unwrap()
        }
    };
    let l1_base_fee = 20_000_000_000u128;
    let mut scalars = [0u8; 32];
    scalars[16..20].copy_from_slice(&2_000u32.to_be_bytes());
    scalars[20..24].copy_from_slice(&1_000_000u32.to_be_bytes());
    let mut operator = [0u8; 32];
    operator[20..24].copy_from_slice(&62_500u32.to_be_bytes());
    operator[24..32].copy_from_slice(&65_535u64.to_be_bytes());
    for (slot, value) in [
        (1u64, U256::from(l1_base_fee)),
        (3, U256::from_be_bytes(scalars)),
        (7, U256::from(1)),
        (8, U256::from_be_bytes(operator)),
    ] {
        raw(
            "anvil_setStorageAt",
            serde_json::json!([
                L1_BLOCK_ADDRESS,
                U256::from(slot),
                alloy::primitives::B256::from(value)
            ]),
        )
        .await;
    }
    let vault_before = provider
        .get_balance(alloy::primitives::address!(
            "0x420000000000000000000000000000000000001A"
        ))
        .await
        .unwrap();
    let balance_before = provider.get_balance(from).await.unwrap();
    // Calldata that compresses poorly, so the estimate is above the 100-byte floor.
    let data = Bytes::from(noise(5, 300));
    let hash: alloy::primitives::B256 = serde_json::from_value(
        raw(
            "eth_sendTransaction",
            serde_json::json!([{ "from": from, "to": to, "value": "0x1", "data": data }]),
        )
        .await,
    )
    .unwrap();
    // Automine mines at once, but a busy machine may answer the receipt a moment later.
    let mut receipt = None;
    for _ in 0..100 {
        receipt = provider.get_transaction_receipt(hash).await.unwrap();
        if receipt.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let receipt = receipt.expect("the transaction is mined within 10 s");
    let receipt_json = raw("eth_getTransactionReceipt", serde_json::json!([hash])).await;
    let signed: Bytes =
        serde_json::from_value(raw("eth_getRawTransactionByHash", serde_json::json!([hash])).await)
            .unwrap();
    let paid = balance_before - provider.get_balance(from).await.unwrap();
    let execution = U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price);
    let l1_fee = reference::l1_fee(
        reference::flz_len(&signed),
        L1Params {
            l1_base_fee,
            blob_base_fee: 1,
            base_fee_scalar: 2_000,
            blob_base_fee_scalar: 1_000_000,
        },
    );
    assert!(reference::estimated_size(reference::flz_len(&signed)) > U256::from(100_000_000));
    let operator_fee = reference::operator_fee(U256::from(receipt.gas_used), 62_500, 65_535);
    assert_eq!(paid, U256::from(1) + execution + l1_fee + operator_fee);
    let vault_after = provider
        .get_balance(alloy::primitives::address!(
            "0x420000000000000000000000000000000000001A"
        ))
        .await
        .unwrap();
    assert_eq!(vault_after - vault_before, l1_fee);
    for field in ["l1Fee", "l1GasUsed", "l1GasPrice", "operatorFeeScalar"] {
        assert!(receipt_json.get(field).is_none(), "{field}: {receipt_json}");
    }
}
