//! The `auth-capture` scheme's wire shapes on EVM (`specs/schemes/auth-capture/`): what a server
//! writes in `requirements.extra`, the client's collect payload, and the server's lifecycle
//! payloads.
//!
//! - [`AuthCaptureExtra`]: the operator, the deadlines, the fee bounds and recipient, the flow
//!   (`escrow`: the client's payload authorizes a hold; `authorization`: it charges at once),
//!   the capture mode, the operator type and the transfer method.
//! - [`CollectPayload`]: one token authorization (EIP-3009 `ReceiveWithAuthorization` to the
//!   collector, or Permit2), its signature, the payment's `salt`, and `saltNonce` when the salt
//!   is a commitment; on a `charge` the server adds four fields ([`ChargeTerms`]) before
//!   settling.
//! - [`LifecyclePayload`]: `capture`, `void` or `refund` of a held payment, naming the whole
//!   `PaymentInfo` and signed by the receiver's authorizer.
//!
//! Parsing is syntactic and strict, with the scheme's reason on every refusal; what needs the
//! chain or the escrow version (the salt commitment, the fee field of the deployment, the
//! nonce) is checked by the facilitator (`purser_chain::auth_capture` has the derivations).

use purser_core::money::Amount;
use serde_json::Value;

use crate::exact_evm::{Bytes32, Eip3009Authorization, EvmAddress, HexSignature};
use crate::reason::Reason;
use crate::v2::JsonObject;

/// The scheme's name in requirements and payloads.
pub const SCHEME: &str = "auth-capture";

/// The most basis points a fee bound may be: the whole amount.
pub const MAX_FEE_BPS: u16 = 10_000;

/// Why an `auth-capture` field is refused: where, what is wrong, and the reason a facilitator
/// answers with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthCaptureError {
    field: String,
    problem: String,
    reason: Reason,
}

impl AuthCaptureError {
    fn new(reason: Reason, field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
            reason,
        }
    }

    fn format(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::new(Reason::InvalidAuthCaptureEvmPayloadFormat, field, problem)
    }

    fn extra(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::new(Reason::InvalidAuthCaptureEvmExtra, field, problem)
    }

    /// The offending field, as a path (`extra.minFeeBps`, `authorization.nonce`).
    pub fn field(&self) -> &str {
        &self.field
    }

    pub fn problem(&self) -> &str {
        &self.problem
    }

    pub fn reason(&self) -> Reason {
        self.reason
    }
}

impl std::fmt::Display for AuthCaptureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.field, self.problem)
    }
}

impl std::error::Error for AuthCaptureError {}

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident, $reason:ident, default $default:ident, { $($variant:ident = $wire:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        pub enum $name {
            #[default]
            $default,
            $($variant,)*
        }

        impl $name {
            pub const fn as_str(self) -> &'static str {
                match self {
                    Self::$default => wire_enum!(@wire $default),
                    $(Self::$variant => $wire,)*
                }
            }

            fn parse(field: &str, value: Option<&Value>) -> Result<Self, AuthCaptureError> {
                let Some(value) = value else { return Ok(Self::$default) };
                let text = value.as_str().ok_or_else(|| {
                    AuthCaptureError::new(Reason::$reason, field, "must be a string")
                })?;
                [Self::$default $(, Self::$variant)*]
                    .into_iter()
                    .find(|v| v.as_str() == text)
                    .ok_or_else(|| {
                        AuthCaptureError::new(
                            Reason::$reason,
                            field,
                            format!("is not one this scheme defines: {}", crate::error::snippet(text)),
                        )
                    })
            }
        }
    };
    (@wire Escrow) => { "escrow" };
    (@wire Delegated) => { "delegated" };
    (@wire Eip3009) => { "eip3009" };
}

wire_enum!(
    /// Whether the client's payload places a hold (`escrow`) or charges at once
    /// (`authorization`).
    PaymentFlow, InvalidAuthCaptureEvmUnsupportedPaymentFlow, default Escrow, {
        Authorization = "authorization",
    }
);

wire_enum!(
    /// Who the operator (`captureAuthorizer`) is: an address the facilitator submits from, or
    /// a contract with its own lifecycle (`custom`; `policy` is reserved and refused).
    OperatorType, InvalidAuthCaptureEvmUnsupportedOperatorType, default Delegated, {
        Custom = "custom",
    }
);

wire_enum!(
    /// How the client authorizes the token pull.
    AssetTransferMethod, InvalidAuthCaptureEvmUnsupportedAssetTransferMethod, default Eip3009, {
        Permit2 = "permit2",
    }
);

/// When a held payment is finalized: in the paid request (`sync`) or later from stored state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CaptureMode {
    Sync,
    Deferred,
}

