//! The audit trail: append-only, hash-chained.
//!
//! Each row's `hash` is SHA-256 over the previous row's hash and a canonical, length-prefixed
//! encoding of every column of the row, so changing any stored byte, removing a row or
//! reordering rows breaks the chain at that row. `audit_head` holds the last sequence number
//! and hash, so removing the newest rows is detected too. Appends take the `audit_head` row
//! lock (one `UPDATE … RETURNING`), which serialises chain appends across processes on
//! PostgreSQL and across connections on SQLite.

use jiff::Timestamp;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::redact::redacted_debug;

/// The hash a chain starts from.
pub const GENESIS: &str = "genesis";

/// An audit entry as a use case writes it: who, what, when, why, old and new values.
#[derive(Clone, PartialEq)]
pub struct AuditEntry {
    pub at: Timestamp,
    pub actor_id: Option<i64>,
    pub actor_name: String,
    pub actor_role: Option<String>,
    /// Where the change came from: `api`, `cli`, `hl7`, `astm`, `system`.
    pub source: String,
    /// What was done, as `entity.verb`, e.g. `user.create`.
    pub action: String,
    pub entity_type: String,
    pub entity_id: String,
    pub reason: Option<String>,
    pub old_value: Option<Value>,
    pub new_value: Option<Value>,
}

/// A stored audit row.
#[derive(Clone, PartialEq)]
pub struct AuditRecord {
    pub seq: i64,
    pub entry: AuditEntry,
    /// The JSON text exactly as stored (the hash covers these bytes).
    pub old_text: Option<String>,
    pub new_text: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

// The old and new values and the reason may hold patient data.
redacted_debug!(AuditEntry {
    shown: [
        at,
        actor_id,
        actor_name,
        actor_role,
        source,
        action,
        entity_type,
        entity_id
    ],
    redacted: [reason, old_value, new_value],
});
redacted_debug!(AuditRecord {
    shown: [seq, entry, prev_hash, hash],
    redacted: [old_text, new_text],
});

/// The first place where the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub seq: i64,
    pub problem: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub rows: i64,
    pub head_seq: i64,
    pub head_hash: String,
    pub first_break: Option<ChainBreak>,
}

impl ChainReport {
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// The columns a hash covers, as stored.
pub struct HashInput<'a> {
    pub seq: i64,
    pub occurred_at_us: i64,
    pub actor_id: Option<i64>,
    pub actor_name: &'a str,
    pub actor_role: Option<&'a str>,
    pub source: &'a str,
    pub action: &'a str,
    pub entity_type: &'a str,
    pub entity_id: &'a str,
    pub reason: Option<&'a str>,
    pub old_value: Option<&'a str>,
    pub new_value: Option<&'a str>,
}

fn put(h: &mut Sha256, field: Option<&[u8]>) {
    match field {
        // `-` for absent, `len:bytes` otherwise: no two different rows encode the same.
        None => h.update(b"-;"),
        Some(bytes) => {
            h.update(bytes.len().to_string().as_bytes());
            h.update(b":");
            h.update(bytes);
            h.update(b";");
        }
    }
}

/// The hash of a row given the hash of the row before it.
pub fn chain_hash(prev_hash: &str, row: &HashInput<'_>) -> String {
    let mut h = Sha256::new();
    put(&mut h, Some(b"aliquot-audit-v1"));
    put(&mut h, Some(prev_hash.as_bytes()));
    put(&mut h, Some(row.seq.to_string().as_bytes()));
    put(&mut h, Some(row.occurred_at_us.to_string().as_bytes()));
    put(
        &mut h,
        row.actor_id
            .map(|v| v.to_string())
            .as_deref()
            .map(str::as_bytes),
    );
    put(&mut h, Some(row.actor_name.as_bytes()));
    put(&mut h, row.actor_role.map(str::as_bytes));
    put(&mut h, Some(row.source.as_bytes()));
    put(&mut h, Some(row.action.as_bytes()));
    put(&mut h, Some(row.entity_type.as_bytes()));
    put(&mut h, Some(row.entity_id.as_bytes()));
    put(&mut h, row.reason.map(str::as_bytes));
    put(&mut h, row.old_value.map(str::as_bytes));
    put(&mut h, row.new_value.map(str::as_bytes));
    hex::encode(h.finalize())
}

/// Walks rows in sequence order and finds the first break. Pure and incremental, so a store
/// can feed it a page of rows at a time.
#[derive(Debug)]
pub struct ChainVerifier {
    prev: String,
    expected_seq: i64,
    count: i64,
    first_break: Option<ChainBreak>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            prev: GENESIS.to_owned(),
            expected_seq: 1,
            count: 0,
            first_break: None,
        }
    }
}

