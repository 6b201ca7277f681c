//! What a session's statement log says: each statement the person sends, from the client's
//! messages — `Query` (simple protocol); for the extended protocol every `Parse` with its text
//! as it passes (so the log holds every text the server may run, whatever the server accepted
//! or skipped after an error), then each `Execute` with the text its portal was bound from
//! (and the values from the `Bind` when the role records input); `FunctionCall`, and COPY data
//! as a count.
//!
//! Control characters are escaped (`\x1b`, …) so that a statement cannot rewrite what an
//! auditor's terminal shows on replay.
//!
//! Lines are written to the session's recording as terminal output (`=> SELECT 1`), so that
//! `warrant sessions play` replays a database session as it does a shell.

use std::collections::HashMap;

use bytes::Buf;

use crate::proto::cstr;

/// Prepared statements whose text is kept per session: a client that prepares more is still
/// logged, with the statement's name in place of its text.
const MAX_STATEMENTS: usize = 10_000;
/// Bytes of statement text kept per session for the `Execute` lines (each text is in the log
/// at its `Parse` anyway).
const MAX_KEPT_BYTES: usize = 16 << 20;
/// Characters of one bound value kept in the log.
const MAX_VALUE_CHARS: usize = 200;
/// Bytes of a binary bound value shown (as hex).
const MAX_BINARY_BYTES: usize = 64;

/// The statement log's view of one session: prepared statements and bound portals by name.
#[derive(Debug, Default)]
pub(crate) struct Statements {
    record_values: bool,
    statements: HashMap<String, String>,
    /// Portal → (statement name, bound values as logged).
    portals: HashMap<String, (String, Option<String>)>,
    copy_bytes: u64,
    copy_messages: u64,
    /// Bytes of statement text in `statements`.
    kept_bytes: usize,
}

impl Statements {
    /// A log that also records bound values when `record_values` (the role's `record_input`).
    pub(crate) fn new(record_values: bool) -> Self {
        Self {
            record_values,
            ..Self::default()
        }
    }

    /// What to log for a client message `tag` with `body`, if anything. A message that does not
    /// parse is logged as such (the target will refuse it too).
    pub(crate) fn on_message(&mut self, tag: u8, body: &[u8]) -> Option<String> {
        match self.read(tag, body) {
            Ok(line) => line,
            Err(()) => Some(format!(
                "=> [a malformed {:?} message of {} bytes]",
                char::from(tag),
                body.len()
            )),
        }
    }