impl CaptureMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sync => "sync",
            Self::Deferred => "deferred",
        }
    }
}

/// `requirements.extra` of an `auth-capture` offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthCaptureExtra {
    /// The token's EIP-712 domain.
    pub name: String,
    pub version: String,
    /// The escrow named, when one is (it selects the deployment).
    pub auth_capture_escrow: Option<EvmAddress>,
    /// The operator: `PaymentInfo.operator`.
    pub capture_authorizer: EvmAddress,
    /// The signer of relayed charges and lifecycle operations; `None` when absent or zero.
    pub receiver_authorizer: Option<EvmAddress>,
    /// `None` when absent or zero.
    pub policy: Option<EvmAddress>,
    pub payment_flow: PaymentFlow,
    /// As written; `None` means `sync` on the escrow flow.
    pub capture_mode: Option<CaptureMode>,
    pub operator_type: OperatorType,
    pub asset_transfer_method: AssetTransferMethod,
    /// Unix seconds: `PaymentInfo.authorizationExpiry`.
    pub capture_deadline: u64,
    /// Unix seconds: `PaymentInfo.refundExpiry`.
    pub refund_deadline: u64,
    pub min_fee_bps: u16,
    pub max_fee_bps: u16,
    /// `PaymentInfo.feeReceiver`.
    pub fee_recipient: EvmAddress,
}

fn zero_to_none(address: EvmAddress) -> Option<EvmAddress> {
    (address.to_bytes() != [0u8; 20]).then_some(address)
}

fn object<'a>(value: &'a Value, field: &str) -> Result<&'a JsonObject, AuthCaptureError> {
    value
        .as_object()
        .ok_or_else(|| AuthCaptureError::format(field, "must be an object"))
}

/// A field's text, refusing anything but a string.
fn text<'a>(
    obj: &'a JsonObject,
    key: &str,
    path: impl Fn(&str) -> String,
    error: fn(String, String) -> AuthCaptureError,
) -> Result<Option<&'a str>, AuthCaptureError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(error(path(key), "must be a string".to_owned())),
    }
}

fn extra_error(field: String, problem: String) -> AuthCaptureError {
    AuthCaptureError::extra(field, problem)
}

fn format_error(field: String, problem: String) -> AuthCaptureError {
    AuthCaptureError::format(field, problem)
}

fn extra_path(key: &str) -> String {
    format!("extra.{key}")
}

fn payload_path(key: &str) -> String {
    key.to_owned()
}

/// A whole number written as a JSON number (the scheme writes deadlines and bps so).
fn whole(obj: &JsonObject, key: &str) -> Result<Option<u64>, AuthCaptureError> {
    match obj.get(key) {
        None => Ok(None),
        Some(value) => value
            .as_u64()
            .map(Some)
            .ok_or_else(|| AuthCaptureError::extra(extra_path(key), "must be a whole number")),
    }
}

fn required<T>(value: Option<T>, field: String) -> Result<T, AuthCaptureError> {
    value.ok_or_else(|| AuthCaptureError::extra(field, "is missing"))
}

fn address(
    obj: &JsonObject,
    key: &str,
    path: impl Fn(&str) -> String + Copy,
    error: fn(String, String) -> AuthCaptureError,
) -> Result<Option<EvmAddress>, AuthCaptureError> {
    text(obj, key, path, error)?
        .map(|s| EvmAddress::parse(s).map_err(|p| error(path(key), p)))
        .transpose()
}

