//! x402 `auth-capture`'s escrow on the devnet (`DevnetAuthCaptureEscrow` and its collectors at
//! the canonical addresses): every rule the scheme relies on, each refused with the escrow's own
//! error and nothing moved, the hashes against an independent computation, and a payment signed
//! by the official client collected by the escrow.

use std::path::PathBuf;

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, B256, Bytes, U256, Uint, keccak256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::{Revert, SolCall, SolError, SolInterface, SolStruct, SolValue};
use purser_chain::auth_capture;
use purser_devnet::contracts::{
    Artefact, AuthCaptureEscrow, PurserUSD, ReceiveWithAuthorization, TokenCollector,
};
use purser_devnet::escrow::receive_authorization;
use purser_devnet::{
    AUTH_CAPTURE_SPEC_VERSION, Devnet, DevnetChain, DevnetChainSpec, EscrowContracts, TestAccount,
};

use crate::devnet::{one_chain, random_nonce, repo_root, sign};

use AuthCaptureEscrow::{AuthCaptureEscrowErrors as Refused, PaymentInfo};

/// A chain with the escrow, and who plays which part: the payer signs, the operator (the
/// facilitator) drives the escrow, the receiver is paid, the fee receiver takes fees.
struct Escrow {
    devnet: Devnet,
    contracts: EscrowContracts,
    payer: TestAccount,
    operator: TestAccount,
    receiver: Address,
    fee_receiver: Address,
}

/// Seconds from the chain's clock to a payment's pre-approval, authorization and refund expiries.
const PRE_APPROVAL_SECONDS: u64 = 600;
const AUTHORIZATION_SECONDS: u64 = 3_600;
const REFUND_SECONDS: u64 = 7_200;

impl Escrow {
    async fn start() -> Escrow {
        Self::start_with(EscrowContracts::sdk_v1_1()).await
    }

    async fn start_with(contracts: EscrowContracts) -> Escrow {
        let devnet = one_chain(DevnetChainSpec::base_sepolia()).await;
        let payers = &devnet.accounts().payers;
        let (payer, operator) = (payers[0].clone(), payers[1].clone());
        let (receiver, fee_receiver) = (payers[2].address(), payers[3].address());
        Escrow {
            devnet,
            contracts,
            payer,
            operator,
            receiver,
            fee_receiver,
        }
    }

    fn chain(&self) -> &DevnetChain {
        &self.devnet.chains()[0]
    }

    fn escrow(&self) -> Address {
        self.contracts.auth_capture_escrow
    }

    fn token(&self) -> Address {
        self.chain().token().address
    }

    /// A payment of at most `max_amount` with no fee, its expiries counted from the chain's
    /// clock and a fresh salt.
    async fn payment(&self, max_amount: u64) -> PaymentInfo {
        let now = self.chain().latest_timestamp().await.unwrap();
        PaymentInfo {
            operator: self.operator.address(),
            payer: self.payer.address(),
            receiver: self.receiver,
            token: self.token(),
            maxAmount: Uint::from(max_amount),
            preApprovalExpiry: Uint::from(now + PRE_APPROVAL_SECONDS),
            authorizationExpiry: Uint::from(now + AUTHORIZATION_SECONDS),
            refundExpiry: Uint::from(now + REFUND_SECONDS),
            minFeeBps: 0,
            maxFeeBps: 0,
            feeReceiver: Address::ZERO,
            salt: U256::from_be_bytes(random_nonce().0),
        }
    }

    /// The payer's signature of the EIP-3009 authorization that lets the payment collector
    /// collect `info`: the collector data of `authorize` and `charge`.
    fn collector_data(&self, info: &PaymentInfo) -> Bytes {
        let authorization = receive_authorization(self.chain().chain_id(), &self.contracts, info);
        let signature = sign(
            &self.payer,
            self.chain().token(),
            self.chain().chain_id(),
            &authorization,
        );
        signature.as_bytes().into()
    }

    fn authorize_call(&self, info: &PaymentInfo, amount: u64) -> AuthCaptureEscrow::authorizeCall {
        AuthCaptureEscrow::authorizeCall {
            paymentInfo: info.clone(),
            amount: U256::from(amount),
            tokenCollector: self.contracts.erc3009_payment_collector,
            collectorData: self.collector_data(info),
        }
    }

    async fn authorize(&self, info: &PaymentInfo, amount: u64) {
        let call = self.authorize_call(info, amount);
        self.escrow_call(&self.operator, &call).await.unwrap();
    }

    fn capture_call(
        &self,
        info: &PaymentInfo,
        amount: u64,
        fee: u64,
        fee_receiver: Address,
    ) -> AuthCaptureEscrow::captureCall {
        AuthCaptureEscrow::captureCall {
            paymentInfo: info.clone(),
            amount: U256::from(amount),
            feeAmount: U256::from(fee),
            feeReceiver: fee_receiver,
        }
    }

    fn refund_call(&self, info: &PaymentInfo, amount: u64) -> AuthCaptureEscrow::refundCall {
        AuthCaptureEscrow::refundCall {
            paymentInfo: info.clone(),
            amount: U256::from(amount),
            tokenCollector: self.contracts.operator_refund_collector,
            collectorData: Bytes::new(),
        }
    }

    /// Calls the escrow as `from`.
    async fn escrow_call<C: SolCall>(&self, from: &TestAccount, call: &C) -> Result<(), Bytes> {
        send(self.chain(), from, self.escrow(), call).await
    }

