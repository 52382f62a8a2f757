//! E1381 link layer: byte-exact receiver sessions, timers, contention, retries.

mod common;
use aliquot_astm::frame::{ACK, ENQ, EOT, NAK};
use aliquot_astm::{
    FrameError, Handshake, Link, LinkConfig, LinkEvent, Output, checksum, parse_frame,
};
use common::*;

#[test]
fn checksum_vectors_from_shared_json() {
    let text = String::from_utf8(shared("astm", "checksum-vectors.json")).expect("utf8");
    let mut n = 0;
    for chunk in text.split("\"covered_hex\": \"").skip(1) {
        let hex = &chunk[..chunk.find('"').expect("end")];
        let exp_at = chunk.find("\"expected_checksum\": \"").expect("expected") + 22;
        let expected = &chunk[exp_at..exp_at + 2];
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        assert_eq!(
            format!("{:02X}", checksum(&bytes)),
            expected,
            "vector {hex}"
        );
        // and the same bytes framed parse, with upper- and lower-case checksum
        for e in [expected.to_string(), expected.to_ascii_lowercase()] {
            let mut f = vec![0x02];
            f.extend(&bytes);
            f.extend(e.as_bytes());
            f.extend(b"\r\n");
            let parsed = parse_frame(&f).expect("valid frame");
            assert_eq!(parsed.number, bytes[0] - b'0');
        }
        n += 1;
    }
    assert_eq!(n, 13);
}

#[test]
fn frame_errors() {
    let good = b"\x021A|B|C|D\r\x03BF\r\n";
    assert!(parse_frame(good).is_ok());
    assert!(matches!(
        parse_frame(b"\x021A|B|C|D\r\x03BE\r\n"),
        Err(FrameError::ChecksumMismatch {
            computed: 0xBF,
            received: 0xBE
        })
    ));
    assert_eq!(
        parse_frame(b"\x029A\r\x03BF\r\n"),
        Err(FrameError::BadFrameNumber(b'9'))
    );
    assert_eq!(
        parse_frame(b"\x021A\r\x03ZZ\r\n"),
        Err(FrameError::BadChecksumChars)
    );
    assert_eq!(parse_frame(b"\x021A\r\x03BF"), Err(FrameError::MissingCr));
    assert_eq!(parse_frame(b"1A\r\x03BF\r\n"), Err(FrameError::NoStx));
    // LF inside text
    let mut f = vec![0x02, b'1', b'A', b'\n', b'\r', 0x03];
    let s = checksum(&f[1..]);
    f.extend(format!("{s:02X}\r\n").as_bytes());
    assert_eq!(parse_frame(&f), Err(FrameError::ControlCharacter(b'\n')));
}

#[test]
fn sysmex_multiframe_etb_session() {
    let (written, msgs, events) = play_receiver(&fixture("sysmex_multiframe_etb.bin"));
    assert_eq!(
        events,
        [
            "enq ACK",
            "frame 1 ACK",
            "frame 2 ACK",
            "frame 3 ACK",
            "frame 4 ACK",
            "frame 5 ACK",
            "frame 6 ACK",
            "frame 7 ACK",
            "frame 0 ACK",
            "eot",
        ]
    );
    assert_eq!(written, vec![ACK; 9]);
    assert_eq!(msgs.len(), 1);
    let recs = aliquot_astm::parse_records(&msgs[0]);
    assert_eq!(recs.records.len(), 7);
    assert!(recs.diagnostics.is_empty(), "{:?}", recs.diagnostics);
    let c = aliquot_astm::records::Comment::from_record(&recs.records[4]).expect("C");
    assert_eq!(c.text().repeats().len(), 12);
    assert_eq!(
        c.text().repeats()[11].component(3),
        "ABNORMAL_SCATTERGRAM_11"
    );
    let o = aliquot_astm::records::Order::from_record(&recs.records[2]).expect("O");
    assert_eq!(o.tests(), ["WBC", "RBC", "HGB"]);
    let r = aliquot_astm::records::ResultRecord::from_record(&recs.records[5]).expect("R");
    assert_eq!(r.test_code(), "RBC");
    let n = r.numeric().expect("numeric");
    assert_eq!(
        (n.comparator.as_deref(), n.number.as_str(), n.decimal_comma),
        (Some("<"), "0.50", true)
    );
}

