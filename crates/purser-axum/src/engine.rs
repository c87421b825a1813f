//! The resource server's half of x402, framework-free: read the payment a request carries,
//! answer the 402 when there is none or it does not hold, verify it, and settle it once the
//! request has been served. The tower layer in this crate and Purser's gateway both run it.
//!
//! One request goes through [`Paywall::admit`], which answers either a [`Reply`] to send as is
//! (the 402, or a 400/409) or an [`Admitted`] payment; then, once the handler or upstream has
//! answered below 400, through [`Paywall::settle`], or through [`Paywall::release`] when it has
//! not (nothing is settled for a failed request, and the payer may present the same payment
//! again).
//!
//! **Replays.** A facilitator settles an authorization at most once and answers a second
//! settle of the same authorization with the first outcome, as it must for retries. So a
//! resource server has to stop a replayed payment itself, or one payment buys two responses.
//! [`Paywall::admit`] claims each authorization in a [`ReplayGuard`] before verifying it and
//! answers 409 `payment_already_used` to a second request carrying it. A payment with a
//! `payment-identifier` is the exception the extension exists for: the same id with the same
//! payload is a retry and is served again, with the first settlement's answer; the same id with
//! another payload is 409 `payment_identifier_conflict`, both before the request runs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use purser_core::ErrorCode;
use purser_x402::exact_evm::ExactEvmPayload;
use purser_x402::facilitator::SettleResponse;
use purser_x402::header::{self, lowercase as lower};
use purser_x402::payment_identifier::PAYMENT_IDENTIFIER;
use purser_x402::v1::PaymentRequirementsV1;
use purser_x402::v2::{JsonObject, PaymentPayload, PaymentRequired, PaymentRequirements};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::facilitator::{Facilitator, FacilitatorError};

/// The `error` of a 402 whose payment matched none of the offered requirements.
pub const NO_MATCHING_REQUIREMENTS: &str = "no_matching_payment_requirements";

/// The `error` of a 402 whose payment names another resource than the one asked for (a payment
/// made for another route or URL).
pub const RESOURCE_MISMATCH: &str = "payment_for_another_resource";

/// The header naming the verified payer on the request a handler or upstream receives.
pub const PAYER_HEADER: &str = "x-purser-payer";

/// The payer as handlers and upstreams are told it, one spelling per wallet however it came: an
/// EVM address (`0x` and 40 hex digits) in lower case (a payment names it checksummed, a
/// sign-in in lower case), anything else (a Solana address, where case matters) as it is.
pub fn payer_name(payer: &str) -> String {
    let evm = payer.len() == 42
        && payer.starts_with("0x")
        && payer[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if evm {
        payer.to_ascii_lowercase()
    } else {
        payer.to_owned()
    }
}

/// When to settle, relative to running the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SettleTiming {
    /// Run the handler on a verified payment, settle only if it answered below 400. The payer
    /// never pays for a failed request; the merchant may serve a request whose settlement then
    /// fails (the authorization was spent elsewhere in between) and withholds only its body.
    /// The reference SDK's behaviour, and the default.
    #[default]
    After,
    /// Settle first, run the handler only on money received. Right for handlers with effects
    /// that cannot be withheld (a purchase, a write); the payer pays even when the handler
    /// then fails.
    Before,
}

/// What a route offers: the 402 to answer, and older requirements still honoured.
#[derive(Debug, Clone)]
pub struct Offer {
    /// The challenge; its `accepts` are what a payment must match.
    pub required: PaymentRequired,
    /// Requirements no longer offered but still payable (a price just changed: payments
    /// signed for the previous one within their timeout).
    pub also_accepts: Vec<PaymentRequirements>,
    /// Whether a payment must carry a `payment-identifier`.
    pub payment_identifier_required: bool,
}

impl Offer {
    pub fn new(required: PaymentRequired) -> Self {
        Self {
            required,
            also_accepts: Vec::new(),
            payment_identifier_required: false,
        }
    }