    /// `(capturable, refundable)`, after checking the payment was collected.
    async fn state(&self, info: &PaymentInfo) -> (u64, u64) {
        let state = self
            .chain()
            .payment_state(self.escrow(), info)
            .await
            .unwrap();
        assert!(state.hasCollectedPayment);
        (
            state.capturableAmount.to::<u64>(),
            state.refundableAmount.to::<u64>(),
        )
    }

    async fn balance(&self, owner: Address) -> u64 {
        self.chain().balance_of(owner).await.unwrap().to::<u64>()
    }

    /// What the operator's token store holds.
    async fn held(&self) -> u64 {
        let store = self
            .chain()
            .call(
                self.escrow(),
                &AuthCaptureEscrow::getTokenStoreCall {
                    operator: self.operator.address(),
                },
            )
            .await
            .unwrap();
        self.balance(store).await
    }

    /// Balances of the payer, receiver, fee receiver and operator, and what the store holds.
    async fn balances(&self) -> [u64; 5] {
        [
            self.balance(self.payer.address()).await,
            self.balance(self.receiver).await,
            self.balance(self.fee_receiver).await,
            self.balance(self.operator.address()).await,
            self.held().await,
        ]
    }

    /// The operator lets the refund collector take up to `amount` of its tokens.
    async fn approve_refunds(&self, amount: u64) {
        let approve = PurserUSD::approveCall {
            spender: self.contracts.operator_refund_collector,
            value: U256::from(amount),
        };
        send(self.chain(), &self.operator, self.token(), &approve)
            .await
            .unwrap();
    }
}

/// Sends `call` to `to` as `from`, first as an `eth_call`: a revert answers its revert data and
/// sends nothing.
async fn send<C: SolCall>(
    chain: &DevnetChain,
    from: &TestAccount,
    to: Address,
    call: &C,
) -> Result<(), Bytes> {
    send_input(chain, from, to, call.abi_encode().into(), C::SIGNATURE).await
}

async fn send_input(
    chain: &DevnetChain,
    from: &TestAccount,
    to: Address,
    input: Bytes,
    what: &str,
) -> Result<(), Bytes> {
    let tx = TransactionRequest::default()
        .with_from(from.address())
        .with_to(to)
        .with_input(input.clone());
    if let Err(e) = chain.provider().call(tx).await {
        return Err(e
            .as_error_resp()
            .and_then(|payload| payload.as_revert_data())
            .unwrap_or_else(|| panic!("{what}: not a revert: {e}")));
    }
    chain.send_as(from, to, input, what).await.unwrap();
    Ok(())
}

/// Revert data that is a custom error without arguments.
fn selector_bytes(selector: [u8; 4]) -> Bytes {
    Bytes::copy_from_slice(&selector)
}

/// The escrow's error in revert data.
fn refused(data: Result<(), Bytes>) -> Refused {
    let data = data.expect_err("the escrow accepted it");
    Refused::abi_decode(&data)
        .unwrap_or_else(|e| panic!("revert data {data} is not an escrow error: {e}"))
}

/// A revert reason string (`Error(string)`) in revert data.
fn reason(data: Result<(), Bytes>) -> String {
    let data = data.expect_err("the escrow accepted it");
    Revert::abi_decode(&data)
        .unwrap_or_else(|e| panic!("revert data {data} is not a reason: {e}"))
        .reason
}

#[tokio::test]
async fn both_v1_1_sets_are_placed_at_their_canonical_addresses() {
    let escrow = Escrow::start().await;
    let chain = escrow.chain();
    assert_eq!(AUTH_CAPTURE_SPEC_VERSION, "1.1");
    assert_eq!(chain.escrow_contracts(), EscrowContracts::all());
    for set in EscrowContracts::all() {
        let code = |address| chain.provider().get_code_at(address);
        assert_eq!(
            code(set.auth_capture_escrow).await.unwrap(),
            Artefact::devnet_auth_capture_escrow().deployed_bytecode
        );
        assert_eq!(
            code(set.erc3009_payment_collector).await.unwrap(),
            Artefact::devnet_erc3009_payment_collector().deployed_bytecode
        );
        assert_eq!(
            code(set.operator_refund_collector).await.unwrap(),
            Artefact::devnet_operator_refund_collector().deployed_bytecode
        );
        for (collector, kind) in [
            (set.erc3009_payment_collector, 0),
            (set.operator_refund_collector, 1),
        ] {
            let served = chain
                .call(collector, &TokenCollector::authCaptureEscrowCall {})
                .await
                .unwrap();
            assert_eq!(served, set.auth_capture_escrow, "{}", set.deployment);
            let collector_type = chain
                .call(collector, &TokenCollector::collectorTypeCall {})
                .await
                .unwrap();
            assert_eq!(collector_type, kind);
            // Its escrow is set once: nobody re-points a placed collector.
            let again = TokenCollector::initializeCall {
                escrow: Address::repeat_byte(1),
            };
            let rejected = send(chain, &escrow.payer, collector, &again)
                .await
                .unwrap_err();
            assert_eq!(
                rejected,
                selector_bytes(TokenCollector::AlreadyInitialized::SELECTOR)
            );
        }
        let typehash = chain
            .call(
                set.auth_capture_escrow,
                &AuthCaptureEscrow::PAYMENT_INFO_TYPEHASHCall {},
            )
            .await
            .unwrap();
        assert_eq!(typehash, PaymentInfo::default().eip712_type_hash());
    }
    // devnet.json records them, checksummed, and a handle attached from it knows them.
    let dir = tempfile::tempdir().unwrap();
    let written = escrow.devnet.write_files(dir.path()).unwrap();
    let attached = DevnetChain::attach(&written, "base-sepolia").await.unwrap();
    assert_eq!(attached.escrow_contracts(), EscrowContracts::all());
    let manifest = serde_json::to_value(escrow.devnet.manifest()).unwrap();
    assert_eq!(
        manifest["chains"][0]["escrowContracts"][0]["authCaptureEscrow"],
        "0xf96815976523E00e65Be8f34cA5e64b4f41EB19c"
    );
    assert_eq!(
        manifest["chains"][0]["escrowContracts"][1]["erc3009PaymentCollector"],
        "0xEA902B37036bcb4944577ec2101ABdEDF56EbD28"
    );
}

