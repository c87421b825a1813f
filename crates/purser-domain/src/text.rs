//! What text and JSON Purser stores: one set of rules, checked before any store sees a value,
//! so that both backends accept and refuse the same inputs.
//!
//! PostgreSQL refuses NUL (U+0000) in `text`, and `\u0000` in a `jsonb` string or member name;
//! SQLite keeps both. Other control characters are kept by both, but in names and identifiers
//! they break logs, terminals and CSV exports. So:
//!
//! - **No NUL, anywhere**: in no text field, in no string or member name of stored JSON.
//! - **Single-line text** (names, identifiers, slugs, event attributes, URLs, MIME types,
//!   tags) holds no control character at all: C0 (U+0000 to U+001F), DEL (U+007F) and C1
//!   (U+0080 to U+009F), Unicode's `Cc` category ([`char::is_control`]).
//! - **Multi-line text** (descriptions, correction reasons) may also hold line feeds and tabs;
//!   carriage returns and every other control character are refused.
//! - **Lengths** are per kind (the rules below), in characters where people write the text,
//!   in bytes where it is an identifier or PostgreSQL's own checks count bytes.
//! - **Stored JSON** ([`JsonRule`]: event `data`, resource schemas and examples, learned
//!   `bazaar` extensions, a version's whole spec) holds no `\u0000` in any string or member
//!   name, and nests arrays and objects at most [`JsonRule::max_depth`] deep. Other control
//!   characters inside JSON strings are kept: JSON escapes them, and both stores keep them
//!   alike.
//!
//! Format characters (bidirectional overrides, zero-width joiners: Unicode's `Cf`) are not
//! control characters and are kept; they are how some scripts are written.
//!
//! A rule answers a [`TextFault`] or a [`JsonFault`]; each caller words the refusal with its
//! field's name under its own code (`invalid_input` for the admin API, `malformed_cloudevent`
//! for an event's attributes and data, `invalid_json_path` for a meter's paths). Trimming is the
//! caller's: names are trimmed before they are checked, identifiers (event ids, sources) are
//! taken as sent.

use std::fmt;

use serde_json::Value;

use crate::error::{Error, Result};

/// Whether a text may span lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// No control character at all.
    Single,
    /// Line feeds (`\n`) and tabs (`\t`) allowed; no other control character.
    Multi,
}

/// The most a text may hold, and in what unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    Chars(usize),
    Bytes(usize),
}

impl Length {
    fn exceeded_by(self, text: &str) -> bool {
        match self {
            Length::Chars(max) => text.len() > max && text.chars().nth(max).is_some(),
            Length::Bytes(max) => text.len() > max,
        }
    }
}

impl fmt::Display for Length {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Length::Chars(max) => write!(f, "{max} characters"),
            Length::Bytes(max) => write!(f, "{max} bytes"),
        }
    }
}

/// What a kind of text must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextRule {
    pub lines: Lines,
    pub max: Length,
    /// Whether the empty text is allowed.
    pub may_be_empty: bool,
}

/// Why a text breaks its rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFault {
    Empty,
    TooLong(Length),
    /// A NUL (U+0000), which no store keeps alike.
    Nul,
    /// Another control character the rule does not allow.
    Control(Lines),
}

impl TextFault {
    /// The fault as a sentence about `field` (lower case, no trailing period).
    pub fn describe(self, field: &str) -> String {
        match self {
            TextFault::Empty => format!("{field} must not be empty"),
            TextFault::TooLong(max) => format!("{field} must be at most {max}"),
            TextFault::Nul => format!("{field} must not contain NUL (U+0000)"),
            TextFault::Control(Lines::Single) => format!(
                "{field} must not contain control characters (U+0000 to U+001F, U+007F to U+009F)"
            ),
            TextFault::Control(Lines::Multi) => format!(
                "{field} must not contain control characters other than line feeds and tabs"
            ),
        }
    }
}

impl TextRule {
    pub const fn single_line(max: Length) -> Self {
        Self {
            lines: Lines::Single,
            max,
            may_be_empty: false,
        }
    }

    pub const fn multi_line(max: Length) -> Self {
        Self {
            lines: Lines::Multi,
            max,
            may_be_empty: true,
        }
    }