    /// Declares the `payment-identifier` extension in the 402, optional or required.
    pub fn with_payment_identifier(mut self, required: bool) -> Self {
        self.payment_identifier_required = required;
        self.required
            .extensions
            .get_or_insert_with(Default::default)
            .insert(
                PAYMENT_IDENTIFIER.into(),
                json!({
                    "info": { "required": required },
                    "schema": {
                        "$schema": "https://json-schema.org/draft/2020-12/schema",
                        "type": "object",
                        "properties": {
                            "required": { "type": "boolean" },
                            "id": { "type": "string", "minLength": 16, "maxLength": 128,
                                    "pattern": "^[a-zA-Z0-9_-]+$" }
                        },
                        "required": ["required"]
                    }
                }),
            );
        self
    }

    fn offered(&self) -> impl Iterator<Item = &PaymentRequirements> {
        self.required.accepts.iter().chain(&self.also_accepts)
    }
}

/// An answer to send instead of running the request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    /// Boxed: a `HeaderMap` is large, and replies travel in `Err`s.
    pub headers: Box<HeaderMap>,
    pub body: Bytes,
}

impl Reply {
    fn json(status: StatusCode, body: &Value) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Self {
            status,
            headers: Box::new(headers),
            body: Bytes::from(body.to_string()),
        }
    }

    /// `{error: {code, message}}`, the envelope Purser answers errors in, with the code's status.
    pub fn error(code: ErrorCode, message: &str) -> Self {
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self::json(
            status,
            &json!({ "error": { "code": code.as_str(), "message": message } }),
        )
    }

    /// The reply as an HTTP response with any body type built from bytes.
    pub fn into_response<B: From<Bytes>>(self) -> http::Response<B> {
        let mut response = http::Response::new(B::from(self.body));
        *response.status_mut() = self.status;
        *response.headers_mut() = *self.headers;
        response
    }
}

/// Which protocol version the client spoke: replies follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    V1,
    V2,
}

/// A verified payment, waiting for the request's outcome.
#[derive(Debug, Clone)]
pub struct Admitted {
    pub payer: String,
    pub payload: PaymentPayload,
    pub requirements: PaymentRequirements,
    pub version: Version,
    /// The replay-guard keys this payment holds.
    claims: Vec<String>,
}

impl Admitted {
    /// A payment verified earlier (by a delegated check), to settle now. It holds no
    /// replay-guard claim: the check that admitted it did.
    pub fn verified(
        payer: String,
        payload: PaymentPayload,
        requirements: PaymentRequirements,
        version: Version,
    ) -> Self {
        Self {
            payer,
            payload,
            requirements,
            version,
            claims: Vec::new(),
        }
    }
}

/// How a settlement went, for the response.
#[derive(Debug, Clone)]
pub enum Settled {
    /// Settled, or broadcast and pending: serve the response with these headers. `response`
    /// says which (`success`, or `settlement_pending` with the transaction hash).
    Paid {
        response: Box<SettleResponse>,
        headers: HeaderMap,
    },
    /// Not settled: answer this instead of the response.
    Refused(Reply),
}

/// Remembers which payments were used, so that a replay is refused.
#[async_trait]
pub trait ReplayGuard: Send + Sync {
    /// Claims `key` with `value` for `ttl`. `None` when the claim is new, else the value the
    /// key already holds.
    async fn claim(&self, key: &str, value: &str, ttl: Duration) -> Result<Option<String>, String>;
    /// Gives `key` up, so the payment may be presented again.
    async fn release(&self, key: &str);
}

/// How many unexpired claims a [`MemoryReplayGuard`] holds by default: about 300 MB at most.
/// Every claim that stays is a payment that was verified and not released (paid, or pending),
/// for as long as its authorization could be presented (a minute or two past its
/// `validBefore`, a day for a payment identifier): a million is 11 paid requests a second with
/// payment identifiers, sustained for a day.
pub const MEMORY_REPLAY_GUARD_CLAIMS: usize = 1_000_000;

