//! The hash chain.
//!
//! Each record's hash covers its predecessor's hash and every field of [`Record`], length-prefixed
//! so that no two different records hash the same input. (The store also keeps index columns
//! derived from `data` for search; they are not part of the chain and must be re-derived from
//! `data`, never trusted on their own.) Modifying, deleting or reordering any
//! record breaks the chain at that position.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::checkpoint::{Checkpoint, fingerprint};

/// The `prev_hash` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One stored audit record, as the chain sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// When, in milliseconds since the epoch.
    pub at_ms: i64,
    /// Who caused it (an identity name), if anyone.
    pub actor: Option<String>,
    /// The event kind, e.g. `grant.revoked`.
    pub kind: String,
    /// The event's JSON, exactly as hashed and stored.
    pub data: String,
    /// The previous record's hash (hex).
    pub prev_hash: String,
    /// This record's hash (hex).
    pub hash: String,
}

/// The hash of a record with these fields after `prev_hash`.
pub fn record_hash(
    prev_hash: &str,
    seq: i64,
    at_ms: i64,
    actor: Option<&str>,
    kind: &str,
    data: &str,
) -> String {
    hex::encode(record_digest(prev_hash, seq, at_ms, actor, kind, data))
}

/// The SHA-256 behind [`record_hash`], before it is written as hex.
fn record_digest(
    prev_hash: &str,
    seq: i64,
    at_ms: i64,
    actor: Option<&str>,
    kind: &str,
    data: &str,
) -> [u8; 32] {
    let mut h = Sha256::new();
    let field = |h: &mut Sha256, b: &[u8]| {
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    };
    field(&mut h, prev_hash.as_bytes());
    h.update(seq.to_be_bytes());
    h.update(at_ms.to_be_bytes());
    match actor {
        Some(a) => {
            h.update([1]);
            field(&mut h, a.as_bytes());
        }
        None => h.update([0]),
    }
    field(&mut h, kind.as_bytes());
    field(&mut h, data.as_bytes());
    h.finalize().into()
}

/// Whether `r.hash` is [`record_hash`] of its fields: the same comparison of hex text, written
/// on the stack rather than in a new `String` (verification does this a million times).
fn hash_matches(r: &RecordRef<'_>) -> bool {
    let digest = record_digest(r.prev_hash, r.seq, r.at_ms, r.actor, r.kind, r.data);
    let mut hex = [0_u8; 64];
    hex::encode_to_slice(digest, &mut hex).is_ok() && hex.as_slice() == r.hash.as_bytes()
}

/// A [`Record`]'s fields borrowed from where they are stored (a database row), so that a
/// verifier can check them without copying: [`Verifier::push_ref`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Position in the chain.
    pub seq: i64,
    /// When, in milliseconds since the epoch.
    pub at_ms: i64,
    /// Who caused it, if anyone.
    pub actor: Option<&'a str>,
    /// The event kind.
    pub kind: &'a str,
    /// The event's JSON, exactly as stored.
    pub data: &'a str,
    /// The previous record's hash (hex), as stored.
    pub prev_hash: &'a str,
    /// This record's hash (hex), as stored.
    pub hash: &'a str,
}

impl<'a> From<&'a Record> for RecordRef<'a> {
    fn from(r: &'a Record) -> Self {
        Self {
            seq: r.seq,
            at_ms: r.at_ms,
            actor: r.actor.as_deref(),
            kind: &r.kind,
            data: &r.data,
            prev_hash: &r.prev_hash,
            hash: &r.hash,
        }
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VerifyReport {
    /// Whether every record checked out.
    pub intact: bool,
    /// How many records were read.
    pub records: u64,
    /// The hash of the last good record.
    pub head: String,
    /// The first position where the chain breaks.
    pub first_broken: Option<i64>,
    /// What is wrong there.
    pub problem: Option<String>,
    /// Signed checkpoints checked (signature, and the record they sign).
    #[serde(default)]
    pub checkpoints: u64,
    /// The position of the last checkpoint, if any.
    #[serde(default)]
    pub last_checkpoint: Option<i64>,
    /// The fingerprint of the audit key the checkpoints were checked against.
    #[serde(default)]
    pub key_fingerprint: Option<String>,
}

/// Walks records in `seq` order, one at a time, and stops at the first break; checks signed
/// checkpoints on the way ([`Verifier::with_checkpoints`]).
#[derive(Debug)]
pub struct Verifier {
    expected_seq: i64,
    prev_hash: String,
    records: u64,
    broken: Option<(i64, String)>,
    /// Checkpoints by position, not yet reached.
    checkpoints: BTreeMap<i64, Checkpoint>,
    checked: u64,
    last_checkpoint: Option<i64>,
    key_fingerprint: Option<String>,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::starting_at(1, GENESIS_HASH)
    }
}