    /// The rule, but the empty text is allowed too.
    pub const fn or_empty(self) -> Self {
        Self {
            may_be_empty: true,
            ..self
        }
    }

    /// The rule, but the empty text is refused.
    pub const fn not_empty(self) -> Self {
        Self {
            may_be_empty: false,
            ..self
        }
    }

    /// What is wrong with `text`, if anything. NUL is reported before other characters and
    /// before the length, since it is what the stores disagree on.
    pub fn fault(&self, text: &str) -> Option<TextFault> {
        if text.is_empty() {
            return (!self.may_be_empty).then_some(TextFault::Empty);
        }
        if text.contains('\0') {
            return Some(TextFault::Nul);
        }
        let allowed = |c: char| self.lines == Lines::Multi && (c == '\n' || c == '\t');
        if text.chars().any(|c| c.is_control() && !allowed(c)) {
            return Some(TextFault::Control(self.lines));
        }
        if self.max.exceeded_by(text) {
            return Some(TextFault::TooLong(self.max));
        }
        None
    }

    /// `invalid_input` naming `field` when `text` breaks the rule.
    pub fn check(&self, field: &str, text: &str) -> Result<()> {
        match self.fault(text) {
            None => Ok(()),
            Some(fault) => Err(Error::invalid_input(fault.describe(field))),
        }
    }
}

/// The most characters of an outcome's message kept with a settlement.
pub const OUTCOME_MESSAGE_MAX_CHARS: usize = 1000;

/// Text Purser records but did not write (a node's error, a peer's answer) made fit to store
/// and show on both backends: every control character but none becomes a space, and it is cut
/// to `max_chars` characters. Nothing is refused: such text describes what happened, and
/// losing the record of a settlement's outcome over a stray byte would be worse.
pub fn printable(text: &str, max_chars: usize) -> String {
    text.chars()
        .take(max_chars)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

// The rules, per kind of text. Lengths that PostgreSQL also checks (meters) are in bytes, as
// its `octet_length` checks are.

/// A tenant's name (trimmed first).
pub const TENANT_NAME: TextRule = TextRule::single_line(Length::Chars(100));
/// An API key's name (trimmed first); may be empty.
pub const API_KEY_NAME: TextRule = TextRule::single_line(Length::Chars(100)).or_empty();
/// A resource's name (trimmed first).
pub const RESOURCE_NAME: TextRule = TextRule::single_line(Length::Chars(120));
/// A resource's description (trimmed first); may be empty.
pub const RESOURCE_DESCRIPTION: TextRule = TextRule::multi_line(Length::Chars(4000));
/// A resource's MIME type (trimmed first).
pub const MIME_TYPE: TextRule = TextRule::single_line(Length::Chars(100));
/// A resource's service name (trimmed first).
pub const SERVICE_NAME: TextRule = TextRule::single_line(Length::Chars(64));
/// One tag of a resource (trimmed first).
pub const TAG: TextRule = TextRule::single_line(Length::Chars(40));
/// A resource's URL or icon URL, as given (parsing checks the rest).
pub const URL: TextRule = TextRule::single_line(Length::Chars(2048));
/// An MCP tool's name, as a resource server declares it in a payment.
pub const TOOL_NAME: TextRule = TextRule::single_line(Length::Bytes(128));
/// A meter's name.
pub const METER_NAME: TextRule = TextRule::single_line(Length::Bytes(200));
/// A meter's description; may be empty.
pub const METER_DESCRIPTION: TextRule = TextRule::multi_line(Length::Bytes(2000));
/// A usage event's `type`, and the event type a meter counts.
pub const EVENT_TYPE: TextRule = TextRule::single_line(Length::Bytes(256));
/// A usage event's `id`, as sent.
pub const EVENT_ID: TextRule = TextRule::single_line(Length::Bytes(256));
/// A usage event's `source`, as sent (a URI-reference: no whitespace either, checked with the
/// event).
pub const EVENT_SOURCE: TextRule = TextRule::single_line(Length::Bytes(512));
/// A usage event's `subject`: the customer it is usage of.
pub const EVENT_SUBJECT: TextRule = TextRule::single_line(Length::Bytes(256));
/// Why a usage event was corrected (trimmed first).
pub const CORRECTION_REASON: TextRule = TextRule::multi_line(Length::Bytes(1000)).not_empty();

/// What stored JSON must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonRule {
    /// The most arrays and objects nested in one another: a scalar is at depth 0, `{"a": 1}`
    /// at 1, `{"a": [1]}` at 2.
    pub max_depth: usize,
}

