//! The lexer and recursive-descent parser shared by filters (RFC 7644 §3.4.2.2), PATCH paths
//! (§3.5.2) and the attribute lists of `attributes` / `excludedAttributes` (§3.9).
//!
//! Errors carry the byte offset where the parser stopped and what it expected there. Input
//! length and nesting depth are bounded, so a hostile filter cannot exhaust the stack.

use std::str::FromStr;

use serde_json::Number;

use crate::filter::{AttrPath, CompValue, CompareOp, Filter};
use crate::path::PatchPath;

/// The longest filter or path accepted, in bytes.
pub const MAX_INPUT_LEN: usize = 4096;

/// The deepest nesting of parentheses, `not (...)` and `[...]` accepted.
pub const MAX_DEPTH: usize = 64;

/// A syntax error: where, and what was wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub offset: usize,
    pub message: String,
}

impl SyntaxError {
    fn new(offset: usize, message: impl Into<String>) -> Self {
        Self {
            offset,
            message: message.into(),
        }
    }

    /// `at offset N: message`, the detail of the SCIM error built from it.
    pub fn describe(&self) -> String {
        format!("at offset {}: {}", self.offset, self.message)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(Number),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Dot,
    End,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("'{w}'"),
            Tok::Str(_) => "a string".to_owned(),
            Tok::Num(_) => "a number".to_owned(),
            Tok::LParen => "'('".to_owned(),
            Tok::RParen => "')'".to_owned(),
            Tok::LBracket => "'['".to_owned(),
            Tok::RBracket => "']'".to_owned(),
            Tok::Dot => "'.'".to_owned(),
            Tok::End => "the end of the input".to_owned(),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    offset: usize,
}

fn is_word_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'$' || b == b'_'
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'$' | b'.' | b':')
}

fn is_number_byte(b: u8) -> bool {
    b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E')
}

fn tokenize(input: &str) -> Result<Vec<Token>, SyntaxError> {
    if input.len() > MAX_INPUT_LEN {
        return Err(SyntaxError::new(
            MAX_INPUT_LEN,
            format!("longer than {MAX_INPUT_LEN} bytes"),
        ));
    }
    let bytes = input.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let (tok, end) = match b {
            b'(' => (Tok::LParen, i + 1),
            b')' => (Tok::RParen, i + 1),
            b'[' => (Tok::LBracket, i + 1),
            b']' => (Tok::RBracket, i + 1),
            b'.' => (Tok::Dot, i + 1),
            b'"' => lex_string(input, i)?,
            b'-' | b'0'..=b'9' => lex_number(input, i)?,
            _ if is_word_start(b) => {
                let end = scan(bytes, i, is_word_byte);
                (Tok::Word(input[i..end].to_owned()), end)
            }
            _ => {
                let c = input[i..].chars().next().unwrap_or('?');
                return Err(SyntaxError::new(i, format!("unexpected character {c:?}")));
            }
        };
        tokens.push(Token { tok, offset: i });
        i = end;
    }
    tokens.push(Token {
        tok: Tok::End,
        offset: input.len(),
    });
    Ok(tokens)
}

fn scan(bytes: &[u8], start: usize, keep: fn(u8) -> bool) -> usize {
    let mut end = start;
    while end < bytes.len() && keep(bytes[end]) {
        end += 1;
    }
    end
}

/// A JSON string starting at `start` (a `"`): finds the closing quote, then lets serde_json
/// decode the escapes.
fn lex_string(input: &str, start: usize) -> Result<(Tok, usize), SyntaxError> {
    let bytes = input.as_bytes();
    let mut j = start + 1;
    while j < bytes.len() {
        match bytes[j] {
            b'\\' => j += 2,
            b'"' => {
                let literal = &input[start..=j];
                return serde_json::from_str::<String>(literal)
                    .map(|s| (Tok::Str(s), j + 1))
                    .map_err(|e| SyntaxError::new(start, format!("invalid string literal: {e}")));
            }
            _ => j += 1,
        }
    }
    Err(SyntaxError::new(start, "unterminated string"))
}

fn lex_number(input: &str, start: usize) -> Result<(Tok, usize), SyntaxError> {
    let end = scan(input.as_bytes(), start, is_number_byte);
    let text = &input[start..end];
    let number = Number::from_str(text)
        .map_err(|_| SyntaxError::new(start, format!("invalid number '{text}'")))?;
    Ok((Tok::Num(correctly_rounded(number, text)), end))
}