impl Verifier {
    /// A verifier expecting the chain from its first record.
    pub fn new() -> Self {
        Self::default()
    }

    /// A verifier expecting a piece of the chain that starts at `seq`, after a record whose
    /// hash is `prev_hash` (an export bundle's).
    pub fn starting_at(seq: i64, prev_hash: &str) -> Self {
        Self {
            expected_seq: seq,
            prev_hash: prev_hash.to_owned(),
            records: 0,
            broken: None,
            checkpoints: BTreeMap::new(),
            checked: 0,
            last_checkpoint: None,
            key_fingerprint: None,
        }
    }

    /// Also checks `checkpoints` against `public_key` (base64): each one's signature now, the
    /// record it signs as the walk reaches it, and at the end that none lies beyond the chain's
    /// end (a tail cut off after a checkpoint). A checkpoint before the piece being verified
    /// is only checked for its signature. Without a public key, checkpoints cannot be trusted:
    /// any checkpoint then is a break.
    #[must_use]
    pub fn with_checkpoints(
        mut self,
        checkpoints: Vec<Checkpoint>,
        public_key: Option<&str>,
    ) -> Self {
        self.key_fingerprint = public_key.map(fingerprint);
        for c in checkpoints {
            if self.broken.is_some() {
                break;
            }
            let signed = match public_key {
                None => Err("there is no audit key to check it against".to_owned()),
                Some(k) => c.verify(k).map_err(|e| e.to_string()),
            };
            if let Err(e) = signed {
                self.broken = Some((
                    c.seq,
                    format!("the checkpoint at record {} is not valid: {e}", c.seq),
                ));
                break;
            }
            self.last_checkpoint = Some(self.last_checkpoint.map_or(c.seq, |l| l.max(c.seq)));
            if c.seq < self.expected_seq {
                self.checked += 1;
            } else {
                self.checkpoints.insert(c.seq, c);
            }
        }
        self
    }

    /// For a piece that holds no record: only the checkpoints' signatures are checked, and
    /// none may sign a record (there is none to match).
    #[must_use]
    pub fn expect_nothing(mut self) -> Self {
        if self.broken.is_none()
            && let Some(c) = self.checkpoints.values().next()
        {
            self.broken = Some((
                c.seq,
                format!("a checkpoint signs record {} but there is none", c.seq),
            ));
        }
        self.checkpoints.clear();
        self
    }

    /// Checks the next record. Returns false once the chain is broken.
    pub fn push(&mut self, r: &Record) -> bool {
        self.push_ref(r.into())
    }

    /// [`Verifier::push`] for a record whose fields are borrowed (read straight from a row).
    pub fn push_ref(&mut self, r: RecordRef<'_>) -> bool {
        if self.broken.is_some() {
            return false;
        }
        self.records += 1;
        let problem = if r.seq != self.expected_seq {
            Some(format!(
                "expected record {} but found {}: a record was deleted or reordered",
                self.expected_seq, r.seq
            ))
        } else if r.prev_hash != self.prev_hash {
            Some("its prev_hash does not match the previous record's hash".to_owned())
        } else if !hash_matches(&r) {
            Some("its contents do not match its hash: the record was modified".to_owned())
        } else {
            None
        };
        match problem {
            Some(p) => {
                self.broken = Some((self.expected_seq, p));
                false
            }
            None => {
                if let Some(c) = self.checkpoints.remove(&r.seq) {
                    if c.hash != r.hash {
                        self.broken = Some((
                            r.seq,
                            format!(
                                "record {} is not the one the checkpoint of {} signed: the chain was rewritten from here or before",
                                r.seq,
                                format_ms(c.at_ms)
                            ),
                        ));
                        return false;
                    }
                    self.checked += 1;
                }
                self.expected_seq = self.expected_seq.saturating_add(1);
                self.prev_hash.clear();
                self.prev_hash.push_str(r.hash);
                true
            }
        }
    }

