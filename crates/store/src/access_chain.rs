//! The access log's chain (issue 16 item 4, migration 0025): the access log — who read
//! which patient's data — is chained like the audit trail, so a row removed, altered or
//! reordered, or the newest rows cut off, is found by `aliquot audit verify`.
//!
//! Each row written since migration 0025 has its place `seq` (1, 2, 3, … without a gap), the
//! previous row's hash and its own: SHA-256 over a tag, the previous hash and a
//! length-prefixed encoding of every column (scheme 1, `aliquot-access-v1`), or, from
//! `access_head.keyed_from` on, HMAC-SHA256 under the audit chain's key (scheme 2,
//! `aliquot-access-v2`). A keyed store keys the access chain when it is opened, from the
//! next row on (`key_id`, `keyed_from` set once; a trigger keeps them), and writes that
//! start into the audit key file (`access_from=`), once: like the audit chain's `from`, it is
//! out of a database writer's reach, and `keyed_from` moved in the database (the trigger
//! dropped) is reported by the verifier. Appends and the verifier hash with the key file's
//! start. A key file from before this was recorded gets the database's start at the next
//! open. `access_head` holds the newest
//! row's place and hash and, once keyed, their MAC: a head rewound by someone without the key
//! does not match it. Appends take the `access_head` row lock (after `audit_head`'s, the
//! writer's one lock order) and are written with the transaction they belong to. Rows older
//! than migration 0025 have no place in the chain and are not covered.

use sha2::{Digest, Sha256};

use crate::audit::{ChainBreak, ChainKey, ChainReport, GENESIS, hmac_sha256, put};

/// The columns an access row's hash covers, as stored.
pub struct AccessHashInput<'a> {
    pub seq: i64,
    pub occurred_at_us: i64,
    pub actor_id: Option<i64>,
    pub actor_name: &'a str,
    pub source: &'a str,
    pub action: &'a str,
    pub entity_type: &'a str,
    pub entity_id: &'a str,
    /// The JSON text exactly as stored.
    pub patient_ids: &'a str,
}

fn encode(tag: &[u8], prev_hash: &str, row: &AccessHashInput<'_>) -> Vec<u8> {
    let mut h = Vec::with_capacity(192);
    put(&mut h, Some(tag));
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
    put(&mut h, Some(row.source.as_bytes()));
    put(&mut h, Some(row.action.as_bytes()));
    put(&mut h, Some(row.entity_type.as_bytes()));
    put(&mut h, Some(row.entity_id.as_bytes()));
    put(&mut h, Some(row.patient_ids.as_bytes()));
    h
}

/// The hash of an access row under the scheme its place falls in.
pub fn access_hash(
    key: Option<&ChainKey>,
    keyed_from: Option<i64>,
    prev_hash: &str,
    row: &AccessHashInput<'_>,
) -> String {
    match (key, keyed_from) {
        (Some(k), Some(from)) if row.seq >= from => hex::encode(hmac_sha256(
            &k.key,
            &encode(b"aliquot-access-v2", prev_hash, row),
        )),
        _ => hex::encode(Sha256::digest(encode(b"aliquot-access-v1", prev_hash, row))),
    }
}

/// The access head's MAC under the key.
pub fn access_head_mac(key: &ChainKey, seq: i64, hash: &str) -> String {
    let mut m = Vec::new();
    put(&mut m, Some(b"aliquot-access-head-v2"));
    put(&mut m, Some(seq.to_string().as_bytes()));
    put(&mut m, Some(hash.as_bytes()));
    hex::encode(hmac_sha256(&key.key, &m))
}

/// `access_head` as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessHead {
    pub seq: i64,
    pub hash: String,
    pub key_id: Option<String>,
    pub keyed_from: Option<i64>,
    pub mac: Option<String>,
}

/// Walks the chained access rows in `seq` order and finds the first break (pure and
/// incremental, fed a page at a time, like the audit chain's verifier).
#[derive(Debug)]
pub struct AccessChainVerifier {
    prev: String,
    expected_seq: i64,
    count: i64,
    first_break: Option<ChainBreak>,
    key: Option<ChainKey>,
    keyed_from: Option<i64>,
    head_problem: Option<ChainBreak>,
}