#[tokio::test]
async fn get_hash_is_the_eip712_struct_hash_bound_to_chain_and_escrow() {
    let escrow = Escrow::start().await;
    let chain = escrow.chain();
    let mut info = escrow.payment(1_234_567).await;
    info.minFeeBps = 25;
    info.maxFeeBps = 250;
    info.feeReceiver = escrow.fee_receiver;
    // An independent computation: the EIP-712 struct hash from alloy's encoder of the type
    // string, then the escrow's binding, encoded word by word.
    let type_hash = keccak256(
        "PaymentInfo(address operator,address payer,address receiver,address token,uint120 maxAmount,uint48 preApprovalExpiry,uint48 authorizationExpiry,uint48 refundExpiry,uint16 minFeeBps,uint16 maxFeeBps,address feeReceiver,uint256 salt)",
    );
    let struct_hash = keccak256(
        (
            type_hash,
            info.operator,
            info.payer,
            info.receiver,
            info.token,
            U256::from(info.maxAmount),
            U256::from(info.preApprovalExpiry),
            U256::from(info.authorizationExpiry),
            U256::from(info.refundExpiry),
            U256::from(info.minFeeBps),
            U256::from(info.maxFeeBps),
            info.feeReceiver,
            info.salt,
        )
            .abi_encode(),
    );
    assert_eq!(struct_hash, info.eip712_hash_struct());
    for set in EscrowContracts::all() {
        let expected = keccak256(
            (
                U256::from(chain.chain_id()),
                set.auth_capture_escrow,
                struct_hash,
            )
                .abi_encode(),
        );
        let on_chain = chain
            .call(
                set.auth_capture_escrow,
                &AuthCaptureEscrow::getHashCall {
                    paymentInfo: info.clone(),
                },
            )
            .await
            .unwrap();
        assert_eq!(on_chain, expected, "{}", set.deployment);
        assert_eq!(
            auth_capture::payment_hash(chain.chain_id(), set.auth_capture_escrow, &info),
            expected
        );
    }
}

#[tokio::test]
async fn authorize_holds_the_amount_and_two_partial_captures_pay_it_out() {
    let escrow = Escrow::start().await;
    let mut info = escrow.payment(1_000_000).await;
    info.minFeeBps = 100;
    info.maxFeeBps = 100;
    info.feeReceiver = escrow.fee_receiver;
    let before = escrow.balances().await;

    // Authorize 600,000 of at most 1,000,000: the collector takes the signed maximum and gives
    // the payer back the difference.
    escrow.authorize(&info, 600_000).await;
    assert_eq!(escrow.state(&info).await, (600_000, 0));
    let [payer, receiver, fees, operator, held] = escrow.balances().await;
    assert_eq!(payer, before[0] - 600_000);
    assert_eq!(
        (receiver, fees, operator),
        (before[1], before[2], before[3])
    );
    assert_eq!(held, before[4] + 600_000);
    // The authorization's nonce is used: the signature cannot be collected again.
    assert!(
        escrow
            .chain()
            .authorization_state(
                escrow.token(),
                info.payer,
                auth_capture::signature_nonce(escrow.chain().chain_id(), escrow.escrow(), &info)
            )
            .await
            .unwrap()
    );

    // Two partial captures, each with its 1 % fee.
    let first = escrow.capture_call(&info, 200_000, 2_000, escrow.fee_receiver);
    escrow.escrow_call(&escrow.operator, &first).await.unwrap();
    assert_eq!(escrow.state(&info).await, (400_000, 200_000));
    let second = escrow.capture_call(&info, 300_000, 3_000, escrow.fee_receiver);
    escrow.escrow_call(&escrow.operator, &second).await.unwrap();
    assert_eq!(escrow.state(&info).await, (100_000, 500_000));

    let [payer, receiver, fees, operator, held] = escrow.balances().await;
    assert_eq!(payer, before[0] - 600_000);
    assert_eq!(receiver, before[1] + 495_000);
    assert_eq!(fees, before[2] + 5_000);
    assert_eq!(operator, before[3]);
    assert_eq!(
        held,
        before[4] + 100_000,
        "the store holds what is capturable"
    );

    // A payment is collected once.
    let again = escrow.authorize_call(&info, 100_000);
    let hash = auth_capture::payment_hash(escrow.chain().chain_id(), escrow.escrow(), &info);
    assert_eq!(
        refused(escrow.escrow_call(&escrow.operator, &again).await),
        Refused::PaymentAlreadyCollected(AuthCaptureEscrow::PaymentAlreadyCollected {
            paymentInfoHash: hash
        })
    );
}

