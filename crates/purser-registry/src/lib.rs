//! The registry: merchants' resources with versioned prices and schemas, the 402 built from
//! them, the Bazaar-compatible discovery catalog, resources learned from settled payments, and
//! the freshness prober.
//!
//! - [`Registry`]: the service the admin API and the facilitator call. Every change is
//!   validated here ([`validate`]) before a repository sees it, and every call is scoped to
//!   the caller's tenant.
//! - [`challenge`]: one function from a resource (and a request path) to the exact
//!   `PaymentRequired`, and the check that a presented requirement belongs to a payable version.
//! - [`bazaar`]: the discovery extension, built and learned.
//! - [`discovery`]: `GET /facilitator/discovery/resources` and `/search`.
//! - [`prober`]: checks listed URLs still answer the 402 they are listed with.

pub mod assets;
pub mod bazaar;
pub mod challenge;
pub mod discovery;
pub mod prober;
pub mod validate;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use purser_domain::auth::TenantScope;
use purser_domain::entitlement::RepeatAccess;
use purser_domain::escrow::EscrowTerms;
use purser_domain::id::ResourceId;
use purser_domain::registry::{
    Accept, LearnedResource, NewResource, PayoutAddress, PriceSpec, Resource, ResourceChange,
    ResourceKind, ResourceMetadata, ResourceOrigin, ResourceStatus, VersionSpec,
};
use purser_domain::repo::{MeteringRepository, RegistryRepository};
use purser_domain::text;
use purser_domain::{Error, ErrorCode, Result};
use purser_x402::PaymentPayload;
use serde_json::Value;

pub use assets::{AssetCatalog, AssetInfo};
pub use prober::{ProbeConfig, Prober};

use crate::validate::{BODY_METHODS, BODY_TYPES, HTTP_METHODS, clip};

/// Schemes a resource may accept today.
pub const SCHEMES: &[&str] = &["exact", purser_x402::auth_capture::SCHEME];
/// The payment window when a resource does not set one.
pub const DEFAULT_MAX_TIMEOUT_SECONDS: u32 = 300;
/// The longest payment window a resource may set.
pub const MAX_TIMEOUT_SECONDS: u32 = 86_400;

/// One way to pay, as a merchant gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcceptDraft {
    pub network: String,
    /// The token; the network's first configured asset when absent.
    pub asset: Option<String>,
    /// Where to be paid; the tenant's payout address on the network when absent.
    pub pay_to: Option<String>,
    /// `exact` when absent.
    pub scheme: Option<String>,
}

/// A resource as a merchant describes it, before validation.
#[derive(Debug, Clone)]
pub struct ResourceDraft {
    pub kind: ResourceKind,
    pub url: String,
    /// HTTP only; `GET` when absent.
    pub method: Option<String>,
    /// MCP only.
    pub tool: Option<String>,
    pub name: String,
    pub description: String,
    pub mime_type: Option<String>,
    pub service_name: Option<String>,
    pub tags: Vec<String>,
    pub icon_url: Option<String>,
    pub input_schema: Option<Value>,
    pub output_schema: Option<Value>,
    pub input_example: Option<Value>,
    pub output_example: Option<Value>,
    pub body_type: Option<String>,
    pub price: PriceSpec,
    pub accepts: Vec<AcceptDraft>,
    pub max_timeout_seconds: Option<u32>,
    /// Repeat access for payers who sign in; `None`: every request pays.
    pub repeat_access: Option<RepeatAccess>,
    /// How `auth-capture` payments are held and finished; the defaults when `None` and an
    /// accept is `auth-capture`.
    pub escrow: Option<EscrowTerms>,
}

/// Changes to a resource; absent fields keep their value. `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default)]
pub struct ResourcePatch {
    /// The version the caller read: a change made meanwhile makes this one a conflict.
    pub expected_version: u32,
    pub name: Option<String>,
    pub description: Option<String>,
    pub mime_type: Option<Option<String>>,
    pub service_name: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
    pub icon_url: Option<Option<String>>,
    pub input_schema: Option<Option<Value>>,
    pub output_schema: Option<Option<Value>>,
    pub input_example: Option<Option<Value>>,
    pub output_example: Option<Option<Value>>,
    pub body_type: Option<Option<String>>,
    pub price: Option<PriceSpec>,
    pub accepts: Option<Vec<AcceptDraft>>,
    pub max_timeout_seconds: Option<u32>,
    pub repeat_access: Option<Option<RepeatAccess>>,
    pub escrow: Option<Option<EscrowTerms>>,
}