/// serde_json's default float parsing may be off by one unit in the last place; the standard
/// library's is exact, so a printed filter parses back to the same number.
fn correctly_rounded(number: Number, text: &str) -> Number {
    if !number.is_f64() {
        return number;
    }
    text.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .unwrap_or(number)
}

/// Checks an attribute name: `ATTRNAME = ALPHA *(ALPHA / DIGIT / "-" / "_")`, and `$ref`.
fn check_name(name: &str, offset: usize) -> Result<(), SyntaxError> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'$');
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(SyntaxError::new(
            offset,
            format!("'{name}' is not an attribute name"),
        ))
    }
}

/// Splits `[urn ":"] name ["." sub]`. The URN is everything up to the last colon.
fn split_attr_path(word: &str, offset: usize) -> Result<AttrPath, SyntaxError> {
    let (urn, rest) = if word.len() > 4 && word[..4].eq_ignore_ascii_case("urn:") {
        match word.rfind(':') {
            Some(idx) => (Some(word[..idx].to_owned()), &word[idx + 1..]),
            None => (None, word),
        }
    } else {
        (None, word)
    };
    let rest_offset = offset + (word.len() - rest.len());
    if rest.is_empty() {
        return Err(SyntaxError::new(
            rest_offset,
            "expected an attribute name after the schema URN",
        ));
    }
    let mut parts = rest.split('.');
    let name = parts.next().unwrap_or_default().to_owned();
    let sub = parts.next().map(str::to_owned);
    if parts.next().is_some() {
        return Err(SyntaxError::new(
            rest_offset,
            format!("'{rest}' has more than one sub-attribute"),
        ));
    }
    check_name(&name, rest_offset)?;
    if let Some(sub) = &sub {
        check_name(sub, rest_offset + name.len() + 1)?;
    }
    Ok(AttrPath { urn, name, sub })
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn new(input: &str) -> Result<Self, SyntaxError> {
        Ok(Self {
            tokens: tokenize(input)?,
            pos: 0,
            depth: 0,
        })
    }

    fn peek(&self) -> &Token {
        let last = self.tokens.len().saturating_sub(1);
        &self.tokens[self.pos.min(last)]
    }

    fn peek_second(&self) -> &Tok {
        let last = self.tokens.len().saturating_sub(1);
        &self.tokens[(self.pos + 1).min(last)].tok
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        token
    }

    fn error_here(&self, expected: &str) -> SyntaxError {
        let token = self.peek();
        SyntaxError::new(
            token.offset,
            format!("expected {expected}, found {}", token.tok.describe()),
        )
    }

    fn expect(&mut self, tok: &Tok, expected: &str) -> Result<(), SyntaxError> {
        if &self.peek().tok == tok {
            self.advance();
            Ok(())
        } else {
            Err(self.error_here(expected))
        }
    }

    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(&self.peek().tok, Tok::Word(w) if w.eq_ignore_ascii_case(keyword))
    }

    fn enter(&mut self) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(SyntaxError::new(
                self.peek().offset,
                format!("nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// `or`, the loosest operator; `in_brackets` is true inside a value filter.
    fn or_expr(&mut self, in_brackets: bool) -> Result<Filter, SyntaxError> {
        let mut left = self.and_expr(in_brackets)?;
        while self.peek_keyword("or") {
            self.advance();
            let right = self.and_expr(in_brackets)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self, in_brackets: bool) -> Result<Filter, SyntaxError> {
        let mut left = self.unary(in_brackets)?;
        while self.peek_keyword("and") {
            self.advance();
            let right = self.unary(in_brackets)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, in_brackets: bool) -> Result<Filter, SyntaxError> {
        if self.peek_keyword("not") && self.peek_second() == &Tok::LParen {
            self.advance();
            let inner = self.parenthesised(in_brackets)?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        match &self.peek().tok {
            Tok::LParen => self.parenthesised(in_brackets),
            Tok::Word(_) => self.attr_expr(in_brackets),
            _ => Err(self.error_here("an attribute name, 'not' or '('")),
        }
    }

    fn parenthesised(&mut self, in_brackets: bool) -> Result<Filter, SyntaxError> {
        self.enter()?;
        self.expect(&Tok::LParen, "'('")?;
        let inner = self.or_expr(in_brackets)?;
        self.expect(&Tok::RParen, "'and', 'or' or ')'")?;
        self.leave();
        Ok(inner)
    }

    fn attr_path(&mut self) -> Result<AttrPath, SyntaxError> {
        match &self.peek().tok {
            Tok::Word(word) => {
                let path = split_attr_path(word, self.peek().offset)?;
                self.advance();
                Ok(path)
            }
            _ => Err(self.error_here("an attribute name")),
        }
    }

    /// `attr[valFilter]`, after the attribute path.
    fn value_filter(&mut self, path: &AttrPath, in_brackets: bool) -> Result<Filter, SyntaxError> {
        let offset = self.peek().offset;
        if in_brackets {
            return Err(SyntaxError::new(offset, "value filters cannot be nested"));
        }
        if path.sub.is_some() {
            return Err(SyntaxError::new(
                offset,
                "a value filter follows an attribute, not a sub-attribute",
            ));
        }
        self.enter()?;
        self.advance();
        let inner = self.or_expr(true)?;
        self.expect(&Tok::RBracket, "'and', 'or' or ']'")?;
        self.leave();
        Ok(inner)
    }

    fn attr_expr(&mut self, in_brackets: bool) -> Result<Filter, SyntaxError> {
        let path = self.attr_path()?;
        if self.peek().tok == Tok::LBracket {
            let filter = self.value_filter(&path, in_brackets)?;
            return Ok(Filter::ValuePath {
                path,
                filter: Box::new(filter),
            });
        }
        if self.peek_keyword("pr") {
            self.advance();
            return Ok(Filter::Present(path));
        }
        let op = match &self.peek().tok {
            Tok::Word(w) => CompareOp::parse(w),
            _ => None,
        };
        let Some(op) = op else {
            return Err(
                self.error_here("an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) or '['")
            );
        };
        self.advance();
        let value = self.comp_value(op)?;
        Ok(Filter::Compare { path, op, value })
    }

    fn comp_value(&mut self, op: CompareOp) -> Result<CompValue, SyntaxError> {
        let token = self.peek().clone();
        let value = match &token.tok {
            Tok::Str(s) => CompValue::String(s.clone()),
            Tok::Num(n) => CompValue::Number(n.clone()),
            Tok::Word(w) if w.eq_ignore_ascii_case("true") => CompValue::Bool(true),
            Tok::Word(w) if w.eq_ignore_ascii_case("false") => CompValue::Bool(false),
            Tok::Word(w) if w.eq_ignore_ascii_case("null") => CompValue::Null,
            _ => {
                return Err(self.error_here(
                    "a value (a string in double quotes, a number, true, false or null)",
                ));
            }
        };
        if !op.accepts(&value) {
            return Err(SyntaxError::new(
                token.offset,
                format!("'{op}' cannot compare with {}", token.tok.describe()),
            ));
        }
        self.advance();
        Ok(value)
    }

    fn expect_end(&self, expected: &str) -> Result<(), SyntaxError> {
        if self.peek().tok == Tok::End {
            Ok(())
        } else {
            Err(self.error_here(expected))
        }
    }
}

/// Parses a whole filter.
pub(crate) fn filter(input: &str) -> Result<Filter, SyntaxError> {
    let mut parser = Parser::new(input)?;
    let filter = parser.or_expr(false)?;
    parser.expect_end("'and', 'or' or the end of the filter")?;
    Ok(filter)
}

/// Parses a PATCH path: `attrPath` or `attrPath "[" valFilter "]" ["." subAttr]`.
pub(crate) fn patch_path(input: &str) -> Result<PatchPath, SyntaxError> {
    let mut parser = Parser::new(input)?;
    let mut attr = parser.attr_path()?;
    let mut filter = None;
    if parser.peek().tok == Tok::LBracket {
        filter = Some(Box::new(parser.value_filter(&attr, false)?));
        if parser.peek().tok == Tok::Dot {
            parser.advance();
            let token = parser.peek().clone();
            match &token.tok {
                Tok::Word(sub) => {
                    check_name(sub, token.offset)?;
                    attr.sub = Some(sub.clone());
                    parser.advance();
                }
                _ => return Err(parser.error_here("a sub-attribute name")),
            }
        }
    }
    parser.expect_end("'[' or the end of the path")?;
    Ok(PatchPath { attr, filter })
}

/// Parses a bare attribute path (`[urn:]name[.sub]`), as in the `attributes` parameter.
pub(crate) fn attr_path(input: &str) -> Result<AttrPath, SyntaxError> {
    let mut parser = Parser::new(input)?;
    let path = parser.attr_path()?;
    parser.expect_end("the end of the attribute name")?;
    Ok(path)
}
