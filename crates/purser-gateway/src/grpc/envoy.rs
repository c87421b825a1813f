//! `envoy.service.auth.v3.Authorization/Check`: Envoy's `ext_authz` filter asks whether a
//! request may reach its upstream.
//!
//! The request is `attributes.request.http` (method, scheme, host, path with query, headers);
//! the resource is found by method and URL, or named per route with the context extension
//! `purser_resource`. Envoy has no hook after its upstream answered, so by default the payment
//! is settled before the request is forwarded, as for nginx:
//!
//! - allowed: status OK; the upstream gets `x-purser-payer` and not the payment headers; the
//!   client's response gets `payment-response`;
//! - denied: status PERMISSION_DENIED with the exact answer for the client (402 with
//!   `payment-required`, 409 for a replay, ...), its message naming why.
//!
//! With the context extension `purser_settle: after`, the payment is only verified: the
//! upstream also gets `x-purser-settle`, a token for `AccessService/Settle` (or, as its JSON,
//! `/v1/access/settle`), and settles after serving.
//!
//! A call that is itself wrong (no key, no HTTP attributes, a bad `purser_settle`) fails with a
//! gRPC status, as does a server error (Envoy's `failure_mode_allow` and `status_on_error`
//! decide what the client sees); a request no resource prices is denied with Purser's 404.

use std::collections::HashMap;

use http::{HeaderMap, StatusCode};
use purser_axum::{PAYER_HEADER, Reply, SettleTiming, payer_name};
use purser_domain::Error;
use purser_x402::header::lowercase;
use serde_json::Value;
use tonic::{Code, Request, Response, Status};

use super::proto::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use super::proto::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use super::proto::envoy::service::auth::v3::{
    self as auth, CheckResponse, DeniedHttpResponse, OkHttpResponse, check_response,
};
use super::proto::envoy::r#type::v3::HttpStatus;
use super::proto::google::rpc;
use super::{caller, status_of};
use crate::check::{
    AccessState, CheckRequest, Decision, PaidFirst, header_map, header_pairs, session_headers,
};

/// The request header carrying the settle token to the upstream, with `purser_settle: after`.
pub const SETTLE_HEADER: &str = "x-purser-settle";

/// The context extension naming the resource that prices a route.
pub const CONTEXT_RESOURCE: &str = "purser_resource";

/// The context extension choosing when to settle: `before` (the default) or `after`.
pub const CONTEXT_SETTLE: &str = "purser_settle";

pub struct Authorization {
    state: AccessState,
}

impl Authorization {
    pub fn new(state: AccessState) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl auth::authorization_server::Authorization for Authorization {
    async fn check(
        &self,
        request: Request<auth::CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let scope = caller(&self.state, request.metadata()).await?;
        let attributes = request.into_inner().attributes.unwrap_or_default();
        let context = &attributes.context_extensions;
        let timing = settle_timing(context).map_err(status_of)?;
        let http = attributes.request.and_then(|r| r.http).ok_or_else(|| {
            status_of(Error::invalid_input(
                "the CheckRequest has no attributes.request.http: use the HTTP ext_authz filter",
            ))
        })?;
        let url = url_of(&http);
        let headers = header_map(&http.headers);
        let request = CheckRequest {
            method: &http.method,
            url: &url,
            resource: context
                .get(CONTEXT_RESOURCE)
                .map(String::as_str)
                .filter(|r| !r.is_empty()),
            headers: &headers,
        };
        let answer = match timing {
            SettleTiming::Before => {
                self.state
                    .check_and_settle(scope, &request)
                    .await
                    .map(|paid| match paid {
                        PaidFirst::Paid { payer, headers } => allow(&payer, None, &headers),
                        PaidFirst::Entitled { wallet, session } => {
                            allow(&wallet, None, &session_headers(session.as_deref()))
                        }
                        PaidFirst::Refused { reply, .. } => deny(&reply),
                    })
            }
            SettleTiming::After => {
                self.state
                    .check(scope, &request)
                    .await
                    .map(|decision| match decision {
                        Decision::Allow { payer, settle } => {
                            allow(&payer, Some(&settle.encode()), &HeaderMap::new())
                        }
                        Decision::Entitled {
                            wallet, session, ..
                        } => allow(&wallet, None, &session_headers(session.as_deref())),
                        Decision::Deny(reply) => deny(&reply),
                    })
            }
        };
        match answer {
            Ok(answer) => Ok(Response::new(answer)),
            // Purser could not decide: Envoy's failure mode applies.
            Err(e) if e.is_server_error() => Err(status_of(e)),
            // No resource prices this request, or its URL does not parse: the client is told.
            Err(e) => Ok(Response::new(deny(&Reply::error(
                e.code(),
                e.public_message(),
            )))),
        }
    }
}

fn settle_timing(context: &HashMap<String, String>) -> Result<SettleTiming, Error> {
    match context.get(CONTEXT_SETTLE).map(String::as_str) {
        None | Some("" | "before") => Ok(SettleTiming::Before),
        Some("after") => Ok(SettleTiming::After),
        Some(_) => Err(Error::invalid_input(
            "the context extension purser_settle must be `before` or `after`",
        )),
    }
}

/// The URL the client asked for: Envoy gives the scheme, the host (`:authority`) and the
/// request target (path and query) apart.
fn url_of(http: &auth::attribute_context::HttpRequest) -> String {
    let scheme = if http.scheme.is_empty() {
        "http"
    } else {
        &http.scheme
    };
    let host = if http.host.is_empty() {
        http.headers
            .get(":authority")
            .or_else(|| http.headers.get("host"))
            .map_or("", String::as_str)
    } else {
        &http.host
    };
    format!("{scheme}://{host}{}", http.path)
}

/// A header Envoy sets, replacing any value the client sent.
fn overwrite(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            value: value.to_owned(),
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
    }
}

