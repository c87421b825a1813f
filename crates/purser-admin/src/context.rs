//! What resolvers take from the request context: the store, the services and the caller.

use std::str::FromStr;
use std::sync::Arc;

use async_graphql::{Context, ID};
use purser_domain::auth::{Access, KeyOwner, Principal, TenantScope};
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

/// The tenant the caller may act on, for `access`: a tenant key's own (naming another is
/// `forbidden`), or the one an operator names in `tenant_id`, which must exist (`not_found`).
pub async fn scope(
    ctx: &Context<'_>,
    tenant_id: Option<&ID>,
    access: Access,
) -> GqlResult<TenantScope> {
    let principal = principal(ctx)?;
    let requested = parse_optional_id(tenant_id)?;
    Ok(principal
        .checked_scope(store(ctx).as_ref(), requested, access)
        .await?)
}

/// Whose keys the caller manages, for `access`, as [`scope`] decides it; operators naming no
/// tenant manage the platform's keys.
pub async fn key_owner(
    ctx: &Context<'_>,
    tenant_id: Option<&ID>,
    access: Access,
) -> GqlResult<KeyOwner> {
    let principal = principal(ctx)?;
    let requested = parse_optional_id(tenant_id)?;
    Ok(principal
        .checked_key_owner(store(ctx).as_ref(), requested, access)
        .await?)
}