#[tokio::test]
async fn capture_is_the_operators_up_to_what_is_capturable_and_before_the_expiry() {
    let escrow = Escrow::start().await;
    let info = escrow.payment(500_000).await;
    escrow.authorize(&info, 500_000).await;
    let hash = auth_capture::payment_hash(escrow.chain().chain_id(), escrow.escrow(), &info);

    let too_much = escrow.capture_call(&info, 500_001, 0, Address::ZERO);
    assert_eq!(
        refused(escrow.escrow_call(&escrow.operator, &too_much).await),
        Refused::InsufficientAuthorization(AuthCaptureEscrow::InsufficientAuthorization {
            paymentInfoHash: hash,
            authorizedAmount: U256::from(500_000),
            requestedAmount: U256::from(500_001),
        })
    );
    let part = escrow.capture_call(&info, 300_000, 0, Address::ZERO);
    escrow.escrow_call(&escrow.operator, &part).await.unwrap();
    let rest_and_one = escrow.capture_call(&info, 200_001, 0, Address::ZERO);
    assert!(matches!(
        refused(escrow.escrow_call(&escrow.operator, &rest_and_one).await),
        Refused::InsufficientAuthorization(e) if e.authorizedAmount == U256::from(200_000)
    ));
    let zero = escrow.capture_call(&info, 0, 0, Address::ZERO);
    assert_eq!(
        refused(escrow.escrow_call(&escrow.operator, &zero).await),
        Refused::ZeroAmount(AuthCaptureEscrow::ZeroAmount {})
    );

    // Only the operator captures.
    let by_receiver = escrow.capture_call(&info, 100_000, 0, Address::ZERO);
    let receiver = escrow
        .devnet
        .accounts()
        .payers
        .iter()
        .find(|a| a.address() == escrow.receiver)
        .unwrap();
    assert_eq!(
        refused(escrow.escrow_call(receiver, &by_receiver).await),
        Refused::InvalidSender(AuthCaptureEscrow::InvalidSender {
            sender: escrow.receiver,
            expected: escrow.operator.address(),
        })
    );

    // At the authorization expiry, capture is over.
    escrow
        .chain()
        .increase_time(AUTHORIZATION_SECONDS)
        .await
        .unwrap();
    let late = escrow.capture_call(&info, 100_000, 0, Address::ZERO);
    assert!(matches!(
        refused(escrow.escrow_call(&escrow.operator, &late).await),
        Refused::AfterAuthorizationExpiry(e) if e.expiry == info.authorizationExpiry
    ));
    assert_eq!(escrow.state(&info).await, (200_000, 300_000));
}

#[tokio::test]
async fn void_gives_the_hold_back_to_the_payer_at_the_operators_word() {
    let escrow = Escrow::start().await;
    let info = escrow.payment(400_000).await;
    let before = escrow.balances().await;
    escrow.authorize(&info, 400_000).await;
    let part = escrow.capture_call(&info, 150_000, 0, Address::ZERO);
    escrow.escrow_call(&escrow.operator, &part).await.unwrap();
    let void = AuthCaptureEscrow::voidCall {
        paymentInfo: info.clone(),
    };

    assert_eq!(
        refused(escrow.escrow_call(&escrow.payer, &void).await),
        Refused::InvalidSender(AuthCaptureEscrow::InvalidSender {
            sender: escrow.payer.address(),
            expected: escrow.operator.address(),
        })
    );
    escrow.escrow_call(&escrow.operator, &void).await.unwrap();
    assert_eq!(escrow.state(&info).await, (0, 150_000));
    let [payer, receiver, _, _, held] = escrow.balances().await;
    assert_eq!(
        payer,
        before[0] - 150_000,
        "the uncaptured 250,000 came back"
    );
    assert_eq!(receiver, before[1] + 150_000);
    assert_eq!(held, before[4]);

    let hash = auth_capture::payment_hash(escrow.chain().chain_id(), escrow.escrow(), &info);
    assert_eq!(
        refused(escrow.escrow_call(&escrow.operator, &void).await),
        Refused::ZeroAuthorization(AuthCaptureEscrow::ZeroAuthorization {
            paymentInfoHash: hash
        })
    );
    let after_void = escrow.capture_call(&info, 1, 0, Address::ZERO);
    assert!(matches!(
        refused(escrow.escrow_call(&escrow.operator, &after_void).await),
        Refused::InsufficientAuthorization(_)
    ));
}

#[tokio::test]
async fn reclaim_is_the_payers_once_the_authorization_has_expired() {
    let escrow = Escrow::start().await;
    let info = escrow.payment(300_000).await;
    let before = escrow.balances().await;
    escrow.authorize(&info, 300_000).await;
    let reclaim = AuthCaptureEscrow::reclaimCall {
        paymentInfo: info.clone(),
    };

    assert!(matches!(
        refused(escrow.escrow_call(&escrow.payer, &reclaim).await),
        Refused::BeforeAuthorizationExpiry(e) if e.expiry == info.authorizationExpiry
    ));
    escrow
        .chain()
        .increase_time(AUTHORIZATION_SECONDS)
        .await
        .unwrap();
    assert_eq!(
        refused(escrow.escrow_call(&escrow.operator, &reclaim).await),
        Refused::InvalidSender(AuthCaptureEscrow::InvalidSender {
            sender: escrow.operator.address(),
            expected: escrow.payer.address(),
        })
    );
    escrow.escrow_call(&escrow.payer, &reclaim).await.unwrap();
    assert_eq!(escrow.state(&info).await, (0, 0));
    assert_eq!(
        escrow.balances().await,
        before,
        "everything is back where it was"
    );
    assert!(matches!(
        refused(escrow.escrow_call(&escrow.payer, &reclaim).await),
        Refused::ZeroAuthorization(_)
    ));
}

