//! The E1381 low-level protocol as a sans-I/O state machine.

use std::collections::VecDeque;

use crate::frame::{
    ACK, CR, ENQ, EOT, ETB, ETX, FrameEnd, FrameError, LF, NAK, STX, parse_frame, split_record,
};

/// Which side of the link we are. Decides who wins contention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The laboratory computer: yields on contention.
    Lis,
    /// The analyzer: has priority on contention.
    Instrument,
}

/// Establishment and acknowledgement mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handshake {
    /// Standard: ENQ/ACK establishment, ACK/NAK per frame, EOT.
    Enq,
    /// For vendors that drop it: no ENQ, no ACK/NAK; the sender writes
    /// frames then EOT; the receiver delivers on an L record or EOT.
    None,
}

/// Link parameters. Times are milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct LinkConfig {
    /// Contention priority.
    pub role: Role,
    /// Handshake mode.
    pub handshake: Handshake,
    /// Sender: wait for a reply to ENQ or a frame (15 s).
    pub reply_timeout_ms: u64,
    /// Receiver: wait for the next frame or EOT (30 s).
    pub receive_timeout_ms: u64,
    /// Wait after a busy NAK to ENQ before the next ENQ (10 s).
    pub busy_retry_ms: u64,
    /// Wait after losing (LIS, 20 s) or winning (instrument, 1 s) contention.
    pub contention_wait_ms: u64,
    /// Most transmissions of one frame, and most establishment attempts (6).
    pub max_attempts: u32,
    /// Text bytes per frame when sending (240).
    pub max_frame_text: usize,
    /// Largest received frame accepted, bytes (some analyzers send a whole message in one frame).
    pub max_frame_bytes: usize,
    /// Largest received message kept, bytes; beyond it the session is aborted.
    pub max_message_bytes: usize,
    /// Stop sending when the receiver answers a frame with EOT.
    pub honor_interrupt: bool,
    /// Receiver, with [`Handshake::Enq`]: acknowledge every frame at once and
    /// deliver messages as [`Output::Message`] at EOT, as a plain E1381
    /// receiver does. For tools and tests that store nothing. `false` (the
    /// default) holds the ACK of a message's final frame until
    /// [`Link::commit`]; see [`Output::HeldMessage`].
    pub auto_ack: bool,
    /// Receiver: how long the reply to a held final frame waits for
    /// [`Link::commit`] or [`Link::refuse`] before the link answers NAK by
    /// itself (10 s). Keep it below the sender's 15 s reply timer.
    pub ack_hold_ms: u64,
}

impl LinkConfig {
    /// Defaults for the LIS side.
    pub fn lis() -> Self {
        LinkConfig {
            role: Role::Lis,
            handshake: Handshake::Enq,
            reply_timeout_ms: 15_000,
            receive_timeout_ms: 30_000,
            busy_retry_ms: 10_000,
            contention_wait_ms: 20_000,
            max_attempts: 6,
            max_frame_text: crate::frame::MAX_FRAME_TEXT,
            max_frame_bytes: 64 * 1024,
            max_message_bytes: 16 * 1024 * 1024,
            honor_interrupt: false,
            auto_ack: false,
            ack_hold_ms: 10_000,
        }
    }

    /// Defaults for the instrument side.
    pub fn instrument() -> Self {
        LinkConfig {
            role: Role::Instrument,
            contention_wait_ms: 1_000,
            ..Self::lis()
        }
    }
}

/// A reply byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// ACK.
    Ack,
    /// NAK.
    Nak,
    /// EOT (receiver interrupt request).
    Eot,
}

impl Reply {
    /// `"ACK"`, `"NAK"` or `"EOT"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reply::Ack => "ACK",
            Reply::Nak => "NAK",
            Reply::Eot => "EOT",
        }
    }
}

/// Names one held final-frame reply: given with [`Output::HeldMessage`],
/// answered with [`Link::commit`] or [`Link::refuse`]. Tokens of one link
/// increase from 1 and are never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AckToken(u64);

impl AckToken {
    /// The number (for logs and correlation).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for AckToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why [`Link::commit`] or [`Link::refuse`] wrote nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckError {
    /// The hold deadline ([`LinkConfig::ack_hold_ms`]) passed first: the link
    /// has already answered NAK ([`LinkEvent::HoldExpired`]). The sender
    /// retransmits the frame and the message is delivered again under a new
    /// token, so storing must be idempotent.
    Expired,
    /// The session ended while the reply was held (the sender wrote EOT or a
    /// new ENQ, or sent another frame): no reply can be sent any more
    /// ([`LinkEvent::HoldAbandoned`]). The instrument counts the message as
    /// not delivered and may send it again.
    SessionEnded,
    /// This token was already committed or refused.
    AlreadyAnswered,
    /// Not a token of this link, or too old to be remembered.
    Unknown,
}

impl std::fmt::Display for AckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AckError::Expired => "the hold expired; the link already answered NAK",
            AckError::SessionEnded => "the session ended while the reply was held",
            AckError::AlreadyAnswered => "already committed or refused",
            AckError::Unknown => "unknown token",
        })
    }
}

impl std::error::Error for AckError {}

