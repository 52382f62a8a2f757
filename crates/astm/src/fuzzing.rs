//! Entry points shared by the fuzz targets and the corpus replay tests.

use crate::frame::parse_frame;
use crate::link::{Handshake, Link, LinkConfig, Output};
use crate::records::{self, OwnedRecord, parse_records};

/// Drives a [`Link`] with a script decoded from `data`: byte 0 picks role and
/// handshake; then `0x00 n` advances time by `n` × 500 ms, `0x01 n` queues a
/// message of the next `n` bytes, and any other run of bytes (up to the next
/// 0x00/0x01) is received. Checks that every frame the link writes is valid,
/// that the output queue stays bounded and that timers are honoured.
pub fn astm_link(data: &[u8]) -> Result<(), String> {
    let Some((&mode, mut rest)) = data.split_first() else {
        return Ok(());
    };
    let mut cfg = if mode & 1 == 0 {
        LinkConfig::lis()
    } else {
        LinkConfig::instrument()
    };
    if mode & 2 != 0 {
        cfg.handshake = Handshake::None;
    }
    cfg.honor_interrupt = mode & 4 != 0;
    cfg.max_frame_bytes = 512;
    cfg.max_message_bytes = 4096;
    cfg.max_frame_text = 1 + (mode as usize >> 3) % 240;
    let mut link = Link::new(cfg);
    let mut now = 0u64;
    let mut steps = 0usize;
    let mut last_held = None;
    while let Some((&op, tail)) = rest.split_first() {
        steps += 1;
        match op {
            0 => {
                let n = tail.first().copied().unwrap_or(1) as u64;
                now += n * 500;
                link.tick(now);
                rest = tail.get(1..).unwrap_or(&[]);
            }
            1 => {
                let n = tail.first().copied().unwrap_or(0) as usize;
                let body = tail.get(1..).unwrap_or(&[]);
                let take = n.min(body.len());
                let _ = link.send(body[..take].to_vec(), now);
                rest = &body[take..];
            }
            _ => {
                let end = rest.iter().position(|&b| b <= 1).unwrap_or(rest.len());
                link.receive(&rest[..end], now);
                rest = &rest[end..];
            }
        }
        let mut outputs = 0usize;
        let mut held = Vec::new();
        while let Some(o) = link.poll() {
            outputs += 1;
            match o {
                Output::Write(bytes) => check_written(&bytes)?,
                Output::HeldMessage { token, message } => {
                    if message.len() > 4096 + 512 {
                        return Err(format!(
                            "delivered message of {} bytes over the limit",
                            message.len()
                        ));
                    }
                    held.push(token);
                }
                Output::Message(m) => {
                    if m.len() > 4096 + 512 {
                        return Err(format!(
                            "delivered message of {} bytes over the limit",
                            m.len()
                        ));
                    }
                    let _ = parse_records(&m);
                }
                Output::Event(_) => {}
            }
        }
        if outputs > 10_000 {
            return Err(format!("{outputs} outputs from one step"));
        }
        // Only the newest delivered message can be held.
        if let Some(t) = link.held()
            && held.last() != Some(&t)
            && last_held != Some(t)
        {
            return Err(format!("link holds {t}, not the newest held message"));
        }
        if let Some(&t) = held.last() {
            last_held = Some(t);
        }
        // Commit a third of the held messages, refuse a third, let the rest
        // expire; a successful answer writes exactly one reply byte.
        for token in held {
            let answer = match token.get() % 3 {
                0 => link.commit(token, now),
                1 => link.refuse(token, now),
                _ => continue,
            };
            let first = link.poll();
            match (answer, first) {
                (Ok(()), Some(Output::Write(b))) if b.len() == 1 => {}
                (Err(_), None) => {}
                (Err(_), Some(Output::Write(b))) if b == [crate::frame::NAK] => {} // expired now
                (a, o) => return Err(format!("answer {a:?} gave {o:?}")),
            }
            while link.poll().is_some() {}
            if link.held() == Some(token) {
                return Err(format!("token {token} still held after its answer"));
            }
        }
        if let Some(d) = link.next_deadline()
            && d > now + 60_000
        {
            return Err(format!("deadline {d} too far from now {now}"));
        }
    }
    let _ = steps;
    Ok(())
}

fn check_written(bytes: &[u8]) -> Result<(), String> {
    // A write is either one control byte, one frame, or (without handshake) frames + EOT.
    if bytes.len() == 1 {
        return Ok(());
    }
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == crate::frame::EOT && i + 1 == bytes.len() {
            return Ok(());
        }
        let end = bytes[i..]
            .iter()
            .position(|&b| b == crate::frame::LF)
            .map(|p| p + i + 1)
            .ok_or("frame without LF")?;
        parse_frame(&bytes[i..end]).map_err(|e| format!("link wrote a bad frame: {e}"))?;
        i = end;
    }
    Ok(())
}

/// Parses records, reads every typed view, and checks that re-encoding
/// each record gives the same record (when the input had no diagnostics).
pub fn astm_records(data: &[u8]) -> Result<(), String> {
    let recs = parse_records(data);
    for r in &recs.records {
        for n in 1..=r.field_count() {
            let f = r.field(n);
            for rep in f.repeats() {
                for c in rep.components() {
                    let _ = c.value();
                }
            }
        }
        if let Some(o) = records::Order::from_record(r) {
            let _ = (o.specimen_id(), o.tests());
        }
        if let Some(res) = records::ResultRecord::from_record(r) {
            let _ = (
                res.test_code(),
                res.numeric(),
                res.flag_list(),
                res.value_components(),
            );
        }
        if let Some(q) = records::Query::from_record(r) {
            let _ = q.specimen_id();
        }
    }
    if recs.diagnostics.is_empty() {
        for r in &recs.records {
            let owned = OwnedRecord::from_record(r);
            let enc = owned.encode(&r.delimiters());
            let mut input = Vec::new();
            if r.kind() != b'H' {
                let d = r.delimiters();
                input.extend_from_slice(&[b'H', d.field, d.repeat, d.component, d.escape, b'\r']);
            }
            input.extend_from_slice(&enc);
            let again = parse_records(&input);
            let Some(back) = again.records.last() else {
                return Err("re-encoded record vanished".into());
            };
            if OwnedRecord::from_record(back) != owned {
                return Err(format!(
                    "round trip changed {:?}",
                    String::from_utf8_lossy(r.raw())
                ));
            }
        }
    }
    Ok(())
}