/// A usage event's `data`. A meter's paths read at most 16 segments deep; twice that leaves
/// room for data that is carried but not metered.
pub const EVENT_DATA: JsonRule = JsonRule { max_depth: 32 };
/// A resource's schemas and examples, a learned `bazaar` extension (which holds a schema a few
/// levels down), and a version's whole spec.
pub const DOCUMENT: JsonRule = JsonRule { max_depth: 64 };

/// Why a JSON value breaks its rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonFault {
    /// A string or member name holds `\u0000`; `at` is the JSON Pointer of the value (for a
    /// member name, of the object holding it), clipped.
    Nul {
        at: String,
        in_name: bool,
    },
    TooDeep {
        max_depth: usize,
    },
}

impl JsonFault {
    /// The fault as a sentence about `field`.
    pub fn describe(&self, field: &str) -> String {
        match self {
            JsonFault::Nul { at, in_name } => {
                let place = if at.is_empty() { "/" } else { at.as_str() };
                let what = if *in_name {
                    "a member name"
                } else {
                    "a string"
                };
                format!("{field} holds {what} with NUL (\\u0000) at `{place}`")
            }
            JsonFault::TooDeep { max_depth } => {
                format!("{field} nests arrays and objects more than {max_depth} deep")
            }
        }
    }
}

/// The longest JSON Pointer a fault reports, in characters.
const POINTER_CHARS: usize = 80;

impl JsonRule {
    /// What is wrong with `value`, if anything: the first fault in document order.
    pub fn fault(&self, value: &Value) -> Option<JsonFault> {
        let mut pointer = Vec::new();
        self.walk(value, 0, &mut pointer)
    }

    /// `invalid_input` naming `field` when `value` breaks the rule.
    pub fn check(&self, field: &str, value: &Value) -> Result<()> {
        match self.fault(value) {
            None => Ok(()),
            Some(fault) => Err(Error::invalid_input(fault.describe(field))),
        }
    }

    fn walk<'v>(
        &self,
        value: &'v Value,
        depth: usize,
        pointer: &mut Vec<Step<'v>>,
    ) -> Option<JsonFault> {
        match value {
            Value::String(text) if text.contains('\0') => Some(JsonFault::Nul {
                at: render(pointer),
                in_name: false,
            }),
            Value::Array(items) => {
                if depth == self.max_depth {
                    return Some(JsonFault::TooDeep {
                        max_depth: self.max_depth,
                    });
                }
                items.iter().enumerate().find_map(|(index, item)| {
                    pointer.push(Step::Index(index));
                    let fault = self.walk(item, depth + 1, pointer);
                    pointer.pop();
                    fault
                })
            }
            Value::Object(members) => {
                if depth == self.max_depth {
                    return Some(JsonFault::TooDeep {
                        max_depth: self.max_depth,
                    });
                }
                members.iter().find_map(|(name, member)| {
                    if name.contains('\0') {
                        return Some(JsonFault::Nul {
                            at: render(pointer),
                            in_name: true,
                        });
                    }
                    pointer.push(Step::Name(name));
                    let fault = self.walk(member, depth + 1, pointer);
                    pointer.pop();
                    fault
                })
            }
            _ => None,
        }
    }
}

enum Step<'v> {
    Name(&'v str),
    Index(usize),
}

