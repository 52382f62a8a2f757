//! Property tests: frames, link sessions end to end (with line noise), records.

mod common;
use aliquot_astm::records::{Delimiters, OwnedRecord};
use aliquot_astm::{FrameEnd, Link, LinkConfig, Output, encode_frame, parse_frame, parse_records};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn frame_roundtrip(n in 0u8..8, text in "[ -~\r]{0,240}", last in any::<bool>()) {
        let end = if last { FrameEnd::Last } else { FrameEnd::Intermediate };
        let mut f = Vec::new();
        encode_frame(n, text.as_bytes(), end, &mut f);
        let p = parse_frame(&f).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!((p.number, p.text, p.end), (n, text.as_bytes(), end));
        // any single corrupted text byte is caught
        if !text.is_empty() {
            let mut g = f.clone();
            g[2] ^= 0x01;
            prop_assert!(parse_frame(&g).is_err());
        }
    }

    /// An instrument and a LIS exchange messages over a line that corrupts
    /// some frames; every message arrives exactly once and intact.
    #[test]
    fn session_delivers_exactly_once(
        msgs in prop::collection::vec(prop::collection::vec("[A-Z][|][ -~]{0,300}", 1..6), 1..4),
        noise in prop::collection::vec(any::<bool>(), 64),
    ) {
        let mut inst = Link::new(LinkConfig::instrument());
        // Records are random (an "L|" record may sit mid-message): deliver
        // whole sessions at EOT, acknowledging at once.
        let mut lis = Link::new(LinkConfig { auto_ack: true, ..LinkConfig::lis() });
        let mut sent = Vec::new();
        for m in &msgs {
            let body: String = m.iter().map(|r| format!("{r}\r")).collect();
            sent.push(body.clone().into_bytes());
            inst.send(body.into_bytes(), 0).expect("send");
        }
        let mut got = Vec::new();
        let mut k = 0usize;
        let mut now = 0u64;
        for _ in 0..20_000 {
            let mut moved = false;
            while let Some(o) = inst.poll() {
                if let Output::Write(mut b) = o {
                    moved = true;
                    // Corrupt the checksum of some frames: the receiver must NAK them.
                    // (Noise that forges an EOT inside a frame legitimately ends
                    // the session early; that case is covered by the fuzz target.)
                    if b.len() > 8 && noise[k % noise.len()] && k.is_multiple_of(3) {
                        let i = b.len() - 3;
                        b[i] = if b[i] == b'0' { b'1' } else { b'0' };
                    }
                    k += 1;
                    lis.receive(&b, now);
                }
            }
            while let Some(o) = lis.poll() {
                match o {
                    Output::Write(b) => { moved = true; inst.receive(&b, now); }
                    Output::Message(m) => got.push(m),
                    Output::HeldMessage { .. } => prop_assert!(false, "auto_ack holds nothing"),
                    Output::Event(_) => {}
                }
            }
            if !moved {
                if inst.queued() == 0 { break; }
                now += 1_000;
                inst.tick(now);
                lis.tick(now);
            }
        }
        // A frame corrupted 6 times in a row aborts its message; with this
        // noise pattern (at most every third write) that cannot happen.
        prop_assert_eq!(got, sent);
    }

    #[test]
    fn record_roundtrip(fields in prop::collection::vec(prop::collection::vec(prop::collection::vec("[ -~]{0,6}", 1..3), 1..3), 1..10)) {
        let d = Delimiters::default();
        let mut all = vec![vec![vec!["M".to_string()]]];
        all.extend(fields);
        let rec = OwnedRecord { fields: all };
        let mut input = b"H|\\^&\r".to_vec();
        input.extend(rec.encode(&d));
        let parsed = parse_records(&input);
        prop_assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        let back = OwnedRecord::from_record(&parsed.records[1]);
        prop_assert_eq!(back, rec);
    }
}

