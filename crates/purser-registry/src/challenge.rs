//! From a resource to its 402, and back: [`payment_required`] builds the exact
//! `PaymentRequired` envelope a resource server (Purser's gateway, or a merchant's own) answers
//! with, and [`payable_version`] says whether requirements a client echoes belong to a version
//! of the resource that may still be paid.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use purser_domain::escrow::EscrowTerms;
use purser_domain::registry::{Accept, Resource, ResourceVersion, VersionSpec};
use purser_domain::routing::{Candidate, OfferRouter, RoutingPolicy};
use purser_domain::{Error, Result};
use purser_x402::v2::{Extensions, JsonObject, PaymentRequired, PaymentRequirements, ResourceInfo};
use purser_x402::{Network, V2};
use serde_json::{Value, json};

use crate::bazaar;
use crate::validate::{self, RouteTemplate};

/// The `error` of a first challenge.
pub const PAYMENT_REQUIRED: &str = "Payment required";

/// What the 402 answers: the request's path (and query) when it is for a route template or
/// should be echoed as the resource URL, and why payment is (still) required.
#[derive(Debug, Clone, Default)]
pub struct ChallengeRequest<'a> {
    /// `/users/42?verbose=1`: the path must match the resource's route.
    pub path_and_query: Option<&'a str>,
    pub error: Option<&'a str>,
}

/// The `error` of a 402 whose every way to pay was left out by the tenant's fee guard.
pub const NO_RAIL_WITHIN_FEE_LIMIT: &str =
    "No network can settle this price within the merchant's fee limit";

/// Orders and filters the ways to pay of `required` with `router`, under the tenant's
/// `policy`: what every path that writes a 402 does before answering. When every rail is
/// unhealthy the merchant's order is kept (a payment that settles late beats none); when the fee
/// guard leaves nothing, the 402 offers nothing and says why.
pub fn route(required: &mut PaymentRequired, router: &dyn OfferRouter, policy: &RoutingPolicy) {
    if required.accepts.len() < 2 && policy.max_fee_ratio_bps.is_none() {
        return;
    }
    let candidates: Vec<Candidate<'_>> = required
        .accepts
        .iter()
        .map(|r| Candidate {
            network: r.network.as_str(),
            asset: &r.asset,
            amount: r.amount,
        })
        .collect();
    let routed = router.route(policy, &candidates);
    drop(candidates);
    if routed.order.is_empty() {
        let by_fee = routed
            .left_out
            .iter()
            .any(|(_, reason)| *reason == "fee_ratio");
        if by_fee {
            required.accepts.clear();
            required.error = Some(NO_RAIL_WITHIN_FEE_LIMIT.to_owned());
        }
        return;
    }
    let mut slots: Vec<Option<PaymentRequirements>> = std::mem::take(&mut required.accepts)
        .into_iter()
        .map(Some)
        .collect();
    required.accepts = routed
        .order
        .iter()
        .filter_map(|&index| slots.get_mut(index).and_then(Option::take))
        .collect();
}

/// The requirements of one accepted way to pay.
pub fn requirements(accept: &Accept, max_timeout_seconds: u32) -> Result<PaymentRequirements> {
    let mut extra = JsonObject::new();
    extra.insert("name".into(), Value::String(accept.eip712_name.clone()));
    extra.insert(
        "version".into(),
        Value::String(accept.eip712_version.clone()),
    );
    Ok(PaymentRequirements {
        scheme: accept.scheme.clone(),
        network: Network::parse(&accept.network)?,
        amount: accept.amount,
        asset: accept.asset.clone(),
        pay_to: accept.pay_to.clone(),
        max_timeout_seconds: u64::from(max_timeout_seconds),
        extra: Some(extra),
        other: JsonObject::new(),
    })
}

/// Escrow deadlines fall on this grid, so that the 402s of one stretch of time ask for the
/// same deadlines (a client echoes them, and its payment must match the offer).
pub const ESCROW_DEADLINE_GRID_SECONDS: i64 = 600;

