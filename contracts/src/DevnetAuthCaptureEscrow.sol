// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

// The Commerce Payments Protocol's escrow as x402's `auth-capture` scheme uses it, written for the
// devnet: `DevnetAuthCaptureEscrow` answers `AuthCaptureEscrow`'s ABI as of commerce-payments
// v1.1 (the same `PaymentInfo` struct, type hash and `getHash`, the same functions, events and
// custom errors; `charge` and `capture` take an absolute `feeAmount`), and the two collectors
// answer `ERC3009PaymentCollector`'s and `OperatorRefundCollector`'s. None of them has an
// immutable or needs its constructor to have run: the devnet places their runtime code at the
// canonical addresses with `anvil_setCode`, then calls `initialize` on each collector to name
// the escrow it serves.

/// The ERC-20 functions the escrow and its collectors call.
interface IEscrowedToken {
    function balanceOf(address account) external view returns (uint256);
    function transfer(address to, uint256 value) external returns (bool);
    function transferFrom(address from, address to, uint256 value) external returns (bool);
}

/// EIP-3009's receive, with the `bytes` signature (EOA, ERC-1271) that the payment collector
/// forwards as the payer sent it.
interface IReceiveWithAuthorization {
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes calldata signature
    ) external;
}

/// Whether a collector pulls a payment from the payer or refund money from someone else. A refund
/// collector cannot fund a payment and a payment collector cannot fund a refund, so what is left
/// of a payer's authorization never pays for a refund.
enum CollectorType {
    Payment,
    Refund
}

/// A token call failed: it reverted (its reason is passed on instead) or answered `false`, or the
/// token has no code. The name and shape of OpenZeppelin's SafeERC20 error.
error SafeERC20FailedOperation(address token);

/// Calls `token` with `data`, accepting an empty answer (tokens that return nothing) and `true`.
function callToken(address token, bytes memory data) {
    (bool success, bytes memory answer) = token.call(data);
    if (!success) {
        assembly ("memory-safe") {
            revert(add(answer, 0x20), mload(answer))
        }
    }
    bool accepted = answer.length == 0 ? token.code.length > 0 : abi.decode(answer, (bool));
    if (!accepted) revert SafeERC20FailedOperation(token);
}

function sendToken(address token, address to, uint256 value) {
    callToken(token, abi.encodeCall(IEscrowedToken.transfer, (to, value)));
}

function pullToken(address token, address from, address to, uint256 value) {
    callToken(token, abi.encodeCall(IEscrowedToken.transferFrom, (from, to, value)));
}