/// What became of a payment's `bazaar` extension: the `EXTENSION-RESPONSES` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BazaarOutcome {
    Cataloged(ResourceId),
    Rejected(String),
}

impl BazaarOutcome {
    /// `{"status": "success"}` or `{"status": "rejected", "rejectedReason": ...}`.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Cataloged(_) => serde_json::json!({ "status": "success" }),
            Self::Rejected(reason) => {
                serde_json::json!({ "status": "rejected", "rejectedReason": reason })
            }
        }
    }
}

/// The registry service: resources and their versions, payout addresses, the catalog. It reads
/// meters only to price resources sold by usage.
pub struct Registry {
    resources: Arc<dyn RegistryRepository>,
    meters: Arc<dyn MeteringRepository>,
    assets: AssetCatalog,
}

impl Registry {
    pub fn new(
        resources: Arc<dyn RegistryRepository>,
        meters: Arc<dyn MeteringRepository>,
        assets: AssetCatalog,
    ) -> Self {
        Self {
            resources,
            meters,
            assets,
        }
    }

    pub fn assets(&self) -> &AssetCatalog {
        &self.assets
    }

    /// The repository resources are kept in (the catalog routes read it directly).
    pub fn resources(&self) -> &Arc<dyn RegistryRepository> {
        &self.resources
    }

    /// Sets where the tenant is paid on `network`, which enables the network for it.
    pub async fn set_payout_address(
        &self,
        scope: TenantScope,
        network: &str,
        address: &str,
    ) -> Result<PayoutAddress> {
        self.assets.asset(network, None)?;
        let address = validate::checksummed_address(address, "payout address")?;
        self.resources
            .set_payout_address(scope, network, &address, Utc::now())
            .await
    }

    /// Removes the tenant's payout address on `network`. Published resources keep their
    /// `payTo`; new versions and publishing need the network enabled again.
    pub async fn remove_payout_address(&self, scope: TenantScope, network: &str) -> Result<bool> {
        // No network with a control character was ever enabled (and PostgreSQL refuses NUL
        // even to compare with).
        if network.chars().any(char::is_control) {
            return Ok(false);
        }
        self.resources.remove_payout_address(scope, network).await
    }

    /// Validates and stores a new resource as a draft (or published, when `publish`).
    pub async fn create_resource(
        &self,
        scope: TenantScope,
        draft: ResourceDraft,
        publish: bool,
    ) -> Result<Resource> {
        let valid = self.validate(scope, &draft).await?;
        if publish {
            self.check_publishable(scope, &valid.spec).await?;
        }
        self.resources
            .create_resource(NewResource {
                id: ResourceId::new(),
                tenant_id: scope.tenant_id(),
                origin: ResourceOrigin::Merchant,
                kind: draft.kind,
                url: valid.url,
                method: valid.method,
                tool: valid.tool,
                metadata: valid.metadata,
                status: if publish {
                    ResourceStatus::Published
                } else {
                    ResourceStatus::Draft
                },
                spec: valid.spec,
                search_fields: valid.search_fields,
                at: Utc::now(),
            })
            .await
    }

    /// Applies `patch`: metadata in place, and a new version when the terms or schemas change.
    pub async fn update_resource(
        &self,
        scope: TenantScope,
        id: ResourceId,
        patch: ResourcePatch,
    ) -> Result<Resource> {
        let current = self
            .resources
            .find_resource(scope, id)
            .await?
            .ok_or_else(|| Error::not_found(ResourceId::WHAT))?;
        if current.origin == ResourceOrigin::Bazaar {
            return Err(Error::new(
                ErrorCode::Conflict,
                "a resource learned from payments follows what its server declares; it is not edited here",
            ));
        }
        current.check_change(patch.expected_version)?;
        let draft = merge(&current, patch.clone());
        let valid = self.validate(scope, &draft).await?;
        let spec = (valid.spec != current.current.spec).then_some(valid.spec);
        if let Some(spec) = &spec
            && current.status == ResourceStatus::Published
        {
            self.check_publishable(scope, spec).await?;
        }
        self.resources
            .change_resource(
                scope,
                id,
                ResourceChange {
                    metadata: valid.metadata,
                    spec,
                    search_fields: valid.search_fields,
                    expected_version: patch.expected_version,
                    at: Utc::now(),
                },
            )
            .await?
            .ok_or_else(|| Error::not_found(ResourceId::WHAT))
    }