impl AuthCaptureExtra {
    /// Parses and checks `requirements.extra`: every required field, the fee bounds (each at
    /// most 10,000, min ≤ max), the deadlines' order, and the flow's own rules (no capture mode
    /// on the `authorization` flow, no `autoCapture`).
    pub fn from_json(extra: &Value) -> Result<Self, AuthCaptureError> {
        let obj = extra
            .as_object()
            .ok_or_else(|| AuthCaptureError::extra("extra", "must be an object"))?;
        if obj
            .get("autoCapture")
            .is_some_and(|v| v != &Value::Bool(false))
        {
            return Err(AuthCaptureError::new(
                Reason::InvalidAuthCaptureEvmUnsupportedPaymentFlow,
                "extra.autoCapture",
                "was removed from the scheme: capture after authorizing under `escrow`",
            ));
        }
        let string = |key: &str| -> Result<String, AuthCaptureError> {
            required(text(obj, key, extra_path, extra_error)?, extra_path(key)).map(str::to_owned)
        };
        let bps = |key: &str| -> Result<u16, AuthCaptureError> {
            let value = required(whole(obj, key)?, extra_path(key))?;
            u16::try_from(value)
                .ok()
                .filter(|bps| *bps <= MAX_FEE_BPS)
                .ok_or_else(|| {
                    AuthCaptureError::extra(extra_path(key), "must be 0 to 10000 basis points")
                })
        };
        let payment_flow = PaymentFlow::parse("extra.paymentFlow", obj.get("paymentFlow"))?;
        let capture_mode = match text(obj, "captureMode", extra_path, extra_error)? {
            None => None,
            Some("sync") => Some(CaptureMode::Sync),
            Some("deferred") => Some(CaptureMode::Deferred),
            Some(other) => {
                return Err(AuthCaptureError::extra(
                    "extra.captureMode",
                    format!(
                        "must be `sync` or `deferred`, not {}",
                        crate::error::snippet(other)
                    ),
                ));
            }
        };
        if payment_flow == PaymentFlow::Authorization && capture_mode.is_some() {
            return Err(AuthCaptureError::extra(
                "extra.captureMode",
                "has no meaning on the `authorization` flow, which holds nothing",
            ));
        }
        let operator_type = match obj.get("operatorType").and_then(Value::as_str) {
            Some("policy") => {
                return Err(AuthCaptureError::new(
                    Reason::InvalidAuthCaptureEvmUnsupportedOperatorType,
                    "extra.operatorType",
                    "`policy` is reserved by the specification and not implemented",
                ));
            }
            _ => OperatorType::parse("extra.operatorType", obj.get("operatorType"))?,
        };
        let parsed = Self {
            name: string("name")?,
            version: string("version")?,
            auth_capture_escrow: address(obj, "authCaptureEscrow", extra_path, extra_error)?,
            capture_authorizer: required(
                address(obj, "captureAuthorizer", extra_path, extra_error)?,
                extra_path("captureAuthorizer"),
            )?,
            receiver_authorizer: address(obj, "receiverAuthorizer", extra_path, extra_error)?
                .and_then(zero_to_none),
            policy: address(obj, "policy", extra_path, extra_error)?.and_then(zero_to_none),
            payment_flow,
            capture_mode,
            operator_type,
            asset_transfer_method: AssetTransferMethod::parse(
                "extra.assetTransferMethod",
                obj.get("assetTransferMethod"),
            )?,
            capture_deadline: required(
                whole(obj, "captureDeadline")?,
                extra_path("captureDeadline"),
            )?,
            refund_deadline: required(whole(obj, "refundDeadline")?, extra_path("refundDeadline"))?,
            min_fee_bps: bps("minFeeBps")?,
            max_fee_bps: bps("maxFeeBps")?,
            fee_recipient: required(
                address(obj, "feeRecipient", extra_path, extra_error)?,
                extra_path("feeRecipient"),
            )?,
        };
        if parsed.min_fee_bps > parsed.max_fee_bps {
            return Err(AuthCaptureError::extra(
                "extra.minFeeBps",
                "is above maxFeeBps",
            ));
        }
        if parsed.refund_deadline < parsed.capture_deadline {
            return Err(AuthCaptureError::new(
                Reason::InvalidAuthCaptureEvmDeadlineOrdering,
                "extra.refundDeadline",
                "is before captureDeadline",
            ));
        }
        if parsed.policy.is_some() {
            return Err(AuthCaptureError::new(
                Reason::InvalidAuthCaptureEvmPolicy,
                "extra.policy",
                "must be absent or zero for the `delegated` and `custom` operator types",
            ));
        }
        Ok(parsed)
    }

    /// Whether the payment's salt is a commitment (a receiver authorizer or a policy is named).
    pub fn is_bound(&self) -> bool {
        self.receiver_authorizer.is_some() || self.policy.is_some()
    }

    /// Whether a facilitator relays this payment's charge and lifecycle operations: a
    /// `delegated` operator with a receiver authorizer.
    pub fn relays_lifecycle(&self) -> bool {
        self.operator_type == OperatorType::Delegated && self.receiver_authorizer.is_some()
    }
}

/// A Permit2 `PermitTransferFrom` to the Permit2 collector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permit2Authorization {
    pub from: EvmAddress,
    pub token: EvmAddress,
    pub amount: Amount,
    pub spender: EvmAddress,
    /// A `uint256` in decimal, as written (the payment's signature nonce as a number).
    pub nonce: String,
    /// Unix seconds.
    pub deadline: u64,
}

/// The token authorization a collect payload carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenAuthorization {
    /// `ReceiveWithAuthorization`, whose `to` is the EIP-3009 collector.
    Eip3009(Eip3009Authorization),
    Permit2(Permit2Authorization),
}

