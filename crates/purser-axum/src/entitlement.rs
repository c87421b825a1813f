//! Repeat access in the native layer: a request that proves a wallet (`SIGN-IN-WITH-X`, or the
//! session token an earlier sign-in earned in `X-Purser-Session`) is checked with Purser's
//! `POST /v1/entitlements/check` before anything asks it to pay. A wallet whose grant holds is
//! let in without payment; any other request gets the check's 402, which offers a sign-in
//! beside the payment. The grant itself is made by Purser when the payment settles through its
//! facilitator, for the registry resource the payment names.
//!
//! Only routes priced by the registry ([`crate::RegistryOffer`]) are checked: a grant belongs
//! to a registry resource.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use purser_x402::header::lowercase;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::engine::Reply;

/// Purser's entitlement check, over HTTP.
#[derive(Clone)]
pub struct EntitlementCheck {
    client: reqwest::Client,
    url: String,
    api_key: String,
}

impl std::fmt::Debug for EntitlementCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntitlementCheck")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// What the check said.
#[derive(Debug)]
pub enum Entitled {
    /// Serve the request for `wallet`; hand the client `session` when there is one.
    Allow {
        wallet: String,
        session: Option<String>,
    },
    /// Answer with this 402 (it offers a sign-in and the payment).
    Deny(Reply),
}

#[derive(Deserialize)]
struct Answer {
    decision: String,
    #[serde(default)]
    wallet: Option<String>,
    #[serde(default)]
    session: Option<String>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    headers: serde_json::Map<String, Value>,
    #[serde(default)]
    body: Value,
}

impl EntitlementCheck {
    /// `purser` is Purser's base URL; `api_key` a `resource_server` key of the merchant.
    pub fn new(purser: &str, api_key: &str) -> Self {
        Self {
            client: crate::http_client(),
            url: format!("{}/v1/entitlements/check", purser.trim_end_matches('/')),
            api_key: api_key.to_owned(),
        }
    }

    /// Asks about a request to `url` for `resource`, with the request's `headers` (only the
    /// sign-in and the session token are sent).
    pub async fn ask(
        &self,
        resource: &str,
        url: &str,
        headers: &HeaderMap,
    ) -> Result<Entitled, String> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let mut question = json!({ "resource": resource, "url": url });
        if let Some(sign_in) = header(lowercase::SIGN_IN_WITH_X) {
            question["signIn"] = Value::from(sign_in);
        } else if let Some(session) = header(lowercase::PURSER_SESSION) {
            question["session"] = Value::from(session);
        }
        let response = self
            .client
            .post(&self.url)
            .bearer_auth(&self.api_key)
            .json(&question)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("{} answered {}", self.url, response.status()));
        }
        let answer: Answer = response.json().await.map_err(|e| e.to_string())?;
        match answer.decision.as_str() {
            "allow" => Ok(Entitled::Allow {
                wallet: answer.wallet.ok_or("an allow without a wallet")?,
                session: answer.session,
            }),
            "deny" => Ok(Entitled::Deny(reply(answer))),
            other => Err(format!("an unknown decision {other:?}")),
        }
    }
}

/// The denial's HTTP answer.
fn reply(answer: Answer) -> Reply {
    let mut headers = HeaderMap::new();
    for (name, value) in &answer.headers {
        if let (Ok(name), Some(Ok(value))) = (
            HeaderName::from_bytes(name.as_bytes()),
            value.as_str().map(HeaderValue::from_str),
        ) {
            headers.insert(name, value);
        }
    }
    Reply {
        status: answer
            .status
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::PAYMENT_REQUIRED),
        headers: Box::new(headers),
        body: Bytes::from(answer.body.to_string()),
    }
}

/// Whether the request carries a payment (then it pays: no entitlement check).
pub(crate) fn has_payment(headers: &HeaderMap) -> bool {
    headers.contains_key(lowercase::PAYMENT_SIGNATURE) || headers.contains_key(lowercase::X_PAYMENT)
}
