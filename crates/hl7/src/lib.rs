//! # aliquot-hl7: HL7 v2 parser, encoder, ACK builder and MLLP codec
//!
//! Sans-I/O: bytes in, values and bytes out. Nothing here reads a clock, a
//! socket or a file, so every behaviour is testable byte for byte.
//!
//! ## Parsing model
//!
//! [`Document::parse`] reads a whole buffer (one message, several messages,
//! an FHS/BHS batch file) into a **flat tree of `u32` spans** into the
//! original buffer: one vector per level (segment, field, repetition,
//! component, sub-component), each node 8 bytes (`end`, `kids_end`). A node
//! that contains no delimiter of a lower level has no children stored; its
//! single child is virtual. Nothing is copied and nothing is unescaped
//! during parsing: [`Field::value`] and friends unescape lazily and return a
//! `Cow<str>` that borrows when the leaf holds no escape sequence.
//!
//! Delimiters are read from every `MSH`/`FHS`/`BHS` segment (the byte after
//! the segment name, then the encoding characters of field 2, including the
//! v2.7 truncation character). Segments end at CR, LF or CRLF; a leading
//! UTF-8 BOM is skipped. The MSH numbering trap is handled once, in
//! [`Segment::field`]: `MSH-1` is the field separator, `MSH-2` the encoding
//! characters (never split, never unescaped).
//!
//! ## Diagnostic model
//!
//! Parsing never fails and never panics. It returns the tree plus a list of
//! [`Diagnostic`]s, each with a [`Severity`] (`Error`: the structure is
//! doubtful and the message must not be trusted blindly, e.g. a BHS inside
//! a batch, a missing MSH, a limit hit; `Warning`: tolerated deviation, e.g.
//! LF segment ends, a probable missing segment terminator), a stable
//! [`DiagnosticKind`] and a byte offset. Callers decide: a listener should
//! answer `AE`/`AR` when [`Document::has_errors`] is true.
//!
//! ## `\Xhh\` policy
//!
//! Hex escapes decode to bytes in the character set named by MSH-18: when
//! MSH-18 says UTF-8 (`UNICODE UTF-8`, `UTF-8`) the bytes are decoded as
//! UTF-8 (invalid sequences become U+FFFD); for everything else (empty,
//! `ASCII`, `8859/1`, …) each byte is taken as a Latin-1 code point, which
//! is what most senders mean. The encoder writes non-ASCII text as UTF-8 by
//! default, or as `\Xhh\` Latin-1 escapes when asked. A buffer that is not
//! valid UTF-8 is read as Latin-1 (with a warning).
//!
//! ## Limits
//!
//! [`Limits`] bounds input size (default 64 MiB, hard maximum 4 GiB - 1
//! because spans are `u32`), segments, fields per segment and tree nodes;
//! hitting a limit stops parsing with an `Error` diagnostic, so memory stays
//! proportional to the accepted input. The tree depth is fixed by the format
//! (field → repetition → component → sub-component), and formatting escapes
//! that expand (`\.sp n\`, `\.sk n\`) are capped at 64 units.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ack;
mod encode;
mod escape;
pub mod fuzzing;
mod mllp;
mod parse;
mod segments;

pub use ack::{AckCode, AckError, AckMode, AckOptions, ErrorLocation, ack_mode, build_ack};
pub use encode::{EncodeOptions, NonAscii, OwnedField, OwnedMessage, OwnedSegment, escape_into};
pub use escape::{Charset, UnescapeOptions, unescape, unescape_with};
#[cfg(feature = "tokio-codec")]
pub use mllp::codec::MllpCodec;
pub use mllp::{DEFAULT_MAX_FRAME, DiscardReason, MllpDecoder, MllpEvent, encode_frame};
pub use parse::*;
pub use segments::*;