impl TokenAuthorization {
    pub fn method(&self) -> AssetTransferMethod {
        match self {
            Self::Eip3009(_) => AssetTransferMethod::Eip3009,
            Self::Permit2(_) => AssetTransferMethod::Permit2,
        }
    }

    /// The payer.
    pub fn from(&self) -> &EvmAddress {
        match self {
            Self::Eip3009(a) => &a.from,
            Self::Permit2(a) => &a.from,
        }
    }
}

/// The fee submitted with a `charge` or `capture`: an amount on escrow v1.1, basis points on
/// v1.0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmittedFee {
    Amount(Amount),
    Bps(u16),
}

/// What the server adds to the client's payload to settle it as a `charge`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChargeTerms {
    pub amount: Amount,
    pub fee: SubmittedFee,
    pub fee_receiver: EvmAddress,
    /// `None` when the authorizer is delegated to the facilitator.
    pub authorizer_signature: Option<HexSignature>,
}

/// The client's payload: what `authorize` or `charge` collects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectPayload {
    pub authorization: TokenAuthorization,
    pub signature: HexSignature,
    /// `PaymentInfo.salt`, as a 32-byte word.
    pub salt: Bytes32,
    /// The client's random word when the salt is a commitment.
    pub salt_nonce: Option<Bytes32>,
    /// The server's completion of a `charge`; `None` on `authorize` and on a raw `/verify`.
    pub charge: Option<ChargeTerms>,
}

/// Which held-payment operation a lifecycle payload asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LifecycleOperation {
    Capture,
    Void,
    Refund,
}

impl LifecycleOperation {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Capture => "capture",
            Self::Void => "void",
            Self::Refund => "refund",
        }
    }
}

/// `PaymentInfo` as a lifecycle payload names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WirePaymentInfo {
    pub operator: EvmAddress,
    pub payer: EvmAddress,
    pub receiver: EvmAddress,
    pub token: EvmAddress,
    pub max_amount: Amount,
    pub pre_approval_expiry: u64,
    pub authorization_expiry: u64,
    pub refund_expiry: u64,
    pub min_fee_bps: u16,
    pub max_fee_bps: u16,
    pub fee_receiver: EvmAddress,
    pub salt: Bytes32,
}

/// A `capture`, `void` or `refund` the server asks the facilitator to relay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LifecyclePayload {
    pub operation: LifecycleOperation,
    pub payment_info: WirePaymentInfo,
    pub salt_nonce: Bytes32,
    /// `capture` and `refund`.
    pub amount: Option<Amount>,
    /// `capture`.
    pub fee: Option<SubmittedFee>,
    /// `capture`.
    pub fee_receiver: Option<EvmAddress>,
    /// `capture` and `refund`: the escrow's balances the authorizer signed against.
    pub expected_capturable: Option<Amount>,
    pub expected_refundable: Option<Amount>,
    /// `None` when the authorizer is delegated to the facilitator.
    pub authorizer_signature: Option<HexSignature>,
    /// `capture` only: void what is left in the same settle.
    pub void_authorizer_signature: Option<HexSignature>,
}

/// An `auth-capture` payment payload: the client's, or a server's lifecycle request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthCapturePayload {
    Collect(CollectPayload),
    Lifecycle(LifecyclePayload),
}

fn amount(obj: &JsonObject, key: &str, path: &str) -> Result<Option<Amount>, AuthCaptureError> {
    text(obj, key, |_| path.to_owned(), format_error)?
        .map(|s| {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(AuthCaptureError::format(
                    path,
                    "must be a non-negative integer as a decimal string",
                ));
            }
            Amount::parse_atomic(s).map_err(|e| AuthCaptureError::format(path, e.message()))
        })
        .transpose()
}

fn word(obj: &JsonObject, key: &str, path: &str) -> Result<Option<Bytes32>, AuthCaptureError> {
    text(obj, key, |_| path.to_owned(), format_error)?
        .map(|s| Bytes32::parse(s).map_err(|p| AuthCaptureError::format(path, p)))
        .transpose()
}

fn signature_field(obj: &JsonObject, key: &str) -> Result<Option<HexSignature>, AuthCaptureError> {
    text(obj, key, payload_path, format_error)?
        .map(|s| HexSignature::parse(s).map_err(|p| AuthCaptureError::format(key, p)))
        .transpose()
}

fn timestamp(obj: &JsonObject, key: &str, path: &str) -> Result<u64, AuthCaptureError> {
    let value = obj
        .get(key)
        .ok_or_else(|| AuthCaptureError::format(path, "is missing"))?;
    let parsed = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        _ => None,
    };
    parsed.ok_or_else(|| AuthCaptureError::format(path, "must be Unix seconds"))
}

