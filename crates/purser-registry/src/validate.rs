//! Checks on what merchants and resource servers send, each failing with its own error code:
//! addresses (EIP-55), URLs and route templates, JSON Schemas (2020-12) and their examples,
//! prices, and descriptive metadata.

use std::collections::BTreeMap;

use alloy_primitives::Address;
use purser_domain::money::{Amount, Money};
use purser_domain::text::{self as rules, TextRule};
use purser_domain::{Error, ErrorCode, Result};
use serde_json::Value;
use url::Url;

/// The longest URL a resource may have ([`purser_domain::text::URL`]).
pub const MAX_URL_CHARS: usize = 2048;
/// [`purser_domain::text::RESOURCE_NAME`]'s limit.
pub const MAX_NAME_CHARS: usize = 120;
/// [`purser_domain::text::RESOURCE_DESCRIPTION`]'s limit.
pub const MAX_DESCRIPTION_CHARS: usize = 4000;
pub const MAX_TAGS: usize = 16;
/// [`purser_domain::text::TAG`]'s limit.
pub const MAX_TAG_CHARS: usize = 40;
/// The largest JSON Schema or example accepted, serialised.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;
/// HTTP methods a resource may be called with.
pub const HTTP_METHODS: &[&str] = &["GET", "HEAD", "DELETE", "POST", "PUT", "PATCH"];
/// Methods whose input travels in the body.
pub const BODY_METHODS: &[&str] = &["POST", "PUT", "PATCH"];
pub const BODY_TYPES: &[&str] = &["json", "form-data", "text"];

/// `raw` as an EIP-55 checksummed address. All-lower-case or all-upper-case hex carries no
/// checksum and is refused too: a payout address is typed once and paid forever.
pub fn checksummed_address(raw: &str, what: &str) -> Result<String> {
    Address::parse_checksummed(raw.trim(), None)
        .map(|a| a.to_checksum(None))
        .map_err(|_| {
            Error::new(
                ErrorCode::InvalidAddress,
                format!(
                    "{what} `{}` is not an EIP-55 checksummed EVM address",
                    clip(raw, 64)
                ),
            )
        })
}

