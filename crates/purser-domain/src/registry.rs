//! The registry: what merchants sell (resources, with versioned prices and schemas), where they
//! are paid (payout addresses per network), and the public catalog agents search.
//!
//! A resource has a stable identity (kind, URL, method or tool, descriptive metadata that can
//! change in place) and a history of [`ResourceVersion`]s. Anything a payer signs against (the
//! accepted networks and assets, amounts, `payTo`, timeout, schemes) and anything a client
//! codes against (the input and output schemas) lives in a version; changing it appends a new
//! version. A 402 issued under an older version stays payable until its `maxTimeoutSeconds`
//! have passed since that version was superseded ([`ResourceVersion::payable_at`]).
//!
//! Validation that needs more than the standard library (URLs, JSON Schema, EIP-55 checksums)
//! happens in `purser-registry` before anything reaches a repository; the types here hold
//! values that passed it. What every stored text and JSON value must be ([`crate::text`]: no
//! NUL, no control characters in one-line fields, bounded lengths and nesting) is checked here,
//! by `check` on [`NewResource`], [`ResourceChange`] and [`LearnedResource`], which the registry
//! calls before storing and both stores call again.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, ErrorCode, Result};
use crate::id::{ResourceId, TenantId};
use crate::macros::string_enum;
use crate::money::Amount;
use crate::text::{self, JsonRule, Length, TextRule};

string_enum!(
    /// What a resource is called through.
    ResourceKind, "resource type" {
        Http = "http",
        Mcp = "mcp",
    }
);

string_enum!(
    /// Where a resource stands in its merchant's hands.
    ResourceStatus, "resource status" {
        /// Being edited; not in the catalog and not payable.
        Draft = "draft",
        /// Listed in the catalog and payable.
        Published = "published",
        /// Withdrawn for good; kept for history and for payments already made.
        Archived = "archived",
    }
);

string_enum!(
    /// How Purser came to know a resource.
    ResourceOrigin, "resource origin" {
        /// A merchant registered it through the admin API.
        Merchant = "merchant",
        /// Learned from the `bazaar` extension of a payment Purser settled.
        Bazaar = "bazaar",
    }
);

string_enum!(
    /// What the freshness prober last saw at the resource's URL.
    ResourceHealth, "resource health" {
        /// Not probed yet, or not probeable (an MCP tool, a route template).
        Unknown = "unknown",
        /// Answered 402 with a `PAYMENT-REQUIRED` that matches the listing.
        Healthy = "healthy",
        /// Did not; hidden from the catalog once unhealthy for the configured time.
        Unhealthy = "unhealthy",
    }
);

/// Where a tenant is paid on one network. Registering one enables the network for the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutAddress {
    pub tenant_id: TenantId,
    /// CAIP-2, e.g. `eip155:8453`.
    pub network: String,
    /// EIP-55 checksummed.
    pub address: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How a version's price was given. Amounts in the version's [`Accept`]s are always atomic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum PriceSpec {
    /// The same count of atomic units in every accepted asset.
    Atomic { amount: Amount },
    /// A USD price as a decimal string (`"0.01"`), converted with each asset's decimals; every
    /// asset Purser settles is a USD stablecoin.
    Usd { usd: String },
    /// A usage price: each call is `units` of the tenant's priced meter `meter` (a slug), and
    /// costs what the meter's price asks for that many units beyond the free ones
    /// ([`crate::metering::MeterPrice::call_price`]). The amounts follow the meter's price
    /// when it changes, without a new version.
    Meter {
        meter: String,
        units: rust_decimal::Decimal,
    },
}

/// One way to pay a version: resolved, so a 402 is built without looking anything up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Accept {
    pub scheme: String,
    pub network: String,
    pub asset: String,
    pub amount: Amount,
    pub pay_to: String,
    /// The token's EIP-712 domain, as `extra` in the 402.
    pub eip712_name: String,
    pub eip712_version: String,
    /// More of `extra` the scheme asks for: for `auth-capture`, the facilitator's terms
    /// (operator, receiver authorizer, escrow, fees) when the version was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<serde_json::Map<String, Value>>,
}

/// Everything a payer or a client depends on: changing any of it makes a new version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionSpec {
    pub price: PriceSpec,
    pub accepts: Vec<Accept>,
    pub max_timeout_seconds: u32,
    /// Input description: for HTTP, a JSON Schema (2020-12) of the query or body; for MCP,
    /// the tool's input schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_example: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_example: Option<Value>,
    /// For HTTP: where the input goes (`query` for GET-like methods, `json`, `form-data` or
    /// `text` for bodies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_type: Option<String>,
    /// For a resource learned from a payment: its `bazaar` extension as the resource server
    /// declared it (validated), echoed in the catalog instead of one Purser builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bazaar: Option<Value>,
    /// What a payment buys beyond its request: repeat access for the payer's wallet, signed in
    /// with Sign-In-With-X. `None`: every request pays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_access: Option<crate::entitlement::RepeatAccess>,
    /// How `auth-capture` payments of this version are held and finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escrow: Option<crate::escrow::EscrowTerms>,
}

