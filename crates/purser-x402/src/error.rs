//! How decoding failures become [`purser_core::Error`]s with stable codes, without echoing
//! hostile input.
//!
//! Serde reports type errors with the offending value quoted in full (`invalid type: string
//! "<60 KiB>", expected u64`). [`caller_safe`] shortens every quoted string and clips the whole
//! message, so a caller never sees more than a short prefix of what it sent.
//!
//! Our own `Deserialize` impls for networks and protocol versions start their messages with a
//! sentinel ([`INVALID_NETWORK`], [`UNSUPPORTED_VERSION`]); [`from_serde`] turns those into
//! `invalid_network` and `unsupported_x402_version`, and everything else into the caller's
//! "malformed" code. Serde's own messages start with fixed words ("invalid type", "missing
//! field", ...), so input cannot forge a sentinel.

use purser_core::{Error, ErrorCode};

/// Prefix of every network parse error raised inside deserialization.
pub(crate) const INVALID_NETWORK: &str = "invalid network";
/// Prefix of every protocol-version error raised inside deserialization.
pub(crate) const UNSUPPORTED_VERSION: &str = "unsupported x402Version";

/// The longest quoted input kept in a message, in characters.
const QUOTE_MAX_CHARS: usize = 32;
/// The longest message handed to a caller, in characters.
const MESSAGE_MAX_CHARS: usize = 240;

/// A short, printable rendering of hostile input for messages: at most 32 characters, quoted,
/// with control characters escaped.
pub(crate) fn snippet(input: &str) -> String {
    let mut chars = input.chars();
    let head: String = chars.by_ref().take(QUOTE_MAX_CHARS).collect();
    if chars.next().is_some() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

/// Shortens every `"..."` in a serde message to its first characters and clips the message.
pub(crate) fn caller_safe(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MESSAGE_MAX_CHARS + 8));
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c != '"' {
            continue;
        }
        // Inside a quoted string: keep a prefix, skip the rest up to the closing quote.
        let mut kept = 0usize;
        let mut truncated = false;
        let mut escaped = false;
        for c in chars.by_ref() {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                break;
            }
            if kept < QUOTE_MAX_CHARS {
                out.push(c);
                kept += 1;
            } else {
                truncated = true;
            }
        }
        if escaped {
            // A dangling escape at the cut would swallow our closing quote.
            out.pop();
        }
        if truncated {
            out.push('…');
        }
        out.push('"');
    }
    clip(&out, MESSAGE_MAX_CHARS)
}

fn clip(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

/// Maps a serde error to a domain error: sentinel messages get their own code, anything else
/// `malformed` with `context` in front.
pub(crate) fn from_serde(malformed: ErrorCode, context: &str, err: &serde_json::Error) -> Error {
    let message = caller_safe(&err.to_string());
    let code = if message.starts_with(INVALID_NETWORK) {
        ErrorCode::InvalidNetwork
    } else if message.starts_with(UNSUPPORTED_VERSION) {
        ErrorCode::UnsupportedX402Version
    } else {
        malformed
    };
    if code == malformed {
        Error::new(code, format!("{context}: {message}"))
    } else {
        Error::new(code, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_input_is_shortened_and_messages_clipped() {
        let long = "A".repeat(10_000);
        let msg = format!("invalid type: string \"{long}\", expected u64");
        let safe = caller_safe(&msg);
        assert!(safe.len() < 120, "{safe}");
        assert!(safe.ends_with("\", expected u64"), "{safe}");
        assert!(safe.contains(&"A".repeat(QUOTE_MAX_CHARS)));

        let many = format!("{}x", "\"a\" ".repeat(1000));
        assert!(caller_safe(&many).chars().count() <= MESSAGE_MAX_CHARS + 1);

        let escaped = format!("string \"{}\\\"{}\"", "b".repeat(31), "c".repeat(50));
        let safe = caller_safe(&escaped);
        assert!(safe.ends_with("…\""), "{safe}");
    }

    #[test]
    fn snippets_are_short_and_printable() {
        assert_eq!(snippet("base"), "\"base\"");
        let s = snippet(&format!("\u{0}\n{}", "z".repeat(100)));
        assert!(s.starts_with("\"\\0\\n"));
        assert!(s.ends_with('…'));
        assert!(s.chars().count() < 50);
    }
}