/// @title DevnetAuthCaptureEscrow: authorize, capture, void, reclaim, refund (devnet stand-in)
/// @notice Holds a payer's funds between authorization and capture. The operator named in a
/// payment's `PaymentInfo` drives it; the payer can take back what was never captured once the
/// authorization has expired. Each operator's funds sit in its own token store (a contract this
/// escrow creates with CREATE2 and alone can spend from), and `paymentState` says, per payment,
/// exactly how much is held (capturable) and how much was captured and not refunded
/// (refundable).
contract DevnetAuthCaptureEscrow {
    /// Everything that identifies one payment and bounds what the operator may do with it. The
    /// payer signs (through a collector) over a hash of all of it.
    struct PaymentInfo {
        /// The only account that may authorize, charge, capture, void and refund.
        address operator;
        address payer;
        /// Gets what is captured, less the fee.
        address receiver;
        address token;
        /// The most that may ever be collected from the payer.
        uint120 maxAmount;
        /// Authorize and charge only before this time.
        uint48 preApprovalExpiry;
        /// Capture only before this time; the payer may reclaim from then on.
        uint48 authorizationExpiry;
        /// Refund only before this time.
        uint48 refundExpiry;
        /// The fee bounds, in basis points of each captured (or charged) amount.
        uint16 minFeeBps;
        uint16 maxFeeBps;
        /// Where fees go; the zero address lets the operator name it at each capture.
        address feeReceiver;
        /// Makes otherwise equal payments distinct.
        uint256 salt;
    }

    /// Where one payment stands.
    struct PaymentState {
        /// Set by authorize or charge, never cleared: a payment is collected once.
        bool hasCollectedPayment;
        /// Held in escrow, still capturable (zero once voided or reclaimed).
        uint120 capturableAmount;
        /// Captured and not yet refunded.
        uint120 refundableAmount;
    }

    bytes32 public constant PAYMENT_INFO_TYPEHASH = keccak256(
        "PaymentInfo(address operator,address payer,address receiver,address token,uint120 maxAmount,uint48 preApprovalExpiry,uint48 authorizationExpiry,uint48 refundExpiry,uint16 minFeeBps,uint16 maxFeeBps,address feeReceiver,uint256 salt)"
    );

    /// 100 %.
    uint16 internal constant BPS_DENOMINATOR = 10_000;

    /// Keyed by `getHash(paymentInfo)`.
    mapping(bytes32 paymentInfoHash => PaymentState state) public paymentState;

    /// Set for the length of every state-changing call (Cancun transient storage).
    bool transient entered;

    event PaymentCharged(
        bytes32 indexed paymentInfoHash,
        PaymentInfo paymentInfo,
        uint256 amount,
        address tokenCollector,
        uint256 feeAmount,
        address feeReceiver
    );
    event PaymentAuthorized(
        bytes32 indexed paymentInfoHash, PaymentInfo paymentInfo, uint256 amount, address tokenCollector
    );
    event PaymentCaptured(bytes32 indexed paymentInfoHash, uint256 amount, uint256 feeAmount, address feeReceiver);
    event PaymentVoided(bytes32 indexed paymentInfoHash, uint256 amount);
    event PaymentReclaimed(bytes32 indexed paymentInfoHash, uint256 amount);
    event PaymentRefunded(bytes32 indexed paymentInfoHash, uint256 amount, address tokenCollector);
    event TokenStoreCreated(address indexed operator, address tokenStore);

    error Reentrancy();
    error InvalidSender(address sender, address expected);
    error ZeroAmount();
    error AmountOverflow(uint256 amount, uint256 limit);
    error ExceedsMaxAmount(uint256 amount, uint256 maxAmount);
    error AfterPreApprovalExpiry(uint48 timestamp, uint48 expiry);
    error InvalidExpiries(uint48 preApproval, uint48 authorization, uint48 refund);
    error FeeBpsOverflow(uint16 feeBps);
    error InvalidFeeBpsRange(uint16 minFeeBps, uint16 maxFeeBps);
    error FeeAmountOutOfRange(uint256 feeAmount, uint256 minFee, uint256 maxFee);
    error ZeroFeeReceiver();
    error InvalidFeeReceiver(address attempted, address expected);
    error InvalidCollectorForOperation();
    error TokenCollectionFailed();
    error PaymentAlreadyCollected(bytes32 paymentInfoHash);
    error AfterAuthorizationExpiry(uint48 timestamp, uint48 expiry);
    error InsufficientAuthorization(bytes32 paymentInfoHash, uint256 authorizedAmount, uint256 requestedAmount);
    error ZeroAuthorization(bytes32 paymentInfoHash);
    error BeforeAuthorizationExpiry(uint48 timestamp, uint48 expiry);
    error AfterRefundExpiry(uint48 timestamp, uint48 expiry);
    error RefundExceedsCapture(uint256 refund, uint256 captured);

    modifier nonReentrant() {
        if (entered) revert Reentrancy();
        entered = true;
        _;
        entered = false;
    }

    modifier onlySender(address expected) {
        if (msg.sender != expected) revert InvalidSender(msg.sender, expected);
        _;
    }

    /// Amounts are positive and fit the state's `uint120`.
    modifier validAmount(uint256 amount) {
        if (amount == 0) revert ZeroAmount();
        if (amount > type(uint120).max) revert AmountOverflow(amount, type(uint120).max);
        _;
    }

    // ---------------------------------------------------------------------------------------
    // Collecting: authorize (hold) or charge (collect and pay out at once)

    /// Collects `amount` from the payer through `tokenCollector` and holds it for capture.
    function authorize(
        PaymentInfo calldata paymentInfo,
        uint256 amount,
        address tokenCollector,
        bytes calldata collectorData
    ) external nonReentrant onlySender(paymentInfo.operator) validAmount(amount) {
        _requireValidPayment(paymentInfo, amount);
        bytes32 paymentInfoHash = _requireNotCollected(paymentInfo);
        paymentState[paymentInfoHash] =
            PaymentState({hasCollectedPayment: true, capturableAmount: uint120(amount), refundableAmount: 0});
        emit PaymentAuthorized(paymentInfoHash, paymentInfo, amount, tokenCollector);
        _collect(paymentInfo, amount, tokenCollector, collectorData, CollectorType.Payment);
    }

    /// Collects `amount` from the payer and pays it out at once: `feeAmount` to `feeReceiver`, the
    /// rest to the receiver. All of it is refundable.
    function charge(
        PaymentInfo calldata paymentInfo,
        uint256 amount,
        address tokenCollector,
        bytes calldata collectorData,
        uint256 feeAmount,
        address feeReceiver
    ) external nonReentrant onlySender(paymentInfo.operator) validAmount(amount) {
        _requireValidPayment(paymentInfo, amount);
        _requireValidFee(paymentInfo, amount, feeAmount, feeReceiver);
        bytes32 paymentInfoHash = _requireNotCollected(paymentInfo);
        paymentState[paymentInfoHash] =
            PaymentState({hasCollectedPayment: true, capturableAmount: 0, refundableAmount: uint120(amount)});
        emit PaymentCharged(paymentInfoHash, paymentInfo, amount, tokenCollector, feeAmount, feeReceiver);
        _collect(paymentInfo, amount, tokenCollector, collectorData, CollectorType.Payment);
        _payOut(paymentInfo, amount, feeAmount, feeReceiver);
    }

    // ---------------------------------------------------------------------------------------
    // After an authorization: capture, void, reclaim

    /// Pays out `amount` of what is held, before the authorization expires; may be called again
    /// for the rest. The fee is bounded by the payment's fee rates applied to `amount`.
    function capture(PaymentInfo calldata paymentInfo, uint256 amount, uint256 feeAmount, address feeReceiver)
        external
        nonReentrant
        onlySender(paymentInfo.operator)
        validAmount(amount)
    {
        _requireValidFee(paymentInfo, amount, feeAmount, feeReceiver);
        if (block.timestamp >= paymentInfo.authorizationExpiry) {
            revert AfterAuthorizationExpiry(uint48(block.timestamp), paymentInfo.authorizationExpiry);
        }
        bytes32 paymentInfoHash = getHash(paymentInfo);
        PaymentState memory state = paymentState[paymentInfoHash];
        if (amount > state.capturableAmount) {
            revert InsufficientAuthorization(paymentInfoHash, state.capturableAmount, amount);
        }
        state.capturableAmount -= uint120(amount);
        state.refundableAmount += uint120(amount);
        paymentState[paymentInfoHash] = state;
        emit PaymentCaptured(paymentInfoHash, amount, feeAmount, feeReceiver);
        _payOut(paymentInfo, amount, feeAmount, feeReceiver);
    }

    /// Gives everything still held back to the payer, at any time; the operator's call.
    function void(PaymentInfo calldata paymentInfo) external nonReentrant onlySender(paymentInfo.operator) {
        (bytes32 paymentInfoHash, uint256 held) = _releaseHold(paymentInfo);
        emit PaymentVoided(paymentInfoHash, held);
        _sendFromStore(paymentInfo.operator, paymentInfo.token, paymentInfo.payer, held);
    }

    /// Gives everything still held back to the payer once the authorization has expired; the
    /// payer's call.
    function reclaim(PaymentInfo calldata paymentInfo) external nonReentrant onlySender(paymentInfo.payer) {
        if (block.timestamp < paymentInfo.authorizationExpiry) {
            revert BeforeAuthorizationExpiry(uint48(block.timestamp), paymentInfo.authorizationExpiry);
        }
        (bytes32 paymentInfoHash, uint256 held) = _releaseHold(paymentInfo);
        emit PaymentReclaimed(paymentInfoHash, held);
        _sendFromStore(paymentInfo.operator, paymentInfo.token, paymentInfo.payer, held);
    }

    // ---------------------------------------------------------------------------------------
    // After a capture or charge: refund

    /// Returns up to what was captured (and not yet refunded) to the payer, before the refund
    /// expiry. The money comes through `tokenCollector` (a refund collector), not from what is
    /// still held for capture.
    function refund(
        PaymentInfo calldata paymentInfo,
        uint256 amount,
        address tokenCollector,
        bytes calldata collectorData
    ) external nonReentrant onlySender(paymentInfo.operator) validAmount(amount) {
        if (block.timestamp >= paymentInfo.refundExpiry) {
            revert AfterRefundExpiry(uint48(block.timestamp), paymentInfo.refundExpiry);
        }
        bytes32 paymentInfoHash = getHash(paymentInfo);
        uint120 refundable = paymentState[paymentInfoHash].refundableAmount;
        if (amount > refundable) revert RefundExceedsCapture(amount, refundable);
        paymentState[paymentInfoHash].refundableAmount = refundable - uint120(amount);
        emit PaymentRefunded(paymentInfoHash, amount, tokenCollector);
        _collect(paymentInfo, amount, tokenCollector, collectorData, CollectorType.Refund);
        _sendFromStore(paymentInfo.operator, paymentInfo.token, paymentInfo.payer, amount);
    }

    // ---------------------------------------------------------------------------------------
    // Views

    /// The payment's identity on this chain and escrow: the EIP-712 struct hash of `paymentInfo`
    /// bound to the chain id and this contract's address.
    function getHash(PaymentInfo memory paymentInfo) public view returns (bytes32) {
        bytes32 structHash = keccak256(abi.encode(PAYMENT_INFO_TYPEHASH, paymentInfo));
        return keccak256(abi.encode(block.chainid, address(this), structHash));
    }

    /// Where `operator`'s escrowed funds are kept (whether or not the store exists yet: tokens can
    /// be sent to it before this escrow deploys it on the first payout).
    function getTokenStore(address operator) public view returns (address) {
        bytes32 codeHash = keccak256(type(DevnetTokenStore).creationCode);
        return address(
            uint160(uint256(keccak256(abi.encodePacked(bytes1(0xff), address(this), _storeSalt(operator), codeHash))))
        );
    }

    // ---------------------------------------------------------------------------------------
    // Internals

    /// The checks every collection makes of the payment itself.
    function _requireValidPayment(PaymentInfo calldata paymentInfo, uint256 amount) internal view {
        if (amount > paymentInfo.maxAmount) revert ExceedsMaxAmount(amount, paymentInfo.maxAmount);
        if (block.timestamp >= paymentInfo.preApprovalExpiry) {
            revert AfterPreApprovalExpiry(uint48(block.timestamp), paymentInfo.preApprovalExpiry);
        }
        if (
            paymentInfo.preApprovalExpiry > paymentInfo.authorizationExpiry
                || paymentInfo.authorizationExpiry > paymentInfo.refundExpiry
        ) {
            revert InvalidExpiries(
                paymentInfo.preApprovalExpiry, paymentInfo.authorizationExpiry, paymentInfo.refundExpiry
            );
        }
        if (paymentInfo.maxFeeBps > BPS_DENOMINATOR) revert FeeBpsOverflow(paymentInfo.maxFeeBps);
        if (paymentInfo.minFeeBps > paymentInfo.maxFeeBps) {
            revert InvalidFeeBpsRange(paymentInfo.minFeeBps, paymentInfo.maxFeeBps);
        }
    }

    /// The fee of one payout: within the payment's rates applied to `amount` (each bound rounded
    /// down), to a receiver when positive, and to the payment's fee receiver when it names one
    /// (even for a zero fee).
    function _requireValidFee(PaymentInfo calldata paymentInfo, uint256 amount, uint256 feeAmount, address feeReceiver)
        internal
        pure
    {
        uint256 minFee = amount * paymentInfo.minFeeBps / BPS_DENOMINATOR;
        uint256 maxFee = amount * paymentInfo.maxFeeBps / BPS_DENOMINATOR;
        if (feeAmount < minFee || feeAmount > maxFee) revert FeeAmountOutOfRange(feeAmount, minFee, maxFee);
        if (feeAmount > 0 && feeReceiver == address(0)) revert ZeroFeeReceiver();
        if (paymentInfo.feeReceiver != address(0) && feeReceiver != paymentInfo.feeReceiver) {
            revert InvalidFeeReceiver(feeReceiver, paymentInfo.feeReceiver);
        }
    }

    function _requireNotCollected(PaymentInfo calldata paymentInfo) internal view returns (bytes32 paymentInfoHash) {
        paymentInfoHash = getHash(paymentInfo);
        if (paymentState[paymentInfoHash].hasCollectedPayment) revert PaymentAlreadyCollected(paymentInfoHash);
    }

    /// Zeroes what is held for the payment, answering how much that was (never zero).
    function _releaseHold(PaymentInfo calldata paymentInfo) internal returns (bytes32 paymentInfoHash, uint256 held) {
        paymentInfoHash = getHash(paymentInfo);
        held = paymentState[paymentInfoHash].capturableAmount;
        if (held == 0) revert ZeroAuthorization(paymentInfoHash);
        paymentState[paymentInfoHash].capturableAmount = 0;
    }

    /// Has `tokenCollector` (of the `expected` type) put exactly `amount` into the operator's
    /// token store.
    function _collect(
        PaymentInfo calldata paymentInfo,
        uint256 amount,
        address tokenCollector,
        bytes calldata collectorData,
        CollectorType expected
    ) internal {
        address tokenStore = getTokenStore(paymentInfo.operator);
        uint256 before = IEscrowedToken(paymentInfo.token).balanceOf(tokenStore);
        if (DevnetTokenCollector(tokenCollector).collectorType() != expected) revert InvalidCollectorForOperation();
        DevnetTokenCollector(tokenCollector).collectTokens(paymentInfo, tokenStore, amount, collectorData);
        if (IEscrowedToken(paymentInfo.token).balanceOf(tokenStore) != before + amount) {
            revert TokenCollectionFailed();
        }
    }

    /// Sends a payout from the operator's store: the fee, then the rest to the receiver.
    function _payOut(PaymentInfo calldata paymentInfo, uint256 amount, uint256 feeAmount, address feeReceiver)
        internal
    {
        if (feeAmount > 0) _sendFromStore(paymentInfo.operator, paymentInfo.token, feeReceiver, feeAmount);
        uint256 rest = amount - feeAmount;
        if (rest > 0) _sendFromStore(paymentInfo.operator, paymentInfo.token, paymentInfo.receiver, rest);
    }

    /// Sends from `operator`'s token store, creating the store first if this is its first payout.
    function _sendFromStore(address operator, address token, address recipient, uint256 amount) internal {
        address tokenStore = getTokenStore(operator);
        if (tokenStore.code.length == 0) {
            tokenStore = address(new DevnetTokenStore{salt: _storeSalt(operator)}());
            emit TokenStoreCreated(operator, tokenStore);
        }
        DevnetTokenStore(tokenStore).sendTokens(token, recipient, amount);
    }

    function _storeSalt(address operator) internal pure returns (bytes32) {
        return bytes32(uint256(uint160(operator)));
    }
}

