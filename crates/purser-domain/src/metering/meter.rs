//! Meters: which events count, how, and by which dimensions.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::error::{Error, ErrorCode, Result};
use crate::id::{MeterId, TenantId};
use crate::macros::string_enum;
use crate::metering::path::ValuePath;
use crate::metering::price::MeterPrice;
use crate::text;

string_enum!(
    /// How a meter folds the values of a window's events into one.
    Aggregation, "aggregation" {
        Sum = "SUM",
        /// The number of events; needs no value.
        Count = "COUNT",
        Min = "MIN",
        Max = "MAX",
        Avg = "AVG",
        /// The number of distinct values (any JSON value, compared as text).
        UniqueCount = "UNIQUE_COUNT",
        /// The value of the window's latest event (by event time).
        Latest = "LATEST",
    }
);

impl Aggregation {
    /// Whether the value must be a number (or a decimal string).
    pub fn is_numeric(self) -> bool {
        !matches!(self, Aggregation::Count | Aggregation::UniqueCount)
    }

    pub fn needs_value(self) -> bool {
        self != Aggregation::Count
    }
}

/// The name group-by and filters use for the event's subject; no dimension may take it.
pub const SUBJECT: &str = "subject";
const MAX_DIMENSIONS: usize = 16;

/// What a merchant defines.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMeter {
    /// How URLs and queries name the meter: `[a-z0-9][a-z0-9_-]{0,62}`, unique per tenant.
    pub slug: String,
    pub name: String,
    pub description: Option<String>,
    /// The CloudEvents `type` the meter counts.
    pub event_type: String,
    pub aggregation: Aggregation,
    /// Where the value is in `data`; required for every aggregation but `COUNT`.
    pub value: Option<ValuePath>,
    /// Dimensions by name, each a path into `data` whose value (as text) groups and filters.
    pub group_by: BTreeMap<String, ValuePath>,
    pub price: Option<MeterPrice>,
}

/// Whether `slug` is a meter slug: `[a-z0-9][a-z0-9_-]{0,62}`. A lookup by anything else
/// finds nothing, and need not ask a store.
pub fn is_slug(slug: &str) -> bool {
    let bytes = slug.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-')
}

fn is_dimension_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 63
        && matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl NewMeter {
    /// `invalid_input` (or `invalid_price_model`) naming the first problem.
    pub fn validate(&self) -> Result<()> {
        if !is_slug(&self.slug) {
            return Err(Error::invalid_input(
                "a meter slug is 1 to 63 characters of a-z, 0-9, `_` and `-`, starting with a letter or digit",
            ));
        }
        if self.name.trim().is_empty() {
            return Err(Error::invalid_input("a meter's `name` must not be empty"));
        }
        text::METER_NAME.check("a meter's `name`", &self.name)?;
        if let Some(description) = &self.description {
            text::METER_DESCRIPTION.check("a meter's `description`", description)?;
        }
        text::EVENT_TYPE.check("a meter's `eventType`", &self.event_type)?;
        match (self.aggregation.needs_value(), &self.value) {
            (true, None) => {
                return Err(Error::invalid_input(format!(
                    "a {} meter needs a value JSONPath",
                    self.aggregation
                )));
            }
            (false, Some(_)) => {
                return Err(Error::invalid_input(
                    "a COUNT meter counts events and takes no value JSONPath",
                ));
            }
            _ => {}
        }
        if self.group_by.len() > MAX_DIMENSIONS {
            return Err(Error::invalid_input(
                "a meter has at most 16 group-by dimensions",
            ));
        }
        for name in self.group_by.keys() {
            if name == SUBJECT || !is_dimension_name(name) {
                return Err(Error::invalid_input(format!(
                    "dimension name `{}` must be an identifier (letters, digits, `_`) other than `subject`",
                    name.chars().take(64).collect::<String>()
                )));
            }
        }
        if let Some(price) = &self.price {
            price.validate()?;
        }
        Ok(())
    }
}

/// A stored meter.
#[derive(Debug, Clone, PartialEq)]
pub struct Meter {
    pub id: MeterId,
    pub tenant_id: TenantId,
    pub slug: String,
    pub name: String,
    pub description: Option<String>,
    pub event_type: String,
    pub aggregation: Aggregation,
    pub value: Option<ValuePath>,
    pub group_by: BTreeMap<String, ValuePath>,
    pub price: Option<MeterPrice>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Archived meters take no part in ingestion checks and are hidden from listings by
    /// default; their usage can still be queried.
    pub archived_at: Option<DateTime<Utc>>,
}

impl Meter {
    /// Checks that the meter can read `data` of an event of its type: its value path selects
    /// something (`meter_value_missing`) and, for numeric aggregations, a number or decimal
    /// string (`meter_value_not_numeric`). Group-by paths that select nothing are fine: such
    /// events group under no value.
    pub fn check(&self, data: &Value) -> Result<()> {
        let Some(path) = &self.value else {
            return Ok(());
        };
        let Some(value) = path.select(data) else {
            return Err(Error::new(
                ErrorCode::MeterValueMissing,
                format!(
                    "meter `{}` reads {} from the event's data, which has nothing there",
                    self.slug, path
                ),
            ));
        };
        if self.aggregation.is_numeric() && numeric_value(value).is_none() {
            return Err(Error::new(
                ErrorCode::MeterValueNotNumeric,
                format!(
                    "meter `{}` ({}) reads {} but the event's value there is not a number",
                    self.slug, self.aggregation, path
                ),
            ));
        }
        Ok(())
    }
}