/// One LIS/instrument run under a random schedule; see
/// `held_ack_follows_commit_under_random_interleavings`.
fn held_ack_run(pads: &[usize], actions: &[(u8, u16)]) -> Result<(), TestCaseError> {
    use aliquot_astm::frame::{ACK, ENQ, EOT, STX};
    use aliquot_astm::{AckToken, LinkEvent};
    use std::collections::{HashSet, VecDeque};

    // Records longer than 8 bytes go out in ETB frames; "L|1|N\r" is one frame.
    let mut inst = Link::new(LinkConfig {
        max_frame_text: 8,
        ..LinkConfig::instrument()
    });
    let mut lis = Link::new(LinkConfig::lis());
    let msgs: Vec<Vec<u8>> = pads
        .iter()
        .enumerate()
        .map(|(i, &pad)| {
            format!("H|\\^&|||INST{i}\rR|1|^^^T{i}|{}\rL|1|N\r", "7".repeat(pad)).into_bytes()
        })
        .collect();
    let mut ids = Vec::new();
    for m in &msgs {
        ids.push(
            inst.send(m.clone(), 0)
                .map_err(|e| TestCaseError::fail(e.to_string()))?,
        );
    }

    struct World {
        now: u64,
        to_lis: VecDeque<(Vec<u8>, usize)>,
        to_inst: VecDeque<Vec<u8>>,
        finished: usize,
        completed: HashSet<u64>,
        last_frame_in: Option<(Vec<u8>, usize)>,
        pending: VecDeque<AckToken>,
        token_msg: Vec<(AckToken, Vec<u8>)>,
        committed: HashSet<Vec<u8>>,
    }
    let mut w = World {
        now: 0,
        to_lis: VecDeque::new(),
        to_inst: VecDeque::new(),
        finished: 0,
        completed: HashSet::new(),
        last_frame_in: None,
        pending: VecDeque::new(),
        token_msg: Vec::new(),
        committed: HashSet::new(),
    };
    fn is_final(f: &[u8]) -> bool {
        parse_frame(f).is_ok_and(|p| p.end == FrameEnd::Last && p.text.starts_with(b"L|"))
    }
    fn pump_inst(inst: &mut Link, w: &mut World) {
        while let Some(o) = inst.poll() {
            match o {
                Output::Write(b) => w.to_lis.push_back((b, w.finished)),
                Output::Event(LinkEvent::SendComplete { id }) => {
                    w.completed.insert(id);
                    w.finished += 1;
                }
                Output::Event(LinkEvent::SendFailed { .. }) => w.finished += 1,
                _ => {}
            }
        }
    }
    fn pump_lis(lis: &mut Link, w: &mut World, msgs: &[Vec<u8>]) -> Result<(), TestCaseError> {
        while let Some(o) = lis.poll() {
            match o {
                Output::Write(b) => lis_wrote(w, b, msgs)?,
                Output::HeldMessage { token, message } => {
                    prop_assert!(
                        !w.committed.contains(&message),
                        "message delivered again after a successful commit"
                    );
                    w.pending.push_back(token);
                    w.token_msg.push((token, message));
                }
                Output::Message(m) => {
                    prop_assert!(
                        !w.committed.contains(&m),
                        "committed message delivered again"
                    );
                }
                Output::Event(_) => {}
            }
        }
        Ok(())
    }
    /// Every ACK (or EOT-as-ACK) of a final frame follows the commit of its
    /// message.
    fn lis_wrote(w: &mut World, b: Vec<u8>, msgs: &[Vec<u8>]) -> Result<(), TestCaseError> {
        if (b == [ACK] || b == [EOT])
            && let Some((f, i)) = &w.last_frame_in
            && is_final(f)
        {
            prop_assert!(
                w.committed.contains(&msgs[*i]),
                "final frame of message {} acknowledged before its commit",
                i
            );
        }
        w.to_inst.push_back(b);
        Ok(())
    }
    fn deliver_to_lis(lis: &mut Link, w: &mut World, corrupt: bool) {
        if let Some((mut b, i)) = w.to_lis.pop_front() {
            if b == [ENQ] {
                w.last_frame_in = None;
            }
            if b.first() == Some(&STX) {
                if corrupt {
                    let k = b.len() - 3;
                    b[k] = if b[k] == b'0' { b'1' } else { b'0' };
                }
                w.last_frame_in = Some((b.clone(), i));
            }
            lis.receive(&b, w.now);
        }
    }
    fn answer(
        lis: &mut Link,
        w: &mut World,
        accept: bool,
        msgs: &[Vec<u8>],
    ) -> Result<(), TestCaseError> {
        let Some(t) = w.pending.pop_front() else {
            return Ok(());
        };
        let r = if accept {
            lis.commit(t, w.now)
        } else {
            lis.refuse(t, w.now)
        };
        if r.is_ok() && accept {
            let m = w
                .token_msg
                .iter()
                .find(|(k, _)| *k == t)
                .map(|(_, m)| m.clone())
                .unwrap_or_default();
            prop_assert!(w.committed.insert(m), "one message committed twice");
        }
        let first = lis.poll();
        match (&r, &first) {
            (Ok(()), Some(Output::Write(b))) if b.len() == 1 => {}
            (Err(_), None) => {}
            (Err(aliquot_astm::AckError::Expired), Some(Output::Write(b)))
                if *b == [aliquot_astm::frame::NAK] => {}
            _ => prop_assert!(false, "answer {:?} gave {:?}", r, first),
        }
        if let Some(Output::Write(b)) = first {
            lis_wrote(w, b, msgs)?;
        }
        pump_lis(lis, w, msgs)
    }

    pump_inst(&mut inst, &mut w);
    for &(a, dt) in actions {
        match a % 20 {
            0..=6 => deliver_to_lis(&mut lis, &mut w, false),
            7..=12 => {
                if let Some(b) = w.to_inst.pop_front() {
                    inst.receive(&b, w.now);
                }
            }
            13 => {
                w.to_lis.pop_front();
            }
            14 => {
                w.to_inst.pop_front();
            }
            15 => deliver_to_lis(&mut lis, &mut w, true),
            16 => answer(&mut lis, &mut w, true, &msgs)?,
            17 => answer(&mut lis, &mut w, false, &msgs)?,
            _ => {
                if a % 20 == 18 {
                    // Line noise in place of our reply.
                    if let Some(b) = w.to_inst.front_mut() {
                        *b = vec![b'?'];
                    }
                } else {
                    // Bytes do not linger on a line for seconds: what is in
                    // flight when the clock jumps is lost. (A reply delayed past
                    // the sender's timeout would be taken as the reply to a
                    // later frame: E1381 replies carry no frame number.)
                    w.to_lis.clear();
                    w.to_inst.clear();
                    w.now += u64::from(dt) * 10;
                    inst.tick(w.now);
                    lis.tick(w.now);
                }
            }
        }
        pump_inst(&mut inst, &mut w);
        pump_lis(&mut lis, &mut w, &msgs)?;
    }
    // Then a clean line and a prompt application until everything settles.
    for _ in 0..100_000 {
        let moved = !w.to_lis.is_empty() || !w.to_inst.is_empty() || !w.pending.is_empty();
        while !w.to_lis.is_empty() || !w.to_inst.is_empty() {
            deliver_to_lis(&mut lis, &mut w, false);
            if let Some(b) = w.to_inst.pop_front() {
                inst.receive(&b, w.now);
            }
            pump_inst(&mut inst, &mut w);
            pump_lis(&mut lis, &mut w, &msgs)?;
        }
        while !w.pending.is_empty() {
            answer(&mut lis, &mut w, true, &msgs)?;
        }
        pump_inst(&mut inst, &mut w);
        if !moved {
            if inst.queued() == 0 && inst.is_neutral() && lis.is_neutral() {
                break;
            }
            w.now += 1_000;
            inst.tick(w.now);
            lis.tick(w.now);
            pump_inst(&mut inst, &mut w);
            pump_lis(&mut lis, &mut w, &msgs)?;
        }
    }
    prop_assert_eq!(inst.queued(), 0, "instrument never finished");
    prop_assert_eq!(w.finished, msgs.len());
    for (id, m) in ids.iter().zip(&msgs) {
        if w.completed.contains(id) {
            prop_assert!(
                w.committed.contains(m),
                "sender saw its message acknowledged without a commit"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Instrument → LIS with the LIS holding final-frame ACKs, under random
    /// interleavings of delivery, loss, corruption, line noise, clock jumps,
    /// commits and refusals: a final frame is only ever acknowledged after
    /// its message was committed, no message is delivered again once
    /// committed, no message is committed twice, and every message the
    /// sender counts as delivered was committed.
    #[test]
    fn held_ack_follows_commit_under_random_interleavings(
        pads in prop::collection::vec(0usize..30, 1..4),
        actions in prop::collection::vec((any::<u8>(), 0u16..2_000), 0..300),
    ) {
        held_ack_run(&pads, &actions)?;
    }
}
