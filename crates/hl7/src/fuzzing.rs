//! Entry points shared by the fuzz targets and the corpus replay tests.

use crate::{Document, MllpDecoder, MllpEvent, Severity};

/// Parses `data`, walks the whole tree, unescapes every leaf, and checks
/// that encoding the owned tree and parsing it again gives the same tree
/// (for inputs without error diagnostics). `Err` describes a violated property.
pub fn hl7_parse(data: &[u8]) -> Result<(), String> {
    let doc = Document::parse(data);
    let mut leaves = 0usize;
    for seg in doc.segments() {
        let _ = seg.name();
        for f in seg.fields() {
            for r in f.children() {
                for c in r.children() {
                    for s in c.children() {
                        let _ = s.value();
                        leaves += 1;
                    }
                }
            }
        }
    }
    let _ = leaves;
    let clean = doc
        .diagnostics()
        .iter()
        .all(|d| d.severity != Severity::Error);
    for msg in doc.messages() {
        let owned = msg.to_owned_message();
        let bytes = owned.encode();
        let again = Document::parse(&bytes);
        let Some(m2) = again.messages().next() else {
            return Err("re-encoded message has no MSH".into());
        };
        let owned2 = m2.to_owned_message();
        if clean && doc.utf8 && owned2 != owned {
            return Err(format!(
                "round trip changed the tree:\n{owned:?}\n{owned2:?}"
            ));
        }
        let _ = crate::ack_mode(&msg);
    }
    Ok(())
}

/// Feeds `data` to an MLLP decoder in chunks whose sizes come from the
/// data itself, and checks that every frame is bounded and free of framing bytes.
pub fn mllp_decode(data: &[u8]) -> Result<(), String> {
    let max = 1024;
    let mut dec = MllpDecoder::new(max);
    let split = data.first().map_or(1, |b| (*b as usize % 17) + 1);
    for chunk in data.chunks(split) {
        dec.push(chunk);
        while let Some(e) = dec.next_event() {
            check_event(&e, max)?;
        }
        if dec.buffered() > max {
            return Err(format!(
                "decoder buffers {} bytes, limit {max}",
                dec.buffered()
            ));
        }
    }
    dec.finish();
    while let Some(e) = dec.next_event() {
        check_event(&e, max)?;
    }
    Ok(())
}

fn check_event(e: &MllpEvent, max: usize) -> Result<(), String> {
    if let MllpEvent::Frame(f) = e {
        if f.len() > max {
            return Err(format!("frame of {} bytes exceeds {max}", f.len()));
        }
        if f.contains(&crate::mllp::VT) || f.contains(&crate::mllp::FS) {
            return Err("frame contains a framing byte".into());
        }
        let _ = Document::parse(f);
    }
    Ok(())
}
