//! A recording written, signed, verified, tampered with, replayed; a failing disk surfaced.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::time::Duration;

use warrant_recording::{
    Header, Recorder, RecordingError, RecordingKey, SessionFacts, manifest_path, play, verify,
};

fn header() -> Header {
    Header {
        version: 2,
        width: 80,
        height: 24,
        timestamp: 1_700_000_000,
        title: Some("alice on web-1 as root".into()),
        env: [("TERM".to_owned(), "xterm-256color".to_owned())].into(),
    }
}

fn facts() -> SessionFacts {
    SessionFacts {
        session_id: "s1".into(),
        identity: "alice".into(),
        target: "web-1".into(),
        account: "root".into(),
        grant_id: "g1".into(),
        started_at: 1_700_000_000,
        ended_at: 1_700_000_060,
        end_reason: "closed".into(),
    }
}

fn record(dir: &std::path::Path, key: &RecordingKey) -> std::path::PathBuf {
    let path = dir.join("s1.cast");
    let mut r = Recorder::create(&path, &header()).unwrap();
    r.output(b"$ ").unwrap();
    r.input(b"ls\r").unwrap();
    r.output("caf\u{e9} ".as_bytes()).unwrap();
    r.resize(100, 30).unwrap();
    r.marker("exec: uptime").unwrap();
    r.output(b"done\r\n").unwrap();
    r.finish(facts(), key).unwrap();
    path
}

#[test]
fn a_finished_recording_verifies_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let key = RecordingKey::generate().unwrap();
    let path = record(dir.path(), &key);
    let m = verify(&path, &key.public_base64()).unwrap();
    assert_eq!(m.session, facts());
    assert_eq!(m.write_errors, 0);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains(r#""version":2"#), "{}", lines[0]);
    assert_eq!(lines.len(), 7, "{text}");
    assert!(lines[3].contains(r#""o","café ""#), "{text}");
    assert!(lines[4].ends_with(r#""r","100x30"]"#), "{text}");

    let mut out = Vec::new();
    play(&path, &mut out, 100.0, Duration::from_millis(10)).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "$ café done\r\n");

    // The key round-trips through its seed.
    let again = RecordingKey::from_seed(&key.to_seed()).unwrap();
    assert_eq!(again.public_base64(), key.public_base64());
    assert!(!format!("{key:?}").contains(key.to_seed().expose().as_str()));
}

#[test]
fn any_change_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let key = RecordingKey::generate().unwrap();
    let path = record(dir.path(), &key);
    let original = std::fs::read(&path).unwrap();

    // One byte of the recording.
    let mut changed = original.clone();
    let at = changed.len() - 5;
    changed[at] ^= 0x20;
    std::fs::write(&path, &changed).unwrap();
    let e = verify(&path, &key.public_base64()).unwrap_err();
    assert!(matches!(e, RecordingError::Tampered(_)), "{e}");
    // Cut short.
    std::fs::write(&path, &original[..original.len() - 10]).unwrap();
    assert!(matches!(
        verify(&path, &key.public_base64()),
        Err(RecordingError::Tampered(_))
    ));
    std::fs::write(&path, &original).unwrap();
    verify(&path, &key.public_base64()).unwrap();

    // The manifest: its facts, then its hash to match a changed recording.
    let mpath = manifest_path(&path);
    let manifest = std::fs::read_to_string(&mpath).unwrap();
    std::fs::write(&mpath, manifest.replace("\"alice\"", "\"mallory\"")).unwrap();
    assert!(matches!(
        verify(&path, &key.public_base64()),
        Err(RecordingError::Tampered(_))
    ));
    std::fs::write(&mpath, &manifest).unwrap();

    // Another key's signature is not trusted.
    let other = RecordingKey::generate().unwrap();
    assert!(matches!(
        verify(&path, &other.public_base64()),
        Err(RecordingError::Tampered(_))
    ));
}

/// A writer that fails like a full disk after `ok` bytes.
struct FullDisk {
    ok: usize,
}

impl Write for FullDisk {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() > self.ok {
            return Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "No space left on device",
            ));
        }
        self.ok -= buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_full_disk_is_reported_on_every_write_and_counted() {
    let mut r = Recorder::with_writer(
        FullDisk { ok: 200 },
        std::path::Path::new("full.cast"),
        &header(),
    )
    .unwrap();
    r.output(b"fits").unwrap();
    let e = r.output(&[b'x'; 300]).unwrap_err();
    assert_eq!(e.code(), "recording_io");
    assert!(e.to_string().contains("No space left"), "{e}");
    assert!(r.output(&[b'y'; 300]).is_err());
    assert_eq!(r.write_errors(), 2);
}

#[test]
fn a_recording_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.cast");
    std::fs::write(&path, "x").unwrap();
    let e = Recorder::create(&path, &header()).err().unwrap();
    assert_eq!(e.code(), "recording_io");
}
