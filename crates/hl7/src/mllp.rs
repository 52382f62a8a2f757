//! MLLP framing: `0x0B` message `0x1C 0x0D`, sans-I/O.
//!
//! [`MllpDecoder`] takes bytes as they arrive ([`MllpDecoder::push`]) and
//! yields [`MllpEvent`]s ([`MllpDecoder::next_event`]). Bytes outside a
//! block are reported and dropped; a start block inside a block drops the
//! unfinished block and starts again; a block longer than the maximum is
//! dropped while the decoder skips to its end, so memory stays bounded.

use std::collections::VecDeque;

/// Start block.
pub const VT: u8 = 0x0B;
/// End block, first byte.
pub const FS: u8 = 0x1C;
/// End block, second byte.
pub const CR: u8 = 0x0D;

/// Default maximum frame size: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;

/// Why bytes were dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscardReason {
    /// Bytes between frames (not whitespace).
    Garbage,
    /// A frame longer than the maximum.
    Oversized,
    /// A new start block arrived before the end of the previous frame.
    Interrupted,
    /// The input ended part-way through a frame ([`MllpDecoder::finish`]).
    Truncated,
}

/// What the decoder found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MllpEvent {
    /// One complete message (without the framing bytes).
    Frame(Vec<u8>),
    /// Bytes dropped, and why.
    Discarded {
        /// How many bytes.
        bytes: usize,
        /// Why.
        reason: DiscardReason,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Idle,
    InFrame,
    SawFs,
    Skipping,
    SkippingSawFs,
}

/// Sans-I/O MLLP decoder.
#[derive(Debug)]
pub struct MllpDecoder {
    state: State,
    buf: Vec<u8>,
    max_frame: usize,
    garbage: usize,
    skipped: usize,
    events: VecDeque<MllpEvent>,
}

impl Default for MllpDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

impl MllpDecoder {
    /// A decoder that drops frames longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        MllpDecoder {
            state: State::Idle,
            buf: Vec::new(),
            max_frame,
            garbage: 0,
            skipped: 0,
            events: VecDeque::new(),
        }
    }

    fn flush_garbage(&mut self) {
        if self.garbage > 0 {
            self.events.push_back(MllpEvent::Discarded {
                bytes: self.garbage,
                reason: DiscardReason::Garbage,
            });
            self.garbage = 0;
        }
    }

    fn start_frame(&mut self) {
        self.flush_garbage();
        self.buf.clear();
        self.state = State::InFrame;
    }

    fn interrupted(&mut self, extra: usize) {
        let bytes = self.buf.len() + extra;
        self.events.push_back(MllpEvent::Discarded {
            bytes,
            reason: DiscardReason::Interrupted,
        });
        self.buf.clear();
    }

    /// Feeds bytes. Events become available through [`MllpDecoder::next_event`].
    pub fn push(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match self.state {
                State::Idle => match memchr::memchr(VT, data) {
                    Some(p) => {
                        self.garbage += data[..p]
                            .iter()
                            .filter(|b| !b.is_ascii_whitespace())
                            .count();
                        data = &data[p + 1..];
                        self.start_frame();
                    }
                    None => {
                        self.garbage += data.iter().filter(|b| !b.is_ascii_whitespace()).count();
                        data = &[];
                    }
                },
                State::InFrame => {
                    let stop = memchr::memchr2(FS, VT, data);
                    let take = stop.unwrap_or(data.len());
                    if self.buf.len() + take > self.max_frame {
                        let skipped = self.buf.len();
                        self.buf = Vec::new();
                        self.skipped = skipped;
                        self.state = State::Skipping;
                        continue;
                    }
                    self.buf.extend_from_slice(&data[..take]);
                    match stop {
                        Some(p) => {
                            if data[p] == VT {
                                self.interrupted(0);
                                self.start_frame();
                            } else {
                                self.state = State::SawFs;
                            }
                            data = &data[p + 1..];
                        }
                        None => data = &[],
                    }
                }
                State::SawFs => {
                    let b = data[0];
                    let frame = std::mem::take(&mut self.buf);
                    self.events.push_back(MllpEvent::Frame(frame));
                    self.state = State::Idle;
                    if b == CR {
                        data = &data[1..];
                    }
                }
                State::Skipping => match memchr::memchr2(FS, VT, data) {
                    Some(p) => {
                        self.skipped += p;
                        if data[p] == VT {
                            self.events.push_back(MllpEvent::Discarded {
                                bytes: self.skipped,
                                reason: DiscardReason::Oversized,
                            });
                            self.skipped = 0;
                            self.start_frame();
                        } else {
                            self.state = State::SkippingSawFs;
                        }
                        data = &data[p + 1..];
                    }
                    None => {
                        self.skipped += data.len();
                        data = &[];
                    }
                },
                State::SkippingSawFs => {
                    if data[0] == CR {
                        data = &data[1..];
                    }
                    self.events.push_back(MllpEvent::Discarded {
                        bytes: self.skipped,
                        reason: DiscardReason::Oversized,
                    });
                    self.skipped = 0;
                    self.state = State::Idle;
                }
            }
        }
    }

    /// The next event, if any.
    pub fn next_event(&mut self) -> Option<MllpEvent> {
        self.events.pop_front()
    }

    /// The next complete frame, skipping discard events.
    pub fn next_frame(&mut self) -> Option<Vec<u8>> {
        while let Some(e) = self.events.pop_front() {
            if let MllpEvent::Frame(f) = e {
                return Some(f);
            }
        }
        None
    }

    /// End of input: a frame whose end block lacks only the final CR is
    /// delivered; an unfinished frame is reported as truncated.
    pub fn finish(&mut self) {
        match self.state {
            State::Idle => {}
            State::InFrame => {
                let bytes = self.buf.len();
                self.buf.clear();
                self.events.push_back(MllpEvent::Discarded {
                    bytes,
                    reason: DiscardReason::Truncated,
                });
            }
            State::SawFs => {
                let frame = std::mem::take(&mut self.buf);
                self.events.push_back(MllpEvent::Frame(frame));
            }
            State::Skipping | State::SkippingSawFs => {
                self.events.push_back(MllpEvent::Discarded {
                    bytes: self.skipped,
                    reason: DiscardReason::Oversized,
                });
                self.skipped = 0;
            }
        }
        self.flush_garbage();
        self.state = State::Idle;
    }

    /// Bytes currently buffered for an unfinished frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// Appends `0x0B message 0x1C 0x0D` to `out`.
