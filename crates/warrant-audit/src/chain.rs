//! The hash chain.
//!
//! Each record's hash covers its predecessor's hash and every field of [`Record`], length-prefixed
//! so that no two different records hash the same input. (The store also keeps index columns
//! derived from `data` for search; they are not part of the chain and must be re-derived from
//! `data`, never trusted on their own.) Modifying, deleting or reordering any
//! record breaks the chain at that position.

use sha2::{Digest, Sha256};

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
    hex::encode(h.finalize())
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
}

/// Walks records in `seq` order, one at a time, and stops at the first break.
#[derive(Debug)]
pub struct Verifier {
    expected_seq: i64,
    prev_hash: String,
    records: u64,
    broken: Option<(i64, String)>,
}

impl Default for Verifier {
    fn default() -> Self {
        Self {
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_owned(),
            records: 0,
            broken: None,
        }
    }
}

impl Verifier {
    /// A verifier expecting the chain from its first record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next record. Returns false once the chain is broken.
    pub fn push(&mut self, r: &Record) -> bool {
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
        } else if record_hash(
            &r.prev_hash,
            r.seq,
            r.at_ms,
            r.actor.as_deref(),
            &r.kind,
            &r.data,
        ) != r.hash
        {
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
                self.expected_seq += 1;
                self.prev_hash.clone_from(&r.hash);
                true
            }
        }
    }

    /// The report so far; `stored_count`, when known, detects a missing tail against a head
    /// recorded elsewhere.
    pub fn finish(self, expected_head: Option<(i64, &str)>) -> VerifyReport {
        let mut broken = self.broken;
        if broken.is_none()
            && let Some((seq, hash)) = expected_head
            && (seq != self.expected_seq - 1 || hash != self.prev_hash)
        {
            broken = Some((
                self.expected_seq,
                format!(
                    "the chain ends at record {} but the recorded head is record {seq}: records were removed or added at the end",
                    self.expected_seq - 1
                ),
            ));
        }
        VerifyReport {
            intact: broken.is_none(),
            records: self.records,
            head: self.prev_hash,
            first_broken: broken.as_ref().map(|b| b.0),
            problem: broken.map(|b| b.1),
        }
    }
}

#[cfg(test)]
mod tests {
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
}
