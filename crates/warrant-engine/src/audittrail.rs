//! The audit trail beyond appending: its signing key, signed checkpoints of the chain's head,
//! verification (chain, checkpoints, recorded head) and the signed export bundle.

use tokio::io::{AsyncWrite, AsyncWriteExt};

use warrant_audit::checkpoint::{AuditKey, Checkpoint, Seal, fingerprint};
use warrant_audit::{Event, Record, Verifier, VerifyReport};
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
        let key_error = |e: warrant_audit::signing::SignatureError| {
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
        // The public key stored in clear must be the sealed key's: a swapped one would let
        // forged checkpoints pass. (A store without the key has no checkpoint either; verifying
        // never makes one.)
        let stored = {
            let mut r = self.store().read().await?;
            r.q().sealed_key(AUDIT_KEY_AAD).await?.is_some()
        };
        let sealed = if stored {
            Some(fingerprint(&self.audit_key().await?.public_base64()))
        } else {
            None
        };
        let mut report = verify_store(self.store()).await?;
        if report.intact && report.key_fingerprint != sealed {
            report.intact = false;
            report.first_broken = Some(0);
            report.problem = Some(
                "the audit key's public half in the store is not the sealed key's: checkpoints cannot be trusted".to_owned(),
            );
        }
        Ok(report)
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
        // The piece ends at the head as it is now (later records wait for the next export).
        let (head, first) = {
            let mut r = self.store().read().await?;
            let head = r.q().audit_head().await?.0;
            (head, r.q().first_audit_seq_since(since_ms).await?)
        };
        self.write_piece(first, head, since_ms, format, out).await
    }

    /// Writes the records from `first` (None: none) up to `up_to` in `format`; a bundle has the
    /// checkpoints among them and ends with a seal. Returns how many records were written.
    ///
    /// Every record is verified as it is written — its hash, its link to the one before (from
    /// the record before `first`, or the anchor), the signed checkpoints among them — and the
    /// piece must reach `up_to`: at the first break the export stops with `audit_chain_broken`
    /// and no seal, so a broken piece is never signed (and the cut stream fails the command).
    async fn write_piece(
        &self,
        first: Option<i64>,
        up_to: i64,
        since_ms: i64,
        format: ExportFormat,
        out: &mut (dyn AsyncWrite + Unpin + Send),
    ) -> Result<u64> {
        let io = |e: std::io::Error| EngineError::internal(format!("writing the export: {e}"));
        let key = if format == ExportFormat::Bundle {
            Some(self.audit_key().await?)
        } else {
            None
        };
        let checkpoints = {
            let mut r = self.store().read().await?;
            r.q().audit_checkpoints().await?
        };
        let piece = first.filter(|f| *f <= up_to);
        let mut check = match piece {
            Some(f) => Some(
                self.export_verifier(f, up_to, &checkpoints, key.as_ref())
                    .await?,
            ),
            None => None,
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
        if let Some(first) = piece {
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
                    if rec.seq > up_to {
                        out.write_all(lines.as_bytes()).await.map_err(io)?;
                        break 'read;
                    }
                    if let Some(v) = check.as_mut()
                        && !v.push(rec)
                    {
                        // What verified goes out; the stream then ends without a seal.
                        out.write_all(lines.as_bytes()).await.map_err(io)?;
                        break 'read;
                    }
                    first_prev_hash.get_or_insert_with(|| rec.prev_hash.clone());
                    let line = match format {
                        ExportFormat::Bundle => bundle_record(rec),
                        ExportFormat::Jsonl => warrant_siem::jsonl(rec),
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
        if let Some(v) = check {
            piece_verified(v, last.as_ref().map(|l| l.0), up_to)?;
        }
        if let Some(key) = &key {
            let first_seq = piece.unwrap_or(0);
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

    /// The verifier of an export's piece from `first` to `up_to`: it starts after the anchor
    /// (signed) when the piece begins there, else after the stored record before `first`
    /// (whose own hash must hold), and checks the signed checkpoints within the piece against
    /// the audit key (`key`, or the public half stored in clear for the unsigned formats).
    async fn export_verifier(
        &self,
        first: i64,
        up_to: i64,
        checkpoints: &[Checkpoint],
        key: Option<&AuditKey>,
    ) -> Result<Verifier> {
        let mut r = self.store().read().await?;
        let public = match key {
            Some(k) => Some(k.public_base64()),
            None => r.q().sealed_key(AUDIT_KEY_AAD).await?.map(|(_, p)| p),
        };
        let mut signed: Vec<Checkpoint> = checkpoints
            .iter()
            .filter(|c| c.seq >= first && c.seq <= up_to)
            .cloned()
            .collect();
        let anchor = r.q().audit_anchor().await?;
        let v = match anchor {
            _ if first <= 1 => Verifier::new(),
            Some(a) if a.seq == first - 1 => {
                let v = Verifier::starting_at(first, &a.hash);
                signed.push(a);
                v
            }
            _ => {
                let before = r.q().audit_record(first - 1).await?;
                match before {
                    Some(b)
                        if warrant_audit::record_hash(
                            &b.prev_hash,
                            b.seq,
                            b.at_ms,
                            b.actor.as_deref(),
                            &b.kind,
                            &b.data,
                        ) == b.hash =>
                    {
                        Verifier::starting_at(first, &b.hash)
                    }
                    Some(_) => {
                        return Err(export_broken(
                            first - 1,
                            "its contents do not match its hash: the record was modified",
                        ));
                    }
                    None => {
                        return Err(export_broken(
                            first - 1,
                            "it is missing: records were deleted",
                        ));
                    }
                }
            }
        };
        Ok(v.with_checkpoints(signed, public.as_deref()))
    }
}

/// Ends an export's verification: the piece verified and reached `up_to` (`last`: the last
/// record written), or the export fails with where and why.
fn piece_verified(v: Verifier, last: Option<i64>, up_to: i64) -> Result<()> {
    let report = v.finish(None);
    if !report.intact {
        return Err(export_broken(
            report.first_broken.unwrap_or_default(),
            &report.problem.unwrap_or_default(),
        ));
    }
    match last {
        Some(last) if last == up_to => Ok(()),
        _ => Err(export_broken(
            last.map_or(up_to, |l| l + 1),
            &format!(
                "the chain ends at record {} before the head, record {up_to}: records were deleted",
                last.unwrap_or_default()
            ),
        )),
    }
}

/// The export's error at a break: no seal was written.
fn export_broken(seq: i64, problem: &str) -> EngineError {
    EngineError::conflict(
        "audit_chain_broken",
        format!(
            "the audit chain does not verify at record {seq} ({problem}): the export stopped there without a seal; run `warrant audit verify`"
        ),
    )
}

/// What a pruning did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PruneReport {
    /// Records pruned (0: nothing was old enough, or a sink still needs them).
    pub records: u64,
    /// The last record pruned: the chain's anchor now.
    pub up_to_seq: i64,
    /// The archive written before pruning, in the archive directory.
    pub archive: Option<String>,
    /// Why fewer records than asked were pruned, if so.
    pub held_back: Option<String>,
}

impl Engine {
    /// Retention: archives the records made before `before_ms` (a signed bundle in
    /// `archive_dir`, synced), then removes them in one audited transaction and anchors the
    /// chain at the last one (a signed checkpoint of it), so that what remains still verifies.
    /// Records a sink has not delivered yet are kept. Admins only (`None`: the server's own
    /// retention job).
    pub async fn audit_prune(
        &self,
        actor: Option<&Actor>,
        before_ms: i64,
        archive_dir: &std::path::Path,
    ) -> Result<PruneReport> {
        if let Some(a) = actor {
            require_role(a, SystemRole::Admin)?;
        }
        let _one_at_a_time = self.inner.sinks.prune.lock().await;
        let key = self.audit_key().await?;
        let sink_names = self.sink_names();
        let (anchor, wanted, head, cursors) = {
            let mut r = self.store().read().await?;
            let anchor = r.q().audit_anchor().await?;
            let wanted = r.q().last_audit_seq_before(before_ms).await?.unwrap_or(0);
            let head = r.q().audit_head().await?.0;
            let mut cursors = Vec::new();
            for name in &sink_names {
                cursors.push((name.clone(), r.q().sink_cursor(name).await?.unwrap_or(0)));
            }
            (anchor, wanted, head, cursors)
        };
        let start = anchor.as_ref().map_or(0, |a| a.seq);
        let mut up_to = wanted.min(head);
        let mut held_back = None;
        if let Some((name, cursor)) = cursors.iter().min_by_key(|(_, c)| *c)
            && *cursor < up_to
        {
            up_to = (*cursor).max(start);
            held_back = Some(format!(
                "the audit sink {name:?} has delivered only up to record {cursor}"
            ));
        }
        if up_to <= start {
            return Ok(PruneReport {
                records: 0,
                up_to_seq: start,
                archive: None,
                held_back,
            });
        }
        // The archive, complete and synced, before anything is removed. Writing it verifies
        // the piece (hashes, links, the signed checkpoints and the anchor it starts from):
        // pruning never hides a break.
        let name = format!("audit-{:010}-{:010}.bundle", start + 1, up_to);
        let archive_error = |e: std::io::Error| {
            EngineError::internal(format!("writing the audit archive {name}: {e}"))
        };
        tokio::fs::create_dir_all(archive_dir)
            .await
            .map_err(archive_error)?;
        let path = archive_dir.join(&name);
        let part = archive_dir.join(format!("{name}.part"));
        let mut file = tokio::fs::File::create(&part)
            .await
            .map_err(archive_error)?;
        let written = match self
            .write_piece(Some(start + 1), up_to, 0, ExportFormat::Bundle, &mut file)
            .await
        {
            Ok(n) => n,
            Err(e) => {
                drop(file);
                let _ = tokio::fs::remove_file(&part).await;
                return Err(if e.code == "audit_chain_broken" {
                    EngineError::conflict(
                        "audit_chain_broken",
                        format!(
                            "the records to prune do not verify: nothing was pruned ({})",
                            e.message
                        ),
                    )
                } else {
                    e
                });
            }
        };
        file.sync_all().await.map_err(archive_error)?;
        drop(file);
        tokio::fs::rename(&part, &path)
            .await
            .map_err(archive_error)?;
        if let Ok(dir) = tokio::fs::File::open(archive_dir).await {
            let _ = dir.sync_all().await;
        }
        // Hashed as it is read back (an archive can be large: never held in memory).
        let sha = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || -> std::io::Result<String> {
                use sha2::Digest;
                let mut hasher = sha2::Sha256::new();
                std::io::copy(&mut std::fs::File::open(&path)?, &mut hasher)?;
                Ok(hex::encode(hasher.finalize()))
            })
            .await
            .map_err(|e| EngineError::internal(format!("hashing the audit archive: {e}")))?
            .map_err(archive_error)?
        };

        let now = self.now();
        // The archive as written must verify, under this server's key, before anything goes.
        let public = key.public_base64();
        let archived = {
            let path = path.clone();
            let public = public.clone();
            tokio::task::spawn_blocking(move || {
                warrant_audit::bundle::verify_bundle(
                    || std::fs::File::open(&path).map(std::io::BufReader::new),
                    Some(&public),
                )
            })
            .await
            .map_err(|e| EngineError::internal(format!("checking the audit archive: {e}")))?
            .map_err(|e| EngineError::internal(format!("checking the audit archive {name}: {e}")))?
        };
        let expected = u64::try_from(up_to - start).unwrap_or(0);
        let last_hash = archived
            .seal
            .as_ref()
            .filter(|seal| seal.last_seq == up_to)
            .map(|seal| seal.last_hash.clone());
        let Some(last_hash) = last_hash.filter(|_| archived.chain.intact && written == expected)
        else {
            return Err(EngineError::internal(format!(
                "the audit archive {name} does not hold records {}–{up_to} whole ({written} written): nothing was pruned",
                start + 1
            )));
        };
        let new_anchor = key.checkpoint(up_to, &last_hash, now.millis());
        let mut tx = self.store().begin().await?;
        let removed = tx.w().await?.prune_audit(start, &new_anchor).await?;
        if removed != written {
            tx.rollback().await?;
            return Err(EngineError::internal(format!(
                "pruning would remove {removed} records but {written} were archived: nothing was pruned"
            )));
        }
        tx.audit(
            now,
            actor.map(|a| a.name.as_str()),
            &Event::AuditPruned {
                up_to_seq: up_to,
                records: removed,
                archive: name.clone(),
                archive_sha256: sha,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(PruneReport {
            records: removed,
            up_to_seq: up_to,
            archive: Some(name),
            held_back,
        })
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

/// Verifies the audit chain of a store, record by record, with its signed checkpoints, against
/// its recorded head. Needs no secret: the audit key's public half is stored in clear.
pub async fn verify_store(store: &Store) -> warrant_store::Result<VerifyReport> {
    let mut r = store.read().await?;
    let checkpoints = r.q().audit_checkpoints().await?;
    let public = r
        .q()
        .sealed_key(AUDIT_KEY_AAD)
        .await?
        .map(|(_, public)| public);
    // After pruning, the chain starts at its signed anchor, checked like a checkpoint.
    let anchor = r.q().audit_anchor().await?;
    let mut v = match &anchor {
        Some(a) => warrant_audit::Verifier::starting_at(a.seq + 1, &a.hash),
        None => warrant_audit::Verifier::new(),
    };
    let mut all = checkpoints;
    all.extend(anchor.clone());
    v = v.with_checkpoints(all, public.as_deref());
    let after = anchor.as_ref().map_or(0, |a| a.seq);
    // The head is read after the checkpoints, so that none of them lies beyond it on a live
    // server. On SQLite the native driver reads the head and the records in one snapshot, about
    // three times faster than pages through `Any` (`warrant_store::audit_read`).
    if let Some(path) = store.sqlite_path() {
        drop(r);
        return warrant_store::audit_read::verify_sqlite(path, after, v).await;
    }
    verify_pages(&mut r, after, v).await
}

/// The rest of [`verify_store`] through the store's own pages (PostgreSQL).
async fn verify_pages(
    r: &mut warrant_store::ReadTx,
    mut after: i64,
    mut v: warrant_audit::Verifier,
) -> warrant_store::Result<VerifyReport> {
    let head = r.q().audit_head().await?;
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
