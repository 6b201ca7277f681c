//! Session recordings: what a gateway writes as a session runs, and how anyone checks it
//! later.
//!
//! - [`Recorder`] writes an [asciicast v2] file as the session goes: a header line, then one JSON
//!   array per event `[seconds, code, data]` — `o` terminal output, `i` input (when the role
//!   records it), `r` a window resize (`"COLSxROWS"`), `m` a marker (exec commands and file
//!   transfers, as text). Terminal bytes are decoded as UTF-8 across chunk boundaries (a
//!   character split between two reads is kept whole); invalid bytes become U+FFFD, as players
//!   expect. Every write error is returned, so a strict caller ends the session and a
//!   best-effort caller notes the failure and carries on.
//! - [`Recorder::finish`] syncs the file and writes its [`Manifest`] beside it
//!   (`<recording>.manifest.json`): the recording's SHA-256 and size, the session's facts, and an
//!   ed25519 signature over all of it by Warrant's recording key ([`RecordingKey`]).
//! - [`verify`] recomputes the hash and checks the signature against a trusted public key: any
//!   change to the recording or to its manifest is found.
//! - [`play`] replays the output events with their timing (speed and idle limits) into any
//!   writer, e.g. a terminal.
//! - [`live`] is a session's recording as a gateway writes it while the session runs (here so
//!   that every gateway shares it, the SSH gateway first): a [`live::Recording`] handle whose
//!   writer thread owns the [`Recorder`], its [`live::RecordingMode`] (strict or best-effort),
//!   and the [`live::RecordingOutcome`] a finished session reports.
//!
//! The asciicast writer is written here: the `asciicast` crate dates from 2018 (DEPENDENCIES.md)
//! and the format is a few lines of JSON; signatures and hashes come from RustCrypto/dalek.
//!
//! [asciicast v2]: https://docs.asciinema.org/manual/asciicast/v2/

pub mod live;

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What went wrong with a recording.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// Reading or writing the recording or its manifest failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A file is not what it should be (not asciicast v2, not a manifest).
    #[error("{path}: {detail}")]
    Malformed {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The recording does not match its manifest, or the signature does not verify.
    #[error("{0}")]
    Tampered(String),
}

impl RecordingError {
    /// A stable code for API errors.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Io { .. } => "recording_io",
            Self::Malformed { .. } => "recording_malformed",
            Self::Tampered(_) => "recording_tampered",
        }
    }

    fn io(what: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            what,
            path: path.display().to_string(),
            source,
        }
    }
}

type Result<T, E = RecordingError> = std::result::Result<T, E>;

/// The ed25519 key that signs manifests (one of Warrant's own keys, like the audit key). Its
/// `Debug` shows only the public half.
pub type RecordingKey = warrant_audit::signing::SigningKey;

/// The asciicast v2 header.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Header {
    /// Always 2.
    pub version: u32,
    /// Terminal columns.
    pub width: u32,
    /// Terminal rows.
    pub height: u32,
    /// Unix seconds at the start.
    pub timestamp: i64,
    /// E.g. `alice on web-1 as root (grant …)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// `TERM` and `SHELL` as the client gave them.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub env: std::collections::BTreeMap<String, String>,
}

/// The facts of a session, signed with its recording.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct SessionFacts {
    /// The gateway's session id.
    pub session_id: String,
    /// Who.
    pub identity: String,
    /// Where.
    pub target: String,
    /// As which account upstream.
    pub account: String,
    /// Under which grant.
    pub grant_id: String,
    /// Unix seconds at the start.
    pub started_at: i64,
    /// Unix seconds at the end.
    pub ended_at: i64,
    /// How the session ended (`closed`, `grant_ended`, `killed`, `recording_failed`, …).
    pub end_reason: String,
}

/// What [`Recorder::finish`] writes beside the recording.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// The recording's file name (in the same directory).
    pub recording: String,
    /// SHA-256 of the recording, hex.
    pub sha256: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Write errors met while recording (best-effort mode carries on; the count says so).
    pub write_errors: u64,
    /// The session.
    pub session: SessionFacts,
    /// The signer's public key, base64 (check it against the one you trust).
    pub public_key: String,
    /// ed25519 signature, base64, over the manifest serialised without this field.
    #[serde(default)]
    pub signature: String,
}

impl Manifest {
    /// The bytes the signature covers: the manifest as compact JSON with an empty signature.
    fn signed_bytes(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.signature = String::new();
        serde_json::to_vec(&unsigned).unwrap_or_default()
    }
}