/// Something that happened on the link (for logs, metrics and tools).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// An ENQ arrived; what we answered (`None`: ignored).
    EnqReceived {
        /// Our reply.
        reply: Option<Reply>,
        /// Why, when not a plain ACK.
        reason: Option<String>,
    },
    /// A frame arrived.
    FrameReceived {
        /// Its frame number, if readable.
        number: Option<u8>,
        /// Our reply (`None` without handshake, or when the reply is held:
        /// see [`Output::HeldMessage`]).
        reply: Option<Reply>,
        /// Why it was rejected or not stored.
        reason: Option<String>,
    },
    /// An EOT arrived.
    EotReceived {
        /// An unfinished (ETB) record was thrown away.
        discarded_partial: bool,
    },
    /// The receiver timer expired; the incomplete message was discarded.
    ReceiveTimeout,
    /// Both sides sent ENQ.
    Contention,
    /// The receiver answered our ENQ with NAK (busy).
    Busy,
    /// A frame is being sent again.
    Retransmit {
        /// Frame number.
        number: u8,
        /// Transmission count, 2..=max.
        attempt: u32,
    },
    /// The receiver asked us to stop (EOT instead of ACK).
    InterruptRequested {
        /// Whether we stopped.
        honored: bool,
    },
    /// A queued message was fully acknowledged.
    SendComplete {
        /// Id returned by [`Link::send`].
        id: u64,
    },
    /// A queued message was abandoned.
    SendFailed {
        /// Id returned by [`Link::send`].
        id: u64,
        /// Why.
        reason: String,
    },
    /// Bytes that fit no state were ignored.
    Ignored {
        /// How many.
        bytes: usize,
    },
    /// A held final frame was answered by [`Link::commit`] (`Ack`, or `Eot`
    /// when an interrupt was requested) or [`Link::refuse`] (`Nak`).
    HoldAnswered {
        /// The token.
        token: AckToken,
        /// What was written.
        reply: Reply,
    },
    /// Nobody answered a held final frame within
    /// [`LinkConfig::ack_hold_ms`]: the link wrote NAK. The sender will
    /// retransmit and the message will be delivered again.
    HoldExpired {
        /// The token.
        token: AckToken,
    },
    /// The session ended while a final frame's reply was held: nothing was
    /// or will be written for it; a later commit returns
    /// [`AckError::SessionEnded`].
    HoldAbandoned {
        /// The token.
        token: AckToken,
        /// Why.
        reason: String,
    },
}

/// What the caller must do or may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Write these bytes to the line.
    Write(Vec<u8>),
    /// A complete received message, E1394 records each ending with CR, whose
    /// acknowledgement is already settled: nothing to answer. Produced with
    /// [`LinkConfig::auto_ack`], with [`Handshake::None`], and, when holding,
    /// for what arrives before EOT without a closing L record (its frames
    /// were all acknowledged before the EOT, so no reply can be held).
    Message(Vec<u8>),
    /// A complete received message (H … L) whose final frame has NOT been
    /// acknowledged yet. Store it durably, then call [`Link::commit`] to
    /// write the ACK; or [`Link::refuse`] to write NAK, so the sender
    /// retransmits the frame and the message is delivered again (after 6
    /// transmissions the instrument gives up and the message is its to send
    /// again). Without an answer within [`LinkConfig::ack_hold_ms`] the link
    /// writes NAK itself. The same message can therefore arrive more than
    /// once: storing must be idempotent.
    HeldMessage {
        /// Answers this message.
        token: AckToken,
        /// E1394 records, each ending with CR.
        message: Vec<u8>,
    },
    /// Something happened.
    Event(LinkEvent),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Neutral,
    Establishing { deadline: u64 },
    Sending { deadline: u64 },
    Receiving { deadline: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Collect {
    Idle,
    Text,
    Trailer(u8),
}

/// Why [`Link::send`] refused a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// A control byte that may not appear in frame text.
    ForbiddenByte {
        /// Its offset in the message.
        offset: usize,
        /// The byte.
        byte: u8,
    },
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::ForbiddenByte { offset, byte } => {
                write!(
                    f,
                    "byte 0x{byte:02X} at offset {offset} may not be sent in an ASTM frame"
                )
            }
        }
    }
}

impl std::error::Error for SendError {}

/// A final frame whose reply waits for the application.
#[derive(Debug)]
struct Hold {
    token: AckToken,
    number: u8,
    deadline: u64,
    /// Receiver state before the frame, restored when it is refused so that
    /// its retransmission is taken as new.
    prev_last_fn: Option<u8>,
    message_before: Vec<u8>,
    partial_before: Vec<u8>,
}

/// How many answered, expired or abandoned tokens are remembered for
/// [`AckError`].
const PAST_HOLDS: usize = 16;

/// The link state machine.
#[derive(Debug)]
pub struct Link {
    cfg: LinkConfig,
    state: State,
    out: VecDeque<Output>,
    queue: VecDeque<(u64, Vec<u8>)>,
    next_id: u64,
    not_before: u64,
    establish_failures: u32,
    busy: bool,
    // sender
    frames: Vec<Vec<u8>>,
    frame_idx: usize,
    attempts: u32,
    // receiver
    collect: Collect,
    frame_buf: Vec<u8>,
    frame_overflow: usize,
    skip_lf: bool,
    expected_fn: u8,
    last_fn: Option<u8>,
    partial: Vec<u8>,
    message: Vec<u8>,
    ignored: usize,
    interrupt: bool,
    hold: Option<Hold>,
    next_token: u64,
    past_holds: VecDeque<(AckToken, AckError)>,
}