/// A [`ReplayGuard`] in this process's memory: right for one instance. Several instances of a
/// merchant's app need a shared guard (Purser's gateway uses Redis) or payment identifiers.
///
/// It holds at most its cap of unexpired claims ([`MEMORY_REPLAY_GUARD_CLAIMS`] unless
/// [`Self::with_max_claims`] says otherwise). A claim is a promise that a payment is not
/// served twice, so none is dropped before it expires: when the guard is full of unexpired
/// claims, a new claim is refused (the request is answered `unavailable`, the payer may retry)
/// until some expire.
#[derive(Debug)]
pub struct MemoryReplayGuard {
    claims: Mutex<Claims>,
    max_claims: usize,
}

#[derive(Debug, Default)]
struct Claims {
    /// Each claim's value and when it expires (Unix seconds).
    by_key: HashMap<String, (String, u64)>,
    /// When expired claims were last dropped (Unix seconds): at most once a second, since it
    /// walks every claim.
    pruned_at: u64,
}

impl Default for MemoryReplayGuard {
    fn default() -> Self {
        Self::with_max_claims(MEMORY_REPLAY_GUARD_CLAIMS)
    }
}

impl MemoryReplayGuard {
    /// A guard holding at most `max_claims` unexpired claims (at least one).
    pub fn with_max_claims(max_claims: usize) -> Self {
        Self {
            claims: Mutex::default(),
            max_claims: max_claims.max(1),
        }
    }
}

#[async_trait]
impl ReplayGuard for MemoryReplayGuard {
    async fn claim(&self, key: &str, value: &str, ttl: Duration) -> Result<Option<String>, String> {
        let now = unix_now();
        let mut claims = self.claims.lock().unwrap_or_else(|p| p.into_inner());
        match claims.by_key.get(key) {
            Some((existing, until)) if *until > now => return Ok(Some(existing.clone())),
            // An expired claim of the same key is replaced: no growth.
            Some(_) => {}
            None if claims.by_key.len() >= self.max_claims => {
                if claims.pruned_at < now {
                    claims.by_key.retain(|_, (_, until)| *until > now);
                    claims.pruned_at = now;
                }
                if claims.by_key.len() >= self.max_claims {
                    return Err(format!(
                        "the in-memory replay guard holds {} unexpired claims, its most",
                        self.max_claims
                    ));
                }
            }
            None => {}
        }
        claims.by_key.insert(
            key.to_owned(),
            (value.to_owned(), now.saturating_add(ttl.as_secs())),
        );
        Ok(None)
    }

    async fn release(&self, key: &str) {
        self.claims
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_key
            .remove(key);
    }
}

/// What claiming a payment in the replay guard found.
struct Claimed {
    /// The keys this request holds, given up if it is not served.
    keys: Vec<String>,
    /// The same payment identifier with the same payload was claimed before: a retry.
    retry: bool,
}

/// The engine: a facilitator and a replay guard.
#[derive(Clone)]
pub struct Paywall {
    facilitator: std::sync::Arc<dyn Facilitator>,
    guard: std::sync::Arc<dyn ReplayGuard>,
}

impl std::fmt::Debug for Paywall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Paywall").finish_non_exhaustive()
    }
}

impl Paywall {
    pub fn new(
        facilitator: std::sync::Arc<dyn Facilitator>,
        guard: std::sync::Arc<dyn ReplayGuard>,
    ) -> Self {
        Self { facilitator, guard }
    }

    /// The 402 for `offer`, in both versions at once: v2 in `PAYMENT-REQUIRED`, v1 as the JSON
    /// body (a v2 client reads the header first; a v1 client reads only the body).
    pub fn challenge(offer: &Offer, error: Option<&str>) -> Reply {
        let mut required = offer.required.clone();
        if let Some(error) = error {
            required.error = Some(error.to_owned());
        }
        let v1_accepts: Vec<PaymentRequirementsV1> = required
            .accepts
            .iter()
            .filter_map(|r| v1_requirements(r, &required))
            .collect();
        let mut reply = Reply::json(
            StatusCode::PAYMENT_REQUIRED,
            &json!({
                "x402Version": 1,
                "error": required.error,
                "accepts": v1_accepts,
            }),
        );
        if let Ok(value) = HeaderValue::from_str(&header::encode_payment_required(&required)) {
            reply
                .headers
                .insert(HeaderName::from_static(lower::PAYMENT_REQUIRED), value);
        }
        reply.headers.insert(
            http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(header::EXPOSE_HEADERS),
        );
        reply
    }