/// @title DevnetTokenStore: one operator's escrowed funds
/// @notice Created by the escrow (CREATE2, salted with the operator's address), which alone may
/// send from it.
contract DevnetTokenStore {
    address public immutable authCaptureEscrow;

    error OnlyAuthCaptureEscrow();

    constructor() {
        authCaptureEscrow = msg.sender;
    }

    function sendTokens(address token, address recipient, uint256 amount) external returns (bool) {
        if (msg.sender != authCaptureEscrow) revert OnlyAuthCaptureEscrow();
        sendToken(token, recipient, amount);
        return true;
    }
}

/// What every collector shares: the escrow it serves (storage, set once, so that a copy placed
/// with `anvil_setCode` is brought to life by `initialize`) and the guard that only that escrow
/// may have it collect.
abstract contract DevnetTokenCollector {
    /// The escrow this collector serves.
    address public authCaptureEscrow;

    error OnlyAuthCaptureEscrow();
    error AlreadyInitialized();
    error ZeroEscrow();

    /// Names the escrow, once. The constructor calls it; call it yourself only on a copy of the
    /// runtime code placed where no constructor ran.
    function initialize(address escrow) public {
        if (authCaptureEscrow != address(0)) revert AlreadyInitialized();
        if (escrow == address(0)) revert ZeroEscrow();
        authCaptureEscrow = escrow;
    }

    function collectorType() external view virtual returns (CollectorType);

    /// Puts `amount` of the payment's token into `tokenStore`; only the escrow may ask.
    function collectTokens(
        DevnetAuthCaptureEscrow.PaymentInfo calldata paymentInfo,
        address tokenStore,
        uint256 amount,
        bytes calldata collectorData
    ) external {
        if (msg.sender != authCaptureEscrow) revert OnlyAuthCaptureEscrow();
        _collectTokens(paymentInfo, tokenStore, amount, collectorData);
    }

    function _collectTokens(
        DevnetAuthCaptureEscrow.PaymentInfo calldata paymentInfo,
        address tokenStore,
        uint256 amount,
        bytes calldata collectorData
    ) internal virtual;

    /// The escrow's hash of `paymentInfo` with the payer zeroed: what the payer's authorization
    /// commits to without knowing who submits it (x402's `signatureNonce`).
    function _payerAgnosticHash(DevnetAuthCaptureEscrow.PaymentInfo calldata paymentInfo)
        internal
        view
        returns (bytes32)
    {
        DevnetAuthCaptureEscrow.PaymentInfo memory withoutPayer = paymentInfo;
        withoutPayer.payer = address(0);
        return DevnetAuthCaptureEscrow(authCaptureEscrow).getHash(withoutPayer);
    }
}