    /// Lists the resource in the catalog and makes it payable.
    pub async fn publish_resource(&self, scope: TenantScope, id: ResourceId) -> Result<Resource> {
        let current = self
            .resources
            .find_resource(scope, id)
            .await?
            .ok_or_else(|| Error::not_found(ResourceId::WHAT))?;
        current.check_status_change(ResourceStatus::Published)?;
        self.check_publishable(scope, &current.current.spec).await?;
        self.set_status(scope, id, ResourceStatus::Published).await
    }

    /// Takes the resource out of the catalog, keeping it editable.
    pub async fn unpublish_resource(&self, scope: TenantScope, id: ResourceId) -> Result<Resource> {
        self.set_status(scope, id, ResourceStatus::Draft).await
    }

    /// Withdraws the resource for good; its history stays.
    pub async fn archive_resource(&self, scope: TenantScope, id: ResourceId) -> Result<Resource> {
        self.set_status(scope, id, ResourceStatus::Archived).await
    }

    async fn set_status(
        &self,
        scope: TenantScope,
        id: ResourceId,
        status: ResourceStatus,
    ) -> Result<Resource> {
        self.resources
            .set_resource_status(scope, id, status, Utc::now())
            .await?
            .ok_or_else(|| Error::not_found(ResourceId::WHAT))
    }

    /// Learns the resource a settled v2 payment's `bazaar` extension describes, for the
    /// tenant whose resource server asked for the settlement. `None` when the payment carries
    /// no such extension.
    pub async fn learn(
        &self,
        scope: TenantScope,
        payload: &PaymentPayload,
    ) -> Result<Option<BazaarOutcome>> {
        let discovered = match bazaar::discover(payload) {
            Ok(None) => return Ok(None),
            Ok(Some(d)) => d,
            Err(reason) => return Ok(Some(BazaarOutcome::Rejected(reason))),
        };
        let learned = LearnedResource {
            tenant_id: scope.tenant_id(),
            kind: discovered.kind,
            url: discovered.url,
            method: discovered.method,
            tool: discovered.tool,
            metadata: discovered.metadata,
            spec: discovered.spec,
            search_fields: discovered.search_fields,
            at: Utc::now(),
        };
        // What a payment declares is stored only if both stores would keep it alike.
        if let Err(refused) = learned.check() {
            return Ok(Some(BazaarOutcome::Rejected(refused.message().to_owned())));
        }
        let resource = self.resources.learn_resource(learned).await?;
        Ok(Some(BazaarOutcome::Cataloged(resource.id)))
    }

    async fn check_publishable(&self, scope: TenantScope, spec: &VersionSpec) -> Result<()> {
        if spec.accepts.is_empty() {
            return Err(Error::new(
                ErrorCode::ResourceNotPublishable,
                "a resource needs at least one accepted network with a payout address to be published",
            ));
        }
        let enabled = self.payout_map(scope).await?;
        if let Some(accept) = spec
            .accepts
            .iter()
            .find(|a| !enabled.contains_key(&a.network))
        {
            return Err(Error::new(
                ErrorCode::ResourceNotPublishable,
                format!(
                    "the tenant has no payout address on {}; set one before publishing",
                    accept.network
                ),
            ));
        }
        Ok(())
    }

    async fn payout_map(&self, scope: TenantScope) -> Result<BTreeMap<String, String>> {
        Ok(self
            .resources
            .payout_addresses(scope)
            .await?
            .into_iter()
            .map(|p| (p.network, p.address))
            .collect())
    }