#[tokio::test]
async fn refund_is_of_what_was_captured_before_the_refund_expiry_from_the_operator() {
    let escrow = Escrow::start().await;
    let info = escrow.payment(800_000).await;
    escrow.authorize(&info, 800_000).await;
    let capture = escrow.capture_call(&info, 500_000, 0, Address::ZERO);
    escrow
        .escrow_call(&escrow.operator, &capture)
        .await
        .unwrap();

    // Without the operator's allowance the refund collector collects nothing.
    let refund = escrow.refund_call(&info, 200_000);
    assert_eq!(
        reason(escrow.escrow_call(&escrow.operator, &refund).await),
        "ERC20: transfer amount exceeds allowance"
    );
    escrow.approve_refunds(1_000_000).await;

    // Refunds come from the refund collector: the payment collector will not do.
    let through_payment_collector = AuthCaptureEscrow::refundCall {
        tokenCollector: escrow.contracts.erc3009_payment_collector,
        ..refund.clone()
    };
    assert_eq!(
        refused(
            escrow
                .escrow_call(&escrow.operator, &through_payment_collector)
                .await
        ),
        Refused::InvalidCollectorForOperation(AuthCaptureEscrow::InvalidCollectorForOperation {})
    );
    // Nor the other way round.
    let other = escrow.payment(10_000).await;
    let pay_through_refund_collector = AuthCaptureEscrow::authorizeCall {
        tokenCollector: escrow.contracts.operator_refund_collector,
        ..escrow.authorize_call(&other, 10_000)
    };
    assert_eq!(
        refused(
            escrow
                .escrow_call(&escrow.operator, &pay_through_refund_collector)
                .await
        ),
        Refused::InvalidCollectorForOperation(AuthCaptureEscrow::InvalidCollectorForOperation {})
    );

    // More than was captured (the 300,000 still held do not count).
    let above = escrow.refund_call(&info, 500_001);
    assert_eq!(
        refused(escrow.escrow_call(&escrow.operator, &above).await),
        Refused::RefundExceedsCapture(AuthCaptureEscrow::RefundExceedsCapture {
            refund: U256::from(500_001),
            captured: U256::from(500_000),
        })
    );
    let before = escrow.balances().await;
    escrow.escrow_call(&escrow.operator, &refund).await.unwrap();
    assert_eq!(escrow.state(&info).await, (300_000, 300_000));
    let [payer, receiver, _, operator, held] = escrow.balances().await;
    assert_eq!(payer, before[0] + 200_000);
    assert_eq!(
        operator,
        before[3] - 200_000,
        "the operator funds the refund"
    );
    assert_eq!((receiver, held), (before[1], before[4]));
    let rest_and_one = escrow.refund_call(&info, 300_001);
    assert!(matches!(
        refused(escrow.escrow_call(&escrow.operator, &rest_and_one).await),
        Refused::RefundExceedsCapture(e) if e.captured == U256::from(300_000)
    ));
    assert!(matches!(
        refused(escrow.escrow_call(&escrow.payer, &refund).await),
        Refused::InvalidSender(_)
    ));

    // At the refund expiry, refunds are over.
    escrow.chain().increase_time(REFUND_SECONDS).await.unwrap();
    let late = escrow.refund_call(&info, 1);
    assert!(matches!(
        refused(escrow.escrow_call(&escrow.operator, &late).await),
        Refused::AfterRefundExpiry(e) if e.expiry == info.refundExpiry
    ));
    assert_eq!(escrow.state(&info).await, (300_000, 300_000));
}

#[tokio::test]
async fn a_payment_must_respect_its_maximum_its_expiry_order_and_its_fee_rates() {
    let escrow = Escrow::start().await;
    let base = escrow.payment(100_000).await;
    let try_authorize = |info: PaymentInfo, amount: u64| {
        let escrow = &escrow;
        let call = escrow.authorize_call(&info, amount);
        async move { refused(escrow.escrow_call(&escrow.operator, &call).await) }
    };

    assert_eq!(
        try_authorize(base.clone(), 100_001).await,
        Refused::ExceedsMaxAmount(AuthCaptureEscrow::ExceedsMaxAmount {
            amount: U256::from(100_001),
            maxAmount: U256::from(100_000),
        })
    );
    assert_eq!(
        try_authorize(base.clone(), 0).await,
        Refused::ZeroAmount(AuthCaptureEscrow::ZeroAmount {})
    );
    // preApprovalExpiry <= authorizationExpiry <= refundExpiry.
    let capture_before_pre_approval = PaymentInfo {
        authorizationExpiry: base.preApprovalExpiry - Uint::from(1u64),
        ..base.clone()
    };
    assert!(matches!(
        try_authorize(capture_before_pre_approval, 1).await,
        Refused::InvalidExpiries(_)
    ));
    let refund_before_capture = PaymentInfo {
        refundExpiry: base.authorizationExpiry - Uint::from(1u64),
        ..base.clone()
    };
    assert_eq!(
        try_authorize(refund_before_capture.clone(), 1).await,
        Refused::InvalidExpiries(AuthCaptureEscrow::InvalidExpiries {
            preApproval: base.preApprovalExpiry,
            authorization: base.authorizationExpiry,
            refund: refund_before_capture.refundExpiry,
        })
    );
    // Fee rates: at most 100 %, and min <= max.
    let over_100_percent = PaymentInfo {
        maxFeeBps: 10_001,
        ..base.clone()
    };
    assert_eq!(
        try_authorize(over_100_percent, 1).await,
        Refused::FeeBpsOverflow(AuthCaptureEscrow::FeeBpsOverflow { feeBps: 10_001 })
    );
    let min_above_max = PaymentInfo {
        minFeeBps: 200,
        maxFeeBps: 100,
        ..base.clone()
    };
    assert_eq!(
        try_authorize(min_above_max, 1).await,
        Refused::InvalidFeeBpsRange(AuthCaptureEscrow::InvalidFeeBpsRange {
            minFeeBps: 200,
            maxFeeBps: 100,
        })
    );
    // Only the operator collects, and only before the pre-approval expiry.
    let by_payer = escrow.authorize_call(&base, 1);
    assert!(matches!(
        refused(escrow.escrow_call(&escrow.payer, &by_payer).await),
        Refused::InvalidSender(_)
    ));
    escrow
        .chain()
        .increase_time(PRE_APPROVAL_SECONDS)
        .await
        .unwrap();
    assert!(matches!(
        try_authorize(base.clone(), 100_000).await,
        Refused::AfterPreApprovalExpiry(e) if e.expiry == base.preApprovalExpiry
    ));
    let state = escrow
        .chain()
        .payment_state(escrow.escrow(), &base)
        .await
        .unwrap();
    assert!(!state.hasCollectedPayment, "nothing was collected");
}

