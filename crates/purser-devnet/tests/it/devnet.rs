//! The devnet against real anvil processes: chains, the token, EIP-3009 signatures from EOAs and
//! ERC-1271 wallets, the canonical USDC copy, mining control, and the detached lifecycle. The fee
//! mechanics have modules of their own.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::providers::Provider;
use alloy::rpc::types::BlockNumberOrTag;
use alloy::signers::{Signature, SignerSync};
use alloy::sol_types::{SolCall, SolStruct, eip712_domain};
use purser_chain::config::RailConfig;
use purser_devnet::contracts::{
    CancelAuthorization, PurserUSD, ReceiveWithAuthorization, TestSmartWallet,
    TransferWithAuthorization,
};
use purser_devnet::{
    Devnet, DevnetChain, DevnetChainSpec, DevnetManifest, DevnetOptions, FeeKind, Mining,
    TestAccount, TokenInfo,
};

/// The workspace root, where `tests/interop/node_modules` holds anvil after `npm ci`.
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub(crate) fn options(chains: Vec<DevnetChainSpec>) -> DevnetOptions {
    DevnetOptions {
        repo_root: Some(repo_root()),
        ..DevnetOptions::with_chains(chains)
    }
}

pub(crate) async fn one_chain(spec: DevnetChainSpec) -> Devnet {
    Devnet::start(options(vec![spec])).await.unwrap()
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A fresh EIP-3009 nonce (unique within the test run, as random ones are across runs).
pub(crate) fn random_nonce() -> B256 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    keccak256(format!(
        "{nanos}-{}",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

pub(crate) fn authorization(from: Address, to: Address, value: u64) -> TransferWithAuthorization {
    TransferWithAuthorization {
        from,
        to,
        value: U256::from(value),
        validAfter: U256::ZERO,
        validBefore: U256::from(now() + 3600),
        nonce: random_nonce(),
    }
}

/// Signs an EIP-712 struct for `token` on `chain_id` with `signer`'s key.
pub(crate) fn sign<S: SolStruct>(
    signer: &TestAccount,
    token: &TokenInfo,
    chain_id: u64,
    value: &S,
) -> Signature {
    let domain = eip712_domain! {
        name: token.name.clone(),
        version: token.version.clone(),
        chain_id: chain_id,
        verifying_contract: token.address,
    };
    signer
        .signer()
        .sign_hash_sync(&value.eip712_signing_hash(&domain))
        .unwrap()
}

/// `transferWithAuthorization(…, v, r, s)`.
pub(crate) fn transfer_vrs(auth: &TransferWithAuthorization, signature: &Signature) -> Bytes {
    PurserUSD::transferWithAuthorization_0Call {
        from: auth.from,
        to: auth.to,
        value: auth.value,
        validAfter: auth.validAfter,
        validBefore: auth.validBefore,
        nonce: auth.nonce,
        v: 27 + u8::from(signature.v()),
        r: signature.r().into(),
        s: signature.s().into(),
    }
    .abi_encode()
    .into()
}

/// `transferWithAuthorization(…, bytes signature)`.
fn transfer_bytes(auth: &TransferWithAuthorization, signature: Bytes) -> Bytes {
    PurserUSD::transferWithAuthorization_1Call {
        from: auth.from,
        to: auth.to,
        value: auth.value,
        validAfter: auth.validAfter,
        validBefore: auth.validBefore,
        nonce: auth.nonce,
        signature,
    }
    .abi_encode()
    .into()
}

async fn submit(chain: &DevnetChain, token: Address, input: Bytes) -> Result<(), String> {
    let relayer = &chain.accounts().settlement_signer;
    chain
        .send_as(relayer, token, input, "transferWithAuthorization")
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn four_chains_with_their_fees_tokens_and_funded_payers() {
    let started = std::time::Instant::now();
    let devnet = Devnet::start(options(DevnetChainSpec::defaults()))
        .await
        .unwrap();
    eprintln!("four-chain devnet started in {:?}", started.elapsed());

    let ids: Vec<u64> = devnet.chains().iter().map(|c| c.chain_id()).collect();
    assert_eq!(ids, [84532, 421614, 11155420, 11155111]);
    let kinds: Vec<FeeKind> = devnet.chains().iter().map(|c| c.fee_kind()).collect();
    assert_eq!(
        kinds,
        [
            FeeKind::OpStack,
            FeeKind::Arbitrum,
            FeeKind::OpStack,
            FeeKind::Ethereum
        ]
    );
    // Each kind's contracts are in place, and only the L1 stand-in has the price feed.
    for chain in devnet.chains() {
        for address in [
            chain.fee_contracts().l1_block,
            chain.fee_contracts().gas_price_oracle,
            chain.fee_contracts().node_interface,
            chain.fee_contracts().arb_gas_info,
        ]
        .into_iter()
        .flatten()
        {
            assert!(
                !chain
                    .provider()
                    .get_code_at(address)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
        assert_eq!(chain.price_feed().is_some(), chain.chain_id() == 11155111);
    }
    let accounts = devnet.accounts();
    assert_eq!(accounts.payers.len(), 8);
    assert_ne!(accounts.settlement_signer, accounts.deployer);
    assert!(!accounts.payers.contains(&accounts.settlement_signer));

    let mut genesis_fees = Vec::new();
    let mut latest_fees = Vec::new();
    for chain in devnet.chains() {
        assert_eq!(
            chain.provider().get_chain_id().await.unwrap(),
            chain.chain_id()
        );
        assert_eq!(chain.network(), format!("eip155:{}", chain.chain_id()));
        assert!(chain.rpc_url().starts_with("http://127.0.0.1:"));
        let genesis = chain
            .provider()
            .get_block_by_number(BlockNumberOrTag::Number(0))
            .await
            .unwrap()
            .unwrap();
        genesis_fees.push(u128::from(genesis.header.base_fee_per_gas.unwrap()));
        latest_fees.push(chain.latest_base_fee().await.unwrap());

        let token = chain.token();
        assert_eq!(chain.token_info(token.address).await.unwrap(), *token);
        assert_eq!(
            (
                token.name.as_str(),
                token.version.as_str(),
                token.decimals,
                token.symbol.as_str()
            ),
            ("USD Coin", "2", 6, "USDC")
        );
        let canonical = chain.canonical_usdc().expect("placed by default");
        assert_eq!(
            Some(canonical.address),
            chain.spec().canonical_usdc.as_ref().map(|c| c.address)
        );
        assert_eq!(
            chain.token_info(canonical.address).await.unwrap(),
            *canonical
        );

        let each = U256::from(1_000_000u64 * purser_devnet::TOKEN_UNIT);
        for payer in &accounts.payers {
            assert_eq!(chain.balance_of(payer.address()).await.unwrap(), each);
            assert_eq!(
                chain
                    .token_balance(canonical.address, payer.address())
                    .await
                    .unwrap(),
                each
            );
        }
        assert_eq!(
            chain
                .balance_of(accounts.settlement_signer.address())
                .await
                .unwrap(),
            U256::ZERO
        );
        let total: U256 = chain
            .call(token.address, &PurserUSD::totalSupplyCall {})
            .await
            .unwrap();
        assert_eq!(total, each * U256::from(accounts.payers.len()));
    }
    // Each chain starts at its own fee level, and is back at it when set up.
    assert_eq!(
        genesis_fees,
        [10_000_000, 100_000_000, 1_000_000_000, 20_000_000_000]
    );
    assert_eq!(latest_fees, genesis_fees);
    // The canonical names are those the x402 SDK's default assets use.
    let names: Vec<&str> = devnet
        .chains()
        .iter()
        .map(|c| c.canonical_usdc().unwrap().name.as_str())
        .collect();
    assert_eq!(names, ["USDC", "USD Coin", "USDC", "USDC"]);
}

#[tokio::test]
async fn transfer_with_authorization_settles_through_both_overloads_once_per_nonce() {
    let devnet = one_chain(DevnetChainSpec::base_sepolia()).await;
    let chain = &devnet.chains()[0];
    let token = chain.token().clone();
    let payer = &devnet.accounts().payers[0];
    let payee = devnet.accounts().payers[1].address();
    let before = (
        chain.balance_of(payer.address()).await.unwrap(),
        chain.balance_of(payee).await.unwrap(),
    );

    // (v, r, s)
    let first = authorization(payer.address(), payee, 10_000);
    let signature = sign(payer, &token, chain.chain_id(), &first);
    submit(chain, token.address, transfer_vrs(&first, &signature))
        .await
        .unwrap();
    assert!(
        chain
            .authorization_state(token.address, payer.address(), first.nonce)
            .await
            .unwrap()
    );

    // bytes signature
    let second = authorization(payer.address(), payee, 2_500);
    let signature = sign(payer, &token, chain.chain_id(), &second);
    submit(
        chain,
        token.address,
        transfer_bytes(&second, signature.as_bytes().into()),
    )
    .await
    .unwrap();

    assert_eq!(
        chain.balance_of(payer.address()).await.unwrap(),
        before.0 - U256::from(12_500)
    );
    assert_eq!(
        chain.balance_of(payee).await.unwrap(),
        before.1 + U256::from(12_500)
    );

    // A used nonce is refused, through either overload.
    let replay = submit(
        chain,
        token.address,
        transfer_bytes(
            &first,
            sign(payer, &token, chain.chain_id(), &first)
                .as_bytes()
                .into(),
        ),
    )
    .await
    .unwrap_err();
    assert!(
        replay.contains("FiatTokenV2: authorization is used or canceled"),
        "{replay}"
    );
    let replay = submit(
        chain,
        token.address,
        transfer_vrs(&second, &sign(payer, &token, chain.chain_id(), &second)),
    )
    .await
    .unwrap_err();
    assert!(
        replay.contains("FiatTokenV2: authorization is used or canceled"),
        "{replay}"
    );

    // A signature over other terms, from someone else, or for another chain is refused.
    let mut changed = authorization(payer.address(), payee, 1);
    let signature = sign(payer, &token, chain.chain_id(), &changed);
    changed.value = U256::from(2);
    let refused = submit(chain, token.address, transfer_vrs(&changed, &signature))
        .await
        .unwrap_err();
    assert!(
        refused.contains("FiatTokenV2: invalid signature"),
        "{refused}"
    );
    let stranger = authorization(payer.address(), payee, 1);
    let signature = sign(
        &devnet.accounts().payers[2],
        &token,
        chain.chain_id(),
        &stranger,
    );
    let refused = submit(chain, token.address, transfer_vrs(&stranger, &signature))
        .await
        .unwrap_err();
    assert!(
        refused.contains("FiatTokenV2: invalid signature"),
        "{refused}"
    );
    let elsewhere = authorization(payer.address(), payee, 1);
    let signature = sign(payer, &token, 1, &elsewhere);
    let refused = submit(chain, token.address, transfer_vrs(&elsewhere, &signature))
        .await
        .unwrap_err();
    assert!(
        refused.contains("FiatTokenV2: invalid signature"),
        "{refused}"
    );

    // The validity window, and malformed signatures, with FiatToken's reasons.
    let mut expired = authorization(payer.address(), payee, 1);
    expired.validBefore = U256::from(now() - 1);
    let signature = sign(payer, &token, chain.chain_id(), &expired);
    let refused = submit(chain, token.address, transfer_vrs(&expired, &signature))
        .await
        .unwrap_err();
    assert!(
        refused.contains("FiatTokenV2: authorization is expired"),
        "{refused}"
    );
    let mut early = authorization(payer.address(), payee, 1);
    early.validAfter = U256::from(now() + 600);
    let signature = sign(payer, &token, chain.chain_id(), &early);
    let refused = submit(chain, token.address, transfer_vrs(&early, &signature))
        .await
        .unwrap_err();
    assert!(
        refused.contains("FiatTokenV2: authorization is not yet valid"),
        "{refused}"
    );
    let short = authorization(payer.address(), payee, 1);
    let refused = submit(
        chain,
        token.address,
        transfer_bytes(&short, Bytes::from(vec![1u8; 64])),
    )
    .await
    .unwrap_err();
    assert!(
        refused.contains("ECRecover: invalid signature length"),
        "{refused}"
    );
    let too_much = authorization(payer.address(), payee, u64::MAX);
    let signature = sign(payer, &token, chain.chain_id(), &too_much);
    let refused = submit(chain, token.address, transfer_vrs(&too_much, &signature))
        .await
        .unwrap_err();
    assert!(
        refused.contains("ERC20: transfer amount exceeds balance"),
        "{refused}"
    );
}

#[tokio::test]
async fn receive_with_authorization_needs_the_payee_and_canceled_nonces_stay_unusable() {
    let devnet = one_chain(DevnetChainSpec::arbitrum_sepolia()).await;
    let chain = &devnet.chains()[0];
    let token = chain.token().clone();
    let payer = &devnet.accounts().payers[0];
    let payee = &devnet.accounts().payers[1];

    let auth = ReceiveWithAuthorization {
        from: payer.address(),
        to: payee.address(),
        value: U256::from(700),
        validAfter: U256::ZERO,
        validBefore: U256::from(now() + 3600),
        nonce: random_nonce(),
    };
    let signature = sign(payer, &token, chain.chain_id(), &auth);
    let call: Bytes = PurserUSD::receiveWithAuthorization_1Call {
        from: auth.from,
        to: auth.to,
        value: auth.value,
        validAfter: auth.validAfter,
        validBefore: auth.validBefore,
        nonce: auth.nonce,
        signature: signature.as_bytes().into(),
    }
    .abi_encode()
    .into();
    let refused = submit(chain, token.address, call.clone())
        .await
        .unwrap_err();
    assert!(
        refused.contains("FiatTokenV2: caller must be the payee"),
        "{refused}"
    );
    let before = chain.balance_of(payee.address()).await.unwrap();
    chain
        .send_as(payee, token.address, call, "receiveWithAuthorization")
        .await
        .unwrap();
    assert_eq!(
        chain.balance_of(payee.address()).await.unwrap(),
        before + U256::from(700)
    );

    // Cancel an authorization before it is used; then it cannot be.
    let transfer = authorization(payer.address(), payee.address(), 5);
    let cancel = CancelAuthorization {
        authorizer: payer.address(),
        nonce: transfer.nonce,
    };
    let cancel_signature = sign(payer, &token, chain.chain_id(), &cancel);
    let call = PurserUSD::cancelAuthorization_1Call {
        authorizer: cancel.authorizer,
        nonce: cancel.nonce,
        signature: cancel_signature.as_bytes().into(),
    };
    submit(chain, token.address, call.abi_encode().into())
        .await
        .unwrap();
    let signature = sign(payer, &token, chain.chain_id(), &transfer);
    let refused = submit(chain, token.address, transfer_vrs(&transfer, &signature))
        .await
        .unwrap_err();
    assert!(
        refused.contains("FiatTokenV2: authorization is used or canceled"),
        "{refused}"
    );
}

#[tokio::test]
async fn an_erc1271_wallet_pays_with_its_owners_signature() {
    let devnet = one_chain(DevnetChainSpec::optimism_sepolia()).await;
    let chain = &devnet.chains()[0];
    let token = chain.token().clone();
    let owner = &devnet.accounts().payers[3];
    let payee = devnet.accounts().payers[4].address();
    let wallet = chain.deploy_smart_wallet(owner.address()).await.unwrap();
    assert_eq!(
        chain
            .call(wallet, &TestSmartWallet::ownerCall {})
            .await
            .unwrap(),
        owner.address()
    );
    chain
        .mint(token.address, wallet, U256::from(50_000))
        .await
        .unwrap();

    let auth = authorization(wallet, payee, 20_000);
    let signature = sign(owner, &token, chain.chain_id(), &auth);
    // The wallet vouches for its owner's signature of the digest.
    let domain = eip712_domain! {
        name: token.name.clone(),
        version: token.version.clone(),
        chain_id: chain.chain_id(),
        verifying_contract: token.address,
    };
    let magic = chain
        .call(
            wallet,
            &TestSmartWallet::isValidSignatureCall {
                hash: auth.eip712_signing_hash(&domain),
                signature: signature.as_bytes().into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(magic.0, [0x16, 0x26, 0xba, 0x7e]);

    // Someone else's signature for the wallet is refused (the token asks the wallet only).
    let forged = sign(
        &devnet.accounts().payers[5],
        &token,
        chain.chain_id(),
        &auth,
    );
    let refused = submit(
        chain,
        token.address,
        transfer_bytes(&auth, forged.as_bytes().into()),
    )
    .await
    .unwrap_err();
    assert!(
        refused.contains("FiatTokenV2: invalid signature"),
        "{refused}"
    );

    let before = chain.balance_of(payee).await.unwrap();
    submit(
        chain,
        token.address,
        transfer_bytes(&auth, signature.as_bytes().into()),
    )
    .await
    .unwrap();
    assert_eq!(chain.balance_of(wallet).await.unwrap(), U256::from(30_000));
    assert_eq!(
        chain.balance_of(payee).await.unwrap(),
        before + U256::from(20_000)
    );
}

#[tokio::test]
async fn the_canonical_usdc_copy_settles_authorizations_signed_for_its_address() {
    let devnet = one_chain(DevnetChainSpec::base_sepolia()).await;
    let chain = &devnet.chains()[0];
    let canonical = chain.canonical_usdc().unwrap().clone();
    assert_eq!(
        canonical.address,
        "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
            .parse::<Address>()
            .unwrap()
    );
    assert_eq!(
        (canonical.name.as_str(), canonical.version.as_str()),
        ("USDC", "2")
    );
    // Its domain separator is its own (address and name), not the deployed token's.
    let separator = |address| chain.call(address, &PurserUSD::DOMAIN_SEPARATORCall {});
    let expected = eip712_domain! {
        name: "USDC",
        version: "2",
        chain_id: 84532,
        verifying_contract: canonical.address,
    };
    assert_eq!(
        separator(canonical.address).await.unwrap(),
        expected.separator()
    );
    assert_ne!(
        separator(chain.token().address).await.unwrap(),
        expected.separator()
    );
    // It is initialized once: nobody can re-initialize it.
    let again = PurserUSD::initializeCall {
        tokenName: "Evil".to_owned(),
        tokenVersion: "1".to_owned(),
        tokenSymbol: "EVL".to_owned(),
        tokenOwner: Address::repeat_byte(1),
    };
    let refused = submit(chain, canonical.address, again.abi_encode().into())
        .await
        .unwrap_err();
    assert!(
        refused.contains("FiatToken: contract is already initialized"),
        "{refused}"
    );

    let payer = &devnet.accounts().payers[0];
    let payee = devnet.accounts().payers[1].address();
    let before = chain.token_balance(canonical.address, payee).await.unwrap();
    let auth = authorization(payer.address(), payee, 10_000);
    // Signed with the deployed token's domain name at the canonical address: refused.
    let wrong_name = TokenInfo {
        name: chain.token().name.clone(),
        ..canonical.clone()
    };
    let signature = sign(payer, &wrong_name, chain.chain_id(), &auth);
    let refused = submit(chain, canonical.address, transfer_vrs(&auth, &signature))
        .await
        .unwrap_err();
    assert!(
        refused.contains("FiatTokenV2: invalid signature"),
        "{refused}"
    );
    let signature = sign(payer, &canonical, chain.chain_id(), &auth);
    submit(chain, canonical.address, transfer_vrs(&auth, &signature))
        .await
        .unwrap();
    assert_eq!(
        chain.token_balance(canonical.address, payee).await.unwrap(),
        before + U256::from(10_000)
    );
    // The deployed token's balances are separate.
    assert_eq!(
        chain.balance_of(payee).await.unwrap(),
        U256::from(1_000_000u64 * purser_devnet::TOKEN_UNIT)
    );
}

#[tokio::test]
async fn manual_mining_holds_transactions_until_a_block_is_mined() {
    let devnet = Devnet::start(DevnetOptions {
        mining: Mining::Manual,
        canonical_usdc: false,
        ..options(vec![DevnetChainSpec::custom(31337, "local", 1_000_000_000)])
    })
    .await
    .unwrap();
    let chain = &devnet.chains()[0];
    assert!(chain.canonical_usdc().is_none());
    let payer = &devnet.accounts().payers[0];
    let payee = devnet.accounts().payers[1].address();
    let auth = authorization(payer.address(), payee, 1_000);
    let signature = sign(payer, chain.token(), chain.chain_id(), &auth);
    let before = chain.balance_of(payee).await.unwrap();
    let pending = chain
        .wallet_provider(&devnet.accounts().settlement_signer)
        .send_transaction(
            alloy::rpc::types::TransactionRequest::default()
                .to(chain.token().address)
                .input(transfer_vrs(&auth, &signature).into()),
        )
        .await
        .unwrap();
    let hash = *pending.tx_hash();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        chain
            .provider()
            .get_transaction_receipt(hash)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(chain.balance_of(payee).await.unwrap(), before);
    chain.mine().await.unwrap();
    let receipt = chain
        .provider()
        .get_transaction_receipt(hash)
        .await
        .unwrap()
        .expect("mined");
    assert!(receipt.status());
    assert_eq!(
        chain.balance_of(payee).await.unwrap(),
        before + U256::from(1_000)
    );

    // Back to automine: a transaction is mined at once.
    chain.set_automine(true).await.unwrap();
    chain
        .mint(chain.token().address, payee, U256::from(1))
        .await
        .unwrap();
    // And a fee spike can be staged for the next block.
    chain.set_next_block_base_fee(50_000_000_000).await.unwrap();
    chain.mine().await.unwrap();
    assert_eq!(chain.latest_base_fee().await.unwrap(), 50_000_000_000);

    // Several blocks at once, and interval mining.
    let height = || async { chain.provider().get_block_number().await.unwrap() };
    let start = height().await;
    chain.mine_blocks(3).await.unwrap();
    assert_eq!(height().await, start + 3);
    chain.set_interval_mining(1).await.unwrap();
    let waited = std::time::Instant::now();
    while height().await == start + 3 {
        assert!(waited.elapsed() < Duration::from_secs(5), "no block in 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn up_writes_the_folder_and_down_stops_every_process() {
    #[derive(serde::Deserialize)]
    struct RailsFile {
        rails: Vec<RailConfig>,
        router: RouterTable,
    }
    #[derive(serde::Deserialize)]
    struct RouterTable {
        price_feeds: Vec<purser_chain::config::PriceFeedConfig>,
    }

    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path().join("devnet");
    let started = std::time::Instant::now();
    let manifest = purser_devnet::up(&dir, options(DevnetChainSpec::defaults()))
        .await
        .unwrap();
    eprintln!("detached four-chain devnet up in {:?}", started.elapsed());
    let dir = dir.canonicalize().unwrap();
    assert_eq!(DevnetManifest::read(&dir).unwrap(), manifest);
    // Addresses are written in EIP-55 mixed case.
    let json = std::fs::read_to_string(dir.join("devnet.json")).unwrap();
    assert!(json.contains("\"0x036CbD53842c5426634e7929541eC2318f3dCF7e\""));
    assert!(json.contains("\"0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266\""));
    assert_eq!(manifest.chains.len(), 4);
    assert_eq!(manifest.accounts.len(), 8);
    let pids: Vec<u32> = manifest.chains.iter().map(|c| c.pid.unwrap()).collect();
    for (chain, pid) in manifest.chains.iter().zip(&pids) {
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        let log = dir.join(format!("anvil-{}.log", chain.chain_id));
        assert!(
            std::fs::read_to_string(log)
                .unwrap()
                .contains("Listening on")
        );
        let key_file = dir.join(format!("signer-{}.key", chain.chain_id));
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(&key_file).unwrap().trim(),
            manifest.settlement_signer.private_key
        );
        assert!(chain.canonical_usdc.is_some());
    }

    // purser.toml is the rails configuration, as Purser reads it.
    let toml_text = std::fs::read_to_string(dir.join("purser.toml")).unwrap();
    let file = toml::from_str::<RailsFile>(&toml_text).unwrap();
    let rails = file.rails;
    assert_eq!(rails.len(), 4);
    for (rail, chain) in rails.iter().zip(&manifest.chains) {
        assert_eq!(rail.network, chain.network);
        assert_eq!(rail.kind, chain.fees.kind().into());
        assert_eq!(rail.rpc_urls, std::slice::from_ref(&chain.rpc_url));
        assert_eq!(rail.confirmations, 1);
        assert_eq!(
            format!("{:?}", rail.signers),
            format!(
                "[file:{}]",
                dir.join(format!("signer-{}.key", chain.chain_id)).display()
            )
        );
        assert_eq!(rail.assets.len(), 2);
        assert_eq!(rail.assets[0].address, chain.token.address.to_string());
        assert_eq!(rail.assets[0].name, "USD Coin");
        assert_eq!(
            rail.assets[1].address,
            chain.canonical_usdc.as_ref().unwrap().address.to_string()
        );
    }

    // The router prices gas with the L1 stand-in's ETH/USD feed.
    let feed = manifest.chains[3].price_feed.as_ref().unwrap();
    assert_eq!(file.router.price_feeds.len(), 1);
    assert_eq!(
        file.router.price_feeds[0].aggregator,
        Some(feed.address.to_checksum(None))
    );
    assert_eq!(
        file.router.price_feeds[0].network.as_deref(),
        Some("eip155:11155111")
    );

    // The chains answer, with the balances minted.
    purser_chain::rails::ensure_crypto_provider();
    let provider = alloy::providers::ProviderBuilder::new()
        .connect_http(manifest.chains[1].rpc_url.parse().unwrap());
    assert_eq!(provider.get_chain_id().await.unwrap(), 421614);

    // `purser devnet fees` works on it, and a handle attached to a chain owns no process.
    let report = purser_devnet::change_fees(
        &dir,
        "arbitrum-sepolia",
        &purser_devnet::FeeChange {
            levels: purser_devnet::FeeLevels {
                l1_base_fee_wei: Some(2_000_000_000),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(report.levels.l1_base_fee_wei, Some(2_000_000_000));
    let attached = DevnetChain::attach(&manifest, "421614").await.unwrap();
    assert_eq!(Some(attached.pid()), manifest.chains[1].pid);
    assert_eq!(attached.fee_levels().await.unwrap(), report.levels);
    drop(attached);
    assert_eq!(provider.get_chain_id().await.unwrap(), 421614);

    // `up` again answers the running devnet; with other chains it refuses.
    assert_eq!(
        purser_devnet::up(&dir, options(DevnetChainSpec::defaults()))
            .await
            .unwrap(),
        manifest
    );
    let other = purser_devnet::up(&dir, options(vec![DevnetChainSpec::base_sepolia()]))
        .await
        .unwrap_err();
    assert!(other.to_string().contains("down"), "{other}");

    let outcome = purser_devnet::down(&dir).await.unwrap();
    assert_eq!(outcome.terminated + outcome.killed, 4);
    for pid in &pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.contains(") Z "),
            "{pid} still runs: {stat}"
        );
    }
    assert!(!dir.join("devnet.json").exists());
    assert!(!dir.join("purser.toml").exists());
    assert!(!dir.join("signer-84532.key").exists());
    assert!(dir.join("anvil-84532.log").exists());
    // Idempotent, also for a folder that never had a devnet.
    assert_eq!(
        purser_devnet::down(&dir).await.unwrap(),
        purser_devnet::DownOutcome::default()
    );
    assert_eq!(
        purser_devnet::down(&folder.path().join("nothing"))
            .await
            .unwrap(),
        purser_devnet::DownOutcome::default()
    );
}

#[tokio::test]
async fn up_replaces_a_devnet_whose_processes_died() {
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path();
    let chains = vec![DevnetChainSpec::custom(31338, "solo", 1_000_000_000)];
    let first = purser_devnet::up(dir, options(chains.clone()))
        .await
        .unwrap();
    let pid = first.chains[0].pid.unwrap();
    // Stop it behind the devnet's back.
    std::process::Command::new("kill")
        .arg(pid.to_string())
        .status()
        .unwrap();
    while std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !stat.contains(") Z "))
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = purser_devnet::up(dir, options(chains)).await.unwrap();
    assert_ne!(second.chains[0].pid, first.chains[0].pid);
    assert_ne!(second.chains[0].rpc_url, first.chains[0].rpc_url);
    purser_devnet::down(dir).await.unwrap();
}

#[tokio::test]
async fn a_devnet_can_write_the_same_files_for_purser_tests() {
    let devnet = one_chain(DevnetChainSpec::custom(31339, "files", 1_000_000_000)).await;
    let folder = tempfile::tempdir().unwrap();
    let manifest = devnet.write_files(folder.path()).unwrap();
    // No pids: `down` must never touch a test's own processes.
    assert!(manifest.chains.iter().all(|c| c.pid.is_none()));
    assert_eq!(DevnetManifest::read(folder.path()).unwrap(), manifest);
    assert!(folder.path().join("purser.toml").exists());
    purser_devnet::down(folder.path()).await.unwrap();
    // The devnet still runs.
    assert_eq!(
        devnet.chains()[0].provider().get_chain_id().await.unwrap(),
        31339
    );
}
