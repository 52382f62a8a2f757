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
    /// The first event hashed with the key (HMAC), when the chain is keyed.
    pub keyed_from: Option<i64>,
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

pub(crate) fn put(h: &mut Vec<u8>, field: Option<&[u8]>) {
    match field {
        // `-` for absent, `len:bytes` otherwise: no two different rows encode the same.
        None => h.extend_from_slice(b"-;"),
        Some(bytes) => {
            h.extend_from_slice(bytes.len().to_string().as_bytes());
            h.extend_from_slice(b":");
            h.extend_from_slice(bytes);
            h.extend_from_slice(b";");
        }
    }
}

/// The canonical encoding a row's hash covers, under a scheme tag.
fn encode(tag: &[u8], prev_hash: &str, row: &HashInput<'_>) -> Vec<u8> {
    let mut h = Vec::with_capacity(256);
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
    put(&mut h, row.actor_role.map(str::as_bytes));
    put(&mut h, Some(row.source.as_bytes()));
    put(&mut h, Some(row.action.as_bytes()));
    put(&mut h, Some(row.entity_type.as_bytes()));
    put(&mut h, Some(row.entity_id.as_bytes()));
    put(&mut h, row.reason.map(str::as_bytes));
    put(&mut h, row.old_value.map(str::as_bytes));
    put(&mut h, row.new_value.map(str::as_bytes));
    h
}

/// The hash of a row given the hash of the row before it: scheme 1, SHA-256 (rows before the
/// chain was keyed).
pub fn chain_hash(prev_hash: &str, row: &HashInput<'_>) -> String {
    hex::encode(Sha256::digest(encode(b"aliquot-audit-v1", prev_hash, row)))
}

/// Scheme 2: HMAC-SHA256 under the chain key (rows from the key's `from` on).
pub fn chain_hash_keyed(key: &ChainKey, prev_hash: &str, row: &HashInput<'_>) -> String {
    hex::encode(hmac_sha256(
        &key.key,
        &encode(b"aliquot-audit-v2", prev_hash, row),
    ))
}

/// The hash of a row under the scheme its sequence number falls in.
pub fn row_hash(key: Option<&ChainKey>, prev_hash: &str, row: &HashInput<'_>) -> String {
    match key {
        Some(k) if row.seq >= k.from => chain_hash_keyed(k, prev_hash, row),
        _ => chain_hash(prev_hash, row),
    }
}

/// The head's MAC: binds the head's sequence number and hash to the key, so a head rewound
/// (with the newest rows deleted) by someone without the key is found.
pub fn head_mac(key: &ChainKey, seq: i64, hash: &str) -> String {
    let mut m = Vec::new();
    put(&mut m, Some(b"aliquot-audit-head-v2"));
    put(&mut m, Some(seq.to_string().as_bytes()));
    put(&mut m, Some(hash.as_bytes()));
    hex::encode(hmac_sha256(&key.key, &m))
}

/// HMAC-SHA256 (RFC 2104) for keys of at most one block.
pub(crate) fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    k[..key.len().min(64)].copy_from_slice(&key[..key.len().min(64)]);
    let (mut ipad, mut opad) = ([0x36u8; 64], [0x5cu8; 64]);
    for i in 0..64 {
        ipad[i] ^= k[i];
        opad[i] ^= k[i];
    }
    let inner = Sha256::new()
        .chain_update(ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize()
        .into()
}