#[tokio::test]
async fn fees_stay_within_the_rates_and_go_where_the_payment_says() {
    let escrow = Escrow::start().await;
    // 1 % to 5 % of each capture; the operator names the fee receiver.
    let mut open = escrow.payment(1_000_000).await;
    open.minFeeBps = 100;
    open.maxFeeBps = 500;
    escrow.authorize(&open, 1_000_000).await;
    let capture = |amount, fee, receiver| escrow.capture_call(&open, amount, fee, receiver);
    let operator = &escrow.operator;

    assert_eq!(
        refused(
            escrow
                .escrow_call(operator, &capture(100_000, 999, escrow.fee_receiver))
                .await
        ),
        Refused::FeeAmountOutOfRange(AuthCaptureEscrow::FeeAmountOutOfRange {
            feeAmount: U256::from(999),
            minFee: U256::from(1_000),
            maxFee: U256::from(5_000),
        })
    );
    assert!(matches!(
        refused(escrow.escrow_call(operator, &capture(100_000, 5_001, escrow.fee_receiver)).await),
        Refused::FeeAmountOutOfRange(e) if e.maxFee == U256::from(5_000)
    ));
    assert_eq!(
        refused(
            escrow
                .escrow_call(operator, &capture(100_000, 1_000, Address::ZERO))
                .await
        ),
        Refused::ZeroFeeReceiver(AuthCaptureEscrow::ZeroFeeReceiver {})
    );
    // Each bound rounds down: 1 % of 99 is 0, 5 % of 99 is 4.
    assert!(matches!(
        refused(escrow.escrow_call(operator, &capture(99, 5, escrow.fee_receiver)).await),
        Refused::FeeAmountOutOfRange(e) if e.minFee == U256::ZERO && e.maxFee == U256::from(4)
    ));
    let before = escrow.balances().await;
    escrow
        .escrow_call(operator, &capture(99, 0, Address::ZERO))
        .await
        .unwrap();
    escrow
        .escrow_call(operator, &capture(100_000, 1_000, escrow.fee_receiver))
        .await
        .unwrap();
    escrow
        .escrow_call(operator, &capture(100_000, 5_000, escrow.receiver))
        .await
        .unwrap();
    let [_, receiver, fees, _, _] = escrow.balances().await;
    assert_eq!(fees, before[2] + 1_000);
    assert_eq!(receiver, before[1] + 99 + 99_000 + 100_000);

    // A payment that names its fee receiver pays fees there only, even a zero fee.
    let mut fixed = escrow.payment(100_000).await;
    fixed.maxFeeBps = 1_000;
    fixed.feeReceiver = escrow.fee_receiver;
    escrow.authorize(&fixed, 100_000).await;
    for (fee, receiver) in [(0, Address::ZERO), (1_000, escrow.receiver)] {
        let call = escrow.capture_call(&fixed, 10_000, fee, receiver);
        assert_eq!(
            refused(escrow.escrow_call(operator, &call).await),
            Refused::InvalidFeeReceiver(AuthCaptureEscrow::InvalidFeeReceiver {
                attempted: receiver,
                expected: escrow.fee_receiver,
            })
        );
    }
    let call = escrow.capture_call(&fixed, 10_000, 1_000, escrow.fee_receiver);
    escrow.escrow_call(operator, &call).await.unwrap();

    // Charge applies the same bounds, then pays out at once; all of it is refundable.
    let mut charged = escrow.payment(50_000).await;
    charged.minFeeBps = 200;
    charged.maxFeeBps = 200;
    let charge = |fee: u64| AuthCaptureEscrow::chargeCall {
        paymentInfo: charged.clone(),
        amount: U256::from(40_000),
        tokenCollector: escrow.contracts.erc3009_payment_collector,
        collectorData: escrow.collector_data(&charged),
        feeAmount: U256::from(fee),
        feeReceiver: escrow.fee_receiver,
    };
    assert!(matches!(
        refused(escrow.escrow_call(operator, &charge(801)).await),
        Refused::FeeAmountOutOfRange(e) if e.minFee == U256::from(800) && e.maxFee == U256::from(800)
    ));
    let before = escrow.balances().await;
    escrow.escrow_call(operator, &charge(800)).await.unwrap();
    assert_eq!(escrow.state(&charged).await, (0, 40_000));
    let [payer, receiver, fees, _, held] = escrow.balances().await;
    assert_eq!(payer, before[0] - 40_000);
    assert_eq!(receiver, before[1] + 39_200);
    assert_eq!(fees, before[2] + 800);
    assert_eq!(held, before[4]);
}

