//! What resolvers take from the request context: the store, the services and the caller.

use std::str::FromStr;
use std::sync::Arc;

use async_graphql::{Context, ID};
use purser_domain::auth::Principal;
use purser_domain::coord::Invalidator;
use purser_domain::repo::Store;
use purser_domain::{Error, ErrorCode};
use purser_metering::Metering;
use purser_registry::Registry;

use crate::error::{GqlError, GqlResult};

pub fn store<'a>(ctx: &Context<'a>) -> &'a Arc<dyn Store> {
    ctx.data_unchecked::<Arc<dyn Store>>()
}

/// Announces changes that instances may have cached (keys, tenants, grants).
pub fn invalidator<'a>(ctx: &Context<'a>) -> &'a Arc<Invalidator> {
    ctx.data_unchecked::<Arc<Invalidator>>()
}

pub fn metering<'a>(ctx: &Context<'a>) -> &'a Arc<Metering> {
    ctx.data_unchecked::<Arc<Metering>>()
}

pub fn registry<'a>(ctx: &Context<'a>) -> &'a Arc<Registry> {
    ctx.data_unchecked::<Arc<Registry>>()
}

/// The caller, or `unauthenticated` for anonymous requests.
pub fn principal(ctx: &Context<'_>) -> GqlResult<Principal> {
    ctx.data_opt::<Principal>().copied().ok_or_else(|| {
        GqlError::new(
            ErrorCode::Unauthenticated,
            "this field needs an API key: `Authorization: Bearer <api key>`",
        )
    })
}

/// Parses a GraphQL `ID` into a typed id.
pub fn parse_id<T: FromStr<Err = Error>>(id: &ID) -> GqlResult<T> {
    Ok(id.as_str().parse::<T>()?)
}

pub fn parse_optional_id<T: FromStr<Err = Error>>(id: Option<&ID>) -> GqlResult<Option<T>> {
    id.map(parse_id).transpose()
}
