//! # aliquot-astm: ASTM E1381 (LIS01-A2) link layer and E1394 (LIS02-A2) records
//!
//! Sans-I/O. [`Link`] is the low-level protocol as a state machine: feed it
//! received bytes ([`Link::receive`]) and the current time ([`Link::tick`]),
//! queue messages to send ([`Link::send`]), and drain [`Output`]s: bytes to
//! write, complete messages (held for [`Link::commit`], see below), and events. [`Link::next_deadline`] is the
//! timer request: call `tick` at or after that instant. Time is a `u64` of
//! milliseconds from any origin chosen by the caller; the crate never reads
//! a clock. The same machine plays the LIS or the instrument
//! ([`LinkConfig::lis`], [`LinkConfig::instrument`]), so tests can run both
//! ends against each other.
//!
//! Defaults follow CLSI LIS01-A2: 15 s reply timer, 30 s receiver timer,
//! 10 s after a busy NAK, 20 s (LIS) / 1 s (instrument) after contention,
//! 6 transmissions per frame, 240 text bytes per frame, frame numbers mod 8
//! across the session, checksums on the encoded bytes (upper-case hex out,
//! either case in). A repeated last frame is acknowledged and not stored
//! twice; EOT in place of ACK is a receiver interrupt request.
//! [`Handshake::None`] serves vendors that drop ENQ/ACK.
//!
//! ## Acknowledge only what is stored: the held ACK
//!
//! As receiver, the link acknowledges intermediate frames at once, but the
//! frame that completes a message (the ETX frame carrying its L record) is
//! delivered as [`Output::HeldMessage`] `{ token, message }` with **no**
//! reply written. The application stores the message durably and then calls
//! [`Link::commit`]`(token, now)`, which writes the ACK, or
//! [`Link::refuse`]`(token, now)`, which writes NAK: the sender retransmits
//! the frame and the message is delivered again under a new token (an
//! instrument gives up after 6 transmissions of one frame; the message is
//! then the instrument's to send again). While a reply is held the receiver
//! timer is stopped and [`Link::next_deadline`] is the hold deadline,
//! [`LinkConfig::ack_hold_ms`] (10 s, below the sender's 15 s reply timer):
//! if the application has not answered by then the link writes NAK itself
//! ([`LinkEvent::HoldExpired`]), never ACK. A commit that comes too late, or
//! after the session ended while held (EOT, a new ENQ, or another frame:
//! [`LinkEvent::HoldAbandoned`]), writes nothing and returns an [`AckError`].
//! A copy of the held frame gets no reply and is not delivered again; a
//! final frame repeated after its ACK (the ACK was lost) is acknowledged
//! again without a second delivery. Because a refused, expired or abandoned
//! message comes back, storing must be idempotent (key on the message, e.g.
//! instrument + specimen + test + time). Data that ends at EOT without an L
//! record cannot be held (every frame was acknowledged before the EOT) and
//! arrives as [`Output::Message`]. [`LinkConfig::auto_ack`] restores the
//! plain receiver (ACK at once, [`Output::Message`] at EOT) for tools that
//! store nothing; the default holds.
//!
//! [`records`] parses E1394 records leniently (delimiters from each H
//! record, escapes, repeats, the doubled-backslash header seen in the wild)
//! and gives typed views of the lab fields; [`records::build_query_answer`]
//! writes host-query answers.
//!
//! Nothing here panics on any input: bad bytes become NAKs, events or
//! diagnostics, and every buffer is bounded by a configurable limit.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod frame;
pub mod fuzzing;
pub mod link;
pub mod records;

pub use frame::{FrameEnd, FrameError, checksum, encode_frame, parse_frame, split_record};
pub use link::{
    AckError, AckToken, Handshake, Link, LinkConfig, LinkEvent, Output, Reply, Role, SendError,
};
pub use records::{Record, Records, parse_records};