    /// Reads and verifies the payment on a request for `offer`.
    pub async fn admit(&self, offer: &Offer, headers: &HeaderMap) -> Result<Admitted, Reply> {
        let (payload, version) = match read_payment(offer, headers) {
            Ok(Some(found)) => found,
            Ok(None) => return Err(Self::challenge(offer, None)),
            Err(reply) => return Err(reply),
        };
        // A payment names what it pays for: one made for another route or URL buys nothing here.
        if let Some(paid_for) = &payload.resource
            && !offer.required.resource.url.is_empty()
            && paid_for.url != offer.required.resource.url
        {
            return Err(Self::challenge(offer, Some(RESOURCE_MISMATCH)));
        }
        let Some(requirements) = offer
            .offered()
            .find(|o| purser_x402::matching::accepted_matches(o, &payload.accepted))
            .cloned()
        else {
            return Err(Self::challenge(offer, Some(NO_MATCHING_REQUIREMENTS)));
        };
        let payment_id = payload
            .payment_identifier()
            .require(offer.payment_identifier_required)
            .map_err(|e| Reply::error(e.code(), e.message()))?;
        let claimed = self
            .claim(&payload, payment_id.as_ref().map(|p| p.as_str()))
            .await?;
        if claimed.retry
            && let Ok(exact) = payload.exact_evm()
        {
            // A retry of a payment admitted before (same identifier, same payload): its
            // authorization may be settled already, so verifying it again would refuse it.
            // The facilitator answers its settlement's first outcome, for these requirements
            // only; nothing is settled twice.
            return Ok(Admitted {
                payer: exact.authorization.from.to_lowercase(),
                payload,
                requirements,
                version,
                claims: Vec::new(),
            });
        }
        let claims = claimed.keys;
        let verdict = self.facilitator.verify(&payload, &requirements).await;
        let refused = match verdict {
            Ok(v) if v.is_valid => {
                return Ok(Admitted {
                    payer: v.payer.unwrap_or_default(),
                    payload,
                    requirements,
                    version,
                    claims,
                });
            }
            Ok(v) => Self::challenge(
                offer,
                Some(v.invalid_reason.as_deref().unwrap_or("invalid_payment")),
            ),
            Err(e) => facilitator_failure(&e, "verifying"),
        };
        self.release_keys(&claims).await;
        Err(refused)
    }

    /// Settles an admitted payment. The SDK's rule on `settlement_pending`: settle once more
    /// with the same payload (the facilitator answers the same record), then serve what is
    /// known. A pending outcome is served with its transaction hash, never refused as failed:
    /// the payment is on its way and a refusal would invite a second one.
    pub async fn settle(&self, offer: &Offer, admitted: &Admitted) -> Settled {
        let mut outcome = self
            .facilitator
            .settle(&admitted.payload, &admitted.requirements)
            .await;
        if matches!(&outcome, Ok(r) if r.is_pending()) {
            outcome = self
                .facilitator
                .settle(&admitted.payload, &admitted.requirements)
                .await;
        }
        match outcome {
            Ok(response) if response.success || response.is_pending() => {
                let headers = payment_response_headers(&response, admitted.version);
                Settled::Paid {
                    response: Box::new(response),
                    headers,
                }
            }
            Ok(response) => {
                // A failure before broadcast leaves the authorization unspent: it may come back.
                if response.transaction.is_empty() {
                    self.release(admitted).await;
                }
                let mut reply = Self::challenge(
                    offer,
                    Some(
                        response
                            .error_reason
                            .as_deref()
                            .unwrap_or("unexpected_settle_error"),
                    ),
                );
                reply
                    .headers
                    .extend(payment_response_headers(&response, admitted.version));
                Settled::Refused(reply)
            }
            Err(e) => Settled::Refused(facilitator_failure(&e, "settling")),
        }
    }