    /// Every check on a draft; answers what is stored.
    async fn validate(&self, scope: TenantScope, draft: &ResourceDraft) -> Result<Valid> {
        text::URL.check("url", &draft.url)?;
        let template = validate::resource_url(&draft.url)?;
        let (method, tool) = match draft.kind {
            ResourceKind::Http => {
                if draft.tool.is_some() {
                    return Err(Error::invalid_input("an HTTP resource has no toolName"));
                }
                let method = draft
                    .method
                    .as_deref()
                    .unwrap_or("GET")
                    .trim()
                    .to_ascii_uppercase();
                if !HTTP_METHODS.contains(&method.as_str()) {
                    return Err(Error::invalid_input(format!(
                        "method must be one of {}",
                        HTTP_METHODS.join(", ")
                    )));
                }
                (Some(method), None)
            }
            ResourceKind::Mcp => {
                if draft.method.is_some() {
                    return Err(Error::invalid_input("an MCP resource has no HTTP method"));
                }
                if template.has_params() {
                    return Err(Error::new(
                        ErrorCode::InvalidRouteTemplate,
                        "an MCP server URL has no path parameters",
                    ));
                }
                let tool = draft.tool.as_deref().unwrap_or("").trim();
                let valid = !tool.is_empty()
                    && tool.len() <= 128
                    && tool
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c));
                if !valid {
                    return Err(Error::invalid_input(
                        "toolName must be 1 to 128 letters, digits, `_`, `-`, `.` or `/`",
                    ));
                }
                (None, Some(tool.to_owned()))
            }
        };
        let takes_body = method.as_deref().is_some_and(|m| BODY_METHODS.contains(&m));
        let body_type = match (&draft.body_type, takes_body) {
            (Some(t), true) if BODY_TYPES.contains(&t.as_str()) => Some(t.clone()),
            (Some(_), true) => {
                return Err(Error::invalid_input(format!(
                    "bodyType must be one of {}",
                    BODY_TYPES.join(", ")
                )));
            }
            (Some(_), false) => {
                return Err(Error::invalid_input(
                    "bodyType is for POST, PUT and PATCH resources",
                ));
            }
            (None, true) => Some("json".to_owned()),
            (None, false) => None,
        };

        let metadata = ResourceMetadata {
            name: validate::text(&draft.name, "name", text::RESOURCE_NAME)?,
            description: validate::text(
                &draft.description,
                "description",
                text::RESOURCE_DESCRIPTION,
            )?,
            mime_type: draft
                .mime_type
                .as_deref()
                .map(|m| validate::text(m, "mimeType", text::MIME_TYPE))
                .transpose()?,
            service_name: draft
                .service_name
                .as_deref()
                .map(|s| validate::text(s, "serviceName", text::SERVICE_NAME))
                .transpose()?,
            tags: tags(&draft.tags)?,
            icon_url: draft
                .icon_url
                .as_deref()
                .map(validate::icon_url)
                .transpose()?,
        };

        // Input: an object of query parameters for GET-like methods and MCP tools; any JSON
        // body otherwise.
        let input_must_be_object = !takes_body;
        for (field, document) in [
            ("inputSchema", &draft.input_schema),
            ("outputSchema", &draft.output_schema),
            ("inputExample", &draft.input_example),
            ("outputExample", &draft.output_example),
        ] {
            if let Some(document) = document {
                text::DOCUMENT.check(field, document)?;
            }
        }
        let mut words = Vec::new();
        for (schema, example, what) in [
            (&draft.input_schema, &draft.input_example, "input"),
            (&draft.output_schema, &draft.output_example, "output"),
        ] {
            let validator = schema
                .as_ref()
                .map(|s| validate::json_schema(s, &format!("{what}Schema")))
                .transpose()?;
            if let Some(example) = example {
                if what == "input" && input_must_be_object && !example.is_object() {
                    return Err(Error::new(
                        ErrorCode::InvalidJsonSchema,
                        "inputExample must be a JSON object (query parameters or tool arguments)",
                    ));
                }
                if let Some(validator) = &validator {
                    validate::example_matches(validator, example, &format!("{what}Example"))?;
                }
            }
            if let Some(schema) = schema {
                validate::schema_field_words(schema, &mut words);
            }
        }
        for name in template.param_names() {
            purser_domain::registry::search_words(name, &mut words);
        }
        words.sort();
        words.dedup();

        let max_timeout_seconds = draft
            .max_timeout_seconds
            .unwrap_or(DEFAULT_MAX_TIMEOUT_SECONDS);
        if !(1..=MAX_TIMEOUT_SECONDS).contains(&max_timeout_seconds) {
            return Err(Error::invalid_input(format!(
                "maxTimeoutSeconds must be between 1 and {MAX_TIMEOUT_SECONDS}"
            )));
        }
        if let Some(policy) = &draft.repeat_access {
            policy.validate()?;
        }
        let escrowed = draft
            .accepts
            .iter()
            .any(|a| a.scheme.as_deref() == Some(purser_x402::auth_capture::SCHEME));
        let escrow = match (escrowed, draft.escrow) {
            (true, terms) => {
                let terms = terms.unwrap_or_default();
                terms.check()?;
                Some(terms)
            }
            (false, None) => None,
            (false, Some(_)) => {
                return Err(Error::invalid_input(
                    "escrow terms go with an auth-capture accept",
                ));
            }
        };
        if let PriceSpec::Usd { usd } = &draft.price
            && usd.trim().is_empty()
        {
            return Err(Error::new(
                ErrorCode::InvalidPrice,
                "the USD price is empty",
            ));
        }

        let call_usd = match &draft.price {
            PriceSpec::Meter { meter, units } => {
                Some(validate::meter_call_price(self.meters.as_ref(), scope, meter, *units).await?)
            }
            _ => None,
        };
        let enabled = self.payout_map(scope).await?;
        let mut accepts: Vec<Accept> = Vec::new();
        for accept in &draft.accepts {
            let scheme = accept.scheme.as_deref().unwrap_or("exact");
            if !SCHEMES.contains(&scheme) {
                return Err(Error::invalid_input(format!(
                    "scheme `{}` is not settled here; schemes: {}",
                    clip(scheme, 32),
                    SCHEMES.join(", ")
                )));
            }
            let asset = self
                .assets
                .asset(&accept.network, accept.asset.as_deref())?;
            let enabled_address = enabled.get(&accept.network).ok_or_else(|| {
                Error::new(
                    ErrorCode::NetworkNotEnabled,
                    format!(
                        "the tenant has not enabled {}: set a payout address on it first",
                        accept.network
                    ),
                )
            })?;
            let pay_to = match &accept.pay_to {
                Some(raw) => validate::checksummed_address(raw, "payTo")?,
                None => enabled_address.clone(),
            };
            if accepts.iter().any(|a| {
                a.network == asset.network && a.asset == asset.address && a.scheme == scheme
            }) {
                return Err(Error::invalid_input(format!(
                    "{} on {} is accepted twice",
                    asset.address, asset.network
                )));
            }
            let extra = if scheme == purser_x402::auth_capture::SCHEME {
                let terms = self.assets.escrow_terms(&asset.network).ok_or_else(|| {
                    Error::new(
                        ErrorCode::UnsupportedNetwork,
                        format!(
                            "escrowed payments (auth-capture) are not offered on {}",
                            asset.network
                        ),
                    )
                })?;
                Some(terms.clone())
            } else {
                None
            };
            accepts.push(Accept {
                scheme: scheme.to_owned(),
                network: asset.network.clone(),
                asset: asset.address.clone(),
                amount: validate::atomic_price(&draft.price, asset.decimals, call_usd)?,
                pay_to,
                eip712_name: asset.eip712_name.clone(),
                eip712_version: asset.eip712_version.clone(),
                extra,
            });
        }
        if let PriceSpec::Atomic { amount } = &draft.price
            && amount.is_zero()
        {
            return Err(Error::new(
                ErrorCode::InvalidPrice,
                "a price must be more than zero",
            ));
        }

        let valid = Valid {
            url: template.url(),
            method,
            tool,
            metadata,
            spec: VersionSpec {
                price: draft.price.clone(),
                accepts,
                max_timeout_seconds,
                input_schema: draft.input_schema.clone(),
                output_schema: draft.output_schema.clone(),
                input_example: draft.input_example.clone(),
                output_example: draft.output_example.clone(),
                body_type,
                bazaar: None,
                repeat_access: draft.repeat_access.clone(),
                escrow,
            },
            search_fields: words.join(" "),
        };
        // The rest of what is stored (a USD price kept as given, say) follows the text rules
        // too.
        valid.spec.check()?;
        Ok(valid)
    }
}