pub fn encode_frame(message: &[u8], out: &mut Vec<u8>) {
    out.reserve(message.len() + 3);
    out.push(VT);
    out.extend_from_slice(message);
    out.push(FS);
    out.push(CR);
}

/// `tokio_util::codec` adapter over the sans-I/O decoder (feature `tokio-codec`).
#[cfg(feature = "tokio-codec")]
pub mod codec {
    use super::{MllpDecoder, MllpEvent};
    use bytes::BytesMut;

    /// Decodes [`MllpEvent`]s and encodes messages as MLLP blocks.
    #[derive(Debug, Default)]
    pub struct MllpCodec {
        dec: MllpDecoder,
    }

    impl MllpCodec {
        /// A codec that drops frames longer than `max_frame` bytes.
        pub fn new(max_frame: usize) -> Self {
            MllpCodec {
                dec: MllpDecoder::new(max_frame),
            }
        }
    }

    impl tokio_util::codec::Decoder for MllpCodec {
        type Item = MllpEvent;
        type Error = std::io::Error;

        fn decode(&mut self, src: &mut BytesMut) -> Result<Option<MllpEvent>, std::io::Error> {
            if !src.is_empty() {
                self.dec.push(src);
                src.clear();
            }
            Ok(self.dec.next_event())
        }

        fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<MllpEvent>, std::io::Error> {
            if let Some(e) = self.decode(src)? {
                return Ok(Some(e));
            }
            self.dec.finish();
            Ok(self.dec.next_event())
        }
    }

    impl<T: AsRef<[u8]>> tokio_util::codec::Encoder<T> for MllpCodec {
        type Error = std::io::Error;

        fn encode(&mut self, item: T, dst: &mut BytesMut) -> Result<(), std::io::Error> {
            let m = item.as_ref();
            dst.reserve(m.len() + 3);
            dst.extend_from_slice(&[super::VT]);
            dst.extend_from_slice(m);
            dst.extend_from_slice(&[super::FS, super::CR]);
            Ok(())
        }
    }

    #[cfg(test)]
    #[allow(clippy::panic)]
    mod tests {
        use super::*;
        use tokio_util::codec::{Decoder, Encoder};

        #[test]
        fn codec_round_trip_and_recovery() {
            let mut c = MllpCodec::new(64);
            let mut buf = BytesMut::new();
            c.encode(b"MSH|^~\\&|A\r", &mut buf)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&buf[..], b"\x0bMSH|^~\\&|A\r\x1c\r");
            let mut input = BytesMut::from(&b"noise"[..]);
            input.extend_from_slice(&buf);
            input.extend_from_slice(b"\x0bcut");
            let mut got = Vec::new();
            while let Some(e) = c.decode(&mut input).unwrap_or_else(|e| panic!("{e}")) {
                got.push(e);
            }
            while let Some(e) = c.decode_eof(&mut input).unwrap_or_else(|e| panic!("{e}")) {
                got.push(e);
            }
            assert_eq!(
                got,
                [
                    MllpEvent::Discarded {
                        bytes: 5,
                        reason: super::super::DiscardReason::Garbage
                    },
                    MllpEvent::Frame(b"MSH|^~\\&|A\r".to_vec()),
                    MllpEvent::Discarded {
                        bytes: 3,
                        reason: super::super::DiscardReason::Truncated
                    },
                ]
            );
        }
    }
}
