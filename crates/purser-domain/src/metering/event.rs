//! Usage events: CloudEvents 1.0 in, [`NewUsageEvent`] to storage, [`UsageEntry`] back.
//!
//! Purser needs of a CloudEvent what a meter reads: `specversion` `1.0`, `id` and `source`
//! (together the deduplication key, per tenant and forever), `type` (which meters apply),
//! `subject` (the customer or payer: required here, although optional in CloudEvents), `time`
//! (RFC 3339; the receipt time when absent) and `data` (JSON; `data_base64` cannot be
//! metered). Extension attributes are allowed and not kept.

use chrono::{DateTime, Duration, SubsecRound as _, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, ErrorCode, Result};
use crate::macros::string_enum;

const MAX_ID_LEN: usize = 256;
const MAX_SOURCE_LEN: usize = 512;
const MAX_TYPE_LEN: usize = 256;
const MAX_SUBJECT_LEN: usize = 256;

/// A validated usage event, ready to store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewUsageEvent {
    pub source: String,
    pub id: String,
    pub event_type: String,
    pub subject: String,
    pub time: DateTime<Utc>,
    /// The event's `data`; `Value::Null` when it had none.
    pub data: Value,
}

fn malformed(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::MalformedCloudEvent, message.into())
}

/// The event's `id` and `source` as sent, when they are strings: what a batch answer names a
/// rejected event by.
pub fn event_key(value: &Value) -> (Option<&str>, Option<&str>) {
    (
        value.get("id").and_then(Value::as_str),
        value.get("source").and_then(Value::as_str),
    )
}

fn text_attribute<'a>(
    event: &'a Map<String, Value>,
    name: &str,
    max: usize,
    required: bool,
) -> Result<Option<&'a str>> {
    match event.get(name) {
        None | Some(Value::Null) if !required => Ok(None),
        None | Some(Value::Null) => Err(malformed(format!("the event has no `{name}`"))),
        Some(Value::String(text)) if text.is_empty() => {
            Err(malformed(format!("the event's `{name}` is empty")))
        }
        Some(Value::String(text)) if text.len() > max => Err(malformed(format!(
            "the event's `{name}` is longer than {max} bytes"
        ))),
        Some(Value::String(text)) if text.chars().any(char::is_control) => Err(malformed(format!(
            "the event's `{name}` contains a control character"
        ))),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(malformed(format!("the event's `{name}` is not a string"))),
    }
}

impl NewUsageEvent {
    /// Reads a structured-mode CloudEvent (`application/cloudevents+json`, or one element of a
    /// batch). `received_at` stands in for a missing `time`.
    pub fn from_cloud_event(value: Value, received_at: DateTime<Utc>) -> Result<Self> {
        let Value::Object(mut event) = value else {
            return Err(malformed("the event is not a JSON object"));
        };
        match event.get("specversion") {
            Some(Value::String(version)) if version == "1.0" => {}
            Some(Value::String(version)) => {
                return Err(malformed(format!(
                    "the event's specversion is `{}`; Purser reads CloudEvents 1.0",
                    version.chars().take(16).collect::<String>()
                )));
            }
            _ => return Err(malformed("the event has no string `specversion`")),
        }
        let id = text_attribute(&event, "id", MAX_ID_LEN, true)?.unwrap_or_default();
        let source = text_attribute(&event, "source", MAX_SOURCE_LEN, true)?.unwrap_or_default();
        if source.chars().any(char::is_whitespace) {
            return Err(malformed(
                "the event's `source` is not a URI-reference (it has whitespace)",
            ));
        }
        let event_type = text_attribute(&event, "type", MAX_TYPE_LEN, true)?.unwrap_or_default();
        let subject = text_attribute(&event, "subject", MAX_SUBJECT_LEN, true)?
            .ok_or_else(|| malformed("the event has no `subject` (the customer it is usage of)"))?;
        let time = match text_attribute(&event, "time", 64, false)? {
            None => received_at,
            Some(time) => DateTime::parse_from_rfc3339(time)
                .map_err(|_| malformed("the event's `time` is not an RFC 3339 timestamp"))?
                .with_timezone(&Utc),
        };
        // Both stores keep microseconds: what is read back is what was stored.
        let time = time.trunc_subsecs(6);
        if let Some(content_type) = text_attribute(&event, "datacontenttype", 128, false)? {
            let essence = content_type
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            if essence != "application/json" && !essence.ends_with("+json") {
                return Err(malformed(format!(
                    "the event's datacontenttype `{}` is not JSON; Purser meters JSON data",
                    content_type.chars().take(64).collect::<String>()
                )));
            }
        }
        if event.contains_key("data_base64") {
            return Err(malformed(
                "the event carries `data_base64`; Purser meters JSON `data`",
            ));
        }
        let (id, source, event_type, subject) = (
            id.to_owned(),
            source.to_owned(),
            event_type.to_owned(),
            subject.to_owned(),
        );
        let data = event.remove("data").unwrap_or(Value::Null);
        Ok(Self {
            source,
            id,
            event_type,
            subject,
            time,
            data,
        })
    }
}