/// A resource URL: absolute http(s), no credentials, no fragment, at most [`MAX_URL_CHARS`].
/// Its path may hold `:name` segments, making it a route template.
pub fn resource_url(raw: &str) -> Result<RouteTemplate> {
    let bad = |why: &str| {
        Error::new(
            ErrorCode::InvalidRouteTemplate,
            format!("resource URL `{}` {why}", clip(raw, 80)),
        )
    };
    if raw.len() > MAX_URL_CHARS {
        return Err(bad("is too long"));
    }
    // Before parsing: URL parsing resolves `..` and `%2e%2e` segments away.
    raw_path_is_clean(raw).map_err(|why| bad(&why))?;
    let url = Url::parse(raw).map_err(|_| bad("is not an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must use http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    if url.fragment().is_some() {
        return Err(bad("must not have a fragment"));
    }
    RouteTemplate::parse(&url).map_err(|why| bad(&why))
}

/// Checks the path of an unparsed URL (or a bare path): no segment decodes to `..` or `.` or
/// holds `://`.
pub fn raw_path_is_clean(raw: &str) -> std::result::Result<(), String> {
    let rest = raw.split_once("://").map_or(raw, |(_, rest)| rest);
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    let path = path.split(['?', '#']).next().unwrap_or("");
    for segment in path.split('/').skip(1) {
        let decoded = fully_decoded(segment).ok_or("has an undecodable path segment")?;
        if decoded == ".." || decoded == "." || decoded.contains("://") {
            return Err("has a `..`, `.` or `://` path segment".into());
        }
    }
    Ok(())
}

/// A resource URL whose path segments are literal or `:name` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTemplate {
    /// Scheme, host and port: `https://api.example.com`.
    pub origin: String,
    /// The path as given: `/users/:userId`.
    pub path: String,
    pub query: Option<String>,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

impl RouteTemplate {
    fn parse(url: &Url) -> std::result::Result<Self, String> {
        let path = url.path().to_owned();
        let mut segments = Vec::new();
        for raw in path.split('/').skip(1) {
            match raw.strip_prefix(':') {
                Some(name) => {
                    let valid = name
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if !valid {
                        return Err(format!(
                            "has an invalid path parameter `:{}`",
                            clip(name, 32)
                        ));
                    }
                    if segments.contains(&Segment::Param(name.to_owned())) {
                        return Err(format!("names path parameter `:{name}` twice"));
                    }
                    segments.push(Segment::Param(name.to_owned()));
                }
                None => segments.push(Segment::Literal(raw.to_owned())),
            }
        }
        Ok(Self {
            origin: url.origin().ascii_serialization(),
            path,
            query: url.query().map(str::to_owned),
            segments,
        })
    }

    pub fn has_params(&self) -> bool {
        self.segments.iter().any(|s| matches!(s, Segment::Param(_)))
    }

    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(name) => Some(name.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// The template's URL as listed: origin, path with `:params`, and query.
    pub fn url(&self) -> String {
        match &self.query {
            Some(q) => format!("{}{}?{q}", self.origin, self.path),
            None => format!("{}{}", self.origin, self.path),
        }
    }

    /// Matches a concrete request path against the template, answering the parameters'
    /// values. A value that decodes to `..`, `.` or holds `://` is refused: it would let a
    /// request priced for one route reach another.
    pub fn bind(&self, path: &str) -> Result<BTreeMap<String, String>> {
        let parts: Vec<&str> = path.split('/').skip(1).collect();
        let mismatch = || {
            Error::new(
                ErrorCode::InvalidRouteTemplate,
                format!(
                    "path `{}` does not match the route `{}`",
                    clip(path, 80),
                    self.path
                ),
            )
        };
        if parts.len() != self.segments.len() {
            return Err(mismatch());
        }
        let mut params = BTreeMap::new();
        for (segment, part) in self.segments.iter().zip(parts) {
            match segment {
                Segment::Literal(lit) if lit == part => {}
                Segment::Literal(_) => return Err(mismatch()),
                Segment::Param(name) => {
                    let value = fully_decoded(part).ok_or_else(mismatch)?;
                    if value.is_empty()
                        || value == ".."
                        || value == "."
                        || value.contains("://")
                        || value.contains('/')
                    {
                        return Err(Error::new(
                            ErrorCode::InvalidRouteTemplate,
                            format!(
                                "path parameter `{name}` must not be empty or hold `..`, `/` or `://`"
                            ),
                        ));
                    }
                    params.insert(name.clone(), value);
                }
            }
        }
        Ok(params)
    }

    /// The path with every parameter replaced by `value` (the prober's stand-in request).
    pub fn path_with(&self, value: &str) -> String {
        let mut path = String::new();
        for segment in &self.segments {
            path.push('/');
            match segment {
                Segment::Literal(lit) => path.push_str(lit),
                Segment::Param(_) => path.push_str(value),
            }
        }
        if path.is_empty() { "/".into() } else { path }
    }
}

/// Percent-decodes until nothing changes (at most five rounds), so `%252e%252e` is seen as
/// `..`. `None` when the bytes are not UTF-8 or it never settles.
fn fully_decoded(raw: &str) -> Option<String> {
    let mut current = raw.to_owned();
    for _ in 0..5 {
        let next = percent_decode(&current)?;
        if next == current {
            return Some(current);
        }
        current = next;
    }
    None
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            match u8::from_str_radix(hex, 16) {
                Ok(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            }
        } else {
            out.push(bytes[i]);
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Checks `schema` is a valid JSON Schema (2020-12) with no references outside itself, and
/// answers a compiled validator.
pub fn json_schema(schema: &Value, what: &str) -> Result<jsonschema::Validator> {
    let bad = |why: String| Error::new(ErrorCode::InvalidJsonSchema, format!("{what}: {why}"));
    if serde_json::to_vec(schema)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
        > MAX_SCHEMA_BYTES
    {
        return Err(bad(format!("larger than {MAX_SCHEMA_BYTES} bytes")));
    }
    if !(schema.is_object() || schema.is_boolean()) {
        return Err(bad("a JSON Schema is an object or a boolean".into()));
    }
    if let Some(reference) = external_reference(schema) {
        return Err(bad(format!(
            "`{}` points outside the schema; only local `#...` references are allowed",
            clip(&reference, 80)
        )));
    }
    if let Err(err) = jsonschema::draft202012::meta::validate(schema) {
        return Err(bad(format!(
            "not a valid 2020-12 schema: {}",
            clip(&err.to_string(), 200)
        )));
    }
    jsonschema::draft202012::new(schema)
        .map_err(|e| bad(format!("does not compile: {}", clip(&e.to_string(), 200))))
}

/// Checks `example` against `validator`.
pub fn example_matches(
    validator: &jsonschema::Validator,
    example: &Value,
    what: &str,
) -> Result<()> {
    match validator.iter_errors(example).next() {
        None => Ok(()),
        Some(err) => Err(Error::new(
            ErrorCode::InvalidJsonSchema,
            format!(
                "{what} does not match its schema at `{}`: {}",
                err.instance_path(),
                clip(&err.to_string(), 200)
            ),
        )),
    }
}

/// The first `$ref` or `$id` anywhere in `schema` that is not a local `#...` reference.
fn external_reference(schema: &Value) -> Option<String> {
    match schema {
        Value::Object(map) => {
            for (key, value) in map {
                if key == "$ref" || key == "$id" || key == "$dynamicRef" {
                    match value {
                        Value::String(s) if s.starts_with('#') => {}
                        other => return Some(other.to_string()),
                    }
                }
                if let Some(found) = external_reference(value) {
                    return Some(found);
                }
            }
            None
        }
        Value::Array(items) => items.iter().find_map(external_reference),
        _ => None,
    }
}

/// Property names anywhere in a schema, as search words.
pub fn schema_field_words(schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            for (key, value) in map {
                if key == "properties"
                    && let Value::Object(props) = value
                {
                    for name in props.keys() {
                        purser_domain::registry::search_words(name, out);
                    }
                }
                schema_field_words(value, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| schema_field_words(v, out)),
        _ => {}
    }
}

/// The USD price of a call to a resource priced by `meter` (a slug of the scope's meters) at
/// `units` per call: `invalid_price` when the tenant has no such meter, or it has no price.
pub async fn meter_call_price(
    store: &dyn purser_domain::repo::MeteringRepository,
    scope: purser_domain::auth::TenantScope,
    meter: &str,
    units: rust_decimal::Decimal,
) -> Result<rust_decimal::Decimal> {
    let found = if purser_domain::metering::meter::is_slug(meter) {
        store.find_meter_by_slug(scope, meter).await?
    } else {
        None
    };
    let found = found.ok_or_else(|| {
        Error::new(
            ErrorCode::InvalidPrice,
            format!(
                "the tenant has no meter `{}` to price calls with",
                clip(meter, 64)
            ),
        )
    })?;
    let price = found.price.as_ref().ok_or_else(|| {
        Error::new(
            ErrorCode::InvalidPrice,
            format!("meter `{}` has no price: set one first", found.slug),
        )
    })?;
    price.call_price(units)
}

/// A price in atomic units: given directly, or as USD converted with `decimals`. Zero, more
/// precision than the asset has, and amounts beyond `u128` are `invalid_price`. A usage price
/// ([`PriceSpec::Meter`](purser_domain::registry::PriceSpec::Meter)) needs `call_usd`, the
/// meter's price of a call ([`meter_call_price`]), rounded half up to the asset's precision.
pub fn atomic_price(
    price: &purser_domain::registry::PriceSpec,
    decimals: u8,
    call_usd: Option<rust_decimal::Decimal>,
) -> Result<Amount> {
    use purser_domain::registry::PriceSpec;
    let amount = match price {
        PriceSpec::Atomic { amount } => *amount,
        PriceSpec::Meter { meter, .. } => {
            let usd = call_usd.ok_or_else(|| {
                Error::new(
                    ErrorCode::InvalidPrice,
                    format!("the price of meter `{}` is not known", clip(meter, 64)),
                )
            })?;
            purser_domain::metering::price::usd_to_atomic(usd, decimals)?
        }
        PriceSpec::Usd { usd } => {
            let text = usd.trim().trim_start_matches('$');
            Money::parse_units(text, decimals)
                .map_err(|e| {
                    Error::new(
                        ErrorCode::InvalidPrice,
                        format!("USD price `{}`: {}", clip(usd, 40), e.message()),
                    )
                })?
                .amount()
        }
    };
    if amount.is_zero() {
        return Err(Error::new(
            ErrorCode::InvalidPrice,
            "a price must be more than zero",
        ));
    }
    Ok(amount)
}

/// Trims `raw` and checks it against `rule` (one of [`purser_domain::text`]'s), naming `what`.
pub fn text(raw: &str, what: &str, rule: TextRule) -> Result<String> {
    let value = raw.trim();
    rule.check(what, value)?;
    Ok(value.to_owned())
}

/// An icon URL: absolute https (or http), no credentials.
pub fn icon_url(raw: &str) -> Result<String> {
    rules::URL.check("iconUrl", raw.trim())?;
    let url = Url::parse(raw.trim())
        .ok()
        .filter(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.username().is_empty()
                && u.password().is_none()
                && raw.len() <= MAX_URL_CHARS
        })
        .ok_or_else(|| {
            Error::invalid_input("iconUrl must be an absolute http(s) URL without credentials")
        })?;
    Ok(url.to_string())
}

/// At most `max` characters of `s`, for messages.
pub fn clip(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).filter(|c| !c.is_control()).collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limits_here_are_the_domains() {
        use purser_domain::text::Length;
        assert_eq!(rules::URL.max, Length::Chars(MAX_URL_CHARS));
        assert_eq!(rules::RESOURCE_NAME.max, Length::Chars(MAX_NAME_CHARS));
        assert_eq!(
            rules::RESOURCE_DESCRIPTION.max,
            Length::Chars(MAX_DESCRIPTION_CHARS)
        );
        assert_eq!(rules::TAG.max, Length::Chars(MAX_TAG_CHARS));
    }

    #[test]
    fn text_is_trimmed_and_follows_its_rule() {
        assert_eq!(
            text(" Weather ", "name", rules::RESOURCE_NAME).unwrap(),
            "Weather"
        );
        for bad in ["a\u{0}b", "a\tb", "a\nb", ""] {
            let err = text(bad, "name", rules::RESOURCE_NAME).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidInput, "{bad:?}");
            assert!(err.message().contains("name"), "{}", err.message());
        }
        assert_eq!(
            text(
                "line\n\tindented",
                "description",
                rules::RESOURCE_DESCRIPTION
            )
            .unwrap(),
            "line\n\tindented"
        );
        assert!(text("a\u{0}", "description", rules::RESOURCE_DESCRIPTION).is_err());
        assert!(icon_url("https://x.example/\u{0}.png").is_err());
    }

    #[test]
    fn addresses_must_carry_their_checksum() {
        let good = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C";
        assert_eq!(checksummed_address(good, "payTo").unwrap(), good);
        for bad in [
            "0x209693bc6afc0c5328ba36faf03c514ef312287c",
            "0x209693Bc6afc0C5328bA36FaF03C514EF312287c",
            "0x1234",
            "not an address",
        ] {
            let err = checksummed_address(bad, "payTo").unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidAddress, "{bad}");
        }
    }

    #[test]
    fn templates_bind_parameters_and_refuse_traversal() {
        let t = resource_url("https://api.example.com/users/:userId/posts/:postId").unwrap();
        assert!(t.has_params());
        assert_eq!(t.param_names().collect::<Vec<_>>(), ["userId", "postId"]);
        let params = t.bind("/users/42/posts/7").unwrap();
        assert_eq!(params["userId"], "42");
        assert_eq!(params["postId"], "7");
        for bad in [
            "/users/../posts/7",
            "/users/%2e%2e/posts/7",
            "/users/%252e%252e/posts/7",
            "/users/http:%2F%2Fevil/posts/7",
            "/users/42/posts",
            "/people/42/posts/7",
        ] {
            let err = t.bind(bad).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidRouteTemplate, "{bad}");
        }
        assert_eq!(t.path_with("1"), "/users/1/posts/1");
        for bad in [
            "https://x.example/a/../b",
            "https://x.example/a/%2e%2e/b",
            "https://x.example/a/:1bad",
            "https://x.example/a/:id/:id",
            "ftp://x.example/a",
            "/relative/path",
            "https://user:pw@x.example/a",
            "https://x.example/a#frag",
        ] {
            let err = resource_url(bad).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidRouteTemplate, "{bad}");
        }
    }

    #[test]
    fn schemas_are_2020_12_and_self_contained() {
        let ok = json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
        let v = json_schema(&ok, "inputSchema").unwrap();
        example_matches(&v, &json!({"city": "Paris"}), "inputExample").unwrap();
        let err = example_matches(&v, &json!({"city": 3}), "inputExample").unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidJsonSchema);
        for bad in [
            json!({"type": "strnig"}),
            json!({"$ref": "https://evil.example/schema.json"}),
            json!({"properties": {"a": {"$ref": "other.json#/x"}}}),
            json!({"minLength": "three"}),
            json!([1, 2]),
        ] {
            let err = json_schema(&bad, "inputSchema").unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidJsonSchema, "{bad}");
        }
    }

    #[test]
    fn prices_convert_exactly_or_not_at_all() {
        use purser_domain::registry::PriceSpec;
        let usd = |s: &str| PriceSpec::Usd { usd: s.into() };
        assert_eq!(
            atomic_price(&usd("0.01"), 6, None).unwrap().atomic(),
            10_000
        );
        assert_eq!(
            atomic_price(&usd("$1.5"), 6, None).unwrap().atomic(),
            1_500_000
        );
        assert_eq!(
            atomic_price(&usd("2"), 18, None).unwrap().atomic(),
            2_000_000_000_000_000_000
        );
        for bad in ["0", "0.0000001", "-1", "abc", "1e3", ""] {
            let err = atomic_price(&usd(bad), 6, None).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidPrice, "{bad}");
        }
        let zero = PriceSpec::Atomic {
            amount: Amount::ZERO,
        };
        assert_eq!(
            atomic_price(&zero, 6, None).unwrap_err().code(),
            ErrorCode::InvalidPrice
        );
        let huge = usd("340282366920938463463374607431768211455");
        assert_eq!(
            atomic_price(&huge, 6, None).unwrap_err().code(),
            ErrorCode::InvalidPrice
        );
    }

    #[test]
    fn field_words_come_from_property_names() {
        let mut words = Vec::new();
        schema_field_words(
            &json!({"properties": {"zipCode": {"type": "string"}, "nested": {"properties": {"lat": {}}}}}),
            &mut words,
        );
        words.sort();
        assert_eq!(words, ["code", "lat", "nested", "zip", "zipcode"]);
    }
}