fn fee(obj: &JsonObject) -> Result<Option<SubmittedFee>, AuthCaptureError> {
    match (obj.get("feeAmount"), obj.get("feeBps")) {
        (Some(_), Some(_)) => Err(AuthCaptureError::format(
            "feeAmount",
            "and feeBps together: a payload carries the fee field of one escrow version",
        )),
        (Some(_), None) => Ok(amount(obj, "feeAmount", "feeAmount")?.map(SubmittedFee::Amount)),
        (None, Some(bps)) => bps
            .as_u64()
            .and_then(|b| u16::try_from(b).ok())
            .filter(|b| *b <= MAX_FEE_BPS)
            .map(|b| Some(SubmittedFee::Bps(b)))
            .ok_or_else(|| AuthCaptureError::format("feeBps", "must be 0 to 10000")),
        (None, None) => Ok(None),
    }
}

impl AuthCapturePayload {
    /// Parses the `payload` object of an `auth-capture` payment: a lifecycle request when it
    /// names a `type`, else the client's collect payload.
    pub fn from_json(payload: &JsonObject) -> Result<Self, AuthCaptureError> {
        match payload.get("type") {
            Some(kind) => LifecyclePayload::from_json(kind, payload).map(Self::Lifecycle),
            None => CollectPayload::from_json(payload).map(Self::Collect),
        }
    }
}

impl CollectPayload {
    fn from_json(payload: &JsonObject) -> Result<Self, AuthCaptureError> {
        let authorization = match (
            payload.get("authorization"),
            payload.get("permit2Authorization"),
        ) {
            (Some(_), Some(_)) => {
                return Err(AuthCaptureError::format(
                    "permit2Authorization",
                    "and authorization together: a payload carries one token authorization",
                ));
            }
            (Some(a), None) => TokenAuthorization::Eip3009(eip3009(object(a, "authorization")?)?),
            (None, Some(p)) => {
                TokenAuthorization::Permit2(permit2(object(p, "permit2Authorization")?)?)
            }
            (None, None) => {
                return Err(AuthCaptureError::format(
                    "authorization",
                    "is missing (nor is there a permit2Authorization)",
                ));
            }
        };
        let signature = signature_field(payload, "signature")?
            .ok_or_else(|| AuthCaptureError::format("signature", "is missing"))?;
        let salt = word(payload, "salt", "salt")?
            .ok_or_else(|| AuthCaptureError::format("salt", "is missing"))?;
        let salt_nonce = word(payload, "saltNonce", "saltNonce")?;
        let charge_amount = amount(payload, "amount", "amount")?;
        let fee = fee(payload)?;
        let fee_receiver = address(payload, "feeReceiver", payload_path, format_error)?;
        let authorizer_signature = signature_field(payload, "authorizerSignature")?;
        let charge = match (charge_amount, fee, fee_receiver) {
            (Some(amount), Some(fee), Some(fee_receiver)) => Some(ChargeTerms {
                amount,
                fee,
                fee_receiver,
                authorizer_signature,
            }),
            (None, None, None) if authorizer_signature.is_none() => None,
            _ => {
                return Err(AuthCaptureError::format(
                    "amount",
                    "amount, the fee, feeReceiver and authorizerSignature complete a charge \
                     together; some are missing",
                ));
            }
        };
        Ok(Self {
            authorization,
            signature,
            salt,
            salt_nonce,
            charge,
        })
    }
}

fn eip3009(obj: &JsonObject) -> Result<Eip3009Authorization, AuthCaptureError> {
    let addr = |key: &str| -> Result<EvmAddress, AuthCaptureError> {
        let path = format!("authorization.{key}");
        address(obj, key, |_| path.clone(), format_error)?
            .ok_or_else(|| AuthCaptureError::format(format!("authorization.{key}"), "is missing"))
    };
    Ok(Eip3009Authorization {
        from: addr("from")?,
        to: addr("to")?,
        value: amount(obj, "value", "authorization.value")?
            .ok_or_else(|| AuthCaptureError::format("authorization.value", "is missing"))?,
        valid_after: timestamp(obj, "validAfter", "authorization.validAfter")?,
        valid_before: timestamp(obj, "validBefore", "authorization.validBefore")?,
        nonce: word(obj, "nonce", "authorization.nonce")?
            .ok_or_else(|| AuthCaptureError::format("authorization.nonce", "is missing"))?,
    })
}

