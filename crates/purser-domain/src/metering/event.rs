//! Usage events: CloudEvents 1.0 in, [`NewUsageEvent`] to storage, [`UsageEntry`] back.
//!
//! Purser needs of a CloudEvent what a meter reads: `specversion` `1.0`, `id` and `source`
//! (together the deduplication key, per tenant and forever), `type` (which meters apply),
//! `subject` (the customer or payer: required here, although optional in CloudEvents), `time`
//! (RFC 3339; the receipt time when absent) and `data` (JSON; `data_base64` cannot be
//! metered). Extension attributes are allowed and not kept.
//!
//! What is kept follows [`crate::text`]: `id`, `source`, `type` and `subject` are one line
//! without control characters ([`text::EVENT_ID`] and the rest), and `data` holds no `\u0000`
//! and nests at most [`text::EVENT_DATA`] deep. An event that breaks them is
//! `malformed_cloudevent`, naming the attribute, like any other malformed event.

use chrono::{DateTime, Duration, SubsecRound as _, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, ErrorCode, Result};
use crate::macros::string_enum;
use crate::text::{self, TextFault, TextRule};

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

/// A string attribute as sent: `None` when absent (or null) and not `required`.
fn text_attribute<'a>(
    event: &'a Map<String, Value>,
    name: &str,
    required: bool,
) -> Result<Option<&'a str>> {
    match event.get(name) {
        None | Some(Value::Null) if !required => Ok(None),
        None | Some(Value::Null) => Err(malformed(format!("the event has no `{name}`"))),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(malformed(format!("the event's `{name}` is not a string"))),
    }
}

/// `malformed_cloudevent` when attribute `name`'s `value` breaks `rule`.
fn check_attribute(name: &str, value: &str, rule: TextRule) -> Result<()> {
    let Some(fault) = rule.fault(value) else {
        return Ok(());
    };
    Err(malformed(match fault {
        TextFault::Empty => format!("the event's `{name}` is empty"),
        TextFault::TooLong(max) => format!("the event's `{name}` is longer than {max}"),
        TextFault::Nul => format!("the event's `{name}` contains NUL (U+0000)"),
        TextFault::Control(_) => format!("the event's `{name}` contains a control character"),
    }))
}