    fn read(&mut self, tag: u8, body: &[u8]) -> Result<Option<String>, ()> {
        let mut b = body;
        match tag {
            b'Q' => Ok(Some(format!(
                "=> {}",
                printable(&cstr(&mut b).map_err(drop)?)
            ))),
            b'P' => {
                let name = cstr(&mut b).map_err(drop)?;
                let sql = printable(&cstr(&mut b).map_err(drop)?);
                let line = if name.is_empty() {
                    format!("-- parse: {sql}")
                } else {
                    format!("-- parse [{}]: {sql}", printable(&name))
                };
                if let Some(old) = self.statements.remove(&name) {
                    self.kept_bytes -= old.len();
                }
                if self.statements.len() < MAX_STATEMENTS
                    && self.kept_bytes + sql.len() <= MAX_KEPT_BYTES
                {
                    self.kept_bytes += sql.len();
                    self.statements.insert(name, sql);
                }
                Ok(Some(line))
            }
            b'B' => {
                let portal = cstr(&mut b).map_err(drop)?;
                let statement = cstr(&mut b).map_err(drop)?;
                let values = if self.record_values {
                    Some(bound_values(&mut b)?)
                } else {
                    None
                };
                if self.portals.len() < MAX_STATEMENTS || self.portals.contains_key(&portal) {
                    self.portals.insert(portal, (statement, values));
                }
                Ok(None)
            }
            b'E' => {
                let portal = cstr(&mut b).map_err(drop)?;
                let Some((statement, values)) = self.portals.get(&portal) else {
                    return Ok(Some(format!("=> [execute portal {portal:?}]")));
                };
                let label = if statement.is_empty() {
                    String::new()
                } else {
                    format!("[{}] ", printable(statement))
                };
                let text = self
                    .statements
                    .get(statement)
                    .map_or("(its text is at its parse above)", String::as_str);
                Ok(Some(match values {
                    Some(v) if !v.is_empty() => format!("=> {label}{text}  -- values: {v}"),
                    _ => format!("=> {label}{text}"),
                }))
            }
            b'C' => {
                if b.is_empty() {
                    return Err(());
                }
                let kind = b.get_u8();
                let name = cstr(&mut b).map_err(drop)?;
                match kind {
                    b'S' => {
                        if let Some(old) = self.statements.remove(&name) {
                            self.kept_bytes -= old.len();
                        }
                    }
                    b'P' => drop(self.portals.remove(&name)),
                    _ => return Err(()),
                }
                Ok(None)
            }
            b'F' => {
                if b.len() < 4 {
                    return Err(());
                }
                Ok(Some(format!("=> [function call, oid {}]", b.get_u32())))
            }
            b'd' => {
                self.copy_bytes += body.len() as u64;
                self.copy_messages += 1;
                Ok(None)
            }
            b'c' | b'f' => {
                let line = format!(
                    "=> [copy {}: {} bytes in {} messages]",
                    if tag == b'c' { "done" } else { "failed" },
                    self.copy_bytes,
                    self.copy_messages
                );
                self.copy_bytes = 0;
                self.copy_messages = 0;
                Ok(Some(line))
            }
            _ => Ok(None),
        }
    }
}

