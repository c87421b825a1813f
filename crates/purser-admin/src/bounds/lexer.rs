//! The lexical grammar of async-graphql's parser, reduced to what bounding a document needs:
//! where each token starts and ends, strings and comments skipped as the parser skips them.

/// A GraphQL token, as far as bounding a document needs to tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token {
    /// One of `! $ & ( ) : = @ [ ] { | }`.
    Punctuator(u8),
    /// `...`
    Spread,
    Name,
    /// An integer or float, including malformed ones the parser will refuse.
    Number,
    /// A `"…"` string.
    String,
    /// A `"""…"""` block string.
    BlockString,
    /// A character no token starts with; the parser will refuse the document.
    Unknown,
}

/// The lexical grammar of async-graphql's parser (`graphql.pest`), reduced to telling where
/// each token starts and ends. Whitespace, commas, the byte order mark and `#` comments are
/// skipped; a string is one token whatever brackets or `#` it holds.
///
/// It reads bytes, not characters: every byte of a multi-byte UTF-8 character is 0x80 or
/// above, so it can never be taken for a quote, a bracket or a line end. Where the parser
/// would stop with an error (an unterminated string, a line end inside a string), the lexer
/// carries on, treating what follows as tokens: it may count more brackets than the parser
/// would reach, never fewer.
pub(crate) struct Lexer<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Lexer<'a> {
    /// Lexes `text`, UTF-8 (or a prefix of UTF-8 cut anywhere).
    pub(crate) fn new(text: &'a [u8]) -> Self {
        Self { bytes: text, at: 0 }
    }

    fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.at..).unwrap_or_default()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    /// Whitespace (`" "`, tab, line ends, `,`, U+FEFF) and comments up to a line end.
    fn skip_ignored(&mut self) {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\n' | b'\r' | b',') => self.at += 1,
                Some(0xEF) if self.rest().starts_with("\u{feff}".as_bytes()) => self.at += 3,
                Some(b'#') => {
                    while !matches!(self.peek(), None | Some(b'\n' | b'\r')) {
                        self.at += 1;
                    }
                }
                _ => return,
            }
        }
    }

    /// After the opening `"`: up to the closing `"`. A backslash takes the next byte with it;
    /// a line end (which no string may hold) ends the string early.
    fn string(&mut self) {
        while let Some(byte) = self.peek() {
            match byte {
                b'"' => {
                    self.at += 1;
                    return;
                }
                b'\n' | b'\r' => return,
                b'\\' => {
                    self.at += 1;
                    if !matches!(self.peek(), None | Some(b'\n' | b'\r')) {
                        self.at += 1;
                    }
                }
                _ => self.at += 1,
            }
        }
    }

    /// After the opening `"""`: up to the closing `"""`; `\"""` is the one escape.
    fn block_string(&mut self) {
        loop {
            let rest = self.rest();
            if rest.is_empty() {
                return;
            } else if rest.starts_with(br#"\""""#) {
                self.at += 4;
            } else if rest.starts_with(br#"""""#) {
                self.at += 3;
                return;
            } else {
                self.at += 1;
            }
        }
    }

    fn take_while(&mut self, mut accept: impl FnMut(u8) -> bool) {
        while self.peek().is_some_and(&mut accept) {
            self.at += 1;
        }
    }
}

impl Iterator for Lexer<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        self.skip_ignored();
        let first = self.peek()?;
        let token = match first {
            b'"' if self.rest().starts_with(br#"""""#) => {
                self.at += 3;
                self.block_string();
                Token::BlockString
            }
            b'"' => {
                self.at += 1;
                self.string();
                Token::String
            }
            b'.' if self.rest().starts_with(b"...") => {
                self.at += 3;
                Token::Spread
            }
            b'!' | b'$' | b'&' | b'(' | b')' | b':' | b'=' | b'@' | b'[' | b']' | b'{' | b'|'
            | b'}' => {
                self.at += 1;
                Token::Punctuator(first)
            }
            b'_' | b'A'..=b'Z' | b'a'..=b'z' => {
                self.take_while(|b| b == b'_' || b.is_ascii_alphanumeric());
                Token::Name
            }
            b'-' | b'0'..=b'9' => {
                self.at += 1;
                let mut previous = first;
                self.take_while(|b| {
                    let sign_of_exponent =
                        matches!(b, b'+' | b'-') && matches!(previous, b'e' | b'E');
                    previous = b;
                    b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || sign_of_exponent
                });
                Token::Number
            }
            _ => {
                // One character: its first byte and any continuation bytes.
                self.at += 1;
                self.take_while(|b| (0x80..0xC0).contains(&b));
                Token::Unknown
            }
        };
        Some(token)
    }
}