/// `malformed_cloudevent` when the event's `data` holds `\u0000` or nests too deep.
fn check_data(data: &Value) -> Result<()> {
    match text::EVENT_DATA.fault(data) {
        None => Ok(()),
        Some(fault) => Err(malformed(fault.describe("the event's `data`"))),
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
        let id = text_attribute(&event, "id", true)?.unwrap_or_default();
        let source = text_attribute(&event, "source", true)?.unwrap_or_default();
        let event_type = text_attribute(&event, "type", true)?.unwrap_or_default();
        let subject = text_attribute(&event, "subject", true)?.unwrap_or_default();
        let time = match text_attribute(&event, "time", false)? {
            None => received_at,
            Some(time) => DateTime::parse_from_rfc3339(time)
                .map_err(|_| malformed("the event's `time` is not an RFC 3339 timestamp"))?
                .with_timezone(&Utc),
        };
        // Both stores keep microseconds: what is read back is what was stored.
        let time = time.trunc_subsecs(6);
        if let Some(content_type) = text_attribute(&event, "datacontenttype", false)? {
            let essence = content_type
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            if essence != "application/json" && !essence.ends_with("+json") {
                return Err(malformed(format!(
                    "the event's datacontenttype `{}` is not JSON; Purser meters JSON data",
                    content_type
                        .chars()
                        .filter(|c| !c.is_control())
                        .take(64)
                        .collect::<String>()
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
        let event = Self {
            source,
            id,
            event_type,
            subject,
            time,
            data,
        };
        event.check()?;
        Ok(event)
    }

    /// Checks what is stored of the event against [`crate::text`]'s rules:
    /// `malformed_cloudevent` naming the attribute. [`Self::from_cloud_event`] answers only
    /// events that pass; both stores check every event they are handed again, so an event
    /// built another way is refused by both alike.
    pub fn check(&self) -> Result<()> {
        check_attribute("id", &self.id, text::EVENT_ID)?;
        check_attribute("source", &self.source, text::EVENT_SOURCE)?;
        if self.source.chars().any(char::is_whitespace) {
            return Err(malformed(
                "the event's `source` is not a URI-reference (it has whitespace)",
            ));
        }
        check_attribute("type", &self.event_type, text::EVENT_TYPE)?;
        check_attribute("subject", &self.subject, text::EVENT_SUBJECT)?;
        check_data(&self.data)
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

impl NewCorrection {
    /// The correction of `current` (the event's current entry) by `change`, for `reason`.
    /// `event_voided` when the event was voided; `invalid_input` for an empty reason or an
    /// amendment that changes nothing, and for a reason, subject or data that breaks
    /// [`crate::text`]'s rules (naming it).
    pub fn of(current: &UsageEntry, change: CorrectionChange, reason: &str) -> Result<Self> {
        if current.kind == EntryKind::Void {
            return Err(Error::new(
                ErrorCode::EventVoided,
                "the event was voided; it takes no further corrections",
            ));
        }
        let reason = reason.trim();
        text::CORRECTION_REASON.check("a correction's `reason`", reason)?;
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
                if let Some(subject) = &subject {
                    text::EVENT_SUBJECT.check("an amended `subject`", subject)?;
                }
                if let Some(data) = &data {
                    text::EVENT_DATA.check("an amended `data`", data)?;
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

    /// Checks what the correction stores against [`crate::text`]'s rules (`invalid_input`
    /// naming the field), as [`Self::of`] does; both stores check again before writing.
    pub fn check(&self) -> Result<()> {
        text::CORRECTION_REASON.check("a correction's `reason`", &self.reason)?;
        text::EVENT_SUBJECT.check("an amended `subject`", &self.subject)?;
        text::EVENT_DATA.check("an amended `data`", &self.data)
    }
}

/// The revision a correction replaces (its own minus one); `invalid_input` for what no
/// correction can be: an entry of kind `event`, revision 0, or a replaced revision beyond
/// 2^31 - 1, the most a store keeps (a signed 32-bit column), so a store may take it as an
/// `i32`.
pub fn check_correction(correction: &NewCorrection) -> Result<u32> {
    if correction.revision == 0 || correction.kind == EntryKind::Event {
        return Err(Error::invalid_input(
            "a correction is an amendment or a void of revision 1 or more",
        ));
    }
    let replaced = correction.revision - 1;
    if i32::try_from(replaced).is_err() {
        return Err(Error::invalid_input(
            "the correction's revision is out of range",
        ));
    }
    Ok(replaced)
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
    fn what_would_be_stored_follows_the_text_rules() {
        let mut deep = json!(1);
        for _ in 0..33 {
            deep = json!([deep]);
        }
        let cases: Vec<(&str, Value, &str)> = vec![
            ("subject", json!("bob\u{0}"), "`subject` contains NUL"),
            (
                "subject",
                json!("bob\u{7}"),
                "`subject` contains a control character",
            ),
            (
                "subject",
                json!("bob\n"),
                "`subject` contains a control character",
            ),
            ("id", json!("\u{0}"), "`id` contains NUL"),
            ("source", json!("//x/\u{0}"), "`source` contains NUL"),
            (
                "type",
                json!("t\u{85}"),
                "`type` contains a control character",
            ),
            (
                "data",
                json!({"note": "a\u{0}b"}),
                "`data` holds a string with NUL",
            ),
            (
                "data",
                json!({"n\u{0}": 1}),
                "`data` holds a member name with NUL",
            ),
            ("data", json!([{"a": ["\u{0}"]}]), "at `/0/a/0`"),
            ("data", deep, "more than 32 deep"),
        ];
        for (attribute, value, says) in cases {
            let mut sent = event();
            sent[attribute] = value;
            let err = NewUsageEvent::from_cloud_event(sent, now()).unwrap_err();
            assert_eq!(err.code(), ErrorCode::MalformedCloudEvent, "{says}");
            assert!(
                err.message().contains(says),
                "{} lacks {says}",
                err.message()
            );
        }
        // Other control characters inside data strings are kept (JSON escapes them).
        let mut sent = event();
        sent["data"] = json!({"tokens": 1, "note": "tab\there\u{1}\n"});
        let read = NewUsageEvent::from_cloud_event(sent, now()).unwrap();
        read.check().unwrap();
        // An event built another way is checked the same way.
        let built = NewUsageEvent {
            subject: "a\u{0}".into(),
            ..read.clone()
        };
        assert_eq!(
            built.check().unwrap_err().code(),
            ErrorCode::MalformedCloudEvent
        );
    }

    #[test]
    fn corrections_follow_the_text_rules() {
        let amend = |subject: Option<&str>, data: Option<Value>| CorrectionChange::Amend {
            subject: subject.map(str::to_owned),
            time: None,
            data,
        };
        for (change, reason, says) in [
            (amend(Some("a\u{0}"), None), "r", "`subject`"),
            (amend(Some("a\tb"), None), "r", "`subject`"),
            (amend(None, Some(json!({"n": "\u{0}"}))), "r", "`data`"),
            (CorrectionChange::Void, "bad\u{0}reason", "`reason`"),
            (CorrectionChange::Void, "bad\rreason", "`reason`"),
            (CorrectionChange::Void, &"r".repeat(1001), "`reason`"),
        ] {
            let err = NewCorrection::of(&entry(), change, reason).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidInput, "{says}");
            assert!(err.message().contains(says), "{}", err.message());
        }
        // A reason may span lines.
        let void = NewCorrection::of(&entry(), CorrectionChange::Void, "test\ntraffic").unwrap();
        void.check().unwrap();
        let tampered = NewCorrection {
            reason: "x\u{0}".into(),
            ..void
        };
        assert_eq!(
            tampered.check().unwrap_err().code(),
            ErrorCode::InvalidInput
        );
    }

    #[test]
    fn a_correction_replaces_the_revision_before_it() {
        let void = NewCorrection::of(&entry(), CorrectionChange::Void, "test traffic").unwrap();
        assert_eq!(check_correction(&void).unwrap(), 0);
        let highest = NewCorrection {
            revision: i32::MAX as u32 + 1,
            ..void.clone()
        };
        assert_eq!(check_correction(&highest).unwrap(), i32::MAX as u32);
        for (what, wrong) in [
            (
                "revision 0",
                NewCorrection {
                    revision: 0,
                    ..void.clone()
                },
            ),
            (
                "an event",
                NewCorrection {
                    kind: EntryKind::Event,
                    ..void.clone()
                },
            ),
            (
                "beyond i32",
                NewCorrection {
                    revision: u32::MAX,
                    ..void.clone()
                },
            ),
        ] {
            let err = check_correction(&wrong).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidInput, "{what}");
        }
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
