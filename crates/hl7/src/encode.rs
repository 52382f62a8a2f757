//! Owned messages and the encoder (always CR segment terminators).

use crate::parse::{Delimiters, Message, Segment, Value};

/// How the encoder writes non-ASCII characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NonAscii {
    /// As UTF-8 bytes (declare `UNICODE UTF-8` in MSH-18).
    #[default]
    Utf8,
    /// Characters U+0080..=U+00FF as `\Xhh\` (Latin-1); others stay UTF-8.
    HexLatin1,
}

/// Encoder options.
#[derive(Clone, Copy, Debug, Default)]
pub struct EncodeOptions {
    /// Non-ASCII policy.
    pub non_ascii: NonAscii,
}

/// A field: repetitions → components → sub-components, each leaf unescaped text.
pub type OwnedField = Vec<Vec<Vec<String>>>;

/// An owned segment. For MSH/FHS/BHS, `fields[0]` and `fields[1]` hold
/// MSH-1 and MSH-2 as text; the encoder writes the message delimiters there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedSegment {
    /// Segment name.
    pub name: String,
    /// `fields[n-1]` is SEG-n.
    pub fields: Vec<OwnedField>,
}

/// An owned message, built by hand or from a parsed [`Message`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedMessage {
    /// Delimiters written to MSH-1/MSH-2 and used for escaping.
    pub delimiters: Delimiters,
    /// Segments, MSH first.
    pub segments: Vec<OwnedSegment>,
}

fn leaf(s: &str) -> OwnedField {
    vec![vec![vec![s.to_string()]]]
}

impl OwnedSegment {
    /// An empty segment.
    pub fn new(name: &str) -> Self {
        OwnedSegment {
            name: name.to_string(),
            fields: Vec::new(),
        }
    }

    /// Sets SEG-n to a single text value (grows the field list as needed).
    pub fn set(&mut self, n: usize, value: &str) -> &mut Self {
        self.set_field(n, leaf(value))
    }

    /// Sets SEG-n to components of one repetition.
    pub fn set_components(&mut self, n: usize, comps: &[&str]) -> &mut Self {
        let f = vec![comps.iter().map(|c| vec![c.to_string()]).collect()];
        self.set_field(n, f)
    }

    /// Sets SEG-n to a full field value.
    pub fn set_field(&mut self, n: usize, f: OwnedField) -> &mut Self {
        if n == 0 {
            return self;
        }
        while self.fields.len() < n {
            self.fields.push(leaf(""));
        }
        self.fields[n - 1] = f;
        self
    }

    /// Text of SEG-n component 1 of repetition 1 (empty when absent).
    pub fn get(&self, n: usize) -> &str {
        self.fields
            .get(n.wrapping_sub(1))
            .and_then(|f| f.first())
            .and_then(|r| r.first())
            .and_then(|c| c.first())
            .map_or("", |s| s.as_str())
    }

    fn is_header(&self) -> bool {
        matches!(self.name.as_str(), "MSH" | "FHS" | "BHS")
    }
}