#[tokio::test]
async fn collectors_take_orders_from_their_escrow_and_signatures_bind_it() {
    let escrow = Escrow::start().await;
    let chain = escrow.chain();
    let info = escrow.payment(100_000).await;

    // Straight to the collector, bypassing the escrow.
    let selector = keccak256(
        "collectTokens((address,address,address,address,uint120,uint48,uint48,uint48,uint16,uint16,address,uint256),address,uint256,bytes)",
    );
    let mut direct = selector[..4].to_vec();
    direct.extend(
        (
            info.clone(),
            escrow.operator.address(),
            U256::from(100_000),
            escrow.collector_data(&info),
        )
            .abi_encode_params(),
    );
    let refused_directly = send_input(
        chain,
        &escrow.operator,
        escrow.contracts.erc3009_payment_collector,
        direct.into(),
        "collectTokens",
    )
    .await
    .unwrap_err();
    assert_eq!(
        refused_directly,
        selector_bytes(TokenCollector::OnlyAuthCaptureEscrow::SELECTOR)
    );

    // A signature by someone else is the token's to refuse.
    let other = &escrow.devnet.accounts().payers[4];
    let authorization: ReceiveWithAuthorization =
        receive_authorization(chain.chain_id(), &escrow.contracts, &info);
    let forged = sign(other, chain.token(), chain.chain_id(), &authorization);
    let forged_call = AuthCaptureEscrow::authorizeCall {
        collectorData: forged.as_bytes().into(),
        ..escrow.authorize_call(&info, 100_000)
    };
    assert_eq!(
        reason(escrow.escrow_call(&escrow.operator, &forged_call).await),
        "FiatTokenV2: invalid signature"
    );

    // The nonce binds the escrow: a signature for the other set's escrow does not collect here,
    // and this set's collector serves this set's escrow only.
    let spec = EscrowContracts::spec_v1_1();
    let for_spec = sign(
        &escrow.payer,
        chain.token(),
        chain.chain_id(),
        &receive_authorization(chain.chain_id(), &spec, &info),
    );
    let wrong_escrow = AuthCaptureEscrow::authorizeCall {
        collectorData: for_spec.as_bytes().into(),
        ..escrow.authorize_call(&info, 100_000)
    };
    assert_eq!(
        reason(escrow.escrow_call(&escrow.operator, &wrong_escrow).await),
        "FiatTokenV2: invalid signature"
    );
    let foreign_collector = AuthCaptureEscrow::authorizeCall {
        tokenCollector: spec.erc3009_payment_collector,
        ..escrow.authorize_call(&info, 100_000)
    };
    assert_eq!(
        escrow
            .escrow_call(&escrow.operator, &foreign_collector)
            .await
            .unwrap_err(),
        selector_bytes(TokenCollector::OnlyAuthCaptureEscrow::SELECTOR)
    );
    let state = chain.payment_state(escrow.escrow(), &info).await.unwrap();
    assert!(!state.hasCollectedPayment);
}

#[tokio::test]
async fn the_other_v1_1_set_is_a_deployment_of_its_own() {
    let escrow = Escrow::start_with(EscrowContracts::spec_v1_1()).await;
    let info = escrow.payment(70_000).await;
    let before = escrow.balances().await;
    escrow.authorize(&info, 70_000).await;
    let capture = escrow.capture_call(&info, 70_000, 0, Address::ZERO);
    escrow
        .escrow_call(&escrow.operator, &capture)
        .await
        .unwrap();
    assert_eq!(escrow.state(&info).await, (0, 70_000));
    let [payer, receiver, ..] = escrow.balances().await;
    assert_eq!((payer, receiver), (before[0] - 70_000, before[1] + 70_000));
    // The same payment is unknown to the other escrow.
    let state = escrow
        .chain()
        .payment_state(EscrowContracts::sdk_v1_1().auth_capture_escrow, &info)
        .await
        .unwrap();
    assert!(!state.hasCollectedPayment);
}