impl ChainVerifier {
    pub fn push(&mut self, row: &HashInput<'_>, prev_hash: &str, hash: &str) {
        self.count += 1;
        if self.first_break.is_some() {
            return;
        }
        let expected = self.expected_seq;
        let problem = if row.seq != expected {
            Some(format!(
                "sequence gap: expected {expected}, found {} (rows removed)",
                row.seq
            ))
        } else if prev_hash != self.prev {
            Some("prev_hash does not match the previous row's hash".to_owned())
        } else if chain_hash(&self.prev, row) != hash {
            Some("row content does not match its hash (row altered)".to_owned())
        } else {
            None
        };
        match problem {
            Some(problem) => {
                self.first_break = Some(ChainBreak {
                    seq: row.seq.min(expected),
                    problem,
                })
            }
            None => {
                self.prev = hash.to_owned();
                self.expected_seq += 1;
            }
        }
    }

    pub fn finish(self, head_seq: i64, head_hash: &str) -> ChainReport {
        let mut first_break = self.first_break;
        let last = self.expected_seq - 1;
        if first_break.is_none() && (last != head_seq || self.prev != head_hash) {
            first_break = Some(ChainBreak {
                seq: self.expected_seq,
                problem: format!(
                    "chain ends at {last} but the head records {head_seq} (newest rows removed or head altered)"
                ),
            });
        }
        ChainReport {
            rows: self.count,
            head_seq,
            head_hash: head_hash.to_owned(),
            first_break,
        }
    }
}

/// Verifies a whole chain held in memory.
pub fn verify_rows<'a>(
    rows: impl IntoIterator<Item = (HashInput<'a>, &'a str, &'a str)>,
    head_seq: i64,
    head_hash: &str,
) -> ChainReport {
    let mut v = ChainVerifier::default();
    for (row, prev_hash, hash) in rows {
        v.push(&row, prev_hash, hash);
    }
    v.finish(head_seq, head_hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, name: &str) -> HashInput<'_> {
        HashInput {
            seq,
            occurred_at_us: 1_700_000_000_000_000 + seq,
            actor_id: Some(1),
            actor_name: name,
            actor_role: Some("admin"),
            source: "api",
            action: "setting.put",
            entity_type: "setting",
            entity_id: "lab.name",
            reason: None,
            old_value: None,
            new_value: Some("\"x\""),
        }
    }

    fn chain(names: &[&'static str]) -> Vec<(i64, &'static str, String, String)> {
        let mut prev = GENESIS.to_owned();
        let mut out = vec![];
        for (i, n) in names.iter().enumerate() {
            let seq = i as i64 + 1;
            let h = chain_hash(&prev, &row(seq, n));
            out.push((seq, *n, prev.clone(), h.clone()));
            prev = h;
        }
        out
    }

    fn verify(rows: &[(i64, &'static str, String, String)], head: (i64, &str)) -> ChainReport {
        verify_rows(
            rows.iter()
                .map(|(s, n, p, h)| (row(*s, n), p.as_str(), h.as_str())),
            head.0,
            head.1,
        )
    }

    #[test]
    fn intact_chain_verifies() {
        let c = chain(&["a", "b", "c"]);
        let r = verify(&c, (3, &c[2].3));
        assert!(r.is_intact(), "{r:?}");
        assert_eq!(r.rows, 3);
    }

    #[test]
    fn altered_row_is_named() {
        let mut c = chain(&["a", "b", "c"]);
        c[1].1 = "mallory";
        let r = verify(&c, (3, &c[2].3.clone()));
        assert_eq!(r.first_break.unwrap().seq, 2);
    }

    #[test]
    fn removed_row_and_removed_tail_are_found() {
        let c = chain(&["a", "b", "c"]);
        let head = c[2].3.clone();
        let gap: Vec<_> = vec![c[0].clone(), c[2].clone()];
        assert_eq!(verify(&gap, (3, &head)).first_break.unwrap().seq, 2);
        let tail: Vec<_> = c[..2].to_vec();
        assert_eq!(verify(&tail, (3, &head)).first_break.unwrap().seq, 3);
    }

    #[test]
    fn encoding_is_unambiguous() {
        let mut a = row(1, "ab");
        a.actor_role = Some("c");
        let mut b = row(1, "a");
        b.actor_role = Some("bc");
        assert_ne!(chain_hash(GENESIS, &a), chain_hash(GENESIS, &b));
        let mut c = row(1, "a");
        c.reason = None;
        let mut d = row(1, "a");
        d.reason = Some("");
        assert_ne!(chain_hash(GENESIS, &c), chain_hash(GENESIS, &d));
    }
}
