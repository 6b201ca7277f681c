//! The audit trail beyond appending: its signing key, signed checkpoints of the chain's head,
//! verification (chain, checkpoints, recorded head) and the signed export bundle.

use tokio::io::{AsyncWrite, AsyncWriteExt};

use warrant_audit::checkpoint::{AuditKey, Checkpoint, Seal, fingerprint};
use warrant_audit::{Event, Record, VerifyReport};
use warrant_core::SystemRole;
use warrant_store::{AuditQuery, Store};

use crate::error::{EngineError, Result};
use crate::{Actor, Engine, require_role};

/// The vault's associated data (and the store's name) for the audit key.
pub(crate) const AUDIT_KEY_AAD: &str = "audit-key";

/// Records read per batch when walking the chain.
const BATCH: i64 = 10_000;

/// What an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// The signed bundle: a header with the public key, the records as stored, the checkpoints
    /// among them, and a seal (`warrant audit verify --bundle`).
    Bundle,
    /// Warrant's own JSON lines, one record each.
    Jsonl,
    /// OCSF 1.5 JSON lines, one event each.
    Ocsf,
}

impl Engine {
    /// The key that signs checkpoints and export seals, made and sealed at first use.
    pub async fn audit_key(&self) -> Result<AuditKey> {
        let key_error = |e: warrant_audit::checkpoint::SignatureError| {
            EngineError::internal(format!("the audit key: {e}"))
        };
        let seed = self
            .own_key(
                AUDIT_KEY_AAD,
                || {
                    let key = AuditKey::generate().map_err(key_error)?;
                    Ok(crate::ownkeys::NewKey {
                        private: key.to_seed(),
                        public: key.public_base64(),
                    })
                },
                |public| Event::AuditKeyCreated {
                    public_key: public.to_owned(),
                },
            )
            .await?;
        AuditKey::from_seed(&seed).map_err(key_error)
    }

    /// Signs the chain's head and keeps the checkpoint, unless the last checkpoint already
    /// signs it (an idle server does not pile them up). None while the chain is empty.
    pub async fn audit_checkpoint(&self) -> Result<Option<Checkpoint>> {
        let key = self.audit_key().await?;
        let (head, last) = {
            let mut r = self.store().read().await?;
            (
                r.q().audit_head().await?,
                r.q().last_audit_checkpoint().await?,
            )
        };
        if head.0 == 0 {
            return Ok(None);
        }
        if let Some(last) = last
            && last.seq >= head.0
        {
            return Ok(Some(last));
        }
        let c = key.checkpoint(head.0, &head.1, self.now().millis());
        self.store().add_audit_checkpoint(&c).await?;
        Ok(Some(c))
    }

    /// Verification of the whole chain, its checkpoints and its recorded head.
    pub async fn audit_verify(&self) -> Result<VerifyReport> {
        Ok(verify_store(self.store()).await?)
    }