    /// Finishes an escrowed (`auth-capture`) payment whose hold was just authorized: captures
    /// the whole hold (`capture`), or voids it, through the facilitator, with a lifecycle
    /// payload that names no authorizer signature (the facilitator stands in for the
    /// receiver's authorizer and authenticates this server by its key).
    pub async fn finalize_escrow(
        &self,
        admitted: &Admitted,
        capture: bool,
    ) -> Result<SettleResponse, FacilitatorError> {
        let payload =
            escrow_lifecycle(admitted, capture).map_err(|why| FacilitatorError::Refused {
                code: ErrorCode::InvalidPaymentPayload.as_str().to_owned(),
                message: format!("finalizing the escrow: {why}"),
            })?;
        self.facilitator
            .settle(&payload, &admitted.requirements)
            .await
    }

    /// The request failed and nothing is settled: the payment may be presented again.
    pub async fn release(&self, admitted: &Admitted) {
        self.release_keys(&admitted.claims).await;
    }

    async fn release_keys(&self, keys: &[String]) {
        for key in keys {
            self.guard.release(key).await;
        }
    }

    /// Claims the payment's authorization, or its identifier when it carries one.
    async fn claim(
        &self,
        payload: &PaymentPayload,
        payment_id: Option<&str>,
    ) -> Result<Claimed, Reply> {
        let hash = payload_hash(payload);
        let (key, value, ttl) = match payment_id {
            // Retries of one payment share the id and the payload: the same claim value.
            Some(id) => (format!("pid:{id}"), hash, Duration::from_secs(24 * 3600)),
            None => {
                let Some((key, valid_before)) = authorization_key(payload) else {
                    // Not an exact EVM payload: verification will say what is wrong.
                    return Ok(Claimed {
                        keys: Vec::new(),
                        retry: false,
                    });
                };
                let ttl = valid_before
                    .saturating_sub(unix_now())
                    .clamp(60, 7 * 86_400);
                (key, hash, Duration::from_secs(ttl + 60))
            }
        };
        match self.guard.claim(&key, &value, ttl).await {
            Ok(None) => Ok(Claimed {
                keys: vec![key],
                retry: false,
            }),
            Ok(Some(existing)) if payment_id.is_some() && existing == value => {
                // A retry of the same payment: the facilitator answers its first outcome.
                Ok(Claimed {
                    keys: Vec::new(),
                    retry: true,
                })
            }
            Ok(Some(_)) if payment_id.is_some() => Err(Reply::error(
                ErrorCode::PaymentIdentifierConflict,
                "this payment identifier was used with another payment payload",
            )),
            Ok(Some(_)) => Err(Reply::error(
                ErrorCode::PaymentAlreadyUsed,
                "this payment was already presented; sign a new one",
            )),
            Err(e) => {
                tracing::warn!(error = %e, "the replay guard is unavailable");
                Err(Reply::error(
                    ErrorCode::Unavailable,
                    "payments cannot be checked right now; retry shortly",
                ))
            }
        }
    }
}

/// The payment a request carries: `PAYMENT-SIGNATURE` (v2) or `X-PAYMENT` (v1), as v2.
pub fn read_payment(
    offer: &Offer,
    headers: &HeaderMap,
) -> Result<Option<(PaymentPayload, Version)>, Reply> {
    let text = |name: &str| -> Result<Option<&str>, Reply> {
        headers
            .get(name)
            .map(|v| {
                v.to_str().map_err(|_| {
                    Reply::error(
                        ErrorCode::MalformedPaymentHeader,
                        &format!("{name} is not ASCII"),
                    )
                })
            })
            .transpose()
    };
    let bad = |e: purser_core::Error| Reply::error(e.code(), e.message());
    if let Some(value) = text(lower::PAYMENT_SIGNATURE)? {
        let payload = header::decode_payment_signature(value).map_err(bad)?;
        return Ok(Some((payload, Version::V2)));
    }
    if let Some(value) = text(lower::X_PAYMENT)? {
        let v1 = header::decode_x_payment(value).map_err(bad)?;
        // v1 names its scheme and network instead of echoing the requirements.
        let found = offer.offered().find_map(|r| {
            let v1_req = v1_requirements(r, &offer.required)?;
            (v1_req.scheme == v1.scheme && v1_req.network == v1.network).then_some(v1_req)
        });
        let Some(v1_req) = found else {
            return Err(Paywall::challenge(offer, Some(NO_MATCHING_REQUIREMENTS)));
        };
        let payload = v1.to_v2(&v1_req).map_err(bad)?;
        return Ok(Some((payload, Version::V1)));
    }
    Ok(None)
}