/// A JSON Pointer (RFC 6901) of `steps`, clipped to [`POINTER_CHARS`] with control characters
/// left out (it is shown to the caller and logged).
fn render(steps: &[Step<'_>]) -> String {
    let mut out = String::new();
    for step in steps {
        out.push('/');
        match step {
            Step::Name(name) => out.push_str(&name.replace('~', "~0").replace('/', "~1")),
            Step::Index(index) => out.push_str(&index.to_string()),
        }
    }
    let mut clipped: String = out
        .chars()
        .filter(|c| !c.is_control())
        .take(POINTER_CHARS)
        .collect();
    if out.chars().count() > POINTER_CHARS {
        clipped.push('…');
    }
    clipped
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn single_line_text_refuses_every_control_character() {
        let rule = TextRule::single_line(Length::Chars(5));
        assert_eq!(rule.fault("héllo"), None);
        assert_eq!(rule.fault(""), Some(TextFault::Empty));
        assert_eq!(rule.fault("a\0"), Some(TextFault::Nul));
        for c in [
            '\u{1}', '\t', '\n', '\r', '\u{1b}', '\u{7f}', '\u{85}', '\u{9f}',
        ] {
            assert_eq!(
                rule.fault(&format!("a{c}")),
                Some(TextFault::Control(Lines::Single)),
                "{c:?}"
            );
        }
        // Format characters are not control characters.
        assert_eq!(rule.fault("a\u{200d}b"), None);
        assert_eq!(
            rule.fault("héllo!"),
            Some(TextFault::TooLong(Length::Chars(5)))
        );
        // NUL is named first, whatever else is wrong.
        assert_eq!(rule.fault("\0\u{1}toolong"), Some(TextFault::Nul));
    }

    #[test]
    fn multi_line_text_allows_line_feeds_and_tabs_only() {
        let rule = TextRule::multi_line(Length::Bytes(8));
        assert_eq!(rule.fault(""), None);
        assert_eq!(rule.fault("a\nb\tc"), None);
        assert_eq!(rule.fault("a\r\nb"), Some(TextFault::Control(Lines::Multi)));
        assert_eq!(rule.fault("a\0b"), Some(TextFault::Nul));
        assert_eq!(
            rule.fault("ééééé"),
            Some(TextFault::TooLong(Length::Bytes(8)))
        );
        assert_eq!(rule.not_empty().fault(""), Some(TextFault::Empty));
    }

    #[test]
    fn refusals_name_the_field() {
        let err = METER_NAME.check("`name`", "a\0").unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::InvalidInput);
        assert!(err.message().contains("`name`") && err.message().contains("NUL"));
        let err = TENANT_NAME
            .check("tenant name", &"x".repeat(101))
            .unwrap_err();
        assert!(err.message().contains("at most 100 characters"));
    }

    #[test]
    fn json_refuses_nul_in_strings_and_names_and_bounds_depth() {
        let rule = JsonRule { max_depth: 3 };
        assert_eq!(
            rule.fault(&json!({"a": [1, "x\u{1}\n", {"b": null}]})),
            None
        );
        assert_eq!(
            rule.fault(&json!({"a": [1, {"b/c": "x\u{0}y"}]})),
            Some(JsonFault::Nul {
                at: "/a/1/b~1c".into(),
                in_name: false
            })
        );
        assert_eq!(
            rule.fault(&json!({"a": {"k\u{0}": 1}})),
            Some(JsonFault::Nul {
                at: "/a".into(),
                in_name: true
            })
        );
        assert_eq!(
            rule.fault(&json!("\u{0}")),
            Some(JsonFault::Nul {
                at: String::new(),
                in_name: false
            })
        );
        assert_eq!(rule.fault(&json!([[[1]]])), None);
        assert_eq!(
            rule.fault(&json!([[[[1]]]])),
            Some(JsonFault::TooDeep { max_depth: 3 })
        );
        assert_eq!(
            rule.fault(&json!([[[{}]]])),
            Some(JsonFault::TooDeep { max_depth: 3 })
        );
        let err = EVENT_DATA
            .check("`data`", &json!({"note": "a\u{0}"}))
            .unwrap_err();
        assert!(err.message().contains("`/note`"), "{}", err.message());
    }

    #[test]
    fn deep_values_are_refused_without_walking_them_all() {
        let mut deep = json!(1);
        for _ in 0..1_000 {
            deep = json!([deep]);
        }
        assert_eq!(
            DOCUMENT.fault(&deep),
            Some(JsonFault::TooDeep { max_depth: 64 })
        );
    }

    #[test]
    fn recorded_text_is_made_printable_not_refused() {
        assert_eq!(
            printable("node said:\0 no\r\nway", 100),
            "node said:  no  way"
        );
        assert_eq!(printable("ünïcødé", 3), "ünï");
        assert_eq!(printable("", 10), "");
        assert!(
            TextRule::single_line(Length::Chars(100))
                .fault(&printable("a\u{85}\u{7f}b", 100))
                .is_none()
        );
    }
}
