//! The `bazaar` discovery extension: built for the resources merchants register (in the shape
//! `declareDiscoveryExtension` from `@x402/extensions` 2.27 produces, after the resource
//! server's enrichment adds `method` and `routeTemplate`), and read from the payments resource
//! servers send, to learn their resources.
//!
//! A learned extension is untrusted input: its `schema` must be a self-contained 2020-12
//! schema (no `$ref` or `$id` outside itself, so nothing is ever fetched), `info` must
//! validate against it, and `routeTemplate` must be a clean path or it is ignored, as the
//! SDK's `extractDiscoveryInfo` does.

use std::collections::BTreeMap;

use purser_domain::registry::{
    Accept, PriceSpec, Resource, ResourceKind, ResourceMetadata, VersionSpec,
};
use purser_x402::PaymentPayload;
use serde_json::{Map, Value, json};
use url::Url;

use crate::validate::{self, BODY_METHODS, BODY_TYPES, HTTP_METHODS, RouteTemplate, clip};

/// The extension's key in `extensions`.
pub const BAZAAR: &str = "bazaar";
/// The JSON Schema dialect the extension's `schema` declares.
pub const SCHEMA_DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";
/// The MCP transport Purser lists for MCP tools.
pub const MCP_TRANSPORT: &str = "streamable-http";

/// The `bazaar` extension of a resource: `{info, schema, routeTemplate?}`. `path_params` are
/// the concrete values of a request to a route template, when there is one.
pub fn extension(
    resource: &Resource,
    template: &RouteTemplate,
    path_params: Option<&BTreeMap<String, String>>,
) -> Value {
    let spec = &resource.current.spec;
    if let Some(declared) = &spec.bazaar {
        return declared.clone();
    }
    let (input, input_schema) = match resource.kind {
        ResourceKind::Http => http_input(resource, template, path_params),
        ResourceKind::Mcp => mcp_input(resource),
    };
    let mut info = json!({ "input": input });
    let mut properties = json!({ "input": input_schema });
    if spec.output_example.is_some() || spec.output_schema.is_some() {
        let mut output = json!({ "type": "json" });
        if let Some(example) = &spec.output_example {
            output["example"] = example.clone();
        }
        info["output"] = output;
        properties["output"] = json!({
            "type": "object",
            "properties": {
                "type": { "type": "string" },
                "example": spec.output_schema.clone().unwrap_or_else(|| json!({})),
            },
            "required": ["type"],
        });
    }
    let mut extension = json!({
        "info": info,
        "schema": {
            "$schema": SCHEMA_DIALECT,
            "type": "object",
            "properties": properties,
            "required": ["input"],
        },
    });
    if resource.kind == ResourceKind::Http && template.has_params() {
        extension["routeTemplate"] = Value::String(template.path.clone());
    }
    extension
}

fn http_input(
    resource: &Resource,
    template: &RouteTemplate,
    path_params: Option<&BTreeMap<String, String>>,
) -> (Value, Value) {
    let spec = &resource.current.spec;
    let method = resource.method.as_deref().unwrap_or("GET");
    let mut input = json!({ "type": "http", "method": method });
    let mut properties = json!({
        "type": { "type": "string", "const": "http" },
        "method": { "type": "string", "enum": [method] },
    });
    let mut required = vec!["type", "method"];
    let example = spec.input_example.clone().unwrap_or_else(|| json!({}));
    if BODY_METHODS.contains(&method) {
        input["bodyType"] = json!(spec.body_type.as_deref().unwrap_or("json"));
        input["body"] = example;
        properties["bodyType"] = json!({ "type": "string", "enum": BODY_TYPES });
        properties["body"] = spec.input_schema.clone().unwrap_or_else(|| json!({}));
        required.extend(["bodyType", "body"]);
    } else {
        input["queryParams"] = example;
        let mut query = Map::new();
        query.insert("type".into(), json!("object"));
        if let Some(Value::Object(schema)) = &spec.input_schema {
            query.extend(schema.clone());
        }
        properties["queryParams"] = Value::Object(query);
    }
    if template.has_params() {
        let names: Map<String, Value> = template
            .param_names()
            .map(|n| (n.to_owned(), json!({ "type": "string" })))
            .collect();
        properties["pathParams"] = json!({ "type": "object", "properties": names });
        if let Some(params) = path_params {
            input["pathParams"] = json!(params);
        }
    }
    let schema = json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    });
    (input, schema)
}

