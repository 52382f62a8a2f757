//! Analyst tools: `aliquot hl7 parse|get` and `aliquot astm decode|frames`.
//!
//! Self-contained: the binary adds `Hl7(protocol_tools::Hl7Command)` and
//! `Astm(protocol_tools::AstmCommand)` to its command enum and calls
//! [`run_hl7`] / [`run_astm`]. The logic lives in `pub fn`s returning
//! strings so it is unit-tested here.

use std::path::PathBuf;

use aliquot_astm::records::{Order, Query, ResultRecord};
use aliquot_astm::{Handshake, Link, LinkConfig, LinkEvent, Output};
use aliquot_hl7::{Document, FieldPath, MllpDecoder, MllpEvent, Value as Hl7Value};
use anyhow::{Context, Result};
use serde_json::{Value, json};

/// `aliquot hl7 …`
#[derive(Debug, clap::Subcommand)]
pub enum Hl7Command {
    /// Print the parse tree and diagnostics of FILE as JSON (a file may hold
    /// several messages, a batch, or an MLLP stream).
    Parse {
        /// Input file.
        file: PathBuf,
    },
    /// Print the unescaped value at FIELD (e.g. `PID-3`, `PID-5.1`, `OBX-5`,
    /// `OBR-4.2`, `MSH-10`, `OBX-5[2]`) for every occurrence of the segment,
    /// one line per segment in message order, an empty line where the value
    /// is absent (so `OBX-3` and `OBX-5` line up). A repeating field prints
    /// its repetitions on one line, joined by the repetition separator; a
    /// value that still has components prints its encoded text, escapes
    /// kept, so that an escaped delimiter is never shown as a real one.
    Get {
        /// Input file.
        file: PathBuf,
        /// Field address.
        field: String,
    },
}

/// `aliquot astm …`
#[derive(Debug, clap::Subcommand)]
pub enum AstmCommand {
    /// Print the E1394 records of FILE as JSON, one per line. FILE holds raw
    /// records or a captured E1381 byte stream (frames are checked and joined).
    Decode {
        /// Input file.
        file: PathBuf,
    },
    /// Play the receiver over a captured sender byte stream and print one
    /// JSON line per ENQ, frame and EOT with the reply the LIS would give.
    Frames {
        /// Input file.
        file: PathBuf,
    },
}

fn read(file: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))
}

/// Runs an `hl7` subcommand, writing to stdout.
pub fn run_hl7(cmd: Hl7Command) -> Result<()> {
    match cmd {
        Hl7Command::Parse { file } => {
            outln!("{}", hl7_parse_json(&read(&file)?))?;
        }
        Hl7Command::Get { file, field } => {
            for line in hl7_get_lines(&read(&file)?, &field)? {
                outln!("{line}")?;
            }
        }
    }
    Ok(())
}

/// Runs an `astm` subcommand, writing to stdout.
pub fn run_astm(cmd: AstmCommand) -> Result<()> {
    let lines = match cmd {
        AstmCommand::Decode { file } => astm_decode_lines(&read(&file)?),
        AstmCommand::Frames { file } => {
            let bytes = read(&file)?;
            let lines = astm_frames_lines(&bytes);
            if lines.is_empty() && !bytes.is_empty() {
                anyhow::bail!(
                    "{}: no E1381 link traffic (ENQ, frames, EOT) found; for a file of raw records use `aliquot astm decode`",
                    file.display()
                );
            }
            lines
        }
    };
    for line in lines {
        outln!("{line}")?;
    }
    Ok(())
}

/// The HL7 payloads in `bytes`: MLLP frames when the input holds a start
/// block (0x0B), otherwise the whole input. Discarded MLLP bytes are
/// returned as notes.
pub fn hl7_payloads(bytes: &[u8]) -> (Vec<Vec<u8>>, Vec<String>) {
    if !bytes.contains(&0x0B) {
        return (vec![bytes.to_vec()], Vec::new());
    }
    let mut dec = MllpDecoder::default();
    dec.push(bytes);
    dec.finish();
    let mut frames = Vec::new();
    let mut notes = Vec::new();
    while let Some(e) = dec.next_event() {
        match e {
            MllpEvent::Frame(f) => frames.push(f),
            MllpEvent::Discarded { bytes, reason } => {
                notes.push(format!("MLLP: {bytes} bytes discarded ({reason:?})"))
            }
        }
    }
    (frames, notes)
}