/// The recorder's write buffer: an SSH packet's worth of output (32 KiB) and its JSON escaping
/// go to the file in one write.
pub(crate) const WRITE_BUFFER: usize = 128 * 1024;

/// The path of a recording's manifest.
#[must_use]
pub fn manifest_path(recording: &Path) -> PathBuf {
    let mut name = recording.as_os_str().to_owned();
    name.push(".manifest.json");
    PathBuf::from(name)
}

/// Writes one recording as the session runs.
pub struct Recorder<W: Write = BufWriter<File>> {
    out: W,
    path: PathBuf,
    start: Instant,
    /// Bytes of an incomplete UTF-8 character at the end of the last output (or input) chunk.
    pending_out: Vec<u8>,
    pending_in: Vec<u8>,
    write_errors: u64,
}

impl Recorder {
    /// Creates `path` (which must not exist; mode 0600) and writes the header.
    pub fn create(path: &Path, header: &Header) -> Result<Self> {
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts
            .open(path)
            .map_err(|e| RecordingError::io("creating", path, e))?;
        Self::with_writer(BufWriter::with_capacity(WRITE_BUFFER, file), path, header)
    }

    /// Syncs the recording to disk, then writes and syncs its signed manifest.
    pub fn finish(mut self, facts: SessionFacts, key: &RecordingKey) -> Result<Manifest> {
        self.flush_pending();
        let path = self.path.clone();
        let file = self
            .out
            .into_inner()
            .map_err(|e| RecordingError::io("writing", &path, e.into_error()))?;
        file.sync_all()
            .map_err(|e| RecordingError::io("syncing", &path, e))?;
        drop(file);
        let (sha256, bytes) = hash_file(&path)?;
        let mut manifest = Manifest {
            recording: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            sha256,
            bytes,
            write_errors: self.write_errors,
            session: facts,
            public_key: key.public_base64(),
            signature: String::new(),
        };
        manifest.signature = key.sign(&manifest.signed_bytes());
        let mpath = manifest_path(&path);
        let text = serde_json::to_vec_pretty(&manifest).map_err(|e| RecordingError::Malformed {
            path: mpath.display().to_string(),
            detail: e.to_string(),
        })?;
        let mut f = File::create(&mpath).map_err(|e| RecordingError::io("creating", &mpath, e))?;
        f.write_all(&text)
            .and_then(|()| f.sync_all())
            .map_err(|e| RecordingError::io("writing", &mpath, e))?;
        Ok(manifest)
    }
}

impl<W: Write> Recorder<W> {
    /// A recorder writing to any writer (tests inject failing ones); `path` names it in errors.
    pub fn with_writer(mut out: W, path: &Path, header: &Header) -> Result<Self> {
        let line = serde_json::to_string(header).map_err(|e| RecordingError::Malformed {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
        writeln!(out, "{line}").map_err(|e| RecordingError::io("writing", path, e))?;
        Ok(Self {
            out,
            path: path.to_owned(),
            start: Instant::now(),
            pending_out: Vec::new(),
            pending_in: Vec::new(),
            write_errors: 0,
        })
    }

    /// Terminal output.
    pub fn output(&mut self, data: &[u8]) -> Result<()> {
        self.write_output(data)?;
        self.flush()
    }

    /// Terminal input (only when the role records input).
    pub fn input(&mut self, data: &[u8]) -> Result<()> {
        self.write_input(data)?;
        self.flush()
    }

    /// The window changed.
    pub fn resize(&mut self, cols: u32, rows: u32) -> Result<()> {
        self.write_resize(cols, rows)?;
        self.flush()
    }

    /// A marker: an exec command, a file transfer, the reason the session ended.
    pub fn marker(&mut self, text: &str) -> Result<()> {
        self.write_marker(text)?;
        self.flush()
    }

    /// Passes what the writes since the last flush left in the buffer on to the file (the
    /// live writer flushes once per batch of events, not once per event).
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| {
            self.write_errors += 1;
            RecordingError::io("writing", &self.path, e)
        })
    }

    /// [`Recorder::output`] without the flush.
    pub(crate) fn write_output(&mut self, data: &[u8]) -> Result<()> {
        let secs = self.elapsed();
        let text = take_utf8(&mut self.pending_out, data);
        write_event(
            &mut self.out,
            &self.path,
            &mut self.write_errors,
            secs,
            "o",
            &text,
        )
    }