/// `text` with control characters (but newlines and tabs) escaped as `\xNN` / `\u{…}`.
fn printable(text: &str) -> String {
    if !text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {
                let n = u32::from(c);
                if n < 0x100 {
                    out.push_str(&format!("\\x{n:02x}"));
                } else {
                    out.push_str(&format!("\\u{{{n:x}}}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// The values of a `Bind` message (after portal and statement names), as logged: text values
/// quoted, binary ones in hex, both cut short.
fn bound_values(b: &mut &[u8]) -> Result<String, ()> {
    let take_i16 = |b: &mut &[u8]| -> Result<i16, ()> {
        if b.len() < 2 {
            return Err(());
        }
        Ok(b.get_i16())
    };
    let nformats = usize::try_from(take_i16(b)?).map_err(drop)?;
    let mut formats = Vec::with_capacity(nformats.min(1024));
    for _ in 0..nformats {
        formats.push(take_i16(b)?);
    }
    let nvalues = usize::try_from(take_i16(b)?).map_err(drop)?;
    let mut out = Vec::with_capacity(nvalues.min(1024));
    for i in 0..nvalues {
        if b.len() < 4 {
            return Err(());
        }
        let len = b.get_i32();
        let binary = match formats.as_slice() {
            [] => false,
            [one] => *one == 1,
            many => many.get(i).is_some_and(|f| *f == 1),
        };
        let Ok(len) = usize::try_from(len) else {
            out.push("NULL".to_owned());
            continue;
        };
        if b.len() < len {
            return Err(());
        }
        let value = &b[..len];
        out.push(if binary {
            let shown = &value[..len.min(MAX_BINARY_BYTES)];
            let hex: String = shown.iter().map(|x| format!("{x:02x}")).collect();
            format!("'\\x{hex}{}'", if len > shown.len() { "…" } else { "" })
        } else {
            let text = String::from_utf8_lossy(value);
            let mut shown: String = text.chars().take(MAX_VALUE_CHARS).collect();
            if shown.len() < text.len() {
                shown.push('…');
            }
            format!("'{}'", printable(&shown.replace('\'', "''")))
        });
        b.advance(len);
    }
    Ok(out.join(", "))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn msg(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn simple_and_extended_statements_are_logged() {
        let mut s = Statements::new(true);
        assert_eq!(
            s.on_message(b'Q', b"SELECT 1\0").as_deref(),
            Some("=> SELECT 1")
        );
        assert_eq!(
            s.on_message(
                b'P',
                &msg(&[b"s1\0", b"SELECT $1, $2\0", &0_i16.to_be_bytes()])
            )
            .as_deref(),
            Some("-- parse [s1]: SELECT $1, $2")
        );
        let bind = msg(&[
            b"\0s1\0",
            &2_i16.to_be_bytes(),
            &0_i16.to_be_bytes(),
            &1_i16.to_be_bytes(),
            &2_i16.to_be_bytes(),
            &4_i32.to_be_bytes(),
            b"it's",
            &2_i32.to_be_bytes(),
            &[0xde, 0xad],
            &0_i16.to_be_bytes(),
        ]);
        assert_eq!(s.on_message(b'B', &bind), None);
        assert_eq!(
            s.on_message(b'E', &msg(&[b"\0", &0_i32.to_be_bytes()]))
                .as_deref(),
            Some("=> [s1] SELECT $1, $2  -- values: 'it''s', '\\xdead'")
        );
        // Closed: a later execute of the portal says so.
        s.on_message(b'C', b"Ps1\0");
        s.on_message(b'C', b"P\0");
        assert_eq!(
            s.on_message(b'E', &msg(&[b"\0", &0_i32.to_be_bytes()]))
                .as_deref(),
            Some("=> [execute portal \"\"]")
        );
    }

    #[test]
    fn every_parse_is_in_the_log_whatever_the_server_skipped() {
        // A client that has the server skip a Parse (after an error) cannot make the log show
        // another text than the one that runs: every Parse's text is logged as it passes.
        let mut s = Statements::new(false);
        let parse = |sql: &[u8]| msg(&[b"\0", sql, b"\0", &0_i16.to_be_bytes()]);
        let first = s.on_message(b'P', &parse(b"DELETE FROM accounts")).unwrap();
        let second = s.on_message(b'P', &parse(b"SELECT 1")).unwrap();
        assert!(first.contains("DELETE FROM accounts"), "{first}");
        assert!(second.contains("SELECT 1"), "{second}");
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut s = Statements::new(false);
        let line = s
            .on_message(b'Q', b"DROP TABLE audit; -- \x1b[2K\r=> SELECT 1\0")
            .unwrap();
        assert!(!line.contains('\x1b') && !line.contains('\r'), "{line:?}");
        assert!(line.contains("\\x1b[2K\\x0d=> SELECT 1"), "{line:?}");
        assert_eq!(printable("a\tb\nc"), "a\tb\nc");
    }

    #[test]
    fn values_are_not_logged_unless_asked() {
        let mut s = Statements::new(false);
        s.on_message(b'P', &msg(&[b"\0", b"SELECT $1\0", &0_i16.to_be_bytes()]));
        let bind = msg(&[
            b"\0\0",
            &0_i16.to_be_bytes(),
            &1_i16.to_be_bytes(),
            &6_i32.to_be_bytes(),
            b"secret",
            &0_i16.to_be_bytes(),
        ]);
        s.on_message(b'B', &bind);
        let line = s
            .on_message(b'E', &msg(&[b"\0", &0_i32.to_be_bytes()]))
            .unwrap();
        assert_eq!(line, "=> SELECT $1");
    }

    #[test]
    fn copy_is_counted_and_garbage_named() {
        let mut s = Statements::new(false);
        assert_eq!(s.on_message(b'd', b"1\tone\n"), None);
        assert_eq!(s.on_message(b'd', b"2\ttwo\n"), None);
        assert_eq!(
            s.on_message(b'c', b"").as_deref(),
            Some("=> [copy done: 12 bytes in 2 messages]")
        );
        assert_eq!(
            s.on_message(b'Q', b"no terminator").as_deref(),
            Some("=> [a malformed 'Q' message of 13 bytes]")
        );
        assert!(
            s.on_message(b'B', b"\0\0\xff\xff")
                .is_none_or(|l| l.contains("malformed"))
        );
    }
}