/// Field → repetitions → components → sub-components; a level without
/// delimiters collapses to a string.
fn node_json(v: Hl7Value<'_, '_>) -> Value {
    if v.has_children() {
        Value::Array(v.children().map(node_json).collect())
    } else {
        Value::String(v.value().into_owned())
    }
}

/// `hl7 parse`: the tree and diagnostics as pretty JSON.
pub fn hl7_parse_json(bytes: &[u8]) -> String {
    let (payloads, notes) = hl7_payloads(bytes);
    let mut messages = Vec::new();
    let mut diagnostics: Vec<Value> = notes
        .iter()
        .map(|n| json!({"severity": "warning", "kind": "Mllp", "message": n}))
        .collect();
    for (fi, p) in payloads.iter().enumerate() {
        let doc = Document::parse(p);
        for d in doc.diagnostics() {
            diagnostics.push(json!({
                "frame": fi,
                "severity": format!("{:?}", d.severity).to_lowercase(),
                "kind": format!("{:?}", d.kind),
                "offset": d.offset,
                "message": d.message,
            }));
        }
        for m in doc.messages() {
            let segs: Vec<Value> = m
                .segments()
                .map(|s| {
                    let fields: Vec<Value> = s
                        .fields()
                        .enumerate()
                        .filter(|(_, f)| !f.is_empty())
                        .map(|(i, f)| {
                            let v = if s.name_bytes() == b"MSH" && i < 2 {
                                Value::String(f.raw_str().into_owned())
                            } else {
                                node_json(f)
                            };
                            json!({"n": i + 1, "value": v})
                        })
                        .collect();
                    json!({"name": s.name(), "offset": s.offset(), "fields": fields})
                })
                .collect();
            messages.push(json!({
                "type": m.get("MSH-9").unwrap_or_default(),
                "control_id": m.get("MSH-10").unwrap_or_default(),
                "version": m.get("MSH-12").unwrap_or_default(),
                "segments": segs,
            }));
        }
    }
    serde_json::to_string_pretty(&json!({"messages": messages, "diagnostics": diagnostics}))
        .unwrap_or_default()
}

/// `hl7 get`: one line per occurrence of the segment named by `field`, in
/// message order: the unescaped value, an empty line where the field (or
/// component) is absent, so that `OBX-3` and `OBX-5` line up. When the field
/// repeats (and no `[r]` is given) the line is the repetitions' encoded text
/// joined by the message's repetition separator (`27~25`), escapes kept.
pub fn hl7_get_lines(bytes: &[u8], field: &str) -> Result<Vec<String>> {
    let path = FieldPath::parse(field).map_err(anyhow::Error::msg)?;
    let (payloads, _) = hl7_payloads(bytes);
    let mut out = Vec::new();
    for p in &payloads {
        let doc = Document::parse(p);
        for m in doc.messages() {
            for seg in m
                .segments()
                .filter(|s| s.name_bytes() == path.segment.as_bytes())
            {
                let values = hl7_values_in(seg, &path);
                out.push(match values.as_slice() {
                    vs if vs.iter().all(|v| v.raw().is_empty()) => String::new(),
                    [v] => v.text().into_owned(),
                    many => {
                        let sep = seg.delimiters().repetition.map_or('~', char::from);
                        many.iter()
                            .map(|v| v.raw_str().into_owned())
                            .collect::<Vec<_>>()
                            .join(&sep.to_string())
                    }
                });
            }
        }
    }
    Ok(out)
}