    /// Writes the records from `since_ms` on to `out` in `format`; a bundle ends with a fresh
    /// checkpoint's seal. Returns how many records were written. Auditors and admins only.
    pub async fn audit_export(
        &self,
        actor: &Actor,
        since_ms: i64,
        format: ExportFormat,
        out: &mut (dyn AsyncWrite + Unpin + Send),
    ) -> Result<u64> {
        require_role(actor, SystemRole::Auditor)?;
        let io = |e: std::io::Error| EngineError::internal(format!("writing the export: {e}"));
        let key = if format == ExportFormat::Bundle {
            Some(self.audit_key().await?)
        } else {
            None
        };
        // The piece ends at the head as it is now (later records wait for the next export).
        let (head, first, checkpoints) = {
            let mut r = self.store().read().await?;
            let head = r.q().audit_head().await?;
            let first = r.q().first_audit_seq_since(since_ms).await?;
            (head, first, r.q().audit_checkpoints().await?)
        };
        if let Some(key) = &key {
            let public = key.public_base64();
            let header = serde_json::json!({
                "type": "header",
                "format": "warrant-audit-bundle",
                "version": 1,
                "public_key": public,
                "key_fingerprint": fingerprint(&public),
                "since_ms": since_ms,
            });
            out.write_all(format!("{header}\n").as_bytes())
                .await
                .map_err(io)?;
        }
        let mut written = 0u64;
        let mut first_prev_hash = None;
        let mut last: Option<(i64, String)> = None;
        if let Some(first) = first.filter(|f| *f <= head.0) {
            let mut after = first - 1;
            'read: loop {
                let batch = {
                    let mut r = self.store().read().await?;
                    r.q()
                        .audit(&AuditQuery {
                            after_seq: after,
                            limit: BATCH,
                        })
                        .await?
                };
                if batch.is_empty() {
                    break;
                }
                let mut lines = String::new();
                for rec in &batch {
                    if rec.seq > head.0 {
                        out.write_all(lines.as_bytes()).await.map_err(io)?;
                        break 'read;
                    }
                    first_prev_hash.get_or_insert_with(|| rec.prev_hash.clone());
                    let line = match format {
                        ExportFormat::Bundle => bundle_record(rec),
                        ExportFormat::Jsonl => jsonl_record(rec),
                        ExportFormat::Ocsf => warrant_audit::ocsf::to_ocsf(rec),
                    };
                    lines.push_str(&line.to_string());
                    lines.push('\n');
                    written += 1;
                    after = rec.seq;
                    last = Some((rec.seq, rec.hash.clone()));
                }
                out.write_all(lines.as_bytes()).await.map_err(io)?;
            }
        }
        if let Some(key) = &key {
            let first_seq = first.filter(|f| *f <= head.0).unwrap_or(0);
            let last_seq = last.as_ref().map_or(0, |l| l.0);
            for c in checkpoints
                .iter()
                .filter(|c| written > 0 && c.seq >= first_seq && c.seq <= last_seq)
            {
                let mut v = serde_json::to_value(c).unwrap_or_default();
                v["type"] = "checkpoint".into();
                out.write_all(format!("{v}\n").as_bytes())
                    .await
                    .map_err(io)?;
            }
            let (last_seq, last_hash) = last.unwrap_or((0, String::new()));
            let seal = key.seal(Seal {
                since_ms,
                first_seq: if written > 0 { first_seq } else { 0 },
                first_prev_hash: first_prev_hash.unwrap_or_default(),
                last_seq,
                last_hash,
                records: written,
                at_ms: self.now().millis(),
                signature: String::new(),
            });
            let mut v = serde_json::to_value(&seal).unwrap_or_default();
            v["type"] = "seal".into();
            out.write_all(format!("{v}\n").as_bytes())
                .await
                .map_err(io)?;
        }
        out.flush().await.map_err(io)?;
        Ok(written)
    }
}

/// A record in a bundle: every stored field, `data` as the exact string that was hashed.
fn bundle_record(r: &Record) -> serde_json::Value {
    serde_json::json!({
        "type": "record",
        "seq": r.seq,
        "at_ms": r.at_ms,
        "actor": r.actor,
        "kind": r.kind,
        "data": r.data,
        "prev_hash": r.prev_hash,
        "hash": r.hash,
    })
}

/// A record as Warrant's own JSON line: the event as an object, the time readable too.
pub fn jsonl_record(r: &Record) -> serde_json::Value {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(r.at_ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    serde_json::json!({
        "seq": r.seq,
        "at": at,
        "at_ms": r.at_ms,
        "actor": r.actor,
        "kind": r.kind,
        "event": serde_json::from_str::<serde_json::Value>(&r.data).unwrap_or(serde_json::Value::String(r.data.clone())),
        "hash": r.hash,
        "prev_hash": r.prev_hash,
    })
}

/// Verifies the audit chain of a store, record by record, with its signed checkpoints, against
/// its recorded head. Needs no secret: the audit key's public half is stored in clear.
pub async fn verify_store(store: &Store) -> warrant_store::Result<VerifyReport> {
    let mut r = store.read().await?;
    let head = r.q().audit_head().await?;
    let checkpoints = r.q().audit_checkpoints().await?;
    let public = r
        .q()
        .sealed_key(AUDIT_KEY_AAD)
        .await?
        .map(|(_, public)| public);
    let mut v = warrant_audit::Verifier::new().with_checkpoints(checkpoints, public.as_deref());
    let mut after = 0;
    loop {
        let batch = r
            .q()
            .audit(&AuditQuery {
                after_seq: after,
                limit: BATCH,
            })
            .await?;
        let Some(last) = batch.last() else { break };
        after = last.seq;
        if !batch.iter().all(|rec| v.push(rec)) {
            break;
        }
    }
    Ok(v.finish(Some((head.0, &head.1))))
}