/// How far from now an event's time may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBounds {
    pub max_age: Duration,
    pub max_future_skew: Duration,
}

impl TimeBounds {
    /// `event_too_old` or `event_in_future` when `time` is outside the bounds around `now`.
    pub fn check(&self, time: DateTime<Utc>, now: DateTime<Utc>) -> Result<()> {
        // Bounds beyond chrono's range mean "no bound", never a panic.
        let oldest = now.checked_sub_signed(self.max_age);
        let newest = now.checked_add_signed(self.max_future_skew);
        if oldest.is_some_and(|oldest| time < oldest) {
            return Err(Error::new(
                ErrorCode::EventTooOld,
                format!(
                    "the event's time {} is more than {} s in the past",
                    time.to_rfc3339(),
                    self.max_age.num_seconds()
                ),
            ));
        }
        if newest.is_some_and(|newest| time > newest) {
            return Err(Error::new(
                ErrorCode::EventInFuture,
                format!(
                    "the event's time {} is more than {} s in the future",
                    time.to_rfc3339(),
                    self.max_future_skew.num_seconds()
                ),
            ));
        }
        Ok(())
    }
}

string_enum!(
    /// What a stored entry of an event is.
    EntryKind, "entry kind" {
        /// The event as ingested (revision 0).
        Event = "event",
        /// A correction that replaces the event's subject, time or data.
        Amendment = "amendment",
        /// A correction that takes the event out of every count.
        Void = "void",
    }
);

/// One stored version of an event. Corrections never change an entry's content: each is an
/// entry of its own, with the next revision, and the entry it replaces gets `superseded_at`.
/// A query "as of" a time sees the entries current then.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageEntry {
    pub source: String,
    pub id: String,
    /// 0 for the event as ingested, then 1, 2, ... per correction.
    pub revision: u32,
    pub kind: EntryKind,
    pub event_type: String,
    pub subject: String,
    pub time: DateTime<Utc>,
    pub data: Value,
    /// Why a correction was made; `None` for the original.
    pub reason: Option<String>,
    pub recorded_at: DateTime<Utc>,
    pub superseded_at: Option<DateTime<Utc>>,
}

/// What a correction changes.
#[derive(Debug, Clone, PartialEq)]
pub enum CorrectionChange {
    /// Replaces any of subject, time and data; what is `None` stays.
    Amend {
        subject: Option<String>,
        time: Option<DateTime<Utc>>,
        data: Option<Value>,
    },
    /// Takes the event out of every count from now on.
    Void,
}

/// The entry a correction writes, built from the event's current entry: the storage call
/// then only appends it, guarded by `revision` (a concurrent correction makes it `conflict`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewCorrection {
    pub source: String,
    pub id: String,
    /// The revision being written: the current one's plus one.
    pub revision: u32,
    pub kind: EntryKind,
    pub subject: String,
    pub time: DateTime<Utc>,
    pub data: Value,
    pub reason: String,
}