/// One version of a resource's [`VersionSpec`].
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceVersion {
    pub resource_id: ResourceId,
    /// 1, 2, ...
    pub version: u32,
    pub spec: VersionSpec,
    pub created_at: DateTime<Utc>,
    /// When the next version replaced it; `None` for the current one.
    pub superseded_at: Option<DateTime<Utc>>,
}

impl ResourceVersion {
    /// Whether a challenge issued under this version may still be paid at `now`: always for
    /// the current version, and for an older one until its timeout has run out after it was
    /// replaced (no challenge under it was issued later than that).
    pub fn payable_at(&self, now: DateTime<Utc>) -> bool {
        match self.superseded_at {
            None => true,
            Some(at) => now <= at + Duration::seconds(i64::from(self.spec.max_timeout_seconds)),
        }
    }
}

/// The descriptive part of a resource, changed in place (no new version).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceMetadata {
    /// A short title; searched with the highest weight.
    pub name: String,
    pub description: String,
    pub mime_type: Option<String>,
    pub service_name: Option<String>,
    pub tags: Vec<String>,
    pub icon_url: Option<String>,
}

impl ResourceMetadata {
    /// Checks each field against [`crate::text`]'s rules: `invalid_input` naming it.
    pub fn check(&self) -> Result<()> {
        text::RESOURCE_NAME.check("name", &self.name)?;
        text::RESOURCE_DESCRIPTION.check("description", &self.description)?;
        if let Some(mime_type) = &self.mime_type {
            text::MIME_TYPE.check("mimeType", mime_type)?;
        }
        if let Some(service_name) = &self.service_name {
            text::SERVICE_NAME.check("serviceName", service_name)?;
        }
        for tag in &self.tags {
            text::TAG.check("a tag", tag)?;
        }
        if let Some(icon_url) = &self.icon_url {
            text::URL.check("iconUrl", icon_url)?;
        }
        Ok(())
    }
}

/// A term a payer signs against (scheme, network, asset, `payTo`, the token's EIP-712 name
/// and version): one line, possibly empty (a learned token may declare no EIP-712 domain).
const PAYMENT_TERM: TextRule = TextRule::single_line(Length::Bytes(256)).or_empty();
/// How much deeper than its documents a whole spec nests (the spec object, `price`, one
/// `accepts` entry...).
const SPEC_LEVELS: usize = 4;

impl VersionSpec {
    /// Checks what the version stores (as JSON) against [`crate::text`]'s rules:
    /// `invalid_input` naming the field. Schemas, examples and a learned `bazaar` extension
    /// are [`text::DOCUMENT`]s; the terms are one-line text; and nothing anywhere in the spec
    /// holds `\u0000` (a USD price, say, is stored as given until it is converted).
    pub fn check(&self) -> Result<()> {
        for (field, document) in [
            ("inputSchema", &self.input_schema),
            ("outputSchema", &self.output_schema),
            ("inputExample", &self.input_example),
            ("outputExample", &self.output_example),
            ("bazaar", &self.bazaar),
        ] {
            if let Some(document) = document {
                text::DOCUMENT.check(field, document)?;
            }
        }
        for accept in &self.accepts {
            for (field, term) in [
                ("an accepted scheme", &accept.scheme),
                ("an accepted network", &accept.network),
                ("an accepted asset", &accept.asset),
                ("an accepted payTo", &accept.pay_to),
                ("an accepted asset's EIP-712 name", &accept.eip712_name),
                (
                    "an accepted asset's EIP-712 version",
                    &accept.eip712_version,
                ),
            ] {
                PAYMENT_TERM.check(field, term)?;
            }
        }
        let whole = serde_json::to_value(self)
            .map_err(|e| Error::internal("encoding a resource version", e))?;
        JsonRule {
            max_depth: text::DOCUMENT.max_depth + SPEC_LEVELS,
        }
        .check("the resource's terms", &whole)
    }
}

/// Checks what identifies a listing: its URL and, for MCP, its tool name.
fn check_listing(url: &str, tool: Option<&str>) -> Result<()> {
    text::URL.check("url", url)?;
    if let Some(tool) = tool {
        text::TOOL_NAME.check("toolName", tool)?;
    }
    Ok(())
}