struct Valid {
    url: String,
    method: Option<String>,
    tool: Option<String>,
    metadata: ResourceMetadata,
    spec: VersionSpec,
    search_fields: String,
}

fn tags(raw: &[String]) -> Result<Vec<String>> {
    if raw.len() > validate::MAX_TAGS {
        return Err(Error::invalid_input(format!(
            "at most {} tags",
            validate::MAX_TAGS
        )));
    }
    let mut tags: Vec<String> = Vec::new();
    for tag in raw {
        let tag = validate::text(tag, "tag", text::TAG)?;
        if !tags.iter().any(|t| t.eq_ignore_ascii_case(&tag)) {
            tags.push(tag);
        }
    }
    Ok(tags)
}

/// The draft a patch makes of the current resource.
fn merge(current: &Resource, patch: ResourcePatch) -> ResourceDraft {
    let spec = &current.current.spec;
    let m = &current.metadata;
    ResourceDraft {
        kind: current.kind,
        url: current.url.clone(),
        method: current.method.clone(),
        tool: current.tool.clone(),
        name: patch.name.unwrap_or_else(|| m.name.clone()),
        description: patch.description.unwrap_or_else(|| m.description.clone()),
        mime_type: patch.mime_type.unwrap_or_else(|| m.mime_type.clone()),
        service_name: patch.service_name.unwrap_or_else(|| m.service_name.clone()),
        tags: patch.tags.unwrap_or_else(|| m.tags.clone()),
        icon_url: patch.icon_url.unwrap_or_else(|| m.icon_url.clone()),
        input_schema: patch
            .input_schema
            .unwrap_or_else(|| spec.input_schema.clone()),
        output_schema: patch
            .output_schema
            .unwrap_or_else(|| spec.output_schema.clone()),
        input_example: patch
            .input_example
            .unwrap_or_else(|| spec.input_example.clone()),
        output_example: patch
            .output_example
            .unwrap_or_else(|| spec.output_example.clone()),
        body_type: patch.body_type.unwrap_or_else(|| spec.body_type.clone()),
        price: patch.price.unwrap_or_else(|| spec.price.clone()),
        accepts: patch.accepts.unwrap_or_else(|| {
            spec.accepts
                .iter()
                .map(|a| AcceptDraft {
                    network: a.network.clone(),
                    asset: Some(a.asset.clone()),
                    pay_to: Some(a.pay_to.clone()),
                    scheme: Some(a.scheme.clone()),
                })
                .collect()
        }),
        max_timeout_seconds: Some(
            patch
                .max_timeout_seconds
                .unwrap_or(spec.max_timeout_seconds),
        ),
        repeat_access: patch
            .repeat_access
            .unwrap_or_else(|| spec.repeat_access.clone()),
        escrow: patch.escrow.unwrap_or(spec.escrow),
    }
}

