//! The `payment-identifier` extension: the client's idempotency key for one payment.
//!
//! The server declares `extensions["payment-identifier"] = {info: {required: bool}, schema}`;
//! the client echoes it and adds `info.id`, 16 to 128 characters of `[A-Za-z0-9_-]` (the SDK
//! generates `pay_` and 32 hex digits), reused on every retry of the same payment. A new id is
//! processed; the same id with the same payload answers the stored result; the same id with a
//! different payload is a 409; a missing id where the server requires one is a 400
//! (`invalid_payment_identifier`).

use std::fmt;

use purser_core::{Error, ErrorCode};
use serde_json::Value;

use crate::error::snippet;
use crate::v2::{Extensions, PaymentPayload};

/// The extension's key in `extensions`.
pub const PAYMENT_IDENTIFIER: &str = "payment-identifier";
pub const PAYMENT_ID_MIN_CHARS: usize = 16;
pub const PAYMENT_ID_MAX_CHARS: usize = 128;

/// A valid payment id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PaymentId(String);

impl PaymentId {
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        if !(PAYMENT_ID_MIN_CHARS..=PAYMENT_ID_MAX_CHARS).contains(&s.len()) {
            return Err("info.id must be 16 to 128 characters");
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err("info.id may contain only letters, digits, `_` and `-`");
        }
        Ok(PaymentId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PaymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PaymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PaymentId({})", self.0)
    }
}

/// What a payload says about its payment identifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentIdentifier {
    /// No `payment-identifier` entry in `extensions`.
    Absent,
    /// The entry is there (the server's declaration, echoed) but carries no `info.id`.
    Declared { required: bool },
    /// A valid id. `required` is what the echoed declaration says; a server decides from its
    /// own configuration, not from this.
    Present { id: PaymentId, required: bool },
    /// The entry or its id is malformed.
    Invalid { problem: String },
}

impl PaymentIdentifier {
    /// Reads `extensions["payment-identifier"]`.
    pub fn from_extensions(extensions: Option<&Extensions>) -> Self {
        let Some(entry) = extensions.and_then(|e| e.get(PAYMENT_IDENTIFIER)) else {
            return PaymentIdentifier::Absent;
        };
        let invalid = |problem: &str| PaymentIdentifier::Invalid {
            problem: problem.to_owned(),
        };
        let Some(info) = entry.get("info") else {
            return invalid("has no info object");
        };
        let Value::Object(info) = info else {
            return invalid("info must be an object");
        };
        let required = match info.get("required") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return invalid("info.required must be a boolean"),
        };
        match info.get("id") {
            None | Some(Value::Null) => PaymentIdentifier::Declared { required },
            Some(Value::String(id)) => match PaymentId::parse(id) {
                Ok(id) => PaymentIdentifier::Present { id, required },
                Err(problem) => PaymentIdentifier::Invalid {
                    problem: format!("{problem}, not {}", snippet(id)),
                },
            },
            Some(_) => invalid("info.id must be a string"),
        }
    }

    /// The id to deduplicate by, or `invalid_payment_identifier` when the entry is malformed,
    /// or when `required` (the server's own setting) and there is no id.
    pub fn require(self, required: bool) -> Result<Option<PaymentId>, Error> {
        let error = |m: String| {
            Error::new(
                ErrorCode::InvalidPaymentIdentifier,
                format!("the {PAYMENT_IDENTIFIER} extension {m}"),
            )
        };
        match self {
            PaymentIdentifier::Present { id, .. } => Ok(Some(id)),
            PaymentIdentifier::Invalid { problem } => Err(error(problem)),
            PaymentIdentifier::Absent | PaymentIdentifier::Declared { .. } if required => {
                Err(error("must carry info.id on this resource".into()))
            }
            PaymentIdentifier::Absent | PaymentIdentifier::Declared { .. } => Ok(None),
        }
    }
}

impl PaymentPayload {
    /// The payload's `payment-identifier`, if any.
    pub fn payment_identifier(&self) -> PaymentIdentifier {
        PaymentIdentifier::from_extensions(self.extensions.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> PaymentIdentifier {
        PaymentIdentifier::from_extensions(v.as_object())
    }

    #[test]
    fn distinguishes_absent_declared_present_and_invalid() {
        assert_eq!(
            PaymentIdentifier::from_extensions(None),
            PaymentIdentifier::Absent
        );
        assert_eq!(read(json!({"bazaar": {}})), PaymentIdentifier::Absent);
        assert_eq!(
            read(json!({"payment-identifier": {"info": {"required": true}}})),
            PaymentIdentifier::Declared { required: true }
        );
        let id = "pay_bfc47ff8fbe748a9a064c89ba8696c08";
        assert_eq!(
            read(json!({"payment-identifier": {"info": {"required": false, "id": id}}})),
            PaymentIdentifier::Present {
                id: PaymentId::parse(id).unwrap(),
                required: false
            }
        );
        for bad in [
            json!({"payment-identifier": 5}),
            json!({"payment-identifier": {"info": []}}),
            json!({"payment-identifier": {"info": {"required": "yes"}}}),
            json!({"payment-identifier": {"info": {"id": 7}}}),
            json!({"payment-identifier": {"info": {"id": "short"}}}),
            json!({"payment-identifier": {"info": {"id": "x".repeat(129)}}}),
            json!({"payment-identifier": {"info": {"id": "has space in it!!"}}}),
            json!({"payment-identifier": {"info": {"id": "ünïcödé_ünïcödé_"}}}),
        ] {
            assert!(
                matches!(read(bad.clone()), PaymentIdentifier::Invalid { .. }),
                "{bad}"
            );
        }
        assert!(PaymentId::parse(&"a".repeat(16)).is_ok());
        assert!(PaymentId::parse(&"a".repeat(128)).is_ok());
        assert!(PaymentId::parse(&"a".repeat(15)).is_err());
    }

    #[test]
    fn require_applies_the_servers_setting() {
        assert_eq!(PaymentIdentifier::Absent.require(false).unwrap(), None);
        let err = PaymentIdentifier::Declared { required: false }
            .require(true)
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidPaymentIdentifier);
        let err = PaymentIdentifier::Invalid {
            problem: "x".into(),
        }
        .require(false)
        .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidPaymentIdentifier);
        let id = PaymentId::parse("abcdefghijklmnop").unwrap();
        let got = PaymentIdentifier::Present {
            id: id.clone(),
            required: false,
        }
        .require(true)
        .unwrap();
        assert_eq!(got, Some(id));
    }
}