    /// The report so far; `stored_count`, when known, detects a missing tail against a head
    /// recorded elsewhere.
    pub fn finish(self, expected_head: Option<(i64, &str)>) -> VerifyReport {
        let mut broken = self.broken;
        if broken.is_none()
            && let Some(c) = self.checkpoints.values().next()
        {
            broken = Some((
                self.expected_seq,
                format!(
                    "the chain ends at record {} but a checkpoint of {} signed record {}: records were cut off at the end",
                    self.expected_seq.saturating_sub(1),
                    format_ms(c.at_ms),
                    c.seq
                ),
            ));
        }
        if broken.is_none()
            && let Some((seq, hash)) = expected_head
            && (seq != self.expected_seq.saturating_sub(1) || hash != self.prev_hash)
        {
            broken = Some((
                self.expected_seq,
                format!(
                    "the chain ends at record {} but the recorded head is record {seq}: records were removed or added at the end",
                    self.expected_seq.saturating_sub(1)
                ),
            ));
        }
        VerifyReport {
            intact: broken.is_none(),
            records: self.records,
            head: self.prev_hash,
            first_broken: broken.as_ref().map(|b| b.0),
            problem: broken.map(|b| b.1),
            checkpoints: self.checked,
            last_checkpoint: self.last_checkpoint,
            key_fingerprint: self.key_fingerprint,
        }
    }
}