#[test]
fn wrong_checksum_duplicate_and_out_of_order() {
    let (written, msgs, events) = play_receiver(&fixture("wrong_checksum_duplicate.bin"));
    assert_eq!(
        events,
        [
            "enq ACK",
            "frame 1 NAK (checksum mismatch: computed BF, received C0)",
            "frame 1 ACK",
            "frame 2 ACK",
            "frame 2 ACK (repeat of the last frame: acknowledged, not stored)",
            "frame 4 NAK (unexpected frame number 4, expected 3)",
            "frame 3 ACK",
            "eot",
        ]
    );
    assert_eq!(written, [ACK, NAK, ACK, ACK, ACK, NAK, ACK]);
    assert_eq!(
        msgs,
        [b"H|\\^&|||ANALYZER\rR|1|^^^GLU|5.6|mmol/L||N||F\rL|1|N\r".to_vec()]
    );
}

#[test]
fn cobas_single_frame_cr_only() {
    let (written, msgs, events) = play_receiver(&fixture("cobas_one_frame_cr_only.bin"));
    assert_eq!(events, ["enq ACK", "frame 1 ACK", "eot"]);
    assert_eq!(written, [ACK, ACK]);
    let recs = aliquot_astm::parse_records(&msgs[0]);
    let kinds: String = recs.records.iter().map(|r| r.kind() as char).collect();
    assert_eq!(kinds, "HPORL");
    let o = aliquot_astm::records::Order::from_record(&recs.records[2]).expect("O");
    assert_eq!(o.specimen_id(), "000123");
    assert_eq!(o.tests(), ["678", "712"]);
    let r = aliquot_astm::records::ResultRecord::from_record(&recs.records[3]).expect("R");
    assert_eq!(r.value().value(), "4,5");
    assert_eq!(r.numeric().map(|n| n.number), Some("4.5".to_string()));
}

#[test]
fn fn_wraps_mod_8_and_lowercase_checksums() {
    let (written, msgs, events) = play_receiver(&fixture("fn_wrap_lowercase.bin"));
    let fns: Vec<&str> = events
        .iter()
        .filter(|e| e.starts_with("frame"))
        .map(|e| &e[6..7])
        .collect();
    assert_eq!(
        fns,
        ["1", "2", "3", "4", "5", "6", "7", "0", "1", "2", "3", "4"]
    );
    assert!(written.iter().all(|&b| b == ACK));
    assert_eq!(aliquot_astm::parse_records(&msgs[0]).records.len(), 12);
}

fn pump(
    a: &mut Link,
    b: &mut Link,
    now: u64,
    a_msgs: &mut Vec<Vec<u8>>,
    b_msgs: &mut Vec<Vec<u8>>,
    log: &mut Vec<String>,
) {
    for _ in 0..10_000 {
        let mut moved = false;
        while let Some(o) = a.poll() {
            match o {
                Output::Write(bytes) => {
                    moved = true;
                    b.receive(&bytes, now);
                }
                Output::Message(m) => a_msgs.push(m),
                Output::HeldMessage { token, message } => {
                    // Stored at once: commit.
                    a_msgs.push(message);
                    a.commit(token, now).expect("commit");
                }
                Output::Event(e) => log.push(format!("A {}", render(&e))),
            }
        }
        while let Some(o) = b.poll() {
            match o {
                Output::Write(bytes) => {
                    moved = true;
                    a.receive(&bytes, now);
                }
                Output::Message(m) => b_msgs.push(m),
                Output::HeldMessage { token, message } => {
                    // Stored at once: commit.
                    b_msgs.push(message);
                    b.commit(token, now).expect("commit");
                }
                Output::Event(e) => log.push(format!("B {}", render(&e))),
            }
        }
        if !moved {
            return;
        }
    }
    panic!("links did not settle");
}

