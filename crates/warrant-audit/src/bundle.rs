//! Offline verification of an export bundle (`warrant audit export`, the default format): JSON
//! lines — a header with the audit key's public half, the records as stored, the checkpoints
//! among them, and a [`Seal`] signed by that key naming the piece of the chain the bundle
//! holds. Whoever holds the bundle can check, with nothing else, that no record in it was
//! changed, removed, added or reordered, and none cut off at either end; comparing the
//! header's key fingerprint with the one `warrant audit verify` shows on the server ties it to
//! that server.
//!
//! The bundle is read twice (the checkpoints and the seal come after the records), through a
//! reader the caller opens each time.

use std::io::BufRead;

use serde::Deserialize;

use crate::chain::{Record, Verifier, VerifyReport};
use crate::checkpoint::{Checkpoint, Seal, fingerprint};

/// Why a bundle could not be read at all (as opposed to read and found broken).
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Reading it failed.
    #[error("reading the bundle: {0}")]
    Io(#[from] std::io::Error),
    /// Not a bundle.
    #[error("not an audit bundle: {0}")]
    Malformed(String),
    /// Signed by another key than the one the auditor trusts.
    #[error("the bundle is signed by key {found}, not the trusted key {trusted}")]
    UntrustedKey {
        /// The bundle's key fingerprint.
        found: String,
        /// The trusted key's fingerprint.
        trusted: String,
    },
}

/// What a bundle holds and whether it verifies.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BundleReport {
    /// The chain's verification (records, checkpoints, the seal's ends).
    pub chain: VerifyReport,
    /// The seal, when the bundle has one.
    pub seal: Option<Seal>,
    /// The fingerprint of the key that signed it.
    pub key_fingerprint: String,
}

#[derive(Deserialize)]
struct Header {
    format: String,
    version: u32,
    public_key: String,
}

#[derive(Deserialize)]
struct Line {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct RecordLine {
    seq: i64,
    at_ms: i64,
    actor: Option<String>,
    kind: String,
    data: String,
    prev_hash: String,
    hash: String,
}

/// Verifies a bundle read through `open` (called twice), trusting only `trusted_key` (base64)
/// when given, else the key the bundle names (report its fingerprint to the person).
pub fn verify_bundle<R: BufRead>(
    open: impl Fn() -> std::io::Result<R>,
    trusted_key: Option<&str>,
) -> Result<BundleReport, BundleError> {
    // First pass: the header, the checkpoints, the seal.
    let mut public_key = None;
    let mut checkpoints = Vec::new();
    let mut seal: Option<Seal> = None;
    let mut after_seal = false;
    let mut records = 0u64;
    for (i, line) in open()?.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let malformed = |what: &str| BundleError::Malformed(format!("line {}: {what}", i + 1));
        let kind: Line = serde_json::from_str(&line).map_err(|e| malformed(&e.to_string()))?;
        if i == 0 {
            if kind.kind != "header" {
                return Err(malformed("the first line is not the bundle's header"));
            }
            let h: Header = serde_json::from_str(&line).map_err(|e| malformed(&e.to_string()))?;
            if h.format != "warrant-audit-bundle" || h.version != 1 {
                return Err(malformed(&format!(
                    "format {} version {} is not warrant-audit-bundle version 1",
                    h.format, h.version
                )));
            }
            public_key = Some(h.public_key);
            continue;
        }
        if seal.is_some() {
            after_seal = true;
        }
        match kind.kind.as_str() {
            "record" => records += 1,
            "checkpoint" => checkpoints.push(
                serde_json::from_str::<Checkpoint>(&line).map_err(|e| malformed(&e.to_string()))?,
            ),
            "seal" => {
                seal = Some(serde_json::from_str(&line).map_err(|e| malformed(&e.to_string()))?);
            }
            other => return Err(malformed(&format!("unknown line type {other:?}"))),
        }
    }
    let public_key =
        public_key.ok_or_else(|| BundleError::Malformed("the bundle is empty".to_owned()))?;
    let key_fingerprint = fingerprint(&public_key);
    if let Some(trusted) = trusted_key
        && trusted.trim() != public_key.trim()
    {
        return Err(BundleError::UntrustedKey {
            found: key_fingerprint,
            trusted: fingerprint(trusted),
        });
    }
    let broken = |at: i64, problem: String| VerifyReport {
        intact: false,
        records,
        head: String::new(),
        first_broken: Some(at),
        problem: Some(problem),
        checkpoints: 0,
        last_checkpoint: None,
        key_fingerprint: Some(key_fingerprint.clone()),
    };
    let Some(seal) = seal else {
        return Ok(BundleReport {
            chain: broken(
                0,
                "the bundle has no seal: it was cut off, or not made by `warrant audit export`"
                    .to_owned(),
            ),
            seal: None,
            key_fingerprint,
        });
    };
    let problem = if let Err(e) = seal.verify(&public_key) {
        Some(format!("the seal is not valid: {e}"))
    } else if seal.records > 0 && (seal.first_seq < 1 || seal.last_seq < seal.first_seq) {
        Some("the seal names no valid piece of a chain".to_owned())
    } else if after_seal {
        Some("lines were added after the seal".to_owned())
    } else if seal.records != records {
        Some(format!(
            "the seal counts {} records but the bundle holds {records}: records were removed or added",
            seal.records
        ))
    } else {
        None
    };
    if let Some(problem) = problem {
        return Ok(BundleReport {
            chain: broken(seal.first_seq, problem),
            seal: Some(seal),
            key_fingerprint,
        });
    }
    if seal.records == 0 {
        let mut chain = Verifier::new().with_checkpoints(checkpoints, Some(&public_key));
        chain = chain.expect_nothing();
        return Ok(BundleReport {
            chain: chain.finish(None),
            seal: Some(seal),
            key_fingerprint,
        });
    }

    // Second pass: the records, from the seal's anchor to its end.
    let mut v = Verifier::starting_at(seal.first_seq, &seal.first_prev_hash)
        .with_checkpoints(checkpoints, Some(&public_key));
    for (i, line) in open()?.lines().enumerate() {
        let line = line?;
        if i == 0 || line.trim().is_empty() {
            continue;
        }
        let kind: Line = serde_json::from_str(&line)
            .map_err(|e| BundleError::Malformed(format!("line {}: {e}", i + 1)))?;
        if kind.kind != "record" {
            continue;
        }
        let r: RecordLine = serde_json::from_str(&line)
            .map_err(|e| BundleError::Malformed(format!("line {}: {e}", i + 1)))?;
        let record = Record {
            seq: r.seq,
            at_ms: r.at_ms,
            actor: r.actor,
            kind: r.kind,
            data: r.data,
            prev_hash: r.prev_hash,
            hash: r.hash,
        };
        if !v.push(&record) {
            break;
        }
    }
    Ok(BundleReport {
        chain: v.finish(Some((seal.last_seq, &seal.last_hash))),
        seal: Some(seal),
        key_fingerprint,
    })
}