/// The capture and refund deadlines of an escrowed offer made at unix time `now`: the capture
/// window ahead, rounded up to the grid, and the refund window after it.
pub fn escrow_deadlines(terms: &EscrowTerms, now: i64) -> (i64, i64) {
    let grid = ESCROW_DEADLINE_GRID_SECONDS;
    let capture =
        (now + i64::from(terms.capture_window_seconds) + grid - 1).div_euclid(grid) * grid;
    (capture, capture + i64::from(terms.refund_window_seconds))
}

/// The requirements of one accepted way to pay of `spec`, offered at unix time `now`: an
/// `auth-capture` one carries the facilitator's terms, the flow and capture mode of the
/// version's escrow terms, and the deadlines for `now`.
pub fn offered(accept: &Accept, spec: &VersionSpec, now: i64) -> Result<PaymentRequirements> {
    let mut offered = requirements(accept, spec.max_timeout_seconds)?;
    if accept.scheme == purser_x402::auth_capture::SCHEME {
        let terms = spec.escrow.unwrap_or_default();
        let (capture, refund) = escrow_deadlines(&terms, now);
        let extra = offered.extra.get_or_insert_with(JsonObject::new);
        extra.extend(accept.extra.clone().unwrap_or_default());
        extra.insert("paymentFlow".into(), Value::from("escrow"));
        let mode = if terms.capture.is_sync() {
            "sync"
        } else {
            "deferred"
        };
        extra.insert("captureMode".into(), Value::from(mode));
        extra.insert("captureDeadline".into(), Value::from(capture));
        extra.insert("refundDeadline".into(), Value::from(refund));
    }
    Ok(offered)
}

/// Every accepted way to pay of `spec`, offered at `now`.
pub fn version_requirements(spec: &VersionSpec, now: i64) -> Result<Vec<PaymentRequirements>> {
    spec.accepts.iter().map(|a| offered(a, spec, now)).collect()
}

/// The escrowed offers of `spec` as the previous stretch of the deadline grid made them: a
/// payment signed against a 402 from just before the deadlines moved still matches.
pub fn earlier_escrow_requirements(spec: &VersionSpec, now: i64) -> Vec<PaymentRequirements> {
    spec.accepts
        .iter()
        .filter(|a| a.scheme == purser_x402::auth_capture::SCHEME)
        .filter_map(|a| offered(a, spec, now - ESCROW_DEADLINE_GRID_SECONDS).ok())
        .collect()
}

/// The resource's route, parsed from its stored URL.
pub fn template_of(resource: &Resource) -> Result<RouteTemplate> {
    validate::resource_url(&resource.url)
        .map_err(|e| Error::internal("parsing a stored resource URL", e))
}

/// The 402 for `resource`: every accepted network and asset of its current version, the
/// resource's description, and the `bazaar` extension describing its input and output.
pub fn payment_required(
    resource: &Resource,
    request: &ChallengeRequest<'_>,
) -> Result<PaymentRequired> {
    let template = template_of(resource)?;
    let (url, params) = match request.path_and_query {
        Some(path_and_query) => {
            let path = path_and_query.split('?').next().unwrap_or("");
            let params = template.bind(path)?;
            (format!("{}{path_and_query}", template.origin), Some(params))
        }
        None => (resource.url.clone(), None),
    };
    let accepts = version_requirements(
        &resource.current.spec,
        purser_domain::time::now().timestamp(),
    )?;
    let mut extensions = Extensions::new();
    extensions.insert(
        bazaar::BAZAAR.into(),
        bazaar::extension(
            resource,
            &template,
            params.as_ref().filter(|p| !p.is_empty()),
        ),
    );
    Ok(PaymentRequired {
        x402_version: V2,
        error: Some(request.error.unwrap_or(PAYMENT_REQUIRED).to_owned()),
        resource: resource_info(resource, url),
        accepts,
        extensions: Some(extensions),
        other: JsonObject::new(),
    })
}

