//! A JSON-lines file: each batch appended and synced (`fdatasync`) before it counts as
//! delivered; when the file passes `rotate_bytes` it becomes `FILE.1` (the older ones move up
//! to `FILE.<keep>`, the oldest is removed) and a new `FILE` starts. Files are created with
//! mode 0600.
//!
//! The writes are blocking file I/O, done on Tokio's blocking pool, so a slow disk holds up
//! this sink only.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Deserialize;
use warrant_audit::Record;

use crate::{Format, SinkError};

/// `file:` settings of a sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The file to append to.
    pub path: PathBuf,
    /// Rotate once the file is at least this big, e.g. `100MiB` (default 100 MiB).
    #[serde(default)]
    pub rotate_bytes: Option<u64>,
    /// How many rotated files to keep (default 10).
    #[serde(default)]
    pub keep: Option<u32>,
}

/// A file sink.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    rotate_bytes: u64,
    keep: u32,
    format: Format,
    file: Arc<Mutex<Option<File>>>,
}

impl FileSink {
    /// Checks the settings; the file is opened at the first delivery.
    pub fn new(config: FileConfig, format: Format) -> Result<Self, SinkError> {
        let parent = config
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !parent.is_dir() {
            return Err(SinkError::Config(format!(
                "file sink: the directory {} does not exist",
                parent.display()
            )));
        }
        let rotate_bytes = config.rotate_bytes.unwrap_or(100 << 20);
        if rotate_bytes < 4096 {
            return Err(SinkError::Config(
                "file sink: rotate_bytes must be at least 4096".to_owned(),
            ));
        }
        Ok(Self {
            path: config.path,
            rotate_bytes,
            keep: config.keep.unwrap_or(10).max(1),
            format,
            file: Arc::new(Mutex::new(None)),
        })
    }

    /// Appends the batch and syncs it; rotates first when the file is full.
    pub async fn deliver(&mut self, batch: &[Record]) -> Result<(), SinkError> {
        let mut lines = Vec::with_capacity(batch.len() * 1024);
        for r in batch {
            lines.extend_from_slice(self.format.encode(r).to_string().as_bytes());
            lines.push(b'\n');
        }
        let path = self.path.clone();
        let file = self.file.clone();
        let (rotate_bytes, keep) = (self.rotate_bytes, self.keep);
        tokio::task::spawn_blocking(move || {
            let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
            append(&mut file, &path, rotate_bytes, keep, &lines)
        })
        .await
        .map_err(|e| SinkError::Io(format!("file sink: {e}")))?
    }
}

fn append(
    file: &mut Option<File>,
    path: &Path,
    rotate_bytes: u64,
    keep: u32,
    lines: &[u8],
) -> Result<(), SinkError> {
    let io = |what: &str, p: &Path, e: std::io::Error| {
        SinkError::Io(format!("file sink: {what} {}: {e}", p.display()))
    };
    if file.is_none() {
        *file = Some(open(path).map_err(|e| io("opening", path, e))?);
    }
    let size = file
        .as_ref()
        .map(File::metadata)
        .transpose()
        .map_err(|e| io("reading", path, e))?
        .map_or(0, |m| m.len());
    if size > 0 && size + lines.len() as u64 > rotate_bytes {
        *file = None;
        rotate(path, keep).map_err(|e| io("rotating", path, e))?;
        *file = Some(open(path).map_err(|e| io("opening", path, e))?);
    }
    let Some(f) = file.as_mut() else {
        return Err(SinkError::Io("file sink: not open".to_owned()));
    };
    let written = f.write_all(lines).and_then(|()| f.sync_data());
    if let Err(e) = written {
        // Reopened at the next delivery; what this batch left half-written is written again
        // (at least once).
        *file = None;
        return Err(io("writing", path, e));
    }
    Ok(())
}

fn open(path: &Path) -> std::io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// `FILE.<keep-1>` → `FILE.<keep>` … `FILE` → `FILE.1`.
fn rotate(path: &Path, keep: u32) -> std::io::Result<()> {
    let numbered = |n: u32| {
        let mut p = path.as_os_str().to_owned();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    };
    let _ = std::fs::remove_file(numbered(keep));
    for n in (1..keep).rev() {
        let from = numbered(n);
        if from.exists() {
            std::fs::rename(&from, numbered(n + 1))?;
        }
    }
    std::fs::rename(path, numbered(1))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn record(seq: i64) -> Record {
        Record {
            seq,
            at_ms: 1_000 * seq,
            actor: None,
            kind: "test.event".into(),
            data: format!(
                "{{\"type\":\"test.event\",\"n\":{seq},\"pad\":\"{}\"}}",
                "x".repeat(200)
            ),
            prev_hash: "p".into(),
            hash: format!("h{seq}"),
        }
    }

    #[tokio::test]
    async fn batches_are_appended_in_order_and_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut sink = FileSink::new(
            FileConfig {
                path: path.clone(),
                rotate_bytes: Some(4096),
                keep: Some(2),
            },
            Format::Jsonl,
        )
        .unwrap();
        for start in (1..=60).step_by(6) {
            let batch: Vec<Record> = (start..start + 6).map(record).collect();
            sink.deliver(&batch).await.unwrap();
        }
        let seqs = |p: &Path| -> Vec<i64> {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                        .as_i64()
                        .unwrap()
                })
                .collect()
        };
        let newest = seqs(&path);
        let one = seqs(&dir.path().join("audit.jsonl.1"));
        let two = seqs(&dir.path().join("audit.jsonl.2"));
        assert!(!dir.path().join("audit.jsonl.3").exists(), "only 2 kept");
        // Consecutive across the files, oldest kept first, ending at 60.
        let all: Vec<i64> = two.iter().chain(&one).chain(&newest).copied().collect();
        let first = all[0];
        assert_eq!(all, (first..=60).collect::<Vec<_>>());
        assert!(std::fs::metadata(&path).unwrap().len() <= 4096);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_missing_directory_is_refused_at_start() {
        let e = FileSink::new(
            FileConfig {
                path: "/nonexistent-dir/audit.jsonl".into(),
                rotate_bytes: None,
                keep: None,
            },
            Format::Ocsf,
        )
        .unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
    }
}