impl Link {
    /// A link in the neutral state.
    pub fn new(cfg: LinkConfig) -> Self {
        Link {
            cfg,
            state: State::Neutral,
            out: VecDeque::new(),
            queue: VecDeque::new(),
            next_id: 1,
            not_before: 0,
            establish_failures: 0,
            busy: false,
            frames: Vec::new(),
            frame_idx: 0,
            attempts: 0,
            collect: Collect::Idle,
            frame_buf: Vec::new(),
            frame_overflow: 0,
            skip_lf: false,
            expected_fn: 1,
            last_fn: None,
            partial: Vec::new(),
            message: Vec::new(),
            ignored: 0,
            interrupt: false,
            hold: None,
            next_token: 1,
            past_holds: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LinkConfig {
        &self.cfg
    }

    /// When busy, an incoming ENQ is answered with NAK.
    pub fn set_busy(&mut self, busy: bool) {
        self.busy = busy;
    }

    /// Ask the sender to stop: the next good frame is answered with EOT.
    pub fn request_interrupt(&mut self) {
        self.interrupt = true;
    }

    /// True when neither sending nor receiving.
    pub fn is_neutral(&self) -> bool {
        self.state == State::Neutral
    }

    /// Messages waiting to be sent (including the one in progress).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Queues a message (E1394 records, each ending with CR; a missing
    /// final CR is added) and starts sending if the line is free. A message
    /// holding a byte that may not appear in frame text (LF, STX, ETX, …) is
    /// refused rather than altered.
    pub fn send(&mut self, message: Vec<u8>, now: u64) -> Result<u64, SendError> {
        if let Some(offset) = message.iter().position(|&c| crate::frame::is_forbidden(c)) {
            return Err(SendError::ForbiddenByte {
                offset,
                byte: message[offset],
            });
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut m = message;
        if m.last() != Some(&CR) {
            m.push(CR);
        }
        self.queue.push_back((id, m));
        self.try_start(now);
        Ok(id)
    }

    /// The final frame whose reply is held, if any (see
    /// [`Output::HeldMessage`]).
    pub fn held(&self) -> Option<AckToken> {
        self.hold.as_ref().map(|h| h.token)
    }

    /// The message of `token` is durably stored: acknowledge its final frame
    /// (ACK, or EOT when [`Link::request_interrupt`] was called). Call it only
    /// after the commit. Writes nothing and returns an error when the reply
    /// can no longer be given: the hold expired (the link has answered NAK;
    /// also when `now` is at or past the hold deadline and [`Link::tick`] has
    /// not run yet), the session ended, or the token was already answered.
    /// Then the instrument does not count the message as delivered and may
    /// send it again; what was stored stays stored, so storing must be
    /// idempotent.
    pub fn commit(&mut self, token: AckToken, now: u64) -> Result<(), AckError> {
        self.answer(token, true, now)
    }

    /// The message of `token` could not be stored: answer its final frame
    /// with NAK. The sender retransmits the frame and the message is
    /// delivered again under a new token; an instrument gives up after 6
    /// transmissions of one frame, and then the message is the instrument's
    /// to send again. Errors as for [`Link::commit`].
    pub fn refuse(&mut self, token: AckToken, now: u64) -> Result<(), AckError> {
        self.answer(token, false, now)
    }

    fn answer(&mut self, token: AckToken, accept: bool, now: u64) -> Result<(), AckError> {
        match &self.hold {
            Some(h) if h.token == token => {}
            _ => {
                return Err(self
                    .past_holds
                    .iter()
                    .find(|(t, _)| *t == token)
                    .map_or(AckError::Unknown, |(_, e)| *e));
            }
        }
        self.expire_hold(now);
        let Some(h) = self.hold.take() else {
            return Err(AckError::Expired);
        };
        let reply = if !accept {
            self.unwind_hold(h);
            Reply::Nak
        } else if self.interrupt {
            self.interrupt = false;
            Reply::Eot
        } else {
            Reply::Ack
        };
        self.write(vec![reply_byte(reply)]);
        self.remember(token, AckError::AlreadyAnswered);
        self.event(LinkEvent::HoldAnswered { token, reply });
        self.state = State::Receiving {
            deadline: now + self.cfg.receive_timeout_ms,
        };
        Ok(())
    }

    /// Answers NAK for a hold whose deadline has passed.
    fn expire_hold(&mut self, now: u64) {
        let Some(h) = self.hold.take_if(|h| now >= h.deadline) else {
            return;
        };
        let token = h.token;
        self.unwind_hold(h);
        self.write(vec![NAK]);
        self.remember(token, AckError::Expired);
        self.event(LinkEvent::HoldExpired { token });
        self.state = State::Receiving {
            deadline: now + self.cfg.receive_timeout_ms,
        };
    }

    /// The held frame was refused: expect it again.
    fn unwind_hold(&mut self, h: Hold) {
        self.message = h.message_before;
        self.partial = h.partial_before;
        self.expected_fn = h.number;
        self.last_fn = h.prev_last_fn;
    }

    /// The session ended or moved on while a reply was held.
    fn abandon_hold(&mut self, reason: &str) {
        if let Some(h) = self.hold.take() {
            self.remember(h.token, AckError::SessionEnded);
            self.event(LinkEvent::HoldAbandoned {
                token: h.token,
                reason: reason.to_string(),
            });
        }
    }

    fn remember(&mut self, token: AckToken, e: AckError) {
        if self.past_holds.len() >= PAST_HOLDS {
            self.past_holds.pop_front();
        }
        self.past_holds.push_back((token, e));
    }

    /// The next output, if any.
    pub fn poll(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When `tick` must next be called (the timer request), if any.
    pub fn next_deadline(&self) -> Option<u64> {
        if let Some(h) = &self.hold {
            // The receiver timer is stopped while we owe the sender a reply.
            return Some(h.deadline);
        }
        match self.state {
            State::Establishing { deadline }
            | State::Sending { deadline }
            | State::Receiving { deadline } => Some(deadline),
            State::Neutral => (!self.queue.is_empty()).then_some(self.not_before),
        }
    }

    /// Advances time: fires expired timers and starts pending sends.
    pub fn tick(&mut self, now: u64) {
        if self.hold.is_some() {
            self.expire_hold(now);
            self.try_start(now);
            return;
        }
        match self.state {
            State::Establishing { deadline } if now >= deadline => {
                self.write(vec![EOT]);
                self.state = State::Neutral;
                self.establish_failures += 1;
                if self.establish_failures >= self.cfg.max_attempts {
                    self.fail_current("no reply to ENQ");
                } else {
                    self.not_before = now + self.cfg.busy_retry_ms;
                }
            }
            State::Sending { deadline } if now >= deadline => {
                self.write(vec![EOT]);
                self.state = State::Neutral;
                self.fail_current("no reply to frame");
            }
            State::Receiving { deadline } if now >= deadline => {
                self.reset_receiver();
                self.state = State::Neutral;
                self.event(LinkEvent::ReceiveTimeout);
            }
            _ => {}
        }
        self.try_start(now);
    }

    /// Feeds received bytes.
    pub fn receive(&mut self, bytes: &[u8], now: u64) {
        let mut i = 0;
        while i < bytes.len() {
            // Bulk path: frame text.
            if self.collect == Collect::Text {
                let rest = &bytes[i..];
                let stop = rest
                    .iter()
                    .position(|&c| matches!(c, ETX | ETB | STX | EOT | ENQ))
                    .unwrap_or(rest.len());
                self.push_frame_bytes(&rest[..stop]);
                i += stop;
                if i >= bytes.len() {
                    break;
                }
            }
            let b = bytes[i];
            i += 1;
            self.byte(b, now);
        }
        self.flush_ignored();
        self.try_start(now);
    }

    fn push_frame_bytes(&mut self, b: &[u8]) {
        if self.frame_buf.len() + b.len() > self.cfg.max_frame_bytes {
            self.frame_overflow += b.len();
        } else {
            self.frame_buf.extend_from_slice(b);
        }
    }

    fn flush_ignored(&mut self) {
        if self.ignored > 0 {
            let bytes = self.ignored;
            self.ignored = 0;
            self.event(LinkEvent::Ignored { bytes });
        }
    }

    fn write(&mut self, b: Vec<u8>) {
        self.out.push_back(Output::Write(b));
    }

    fn event(&mut self, e: LinkEvent) {
        self.out.push_back(Output::Event(e));
    }

    fn fail_current(&mut self, reason: &str) {
        self.establish_failures = 0;
        if let Some((id, _)) = self.queue.pop_front() {
            self.event(LinkEvent::SendFailed {
                id,
                reason: reason.to_string(),
            });
        }
    }

    fn reset_receiver(&mut self) {
        self.collect = Collect::Idle;
        self.frame_buf.clear();
        self.frame_overflow = 0;
        self.expected_fn = 1;
        self.last_fn = None;
        self.partial.clear();
        self.message.clear();
    }

    fn try_start(&mut self, now: u64) {
        if self.state != State::Neutral || now < self.not_before || self.collect != Collect::Idle {
            return;
        }
        let Some((_, msg)) = self.queue.front() else {
            return;
        };
        // Prepare frames: one low-level message per record, FN continuing.
        let mut frames = Vec::new();
        let mut n = 1u8;
        for rec in msg.split_inclusive(|&c| c == CR) {
            let (f, next) = split_record(rec, n, self.cfg.max_frame_text);
            frames.extend(f);
            n = next;
        }
        self.frames = frames;
        self.frame_idx = 0;
        match self.cfg.handshake {
            Handshake::Enq => {
                self.write(vec![ENQ]);
                self.state = State::Establishing {
                    deadline: now + self.cfg.reply_timeout_ms,
                };
            }
            Handshake::None => {
                let mut all = Vec::new();
                for f in &self.frames {
                    all.extend_from_slice(f);
                }
                all.push(EOT);
                self.write(all);
                if let Some((id, _)) = self.queue.pop_front() {
                    self.event(LinkEvent::SendComplete { id });
                }
            }
        }
    }

    fn send_current_frame(&mut self, now: u64) {
        if let Some(f) = self.frames.get(self.frame_idx) {
            let f = f.clone();
            self.write(f);
        }
        self.state = State::Sending {
            deadline: now + self.cfg.reply_timeout_ms,
        };
    }

    fn frame_number(&self, idx: usize) -> u8 {
        self.frames
            .get(idx)
            .and_then(|f| f.get(1))
            .map_or(0, |b| b.wrapping_sub(b'0'))
    }

    fn byte(&mut self, b: u8, now: u64) {
        if self.skip_lf {
            self.skip_lf = false;
            if b == LF {
                return;
            }
        }
        // Frame collection (receiver side).
        match self.collect {
            Collect::Text => match b {
                ETX | ETB => {
                    self.push_frame_bytes(&[b]);
                    self.collect = Collect::Trailer(0);
                    return;
                }
                STX => {
                    self.finish_frame(now, Some(FrameError::NoEndMarker));
                    self.start_frame();
                    return;
                }
                _ => {
                    // EOT/ENQ inside a frame: abandon it, handle the byte.
                    self.collect = Collect::Idle;
                    self.frame_buf.clear();
                    self.frame_overflow = 0;
                }
            },
            Collect::Trailer(k) => {
                if k < 2 {
                    self.push_frame_bytes(&[b]);
                    self.collect = Collect::Trailer(k + 1);
                    return;
                }
                if b == CR {
                    self.push_frame_bytes(&[b]);
                    self.finish_frame(now, None);
                    self.skip_lf = true;
                    return;
                }
                self.finish_frame(now, Some(FrameError::MissingCr));
                // fall through and handle b as a fresh byte
            }
            Collect::Idle => {}
        }
        match self.state {
            State::Neutral => match b {
                ENQ if self.cfg.handshake == Handshake::Enq => {
                    if self.busy {
                        self.write(vec![NAK]);
                        self.event(LinkEvent::EnqReceived {
                            reply: Some(Reply::Nak),
                            reason: Some("busy".into()),
                        });
                    } else {
                        self.write(vec![ACK]);
                        self.reset_receiver();
                        self.state = State::Receiving {
                            deadline: now + self.cfg.receive_timeout_ms,
                        };
                        self.event(LinkEvent::EnqReceived {
                            reply: Some(Reply::Ack),
                            reason: None,
                        });
                    }
                }
                STX if self.cfg.handshake == Handshake::None => {
                    self.reset_receiver();
                    self.state = State::Receiving {
                        deadline: now + self.cfg.receive_timeout_ms,
                    };
                    self.start_frame();
                }
                STX => {
                    // A frame without a session: answer nothing, report it.
                    self.start_frame();
                }
                EOT if self.cfg.handshake == Handshake::None => {}
                EOT => self.event(LinkEvent::EotReceived {
                    discarded_partial: false,
                }),
                CR | LF => {}
                _ => self.ignored += 1,
            },
            State::Establishing { .. } => match b {
                ACK => {
                    self.establish_failures = 0;
                    self.attempts = 1;
                    self.send_current_frame(now);
                }
                NAK => {
                    self.state = State::Neutral;
                    self.not_before = now + self.cfg.busy_retry_ms;
                    self.event(LinkEvent::Busy);
                }
                ENQ => {
                    self.event(LinkEvent::Contention);
                    self.state = State::Neutral;
                    self.not_before = now + self.cfg.contention_wait_ms;
                    if self.cfg.role == Role::Lis {
                        // Yield: become receiver for the instrument's session.
                        self.flush_ignored();
                        self.byte(ENQ, now);
                    }
                }
                CR | LF => {}
                _ => self.ignored += 1,
            },
            State::Sending { .. } => match b {
                ACK => self.advance(now),
                EOT => {
                    let more = self.frame_idx + 1 < self.frames.len();
                    if self.cfg.honor_interrupt && more {
                        self.event(LinkEvent::InterruptRequested { honored: true });
                        self.write(vec![EOT]);
                        self.state = State::Neutral;
                        self.not_before =
                            now + self.cfg.contention_wait_ms.min(self.cfg.busy_retry_ms);
                    } else {
                        self.event(LinkEvent::InterruptRequested { honored: false });
                        self.advance(now);
                    }
                }
                CR | LF => {}
                _ => {
                    // NAK or garbage: send the same frame again.
                    if self.attempts >= self.cfg.max_attempts {
                        self.write(vec![EOT]);
                        self.state = State::Neutral;
                        let n = self.attempts;
                        self.fail_current(&format!("frame rejected {n} times"));
                    } else {
                        self.attempts += 1;
                        let number = self.frame_number(self.frame_idx);
                        self.event(LinkEvent::Retransmit {
                            number,
                            attempt: self.attempts,
                        });
                        self.send_current_frame(now);
                    }
                }
            },
            State::Receiving { .. } => match b {
                STX => self.start_frame(),
                EOT => {
                    self.abandon_hold("the sender ended the session (EOT) before the reply");
                    let discarded_partial = !self.partial.is_empty();
                    self.event(LinkEvent::EotReceived { discarded_partial });
                    self.deliver();
                    self.reset_receiver();
                    self.state = State::Neutral;
                }
                ENQ if self.cfg.handshake == Handshake::Enq => {
                    // The sender restarted its session: start over.
                    self.abandon_hold("the sender restarted the session (ENQ) before the reply");
                    self.reset_receiver();
                    self.write(vec![ACK]);
                    self.state = State::Receiving {
                        deadline: now + self.cfg.receive_timeout_ms,
                    };
                    self.event(LinkEvent::EnqReceived {
                        reply: Some(Reply::Ack),
                        reason: Some("ENQ inside a session: restarted".into()),
                    });
                }
                CR | LF => {}
                _ => self.ignored += 1,
            },
        }
    }

    fn advance(&mut self, now: u64) {
        self.frame_idx += 1;
        if self.frame_idx >= self.frames.len() {
            self.write(vec![EOT]);
            self.state = State::Neutral;
            self.frames.clear();
            if let Some((id, _)) = self.queue.pop_front() {
                self.event(LinkEvent::SendComplete { id });
            }
            // Let the other side have the line briefly.
            self.not_before = now;
        } else {
            self.attempts = 1;
            self.send_current_frame(now);
        }
    }

    fn start_frame(&mut self) {
        self.flush_ignored();
        self.frame_buf.clear();
        self.frame_overflow = 0;
        self.frame_buf.push(STX);
        self.collect = Collect::Text;
    }

    fn deliver(&mut self) {
        if !self.message.is_empty() {
            let m = std::mem::take(&mut self.message);
            self.out.push_back(Output::Message(m));
        }
    }

    fn finish_frame(&mut self, now: u64, forced: Option<FrameError>) {
        self.collect = Collect::Idle;
        let handshake = self.cfg.handshake == Handshake::Enq;
        let in_session = matches!(self.state, State::Receiving { .. });
        let buf = std::mem::take(&mut self.frame_buf);
        let number = buf
            .get(1)
            .filter(|c| (b'0'..=b'7').contains(*c))
            .map(|c| c - b'0');
        let verdict: Result<(u8, FrameEnd, Vec<u8>), String> = if self.frame_overflow > 0 {
            Err(FrameError::TooLong(buf.len() + self.frame_overflow).to_string())
        } else if let Some(e) = forced {
            Err(e.to_string())
        } else {
            match parse_frame(&buf) {
                Ok(f) => Ok((f.number, f.end, f.text.to_vec())),
                Err(e) => Err(e.to_string()),
            }
        };
        self.frame_overflow = 0;
        self.frame_buf = buf;
        self.frame_buf.clear();
        if !in_session {
            self.event(LinkEvent::FrameReceived {
                number,
                reply: None,
                reason: Some("frame outside a session".into()),
            });
            return;
        }
        self.state = State::Receiving {
            deadline: now + self.cfg.receive_timeout_ms,
        };
        if let Some(h) = &self.hold {
            match &verdict {
                // A copy of the held frame (the sender repeated it): the one
                // reply it is owed comes with commit or refuse.
                Ok((n, _, _)) if *n == h.number => {
                    self.event(LinkEvent::FrameReceived {
                        number,
                        reply: None,
                        reason: Some(
                            "repeat of the held final frame: not stored again, reply still held"
                                .into(),
                        ),
                    });
                    return;
                }
                // A damaged transmission: NAK it (the sender repeats the held
                // frame); the hold stands.
                Err(reason) => {
                    let reason = reason.clone();
                    self.write(vec![NAK]);
                    self.event(LinkEvent::FrameReceived {
                        number,
                        reply: Some(Reply::Nak),
                        reason: Some(reason),
                    });
                    return;
                }
                // Another frame: the sender did not wait for our reply, so a
                // later ACK would answer the wrong frame.
                Ok((n, _, _)) => {
                    let reason = format!(
                        "the sender sent frame {n} before the reply to frame {} was given",
                        h.number
                    );
                    self.abandon_hold(&reason);
                }
            }
        }
        let reply_ok = if self.interrupt {
            Reply::Eot
        } else {
            Reply::Ack
        };
        let mut held: Option<AckToken> = None;
        let (reply, reason) = match verdict {
            Err(reason) => (Reply::Nak, Some(reason)),
            Ok((n, end, text)) => {
                if n == self.expected_fn {
                    let partial_before = self.partial.len();
                    self.partial.extend_from_slice(&text);
                    let mut hold_from = None;
                    if end == FrameEnd::Last {
                        if self.partial.last() != Some(&CR) {
                            self.partial.push(CR);
                        }
                        let has_l = has_terminator_record(&self.partial);
                        let p = std::mem::take(&mut self.partial);
                        if has_l && handshake && !self.cfg.auto_ack {
                            hold_from = Some((self.message.len(), p[..partial_before].to_vec()));
                        }
                        self.message.extend_from_slice(&p);
                        if has_l && !handshake {
                            self.deliver();
                        }
                    }
                    let prev_last_fn = self.last_fn;
                    self.last_fn = Some(n);
                    self.expected_fn = (n + 1) % 8;
                    if self.message.len() + self.partial.len() > self.cfg.max_message_bytes {
                        self.reset_receiver();
                        (
                            Reply::Nak,
                            Some("message exceeds the size limit; discarded".to_string()),
                        )
                    } else if let Some((message_len, partial_before)) = hold_from {
                        let token = AckToken(self.next_token);
                        self.next_token += 1;
                        let message = std::mem::take(&mut self.message);
                        self.hold = Some(Hold {
                            token,
                            number: n,
                            deadline: now + self.cfg.ack_hold_ms,
                            prev_last_fn,
                            message_before: message.get(..message_len).unwrap_or(&[]).to_vec(),
                            partial_before,
                        });
                        held = Some(token);
                        self.event(LinkEvent::FrameReceived {
                            number,
                            reply: None,
                            reason: Some(format!(
                                "final frame of a message: reply held for commit (token {token})"
                            )),
                        });
                        self.out.push_back(Output::HeldMessage { token, message });
                        (reply_ok, None)
                    } else {
                        if self.interrupt {
                            self.interrupt = false;
                        }
                        (reply_ok, None)
                    }
                } else if Some(n) == self.last_fn {
                    (
                        Reply::Ack,
                        Some("repeat of the last frame: acknowledged, not stored".to_string()),
                    )
                } else {
                    (
                        Reply::Nak,
                        Some(format!(
                            "unexpected frame number {n}, expected {}",
                            self.expected_fn
                        )),
                    )
                }
            }
        };
        if held.is_some() {
            // Written by commit, refuse or the hold deadline.
        } else if handshake {
            self.write(vec![reply_byte(reply)]);
            self.event(LinkEvent::FrameReceived {
                number,
                reply: Some(reply),
                reason,
            });
        } else {
            self.event(LinkEvent::FrameReceived {
                number,
                reply: None,
                reason,
            });
        }
    }
}

fn reply_byte(reply: Reply) -> u8 {
    match reply {
        Reply::Ack => ACK,
        Reply::Nak => NAK,
        Reply::Eot => EOT,
    }
}

fn has_terminator_record(text: &[u8]) -> bool {
    text.split(|&c| c == CR)
        .any(|r| r.len() >= 2 && r[0] == b'L' && !r[1].is_ascii_alphanumeric())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::frame::encode_frame;

    const MSG: &[u8] = b"H|\\^&|||INST\rR|1|^^^GLU|5.6|mmol/L||N||F\rL|1|N\r";

    /// An instrument sending to a LIS over a wire the test can tamper with,
    /// under a manual clock.
    struct Pair {
        inst: Link,
        lis: Link,
        now: u64,
        held: Vec<(AckToken, Vec<u8>)>,
        msgs: Vec<Vec<u8>>,
        lis_events: Vec<LinkEvent>,
        inst_events: Vec<LinkEvent>,
        lis_wrote: Vec<u8>,
        inst_frames: Vec<Vec<u8>>,
        /// Replaces the next LIS write (line noise) when set.
        garble_next_lis_write: Option<u8>,
    }

    impl Pair {
        fn new(lis: LinkConfig) -> Self {
            Pair {
                inst: Link::new(LinkConfig::instrument()),
                lis: Link::new(lis),
                now: 0,
                held: Vec::new(),
                msgs: Vec::new(),
                lis_events: Vec::new(),
                inst_events: Vec::new(),
                lis_wrote: Vec::new(),
                inst_frames: Vec::new(),
                garble_next_lis_write: None,
            }
        }

        fn settle(&mut self) {
            for _ in 0..1_000 {
                let mut moved = false;
                while let Some(o) = self.inst.poll() {
                    match o {
                        Output::Write(b) => {
                            moved = true;
                            if b.first() == Some(&STX) {
                                self.inst_frames.push(b.clone());
                            }
                            self.lis.receive(&b, self.now);
                        }
                        Output::Event(e) => self.inst_events.push(e),
                        other => panic!("instrument delivered {other:?}"),
                    }
                }
                while let Some(o) = self.lis.poll() {
                    match o {
                        Output::Write(b) => {
                            moved = true;
                            self.lis_wrote.extend(&b);
                            let b = match self.garble_next_lis_write.take() {
                                Some(g) => vec![g],
                                None => b,
                            };
                            self.inst.receive(&b, self.now);
                        }
                        Output::HeldMessage { token, message } => self.held.push((token, message)),
                        Output::Message(m) => self.msgs.push(m),
                        Output::Event(e) => self.lis_events.push(e),
                    }
                }
                if !moved {
                    return;
                }
            }
            panic!("links did not settle");
        }

        fn advance(&mut self, ms: u64) {
            self.now += ms;
            self.inst.tick(self.now);
            self.lis.tick(self.now);
            self.settle();
        }

        fn send(&mut self, m: &[u8]) -> u64 {
            let id = self.inst.send(m.to_vec(), self.now).expect("send");
            self.settle();
            id
        }

        fn complete(&self, id: u64) -> bool {
            self.inst_events.contains(&LinkEvent::SendComplete { id })
        }
    }

    #[test]
    fn final_frame_ack_is_held_until_commit() {
        let mut p = Pair::new(LinkConfig::lis());
        let id = p.send(MSG);
        // ENQ, H and R acknowledged at once; L delivered, not acknowledged.
        assert_eq!(p.lis_wrote, [ACK, ACK, ACK]);
        assert_eq!(p.held.len(), 1);
        let (token, message) = p.held[0].clone();
        assert_eq!(message, MSG);
        assert_eq!(p.lis.held(), Some(token));
        assert!(!p.complete(id));
        assert!(p.lis_events.contains(&LinkEvent::FrameReceived {
            number: Some(3),
            reply: None,
            reason: Some("final frame of a message: reply held for commit (token 1)".into()),
        }));
        // The hold deadline is the only timer (the receiver timer is stopped).
        assert_eq!(p.lis.next_deadline(), Some(10_000));
        p.now = 2_000;
        assert_eq!(p.lis.commit(token, p.now), Ok(()));
        p.settle();
        assert_eq!(p.lis_wrote, [ACK, ACK, ACK, ACK]);
        assert!(p.lis_events.contains(&LinkEvent::HoldAnswered {
            token,
            reply: Reply::Ack
        }));
        assert!(p.complete(id));
        assert!(p.lis.is_neutral() && p.inst.is_neutral());
        assert_eq!(p.held.len(), 1);
        assert!(p.msgs.is_empty());
        // Answering twice writes nothing.
        assert_eq!(p.lis.commit(token, p.now), Err(AckError::AlreadyAnswered));
        assert_eq!(p.lis.refuse(token, p.now), Err(AckError::AlreadyAnswered));
        assert_eq!(p.lis.commit(AckToken(99), p.now), Err(AckError::Unknown));
        assert_eq!(p.lis.poll(), None);
    }

    #[test]
    fn refuse_naks_and_the_retransmission_is_delivered_again() {
        let mut p = Pair::new(LinkConfig::lis());
        let id = p.send(MSG);
        let t1 = p.held[0].0;
        assert_eq!(p.lis.refuse(t1, p.now), Ok(()));
        p.settle();
        assert!(p.inst_events.contains(&LinkEvent::Retransmit {
            number: 3,
            attempt: 2
        }));
        assert_eq!(p.lis_wrote, [ACK, ACK, ACK, NAK]);
        // The whole message again, under a new token, still not acknowledged.
        assert_eq!(p.held.len(), 2);
        let (t2, m2) = p.held[1].clone();
        assert_ne!(t1, t2);
        assert_eq!(m2, MSG);
        assert!(!p.complete(id));
        assert_eq!(p.lis.commit(t2, p.now), Ok(()));
        p.settle();
        assert_eq!(p.lis_wrote, [ACK, ACK, ACK, NAK, ACK]);
        assert!(p.complete(id));
        assert_eq!(p.lis.commit(t1, p.now), Err(AckError::AlreadyAnswered));
    }

    #[test]
    fn final_frame_split_by_etb_is_redelivered_whole_after_refuse() {
        let mut p = Pair::new(LinkConfig::lis());
        p.inst = Link::new(LinkConfig {
            max_frame_text: 4,
            ..LinkConfig::instrument()
        });
        let id = p.send(MSG);
        let t1 = p.held[0].0;
        p.lis.refuse(t1, p.now).expect("refuse");
        p.settle();
        assert_eq!(p.held.len(), 2);
        assert_eq!(p.held[1].1, MSG);
        p.lis.commit(p.held[1].0, p.now).expect("commit");
        p.settle();
        assert!(p.complete(id));
    }

    #[test]
    fn slow_application_gets_nak_at_the_deadline_and_late_commit_writes_nothing() {
        let mut p = Pair::new(LinkConfig::lis());
        let id = p.send(MSG);
        let t1 = p.held[0].0;
        p.advance(9_999);
        assert_eq!(p.lis_wrote, [ACK, ACK, ACK]);
        p.advance(1);
        // NAK by the link itself, never ACK; the instrument (15 s timer) retransmits.
        assert!(p.lis_events.contains(&LinkEvent::HoldExpired { token: t1 }));
        assert_eq!(p.lis_wrote, [ACK, ACK, ACK, NAK]);
        assert_eq!(p.held.len(), 2);
        let t2 = p.held[1].0;
        let before = p.lis_wrote.len();
        assert_eq!(p.lis.commit(t1, p.now), Err(AckError::Expired));
        assert_eq!(p.lis.poll(), None);
        p.settle();
        assert_eq!(p.lis_wrote.len(), before);
        assert!(!p.complete(id));
        // A commit at or after the deadline, before tick ran, also NAKs.
        assert_eq!(p.lis.commit(t2, p.now + 10_000), Err(AckError::Expired));
        assert_eq!(p.lis.poll(), Some(Output::Write(vec![NAK])));
        assert_eq!(
            p.lis.poll(),
            Some(Output::Event(LinkEvent::HoldExpired { token: t2 }))
        );
    }

    #[test]
    fn lost_ack_retransmitted_final_frame_is_acked_without_second_delivery() {
        let mut p = Pair::new(LinkConfig::lis());
        let id = p.send(MSG);
        let t1 = p.held[0].0;
        // Line noise turns our ACK into garbage: the sender repeats frame 3.
        p.garble_next_lis_write = Some(b'?');
        p.lis.commit(t1, p.now).expect("commit");
        p.settle();
        assert!(p.inst_events.contains(&LinkEvent::Retransmit {
            number: 3,
            attempt: 2
        }));
        assert!(p.lis_events.contains(&LinkEvent::FrameReceived {
            number: Some(3),
            reply: Some(Reply::Ack),
            reason: Some("repeat of the last frame: acknowledged, not stored".into()),
        }));
        assert_eq!(p.held.len(), 1, "delivered once");
        assert!(p.msgs.is_empty());
        assert!(p.complete(id));
        assert_eq!(p.lis_wrote, [ACK, ACK, ACK, ACK, ACK]);
    }

    #[test]
    fn repeated_copy_of_the_held_frame_neither_delivers_nor_acks() {
        let mut p = Pair::new(LinkConfig::lis());
        let id = p.send(MSG);
        let t1 = p.held[0].0;
        let last = p.inst_frames.last().cloned().expect("frame");
        p.lis.receive(&last, p.now);
        p.lis.receive(&last, p.now);
        p.settle();
        assert_eq!(p.held.len(), 1);
        assert_eq!(p.lis_wrote, [ACK, ACK, ACK]);
        assert_eq!(p.lis.held(), Some(t1));
        // A damaged copy is NAKed; the hold stands.
        let mut bad = last.clone();
        let n = bad.len();
        bad[n - 3] = if bad[n - 3] == b'0' { b'1' } else { b'0' };
        p.lis.receive(&bad, p.now);
        assert_eq!(p.lis.poll(), Some(Output::Write(vec![NAK])));
        while p.lis.poll().is_some() {}
        // (the instrument never saw that NAK: the copies were ours)
        assert_eq!(p.lis.held(), Some(t1));
        p.lis.commit(t1, p.now).expect("commit");
        p.settle();
        assert!(p.complete(id));
        assert_eq!(p.held.len(), 1);
    }

    #[test]
    fn eot_while_held_abandons_the_reply() {
        // A hold longer than the sender's 15 s timer (a misconfiguration):
        // the sender gives up with EOT first.
        let mut p = Pair::new(LinkConfig {
            ack_hold_ms: 20_000,
            ..LinkConfig::lis()
        });
        let id = p.send(MSG);
        let t1 = p.held[0].0;
        p.advance(15_000);
        assert!(p.inst_events.iter().any(|e| matches!(
            e,
            LinkEvent::SendFailed { id: i, .. } if *i == id
        )));
        assert!(p.lis_events.iter().any(|e| matches!(
            e,
            LinkEvent::HoldAbandoned { token, .. } if *token == t1
        )));
        assert!(p.lis.is_neutral());
        assert_eq!(p.lis.held(), None);
        assert_eq!(p.lis.commit(t1, p.now), Err(AckError::SessionEnded));
        assert_eq!(p.lis.poll(), None);
        assert_eq!(p.lis_wrote, [ACK, ACK, ACK]);
    }

    /// A LIS fed frames by hand.
    fn lis_with_frames(cfg: LinkConfig, frames: &[(u8, &[u8], FrameEnd)]) -> Link {
        let mut l = Link::new(cfg);
        l.receive(&[ENQ], 0);
        for &(n, text, end) in frames {
            let mut f = Vec::new();
            encode_frame(n, text, end, &mut f);
            l.receive(&f, 0);
        }
        l
    }

    #[test]
    fn receiver_timer_is_stopped_while_held_and_restarts_after_the_reply() {
        let cfg = LinkConfig {
            ack_hold_ms: 40_000,
            ..LinkConfig::lis()
        };
        let mut l = lis_with_frames(cfg, &[(1, b"H|\\^&\rL|1|N\r", FrameEnd::Last)]);
        let outs: Vec<Output> = std::iter::from_fn(|| l.poll()).collect();
        let Some(token) = outs.iter().find_map(|o| match o {
            Output::HeldMessage { token, .. } => Some(*token),
            _ => None,
        }) else {
            panic!("no held message: {outs:?}");
        };
        assert_eq!(l.next_deadline(), Some(40_000));
        l.tick(30_000);
        assert_eq!(l.poll(), None);
        assert_eq!(l.held(), Some(token));
        l.commit(token, 35_000).expect("commit");
        assert_eq!(l.poll(), Some(Output::Write(vec![ACK])));
        assert_eq!(l.next_deadline(), Some(65_000));
        l.receive(&[EOT], 36_000);
        assert!(l.is_neutral());
    }

    #[test]
    fn interrupt_request_answers_the_commit_with_eot() {
        let mut l = lis_with_frames(
            LinkConfig::lis(),
            &[(1, b"H|\\^&\rL|1|N\r", FrameEnd::Last)],
        );
        while l.poll().is_some() {}
        let token = l.held().expect("held");
        l.request_interrupt();
        l.commit(token, 0).expect("commit");
        assert_eq!(l.poll(), Some(Output::Write(vec![EOT])));
        assert_eq!(
            l.poll(),
            Some(Output::Event(LinkEvent::HoldAnswered {
                token,
                reply: Reply::Eot
            }))
        );
    }

    #[test]
    fn sender_moving_on_while_held_abandons_the_hold() {
        let mut l = lis_with_frames(
            LinkConfig::lis(),
            &[
                (1, b"H|\\^&\rL|1|N\r", FrameEnd::Last),
                (2, b"H|\\^&\r", FrameEnd::Last),
            ],
        );
        let outs: Vec<Output> = std::iter::from_fn(|| l.poll()).collect();
        assert!(outs.iter().any(|o| matches!(
            o,
            Output::Event(LinkEvent::HoldAbandoned { token, .. }) if token.get() == 1
        )));
        // Frame 2 is handled normally; no reply was ever written for frame 1.
        let writes: Vec<&Output> = outs
            .iter()
            .filter(|o| matches!(o, Output::Write(_)))
            .collect();
        assert_eq!(
            writes,
            [&Output::Write(vec![ACK]), &Output::Write(vec![ACK])]
        );
        assert_eq!(l.commit(AckToken(1), 0), Err(AckError::SessionEnded));
    }

    #[test]
    fn message_without_l_record_is_delivered_at_eot_and_auto_ack_holds_nothing() {
        let mut l = lis_with_frames(
            LinkConfig::lis(),
            &[(1, b"H|\\^&\rR|1|^^^K|4\r", FrameEnd::Last)],
        );
        l.receive(&[EOT], 0);
        let outs: Vec<Output> = std::iter::from_fn(|| l.poll()).collect();
        assert!(outs.contains(&Output::Message(b"H|\\^&\rR|1|^^^K|4\r".to_vec())));
        assert!(!outs.iter().any(|o| matches!(o, Output::HeldMessage { .. })));

        let cfg = LinkConfig {
            auto_ack: true,
            ..LinkConfig::lis()
        };
        let mut l = lis_with_frames(cfg, &[(1, b"H|\\^&\rL|1|N\r", FrameEnd::Last)]);
        let outs: Vec<Output> = std::iter::from_fn(|| l.poll()).collect();
        assert_eq!(
            outs.iter()
                .filter(|o| matches!(o, Output::Write(b) if b == &[ACK]))
                .count(),
            2
        );
        assert_eq!(l.held(), None);
        l.receive(&[EOT], 0);
        assert!(
            std::iter::from_fn(|| l.poll())
                .any(|o| o == Output::Message(b"H|\\^&\rL|1|N\r".to_vec()))
        );
    }
}
