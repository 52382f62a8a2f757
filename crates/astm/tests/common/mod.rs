// Shared helpers for the integration tests (included with `mod common;`).
#![allow(dead_code)]

use aliquot_astm::{Link, LinkConfig, LinkEvent, Output};
use std::path::PathBuf;

pub fn shared_dir(sub: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata")
        .join(sub);
    assert!(
        dir.is_dir(),
        "shared test data missing: {} (expected ../shared/testdata beside the repository root)",
        dir.display()
    );
    dir
}

pub fn shared(sub: &str, name: &str) -> Vec<u8> {
    let p = shared_dir(sub).join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

pub fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// Plays the LIS receiver over a captured sender stream, one byte at a
/// time, acknowledging at once ([`LinkConfig::auto_ack`]); returns (bytes
/// written, messages delivered, events rendered).
pub fn play_receiver(stream: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>, Vec<String>) {
    let mut link = Link::new(LinkConfig {
        auto_ack: true,
        ..LinkConfig::lis()
    });
    let mut written = Vec::new();
    let mut msgs = Vec::new();
    let mut events = Vec::new();
    for b in stream {
        link.receive(std::slice::from_ref(b), 0);
        drain(&mut link, &mut written, &mut msgs, &mut events);
    }
    (written, msgs, events)
}

pub fn drain(
    link: &mut Link,
    written: &mut Vec<u8>,
    msgs: &mut Vec<Vec<u8>>,
    events: &mut Vec<String>,
) {
    while let Some(o) = link.poll() {
        match o {
            Output::Write(b) => written.extend(b),
            Output::Message(m) => msgs.push(m),
            Output::HeldMessage { token, message } => {
                events.push(format!("held {token}"));
                msgs.push(message);
            }
            Output::Event(e) => events.push(render(&e)),
        }
    }
}

pub fn render(e: &LinkEvent) -> String {
    match e {
        LinkEvent::EnqReceived { reply, reason } => format!(
            "enq {}{}",
            reply.map_or("-", |r| r.as_str()),
            reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
        LinkEvent::FrameReceived {
            number,
            reply,
            reason,
        } => format!(
            "frame {} {}{}",
            number.map_or("?".to_string(), |n| n.to_string()),
            reply.map_or("-", |r| r.as_str()),
            reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
        LinkEvent::EotReceived { discarded_partial } => format!(
            "eot{}",
            if *discarded_partial {
                " partial-discarded"
            } else {
                ""
            }
        ),
        other => format!("{other:?}"),
    }
}