    /// [`Recorder::input`] without the flush.
    pub(crate) fn write_input(&mut self, data: &[u8]) -> Result<()> {
        let secs = self.elapsed();
        let text = take_utf8(&mut self.pending_in, data);
        write_event(
            &mut self.out,
            &self.path,
            &mut self.write_errors,
            secs,
            "i",
            &text,
        )
    }

    /// [`Recorder::resize`] without the flush.
    pub(crate) fn write_resize(&mut self, cols: u32, rows: u32) -> Result<()> {
        self.event_at(self.elapsed(), "r", &format!("{cols}x{rows}"))
    }

    /// [`Recorder::marker`] without the flush.
    pub(crate) fn write_marker(&mut self, text: &str) -> Result<()> {
        self.event_at(self.elapsed(), "m", text)
    }

    /// Write errors so far (best-effort mode).
    #[must_use]
    pub fn write_errors(&self) -> u64 {
        self.write_errors
    }

    fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn event_at(&mut self, secs: f64, code: &str, data: &str) -> Result<()> {
        write_event(
            &mut self.out,
            &self.path,
            &mut self.write_errors,
            secs,
            code,
            data,
        )
    }

    /// Writes what is left of a split character (as U+FFFD) at the end.
    fn flush_pending(&mut self) {
        for (code, pending) in [
            ("o", std::mem::take(&mut self.pending_out)),
            ("i", std::mem::take(&mut self.pending_in)),
        ] {
            if !pending.is_empty() {
                let text = String::from_utf8_lossy(&pending).into_owned();
                let _ = self.event_at(self.elapsed(), code, &text);
            }
        }
    }
}

fn round6(v: f64) -> f64 {
    (v * 1_000_000.0).round() / 1_000_000.0
}

/// Writes one event line `[secs, code, data]`, unflushed: encoded straight into the buffered
/// writer, no line string in between. A failed write is counted in `write_errors`.
fn write_event<W: Write>(
    out: &mut W,
    path: &Path,
    write_errors: &mut u64,
    secs: f64,
    code: &str,
    data: &str,
) -> Result<()> {
    if data.is_empty() && (code == "o" || code == "i") {
        return Ok(());
    }
    let done = serde_json::to_writer(&mut *out, &(round6(secs), code, data))
        .map_err(std::io::Error::from)
        .and_then(|()| out.write_all(b"\n"));
    done.map_err(|e| {
        *write_errors += 1;
        RecordingError::io("writing", path, e)
    })
}

/// Decodes `pending + data` as UTF-8, keeping an incomplete character at the end for the next
/// chunk; invalid bytes become U+FFFD. Borrows `data` in the usual case (nothing pending, valid
/// text): no copy of a chunk that is already text.
fn take_utf8<'a>(pending: &mut Vec<u8>, data: &'a [u8]) -> Cow<'a, str> {
    if pending.is_empty() {
        // The usual case: decode in place, keep only a split character's first bytes.
        let keep = incomplete_tail(data);
        let whole = data.len() - keep;
        pending.extend_from_slice(&data[whole..]);
        return decode(&data[..whole]);
    }
    pending.extend_from_slice(data);
    let keep = incomplete_tail(pending);
    let whole = pending.len() - keep;
    let text = decode(&pending[..whole]).into_owned();
    pending.drain(..whole);
    Cow::Owned(text)
}