#[cfg(test)]
mod tests {
    use super::Token::{
        BlockString, Name, Number, Punctuator as P, Spread, String as Str, Unknown,
    };
    use super::*;

    fn tokens(text: &str) -> Vec<Token> {
        Lexer::new(text.as_bytes()).collect()
    }

    #[test]
    fn lexes_punctuators_names_numbers_and_spreads() {
        assert_eq!(
            tokens("query Q($a: [Int!]! = [1, -2.5e+3]) { ...F ... on T { x: y } }"),
            [
                Name,
                Name,
                P(b'('),
                P(b'$'),
                Name,
                P(b':'),
                P(b'['),
                Name,
                P(b'!'),
                P(b']'),
                P(b'!'),
                P(b'='),
                P(b'['),
                Number,
                Number,
                P(b']'),
                P(b')'),
                P(b'{'),
                Spread,
                Name,
                Spread,
                Name,
                Name,
                P(b'{'),
                Name,
                P(b':'),
                Name,
                P(b'}'),
                P(b'}'),
            ]
        );
    }

    #[test]
    fn a_string_is_one_token_whatever_it_holds() {
        assert_eq!(
            tokens(r#"{ f(a: "}{[(#") }"#),
            [P(b'{'), Name, P(b'('), Name, P(b':'), Str, P(b')'), P(b'}')]
        );
        // Escaped quotes and backslashes do not end the string; the quote after `\\` does.
        assert_eq!(tokens(r#""a\"{" "b\\" {"#), [Str, Str, P(b'{')]);
        assert_eq!(tokens(r#""\u007B \n \t \/" x"#), [Str, Name]);
    }

    #[test]
    fn block_strings_end_at_three_quotes_not_escaped() {
        assert_eq!(
            tokens(r#"""" { "quoted" "" \""" [ """ {"#),
            [BlockString, P(b'{')]
        );
        // A single backslash is literal in a block string: `\"""` escapes, `\` alone doesn't.
        assert_eq!(tokens(r#""""a\ """ ["#), [BlockString, P(b'[')]);
        assert_eq!(tokens(r#""""""" x"#), [BlockString, Name]);
        // Line ends are allowed in block strings.
        assert_eq!(tokens("\"\"\"a\n{\r\n}\"\"\" ("), [BlockString, P(b'(')]);
    }

    #[test]
    fn comments_run_to_the_line_end_and_hide_quotes_and_brackets() {
        assert_eq!(
            tokens("{ # a \"comment { [\n a #\r b }"),
            [P(b'{'), Name, Name, P(b'}')]
        );
        assert_eq!(tokens("# only a comment"), []);
        // `#` inside a string is not a comment.
        assert_eq!(tokens("\"#\" {"), [Str, P(b'{')]);
    }

    #[test]
    fn whitespace_commas_and_the_byte_order_mark_are_not_tokens() {
        assert_eq!(tokens("\u{feff} ,,\t\r\n a,b"), [Name, Name]);
    }

    #[test]
    fn unicode_is_one_unknown_token_outside_strings_and_content_inside() {
        assert_eq!(tokens(r#""é{😀}" {"#), [Str, P(b'{')]);
        assert_eq!(tokens("é 😀 {"), [Unknown, Unknown, P(b'{')]);
        assert_eq!(tokens(r#""""ü""" # ß {"#), [BlockString]);
    }

    #[test]
    fn an_unterminated_string_stops_at_the_line_end_and_lexing_goes_on() {
        // The parser refuses both; the lexer still counts what follows, never less.
        assert_eq!(tokens("\"abc\n{ ["), [Str, P(b'{'), P(b'[')]);
        assert_eq!(tokens("\"abc\\\n{"), [Str, P(b'{')]);
        assert_eq!(tokens("\"abc"), [Str]);
        assert_eq!(tokens("\"\"\"abc {"), [BlockString]);
    }
}
