//! The closed table of error codes and the error type every Purser boundary speaks.
//!
//! Clients branch on [`ErrorCode::as_str`], never on messages. A code is added thoughtfully:
//! it is a public contract, listed in the README, and its HTTP status never changes.

use std::borrow::Cow;
use std::fmt;

macro_rules! error_codes {
    ($( $variant:ident = ($status:literal, $name:literal, $description:literal), )*) => {
        /// A stable, machine-readable error code with its HTTP status.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( #[doc = $description] $variant, )*
        }

        impl ErrorCode {
            /// Every code, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The snake_case name clients branch on.
            pub const fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $name,)* }
            }

            /// The HTTP status an HTTP boundary answers with.
            pub const fn http_status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)* }
            }

            /// One line saying when the code is used.
            pub const fn description(self) -> &'static str {
                match self { $(ErrorCode::$variant => $description,)* }
            }

            /// The code with this name, if there is one.
            pub fn from_name(name: &str) -> Option<Self> {
                match name { $($name => Some(ErrorCode::$variant),)* _ => None }
            }
        }
    };
}

error_codes! {
    InvalidInput = (400, "invalid_input", "a field failed validation; the message names it"),
    MalformedJson = (400, "malformed_json", "the body is not JSON of the expected shape"),
    MalformedPaymentHeader = (400, "malformed_payment_header", "an x402 header is not base64 of a JSON object of the expected shape, or is too large; the message says which"),
    UnsupportedX402Version = (400, "unsupported_x402_version", "the message's x402Version is not one this endpoint accepts"),
    InvalidNetwork = (400, "invalid_network", "a network is neither a valid CAIP-2 id nor a known x402 v1 network name"),
    InvalidPaymentPayload = (400, "invalid_payment_payload", "the scheme-specific payment payload fails validation; the message names the field"),
    InvalidPaymentIdentifier = (400, "invalid_payment_identifier", "the payment-identifier extension is malformed, or has no id where one is required"),
    InvalidJsonSchema = (400, "invalid_json_schema", "a JSON Schema is not a valid 2020-12 schema, or an example does not match its schema"),
    InvalidAddress = (400, "invalid_address", "an address is not an EIP-55 checksummed EVM address"),
    InvalidPrice = (400, "invalid_price", "a price is zero, beyond the asset's range, or finer than the asset's decimals"),
    InvalidRouteTemplate = (400, "invalid_route_template", "a resource URL or route template is not an absolute http(s) URL, or a path parameter holds `..` or `://`"),
    UnsupportedNetwork = (400, "unsupported_network", "no rail on this Purser settles this network, or not this asset on it"),
    NetworkNotEnabled = (400, "network_not_enabled", "the tenant has no payout address on this network"),
    MalformedSignIn = (400, "malformed_sign_in", "the SIGN-IN-WITH-X header is not base64 JSON of a sign-in, or a field of its message (address, URI, timestamp, nonce) is malformed"),
    MalformedCloudEvent = (400, "malformed_cloudevent", "a usage event is not a CloudEvents 1.0 JSON object with the attributes Purser needs (specversion 1.0, id, source, type, subject, an RFC 3339 time, JSON data); the message names the attribute"),
    EventTooOld = (400, "event_too_old", "the event's time is further in the past than `metering.max_event_age_seconds` allows"),
    EventInFuture = (400, "event_in_future", "the event's time is further in the future than `metering.max_future_skew_seconds` allows"),
    MeterValueMissing = (400, "meter_value_missing", "the value JSONPath of a meter of this event type selects nothing in the event's data"),
    MeterValueNotNumeric = (400, "meter_value_not_numeric", "the value a meter of this event type selects is not a number or a decimal string"),
    InvalidJsonPath = (400, "invalid_json_path", "a JSONPath is not a singular path (`$`, member names and array indices, RFC 9535)"),
    InvalidUsageQuery = (400, "invalid_usage_query", "a usage query's period, window, time zone, filter or group-by is not valid; the message names it"),
    InvalidPriceModel = (400, "invalid_price_model", "a meter's price model is not valid (negative amounts, unordered tiers, a zero package); the message names it"),
    SignInUnsupportedChain = (400, "sign_in_unsupported_chain", "the sign-in names a chain this Purser does not accept sign-ins from"),
    GraphqlParseError = (400, "graphql_parse_error", "the GraphQL document does not parse"),
    GraphqlValidationFailed = (400, "graphql_validation_failed", "the GraphQL document does not validate against the schema"),
    QueryTooDeep = (400, "query_too_deep", "the GraphQL query nests deeper than a configured limit (selections, brackets of the document, or list and object values)"),
    QueryTooComplex = (400, "query_too_complex", "the GraphQL query is more complex than the configured limit"),
    QueryTooLarge = (400, "query_too_large", "the GraphQL request exceeds a size limit (bytes, tokens, fields or aliases once fragments are expanded, fragments, operations, directives, or the size and nesting of its variables); the message names the limit"),
    MalformedHttp = (400, "malformed_http", "the request is not valid HTTP: its request line or a header could not be parsed"),
    Unauthenticated = (401, "unauthenticated", "the operation needs an API key and none was given"),
    InvalidApiKey = (401, "invalid_api_key", "the API key is malformed or unknown"),
    ApiKeyRevoked = (401, "api_key_revoked", "the API key was revoked"),
    SignInDomainMismatch = (401, "sign_in_domain_mismatch", "the signed-in domain is not the host the request was sent to"),
    SignInUriMismatch = (401, "sign_in_uri_mismatch", "the request's URL does not start with the signed-in URI"),
    SignInStale = (401, "sign_in_stale", "the sign-in was issued more than five minutes ago; sign in again"),
    SignInIssuedInFuture = (401, "sign_in_issued_in_future", "the sign-in's issuedAt is in the future"),
    SignInExpired = (401, "sign_in_expired", "the sign-in's expirationTime has passed"),
    SignInNotYetValid = (401, "sign_in_not_yet_valid", "the sign-in's notBefore has not come yet"),
    SignInNonceInvalid = (401, "sign_in_nonce_invalid", "the sign-in's nonce was not issued by this Purser, has expired, or was used before"),
    SignInSignatureInvalid = (401, "sign_in_signature_invalid", "the sign-in's signature is not the signed-in address's (EIP-191, ERC-1271, or ERC-6492 through an allowlisted factory)"),
    SessionInvalid = (401, "session_invalid", "the session token is malformed, tampered with, or signed by a key Purser does not hold"),
    SessionExpired = (401, "session_expired", "the session token has expired; sign in again"),
    // 402, not 409: the remedy is a payment (a top-up), which is what 402 asks x402 clients
    // for; a 409 would say the request clashed with a state it could succeed against unchanged.
    InsufficientCredit = (402, "insufficient_credit", "the payer's available prepaid credit is less than the amount to reserve; top up and retry"),
    SignInRequired = (402, "sign_in_required", "the request proves no wallet: sign in (SIGN-IN-WITH-X) or send a session token, or pay"),
    NoEntitlement = (402, "no_entitlement", "the signed-in wallet holds no grant for this resource and asked for no credit: pay, or top up and reserve"),
    Forbidden = (403, "forbidden", "the key's role does not allow the operation"),
    NotFound = (404, "not_found", "no such object visible to the caller"),
    RouteNotFound = (404, "route_not_found", "no such HTTP route"),
    MethodNotAllowed = (405, "method_not_allowed", "the route does not accept this HTTP method"),
    RequestTimeout = (408, "request_timeout", "the request took longer than the configured limit"),
    Conflict = (409, "conflict", "the change conflicts with the current state"),
    TenantNameTaken = (409, "tenant_name_taken", "another tenant already has this name"),
    MeterSlugTaken = (409, "meter_slug_taken", "the tenant already has a meter with this slug"),
    EventVoided = (409, "event_voided", "the event was voided; a voided event takes no further corrections"),
    ResourceNotPublishable = (409, "resource_not_publishable", "the resource lacks what publishing needs (an accepted network with a payout address), or is archived"),
    PaymentAlreadyUsed = (409, "payment_already_used", "this payment was presented before; a resource server takes each payment once, so sign a new one"),
    EscrowExceedsHeld = (409, "escrow_exceeds_held", "the capture is more than the escrow holds of the payment, or nothing is held to void"),
    EscrowCaptureExpired = (409, "escrow_capture_expired", "the payment's authorization expired (its capture deadline passed): nothing can be captured, the payer may reclaim the hold"),
    EscrowExceedsCaptured = (409, "escrow_exceeds_captured", "the refund is more than was captured and not yet refunded"),
    EscrowRefundExpired = (409, "escrow_refund_expired", "the payment's refund window has closed"),
    EscrowOperationRefused = (409, "escrow_operation_refused", "the escrow operation was refused (the message gives the x402 reason) or failed on chain; nothing moved"),
    EscrowOperationInFlight = (409, "escrow_operation_in_flight", "another operation on this escrowed payment (authorize, capture, void, refund) is not final yet; retry once it is"),
    PaymentIdentifierConflict = (409, "payment_identifier_conflict", "the payment identifier was used before with another payment payload"),
    PayloadTooLarge = (413, "payload_too_large", "the body is larger than the configured limit"),
    BatchTooLarge = (413, "batch_too_large", "the batch holds more events than `metering.max_batch_events`"),
    UriTooLong = (414, "uri_too_long", "the request's URL is longer than `server.max_url_bytes`"),
    UnsupportedMediaType = (415, "unsupported_media_type", "the body's content type is not accepted here"),
    RateLimited = (429, "rate_limited", "too many requests; retry after the `Retry-After` seconds"),
    HeadersTooLarge = (431, "headers_too_large", "the request's headers are larger than `server.max_header_bytes`, or more than `server.max_headers`"),
    Internal = (500, "internal", "an unexpected error; details are in the server log, never in the answer"),
    FacilitatorUnavailable = (502, "facilitator_unavailable", "the facilitator could not be reached or gave no verdict; retry with the same payment"),
    UpstreamUnavailable = (502, "upstream_unavailable", "the gateway could not reach the merchant's upstream, or it broke off; nothing was settled"),
    Unavailable = (503, "unavailable", "a dependency (database, Redis) is unreachable"),
    Overloaded = (503, "overloaded", "the route has as many requests in flight as it allows, or the server as many connections; retry after the `Retry-After` seconds"),
    UpstreamTimeout = (504, "upstream_timeout", "the merchant's upstream did not answer in the route's timeout; nothing was settled"),
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error with a stable code, a message safe to show the caller and, for internal errors,
/// the underlying cause (logged, never shown).
pub struct Error {
    code: ErrorCode,
    message: Cow<'static, str>,
    source: Option<BoxError>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
            source: None,
        }
    }

    pub fn invalid_input(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// An unexpected failure. `context` says what was being done; it and `source` go to the log.
    pub fn internal(context: impl Into<Cow<'static, str>>, source: impl Into<BoxError>) -> Self {
        Self {
            code: ErrorCode::Internal,
            message: context.into(),
            source: Some(source.into()),
        }
    }

    /// A dependency could not be reached.
    pub fn unavailable(context: impl Into<Cow<'static, str>>, source: impl Into<BoxError>) -> Self {
        Self {
            code: ErrorCode::Unavailable,
            message: context.into(),
            source: Some(source.into()),
        }
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message as written, including internal context. For logs.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What a caller may see: internal errors and unreachable dependencies answer a fixed text.
    pub fn public_message(&self) -> &str {
        match self.code {
            ErrorCode::Internal => "internal error",
            ErrorCode::Unavailable => "a dependency is unavailable; retry later",
            _ => &self.message,
        }
    }

    /// Whether the error is the server's fault (to be logged at error level with its cause).
    pub fn is_server_error(&self) -> bool {
        self.code.http_status() >= 500
    }

    /// The message followed by every cause in the chain, for logs.
    pub fn chain(&self) -> String {
        let mut out = self.message.to_string();
        let mut next: Option<&(dyn std::error::Error + 'static)> = self
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static));
        while let Some(cause) = next {
            out.push_str(": ");
            out.push_str(&cause.to_string());
            next = cause.source();
        }
        out
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("code", &self.code)
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_snake_case_and_round_trip() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let name = code.as_str();
            assert!(seen.insert(name), "duplicate code {name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()),
                "{name} is not snake_case"
            );
            assert_eq!(ErrorCode::from_name(name), Some(*code));
            assert!((400..600).contains(&code.http_status()));
        }
        assert_eq!(ErrorCode::from_name("no_such_code"), None);
    }

    /// The README's table is the public contract: every code, with its status, and nothing else.
    #[test]
    fn readme_documents_every_code_with_its_status() {
        let readme = include_str!("../../../README.md");
        let documented: Vec<&str> = readme
            .lines()
            .filter(|l| l.starts_with("| `") && l.matches('|').count() == 4)
            .collect();
        for code in ErrorCode::ALL {
            let row = format!("| `{}` | {} |", code.as_str(), code.http_status());
            assert!(
                documented.iter().any(|l| l.starts_with(&row)),
                "README lacks the row {row}"
            );
        }
        let codes_in_readme = documented
            .iter()
            .filter(|l| {
                l.split('|')
                    .nth(2)
                    .is_some_and(|s| s.trim().parse::<u16>().is_ok())
            })
            .count();
        assert_eq!(
            codes_in_readme,
            ErrorCode::ALL.len(),
            "README lists codes that do not exist"
        );
    }

    #[test]
    fn internal_errors_hide_their_cause_from_callers() {
        let err = Error::internal(
            "loading tenant",
            std::io::Error::other("password=hunter2 rejected"),
        );
        assert_eq!(err.public_message(), "internal error");
        assert!(err.chain().contains("hunter2"), "the log keeps the cause");
        let err = Error::invalid_input("name must not be empty");
        assert_eq!(err.public_message(), "name must not be empty");
    }
}