/// `bytes` as text: borrowed when valid UTF-8 (`str::from_utf8` checks ASCII runs a word at a
/// time, several times faster than the lossy decoder), invalid bytes as U+FFFD otherwise.
fn decode(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// How many bytes at the end of `b` start a UTF-8 character that is not complete yet.
fn incomplete_tail(b: &[u8]) -> usize {
    for back in 1..=3.min(b.len()) {
        let byte = b[b.len() - back];
        if byte & 0b1100_0000 == 0b1000_0000 {
            continue; // a continuation byte: look further back
        }
        let need = match byte {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => return 0,
        };
        return if back < need { back } else { 0 };
    }
    0
}

fn hash_file(path: &Path) -> Result<(String, u64)> {
    let mut f = File::open(path).map_err(|e| RecordingError::io("reading", path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let k = f
            .read(&mut buf)
            .map_err(|e| RecordingError::io("reading", path, e))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

/// Reads a manifest.
pub fn read_manifest(path: &Path) -> Result<Manifest> {
    let text = std::fs::read(path).map_err(|e| RecordingError::io("reading", path, e))?;
    serde_json::from_slice(&text).map_err(|e| RecordingError::Malformed {
        path: path.display().to_string(),
        detail: format!("not a recording manifest: {e}"),
    })
}

/// Checks a recording against its manifest and the manifest's signature against
/// `trusted_public_key` (base64). Returns the manifest when everything holds.
pub fn verify(recording: &Path, trusted_public_key: &str) -> Result<Manifest> {
    let manifest = read_manifest(&manifest_path(recording))?;
    if manifest.public_key != trusted_public_key {
        return Err(RecordingError::Tampered(
            "the manifest is signed by another key than the one trusted".into(),
        ));
    }
    warrant_audit::signing::verify(
        trusted_public_key,
        &manifest.signature,
        &manifest.signed_bytes(),
    )
    .map_err(|e| {
        use warrant_audit::signing::SignatureError as E;
        RecordingError::Tampered(
            match e {
                E::MalformedKey(_) => "the trusted public key is not an ed25519 key",
                E::MalformedSignature => "the manifest's signature is malformed",
                E::Mismatch | E::Random(_) => {
                    "the manifest's signature does not verify: it was changed"
                }
            }
            .into(),
        )
    })?;
    let (sha256, bytes) = hash_file(recording)?;
    if sha256 != manifest.sha256 || bytes != manifest.bytes {
        return Err(RecordingError::Tampered(format!(
            "the recording was changed: its SHA-256 is {sha256} ({bytes} bytes), the signed manifest says {} ({} bytes)",
            manifest.sha256, manifest.bytes
        )));
    }
    Ok(manifest)
}

/// Replays a recording's output into `out` with its timing, `speed` times as fast, no pause
/// longer than `max_idle`.
pub fn play(recording: &Path, out: &mut dyn Write, speed: f64, max_idle: Duration) -> Result<()> {
    let f = File::open(recording).map_err(|e| RecordingError::io("reading", recording, e))?;
    let mut lines = BufReader::new(f).lines();
    let malformed = |detail: String| RecordingError::Malformed {
        path: recording.display().to_string(),
        detail,
    };
    let header = lines
        .next()
        .ok_or_else(|| malformed("empty".into()))?
        .map_err(|e| RecordingError::io("reading", recording, e))?;
    let header: Header =
        serde_json::from_str(&header).map_err(|e| malformed(format!("not asciicast v2: {e}")))?;
    if header.version != 2 {
        return Err(malformed(format!(
            "asciicast version {}, not 2",
            header.version
        )));
    }
    let speed = if speed > 0.0 { speed } else { 1.0 };
    let mut last = 0.0f64;
    for line in lines {
        let line = line.map_err(|e| RecordingError::io("reading", recording, e))?;
        let (t, code, data): (f64, String, String) = serde_json::from_str(&line)
            .map_err(|e| malformed(format!("bad event {line:?}: {e}")))?;
        let wait = Duration::from_secs_f64(((t - last).max(0.0)) / speed).min(max_idle);
        last = t;
        if code == "o" {
            std::thread::sleep(wait);
            out.write_all(data.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| RecordingError::io("writing", Path::new("output"), e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_split_of_any_text_decodes_to_the_text() {
        let text = "ascii, €uro, 日本語, 🦀 crab, é";
        let bytes = text.as_bytes();
        for a in 0..bytes.len() {
            for b in a..bytes.len() {
                let mut pending = Vec::new();
                let mut out = String::new();
                for chunk in [&bytes[..a], &bytes[a..b], &bytes[b..]] {
                    out.push_str(&take_utf8(&mut pending, chunk));
                }
                assert!(pending.is_empty(), "{a} {b}");
                assert_eq!(out, text, "{a} {b}");
            }
        }
    }

    #[test]
    fn split_characters_are_kept_whole() {
        let mut pending = Vec::new();
        let euro = "€".as_bytes(); // 3 bytes
        assert_eq!(take_utf8(&mut pending, &[b'a', euro[0]]), "a");
        assert_eq!(take_utf8(&mut pending, &euro[1..2]), "");
        assert_eq!(take_utf8(&mut pending, &[euro[2], b'b']), "€b");
        assert!(pending.is_empty());
        assert_eq!(take_utf8(&mut pending, &[0xff, b'c']), "\u{fffd}c");
    }

    #[test]
    fn incomplete_tails_are_measured() {
        assert_eq!(incomplete_tail(b"abc"), 0);
        assert_eq!(incomplete_tail(&[0xE2]), 1);
        assert_eq!(incomplete_tail(&[0xE2, 0x82]), 2);
        assert_eq!(incomplete_tail(&[0xE2, 0x82, 0xAC]), 0);
        assert_eq!(incomplete_tail(&[0xF0, 0x9F, 0x98]), 3);
    }
}