/// `tests/interop`, where `npm ci` installed the official SDK.
fn interop_dir() -> PathBuf {
    std::env::var_os("PURSER_INTEROP_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("tests/interop"))
}

/// The official client (`@x402/evm` 2.27.0's `auth-capture` client) signs a payment for
/// requirements naming the devnet's token; Purser's side rebuilds the `PaymentInfo` from the
/// requirements and the payload as the specification says, finds the client's nonce and
/// collector, and the escrow collects and captures it.
#[tokio::test]
async fn a_payment_signed_by_the_official_client_is_authorized_and_captured() {
    let escrow = Escrow::start().await;
    let chain = escrow.chain();
    let now = chain.latest_timestamp().await.unwrap();
    let capture_deadline = now + AUTHORIZATION_SECONDS;
    let refund_deadline = now + REFUND_SECONDS;
    let requirements = serde_json::json!({
        "scheme": "auth-capture",
        "network": chain.network(),
        "amount": "250000",
        "asset": chain.token().address.to_checksum(None),
        "payTo": escrow.receiver.to_checksum(None),
        "maxTimeoutSeconds": 300,
        "extra": {
            "name": chain.token().name,
            "version": chain.token().version,
            "captureAuthorizer": escrow.operator.address().to_checksum(None),
            "operatorType": "delegated",
            "paymentFlow": "escrow",
            "captureDeadline": capture_deadline,
            "refundDeadline": refund_deadline,
            "minFeeBps": 0,
            "maxFeeBps": 100,
            "feeRecipient": escrow.fee_receiver.to_checksum(None),
            "assetTransferMethod": "eip3009",
        },
    });
    let output = tokio::process::Command::new("node")
        .arg("sdk-auth-capture-sign.mjs")
        .current_dir(interop_dir())
        .env("X402_PAYER_KEY", escrow.payer.private_key_hex())
        .env("X402_REQUIREMENTS", requirements.to_string())
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs (the interop tests need Node.js and `npm ci` in tests/interop)");
    assert!(
        output.status.success(),
        "the client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let signed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let payload = &signed["payload"];
    let authorization = &payload["authorization"];
    let text = |value: &serde_json::Value| value.as_str().unwrap().to_owned();
    let number = |value: &serde_json::Value| text(value).parse::<u64>().unwrap();

    // The payment as the specification rebuilds it from the requirements and the payload.
    let info = PaymentInfo {
        operator: escrow.operator.address(),
        payer: text(&authorization["from"]).parse().unwrap(),
        receiver: escrow.receiver,
        token: chain.token().address,
        maxAmount: Uint::from(250_000u64),
        preApprovalExpiry: Uint::from(number(&authorization["validBefore"])),
        authorizationExpiry: Uint::from(capture_deadline),
        refundExpiry: Uint::from(refund_deadline),
        minFeeBps: 0,
        maxFeeBps: 100,
        feeReceiver: escrow.fee_receiver,
        salt: text(&payload["salt"]).parse().unwrap(),
    };
    assert_eq!(info.payer, escrow.payer.address());
    assert_eq!(
        text(&authorization["to"]).parse::<Address>().unwrap(),
        escrow.contracts.erc3009_payment_collector,
        "the client's default collector is the devnet's"
    );
    assert_eq!(number(&authorization["value"]), 250_000);
    assert_eq!(number(&authorization["validAfter"]), 0);
    assert_eq!(
        text(&authorization["nonce"]).parse::<B256>().unwrap(),
        auth_capture::signature_nonce(chain.chain_id(), escrow.escrow(), &info),
        "the client's nonce is the payer-agnostic hash"
    );

    let before = escrow.balances().await;
    let authorize = AuthCaptureEscrow::authorizeCall {
        paymentInfo: info.clone(),
        amount: U256::from(250_000),
        tokenCollector: escrow.contracts.erc3009_payment_collector,
        collectorData: text(&payload["signature"]).parse().unwrap(),
    };
    escrow
        .escrow_call(&escrow.operator, &authorize)
        .await
        .unwrap();
    let capture = escrow.capture_call(&info, 250_000, 2_500, escrow.fee_receiver);
    escrow
        .escrow_call(&escrow.operator, &capture)
        .await
        .unwrap();
    assert_eq!(escrow.state(&info).await, (0, 250_000));
    let [payer, receiver, fees, ..] = escrow.balances().await;
    assert_eq!(payer, before[0] - 250_000);
    assert_eq!(receiver, before[1] + 247_500);
    assert_eq!(fees, before[2] + 2_500);
}

alloy::sol! {
    interface ITestSmartWalletFactory {
        function deploy(address owner, bytes32 salt) external returns (address wallet);
        function predict(address owner, bytes32 salt) external view returns (address);
    }
}

/// A payer whose wallet does not exist yet signs with ERC-6492: the payment collector makes the
/// envelope's preparation call (the factory deploys the wallet), then the token checks the inner
/// signature through ERC-1271.
#[tokio::test]
async fn an_undeployed_wallet_pays_with_an_erc6492_signature() {
    let escrow = Escrow::start().await;
    let chain = escrow.chain();
    let artefact: serde_json::Value = serde_json::from_str(include_str!(
        "../../../../contracts/out/TestSmartWalletFactory.json"
    ))
    .unwrap();
    let creation: Bytes = artefact["bytecode"].as_str().unwrap().parse().unwrap();
    let factory = chain.deploy_contract(creation).await.unwrap();
    let owner = &escrow.devnet.accounts().payers[5];
    let salt = random_nonce();
    let wallet = chain
        .call(
            factory,
            &ITestSmartWalletFactory::predictCall {
                owner: owner.address(),
                salt,
            },
        )
        .await
        .unwrap();
    chain
        .mint(escrow.token(), wallet, U256::from(90_000u64))
        .await
        .unwrap();
    assert!(
        chain
            .provider()
            .get_code_at(wallet)
            .await
            .unwrap()
            .is_empty()
    );

    let mut info = escrow.payment(90_000).await;
    info.payer = wallet;
    // The wallet's owner signs the EIP-712 digest itself (TestSmartWallet checks the bare hash).
    let authorization = receive_authorization(chain.chain_id(), &escrow.contracts, &info);
    let inner = sign(owner, chain.token(), chain.chain_id(), &authorization);
    let deploy = ITestSmartWalletFactory::deployCall {
        owner: owner.address(),
        salt,
    }
    .abi_encode();
    let mut wrapped = (
        factory,
        Bytes::from(deploy),
        Bytes::from(inner.as_bytes().to_vec()),
    )
        .abi_encode_params();
    wrapped.extend_from_slice(&[0x64, 0x92].repeat(16));
    let authorize = AuthCaptureEscrow::authorizeCall {
        paymentInfo: info.clone(),
        amount: U256::from(60_000),
        tokenCollector: escrow.contracts.erc3009_payment_collector,
        collectorData: wrapped.into(),
    };
    escrow
        .escrow_call(&escrow.operator, &authorize)
        .await
        .unwrap();
    assert!(
        !chain
            .provider()
            .get_code_at(wallet)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(escrow.state(&info).await, (60_000, 0));
    assert_eq!(escrow.balance(wallet).await, 30_000, "the excess went back");
}
