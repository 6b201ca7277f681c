//! What a session's statement log says: each statement the person runs, from the client's
//! messages — `Query` (simple protocol), `Execute` of a portal bound from a `Parse`d statement
//! (extended protocol: the text comes from the `Parse`, the values from the `Bind` when the role
//! records input), `FunctionCall`, and COPY data as a count.
//!
//! Lines are written to the session's recording as terminal output (`=> SELECT 1`), so that
//! `warrant sessions play` replays a database session as it does a shell.

use std::collections::HashMap;

use bytes::Buf;

use crate::proto::cstr;

/// Prepared statements whose text is kept per session: a client that prepares more is still
/// logged, with the statement's name in place of its text.
const MAX_STATEMENTS: usize = 10_000;
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
            b'Q' => Ok(Some(format!("=> {}", cstr(&mut b).map_err(drop)?))),
            b'P' => {
                let name = cstr(&mut b).map_err(drop)?;
                let sql = cstr(&mut b).map_err(drop)?;
                if self.statements.len() < MAX_STATEMENTS || self.statements.contains_key(&name) {
                    self.statements.insert(name, sql);
                }
                Ok(None)
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
                    format!("[{statement}] ")
                };
                let text = self
                    .statements
                    .get(statement)
                    .map_or("(statement text not kept)", String::as_str);
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
                    b'S' => drop(self.statements.remove(&name)),
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
            format!("'{}'", shown.replace('\'', "''"))
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
            ),
            None
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