/// The key of the audit chain (scheme 2), kept outside the database in a key file: without
/// it, a row cannot be altered and the later hashes recomputed. `from` is the first event
/// hashed with it (earlier rows keep scheme 1); it is in the key file, so a database writer
/// cannot move it.
#[derive(Clone, PartialEq, Eq)]
pub struct ChainKey {
    pub(crate) key: [u8; 32],
    /// The first 16 hex digits of SHA-256 over a tag, the key and `from`: names the key in
    /// the database (`audit_head.key_id`) without revealing it.
    pub id: String,
    pub from: i64,
    /// The first access-log row hashed with the key (`crate::access_chain`), written into
    /// the key file once, when the access log is first keyed: like `from`, out of a
    /// database writer's reach. `None` in a key file written before it was recorded (the
    /// next open records it).
    pub access_from: Option<i64>,
}

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainKey")
            .field("id", &self.id)
            .field("from", &self.from)
            .field("access_from", &self.access_from)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl ChainKey {
    pub fn new(key: [u8; 32], from: i64) -> ChainKey {
        let digest = Sha256::new()
            .chain_update(b"aliquot-audit-key-id")
            .chain_update(key)
            .chain_update(from.to_string())
            .finalize();
        let id = hex::encode(digest)[..16].to_owned();
        ChainKey {
            key,
            id,
            from,
            access_from: None,
        }
    }

    /// The key, keying the access log from row `access_from` on.
    pub fn with_access_from(self, access_from: i64) -> ChainKey {
        ChainKey {
            access_from: Some(access_from),
            ..self
        }
    }

    /// The key file's text.
    pub fn to_file_text(&self) -> String {
        format!(
            "# Aliquot audit chain key (HMAC-SHA256), for events {} onward.\n\
             # Keep it secret (mode 0600), beside the data directory, and a copy with the backups:\n\
             # without it the chain from event {} on cannot be verified.\n\
             key_id={}\nfrom={}\nkey={}\n{}",
            self.from,
            self.from,
            self.id,
            self.from,
            hex::encode(self.key),
            self.access_from
                .map(|a| format!(
                    "# The access log is keyed from its row {a} on.\naccess_from={a}\n"
                ))
                .unwrap_or_default()
        )
    }

    /// Reads a key file's text; the stated key id must be the key's.
    pub fn from_file_text(text: &str) -> Result<ChainKey, String> {
        let (mut key, mut from, mut id, mut access_from) = (None, None, None, None);
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once('=') {
                Some(("key", v)) => key = Some(v.trim().to_owned()),
                Some(("from", v)) => from = Some(v.trim().to_owned()),
                Some(("key_id", v)) => id = Some(v.trim().to_owned()),
                Some(("access_from", v)) => access_from = Some(v.trim().to_owned()),
                _ => return Err(format!("unexpected line {line:?}")),
            }
        }
        let key = key.ok_or("no key= line")?;
        let bytes: [u8; 32] = hex::decode(&key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("key= must be 64 hex digits")?;
        let from = from
            .ok_or("no from= line")?
            .parse::<i64>()
            .ok()
            .filter(|f| *f >= 1)
            .ok_or("from= must be a sequence number (1 or more)")?;
        let mut k = ChainKey::new(bytes, from);
        if id.is_some_and(|id| id != k.id) {
            return Err("key_id= does not match the key (the file was altered)".into());
        }
        if let Some(a) = access_from {
            let a = a
                .parse::<i64>()
                .ok()
                .filter(|a| *a >= 1)
                .ok_or("access_from= must be a row number (1 or more)")?;
            k = k.with_access_from(a);
        }
        Ok(k)
    }
}

/// The audit head as stored: the newest event, and the key the chain is keyed with from
/// which event (none for a chain not yet keyed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadInfo {
    pub seq: i64,
    pub hash: String,
    pub key_id: Option<String>,
    pub keyed_from: Option<i64>,
    /// [`head_mac`] of `seq` and `hash`, once the chain is keyed.
    pub mac: Option<String>,
}

/// An event and its hash kept outside the database (`aliquot audit anchor`), which the chain
/// must still contain exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub seq: i64,
    pub hash: String,
}

impl std::str::FromStr for Anchor {
    type Err = String;