/// A resource with its current version.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub id: ResourceId,
    pub tenant_id: TenantId,
    pub origin: ResourceOrigin,
    pub kind: ResourceKind,
    /// Absolute http(s) URL; for HTTP its path may hold `:param` segments (a route template);
    /// for MCP, the server's endpoint.
    pub url: String,
    /// HTTP method (upper case), for HTTP resources.
    pub method: Option<String>,
    /// Tool name, for MCP resources.
    pub tool: Option<String>,
    pub metadata: ResourceMetadata,
    pub status: ResourceStatus,
    pub current: ResourceVersion,
    pub health: ResourceHealth,
    pub health_checked_at: Option<DateTime<Utc>>,
    /// Why the last probe failed.
    pub health_detail: Option<String>,
    pub unhealthy_since: Option<DateTime<Utc>>,
    /// Hidden from the catalog by the prober (unhealthy for longer than allowed).
    pub hidden: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The extensions every catalog entry's 402 carries.
pub const CATALOG_EXTENSIONS: &[&str] = &["bazaar"];

impl Resource {
    /// The names of the x402 extensions its 402 carries.
    pub fn extension_names(&self) -> &'static [&'static str] {
        CATALOG_EXTENSIONS
    }

    /// Whether a change made against `expected_version` may be applied now.
    pub fn check_change(&self, expected_version: u32) -> Result<()> {
        if self.status == ResourceStatus::Archived {
            return Err(Error::new(
                ErrorCode::Conflict,
                "the resource is archived; archived resources do not change",
            ));
        }
        if self.current.version != expected_version {
            return Err(Error::new(
                ErrorCode::Conflict,
                format!(
                    "the resource is at version {}, not {expected_version}: read it again and retry",
                    self.current.version
                ),
            ));
        }
        Ok(())
    }

    /// Whether the resource may move to `status`. Archived is final.
    pub fn check_status_change(&self, status: ResourceStatus) -> Result<()> {
        if self.status == ResourceStatus::Archived && status != ResourceStatus::Archived {
            return Err(Error::new(
                ErrorCode::ResourceNotPublishable,
                "the resource is archived; archived resources stay archived",
            ));
        }
        Ok(())
    }
}

/// What makes two listings of one tenant the same resource: kind, method or tool, and URL.
pub fn resource_key(
    kind: ResourceKind,
    url: &str,
    method: Option<&str>,
    tool: Option<&str>,
) -> String {
    format!("{kind} {} {url}", method.or(tool).unwrap_or(""))
}

/// The words of the service name and tags, for the search index.
pub fn search_tags(metadata: &ResourceMetadata) -> String {
    let mut text = metadata.service_name.clone().unwrap_or_default();
    for tag in &metadata.tags {
        text.push(' ');
        text.push_str(tag);
    }
    let mut words = Vec::new();
    search_words(&text, &mut words);
    words.join(" ")
}

/// The words of a search query, deduplicated, at most 32 of them.
pub fn query_words(query: &str) -> Vec<String> {
    let mut words = Vec::new();
    search_words(query, &mut words);
    let mut seen = std::collections::HashSet::new();
    words.retain(|w| seen.insert(w.clone()));
    words.truncate(32);
    words
}

/// The conflict a second live listing of the same resource by one tenant meets.
pub fn resource_taken() -> Error {
    Error::new(
        ErrorCode::Conflict,
        "the tenant already lists a resource with this URL and method or tool",
    )
}

/// A resource about to be created, with its first version's spec.
#[derive(Debug, Clone)]
pub struct NewResource {
    pub id: ResourceId,
    pub tenant_id: TenantId,
    pub origin: ResourceOrigin,
    pub kind: ResourceKind,
    pub url: String,
    pub method: Option<String>,
    pub tool: Option<String>,
    pub metadata: ResourceMetadata,
    pub status: ResourceStatus,
    pub spec: VersionSpec,
    /// Words from the schemas' property names, for search.
    pub search_fields: String,
    pub at: DateTime<Utc>,
}

impl NewResource {
    /// Checks every stored text and JSON value against [`crate::text`]'s rules.
    pub fn check(&self) -> Result<()> {
        check_listing(&self.url, self.tool.as_deref())?;
        self.metadata.check()?;
        self.spec.check()
    }
}

/// A change to an existing resource: new metadata, and a new version when `spec` is set.
#[derive(Debug, Clone)]
pub struct ResourceChange {
    pub metadata: ResourceMetadata,
    pub spec: Option<VersionSpec>,
    pub search_fields: String,
    /// The caller read this version; a concurrent change since then is a conflict.
    pub expected_version: u32,
    pub at: DateTime<Utc>,
}

impl ResourceChange {
    /// Checks every stored text and JSON value against [`crate::text`]'s rules.
    pub fn check(&self) -> Result<()> {
        self.metadata.check()?;
        self.spec.as_ref().map_or(Ok(()), VersionSpec::check)
    }
}