/// A time in ms since the epoch as RFC 3339, for messages.
fn format_ms(ms: i64) -> String {
    warrant_core::Timestamp::from_millis(ms).rfc3339()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn chain(n: i64) -> Vec<Record> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let data = format!("{{\"n\":{seq}}}");
                let hash = record_hash(&prev, seq, seq * 10, Some("alice"), "test.event", &data);
                let r = Record {
                    seq,
                    at_ms: seq * 10,
                    actor: Some("alice".into()),
                    kind: "test.event".into(),
                    data,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                r
            })
            .collect()
    }

    fn verify(records: &[Record]) -> VerifyReport {
        let mut v = Verifier::new();
        for r in records {
            v.push(r);
        }
        v.finish(None)
    }

    #[test]
    fn intact_chain_verifies() {
        let r = verify(&chain(5));
        assert!(r.intact);
        assert_eq!(r.records, 5);
    }

    #[test]
    fn modification_deletion_reorder_are_found() {
        let mut c = chain(5);
        c[2].data = "{\"n\":99}".into();
        assert_eq!(verify(&c).first_broken, Some(3));

        let mut c = chain(5);
        c.remove(1);
        assert_eq!(verify(&c).first_broken, Some(2));

        let mut c = chain(5);
        c.swap(1, 3);
        assert_eq!(verify(&c).first_broken, Some(2));

        // Renumbering after a deletion is caught by the prev_hash link.
        let mut c = chain(5);
        c.remove(1);
        for (i, r) in c.iter_mut().enumerate() {
            r.seq = i as i64 + 1;
        }
        assert_eq!(verify(&c).first_broken, Some(2));
    }

    #[test]
    fn a_stored_hash_must_be_the_exact_hex() {
        // The same hash in capitals is not the hash written: a modification.
        let mut c = chain(3);
        c[1].hash = c[1].hash.to_uppercase();
        let r = verify(&c);
        assert_eq!(r.first_broken, Some(2));
        assert!(r.problem.unwrap().contains("modified"));
        // Borrowed fields check exactly as the record does.
        let c = chain(3);
        let mut v = Verifier::new();
        assert!(c.iter().all(|r| v.push_ref(r.into())));
        assert_eq!(v.finish(Some((3, &c[2].hash))), verify(&c));
    }

    #[test]
    fn truncated_tail_is_found_against_the_head() {
        let c = chain(5);
        let head = (5, c[4].hash.clone());
        let mut v = Verifier::new();
        for r in &c[..3] {
            v.push(r);
        }
        let rep = v.finish(Some((head.0, &head.1)));
        assert!(!rep.intact);
        assert_eq!(rep.first_broken, Some(4));
    }

    fn verify_with(records: &[Record], checkpoints: Vec<Checkpoint>, key: &str) -> VerifyReport {
        let mut v = Verifier::new().with_checkpoints(checkpoints, Some(key));
        for r in records {
            v.push(r);
        }
        let head = records.last().map(|r| (r.seq, r.hash.clone()));
        v.finish(head.as_ref().map(|(s, h)| (*s, h.as_str())))
    }

    #[test]
    fn checkpoints_find_a_cut_tail_and_a_rewritten_chain() {
        let key = crate::checkpoint::AuditKey::generate().unwrap();
        let public = key.public_base64();
        let c = chain(10);
        let at4 = key.checkpoint(4, &c[3].hash, 1_000);
        let at8 = key.checkpoint(8, &c[7].hash, 2_000);

        let ok = verify_with(&c, vec![at4.clone(), at8.clone()], &public);
        assert!(ok.intact, "{ok:?}");
        assert_eq!((ok.checkpoints, ok.last_checkpoint), (2, Some(8)));
        assert!(ok.key_fingerprint.is_some());

        // The tail after the checkpoint cut off, and the recorded head moved back with it:
        // the hash chain alone cannot tell.
        let cut = verify_with(&c[..6], vec![at4.clone(), at8.clone()], &public);
        assert!(!cut.intact);
        assert_eq!(cut.first_broken, Some(7));
        assert!(cut.problem.unwrap().contains("cut off"));

        // Rewritten from record 3 on with every hash recomputed: links hold, checkpoint not.
        let mut rewritten = chain(10);
        rewritten[2].data = "{\"n\":99}".into();
        let mut prev = rewritten[1].hash.clone();
        for r in &mut rewritten[2..] {
            r.prev_hash.clone_from(&prev);
            r.hash = record_hash(&prev, r.seq, r.at_ms, r.actor.as_deref(), &r.kind, &r.data);
            prev.clone_from(&r.hash);
        }
        assert!(verify(&rewritten).intact, "the chain alone holds");
        let found = verify_with(&rewritten, vec![at4.clone(), at8.clone()], &public);
        assert_eq!(found.first_broken, Some(4));
        assert!(found.problem.unwrap().contains("rewritten"));

        // A checkpoint not signed by the key.
        let other = crate::checkpoint::AuditKey::generate().unwrap();
        let forged = other.checkpoint(8, &c[7].hash, 2_000);
        let bad = verify_with(&c, vec![at4, forged], &public);
        assert_eq!(bad.first_broken, Some(8));
        assert!(bad.problem.unwrap().contains("not valid"));

        // Without a key, a checkpoint cannot be trusted.
        let mut v = Verifier::new().with_checkpoints(vec![at8], None);
        for r in &c {
            v.push(r);
        }
        assert!(!v.finish(None).intact);
    }

    #[test]
    fn a_piece_of_the_chain_verifies_from_its_anchor() {
        let c = chain(10);
        let mut v = Verifier::starting_at(5, &c[3].hash);
        for r in &c[4..] {
            assert!(v.push(r));
        }
        let rep = v.finish(Some((10, &c[9].hash)));
        assert!(rep.intact, "{rep:?}");
        assert_eq!(rep.records, 6);
        // The wrong anchor is a break at the first record.
        let mut v = Verifier::starting_at(5, &c[2].hash);
        assert!(!v.push(&c[4]));
    }
}