    /// `SEQ:HASH`, as `aliquot audit anchor` prints it.
    fn from_str(s: &str) -> Result<Anchor, String> {
        let (seq, hash) = s
            .trim()
            .split_once(':')
            .ok_or("an anchor is SEQ:HASH, as `aliquot audit anchor` prints it")?;
        let seq = seq
            .parse::<i64>()
            .ok()
            .filter(|s| *s >= 1)
            .ok_or("the anchor's SEQ must be an event number (1 or more)")?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("the anchor's HASH must be 64 hex digits".into());
        }
        Ok(Anchor {
            seq,
            hash: hash.to_ascii_lowercase(),
        })
    }
}

impl std::fmt::Display for Anchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

/// Walks rows in sequence order and finds the first break. Pure and incremental, so a store
/// can feed it a page of rows at a time. Every row present is walked, also rows past the
/// head (an error: the head was rewound).
#[derive(Debug)]
pub struct ChainVerifier {
    prev: String,
    expected_seq: i64,
    count: i64,
    first_break: Option<ChainBreak>,
    key: Option<ChainKey>,
    anchor: Option<Anchor>,
    anchor_seen: bool,
    /// A problem of the head itself (its MAC); reported unless a row breaks earlier.
    head_problem: Option<ChainBreak>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            prev: GENESIS.to_owned(),
            expected_seq: 1,
            count: 0,
            first_break: None,
            key: None,
            anchor: None,
            anchor_seen: false,
            head_problem: None,
        }
    }
}