/// A JSON number, or a string of a plain decimal (`-12.5`), as a decimal; `None` otherwise
/// (and for numbers beyond 28 significant digits).
pub fn numeric_value(value: &Value) -> Option<Decimal> {
    match value {
        Value::Number(number) => {
            let text = number.to_string();
            Decimal::from_str(&text)
                .or_else(|_| Decimal::from_scientific(&text))
                .ok()
        }
        Value::String(text) if is_plain_decimal(text) => Decimal::from_str(text).ok(),
        _ => None,
    }
}

/// `-?[0-9]+(\.[0-9]+)?`: the strings both stores cast to numbers the same way.
pub fn is_plain_decimal(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match digits.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (digits, None),
    };
    !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meter(aggregation: Aggregation, value: Option<&str>) -> NewMeter {
        NewMeter {
            slug: "llm-tokens".into(),
            name: "LLM tokens".into(),
            description: None,
            event_type: "llm.tokens".into(),
            aggregation,
            value: value.map(|v| ValuePath::parse(v).unwrap()),
            group_by: BTreeMap::from([("model".into(), ValuePath::parse("$.model").unwrap())]),
            price: None,
        }
    }

    fn stored(new: NewMeter) -> Meter {
        Meter {
            id: MeterId::new(),
            tenant_id: TenantId::new(),
            slug: new.slug,
            name: new.name,
            description: new.description,
            event_type: new.event_type,
            aggregation: new.aggregation,
            value: new.value,
            group_by: new.group_by,
            price: new.price,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            archived_at: None,
        }
    }

    #[test]
    fn validates_definitions() {
        meter(Aggregation::Sum, Some("$.tokens"))
            .validate()
            .unwrap();
        meter(Aggregation::Count, None).validate().unwrap();
        assert!(meter(Aggregation::Sum, None).validate().is_err());
        assert!(meter(Aggregation::Count, Some("$.x")).validate().is_err());
        for slug in ["", "Upper", "-lead", "has space", &"x".repeat(64)] {
            let mut m = meter(Aggregation::Count, None);
            m.slug = slug.to_owned();
            assert!(m.validate().is_err(), "{slug}");
        }
        let mut m = meter(Aggregation::Count, None);
        m.group_by
            .insert("subject".into(), ValuePath::parse("$.s").unwrap());
        assert!(m.validate().is_err());
        type Break = fn(&mut NewMeter);
        let breaks: [(Break, &str); 6] = [
            (|m| m.name = "Tokens\u{0}".into(), "`name`"),
            (|m| m.name = "Tokens\n".into(), "`name`"),
            (|m| m.name = " ".into(), "`name`"),
            (|m| m.description = Some("a\u{0}".into()), "`description`"),
            (|m| m.event_type = "llm\u{0}".into(), "`eventType`"),
            (|m| m.event_type = String::new(), "`eventType`"),
        ];
        for (break_it, says) in breaks {
            let mut m = meter(Aggregation::Count, None);
            break_it(&mut m);
            let err = m.validate().unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidInput, "{says}");
            assert!(err.message().contains(says), "{}", err.message());
        }
        // A description may span lines.
        let mut m = meter(Aggregation::Count, None);
        m.description = Some("tokens in\n\tand out".into());
        m.validate().unwrap();
    }

    #[test]
    fn checks_event_values() {
        let sum = stored(meter(Aggregation::Sum, Some("$.tokens")));
        sum.check(&json!({"tokens": 5})).unwrap();
        sum.check(&json!({"tokens": "5.25"})).unwrap();
        sum.check(&json!({"tokens": -1.5e3})).unwrap();
        assert_eq!(
            sum.check(&json!({"other": 5})).unwrap_err().code(),
            ErrorCode::MeterValueMissing
        );
        assert_eq!(
            sum.check(&Value::Null).unwrap_err().code(),
            ErrorCode::MeterValueMissing
        );
        for bad in [
            json!("five"),
            json!(true),
            json!({"n": 1}),
            json!("1e3"),
            json!(" 1"),
        ] {
            assert_eq!(
                sum.check(&json!({ "tokens": bad })).unwrap_err().code(),
                ErrorCode::MeterValueNotNumeric
            );
        }
        let unique = stored(meter(Aggregation::UniqueCount, Some("$.user")));
        unique.check(&json!({"user": {"any": "value"}})).unwrap();
        let count = stored(meter(Aggregation::Count, None));
        count.check(&Value::Null).unwrap();
    }

    #[test]
    fn numbers() {
        assert_eq!(numeric_value(&json!(12)), Some(Decimal::from(12)));
        assert_eq!(numeric_value(&json!("0.5")), Decimal::from_str("0.5").ok());
        assert_eq!(numeric_value(&json!(1e3)), Some(Decimal::from(1000)));
        assert!(numeric_value(&json!("1.")).is_none());
        assert!(numeric_value(&json!(".5")).is_none());
        assert!(numeric_value(&json!("--1")).is_none());
    }
}