#[test]
fn instrument_to_lis_end_to_end_long_record() {
    let mut inst = Link::new(LinkConfig::instrument());
    let mut lis = Link::new(LinkConfig::lis());
    let long = format!("M|1|HISTOGRAM|{}\r", "A".repeat(11_068));
    let msg = format!("H|\\^&|||H550\rP|1\rO|1|S1||^^^DIF\r{long}L|1|N\r");
    let id = inst.send(msg.clone().into_bytes(), 0).expect("send");
    let (mut im, mut lm, mut log) = (vec![], vec![], vec![]);
    pump(&mut inst, &mut lis, 0, &mut im, &mut lm, &mut log);
    assert_eq!(lm, [msg.into_bytes()]);
    assert!(
        log.contains(&format!("A SendComplete {{ id: {id} }}")),
        "{log:?}"
    );
    // 11 068 + 16 bytes of M record = 47 frames of <= 240 text bytes, plus 4 short records
    assert_eq!(
        log.iter().filter(|l| l.starts_with("B frame")).count(),
        47 + 4
    );
    assert!(inst.is_neutral() && lis.is_neutral());
}

#[test]
fn sender_timeouts_and_retries() {
    // No reply to ENQ: EOT after 15 s; retry after 10 s; 6 attempts then give up.
    let mut l = Link::new(LinkConfig::lis());
    l.send(b"H|\\^&\rL|1|N\r".to_vec(), 0).expect("send");
    assert_eq!(l.poll(), Some(Output::Write(vec![ENQ])));
    assert_eq!(l.next_deadline(), Some(15_000));
    l.tick(14_999);
    assert_eq!(l.poll(), None);
    l.tick(15_000);
    assert_eq!(l.poll(), Some(Output::Write(vec![EOT])));
    assert_eq!(l.next_deadline(), Some(25_000));
    let mut t = 25_000;
    let mut attempts = 1;
    loop {
        l.tick(t);
        match l.poll() {
            Some(Output::Write(b)) if b == [ENQ] => attempts += 1,
            other => panic!("expected ENQ, got {other:?}"),
        }
        t += 15_000;
        l.tick(t);
        assert_eq!(l.poll(), Some(Output::Write(vec![EOT])));
        if let Some(Output::Event(LinkEvent::SendFailed { reason, .. })) = l.poll() {
            assert_eq!(reason, "no reply to ENQ");
            break;
        }
        t += 10_000;
    }
    assert_eq!(attempts, 6);
    assert_eq!(l.queued(), 0);
}

#[test]
fn nak_six_times_aborts_and_busy_nak_waits_10s() {
    let mut l = Link::new(LinkConfig::lis());
    l.send(b"H|\\^&\r".to_vec(), 0).expect("send");
    assert_eq!(l.poll(), Some(Output::Write(vec![ENQ])));
    l.receive(&[NAK], 100);
    assert_eq!(l.poll(), Some(Output::Event(LinkEvent::Busy)));
    assert_eq!(l.next_deadline(), Some(10_100));
    l.tick(10_099);
    assert_eq!(l.poll(), None);
    l.tick(10_100);
    assert_eq!(l.poll(), Some(Output::Write(vec![ENQ])));
    l.receive(&[ACK], 10_200);
    let first = match l.poll() {
        Some(Output::Write(f)) => f,
        o => panic!("{o:?}"),
    };
    assert_eq!(first, b"\x021H|\\^&\r\x03E5\r\n");
    for attempt in 2..=6 {
        l.receive(&[NAK], 10_300);
        assert_eq!(
            l.poll(),
            Some(Output::Event(LinkEvent::Retransmit { number: 1, attempt }))
        );
        assert_eq!(l.poll(), Some(Output::Write(first.clone())));
    }
    l.receive(&[NAK], 10_400);
    assert_eq!(l.poll(), Some(Output::Write(vec![EOT])));
    assert!(matches!(
        l.poll(),
        Some(Output::Event(LinkEvent::SendFailed { .. }))
    ));
    assert!(l.is_neutral());
}