/// @title DevnetErc3009PaymentCollector: payments by EIP-3009 `receiveWithAuthorization`
/// @notice The payer signs a `ReceiveWithAuthorization` to this collector for the payment's
/// `maxAmount`, valid from 0 until its `preApprovalExpiry`, with the payer-agnostic hash of the
/// payment as nonce; `collectorData` is that signature. The collector receives `maxAmount`, gives
/// the payer back what exceeds `amount` and puts `amount` in the operator's token store. An
/// ERC-6492 signature (a wallet not deployed yet) has its preparation call made first, while the
/// payer has no code, and its inner signature forwarded.
contract DevnetErc3009PaymentCollector is DevnetTokenCollector {
    bytes32 internal constant ERC6492_MAGIC_SUFFIX = 0x6492649264926492649264926492649264926492649264926492649264926492;

    constructor(address escrow) {
        initialize(escrow);
    }

    function collectorType() external pure override returns (CollectorType) {
        return CollectorType.Payment;
    }

    function _collectTokens(
        DevnetAuthCaptureEscrow.PaymentInfo calldata paymentInfo,
        address tokenStore,
        uint256 amount,
        bytes calldata collectorData
    ) internal override {
        bytes memory signature = _prepareErc6492(paymentInfo.payer, collectorData);
        IReceiveWithAuthorization(paymentInfo.token).receiveWithAuthorization(
            paymentInfo.payer,
            address(this),
            paymentInfo.maxAmount,
            0,
            paymentInfo.preApprovalExpiry,
            _payerAgnosticHash(paymentInfo),
            signature
        );
        if (paymentInfo.maxAmount > amount) {
            sendToken(paymentInfo.token, paymentInfo.payer, paymentInfo.maxAmount - amount);
        }
        sendToken(paymentInfo.token, tokenStore, amount);
    }

    /// The signature to hand the token: `signature` itself, or an ERC-6492 envelope's inner
    /// signature after its preparation call (whose outcome does not matter: the token's check
    /// decides).
    function _prepareErc6492(address payer, bytes calldata signature) internal returns (bytes memory) {
        uint256 length = signature.length;
        if (length < 32 || bytes32(signature[length - 32:]) != ERC6492_MAGIC_SUFFIX) return signature;
        (address target, bytes memory prepareData, bytes memory inner) =
            abi.decode(signature[:length - 32], (address, bytes, bytes));
        if (payer.code.length == 0) {
            (bool prepared,) = target.call(prepareData);
            prepared;
        }
        return inner;
    }
}

/// @title DevnetOperatorRefundCollector: refunds from the operator's own balance
/// @notice Pulls the refund from the payment's operator with `transferFrom` (the operator
/// approves this collector on the token beforehand) into the operator's token store, from which
/// the escrow pays the payer.
contract DevnetOperatorRefundCollector is DevnetTokenCollector {
    constructor(address escrow) {
        initialize(escrow);
    }

    function collectorType() external pure override returns (CollectorType) {
        return CollectorType.Refund;
    }

    function _collectTokens(
        DevnetAuthCaptureEscrow.PaymentInfo calldata paymentInfo,
        address tokenStore,
        uint256 amount,
        bytes calldata
    ) internal override {
        pullToken(paymentInfo.token, paymentInfo.operator, tokenStore, amount);
    }
}