fn permit2(obj: &JsonObject) -> Result<Permit2Authorization, AuthCaptureError> {
    let addr = |o: &JsonObject, key: &str, path: &str| -> Result<EvmAddress, AuthCaptureError> {
        address(o, key, |_| path.to_owned(), format_error)?
            .ok_or_else(|| AuthCaptureError::format(path, "is missing"))
    };
    let permitted = object(
        obj.get("permitted").unwrap_or(&Value::Null),
        "permit2Authorization.permitted",
    )?;
    let nonce = text(
        obj,
        "nonce",
        |_| "permit2Authorization.nonce".to_owned(),
        format_error,
    )?
    .filter(|n| !n.is_empty() && n.len() <= 78 && n.bytes().all(|b| b.is_ascii_digit()))
    .ok_or_else(|| {
        AuthCaptureError::format(
            "permit2Authorization.nonce",
            "must be a uint256 as a decimal string",
        )
    })?;
    Ok(Permit2Authorization {
        from: addr(obj, "from", "permit2Authorization.from")?,
        token: addr(permitted, "token", "permit2Authorization.permitted.token")?,
        amount: amount(permitted, "amount", "permit2Authorization.permitted.amount")?.ok_or_else(
            || AuthCaptureError::format("permit2Authorization.permitted.amount", "is missing"),
        )?,
        spender: addr(obj, "spender", "permit2Authorization.spender")?,
        nonce: nonce.to_owned(),
        deadline: timestamp(obj, "deadline", "permit2Authorization.deadline")?,
    })
}

impl LifecyclePayload {
    fn from_json(kind: &Value, payload: &JsonObject) -> Result<Self, AuthCaptureError> {
        let operation = match kind.as_str() {
            Some("capture") => LifecycleOperation::Capture,
            Some("void") => LifecycleOperation::Void,
            Some("refund") => LifecycleOperation::Refund,
            _ => {
                return Err(AuthCaptureError::new(
                    Reason::InvalidAuthCaptureEvmPayloadType,
                    "type",
                    "must be `capture`, `void` or `refund`",
                ));
            }
        };
        let info = object(
            payload.get("paymentInfo").unwrap_or(&Value::Null),
            "paymentInfo",
        )?;
        let addr = |key: &str| -> Result<EvmAddress, AuthCaptureError> {
            let path = format!("paymentInfo.{key}");
            address(info, key, |_| path.clone(), format_error)?
                .ok_or_else(|| AuthCaptureError::format(format!("paymentInfo.{key}"), "is missing"))
        };
        let bps = |key: &str| -> Result<u16, AuthCaptureError> {
            info.get(key)
                .and_then(Value::as_u64)
                .and_then(|b| u16::try_from(b).ok())
                .filter(|b| *b <= MAX_FEE_BPS)
                .ok_or_else(|| {
                    AuthCaptureError::format(format!("paymentInfo.{key}"), "must be 0 to 10000")
                })
        };
        let payment_info = WirePaymentInfo {
            operator: addr("operator")?,
            payer: addr("payer")?,
            receiver: addr("receiver")?,
            token: addr("token")?,
            max_amount: amount(info, "maxAmount", "paymentInfo.maxAmount")?
                .ok_or_else(|| AuthCaptureError::format("paymentInfo.maxAmount", "is missing"))?,
            pre_approval_expiry: timestamp(
                info,
                "preApprovalExpiry",
                "paymentInfo.preApprovalExpiry",
            )?,
            authorization_expiry: timestamp(
                info,
                "authorizationExpiry",
                "paymentInfo.authorizationExpiry",
            )?,
            refund_expiry: timestamp(info, "refundExpiry", "paymentInfo.refundExpiry")?,
            min_fee_bps: bps("minFeeBps")?,
            max_fee_bps: bps("maxFeeBps")?,
            fee_receiver: addr("feeReceiver")?,
            salt: word(info, "salt", "paymentInfo.salt")?
                .ok_or_else(|| AuthCaptureError::format("paymentInfo.salt", "is missing"))?,
        };
        let parsed = Self {
            operation,
            payment_info,
            salt_nonce: word(payload, "saltNonce", "saltNonce")?
                .ok_or_else(|| AuthCaptureError::format("saltNonce", "is missing"))?,
            amount: amount(payload, "amount", "amount")?,
            fee: fee(payload)?,
            fee_receiver: address(payload, "feeReceiver", payload_path, format_error)?,
            expected_capturable: amount(
                payload,
                "expectedCapturableAmount",
                "expectedCapturableAmount",
            )?,
            expected_refundable: amount(
                payload,
                "expectedRefundableAmount",
                "expectedRefundableAmount",
            )?,
            authorizer_signature: signature_field(payload, "authorizerSignature")?,
            void_authorizer_signature: signature_field(payload, "voidAuthorizerSignature")?,
        };
        parsed.check_fields()?;
        Ok(parsed)
    }

