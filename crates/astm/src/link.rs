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
        /// Our reply (`None` without handshake).
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
}

/// What the caller must do or may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Write these bytes to the line.
    Write(Vec<u8>),
    /// A complete received message: E1394 records, each ending with CR.
    Message(Vec<u8>),
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

    /// The next output, if any.
    pub fn poll(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When `tick` must next be called (the timer request), if any.
    pub fn next_deadline(&self) -> Option<u64> {
        match self.state {
            State::Establishing { deadline }
            | State::Sending { deadline }
            | State::Receiving { deadline } => Some(deadline),
            State::Neutral => (!self.queue.is_empty()).then_some(self.not_before),
        }
    }

    /// Advances time: fires expired timers and starts pending sends.
    pub fn tick(&mut self, now: u64) {
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
                    let discarded_partial = !self.partial.is_empty();
                    self.event(LinkEvent::EotReceived { discarded_partial });
                    self.deliver();
                    self.reset_receiver();
                    self.state = State::Neutral;
                }
                ENQ if self.cfg.handshake == Handshake::Enq => {
                    // The sender restarted its session: start over.
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
        let reply_ok = if self.interrupt {
            Reply::Eot
        } else {
            Reply::Ack
        };
        let (reply, reason) = match verdict {
            Err(reason) => (Reply::Nak, Some(reason)),
            Ok((n, end, text)) => {
                if n == self.expected_fn {
                    self.partial.extend_from_slice(&text);
                    if end == FrameEnd::Last {
                        if self.partial.last() != Some(&CR) {
                            self.partial.push(CR);
                        }
                        let has_l = !handshake && has_terminator_record(&self.partial);
                        let p = std::mem::take(&mut self.partial);
                        self.message.extend_from_slice(&p);
                        if has_l {
                            self.deliver();
                        }
                    }
                    self.last_fn = Some(n);
                    self.expected_fn = (n + 1) % 8;
                    if self.message.len() + self.partial.len() > self.cfg.max_message_bytes {
                        self.reset_receiver();
                        (
                            Reply::Nak,
                            Some("message exceeds the size limit; discarded".to_string()),
                        )
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
        if handshake {
            self.write(vec![match reply {
                Reply::Ack => ACK,
                Reply::Nak => NAK,
                Reply::Eot => EOT,
            }]);
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

fn has_terminator_record(text: &[u8]) -> bool {
    text.split(|&c| c == CR)
        .any(|r| r.len() >= 2 && r[0] == b'L' && !r[1].is_ascii_alphanumeric())
}