impl AccessChainVerifier {
    /// A verifier for the chain whose head is `head`, with the audit key file's key (if any).
    pub fn new(key: Option<ChainKey>, head: &AccessHead) -> AccessChainVerifier {
        let first_break = match (&key, &head.key_id) {
            (None, Some(id)) => Some(ChainBreak {
                seq: head.keyed_from.unwrap_or(1),
                problem: format!(
                    "the access log is keyed (key {id}) from row {}: verify it with its audit key file",
                    head.keyed_from.unwrap_or(1)
                ),
            }),
            (Some(k), Some(id)) if *id != k.id => Some(ChainBreak {
                seq: head.keyed_from.unwrap_or(1),
                problem: format!(
                    "the access head names key {id}, the key file holds key {} (another \
                     database's key file, or the head was altered)",
                    k.id
                ),
            }),
            // The key file states where the access log's keyed part starts; the database's
            // copy must agree (moved, it would pass keyed rows off as unkeyed or the reverse).
            (Some(k), _) if k.access_from.is_some() && head.keyed_from != k.access_from => {
                let from = k.access_from.unwrap_or(1);
                Some(ChainBreak {
                    seq: from.min(head.keyed_from.unwrap_or(from)),
                    problem: format!(
                        "the access head says the access log is keyed from row {}, the audit key \
                         file says from row {from} (keyed_from was moved in the database)",
                        head.keyed_from
                            .map(|f| f.to_string())
                            .unwrap_or_else(|| "none".to_owned())
                    ),
                })
            }
            _ => None,
        };
        let head_problem = match (&key, &head.key_id) {
            (Some(k), Some(_))
                if head.mac.as_deref() != Some(&access_head_mac(k, head.seq, &head.hash)) =>
            {
                Some(ChainBreak {
                    seq: head.seq,
                    problem: "the access head's MAC does not match its place and hash (the head \
                              was altered or rewound)"
                        .to_owned(),
                })
            }
            _ => None,
        };
        AccessChainVerifier {
            prev: GENESIS.to_owned(),
            expected_seq: 1,
            count: 0,
            first_break,
            keyed_from: key.as_ref().and_then(|k| k.access_from).or(head.keyed_from),
            key,
            head_problem,
        }
    }