    /// Each operation's own fields, and none of the others'.
    fn check_fields(&self) -> Result<(), AuthCaptureError> {
        let missing = |field: &str| AuthCaptureError::format(field, "is missing");
        let stray = |field: &str| {
            AuthCaptureError::format(
                field,
                format!("has no meaning on `{}`", self.operation.as_str()),
            )
        };
        let has_balances = self.expected_capturable.is_some() && self.expected_refundable.is_some();
        match self.operation {
            LifecycleOperation::Capture => {
                if self.amount.is_none() {
                    return Err(missing("amount"));
                }
                if self.fee.is_none() {
                    return Err(missing("feeAmount"));
                }
                if self.fee_receiver.is_none() {
                    return Err(missing("feeReceiver"));
                }
                if !has_balances {
                    return Err(missing("expectedCapturableAmount"));
                }
            }
            LifecycleOperation::Void => {
                if self.amount.is_some() {
                    return Err(stray("amount"));
                }
                if self.fee.is_some() || self.fee_receiver.is_some() {
                    return Err(stray("feeAmount"));
                }
                if self.expected_capturable.is_some() || self.expected_refundable.is_some() {
                    return Err(stray("expectedCapturableAmount"));
                }
            }
            LifecycleOperation::Refund => {
                if self.amount.is_none() {
                    return Err(missing("amount"));
                }
                if self.fee.is_some() || self.fee_receiver.is_some() {
                    return Err(stray("feeAmount"));
                }
                if !has_balances {
                    return Err(missing("expectedCapturableAmount"));
                }
            }
        }
        if self.void_authorizer_signature.is_some() && self.operation != LifecycleOperation::Capture
        {
            return Err(AuthCaptureError::new(
                Reason::InvalidAuthCaptureEvmVoidAuthorizerSignature,
                "voidAuthorizerSignature",
                "belongs on a `capture` only",
            ));
        }
        Ok(())
    }
}

/// What a server asks of a held payment, to be written as a lifecycle payload
/// ([`LifecyclePayload::to_json`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LifecycleOrder {
    pub operation: LifecycleOperation,
    /// `capture` and `refund`.
    pub amount: Option<Amount>,
    /// `capture`: the fee amount (escrow v1.1) and where it goes.
    pub fee: Option<(Amount, EvmAddress)>,
    /// `capture` and `refund`: the (capturable, refundable) balances the request expects.
    pub expected: Option<(Amount, Amount)>,
}

impl LifecycleOrder {
    /// Void what is held.
    pub fn void() -> Self {
        Self {
            operation: LifecycleOperation::Void,
            amount: None,
            fee: None,
            expected: None,
        }
    }

    /// Refund `amount` of what was captured, against the balances `expected`.
    pub fn refund(amount: Amount, expected: (Amount, Amount)) -> Self {
        Self {
            operation: LifecycleOperation::Refund,
            amount: Some(amount),
            fee: None,
            expected: Some(expected),
        }
    }

    /// Capture `amount` of the payment `info`, against the balances `expected`, at the
    /// specification's default fee (the lower bound, `amount × minFeeBps / 10000`) to the fee
    /// receiver the payment committed to.
    pub fn capture(info: &WirePaymentInfo, amount: Amount, expected: (Amount, Amount)) -> Self {
        let fee = amount.atomic().saturating_mul(u128::from(info.min_fee_bps)) / 10_000;
        Self {
            operation: LifecycleOperation::Capture,
            amount: Some(amount),
            fee: Some((Amount::from_atomic(fee), info.fee_receiver.clone())),
            expected: Some(expected),
        }
    }
}

/// The payment a client's collect `payload` made under `requirements`, as lifecycle payloads
/// name it: its `PaymentInfo`, and the salt nonce that opens its salt. Refused when the payload
/// is no collect payload, or when its payment names no receiver authorizer (its lifecycle is
/// then not relayed).
pub fn collected_payment(
    payload: &JsonObject,
    requirements: &crate::v2::PaymentRequirements,
) -> Result<(WirePaymentInfo, Bytes32), AuthCaptureError> {
    let extra = AuthCaptureExtra::from_json(&Value::Object(
        requirements.extra.clone().unwrap_or_default(),
    ))?;
    let AuthCapturePayload::Collect(collect) = AuthCapturePayload::from_json(payload)? else {
        return Err(AuthCaptureError::new(
            Reason::InvalidAuthCaptureEvmPayloadType,
            "type",
            "names a lifecycle operation, not a collected payment",
        ));
    };
    let info = collect
        .payment_info(requirements, &extra)
        .ok_or_else(|| AuthCaptureError::format("payTo", "or asset is not an address"))?;
    let salt_nonce = collect.salt_nonce.ok_or_else(|| {
        AuthCaptureError::new(
            Reason::InvalidAuthCaptureEvmLifecycleNotRelayed,
            "extra.receiverAuthorizer",
            "is absent: this payment's capture, void and refund are not relayed",
        )
    })?;
    Ok((info, salt_nonce))
}