/// `resource` in a 402: URL, description, MIME type and the service metadata.
pub fn resource_info(resource: &Resource, url: String) -> ResourceInfo {
    let m = &resource.metadata;
    let mut info = ResourceInfo::new(url);
    info.description = (!m.description.is_empty()).then(|| m.description.clone());
    info.mime_type = m.mime_type.clone();
    info.service_name = m.service_name.clone();
    info.tags = (!m.tags.is_empty()).then(|| m.tags.clone());
    info.icon_url = m.icon_url.clone();
    info
}

/// The version whose offer `presented` is, if that version may still be paid at `now`: the
/// current one always, an older one until its timeout has run out since it was replaced.
pub fn payable_version<'a>(
    versions: &'a [ResourceVersion],
    presented: &PaymentRequirements,
    now: DateTime<Utc>,
) -> Option<&'a ResourceVersion> {
    versions.iter().rev().find(|v| {
        v.payable_at(now)
            && v.spec.accepts.iter().any(|a| {
                a.scheme == presented.scheme
                    && a.network == presented.network.as_str()
                    && a.asset.eq_ignore_ascii_case(&presented.asset)
                    && a.pay_to.eq_ignore_ascii_case(&presented.pay_to)
                    && a.amount == presented.amount
                    && u64::from(v.spec.max_timeout_seconds) == presented.max_timeout_seconds
            })
    })
}

/// A catalog entry: the discovery API's item for a resource.
pub fn catalog_item(resource: &Resource) -> Result<Value> {
    let template = template_of(resource)?;
    let accepts = version_requirements(
        &resource.current.spec,
        purser_domain::time::now().timestamp(),
    )?;
    let m = &resource.metadata;
    let mut item = json!({
        "resource": resource.url,
        "type": resource.kind.as_str(),
        "x402Version": 2,
        "accepts": accepts,
        "lastUpdated": resource.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "extensions": { bazaar::BAZAAR: bazaar::extension(resource, &template, None) },
        "metadata": {
            "name": m.name,
            "origin": resource.origin.as_str(),
            "health": resource.health.as_str(),
        },
    });
    let fields = [
        (
            "description",
            (!m.description.is_empty()).then(|| json!(m.description)),
        ),
        ("mimeType", m.mime_type.as_ref().map(|v| json!(v))),
        ("serviceName", m.service_name.as_ref().map(|v| json!(v))),
        ("tags", (!m.tags.is_empty()).then(|| json!(m.tags))),
        ("iconUrl", m.icon_url.as_ref().map(|v| json!(v))),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            item[key] = value;
        }
    }
    Ok(item)
}