/// The values at `path` in one segment (one per repetition; none when absent).
fn hl7_values_in<'d, 'a>(
    seg: aliquot_hl7::Segment<'d, 'a>,
    path: &FieldPath,
) -> Vec<Hl7Value<'d, 'a>> {
    let Some(f) = seg.field(path.field) else {
        return Vec::new();
    };
    let reps = match path.repetition {
        Some(r) => f.repetition(r).into_iter().collect(),
        None => f.repetitions(),
    };
    reps.into_iter()
        .filter_map(|r| match (path.component, path.subcomponent) {
            (None, _) => Some(if path.repetition.is_none() && f.len() == 1 {
                f
            } else {
                r
            }),
            (Some(c), None) => r.child(c),
            (Some(c), Some(s)) => r.child(c).and_then(|c| c.child(s)),
        })
        .collect()
}

fn is_stream(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b == 0x02 || b == 0x05)
}

struct Played {
    messages: Vec<Vec<u8>>,
    events: Vec<LinkEvent>,
}

fn play_receiver(bytes: &[u8]) -> Played {
    // A tool stores nothing: acknowledge at once, as a plain E1381 receiver.
    let mut cfg = LinkConfig {
        auto_ack: true,
        ..LinkConfig::lis()
    };
    if !bytes.contains(&0x05) {
        cfg.handshake = Handshake::None;
    }
    let mut link = Link::new(cfg);
    link.receive(bytes, 0);
    let mut played = Played {
        messages: Vec::new(),
        events: Vec::new(),
    };
    let drain = |link: &mut Link, played: &mut Played| {
        while let Some(o) = link.poll() {
            match o {
                Output::Message(m) => played.messages.push(m),
                Output::HeldMessage { message, .. } => played.messages.push(message),
                Output::Event(e) => played.events.push(e),
                Output::Write(_) => {}
            }
        }
    };
    drain(&mut link, &mut played);
    // End of capture: a session still open is reported by a timer expiry.
    if !link.is_neutral() {
        link.tick(u64::MAX / 2);
        drain(&mut link, &mut played);
    }
    played
}

fn astm_field_json(f: aliquot_astm::records::Field<'_>) -> Value {
    let reps = f.repeats();
    let rep_json = |r: &aliquot_astm::records::Field<'_>| {
        let comps = r.components();
        if comps.len() == 1 {
            Value::String(r.value().into_owned())
        } else {
            Value::Array(
                comps
                    .iter()
                    .map(|c| Value::String(c.value().into_owned()))
                    .collect(),
            )
        }
    };
    if reps.len() == 1 {
        rep_json(&reps[0])
    } else {
        json!({"repeats": reps.iter().map(rep_json).collect::<Vec<_>>()})
    }
}

/// `astm decode`: one JSON line per record (and per diagnostic).
pub fn astm_decode_lines(bytes: &[u8]) -> Vec<String> {
    let (messages, mut lines) = if is_stream(bytes) {
        let played = play_receiver(bytes);
        let notes: Vec<String> = played
            .events
            .iter()
            .filter_map(|e| match e {
                LinkEvent::FrameReceived { number, reason: Some(r), .. } => Some(json!({"diagnostic": format!("frame {}: {r}", number.map_or("?".into(), |n| n.to_string()))}).to_string()),
                LinkEvent::EotReceived { discarded_partial: true } => Some(json!({"diagnostic": "EOT before the end of a record: partial record discarded"}).to_string()),
                LinkEvent::ReceiveTimeout => Some(json!({"diagnostic": "capture ends inside a session: incomplete message discarded"}).to_string()),
                _ => None,
            })
            .collect();
        (played.messages, notes)
    } else {
        (vec![bytes.to_vec()], Vec::new())
    };
    for (mi, m) in messages.iter().enumerate() {
        let recs = aliquot_astm::parse_records(m);
        for d in &recs.diagnostics {
            lines.push(json!({"message": mi, "diagnostic": d.message, "record": d.record, "severity": format!("{:?}", d.severity).to_lowercase()}).to_string());
        }
        for r in &recs.records {
            let fields: Vec<Value> = (1..=r.field_count())
                .map(|n| {
                    if r.kind() == b'H' && n == 2 {
                        Value::String(r.text(2))
                    } else {
                        astm_field_json(r.field(n))
                    }
                })
                .collect();
            let mut obj =
                json!({"message": mi, "type": (r.kind() as char).to_string(), "fields": fields});
            if let Some(o) = Order::from_record(r) {
                obj["specimen_id"] = json!(o.specimen_id());
                obj["tests"] = json!(o.tests());
            }
            if let Some(res) = ResultRecord::from_record(r) {
                obj["test"] = json!(res.test_code());
                obj["value"] = json!(res.value().value());
                obj["units"] = json!(res.units().value());
                obj["flags"] = json!(res.flag_list());
                obj["status"] = json!(res.status().trimmed());
            }
            if let Some(q) = Query::from_record(r) {
                obj["specimen_id"] = json!(q.specimen_id());
            }
            lines.push(obj.to_string());
        }
    }
    lines
}