/// Escapes one leaf into `out` (delimiters, the escape character, CR as
/// `\X0D\`, LF as `\.br\`).
pub fn escape_into(out: &mut Vec<u8>, s: &str, d: &Delimiters, opts: &EncodeOptions) {
    let esc = d.escape;
    let needs = |b: u8| {
        b == d.field
            || Some(b) == d.component
            || Some(b) == d.repetition
            || Some(b) == d.subcomponent
            || Some(b) == d.escape
            || Some(b) == d.truncation
            || b == b'\r'
            || b == b'\n'
            || b >= 0x80
    };
    let Some(e) = esc else {
        out.extend_from_slice(s.as_bytes());
        return;
    };
    if !s.bytes().any(needs) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    let seq = |out: &mut Vec<u8>, body: &[u8]| {
        out.push(e);
        out.extend_from_slice(body);
        out.push(e);
    };
    for ch in s.chars() {
        let mut buf = [0u8; 4];
        let bytes = ch.encode_utf8(&mut buf).as_bytes();
        if bytes.len() == 1 {
            let b = bytes[0];
            if b == d.field {
                seq(out, b"F");
            } else if Some(b) == d.component {
                seq(out, b"S");
            } else if Some(b) == d.subcomponent {
                seq(out, b"T");
            } else if Some(b) == d.repetition {
                seq(out, b"R");
            } else if Some(b) == d.escape {
                seq(out, b"E");
            } else if Some(b) == d.truncation {
                seq(out, b"P");
            } else if b == b'\r' {
                seq(out, b"X0D");
            } else if b == b'\n' {
                seq(out, b".br");
            } else {
                out.push(b);
            }
        } else if opts.non_ascii == NonAscii::HexLatin1 && (ch as u32) <= 0xFF {
            let hex = format!("X{:02x}", ch as u32);
            seq(out, hex.as_bytes());
        } else {
            out.extend_from_slice(bytes);
        }
    }
}

impl OwnedMessage {
    /// A message with standard delimiters and no segments.
    pub fn new() -> Self {
        OwnedMessage {
            delimiters: Delimiters::default(),
            segments: Vec::new(),
        }
    }

    /// Encodes with CR after every segment.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with(&EncodeOptions::default())
    }

    /// Encodes with options.
    pub fn encode_with(&self, opts: &EncodeOptions) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        for s in &self.segments {
            encode_segment(&mut out, s, &self.delimiters, opts);
            out.push(b'\r');
        }
        out
    }

    /// The first segment with this name.
    pub fn segment(&self, name: &str) -> Option<&OwnedSegment> {
        self.segments.iter().find(|s| s.name == name)
    }
}

impl Default for OwnedMessage {
    fn default() -> Self {
        Self::new()
    }
}

fn encode_segment(out: &mut Vec<u8>, s: &OwnedSegment, d: &Delimiters, opts: &EncodeOptions) {
    out.extend_from_slice(s.name.as_bytes());
    let skip = if s.is_header() {
        out.push(d.field);
        out.extend_from_slice(&d.encoding_characters());
        2
    } else {
        0
    };
    for f in s.fields.iter().skip(skip) {
        out.push(d.field);
        for (ri, rep) in f.iter().enumerate() {
            if ri > 0 {
                out.push(d.repetition.unwrap_or(b'~'));
            }
            for (ci, comp) in rep.iter().enumerate() {
                if ci > 0 {
                    out.push(d.component.unwrap_or(b'^'));
                }
                for (si, sub) in comp.iter().enumerate() {
                    if si > 0 {
                        out.push(d.subcomponent.unwrap_or(b'&'));
                    }
                    escape_into(out, sub, d, opts);
                }
            }
        }
    }
}

pub(crate) fn owned_field(v: Value<'_, '_>) -> OwnedField {
    v.children()
        .map(|r| {
            r.children()
                .map(|c| c.children().map(|s| s.value().into_owned()).collect())
                .collect()
        })
        .collect()
}

impl Segment<'_, '_> {
    /// Converts to an owned segment (leaves unescaped).
    pub fn to_owned_segment(&self) -> OwnedSegment {
        let fields = self
            .fields()
            .enumerate()
            .map(|(i, f)| {
                if self.delimiters_literal(i + 1) {
                    vec![vec![vec![f.raw_str().into_owned()]]]
                } else {
                    owned_field(f)
                }
            })
            .collect();
        OwnedSegment {
            name: self.name().into_owned(),
            fields,
        }
    }

    fn delimiters_literal(&self, n: usize) -> bool {
        n <= 2 && self.node().header
    }
}

impl Message<'_, '_> {
    /// Converts to an owned message (leaves unescaped).
    pub fn to_owned_message(&self) -> OwnedMessage {
        OwnedMessage {
            delimiters: self.delimiters(),
            segments: self.segments().map(|s| s.to_owned_segment()).collect(),
        }
    }
}