    pub fn push(&mut self, row: &AccessHashInput<'_>, prev_hash: &str, hash: &str) {
        self.count += 1;
        if self.first_break.is_some() {
            return;
        }
        let expected = self.expected_seq;
        let problem = if row.seq != expected {
            Some(format!(
                "gap in the access log: expected row {expected}, found {} (rows removed)",
                row.seq
            ))
        } else if prev_hash != self.prev {
            Some("prev_hash does not match the previous access row's hash".to_owned())
        } else if access_hash(self.key.as_ref(), self.keyed_from, &self.prev, row) != hash {
            Some("access row content does not match its hash (row altered)".to_owned())
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

    pub fn finish(self, head: &AccessHead) -> ChainReport {
        let mut first_break = match (self.first_break, self.head_problem) {
            (Some(row), Some(h)) if h.seq < row.seq => Some(h),
            (None, h) => h,
            (row, _) => row,
        };
        let last = self.expected_seq - 1;
        if first_break.is_none() && last > head.seq {
            first_break = Some(ChainBreak {
                seq: head.seq + 1,
                problem: format!(
                    "{} access rows past the head (the head records {}, the chain runs to \
                     {last}): the head was rewound",
                    last - head.seq,
                    head.seq
                ),
            });
        }
        if first_break.is_none() && (last != head.seq || self.prev != head.hash) {
            first_break = Some(ChainBreak {
                seq: self.expected_seq,
                problem: format!(
                    "the access log ends at row {last} but its head records {} (newest rows \
                     removed or head altered)",
                    head.seq
                ),
            });
        }
        ChainReport {
            rows: self.count,
            head_seq: head.seq,
            head_hash: head.hash.clone(),
            keyed_from: self.keyed_from,
            first_break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, name: &str) -> AccessHashInput<'_> {
        AccessHashInput {
            seq,
            occurred_at_us: 1_700_000_000_000_000 + seq,
            actor_id: Some(2),
            actor_name: name,
            source: "api",
            action: "patient.read",
            entity_type: "patient",
            entity_id: "7",
            patient_ids: "[7]",
        }
    }

    /// (seq, actor name, prev_hash, hash) of a chain, keyed from `keyed_from` with `key`.
    fn chain(
        names: &[&'static str],
        key: Option<&ChainKey>,
        keyed_from: Option<i64>,
    ) -> Vec<(i64, &'static str, String, String)> {
        let mut prev = GENESIS.to_owned();
        names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let seq = i as i64 + 1;
                let h = access_hash(key, keyed_from, &prev, &row(seq, n));
                let out = (seq, *n, prev.clone(), h.clone());
                prev = h;
                out
            })
            .collect()
    }

    fn verify(
        rows: &[(i64, &'static str, String, String)],
        key: Option<ChainKey>,
        head: &AccessHead,
    ) -> ChainReport {
        let mut v = AccessChainVerifier::new(key, head);
        for (seq, name, prev, hash) in rows {
            v.push(&row(*seq, name), prev, hash);
        }
        v.finish(head)
    }

    fn head_of(
        rows: &[(i64, &'static str, String, String)],
        key: Option<&ChainKey>,
        keyed_from: Option<i64>,
    ) -> AccessHead {
        let (seq, hash) = rows
            .last()
            .map(|r| (r.0, r.3.clone()))
            .unwrap_or((0, GENESIS.to_owned()));
        AccessHead {
            seq,
            mac: key.map(|k| access_head_mac(k, seq, &hash)),
            hash,
            key_id: key.map(|k| k.id.clone()),
            keyed_from,
        }
    }

    #[test]
    fn every_kind_of_tampering_is_found_at_its_row() {
        let key = ChainKey::new([7; 32], 1);
        for (k, from) in [(None, None), (Some(&key), Some(3))] {
            let rows = chain(&["a", "b", "c", "d", "e"], k, from);
            let head = head_of(&rows, k, from);
            assert!(verify(&rows, k.cloned(), &head).is_intact());

            // Altered: row 3's actor.
            let mut altered = rows.clone();
            altered[2].1 = "mallory";
            assert_eq!(
                verify(&altered, k.cloned(), &head).first_break.unwrap().seq,
                3
            );
            // Removed: row 2.
            let mut removed = rows.clone();
            removed.remove(1);
            assert_eq!(
                verify(&removed, k.cloned(), &head).first_break.unwrap().seq,
                2
            );
            // Reordered.
            let mut swapped = rows.clone();
            swapped.swap(3, 4);
            assert_eq!(
                verify(&swapped, k.cloned(), &head).first_break.unwrap().seq,
                4
            );
            // Newest rows cut off, head left: found at the missing row.
            let cut = &rows[..3];
            assert_eq!(verify(cut, k.cloned(), &head).first_break.unwrap().seq, 4);
            // Rows past the head.
            let short_head = head_of(&rows[..3], k, from);
            let b = verify(&rows, k.cloned(), &short_head).first_break.unwrap();
            assert_eq!(b.seq, 4, "{b:?}");
        }
    }

    #[test]
    fn a_keyed_chain_cannot_be_rewritten_or_rewound_without_the_key() {
        let key = ChainKey::new([9; 32], 1);
        let rows = chain(&["a", "b", "c", "d"], Some(&key), Some(1));
        let head = head_of(&rows, Some(&key), Some(1));
        assert!(verify(&rows, Some(key.clone()), &head).is_intact());
        // Someone without the key cuts the newest rows and rewinds the head to match them
        // (with SHA-256, the only scheme they can compute): the head's MAC is wrong.
        let forged = AccessHead {
            seq: 2,
            hash: rows[1].3.clone(),
            mac: None,
            ..head.clone()
        };
        let b = verify(&rows[..2], Some(key.clone()), &forged)
            .first_break
            .unwrap();
        assert!(b.problem.contains("MAC"), "{b:?}");
        // Row 2 edited and the later hashes recomputed with SHA-256: found at row 2.
        let mut recomputed = rows.clone();
        recomputed[1].1 = "mallory";
        let mut prev = recomputed[0].3.clone();
        for r in recomputed.iter_mut().skip(1) {
            r.2 = prev.clone();
            r.3 = access_hash(None, None, &prev, &row(r.0, r.1));
            prev = r.3.clone();
        }
        assert_eq!(
            verify(&recomputed, Some(key.clone()), &head)
                .first_break
                .unwrap()
                .seq,
            2
        );
        // A keyed chain is not verified without its key, nor with another.
        assert!(!verify(&rows, None, &head).is_intact());
        let other = ChainKey::new([1; 32], 1);
        assert!(!verify(&rows, Some(other), &head).is_intact());
    }
}