/// `astm frames`: one JSON line per ENQ, frame and EOT of the capture.
pub fn astm_frames_lines(bytes: &[u8]) -> Vec<String> {
    let played = play_receiver(bytes);
    played
        .events
        .iter()
        .filter_map(|e| match e {
            LinkEvent::EnqReceived { reply, reason } => {
                Some(json!({"kind": "enq", "fn": null, "reply": reply.map(|r| r.as_str()), "reason": reason}))
            }
            LinkEvent::FrameReceived { number, reply, reason } => {
                Some(json!({"kind": "frame", "fn": number, "reply": reply.map(|r| r.as_str()), "reason": reason}))
            }
            LinkEvent::EotReceived { discarded_partial } => Some(json!({
                "kind": "eot",
                "fn": null,
                "reply": null,
                "reason": discarded_partial.then_some("partial record discarded"),
            })),
            _ => None,
        })
        .map(|v| v.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn manifest() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    fn fixture(krate: &str, name: &str) -> Vec<u8> {
        let p = manifest()
            .join("..")
            .join(krate)
            .join("tests/fixtures")
            .join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
    }

    fn shared(sub: &str, name: &str) -> Vec<u8> {
        let dir = manifest().join("../../../shared/testdata").join(sub);
        assert!(dir.is_dir(), "shared test data missing: {}", dir.display());
        std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("cannot read {name}: {e}"))
    }

    #[test]
    fn hl7_get_over_files_and_mllp() {
        let b = fixture("hl7", "oru_r01_v251_escapes.hl7");
        assert_eq!(hl7_get_lines(&b, "MSH-10").expect("get"), ["CTRL|0001"]);
        assert_eq!(hl7_get_lines(&b, "PID-5.1").expect("get"), ["O\\Brien"]);
        assert_eq!(
            hl7_get_lines(&b, "PID-3").expect("get"),
            ["PAT\\T\\1^^^ALQ&1.2.3&ISO^MR~XYZ99^^^SSA^SS"]
        );
        assert_eq!(hl7_get_lines(&b, "PID-3[2].1").expect("get"), ["XYZ99"]);
        assert_eq!(hl7_get_lines(&b, "OBR-4.2").expect("get"), ["Lipid panel"]);
        assert_eq!(
            hl7_get_lines(&b, "OBX-5").expect("get"),
            [
                "5.2",
                "<^0.5",
                "Result critical called",
                "27~25",
                "\\Z1234\\kept\n\nend\\Cxx\\x"
            ]
        );
        assert_eq!(
            hl7_get_lines(&b, "OBX-5[2]").expect("get"),
            ["", "", "", "25", ""]
        );
        let mllp = fixture("hl7", "mllp_stream.bin");
        assert_eq!(hl7_get_lines(&mllp, "MSH-10").expect("get"), ["M1", "M2"]);
        assert_eq!(hl7_get_lines(&mllp, "PID-3").expect("get"), ["ID1", "ID2"]);
        let batch = shared("hl7", "pythonhl7_file-batch_fhs-bhs-bts-fts.hl7");
        assert_eq!(
            hl7_get_lines(&batch, "MSH-10").expect("get"),
            ["12334456778890", "12334456778891", "12334456778890"]
        );
        assert!(hl7_get_lines(&b, "PID").is_err());
        assert!(hl7_get_lines(&b, "PID-0").is_err());
    }

    #[test]
    fn hl7_parse_json_tree_and_diagnostics() {
        let b = shared("hl7", "pythonhl7_repetition-component-subcomponent.hl7");
        let v: Value = serde_json::from_str(&hl7_parse_json(&b)).expect("json");
        let pid = &v["messages"][0]["segments"][1];
        assert_eq!(pid["name"], "PID");
        assert_eq!(pid["fields"][0], json!({"n": 1, "value": "Field1"}));
        assert_eq!(
            pid["fields"][2],
            json!({"n": 3, "value": [["Component1", ["Sub-Component1", "Sub-Component2"], "Component3"]]})
        );
        assert_eq!(
            pid["fields"][3],
            json!({"n": 4, "value": ["Repeat1", "Repeat2"]})
        );
        assert_eq!(v["messages"][0]["control_id"], "CNTRL-3456");
        let d = shared("hl7", "pythonhl7_DEFECT-batch-bhs-in-middle.hl7");
        let v: Value = serde_json::from_str(&hl7_parse_json(&d)).expect("json");
        let kinds: Vec<&str> = v["diagnostics"]
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|d| d["kind"].as_str())
            .collect();
        assert!(kinds.contains(&"BatchStructure"), "{kinds:?}");
        let mllp = fixture("hl7", "mllp_stream.bin");
        let v: Value = serde_json::from_str(&hl7_parse_json(&mllp)).expect("json");
        assert_eq!(v["messages"].as_array().map(|a| a.len()), Some(2));
        assert_eq!(v["diagnostics"][0]["kind"], "Mllp");
    }

    #[test]
    fn astm_frames_over_capture() {
        let lines = astm_frames_lines(&fixture("astm", "wrong_checksum_duplicate.bin"));
        let v: Vec<Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(
            v[0],
            json!({"kind": "enq", "fn": null, "reply": "ACK", "reason": null})
        );
        assert_eq!(
            v[1],
            json!({"kind": "frame", "fn": 1, "reply": "NAK", "reason": "checksum mismatch: computed BF, received C0"})
        );
        assert_eq!(
            v[2],
            json!({"kind": "frame", "fn": 1, "reply": "ACK", "reason": null})
        );
        assert_eq!(
            v[4]["reason"],
            "repeat of the last frame: acknowledged, not stored"
        );
        assert_eq!(v[5]["reply"], "NAK");
        assert_eq!(
            v[7],
            json!({"kind": "eot", "fn": null, "reply": null, "reason": null})
        );
        assert_eq!(v.len(), 8);
    }

    #[test]
    fn astm_decode_stream_and_raw_records() {
        let lines = astm_decode_lines(&fixture("astm", "sysmex_multiframe_etb.bin"));
        let v: Vec<Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        let types: String = v.iter().filter_map(|x| x["type"].as_str()).collect();
        assert_eq!(types, "HPORCRL");
        assert_eq!(v[2]["tests"], json!(["WBC", "RBC", "HGB"]));
        assert_eq!(v[3]["value"], "7.41");
        assert_eq!(v[3]["test"], "WBC");
        let raw = shared("astm", "goastm_euroimmun-analyzer1_multi-patient.astm");
        let lines = astm_decode_lines(&raw);
        let v: Vec<Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(v[0]["fields"][1], "\\^&");
        assert_eq!(v[3]["value"], ">8");
        assert_eq!(v[6]["value"], "7,41");
        // A capture cut inside a session reports the loss.
        let cut = fixture("astm", "fn_wrap_lowercase.bin");
        let lines = astm_decode_lines(&cut[..cut.len() / 2]);
        assert!(
            lines
                .iter()
                .any(|l| l.contains("incomplete message discarded")),
            "{lines:?}"
        );
    }
}