impl ChainVerifier {
    /// A verifier for a chain whose head is `head`, with the key file's key (if any) and an
    /// anchor to find. A chain keyed with another key than the file's, or keyed when no key
    /// is given, is broken at its first keyed event.
    pub fn new(key: Option<ChainKey>, head: &HeadInfo, anchor: Option<Anchor>) -> ChainVerifier {
        let mut v = ChainVerifier {
            anchor,
            ..ChainVerifier::default()
        };
        let problem = match (&key, &head.key_id) {
            (None, Some(id)) => Some((
                head.keyed_from.unwrap_or(1),
                format!(
                    "the chain is keyed (key {id}) from event {}: verify it with its audit key file",
                    head.keyed_from.unwrap_or(1)
                ),
            )),
            (Some(k), Some(id)) if *id != k.id || head.keyed_from != Some(k.from) => Some((
                k.from.min(head.keyed_from.unwrap_or(k.from)),
                format!(
                    "the audit head names key {id} from event {}, the key file holds key {} from \
                     event {} (another database's key file, or the head was altered)",
                    head.keyed_from.unwrap_or(0),
                    k.id,
                    k.from
                ),
            )),
            (Some(k), None) if head.seq >= k.from => Some((
                k.from,
                format!(
                    "the audit head names no key, yet the key file keys events from {} on \
                     (the head was altered)",
                    k.from
                ),
            )),
            _ => None,
        };
        if let Some((seq, problem)) = problem {
            v.first_break = Some(ChainBreak { seq, problem });
        }
        let head_problem = match (&key, &head.key_id) {
            (Some(k), Some(_)) if head.seq < k.from => Some((
                head.seq + 1,
                format!(
                    "the chain is keyed from event {} (the key file), but the head records only \
                     {}: keyed events were removed",
                    k.from, head.seq
                ),
            )),
            (Some(k), Some(_))
                if head.mac.as_deref() != Some(&head_mac(k, head.seq, &head.hash)) =>
            {
                Some((
                    head.seq,
                    "the audit head's MAC does not match its sequence number and hash (the head \
                     was altered or rewound)"
                        .to_owned(),
                ))
            }
            _ => None,
        };
        v.head_problem = head_problem.map(|(seq, problem)| ChainBreak { seq, problem });
        v.key = key;
        v
    }

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
        } else if row_hash(self.key.as_ref(), &self.prev, row) != hash {
            Some("row content does not match its hash (row altered)".to_owned())
        } else if let Some(a) = self.anchor.as_ref().filter(|a| a.seq == row.seq) {
            self.anchor_seen = true;
            (a.hash != hash).then(|| {
                format!(
                    "the anchor {a} is not in the chain: event {} now has hash {hash} \
                     (the chain was rewritten)",
                    a.seq
                )
            })
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
        let mut first_break = match (self.first_break, self.head_problem) {
            (Some(row), Some(head)) if head.seq < row.seq => Some(head),
            (None, head) => head,
            (row, _) => row,
        };
        let last = self.expected_seq - 1;
        if first_break.is_none() && last > head_seq {
            first_break = Some(ChainBreak {
                seq: head_seq + 1,
                problem: format!(
                    "{} rows past the head (the head records {head_seq}, the chain runs to \
                     {last}): the head was rewound",
                    last - head_seq
                ),
            });
        }
        if first_break.is_none() && (last != head_seq || self.prev != head_hash) {
            first_break = Some(ChainBreak {
                seq: self.expected_seq,
                problem: format!(
                    "chain ends at {last} but the head records {head_seq} (newest rows removed or head altered)"
                ),
            });
        }
        if first_break.is_none()
            && let Some(a) = self.anchor.as_ref().filter(|_| !self.anchor_seen)
        {
            first_break = Some(ChainBreak {
                seq: a.seq.min(last + 1),
                problem: format!(
                    "the chain has no event {} (the anchor {a}): rows were removed",
                    a.seq
                ),
            });
        }
        ChainReport {
            rows: self.count,
            head_seq,
            head_hash: head_hash.to_owned(),
            keyed_from: self.key.as_ref().map(|k| k.from),
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
    fn hmac_matches_rfc_4231() {
        // RFC 4231 test case 2.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    /// Rows 1–2 unkeyed, 3 on keyed (a database keyed after it had events).
    fn keyed_chain(
        key: &ChainKey,
        names: &[&'static str],
    ) -> Vec<(i64, &'static str, String, String)> {
        let mut prev = GENESIS.to_owned();
        let mut out = vec![];
        for (i, n) in names.iter().enumerate() {
            let seq = i as i64 + 1;
            let h = row_hash(Some(key), &prev, &row(seq, n));
            out.push((seq, *n, prev.clone(), h.clone()));
            prev = h;
        }
        out
    }

    fn verify_keyed(
        rows: &[(i64, &'static str, String, String)],
        key: Option<ChainKey>,
        head: &HeadInfo,
        anchor: Option<Anchor>,
    ) -> ChainReport {
        let mut v = ChainVerifier::new(key, head, anchor);
        for (s, n, p, h) in rows {
            v.push(&row(*s, n), p, h);
        }
        v.finish(head.seq, &head.hash)
    }

    fn head_of(rows: &[(i64, &'static str, String, String)], key: &ChainKey) -> HeadInfo {
        let last = rows.last().unwrap();
        HeadInfo {
            seq: last.0,
            hash: last.3.clone(),
            key_id: Some(key.id.clone()),
            keyed_from: Some(key.from),
            mac: Some(head_mac(key, last.0, &last.3)),
        }
    }

    #[test]
    fn a_keyed_chain_cannot_be_recomputed_without_the_key() {
        let key = ChainKey::new([7; 32], 3);
        let c = keyed_chain(&key, &["a", "b", "c", "d"]);
        let head = head_of(&c, &key);
        assert!(verify_keyed(&c, Some(key.clone()), &head, None).is_intact());
        // The unkeyed rows before `from` still verify as scheme 1.
        assert_eq!(c[1].3, chain_hash(&c[1].2, &row(2, "b")));
        // Edit row 3 and recompute every later hash without the key (scheme 1, or another key).
        for forged_key in [None, Some(ChainKey::new([8; 32], 3))] {
            let mut forged = c[..2].to_vec();
            let mut prev = forged[1].3.clone();
            for (seq, name) in [(3, "mallory"), (4, "d")] {
                let h = row_hash(forged_key.as_ref(), &prev, &row(seq, name));
                forged.push((seq, name, prev.clone(), h.clone()));
                prev = h;
            }
            let head = HeadInfo {
                mac: Some(head_mac(&key, 4, &prev)),
                hash: prev,
                ..head.clone()
            };
            let r = verify_keyed(&forged, Some(key.clone()), &head, None);
            assert_eq!(r.first_break.unwrap().seq, 3);
        }
        // Without the key file the keyed part cannot be verified: an error, never "intact".
        let r = verify_keyed(&c, None, &head, None);
        assert!(r.first_break.unwrap().problem.contains("key file"));
        // Another database's key file.
        let other = ChainKey::new([9; 32], 3);
        let r = verify_keyed(&c, Some(other), &head, None);
        assert!(
            r.first_break
                .unwrap()
                .problem
                .contains("key file holds key")
        );
    }

    #[test]
    fn rows_past_the_head_and_anchors() {
        let key = ChainKey::new([7; 32], 1);
        let c = keyed_chain(&key, &["a", "b", "c", "d"]);
        // The head rewound to 2 while rows 3 and 4 remain (with the MAC it had at 2).
        let rewound = HeadInfo {
            seq: 2,
            hash: c[1].3.clone(),
            mac: Some(head_mac(&key, 2, &c[1].3)),
            ..head_of(&c, &key)
        };
        // Rewound without the key: the MAC gives it away.
        let forged = HeadInfo {
            mac: Some(head_mac(&ChainKey::new([1; 32], 1), 2, &c[1].3)),
            ..rewound.clone()
        };
        let b = verify_keyed(&c[..2], Some(key.clone()), &forged, None)
            .first_break
            .unwrap();
        assert!(b.problem.contains("MAC"), "{}", b.problem);
        let b = verify_keyed(&c, Some(key.clone()), &rewound, None)
            .first_break
            .unwrap();
        assert_eq!(b.seq, 3);
        assert!(b.problem.contains("past the head"), "{}", b.problem);
        // The newest rows removed and the head rewound to match with a MAC it once had
        // (replayed): only an anchor taken earlier shows it.
        let anchor = Anchor {
            seq: 4,
            hash: c[3].3.clone(),
        };
        assert!(verify_keyed(&c[..2], Some(key.clone()), &rewound, None).is_intact());
        let b = verify_keyed(&c[..2], Some(key.clone()), &rewound, Some(anchor.clone()))
            .first_break
            .unwrap();
        assert!(b.problem.contains("has no event 4"), "{}", b.problem);
        let head = head_of(&c, &key);
        assert!(verify_keyed(&c, Some(key.clone()), &head, Some(anchor.clone())).is_intact());
        let wrong = Anchor {
            seq: 2,
            hash: c[3].3.clone(),
        };
        let b = verify_keyed(&c, Some(key), &head, Some(wrong))
            .first_break
            .unwrap();
        assert_eq!(b.seq, 2);
        assert_eq!(anchor.to_string().parse::<Anchor>().unwrap(), anchor);
        assert!("12".parse::<Anchor>().is_err());
        assert!("0:ab".parse::<Anchor>().is_err());
    }

    #[test]
    fn key_files_round_trip_and_refuse_alteration() {
        let key = ChainKey::new([42; 32], 17);
        let text = key.to_file_text();
        assert_eq!(ChainKey::from_file_text(&text).unwrap(), key);
        assert!(!format!("{key:?}").contains(&hex::encode([42u8; 32])));
        let moved = text.replace("from=17", "from=9000");
        assert!(
            ChainKey::from_file_text(&moved)
                .unwrap_err()
                .contains("altered")
        );
        assert!(ChainKey::from_file_text("key=00").is_err());
        // The access log's keyed start: absent in older files, then written once.
        assert_eq!(key.access_from, None);
        let with_access = key.clone().with_access_from(5);
        let text = with_access.to_file_text();
        assert!(text.contains("\naccess_from=5\n"), "{text}");
        assert_eq!(ChainKey::from_file_text(&text).unwrap(), with_access);
        assert_eq!(with_access.id, key.id);
        assert!(ChainKey::from_file_text(&text.replace("access_from=5", "access_from=0")).is_err());
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