const MAX_REASON_LEN: usize = 1000;

impl NewCorrection {
    /// The correction of `current` (the event's current entry) by `change`, for `reason`.
    /// `event_voided` when the event was voided; `invalid_input` for an empty reason or an
    /// amendment that changes nothing.
    pub fn of(current: &UsageEntry, change: CorrectionChange, reason: &str) -> Result<Self> {
        if current.kind == EntryKind::Void {
            return Err(Error::new(
                ErrorCode::EventVoided,
                "the event was voided; it takes no further corrections",
            ));
        }
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > MAX_REASON_LEN {
            return Err(Error::invalid_input(
                "a correction needs a reason of 1 to 1000 bytes",
            ));
        }
        let (kind, subject, time, data) = match change {
            CorrectionChange::Void => (
                EntryKind::Void,
                current.subject.clone(),
                current.time,
                current.data.clone(),
            ),
            CorrectionChange::Amend {
                subject,
                time,
                data,
            } => {
                if let Some(subject) = &subject
                    && (subject.is_empty()
                        || subject.len() > MAX_SUBJECT_LEN
                        || subject.chars().any(char::is_control))
                {
                    return Err(Error::invalid_input(
                        "an amended subject must be 1 to 256 bytes without control characters",
                    ));
                }
                let subject = subject.unwrap_or_else(|| current.subject.clone());
                let time = time.unwrap_or(current.time);
                let data = data.unwrap_or_else(|| current.data.clone());
                if subject == current.subject && time == current.time && data == current.data {
                    return Err(Error::invalid_input(
                        "the amendment changes nothing: give a new subject, time or data",
                    ));
                }
                (EntryKind::Amendment, subject, time, data)
            }
        };
        Ok(Self {
            source: current.source.clone(),
            id: current.id.clone(),
            revision: current.revision + 1,
            kind,
            subject,
            time,
            data,
            reason: reason.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2026-12-01T12:00:00Z".parse().unwrap()
    }

    fn event() -> Value {
        json!({
            "specversion": "1.0",
            "id": "evt-1",
            "source": "//api.example/llm",
            "type": "llm.tokens",
            "subject": "customer-1",
            "time": "2026-12-01T11:59:00+01:00",
            "datacontenttype": "application/json",
            "data": {"tokens": 12},
            "traceparent": "00-abc"
        })
    }

    #[test]
    fn reads_a_structured_event() {
        let read = NewUsageEvent::from_cloud_event(event(), now()).unwrap();
        assert_eq!(read.id, "evt-1");
        assert_eq!(read.source, "//api.example/llm");
        assert_eq!(read.event_type, "llm.tokens");
        assert_eq!(read.subject, "customer-1");
        assert_eq!(
            read.time,
            "2026-12-01T10:59:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(read.data, json!({"tokens": 12}));

        let mut no_time = event();
        no_time.as_object_mut().unwrap().remove("time");
        assert_eq!(
            NewUsageEvent::from_cloud_event(no_time, now())
                .unwrap()
                .time,
            now()
        );
    }

    #[test]
    fn names_what_is_wrong() {
        type Break = fn(&mut Map<String, Value>);
        let cases: Vec<(Break, &str)> = vec![
            (
                |e| {
                    e.remove("specversion");
                },
                "specversion",
            ),
            (
                |e| {
                    e.insert("specversion".into(), json!("0.3"));
                },
                "0.3",
            ),
            (
                |e| {
                    e.remove("id");
                },
                "`id`",
            ),
            (
                |e| {
                    e.insert("id".into(), json!(""));
                },
                "`id` is empty",
            ),
            (
                |e| {
                    e.insert("id".into(), json!(7));
                },
                "`id` is not a string",
            ),
            (
                |e| {
                    e.remove("source");
                },
                "`source`",
            ),
            (
                |e| {
                    e.insert("source".into(), json!("a b"));
                },
                "URI-reference",
            ),
            (
                |e| {
                    e.remove("type");
                },
                "`type`",
            ),
            (
                |e| {
                    e.remove("subject");
                },
                "`subject`",
            ),
            (
                |e| {
                    e.insert("time".into(), json!("yesterday"));
                },
                "RFC 3339",
            ),
            (
                |e| {
                    e.insert("datacontenttype".into(), json!("text/plain"));
                },
                "not JSON",
            ),
            (
                |e| {
                    e.insert("data_base64".into(), json!("AAAA"));
                },
                "data_base64",
            ),
            (
                |e| {
                    e.insert("id".into(), json!("x".repeat(300)));
                },
                "longer than 256",
            ),
        ];
        for (break_it, says) in cases {
            let mut value = event();
            break_it(value.as_object_mut().unwrap());
            let err = NewUsageEvent::from_cloud_event(value, now()).unwrap_err();
            assert_eq!(err.code(), ErrorCode::MalformedCloudEvent);
            assert!(
                err.message().contains(says),
                "{} lacks {says}",
                err.message()
            );
        }
        let err = NewUsageEvent::from_cloud_event(json!([1]), now()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::MalformedCloudEvent);
    }

    #[test]
    fn bounds_time() {
        let bounds = TimeBounds {
            max_age: Duration::days(30),
            max_future_skew: Duration::minutes(5),
        };
        assert!(bounds.check(now() - Duration::days(29), now()).is_ok());
        assert!(bounds.check(now() + Duration::minutes(4), now()).is_ok());
        assert_eq!(
            bounds
                .check(now() - Duration::days(31), now())
                .unwrap_err()
                .code(),
            ErrorCode::EventTooOld
        );
        assert_eq!(
            bounds
                .check(now() + Duration::minutes(6), now())
                .unwrap_err()
                .code(),
            ErrorCode::EventInFuture
        );
        let unbounded = TimeBounds {
            max_age: Duration::MAX,
            max_future_skew: Duration::MAX,
        };
        assert!(
            unbounded
                .check(now() - Duration::days(36_500), now())
                .is_ok()
        );
    }

    fn entry() -> UsageEntry {
        UsageEntry {
            source: "s".into(),
            id: "1".into(),
            revision: 0,
            kind: EntryKind::Event,
            event_type: "t".into(),
            subject: "c".into(),
            time: now(),
            data: json!({"n": 1}),
            reason: None,
            recorded_at: now(),
            superseded_at: None,
        }
    }

    #[test]
    fn corrections_build_the_next_revision() {
        let amend = CorrectionChange::Amend {
            subject: None,
            time: None,
            data: Some(json!({"n": 2})),
        };
        let correction = NewCorrection::of(&entry(), amend.clone(), " double counted ").unwrap();
        assert_eq!(correction.revision, 1);
        assert_eq!(correction.kind, EntryKind::Amendment);
        assert_eq!(correction.subject, "c");
        assert_eq!(correction.data, json!({"n": 2}));
        assert_eq!(correction.reason, "double counted");

        let void = NewCorrection::of(&entry(), CorrectionChange::Void, "test traffic").unwrap();
        assert_eq!(void.kind, EntryKind::Void);
        assert_eq!(void.data, json!({"n": 1}));

        let same = CorrectionChange::Amend {
            subject: Some("c".into()),
            time: None,
            data: None,
        };
        assert_eq!(
            NewCorrection::of(&entry(), same, "r").unwrap_err().code(),
            ErrorCode::InvalidInput
        );
        assert_eq!(
            NewCorrection::of(&entry(), amend.clone(), " ")
                .unwrap_err()
                .code(),
            ErrorCode::InvalidInput
        );
        let voided = UsageEntry {
            kind: EntryKind::Void,
            ..entry()
        };
        assert_eq!(
            NewCorrection::of(&voided, amend, "r").unwrap_err().code(),
            ErrorCode::EventVoided
        );
    }
}