/// The v1 form of `requirements`, when the network has a v1 name.
fn v1_requirements(
    requirements: &PaymentRequirements,
    required: &PaymentRequired,
) -> Option<PaymentRequirementsV1> {
    let network = requirements.network.v1_name()?;
    let resource = &required.resource;
    Some(PaymentRequirementsV1 {
        scheme: requirements.scheme.clone(),
        network: network.to_owned(),
        max_amount_required: requirements.amount,
        resource: resource.url.clone(),
        description: resource.description.clone().unwrap_or_default(),
        mime_type: resource.mime_type.clone(),
        output_schema: None,
        pay_to: requirements.pay_to.clone(),
        max_timeout_seconds: requirements.max_timeout_seconds,
        asset: requirements.asset.clone(),
        extra: requirements.extra.clone(),
        other: JsonObject::new(),
    })
}

/// `PAYMENT-RESPONSE` (v2) or `X-PAYMENT-RESPONSE` (v1, with the network's v1 name).
fn payment_response_headers(response: &SettleResponse, version: Version) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let (name, value) = match version {
        Version::V2 => (
            lower::PAYMENT_RESPONSE,
            header::encode_payment_response(response),
        ),
        Version::V1 => {
            let mut v1 = response.clone();
            if let Some(name) = purser_x402::Network::parse(&v1.network)
                .ok()
                .and_then(|n| n.v1_name())
            {
                v1.network = name.to_owned();
            }
            (
                lower::X_PAYMENT_RESPONSE,
                header::encode_payment_response(&v1),
            )
        }
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(HeaderName::from_static(name), value);
    }
    headers.insert(
        http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(header::EXPOSE_HEADERS),
    );
    headers
}

fn facilitator_failure(error: &FacilitatorError, doing: &str) -> Reply {
    match error {
        FacilitatorError::Conflict(message) => {
            Reply::error(ErrorCode::PaymentIdentifierConflict, message)
        }
        FacilitatorError::Refused { code, message } => Reply::error(
            ErrorCode::from_name(code).unwrap_or(ErrorCode::InvalidInput),
            message,
        ),
        FacilitatorError::Unavailable(message) => {
            tracing::warn!(%message, "the facilitator failed while {doing} a payment");
            Reply::error(
                ErrorCode::FacilitatorUnavailable,
                &format!("the payment could not be {doing} confirmed; retry with the same payment"),
            )
        }
    }
}

/// `exact:<network>:<asset>:<from>:<nonce>` and `validBefore`, for an exact EVM payload.
fn authorization_key(payload: &PaymentPayload) -> Option<(String, u64)> {
    let exact = ExactEvmPayload::from_json(&payload.payload).ok()?;
    let auth = &exact.authorization;
    Some((
        format!(
            "auth:{}:{}:{}:{}",
            payload.accepted.network.as_str(),
            payload.accepted.asset.to_ascii_lowercase(),
            auth.from.to_lowercase(),
            auth.nonce.to_lowercase(),
        ),
        auth.valid_before,
    ))
}