#[test]
fn contention_lis_yields_and_waits_20s_instrument_wins() {
    let mut lis = Link::new(LinkConfig::lis());
    let mut inst = Link::new(LinkConfig::instrument());
    lis.send(b"H|\\^&\rL|1|N\r".to_vec(), 0).expect("send");
    inst.send(b"H|\\^&|||I\rL|1|N\r".to_vec(), 0).expect("send");
    // Both wrote ENQ; deliver them crosswise.
    assert_eq!(lis.poll(), Some(Output::Write(vec![ENQ])));
    assert_eq!(inst.poll(), Some(Output::Write(vec![ENQ])));
    lis.receive(&[ENQ], 10);
    inst.receive(&[ENQ], 10);
    assert_eq!(lis.poll(), Some(Output::Event(LinkEvent::Contention)));
    assert_eq!(inst.poll(), Some(Output::Event(LinkEvent::Contention)));
    // The LIS yields: it answered the instrument's ENQ and now receives.
    assert_eq!(lis.poll(), Some(Output::Write(vec![ACK])));
    // The instrument ignores that stale ACK, re-sends ENQ after 1 s.
    inst.receive(&[ACK], 20);
    let _ = inst.poll();
    assert_eq!(inst.next_deadline(), Some(1_010));
    inst.tick(1_010);
    let (mut im, mut lm, mut log) = (vec![], vec![], vec![]);
    pump(&mut inst, &mut lis, 1_010, &mut im, &mut lm, &mut log);
    assert_eq!(lm, [b"H|\\^&|||I\rL|1|N\r".to_vec()]);
    // The LIS sends its own message only 20 s after the contention.
    assert_eq!(lis.next_deadline(), Some(20_010));
    lis.tick(20_009);
    assert_eq!(lis.poll(), None);
    lis.tick(20_010);
    pump(&mut lis, &mut inst, 20_010, &mut lm, &mut im, &mut log);
    assert_eq!(im, [b"H|\\^&\rL|1|N\r".to_vec()]);
}

#[test]
fn receiver_timeout_interrupt_and_no_handshake_mode() {
    let mut l = Link::new(LinkConfig::lis());
    l.receive(&[ENQ], 0);
    let mut f = Vec::new();
    aliquot_astm::encode_frame(1, b"H|\\^&\r", aliquot_astm::FrameEnd::Intermediate, &mut f);
    l.receive(&f, 1_000);
    while l.poll().is_some() {}
    assert_eq!(l.next_deadline(), Some(31_000));
    l.tick(31_000);
    assert_eq!(l.poll(), Some(Output::Event(LinkEvent::ReceiveTimeout)));
    assert!(l.is_neutral());

    // EOT in place of ACK: counted as acknowledged, sender carries on by default.
    let mut s = Link::new(LinkConfig::instrument());
    s.send(b"H|\\^&\rL|1|N\r".to_vec(), 0).expect("send");
    s.receive(&[ACK], 0);
    s.receive(&[EOT], 0);
    let outs: Vec<Output> = std::iter::from_fn(|| s.poll()).collect();
    assert!(outs.contains(&Output::Event(LinkEvent::InterruptRequested {
        honored: false
    })));
    assert!(matches!(outs.last(), Some(Output::Write(f)) if f[1] == b'2'));

    // Without ENQ/ACK: frames flow straight, L record completes the message.
    let mut cfg = LinkConfig::lis();
    cfg.handshake = Handshake::None;
    let mut tx = Link::new(LinkConfig {
        handshake: Handshake::None,
        ..LinkConfig::instrument()
    });
    let mut rx = Link::new(cfg);
    tx.send(b"H|\\^&\rR|1|^^^K|4.1\rL|1|N\r".to_vec(), 0)
        .expect("send");
    let mut wire = Vec::new();
    while let Some(o) = tx.poll() {
        if let Output::Write(b) = o {
            wire.extend(b);
        }
    }
    assert_eq!(wire.first(), Some(&0x02));
    rx.receive(&wire, 0);
    let outs: Vec<Output> = std::iter::from_fn(|| rx.poll()).collect();
    assert!(
        outs.iter().all(|o| !matches!(o, Output::Write(_))),
        "no replies without handshake"
    );
    assert!(outs.contains(&Output::Message(b"H|\\^&\rR|1|^^^K|4.1\rL|1|N\r".to_vec())));
}

#[test]
fn send_refuses_bytes_that_cannot_be_framed() {
    let mut l = Link::new(LinkConfig::lis());
    assert_eq!(
        l.send(b"H|\\^&\nL|1|N\r".to_vec(), 0),
        Err(aliquot_astm::SendError::ForbiddenByte {
            offset: 5,
            byte: b'\n'
        })
    );
    assert_eq!(
        l.send(b"R|1|\x02".to_vec(), 0).map_err(|e| e.to_string()),
        Err("byte 0x02 at offset 4 may not be sent in an ASTM frame".to_string())
    );
    assert_eq!(l.poll(), None);
    assert_eq!(l.queued(), 0);
}