impl CollectPayload {
    /// The `PaymentInfo` this payload committed to under `requirements` (whose `extra` is
    /// `extra`), as a lifecycle payload names it: every field from the requirements, but the
    /// payer, the pre-approval expiry and the salt, which are the payload's. `None` when the
    /// requirements' `payTo` or `asset` is not an address.
    pub fn payment_info(
        &self,
        requirements: &crate::v2::PaymentRequirements,
        extra: &AuthCaptureExtra,
    ) -> Option<WirePaymentInfo> {
        let pre_approval_expiry = match &self.authorization {
            TokenAuthorization::Eip3009(a) => a.valid_before,
            TokenAuthorization::Permit2(p) => p.deadline,
        };
        Some(WirePaymentInfo {
            operator: extra.capture_authorizer.clone(),
            payer: self.authorization.from().clone(),
            receiver: EvmAddress::parse(&requirements.pay_to).ok()?,
            token: EvmAddress::parse(&requirements.asset).ok()?,
            max_amount: requirements.amount,
            pre_approval_expiry,
            authorization_expiry: extra.capture_deadline,
            refund_expiry: extra.refund_deadline,
            min_fee_bps: extra.min_fee_bps,
            max_fee_bps: extra.max_fee_bps,
            fee_receiver: extra.fee_recipient.clone(),
            salt: self.salt.clone(),
        })
    }
}

impl LifecyclePayload {
    /// The payload `request` on the payment `info`, whose salt opens with `salt_nonce`, with
    /// no authorizer signature (for an authorizer delegated to the facilitator).
    pub fn unsigned(info: WirePaymentInfo, salt_nonce: Bytes32, request: LifecycleOrder) -> Self {
        Self {
            operation: request.operation,
            payment_info: info,
            salt_nonce,
            amount: request.amount,
            fee: request
                .fee
                .as_ref()
                .map(|(fee, _)| SubmittedFee::Amount(*fee)),
            fee_receiver: request.fee.map(|(_, receiver)| receiver),
            expected_capturable: request.expected.map(|(c, _)| c),
            expected_refundable: request.expected.map(|(_, r)| r),
            authorizer_signature: None,
            void_authorizer_signature: None,
        }
    }

    /// The payload as the wire writes it (`payload` of a `PaymentPayload`).
    pub fn to_json(&self) -> JsonObject {
        let info = &self.payment_info;
        let mut out = JsonObject::new();
        let mut put = |key: &str, value: Value| {
            out.insert(key.to_owned(), value);
        };
        put("type", self.operation.as_str().into());
        put(
            "paymentInfo",
            serde_json::json!({
                "operator": info.operator.as_str(),
                "payer": info.payer.as_str(),
                "receiver": info.receiver.as_str(),
                "token": info.token.as_str(),
                "maxAmount": info.max_amount.to_string(),
                "preApprovalExpiry": info.pre_approval_expiry,
                "authorizationExpiry": info.authorization_expiry,
                "refundExpiry": info.refund_expiry,
                "minFeeBps": info.min_fee_bps,
                "maxFeeBps": info.max_fee_bps,
                "feeReceiver": info.fee_receiver.as_str(),
                "salt": info.salt.as_str(),
            }),
        );
        put("saltNonce", self.salt_nonce.as_str().into());
        if let Some(amount) = self.amount {
            put("amount", amount.to_string().into());
        }
        match self.fee {
            Some(SubmittedFee::Amount(fee)) => put("feeAmount", fee.to_string().into()),
            Some(SubmittedFee::Bps(bps)) => put("feeBps", bps.into()),
            None => {}
        }
        if let Some(receiver) = &self.fee_receiver {
            put("feeReceiver", receiver.as_str().into());
        }
        if let Some(capturable) = self.expected_capturable {
            put("expectedCapturableAmount", capturable.to_string().into());
        }
        if let Some(refundable) = self.expected_refundable {
            put("expectedRefundableAmount", refundable.to_string().into());
        }
        if let Some(signature) = &self.authorizer_signature {
            put("authorizerSignature", signature.as_str().into());
        }
        if let Some(signature) = &self.void_authorizer_signature {
            put("voidAuthorizerSignature", signature.as_str().into());
        }
        out
    }
}

#[cfg(test)]
mod tests;
