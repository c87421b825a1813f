//! Singular JSONPaths: where a meter finds its value and its group-by dimensions in an event's
//! `data`.
//!
//! A meter reads one value per event, so its paths are RFC 9535 *singular queries*: `$`
//! followed by member names (`.name`, `['name']`, `["name"]`) and non-negative array indices
//! (`[0]`). Wildcards, slices, filters and descendant segments, which select many nodes, are
//! refused. The same path is evaluated here (ingestion checks each event against its meters)
//! and inside the database (usage queries aggregate there), so it is kept as [`Segment`]s that
//! each store translates into its own JSON functions' syntax.
//!
//! (`serde_json_path` parses all of RFC 9535 but keeps its parsed segments private, so it could
//! check a path here but not hand it to SQL; this grammar is small enough to own.)

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::error::{Error, ErrorCode, Result};

const MAX_PATH_LEN: usize = 256;
const MAX_SEGMENTS: usize = 16;

/// One step of a [`ValuePath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// A member of an object.
    Name(String),
    /// An element of an array, from 0.
    Index(u32),
}

/// A singular JSONPath, as given (trimmed) and as segments.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ValuePath {
    text: String,
    segments: Vec<Segment>,
}

fn invalid(path: &str, why: &str) -> Error {
    Error::new(
        ErrorCode::InvalidJsonPath,
        format!(
            "JSONPath `{}` {why}",
            path.chars().take(64).collect::<String>()
        ),
    )
}

impl ValuePath {
    /// Parses a singular path; `invalid_json_path` with the reason otherwise.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.len() > MAX_PATH_LEN {
            return Err(invalid(text, "is longer than 256 bytes"));
        }
        let mut rest = text
            .strip_prefix('$')
            .ok_or_else(|| invalid(text, "must start with `$`"))?;
        let mut segments = Vec::new();
        while !rest.is_empty() {
            if segments.len() == MAX_SEGMENTS {
                return Err(invalid(text, "has more than 16 segments"));
            }
            if rest.starts_with("..") {
                return Err(invalid(
                    text,
                    "uses a descendant segment (`..`); a meter path selects one value",
                ));
            }
            if let Some(after) = rest.strip_prefix('.') {
                let end = after.find(['.', '[']).unwrap_or(after.len());
                let name = &after[..end];
                if name == "*" {
                    return Err(invalid(
                        text,
                        "uses a wildcard; a meter path selects one value",
                    ));
                }
                if !is_shorthand_name(name) {
                    return Err(invalid(
                        text,
                        "has a member name that is not a plain identifier; quote it as ['name']",
                    ));
                }
                segments.push(Segment::Name(name.to_owned()));
                rest = &after[end..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let after = after.trim_start();
                let (segment, after) = match after.chars().next() {
                    Some(quote @ ('\'' | '"')) => {
                        let (name, after) = quoted(&after[1..], quote).ok_or_else(|| {
                            invalid(text, "has an unterminated or malformed quoted name")
                        })?;
                        check_name(text, &name)?;
                        (Segment::Name(name), after)
                    }
                    Some(c) if c.is_ascii_digit() => {
                        let end = after
                            .find(|c: char| !c.is_ascii_digit())
                            .unwrap_or(after.len());
                        let digits = &after[..end];
                        if digits.len() > 1 && digits.starts_with('0') {
                            return Err(invalid(text, "has an index with a leading zero"));
                        }
                        let index = digits
                            .parse::<u32>()
                            .map_err(|_| invalid(text, "has an index too large"))?;
                        (Segment::Index(index), &after[end..])
                    }
                    _ => {
                        return Err(invalid(
                            text,
                            "has a selector that is not a name or a non-negative index (wildcards, slices and filters select many values)",
                        ));
                    }
                };
                let after = after.trim_start();
                rest = after
                    .strip_prefix(']')
                    .ok_or_else(|| invalid(text, "has a selector that is not closed by `]`"))?;
                segments.push(segment);
            } else {
                return Err(invalid(
                    text,
                    "has text that is not a `.name` or `[...]` segment",
                ));
            }
        }
        Ok(Self {
            text: text.to_owned(),
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The node the path selects in `value`, if any.
    pub fn select<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        self.segments
            .iter()
            .try_fold(value, |node, segment| match segment {
                Segment::Name(name) => node.as_object()?.get(name),
                Segment::Index(index) => node.as_array()?.get(*index as usize),
            })
    }
}

fn is_shorthand_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

/// Names are stored and translated to SQL, so a few characters are kept out of them: `"` and
/// `\` (which SQLite's path syntax cannot escape) and control characters.
fn check_name(path: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(invalid(path, "has an empty member name"));
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        // PostgreSQL's path operators read a segment of digits as an array index as well.
        return Err(invalid(
            path,
            "has a member name made only of digits, which Purser does not support",
        ));
    }
    if name
        .chars()
        .any(|c| c == '"' || c == '\\' || c.is_control())
    {
        return Err(invalid(
            path,
            "has a member name with `\"`, `\\` or a control character, which Purser does not support",
        ));
    }
    Ok(())
}

/// A quoted name up to its closing `quote`, with `\'`, `\"` escapes; the rest after it.
fn quoted(input: &str, quote: char) -> Option<(String, &str)> {
    let mut name = String::new();
    let mut chars = input.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => match chars.next()?.1 {
                c @ ('\'' | '"' | '/') => name.push(c),
                _ => return None,
            },
            c if c == quote => return Some((name, &input[at + c.len_utf8()..])),
            c => name.push(c),
        }
    }
    None
}

impl fmt::Display for ValuePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for ValuePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ValuePath({})", self.text)
    }
}

impl Serialize for ValuePath {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for ValuePath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ValuePath::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_names_and_indices() {
        let path = ValuePath::parse("$.usage['input tokens'][2].n").unwrap();
        assert_eq!(
            path.segments(),
            &[
                Segment::Name("usage".into()),
                Segment::Name("input tokens".into()),
                Segment::Index(2),
                Segment::Name("n".into()),
            ]
        );
        let data = json!({"usage": {"input tokens": [0, 1, {"n": 7}]}});
        assert_eq!(path.select(&data), Some(&json!(7)));
        assert_eq!(ValuePath::parse("$").unwrap().select(&data), Some(&data));
        assert_eq!(ValuePath::parse("$.missing").unwrap().select(&data), None);
        assert_eq!(ValuePath::parse("$[0]").unwrap().select(&data), None);
        assert_eq!(
            ValuePath::parse(r#"$["it's"]"#).unwrap().segments(),
            &[Segment::Name("it's".into())]
        );
    }

    #[test]
    fn refuses_what_selects_many_or_is_not_a_path() {
        for bad in [
            "",
            "tokens",
            "$..tokens",
            "$.*",
            "$[*]",
            "$[1:2]",
            "$[?@.a]",
            "$[-1]",
            "$[01]",
            "$.a b",
            "$['unterminated",
            "$['a\"b']",
            "$['']",
            "$['0']",
            "$.",
            "$[0",
        ] {
            let err = ValuePath::parse(bad).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidJsonPath, "{bad}");
        }
        let long = format!("$.{}", "a".repeat(300));
        assert!(ValuePath::parse(&long).is_err());
        let deep = format!("${}", ".a".repeat(17));
        assert!(ValuePath::parse(&deep).is_err());
    }
}