/// Installs ring as rustls's crypto provider if none is: the prober reaches https URLs.
pub(crate) fn ensure_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The registry's settings (`[registry]` in `purser.toml`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// Catalog the resources described by the `bazaar` extension of payments Purser settles.
    pub learn_from_payments: bool,
    /// Run the freshness prober.
    pub probe: bool,
    pub probe_interval_seconds: u64,
    pub probe_timeout_seconds: u64,
    /// Hide a listing unhealthy for longer than this.
    pub hide_unhealthy_after_seconds: u64,
    /// Probe hosts on loopback and private networks. Off by default: listed URLs come from
    /// merchants and payers, and must not make Purser reach into its own network.
    pub probe_private_addresses: bool,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        let probe = ProbeConfig::default();
        Self {
            learn_from_payments: true,
            probe: true,
            probe_interval_seconds: probe.interval.as_secs(),
            probe_timeout_seconds: probe.timeout.as_secs(),
            hide_unhealthy_after_seconds: probe.hide_after.as_secs(),
            probe_private_addresses: false,
        }
    }
}

impl RegistryConfig {
    pub fn probe_config(&self) -> ProbeConfig {
        ProbeConfig {
            interval: std::time::Duration::from_secs(self.probe_interval_seconds.max(1)),
            timeout: std::time::Duration::from_secs(self.probe_timeout_seconds.clamp(1, 60)),
            hide_after: std::time::Duration::from_secs(self.hide_unhealthy_after_seconds),
            allow_private_addresses: self.probe_private_addresses,
            ..ProbeConfig::default()
        }
    }
}