fn allow(payer: &str, settle_token: Option<&str>, paid: &HeaderMap) -> CheckResponse {
    let mut headers = vec![overwrite(PAYER_HEADER, &payer_name(payer))];
    // Credentials the client showed Purser never reach the upstream.
    let mut headers_to_remove = vec![
        lowercase::PAYMENT_SIGNATURE.to_owned(),
        lowercase::X_PAYMENT.to_owned(),
        lowercase::SIGN_IN_WITH_X.to_owned(),
        purser_entitlement::SESSION_HEADER.to_owned(),
    ];
    match settle_token {
        Some(token) => headers.push(overwrite(SETTLE_HEADER, token)),
        None => headers_to_remove.push(SETTLE_HEADER.to_owned()),
    }
    CheckResponse {
        status: Some(rpc::Status {
            code: Code::Ok as i32,
            message: String::new(),
            details: vec![],
        }),
        http_response: Some(check_response::HttpResponse::OkResponse(OkHttpResponse {
            headers,
            headers_to_remove,
            response_headers_to_add: header_pairs(paid)
                .iter()
                .map(|(k, v)| overwrite(k, v))
                .collect(),
        })),
    }
}

fn deny(reply: &Reply) -> CheckResponse {
    CheckResponse {
        status: Some(rpc::Status {
            code: Code::PermissionDenied as i32,
            message: reason(reply),
            details: vec![],
        }),
        http_response: Some(check_response::HttpResponse::DeniedResponse(
            DeniedHttpResponse {
                status: Some(HttpStatus {
                    code: i32::from(reply.status.as_u16()),
                }),
                headers: header_pairs(&reply.headers)
                    .iter()
                    .map(|(k, v)| overwrite(k, v))
                    .collect(),
                body: String::from_utf8_lossy(&reply.body).into_owned(),
            },
        )),
    }
}

/// Why a request was denied, for Envoy's logs: the error code of Purser's envelope,
/// `payment_required` for a challenge (its body says why), else the HTTP status.
fn reason(reply: &Reply) -> String {
    let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    match (body["error"]["code"].as_str(), reply.status) {
        (Some(code), _) => code.to_owned(),
        (None, StatusCode::PAYMENT_REQUIRED) => "payment_required".to_owned(),
        (None, status) => status.as_str().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(scheme: &str, host: &str, path: &str) -> auth::attribute_context::HttpRequest {
        auth::attribute_context::HttpRequest {
            method: "GET".into(),
            headers: HashMap::from([(":authority".into(), "authority.example".into())]),
            path: path.into(),
            host: host.into(),
            scheme: scheme.into(),
        }
    }

    #[test]
    fn the_url_joins_scheme_host_and_target() {
        assert_eq!(
            url_of(&http("https", "api.example", "/w/lisbon?units=metric")),
            "https://api.example/w/lisbon?units=metric"
        );
        assert_eq!(
            url_of(&http("", "", "/w")),
            "http://authority.example/w",
            "no scheme is http; no host is :authority"
        );
    }

    #[test]
    fn settlement_is_before_unless_the_route_says_after() {
        let context = |v: &str| HashMap::from([(CONTEXT_SETTLE.to_owned(), v.to_owned())]);
        assert_eq!(
            settle_timing(&HashMap::new()).unwrap(),
            SettleTiming::Before
        );
        assert_eq!(
            settle_timing(&context("after")).unwrap(),
            SettleTiming::After
        );
        assert_eq!(
            settle_timing(&context("later")).unwrap_err().code(),
            purser_domain::ErrorCode::InvalidInput
        );
    }

    #[test]
    fn allowed_requests_lose_the_payment_and_any_forged_purser_header() {
        let answer = allow("0xPayer", None, &HeaderMap::new());
        assert_eq!(answer.status.unwrap().code, 0);
        let Some(check_response::HttpResponse::OkResponse(ok)) = answer.http_response else {
            panic!("an ok response");
        };
        let payer = &ok.headers[0];
        assert_eq!(payer.header.as_ref().unwrap().key, PAYER_HEADER);
        assert_eq!(
            payer.append_action,
            HeaderAppendAction::OverwriteIfExistsOrAdd as i32
        );
        for name in ["payment-signature", "x-payment", SETTLE_HEADER] {
            assert!(ok.headers_to_remove.iter().any(|h| h == name), "{name}");
        }
    }
}