fn payload_hash(payload: &PaymentPayload) -> String {
    let canonical = serde_json::to_value(payload)
        .and_then(|v| serde_json::to_vec(&v))
        .unwrap_or_default();
    Sha256::digest(canonical)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How an escrowed (`auth-capture`) offer is finalized: `None` for any other scheme.
pub fn escrow_capture_mode(
    requirements: &PaymentRequirements,
) -> Option<purser_x402::auth_capture::CaptureMode> {
    if requirements.scheme != purser_x402::auth_capture::SCHEME {
        return None;
    }
    let extra = Value::Object(requirements.extra.clone().unwrap_or_default());
    let parsed = purser_x402::auth_capture::AuthCaptureExtra::from_json(&extra).ok()?;
    Some(
        parsed
            .capture_mode
            .unwrap_or(purser_x402::auth_capture::CaptureMode::Sync),
    )
}

/// The `capture` of the whole hold, or the `void`, of an admitted escrowed payment.
fn escrow_lifecycle(admitted: &Admitted, capture: bool) -> Result<PaymentPayload, String> {
    use purser_core::money::Amount;
    use purser_x402::auth_capture::{LifecycleOrder, LifecyclePayload, collected_payment};
    let requirements = &admitted.requirements;
    let (info, salt_nonce) =
        collected_payment(&admitted.payload.payload, requirements).map_err(|e| e.to_string())?;
    let order = if capture {
        // Just authorized: the whole amount is held, nothing captured.
        let amount = requirements.amount;
        LifecycleOrder::capture(&info, amount, (amount, Amount::ZERO))
    } else {
        LifecycleOrder::void()
    };
    Ok(PaymentPayload {
        x402_version: purser_x402::V2,
        resource: admitted.payload.resource.clone(),
        accepted: requirements.clone(),
        payload: LifecyclePayload::unsigned(info, salt_nonce, order).to_json(),
        extensions: None,
        other: JsonObject::new(),
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::{MEMORY_REPLAY_GUARD_CLAIMS, MemoryReplayGuard, ReplayGuard, payer_name};
    use std::time::Duration;

    const HOUR: Duration = Duration::from_secs(3600);

    /// Ten times as many distinct payments as the guard may hold, none expiring: it holds its
    /// cap and refuses the rest (never dropping a live claim, which would let a payment be
    /// served twice).
    #[tokio::test]
    async fn the_memory_replay_guard_holds_at_most_its_cap() {
        assert_eq!(
            MemoryReplayGuard::default().max_claims,
            MEMORY_REPLAY_GUARD_CLAIMS
        );
        let guard = MemoryReplayGuard::with_max_claims(100);
        let mut admitted = 0;
        for n in 0..1_000 {
            match guard.claim(&format!("auth:{n}"), "paid", HOUR).await {
                Ok(None) => admitted += 1,
                Ok(Some(_)) => panic!("a new key was taken"),
                Err(_) => {}
            }
        }
        assert_eq!(admitted, 100);
        assert_eq!(guard.claims.lock().unwrap().by_key.len(), 100);
        // A replay is still recognised when full; a released claim makes room.
        assert_eq!(
            guard.claim("auth:0", "again", HOUR).await,
            Ok(Some("paid".to_owned()))
        );
        assert!(guard.claim("auth:new", "paid", HOUR).await.is_err());
        guard.release("auth:1").await;
        assert_eq!(guard.claim("auth:new", "paid", HOUR).await, Ok(None));
    }

    #[tokio::test]
    async fn expired_claims_make_room() {
        let guard = MemoryReplayGuard::with_max_claims(3);
        for key in ["a", "b", "c"] {
            // Expired at once.
            assert_eq!(guard.claim(key, "paid", Duration::ZERO).await, Ok(None));
        }
        assert_eq!(guard.claim("d", "paid", HOUR).await, Ok(None));
        assert_eq!(guard.claims.lock().unwrap().by_key.len(), 1);
        // An expired claim of the same payment is replaced, whatever the count.
        let full = MemoryReplayGuard::with_max_claims(1);
        assert_eq!(full.claim("a", "paid", Duration::ZERO).await, Ok(None));
        assert_eq!(full.claim("a", "paid", HOUR).await, Ok(None));
        assert_eq!(full.claim("a", "paid", HOUR).await, Ok(Some("paid".into())));
    }

    #[test]
    fn an_evm_payer_has_one_spelling_and_others_keep_theirs() {
        let checksummed = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
        assert_eq!(
            payer_name(checksummed),
            "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"
        );
        assert_eq!(
            payer_name(&payer_name(checksummed)),
            payer_name(checksummed)
        );
        // A Solana address (base58, case matters) and anything not an address stay as they are.
        for other in [
            "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM",
            "0xABC",
            "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BZ",
        ] {
            assert_eq!(payer_name(other), other);
        }
    }
}