/// The path parameters of a request, for callers that need them alongside the 402.
pub fn bind_path(resource: &Resource, path: &str) -> Result<BTreeMap<String, String>> {
    template_of(resource)?.bind(path)
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::Duration;
    use purser_domain::id::{ResourceId, TenantId};
    use purser_domain::money::Amount;
    use purser_domain::registry::{
        PriceSpec, ResourceHealth, ResourceKind, ResourceMetadata, ResourceOrigin, ResourceStatus,
        VersionSpec,
    };

    use super::*;

    pub(crate) fn resource(kind: ResourceKind, url: &str, method: Option<&str>) -> Resource {
        let id = ResourceId::new();
        let now = Utc::now();
        Resource {
            id,
            tenant_id: TenantId::new(),
            origin: ResourceOrigin::Merchant,
            kind,
            url: url.into(),
            method: method.map(str::to_owned),
            tool: (kind == ResourceKind::Mcp).then(|| "stock_quote".to_owned()),
            metadata: ResourceMetadata {
                name: "Forecast".into(),
                description: "Hourly forecast".into(),
                mime_type: Some("application/json".into()),
                service_name: Some("Weather".into()),
                tags: vec!["weather".into()],
                icon_url: None,
            },
            status: ResourceStatus::Published,
            current: ResourceVersion {
                resource_id: id,
                version: 1,
                spec: VersionSpec {
                    price: PriceSpec::Usd { usd: "0.01".into() },
                    accepts: vec![Accept {
                        scheme: "exact".into(),
                        network: "eip155:84532".into(),
                        asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e".into(),
                        amount: Amount::from_atomic(10_000),
                        pay_to: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C".into(),
                        eip712_name: "USDC".into(),
                        eip712_version: "2".into(),
                        extra: None,
                    }],
                    max_timeout_seconds: 60,
                    input_schema: Some(
                        json!({"type": "object", "properties": {"city": {"type": "string"}}}),
                    ),
                    output_schema: Some(json!({"type": "object"})),
                    input_example: Some(json!({"city": "Lisbon"})),
                    output_example: Some(json!({"rain": 2})),
                    body_type: method
                        .filter(|m| crate::validate::BODY_METHODS.contains(m))
                        .map(|_| "json".to_owned()),
                    bazaar: None,
                    repeat_access: None,
                    escrow: None,
                },
                created_at: now,
                superseded_at: None,
            },
            health: ResourceHealth::Unknown,
            health_checked_at: None,
            health_detail: None,
            unhealthy_since: None,
            hidden: false,
            created_at: now,
            updated_at: now,
        }
    }

    /// A router that answers what it is given.
    struct Answers(purser_domain::routing::Routed);

    impl OfferRouter for Answers {
        fn route(&self, _: &RoutingPolicy, _: &[Candidate<'_>]) -> purser_domain::routing::Routed {
            self.0.clone()
        }
    }

    fn three_networks() -> PaymentRequired {
        let mut r = resource(ResourceKind::Http, "https://api.example.com/r", Some("GET"));
        let first = r.current.spec.accepts[0].clone();
        for network in ["eip155:421614", "eip155:11155420"] {
            r.current.spec.accepts.push(Accept {
                network: network.into(),
                ..first.clone()
            });
        }
        payment_required(&r, &ChallengeRequest::default()).unwrap()
    }

    #[test]
    fn routing_reorders_filters_and_says_why_nothing_is_left() {
        use purser_domain::routing::Routed;
        let networks = |pr: &PaymentRequired| {
            pr.accepts
                .iter()
                .map(|a| a.network.as_str().to_owned())
                .collect::<Vec<_>>()
        };
        let mut pr = three_networks();
        let router = Answers(Routed {
            order: vec![2, 0],
            left_out: vec![(1, "rpc_unreachable")],
        });
        route(&mut pr, &router, &RoutingPolicy::default());
        assert_eq!(networks(&pr), ["eip155:11155420", "eip155:84532"]);
        assert_eq!(pr.error.as_deref(), Some(PAYMENT_REQUIRED));
        // Every rail unhealthy: the merchant's order stands.
        let mut pr = three_networks();
        let router = Answers(Routed {
            order: vec![],
            left_out: vec![(0, "head_stalled"), (1, "head_stalled"), (2, "quote_stale")],
        });
        route(&mut pr, &router, &RoutingPolicy::default());
        assert_eq!(
            networks(&pr),
            ["eip155:84532", "eip155:421614", "eip155:11155420"]
        );
        // The fee guard left nothing: nothing is offered, and the 402 says why.
        let mut pr = three_networks();
        let router = Answers(Routed {
            order: vec![],
            left_out: vec![(0, "fee_ratio"), (1, "rpc_unreachable"), (2, "fee_ratio")],
        });
        route(&mut pr, &router, &RoutingPolicy::default());
        assert!(pr.accepts.is_empty());
        assert_eq!(pr.error.as_deref(), Some(NO_RAIL_WITHIN_FEE_LIMIT));
    }

    /// The extension's `info` validates against its own `schema`, as facilitators check.
    fn assert_self_valid(extension: &Value) {
        let validator = crate::validate::json_schema(&extension["schema"], "schema").unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&extension["info"])
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?} in {extension}");
    }

    #[test]
    fn a_route_template_binds_the_request_and_describes_itself() {
        let r = resource(
            ResourceKind::Http,
            "https://api.example.com/forecast/:day",
            Some("GET"),
        );
        let pr = payment_required(
            &r,
            &ChallengeRequest {
                path_and_query: Some("/forecast/monday?city=Lisbon"),
                error: None,
            },
        )
        .unwrap();
        assert_eq!(pr.error.as_deref(), Some(PAYMENT_REQUIRED));
        assert_eq!(
            pr.resource.url,
            "https://api.example.com/forecast/monday?city=Lisbon"
        );
        assert_eq!(pr.accepts.len(), 1);
        assert_eq!(pr.accepts[0].amount, Amount::from_atomic(10_000));
        assert_eq!(pr.accepts[0].eip712_name_version().unwrap().name, "USDC");
        let bazaar = &pr.extensions.as_ref().unwrap()["bazaar"];
        assert_eq!(bazaar["routeTemplate"], "/forecast/:day");
        assert_eq!(bazaar["info"]["input"]["method"], "GET");
        assert_eq!(
            bazaar["info"]["input"]["pathParams"],
            json!({"day": "monday"})
        );
        assert_eq!(
            bazaar["info"]["input"]["queryParams"],
            json!({"city": "Lisbon"})
        );
        assert_self_valid(bazaar);
        // Round-trips through the header codec.
        let header = purser_x402::header::encode_payment_required(&pr);
        assert_eq!(
            purser_x402::header::decode_payment_required(&header).unwrap(),
            pr
        );
        let err = payment_required(
            &r,
            &ChallengeRequest {
                path_and_query: Some("/forecast/%2e%2e"),
                error: None,
            },
        )
        .unwrap_err();
        assert_eq!(err.code(), purser_domain::ErrorCode::InvalidRouteTemplate);
    }

    #[test]
    fn body_methods_and_mcp_tools_take_their_shapes() {
        let post = resource(
            ResourceKind::Http,
            "https://api.example.com/summarize",
            Some("POST"),
        );
        let ext = &catalog_item(&post).unwrap()["extensions"]["bazaar"];
        assert_eq!(ext["info"]["input"]["bodyType"], "json");
        assert_eq!(ext["info"]["input"]["body"], json!({"city": "Lisbon"}));
        assert!(ext.get("routeTemplate").is_none());
        assert_self_valid(ext);
        let mcp = resource(ResourceKind::Mcp, "https://mcp.example.com/mcp", None);
        let item = catalog_item(&mcp).unwrap();
        let ext = &item["extensions"]["bazaar"];
        assert_eq!(ext["info"]["input"]["type"], "mcp");
        assert_eq!(ext["info"]["input"]["toolName"], "stock_quote");
        assert_self_valid(ext);
        assert_eq!(item["type"], "mcp");
        assert_eq!(item["x402Version"], 2);
        assert_eq!(item["serviceName"], "Weather");
    }

    #[test]
    fn an_old_version_is_payable_only_within_its_window() {
        let r = resource(ResourceKind::Http, "https://api.example.com/x", Some("GET"));
        let replaced_at = Utc::now();
        let mut v1 = r.current.clone();
        v1.superseded_at = Some(replaced_at);
        let mut v2 = r.current.clone();
        v2.version = 2;
        v2.spec.accepts[0].amount = Amount::from_atomic(20_000);
        let versions = [v1.clone(), v2];
        let offered = requirements(&v1.spec.accepts[0], 60).unwrap();
        let within = replaced_at + Duration::seconds(30);
        assert_eq!(
            payable_version(&versions, &offered, within).map(|v| v.version),
            Some(1)
        );
        assert!(
            payable_version(&versions, &offered, replaced_at + Duration::seconds(61)).is_none()
        );
        let mut tampered = offered.clone();
        tampered.amount = Amount::from_atomic(1);
        assert!(payable_version(&versions, &tampered, within).is_none());
        let current = requirements(&versions[1].spec.accepts[0], 60).unwrap();
        assert_eq!(
            payable_version(&versions, &current, within + Duration::days(30)).map(|v| v.version),
            Some(2)
        );
    }
}
