//! E1381 frames: `<STX> FN text <ETB|ETX> C1 C2 <CR><LF>`.

use std::fmt;

/// Start of text.
pub const STX: u8 = 0x02;
/// End of text (last frame of a record).
pub const ETX: u8 = 0x03;
/// End of transmission.
pub const EOT: u8 = 0x04;
/// Enquiry.
pub const ENQ: u8 = 0x05;
/// Acknowledge.
pub const ACK: u8 = 0x06;
/// Negative acknowledge.
pub const NAK: u8 = 0x15;
/// End of transmission block (intermediate frame).
pub const ETB: u8 = 0x17;
/// Carriage return.
pub const CR: u8 = 0x0D;
/// Line feed.
pub const LF: u8 = 0x0A;

/// Most text bytes in one frame (LIS01-A2).
pub const MAX_FRAME_TEXT: usize = 240;

/// How a frame ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameEnd {
    /// ETB: the record continues in the next frame.
    Intermediate,
    /// ETX: the last frame of a record.
    Last,
}

/// A parsed frame, borrowing its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Frame number 0..=7.
    pub number: u8,
    /// Text between FN and ETB/ETX.
    pub text: &'a [u8],
    /// ETB or ETX.
    pub end: FrameEnd,
}

/// Why a frame is rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes than the smallest frame.
    TooShort,
    /// The first byte is not STX.
    NoStx,
    /// FN is not an ASCII digit 0..7.
    BadFrameNumber(u8),
    /// No ETB/ETX before the checksum.
    NoEndMarker,
    /// The checksum characters are not hexadecimal.
    BadChecksumChars,
    /// Checksum mismatch.
    ChecksumMismatch {
        /// Computed over the bytes received.
        computed: u8,
        /// What the frame says.
        received: u8,
    },
    /// A control character that may not appear in frame text.
    ControlCharacter(u8),
    /// No CR after the checksum.
    MissingCr,
    /// Longer than the configured maximum.
    TooLong(usize),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooShort => write!(f, "frame too short"),
            FrameError::NoStx => write!(f, "frame does not start with STX"),
            FrameError::BadFrameNumber(b) => write!(f, "bad frame number byte 0x{b:02X}"),
            FrameError::NoEndMarker => write!(f, "no ETB/ETX before the checksum"),
            FrameError::BadChecksumChars => write!(f, "checksum characters are not hexadecimal"),
            FrameError::ChecksumMismatch { computed, received } => {
                write!(
                    f,
                    "checksum mismatch: computed {computed:02X}, received {received:02X}"
                )
            }
            FrameError::ControlCharacter(b) => {
                write!(f, "control character 0x{b:02X} in frame text")
            }
            FrameError::MissingCr => write!(f, "no CR after the checksum"),
            FrameError::TooLong(n) => write!(f, "frame of {n} bytes exceeds the limit"),
        }
    }
}

/// Sum of the bytes mod 256.
#[inline]
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b))
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Parses one frame from STX through CR (a trailing LF is allowed).
pub fn parse_frame(bytes: &[u8]) -> Result<Frame<'_>, FrameError> {
    let mut b = bytes;
    if b.last() == Some(&LF) {
        b = &b[..b.len() - 1];
    }
    if b.len() < 6 {
        return Err(if b.first() != Some(&STX) {
            FrameError::NoStx
        } else {
            FrameError::TooShort
        });
    }
    if b[0] != STX {
        return Err(FrameError::NoStx);
    }
    if b[b.len() - 1] != CR {
        return Err(FrameError::MissingCr);
    }
    let n = b.len();
    let end_byte = b[n - 4];
    let end = match end_byte {
        ETX => FrameEnd::Last,
        ETB => FrameEnd::Intermediate,
        _ => return Err(FrameError::NoEndMarker),
    };
    let fnb = b[1];
    if !(b'0'..=b'7').contains(&fnb) {
        return Err(FrameError::BadFrameNumber(fnb));
    }
    let text = &b[2..n - 4];
    let (Some(h), Some(l)) = (hex_val(b[n - 3]), hex_val(b[n - 2])) else {
        return Err(FrameError::BadChecksumChars);
    };
    let received = h << 4 | l;
    let computed = checksum(&b[1..n - 3]);
    if computed != received {
        return Err(FrameError::ChecksumMismatch { computed, received });
    }
    if let Some(&c) = text.iter().find(|&&c| is_forbidden(c)) {
        return Err(FrameError::ControlCharacter(c));
    }
    Ok(Frame {
        number: fnb - b'0',
        text,
        end,
    })
}

/// Control characters that may not appear in frame text (CR may, as record end).
#[inline]
pub fn is_forbidden(c: u8) -> bool {
    matches!(c, 0x01..=0x06 | 0x0A | 0x10..=0x17)
}

/// Appends one frame to `out`. `number` is taken mod 8.
pub fn encode_frame(number: u8, text: &[u8], end: FrameEnd, out: &mut Vec<u8>) {
    out.reserve(text.len() + 7);
    out.push(STX);
    let start = out.len();
    out.push(b'0' + number % 8);
    out.extend_from_slice(text);
    out.push(match end {
        FrameEnd::Last => ETX,
        FrameEnd::Intermediate => ETB,
    });
    let sum = checksum(&out[start..]);
    out.push(HEX[(sum >> 4) as usize]);
    out.push(HEX[(sum & 15) as usize]);
    out.push(CR);
    out.push(LF);
}

/// Splits one record (with its trailing CR) into frames of at most
/// `max_text` text bytes, numbering from `first_fn`. Returns the frames and
/// the next frame number.
pub fn split_record(record: &[u8], first_fn: u8, max_text: usize) -> (Vec<Vec<u8>>, u8) {
    let max_text = max_text.max(1);
    let mut frames = Vec::with_capacity(record.len() / max_text + 1);
    let mut n = first_fn % 8;
    let chunks: Vec<&[u8]> = if record.is_empty() {
        vec![record]
    } else {
        record.chunks(max_text).collect()
    };
    let last = chunks.len().saturating_sub(1);
    for (i, c) in chunks.into_iter().enumerate() {
        let mut f = Vec::new();
        encode_frame(
            n,
            c,
            if i == last {
                FrameEnd::Last
            } else {
                FrameEnd::Intermediate
            },
            &mut f,
        );
        frames.push(f);
        n = (n + 1) % 8;
    }
    (frames, n)
}