fn mcp_input(resource: &Resource) -> (Value, Value) {
    let spec = &resource.current.spec;
    let mut input = json!({
        "type": "mcp",
        "toolName": resource.tool.as_deref().unwrap_or_default(),
        "transport": MCP_TRANSPORT,
        "inputSchema": spec.input_schema.clone().unwrap_or_else(|| json!({ "type": "object" })),
    });
    if !resource.metadata.description.is_empty() {
        input["description"] = json!(resource.metadata.description);
    }
    if let Some(example) = &spec.input_example {
        input["example"] = example.clone();
    }
    let schema = json!({
        "type": "object",
        "properties": {
            "type": { "type": "string", "const": "mcp" },
            "toolName": { "type": "string" },
            "description": { "type": "string" },
            "transport": { "type": "string", "enum": [MCP_TRANSPORT] },
            "inputSchema": { "type": "object" },
            "example": { "type": "object" },
        },
        "required": ["type", "toolName", "inputSchema"],
        "additionalProperties": false,
    });
    (input, schema)
}

/// A resource described by a payment's `bazaar` extension.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub kind: ResourceKind,
    /// Origin and path (or route template); no query.
    pub url: String,
    pub method: Option<String>,
    pub tool: Option<String>,
    pub metadata: ResourceMetadata,
    pub spec: VersionSpec,
    pub search_fields: String,
}

