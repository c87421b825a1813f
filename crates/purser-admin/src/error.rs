//! Errors in GraphQL answers carry `extensions.code` from the error table.
//!
//! Resolvers return [`GqlResult`]. [`GqlError`] deliberately does not implement `Display`, so
//! async-graphql's blanket conversion (which would keep only a message) cannot apply: every
//! error reaching a client goes through [`From<GqlError>`] and gets its code.

use purser_domain::{Error, ErrorCode};

#[derive(Clone, Debug)]
pub struct GqlError {
    code: ErrorCode,
    message: String,
}

pub type GqlResult<T> = Result<T, GqlError>;

impl GqlError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<Error> for GqlError {
    fn from(err: Error) -> Self {
        purser_http::error::log_error(&err);
        Self {
            code: err.code(),
            message: err.public_message().to_owned(),
        }
    }
}

impl From<GqlError> for async_graphql::Error {
    fn from(err: GqlError) -> Self {
        coded_error(err.code, err.message)
    }
}

/// A GraphQL error with `extensions.code`.
pub fn coded_error(code: ErrorCode, message: impl Into<String>) -> async_graphql::Error {
    let mut error = async_graphql::Error::new(message);
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code.as_str());
    error
}
