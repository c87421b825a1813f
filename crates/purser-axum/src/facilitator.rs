//! Who verifies and settles: a [`Facilitator`] is Purser reached over HTTP ([`HttpFacilitator`],
//! any x402 facilitator speaking the specification's API works) or, inside Purser itself, the
//! facilitator service called in process.

use async_trait::async_trait;
use purser_x402::facilitator::{SettleResponse, VerifyResponse};
use purser_x402::v2::{PaymentPayload, PaymentRequirements};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Why a facilitator gave no verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FacilitatorError {
    /// The payment identifier was used with another payload (HTTP 409).
    Conflict(String),
    /// The facilitator refused the request itself (HTTP 4xx): `code` is its error code.
    Refused { code: String, message: String },
    /// It could not be reached, or answered something that is not a verdict. For a settlement
    /// this means the outcome is unknown.
    Unavailable(String),
}

impl std::fmt::Display for FacilitatorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Conflict(m) => write!(f, "payment identifier conflict: {m}"),
            Self::Refused { code, message } => write!(f, "refused ({code}): {message}"),
            Self::Unavailable(m) => write!(f, "facilitator unavailable: {m}"),
        }
    }
}

impl std::error::Error for FacilitatorError {}

/// Verifies and settles payments against the requirements a resource server offered.
#[async_trait]
pub trait Facilitator: Send + Sync {
    async fn verify(
        &self,
        payload: &PaymentPayload,
        requirements: &PaymentRequirements,
    ) -> Result<VerifyResponse, FacilitatorError>;

    async fn settle(
        &self,
        payload: &PaymentPayload,
        requirements: &PaymentRequirements,
    ) -> Result<SettleResponse, FacilitatorError>;
}

/// A facilitator's HTTP API: `POST {base}/verify` and `POST {base}/settle`, with a
/// `resource_server` API key when the facilitator asks for one (Purser does by default).
#[derive(Clone)]
pub struct HttpFacilitator {
    client: reqwest::Client,
    base: String,
    api_key: Option<String>,
}

impl std::fmt::Debug for HttpFacilitator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpFacilitator")
            .field("base", &self.base)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl HttpFacilitator {
    /// `base` is the facilitator's root, such as `http://127.0.0.1:8402/facilitator`.
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            client: crate::http_client(),
            base: base.into().trim_end_matches('/').to_owned(),
            api_key: None,
        }
    }

    /// Sends `Authorization: Bearer <key>` with every call.
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Uses `client` (timeouts, TLS, connection pool) for every call.
    pub fn with_client(mut self, client: reqwest::Client) -> Self {
        self.client = client;
        self
    }

    async fn call<T: DeserializeOwned>(
        &self,
        path: &str,
        payload: &PaymentPayload,
        requirements: &PaymentRequirements,
    ) -> Result<T, FacilitatorError> {
        let body = json!({
            "x402Version": 2,
            "paymentPayload": payload,
            "paymentRequirements": requirements,
        });
        let mut request = self.client.post(format!("{}{path}", self.base)).json(&body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let unavailable = |e: reqwest::Error| FacilitatorError::Unavailable(e.to_string());
        let response = request.send().await.map_err(unavailable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unavailable)?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                FacilitatorError::Unavailable(format!("{path} answered an unreadable body: {e}"))
            });
        }
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let text = |v: &Value| v.as_str().map(str::to_owned);
        // Purser answers `{error: {code, message}}`; others `{error: "..."}`.
        let (code, message) = match &answer["error"] {
            Value::Object(e) => (
                text(&e["code"]).unwrap_or_default(),
                text(&e["message"]).unwrap_or_default(),
            ),
            Value::String(m) => (String::new(), m.clone()),
            _ => (String::new(), String::new()),
        };
        match status.as_u16() {
            409 => Err(FacilitatorError::Conflict(message)),
            400..=499 => Err(FacilitatorError::Refused {
                code: if code.is_empty() {
                    format!("http_{}", status.as_u16())
                } else {
                    code
                },
                message,
            }),
            _ => Err(FacilitatorError::Unavailable(format!(
                "{path} answered {status}"
            ))),
        }
    }
}

#[async_trait]
impl Facilitator for HttpFacilitator {
    async fn verify(
        &self,
        payload: &PaymentPayload,
        requirements: &PaymentRequirements,
    ) -> Result<VerifyResponse, FacilitatorError> {
        self.call("/verify", payload, requirements).await
    }

    async fn settle(
        &self,
        payload: &PaymentPayload,
        requirements: &PaymentRequirements,
    ) -> Result<SettleResponse, FacilitatorError> {
        self.call("/settle", payload, requirements).await
    }
}