/// Reads the `bazaar` extension of a v2 payment. `Ok(None)` when there is none; `Err` with
/// the reason to answer as `rejectedReason` when it is not acceptable.
pub fn discover(payload: &PaymentPayload) -> Result<Option<Discovered>, String> {
    let Some(extension) = payload.extensions.as_ref().and_then(|e| e.get(BAZAAR)) else {
        return Ok(None);
    };
    let extension = extension
        .as_object()
        .ok_or("the bazaar extension is not an object")?;
    let info = extension
        .get("info")
        .filter(|v| v.is_object())
        .ok_or("the bazaar extension has no `info` object")?;
    let schema = extension
        .get("schema")
        .ok_or("the bazaar extension has no `schema`")?;
    let validator =
        validate::json_schema(schema, "bazaar schema").map_err(|e| e.message().to_owned())?;
    if let Some(err) = validator.iter_errors(info).next() {
        return Err(format!(
            "bazaar info does not match its schema at `{}`: {}",
            err.instance_path(),
            clip(&err.to_string(), 160)
        ));
    }
    let input = info
        .get("input")
        .and_then(Value::as_object)
        .ok_or("bazaar info has no `input` object")?;
    let resource = payload
        .resource
        .as_ref()
        .ok_or("the payment names no resource (`resource.url`)")?;
    let url = Url::parse(&resource.url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or("the resource URL is not an absolute http(s) URL")?;
    let route_template = extension
        .get("routeTemplate")
        .and_then(Value::as_str)
        .filter(|t| valid_route_template(t));
    let path = route_template.unwrap_or(url.path());
    let canonical = format!("{}{path}", url.origin().ascii_serialization());
    validate::resource_url(&canonical).map_err(|e| e.message().to_owned())?;

    let (kind, method, tool) = match input.get("type").and_then(Value::as_str) {
        Some("http") => {
            let method = input
                .get("method")
                .and_then(Value::as_str)
                .map(str::to_ascii_uppercase)
                .filter(|m| HTTP_METHODS.contains(&m.as_str()))
                .ok_or("bazaar info.input.method is missing or not an HTTP method")?;
            (ResourceKind::Http, Some(method), None)
        }
        Some("mcp") => {
            let tool = input
                .get("toolName")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty() && t.len() <= 128)
                .ok_or("bazaar info.input.toolName is missing")?;
            (ResourceKind::Mcp, None, Some(tool.to_owned()))
        }
        _ => return Err("bazaar info.input.type must be `http` or `mcp`".into()),
    };

    // The stored extension drops the concrete path parameters of this one request, so each
    // payment does not make a new version.
    let mut stored = Value::Object(extension.clone());
    if let Some(input) = stored
        .get_mut("info")
        .and_then(|i| i.get_mut("input"))
        .and_then(Value::as_object_mut)
    {
        input.remove("pathParams");
    }
    if route_template.is_none()
        && let Some(map) = stored.as_object_mut()
    {
        map.remove("routeTemplate");
    }

    let accepted = &payload.accepted;
    let (eip712_name, eip712_version) = accepted
        .eip712_name_version()
        .map(|d| (d.name.to_owned(), d.version.to_owned()))
        .unwrap_or_default();
    let spec = VersionSpec {
        price: PriceSpec::Atomic {
            amount: accepted.amount,
        },
        accepts: vec![Accept {
            scheme: accepted.scheme.clone(),
            network: accepted.network.as_str().to_owned(),
            asset: accepted.asset.clone(),
            amount: accepted.amount,
            pay_to: accepted.pay_to.clone(),
            eip712_name,
            eip712_version,
            extra: None,
        }],
        max_timeout_seconds: u32::try_from(accepted.max_timeout_seconds).unwrap_or(u32::MAX),
        input_schema: None,
        output_schema: None,
        input_example: None,
        output_example: None,
        body_type: None,
        bazaar: Some(stored),
        repeat_access: None,
        escrow: None,
    };

    let service_name = resource
        .service_name
        .as_deref()
        .filter(|s| printable(s, 32));
    let mut tags: Vec<String> = Vec::new();
    for tag in resource.tags.iter().flatten() {
        if printable(tag, 32) && !tags.iter().any(|t| t.eq_ignore_ascii_case(tag)) && tags.len() < 5
        {
            tags.push(tag.clone());
        }
    }
    let description = resource
        .description
        .as_deref()
        .map(|d| clip(d, validate::MAX_DESCRIPTION_CHARS))
        .unwrap_or_default();
    let name = service_name
        .map(str::to_owned)
        .or_else(|| tool.clone())
        .unwrap_or_else(|| clip(&canonical, validate::MAX_NAME_CHARS));
    let metadata = ResourceMetadata {
        name,
        description,
        mime_type: resource
            .mime_type
            .as_deref()
            .filter(|m| printable(m, 100))
            .map(str::to_owned),
        service_name: service_name.map(str::to_owned),
        tags,
        icon_url: resource
            .icon_url
            .as_deref()
            .and_then(|u| validate::icon_url(u).ok()),
    };

    let mut words = Vec::new();
    if let Some(props) = schema
        .pointer("/properties/input/properties")
        .and_then(Value::as_object)
    {
        for key in ["queryParams", "body", "inputSchema", "pathParams"] {
            if let Some(sub) = props.get(key) {
                validate::schema_field_words(sub, &mut words);
            }
        }
    }
    for key in ["queryParams", "body", "inputSchema"] {
        if let Some(Value::Object(map)) = input.get(key) {
            for name in map.keys() {
                purser_domain::registry::search_words(name, &mut words);
            }
        }
    }
    words.sort();
    words.dedup();

    Ok(Some(Discovered {
        kind,
        url: canonical,
        method,
        tool,
        metadata,
        spec,
        search_fields: words.join(" "),
    }))
}

/// The SDK's `isValidRouteTemplate`: a path of safe characters that, fully percent-decoded,
/// holds neither `..` nor `://`.
fn valid_route_template(t: &str) -> bool {
    let safe = t.starts_with('/')
        && t.len() > 1
        && t.len() <= validate::MAX_URL_CHARS
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_/:.-~%".contains(c));
    safe && validate::raw_path_is_clean(t).is_ok()
}

fn printable(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| (0x20..=0x7e).contains(&b))
}