/// A resource learned from a settled payment's `bazaar` extension. Keyed by tenant, kind, URL
/// and method or tool: learning it again updates it (a new version if the terms changed).
#[derive(Debug, Clone)]
pub struct LearnedResource {
    pub tenant_id: TenantId,
    pub kind: ResourceKind,
    pub url: String,
    pub method: Option<String>,
    pub tool: Option<String>,
    pub metadata: ResourceMetadata,
    pub spec: VersionSpec,
    pub search_fields: String,
    pub at: DateTime<Utc>,
}

impl LearnedResource {
    /// Checks every stored text and JSON value against [`crate::text`]'s rules.
    pub fn check(&self) -> Result<()> {
        check_listing(&self.url, self.tool.as_deref())?;
        self.metadata.check()?;
        self.spec.check()
    }
}

/// Filters shared by catalog listing and search. Every field is honoured by both backends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogFilter {
    pub kind: Option<ResourceKind>,
    pub pay_to: Option<String>,
    pub scheme: Option<String>,
    pub network: Option<String>,
    /// Every named extension must be on the resource.
    pub extensions: Vec<String>,
}

impl CatalogFilter {
    /// False when no resource can pass (an extension no catalog entry carries), so stores
    /// need not ask the database.
    pub fn satisfiable(&self) -> bool {
        self.extensions
            .iter()
            .all(|e| CATALOG_EXTENSIONS.contains(&e.as_str()))
    }

    /// Whether `resource` passes, for callers that filter in memory (and tests).
    pub fn admits(&self, resource: &Resource) -> bool {
        let accepts = &resource.current.spec.accepts;
        self.kind.is_none_or(|k| k == resource.kind)
            && self
                .pay_to
                .as_deref()
                .is_none_or(|p| accepts.iter().any(|a| a.pay_to.eq_ignore_ascii_case(p)))
            && self
                .scheme
                .as_deref()
                .is_none_or(|s| accepts.iter().any(|a| a.scheme == s))
            && self
                .network
                .as_deref()
                .is_none_or(|n| accepts.iter().any(|a| a.network == n))
            && self
                .extensions
                .iter()
                .all(|e| resource.extension_names().contains(&e.as_str()))
    }
}

/// A page of the catalog by offset, newest change first.
#[derive(Debug, Clone)]
pub struct CatalogPage {
    pub items: Vec<Resource>,
    pub total: u64,
}

/// The outcome of one freshness probe.
#[derive(Debug, Clone)]
pub struct ProbeOutcome {
    pub healthy: bool,
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
    /// Hide the resource if it has been unhealthy since before this instant.
    pub hide_if_unhealthy_since: DateTime<Utc>,
}

/// Splits text into lower-case search words: runs of letters and digits, with camelCase and
/// snake_case names split into their parts (`userId` gives `user id userid`).
pub fn search_words(text: &str, out: &mut Vec<String>) {
    for token in text.split(|c: char| !c.is_alphanumeric()) {
        if token.is_empty() {
            continue;
        }
        let lower = token.to_lowercase();
        let mut part = String::new();
        let mut parts = Vec::new();
        let mut prev_lower = false;
        for c in token.chars() {
            if c.is_uppercase() && prev_lower && !part.is_empty() {
                parts.push(std::mem::take(&mut part).to_lowercase());
            }
            prev_lower = c.is_lowercase() || c.is_ascii_digit();
            part.push(c);
        }
        if !part.is_empty() {
            parts.push(part.to_lowercase());
        }
        if parts.len() > 1 {
            out.extend(parts);
        }
        out.push(lower);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(superseded: Option<DateTime<Utc>>, timeout: u32) -> ResourceVersion {
        ResourceVersion {
            resource_id: ResourceId::new(),
            version: 1,
            spec: VersionSpec {
                price: PriceSpec::Usd { usd: "0.01".into() },
                accepts: vec![],
                max_timeout_seconds: timeout,
                input_schema: None,
                output_schema: None,
                input_example: None,
                output_example: None,
                body_type: None,
                bazaar: None,
                repeat_access: None,
                escrow: None,
            },
            created_at: Utc::now(),
            superseded_at: superseded,
        }
    }

    #[test]
    fn an_old_version_is_payable_until_its_timeout_runs_out() {
        let now = Utc::now();
        assert!(version(None, 60).payable_at(now + Duration::days(365)));
        let old = version(Some(now), 60);
        assert!(old.payable_at(now + Duration::seconds(60)));
        assert!(!old.payable_at(now + Duration::seconds(61)));
    }

    #[test]
    fn search_words_split_identifiers() {
        let mut words = Vec::new();
        search_words("userId, zip_code; Weather-API", &mut words);
        assert_eq!(
            words,
            ["user", "id", "userid", "zip", "code", "weather", "api"]
        );
    }
}
