//! The flat span tree and its lenient parser.

use std::borrow::Cow;
use std::fmt;

use crate::escape::{self, Charset, UnescapeOptions};

/// The delimiters a message declares in MSH-1 and MSH-2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delimiters {
    /// Field separator (MSH-1), usually `|`.
    pub field: u8,
    /// Component separator, usually `^`.
    pub component: Option<u8>,
    /// Repetition separator, usually `~`.
    pub repetition: Option<u8>,
    /// Escape character, usually `\`.
    pub escape: Option<u8>,
    /// Sub-component separator, usually `&`.
    pub subcomponent: Option<u8>,
    /// v2.7 truncation character, usually `#` when present.
    pub truncation: Option<u8>,
}

impl Default for Delimiters {
    fn default() -> Self {
        Delimiters {
            field: b'|',
            component: Some(b'^'),
            repetition: Some(b'~'),
            escape: Some(b'\\'),
            subcomponent: Some(b'&'),
            truncation: None,
        }
    }
}

impl Delimiters {
    /// The MSH-2 text for these delimiters (`^~\&`, plus the truncation
    /// character when set).
    pub fn encoding_characters(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(5);
        for b in [
            self.component,
            self.repetition,
            self.escape,
            self.subcomponent,
        ] {
            match b {
                Some(b) => v.push(b),
                None => break,
            }
        }
        if let Some(t) = self.truncation {
            v.push(t);
        }
        v
    }
}

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// A tolerated deviation from the standard.
    Warning,
    /// The structure is doubtful: do not trust the message blindly.
    Error,
}

/// What a diagnostic is about (stable, matchable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiagnosticKind {
    /// The input is empty or holds only whitespace.
    Empty,
    /// Segments end with LF or CRLF rather than CR.
    NonCrSegmentTerminator,
    /// A UTF-8 byte order mark was skipped.
    ByteOrderMark,
    /// The buffer is not UTF-8; it was read as Latin-1.
    NotUtf8,
    /// Segments appear before any MSH/FHS/BHS: default delimiters were used.
    MissingHeader,
    /// MSH-2 is short, repeats a character or uses a letter, digit or CR/LF.
    BadDelimiters,
    /// A later header declares delimiters different from the first one.
    DelimitersChanged,
    /// A segment name is not three upper-case letters or digits.
    BadSegmentName,
    /// A field ends with a segment name: a segment terminator is probably missing.
    ProbableMissingTerminator,
    /// FHS not at the start, BHS inside an open batch, BTS/FTS without opener.
    BatchStructure,
    /// BTS-1 or FTS-1 disagrees with the number of messages or batches.
    BatchCount,
    /// Segments outside any message (after BTS, before MSH, ...).
    SegmentOutsideMessage,
    /// A size limit was hit; parsing stopped there.
    LimitExceeded,
}

/// One finding of the lenient parser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// How serious it is.
    pub severity: Severity,
    /// What it is about.
    pub kind: DiagnosticKind,
    /// Byte offset in the input where it was found.
    pub offset: usize,
    /// Human-readable explanation.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} at byte {}: {:?}: {}",
            self.severity, self.offset, self.kind, self.message
        )
    }
}

/// Parser limits. Exceeding one stops parsing with an `Error` diagnostic.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest accepted input, bytes (clamped to `u32::MAX - 1`).
    pub max_input_bytes: usize,
    /// Most segments in one document.
    pub max_segments: usize,
    /// Most fields in one segment.
    pub max_fields_per_segment: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_input_bytes: 64 << 20,
            max_segments: 1_000_000,
            max_fields_per_segment: 10_000,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Node {
    pub(crate) end: u32,
    pub(crate) kids_end: u32,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct SegNode {
    pub(crate) start: u32,
    pub(crate) end: u32,
    pub(crate) fields_end: u32,
    pub(crate) set: u32,
    pub(crate) header: bool,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct DelimSet {
    pub(crate) delims: Delimiters,
    pub(crate) charset: Charset,
}

/// A parsed buffer: one or more messages, possibly in FHS/BHS batches.
#[derive(Debug)]
pub struct Document<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) utf8: bool,
    pub(crate) segs: Vec<SegNode>,
    pub(crate) fields: Vec<Node>,
    pub(crate) reps: Vec<Node>,
    pub(crate) comps: Vec<Node>,
    pub(crate) subs: Vec<u32>,
    pub(crate) sets: Vec<DelimSet>,
    pub(crate) messages: Vec<(u32, u32)>,
    pub(crate) diagnostics: Vec<Diagnostic>,
}

const CR: u8 = b'\r';
const LF: u8 = b'\n';

struct Builder<'a> {
    doc: Document<'a>,
    has: [bool; 3],
}

impl Builder<'_> {
    #[inline]
    fn close_comp(&mut self, end: u32) {
        if self.has[2] {
            self.doc.subs.push(end);
            self.has[2] = false;
        }
        self.doc.comps.push(Node {
            end,
            kids_end: self.doc.subs.len() as u32,
        });
    }
    #[inline]
    fn close_rep(&mut self, end: u32) {
        if self.has[1] {
            self.close_comp(end);
            self.has[1] = false;
        }
        self.doc.reps.push(Node {
            end,
            kids_end: self.doc.comps.len() as u32,
        });
    }
    #[inline]
    fn close_field(&mut self, end: u32) {
        if self.has[0] {
            self.close_rep(end);
            self.has[0] = false;
        }
        self.doc.fields.push(Node {
            end,
            kids_end: self.doc.reps.len() as u32,
        });
    }

    #[inline]
    fn delimiter(&mut self, c: u8, p: u32) {
        match c {
            1 => self.close_field(p),
            2 => {
                self.close_rep(p);
                self.has[0] = true;
            }
            3 => {
                self.close_comp(p);
                self.has[1] = true;
                self.has[0] = true;
            }
            4 => {
                self.doc.subs.push(p);
                self.has = [true; 3];
            }
            _ => {}
        }
    }

    /// Scans `buf[from..to]` as fields. Eight bytes at a time: a SWAR mask
    /// marks the bytes equal to one of the four delimiters (exactly, no
    /// false positives), then each marked byte is classified by the table.
    #[inline]
    fn scan(&mut self, buf: &[u8], from: usize, to: usize, t: &Table) {
        let mut i = from;
        while i + 8 <= to {
            let mut a = [0u8; 8];
            a.copy_from_slice(&buf[i..i + 8]);
            let w = u64::from_le_bytes(a);
            let mut m = zero_bytes(w ^ t.bcast[0])
                | zero_bytes(w ^ t.bcast[1])
                | zero_bytes(w ^ t.bcast[2])
                | zero_bytes(w ^ t.bcast[3]);
            while m != 0 {
                let p = i + (m.trailing_zeros() / 8) as usize;
                self.delimiter(t.class[buf[p] as usize], p as u32);
                m &= m - 1;
            }
            i += 8;
        }
        while i < to {
            let c = t.class[buf[i] as usize];
            if c != 0 {
                self.delimiter(c, i as u32);
            }
            i += 1;
        }
        self.close_field(to as u32);
    }

    fn diag(
        &mut self,
        severity: Severity,
        kind: DiagnosticKind,
        offset: usize,
        message: impl Into<String>,
    ) {
        self.doc.diagnostics.push(Diagnostic {
            severity,
            kind,
            offset,
            message: message.into(),
        });
    }
}

/// Delimiter classes and broadcast words for the scanner.
struct Table {
    class: [u8; 256],
    bcast: [u64; 4],
}

const LO7: u64 = 0x7F7F_7F7F_7F7F_7F7F;

/// High bit set in every byte of `x` that is zero (exact).
#[inline]
fn zero_bytes(x: u64) -> u64 {
    let t = (x & LO7).wrapping_add(LO7);
    !(t | x | LO7)
}

fn class_table(d: &Delimiters) -> Table {
    let mut class = [0u8; 256];
    if let Some(s) = d.subcomponent {
        class[s as usize] = 4;
    }
    if let Some(c) = d.component {
        class[c as usize] = 3;
    }
    if let Some(r) = d.repetition {
        class[r as usize] = 2;
    }
    class[d.field as usize] = 1;
    let b = |x: Option<u8>| u64::from_le_bytes([x.unwrap_or(d.field); 8]);
    Table {
        class,
        bcast: [
            b(Some(d.field)),
            b(d.component),
            b(d.repetition),
            b(d.subcomponent),
        ],
    }
}

fn is_header_name(name: &[u8]) -> bool {
    name == b"MSH" || name == b"FHS" || name == b"BHS"
}

/// Reads the delimiters of a header segment starting at `seg` (the segment
/// bytes). Returns the delimiters, the end offset (relative) of the encoding
/// characters and a problem description if they are dubious.
fn read_delimiters(seg: &[u8]) -> (Delimiters, usize, Option<String>) {
    let field = seg[3];
    let enc_end = memchr::memchr(field, &seg[4..]).map_or(seg.len(), |p| p + 4);
    let enc = &seg[4..enc_end];
    let mut d = Delimiters {
        field,
        component: None,
        repetition: None,
        escape: None,
        subcomponent: None,
        truncation: None,
    };
    let mut problem = None;
    let bad = |b: u8| b.is_ascii_alphanumeric() || !(0x21..0x7F).contains(&b);
    if bad(field) {
        problem = Some(format!("field separator {:?} is not usable", field as char));
    }
    let mut seen = vec![field];
    let mut slots: [Option<u8>; 5] = [None; 5];
    for (i, &b) in enc.iter().enumerate().take(5) {
        if bad(b) || seen.contains(&b) {
            problem = Some(format!(
                "encoding character {:?} at position {} is not usable",
                b as char,
                i + 1
            ));
            break;
        }
        seen.push(b);
        slots[i] = Some(b);
    }
    if enc.len() < 4 && problem.is_none() {
        problem = Some(format!(
            "MSH-2 has {} encoding characters, expected 4",
            enc.len()
        ));
    }
    if enc.len() > 5 && problem.is_none() {
        problem = Some(format!(
            "MSH-2 has {} encoding characters, expected 4 or 5",
            enc.len()
        ));
    }
    d.component = slots[0];
    d.repetition = slots[1];
    d.escape = slots[2];
    d.subcomponent = slots[3];
    d.truncation = slots[4];
    (d, enc_end, problem)
}

const KNOWN_SEGMENTS: [&[u8; 3]; 32] = [
    b"AL1", b"BHS", b"BTS", b"CTD", b"CTI", b"DG1", b"ERR", b"EVN", b"FHS", b"FT1", b"FTS", b"GT1",
    b"IN1", b"MSA", b"MSH", b"NK1", b"NTE", b"OBR", b"OBX", b"ORC", b"PD1", b"PID", b"PRT", b"PV1",
    b"PV2", b"QAK", b"QPD", b"RCP", b"SAC", b"SFT", b"SPM", b"TQ1",
];

impl<'a> Document<'a> {
    /// Parses with default [`Limits`].
    pub fn parse(buf: &'a [u8]) -> Document<'a> {
        Self::parse_with_limits(buf, &Limits::default())
    }

    /// Parses `buf` leniently. Never panics; problems become diagnostics.
    pub fn parse_with_limits(buf: &'a [u8], limits: &Limits) -> Document<'a> {
        let max_input = limits.max_input_bytes.min(u32::MAX as usize - 1);
        let mut b = Builder {
            doc: Document {
                buf,
                utf8: true,
                segs: Vec::new(),
                fields: Vec::with_capacity(buf.len() / 9 + 8),
                reps: Vec::with_capacity(buf.len() / 40 + 4),
                comps: Vec::with_capacity(buf.len() / 14 + 4),
                subs: Vec::with_capacity(buf.len() / 96 + 4),
                sets: Vec::new(),
                messages: Vec::new(),
                diagnostics: Vec::new(),
            },
            has: [false; 3],
        };
        let mut input = buf;
        if input.len() > max_input {
            b.diag(
                Severity::Error,
                DiagnosticKind::LimitExceeded,
                max_input,
                format!(
                    "input of {} bytes exceeds the {} byte limit; the rest is ignored",
                    buf.len(),
                    max_input
                ),
            );
            input = &buf[..max_input];
        }
        b.doc.utf8 = std::str::from_utf8(input).is_ok();
        if !b.doc.utf8 {
            b.diag(
                Severity::Warning,
                DiagnosticKind::NotUtf8,
                0,
                "input is not UTF-8; text is read as Latin-1",
            );
        }
        let mut pos = 0usize;
        if input.starts_with(&[0xEF, 0xBB, 0xBF]) {
            pos = 3;
            b.diag(
                Severity::Warning,
                DiagnosticKind::ByteOrderMark,
                0,
                "UTF-8 byte order mark skipped",
            );
        }
        let mut cur_set: Option<u32> = None;
        let mut table = class_table(&Delimiters::default());
        let mut warned_lf = false;
        let mut warned_header = false;
        let mut warned_name = false;
        let len = input.len();
        while pos < len {
            let seg_end = memchr::memchr2(CR, LF, &input[pos..]).map_or(len, |p| p + pos);
            if seg_end < len && input[seg_end] == LF && !warned_lf {
                warned_lf = true;
                b.diag(
                    Severity::Warning,
                    DiagnosticKind::NonCrSegmentTerminator,
                    seg_end,
                    "segments end with LF or CRLF instead of CR",
                );
            }
            let seg = &input[pos..seg_end];
            if seg.iter().all(|c| matches!(c, b' ' | b'\t' | 0x1A)) {
                pos = seg_end + 1;
                continue;
            }
            if b.doc.segs.len() >= limits.max_segments {
                b.diag(
                    Severity::Error,
                    DiagnosticKind::LimitExceeded,
                    pos,
                    format!(
                        "more than {} segments; the rest is ignored",
                        limits.max_segments
                    ),
                );
                break;
            }
            let fields_before = b.doc.fields.len();
            let is_header = seg.len() >= 4 && is_header_name(&seg[..3]);
            if is_header {
                let (delims, enc_end, problem) = read_delimiters(seg);
                if let Some(p) = problem {
                    b.diag(Severity::Error, DiagnosticKind::BadDelimiters, pos + 3, p);
                }
                if let Some(first) = b.doc.sets.first()
                    && first.delims != delims
                {
                    b.diag(
                        Severity::Warning,
                        DiagnosticKind::DelimitersChanged,
                        pos + 3,
                        "this header declares different delimiters from the first header",
                    );
                }
                b.doc.sets.push(DelimSet {
                    delims,
                    charset: Charset::Latin1,
                });
                cur_set = Some(b.doc.sets.len() as u32 - 1);
                table = class_table(&delims);
                // segment name, then MSH-2 as a leaf, then the rest.
                b.doc.fields.push(Node {
                    end: (pos + 3) as u32,
                    kids_end: b.doc.reps.len() as u32,
                });
                b.doc.fields.push(Node {
                    end: (pos + enc_end) as u32,
                    kids_end: b.doc.reps.len() as u32,
                });
                if pos + enc_end < seg_end {
                    b.scan(input, pos + enc_end + 1, seg_end, &table);
                }
            } else {
                if seg.len() >= 3 && is_header_name(&seg[..3]) {
                    b.diag(
                        Severity::Error,
                        DiagnosticKind::BadDelimiters,
                        pos,
                        "header segment without a field separator or encoding characters",
                    );
                }
                let set = match cur_set {
                    Some(s) => s,
                    None => {
                        if !warned_header {
                            warned_header = true;
                            b.diag(
                                Severity::Error,
                                DiagnosticKind::MissingHeader,
                                pos,
                                "segment before any MSH/FHS/BHS; default delimiters |^~\\& used",
                            );
                        }
                        b.doc.sets.push(DelimSet {
                            delims: Delimiters::default(),
                            charset: Charset::Latin1,
                        });
                        let s = b.doc.sets.len() as u32 - 1;
                        cur_set = Some(s);
                        s
                    }
                };
                let _ = set;
                b.scan(input, pos, seg_end, &table);
            }
            let set = cur_set.unwrap_or(0);
            // name check
            let name_end = b.doc.fields[fields_before].end as usize;
            let name = &input[pos..name_end];
            let name_ok = name.len() == 3
                && name[0].is_ascii_uppercase()
                && name[1..]
                    .iter()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
            if !name_ok && !warned_name {
                warned_name = true;
                b.diag(
                    Severity::Warning,
                    DiagnosticKind::BadSegmentName,
                    pos,
                    format!(
                        "segment name {:?} is not three upper-case letters or digits",
                        String::from_utf8_lossy(name)
                    ),
                );
            }
            let nfields = b.doc.fields.len() - fields_before;
            if nfields > limits.max_fields_per_segment + 1 {
                b.diag(
                    Severity::Error,
                    DiagnosticKind::LimitExceeded,
                    pos,
                    format!(
                        "segment has {} fields, limit {}",
                        nfields - 1,
                        limits.max_fields_per_segment
                    ),
                );
            }
            b.doc.segs.push(SegNode {
                start: pos as u32,
                end: seg_end as u32,
                fields_end: b.doc.fields.len() as u32,
                set,
                header: is_header,
            });
            pos = seg_end + 1;
        }
        let mut doc = b.doc;
        if doc.segs.is_empty() {
            doc.diagnostics.push(Diagnostic {
                severity: Severity::Error,
                kind: DiagnosticKind::Empty,
                offset: 0,
                message: "no segments found".into(),
            });
        }
        doc.post_pass();
        doc
    }

    fn post_pass(&mut self) {
        // Charset of each header (MSH-18).
        for i in 0..self.segs.len() {
            let s = self.segs[i];
            if s.header && self.segment_name_bytes(i) == b"MSH" {
                let seg = Segment {
                    doc: self,
                    idx: i as u32,
                };
                let cs = seg
                    .field(18)
                    .map(|f| Charset::from_msh18(f.raw()))
                    .unwrap_or(Charset::Latin1);
                self.sets[s.set as usize].charset = cs;
            }
        }
        // Probable missing segment terminators: a field ending in a segment name.
        let mut found = Vec::new();
        let mut fstart_idx = 0usize;
        for s in &self.segs {
            let fe = s.fields_end as usize;
            let fi = fstart_idx;
            let mut start = s.start as usize;
            for (k, f) in self.fields[fi..fe].iter().enumerate() {
                let end = f.end as usize;
                if k > 0 && end >= start + 4 {
                    let t = &self.buf[end - 3..end];
                    if t[0].is_ascii_uppercase() && KNOWN_SEGMENTS.iter().any(|n| n.as_slice() == t)
                    {
                        let prev = self.buf[end - 4];
                        if prev.is_ascii_alphanumeric() && end < s.end as usize {
                            found.push((end - 3, String::from_utf8_lossy(t).into_owned()));
                        }
                    }
                }
                start = end + 1;
            }
            fstart_idx = fe;
        }
        for (off, name) in found {
            self.diagnostics.push(Diagnostic {
                severity: Severity::Warning,
                kind: DiagnosticKind::ProbableMissingTerminator,
                offset: off,
                message: format!("a field ends with {name}: a segment terminator before {name} is probably missing"),
            });
        }
        self.group_messages();
    }

    fn group_messages(&mut self) {
        let mut open: Option<u32> = None;
        let mut in_batch = false;
        let mut batch_msgs = 0u64;
        let mut batches = 0u64;
        let mut warned_outside = false;
        let mut diags = Vec::new();
        let mut msgs = Vec::new();
        let n = self.segs.len() as u32;
        for i in 0..n {
            let name = self.segment_name_bytes(i as usize);
            let off = self.segs[i as usize].start as usize;
            let close = |open: &mut Option<u32>, msgs: &mut Vec<(u32, u32)>| {
                if let Some(s) = open.take() {
                    msgs.push((s, i));
                }
            };
            match name {
                b"FHS" => {
                    close(&mut open, &mut msgs);
                    if i != 0 {
                        diags.push((
                            Severity::Error,
                            DiagnosticKind::BatchStructure,
                            off,
                            "FHS is not the first segment".to_string(),
                        ));
                    }
                    warned_outside = false;
                }
                b"BHS" => {
                    close(&mut open, &mut msgs);
                    if in_batch {
                        diags.push((
                            Severity::Error,
                            DiagnosticKind::BatchStructure,
                            off,
                            "BHS inside a batch that has no BTS".to_string(),
                        ));
                    }
                    in_batch = true;
                    batch_msgs = 0;
                    batches += 1;
                    warned_outside = false;
                }
                b"BTS" => {
                    close(&mut open, &mut msgs);
                    if !in_batch {
                        diags.push((
                            Severity::Error,
                            DiagnosticKind::BatchStructure,
                            off,
                            "BTS without BHS".to_string(),
                        ));
                    }
                    let seg = Segment { doc: self, idx: i };
                    if let Some(c) = seg.field(1).and_then(|f| parse_count(f.raw()))
                        && c != batch_msgs
                    {
                        diags.push((
                            Severity::Error,
                            DiagnosticKind::BatchCount,
                            off,
                            format!("BTS-1 says {c} messages, the batch holds {batch_msgs}"),
                        ));
                    }
                    in_batch = false;
                    warned_outside = false;
                }
                b"FTS" => {
                    close(&mut open, &mut msgs);
                    if in_batch {
                        diags.push((
                            Severity::Error,
                            DiagnosticKind::BatchStructure,
                            off,
                            "FTS while a batch is still open".to_string(),
                        ));
                    }
                    let seg = Segment { doc: self, idx: i };
                    if let Some(c) = seg.field(1).and_then(|f| parse_count(f.raw()))
                        && c != batches
                    {
                        diags.push((
                            Severity::Error,
                            DiagnosticKind::BatchCount,
                            off,
                            format!("FTS-1 says {c} batches, the file holds {batches}"),
                        ));
                    }
                }
                b"MSH" => {
                    close(&mut open, &mut msgs);
                    open = Some(i);
                    batch_msgs += 1;
                }
                _ => {
                    if open.is_none() && !warned_outside {
                        warned_outside = true;
                        diags.push((
                            Severity::Error,
                            DiagnosticKind::SegmentOutsideMessage,
                            off,
                            format!(
                                "segment {} is outside any message",
                                String::from_utf8_lossy(name)
                            ),
                        ));
                    }
                }
            }
        }
        if let Some(s) = open {
            msgs.push((s, n));
        }
        if in_batch {
            diags.push((
                Severity::Error,
                DiagnosticKind::BatchStructure,
                self.buf.len(),
                "batch not closed by BTS".to_string(),
            ));
        }
        self.messages = msgs;
        for (severity, kind, offset, message) in diags {
            self.diagnostics.push(Diagnostic {
                severity,
                kind,
                offset,
                message,
            });
        }
        self.diagnostics.sort_by_key(|d| d.offset);
    }

    fn segment_name_bytes(&self, i: usize) -> &'a [u8] {
        let s = self.segs[i];
        let fi = if i == 0 {
            0
        } else {
            self.segs[i - 1].fields_end as usize
        };
        match self.fields.get(fi) {
            Some(f) if fi < s.fields_end as usize => &self.buf[s.start as usize..f.end as usize],
            _ => &[],
        }
    }

    /// The diagnostics, in input order.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// True if any diagnostic has `Error` severity.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    /// The input buffer.
    pub fn source(&self) -> &'a [u8] {
        self.buf
    }

    /// Every segment, including batch headers and trailers.
    pub fn segments(&self) -> impl Iterator<Item = Segment<'_, 'a>> + '_ {
        (0..self.segs.len() as u32).map(move |idx| Segment { doc: self, idx })
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.segs.len()
    }

    /// The messages (each from an MSH up to the next MSH or batch segment).
    pub fn messages(&self) -> impl Iterator<Item = Message<'_, 'a>> + '_ {
        self.messages.iter().map(move |&(a, b)| Message {
            doc: self,
            first: a,
            end: b,
        })
    }

    /// Number of messages.
    pub fn message_count(&self) -> usize {
        self.messages.len()
    }

    /// Values found at `path` in every segment of the document, in order.
    pub fn query(&self, path: &FieldPath) -> Vec<Value<'_, 'a>> {
        let mut out = Vec::new();
        for seg in self.segments() {
            path.collect(seg, &mut out);
        }
        out
    }

    /// Approximate heap bytes held by the tree (excluding the input buffer
    /// and diagnostics): the measure used for the "≤ 2× message size" goal.
    pub fn tree_heap_bytes(&self) -> usize {
        use std::mem::size_of;
        self.segs.capacity() * size_of::<SegNode>()
            + (self.fields.capacity() + self.reps.capacity() + self.comps.capacity())
                * size_of::<Node>()
            + self.subs.capacity() * size_of::<u32>()
            + self.sets.capacity() * size_of::<DelimSet>()
            + self.messages.capacity() * size_of::<(u32, u32)>()
    }

    /// Heap bytes if the vectors were shrunk to their lengths.
    pub fn tree_len_bytes(&self) -> usize {
        use std::mem::size_of;
        self.segs.len() * size_of::<SegNode>()
            + (self.fields.len() + self.reps.len() + self.comps.len()) * size_of::<Node>()
            + self.subs.len() * size_of::<u32>()
            + self.sets.len() * size_of::<DelimSet>()
            + self.messages.len() * size_of::<(u32, u32)>()
    }

    /// Total tree nodes (segments, fields, repetitions, components, sub-components stored).
    pub fn node_count(&self) -> usize {
        self.segs.len() + self.fields.len() + self.reps.len() + self.comps.len() + self.subs.len()
    }
}

fn parse_count(raw: &[u8]) -> Option<u64> {
    let t = std::str::from_utf8(raw).ok()?.trim();
    if t.is_empty() { None } else { t.parse().ok() }
}

/// A message: an MSH segment and the segments after it.
#[derive(Clone, Copy)]
pub struct Message<'d, 'a> {
    pub(crate) doc: &'d Document<'a>,
    pub(crate) first: u32,
    pub(crate) end: u32,
}

impl<'d, 'a> Message<'d, 'a> {
    /// The segments of this message, MSH first.
    pub fn segments(&self) -> impl Iterator<Item = Segment<'d, 'a>> + 'd {
        let doc = self.doc;
        (self.first..self.end).map(move |idx| Segment { doc, idx })
    }

    /// The first segment with this name.
    pub fn segment(&self, name: &str) -> Option<Segment<'d, 'a>> {
        self.segments().find(|s| s.name_bytes() == name.as_bytes())
    }

    /// All segments with this name, in order.
    pub fn segments_named<'n>(
        &self,
        name: &'n str,
    ) -> impl Iterator<Item = Segment<'d, 'a>> + use<'d, 'a, 'n> {
        let doc = self.doc;
        (self.first..self.end)
            .map(move |idx| Segment { doc, idx })
            .filter(move |s| s.name_bytes() == name.as_bytes())
    }

    /// The MSH segment.
    pub fn msh(&self) -> crate::segments::Msh<'d, 'a> {
        crate::segments::Msh(Segment {
            doc: self.doc,
            idx: self.first,
        })
    }

    /// The delimiters declared by this message's MSH.
    pub fn delimiters(&self) -> Delimiters {
        Segment {
            doc: self.doc,
            idx: self.first,
        }
        .delimiters()
    }

    /// Values at `path` in this message, in order.
    pub fn query(&self, path: &FieldPath) -> Vec<Value<'d, 'a>> {
        let mut out = Vec::new();
        for seg in self.segments() {
            path.collect(seg, &mut out);
        }
        out
    }

    /// Convenience: the unescaped value of the first match of `path` (e.g. `"PID-5.1"`).
    pub fn get(&self, path: &str) -> Option<Cow<'a, str>> {
        let p = FieldPath::parse(path).ok()?;
        self.query(&p).first().map(|v| v.value())
    }

    /// The raw bytes of the whole message.
    pub fn raw(&self) -> &'a [u8] {
        let a = self.doc.segs[self.first as usize].start as usize;
        let b = self.doc.segs[self.end as usize - 1].end as usize;
        &self.doc.buf[a..b]
    }
}

/// One segment.
#[derive(Clone, Copy)]
pub struct Segment<'d, 'a> {
    pub(crate) doc: &'d Document<'a>,
    pub(crate) idx: u32,
}

impl<'d, 'a> Segment<'d, 'a> {
    pub(crate) fn node(&self) -> SegNode {
        self.doc.segs[self.idx as usize]
    }
    fn fields_start(&self) -> usize {
        if self.idx == 0 {
            0
        } else {
            self.doc.segs[self.idx as usize - 1].fields_end as usize
        }
    }

    /// The segment name as bytes (normally three ASCII characters).
    pub fn name_bytes(&self) -> &'a [u8] {
        self.doc.segment_name_bytes(self.idx as usize)
    }

    /// The segment name.
    pub fn name(&self) -> Cow<'a, str> {
        escape::text(self.name_bytes(), self.doc.utf8)
    }

    /// Raw bytes of the segment, without its terminator.
    pub fn raw(&self) -> &'a [u8] {
        let n = self.node();
        &self.doc.buf[n.start as usize..n.end as usize]
    }

    /// Byte offset of the segment in the input.
    pub fn offset(&self) -> usize {
        self.node().start as usize
    }

    /// The delimiters in force for this segment.
    pub fn delimiters(&self) -> Delimiters {
        self.doc
            .sets
            .get(self.node().set as usize)
            .map(|s| s.delims)
            .unwrap_or_default()
    }

    fn charset(&self) -> Charset {
        self.doc
            .sets
            .get(self.node().set as usize)
            .map(|s| s.charset)
            .unwrap_or(Charset::Latin1)
    }

    /// Highest field number present (SEG-n), 0 if the segment has only a name.
    pub fn field_count(&self) -> usize {
        let stored = self.node().fields_end as usize - self.fields_start();
        if self.node().header {
            stored
        } else {
            stored.saturating_sub(1)
        }
    }

    /// Field `n` (1-based, HL7 numbering: `MSH-1` is the field separator,
    /// `MSH-2` the encoding characters). `None` past the last field.
    pub fn field(&self, n: usize) -> Option<Value<'d, 'a>> {
        if n == 0 {
            return None;
        }
        let node = self.node();
        let fs = self.fields_start();
        let set = node.set;
        let charset = self.charset();
        if node.header {
            if n == 1 {
                let s = node.start + 3;
                return Some(Value {
                    doc: self.doc,
                    level: 0,
                    idx: NONE,
                    start: s,
                    end: s + 1,
                    literal: true,
                    set,
                    charset,
                });
            }
            let k = fs + n - 1;
            if k >= node.fields_end as usize {
                return None;
            }
            let start = self.doc.fields[k - 1].end + 1;
            let end = self.doc.fields[k].end;
            return Some(Value {
                doc: self.doc,
                level: 0,
                idx: k as u32,
                start,
                end,
                literal: n == 2,
                set,
                charset,
            });
        }
        let k = fs + n;
        if k >= node.fields_end as usize {
            return None;
        }
        let start = self.doc.fields[k - 1].end + 1;
        let end = self.doc.fields[k].end;
        Some(Value {
            doc: self.doc,
            level: 0,
            idx: k as u32,
            start,
            end,
            literal: false,
            set,
            charset,
        })
    }

    /// Fields 1..=field_count in order.
    pub fn fields(&self) -> impl Iterator<Item = Value<'d, 'a>> + 'd {
        let s = *self;
        (1..=s.field_count()).filter_map(move |n| s.field(n))
    }
}

const NONE: u32 = u32::MAX;

/// A node of the tree at any level: field, repetition, component or
/// sub-component. A node without stored children has one virtual child
/// with the same span, so navigation never fails on simple values.
#[derive(Clone, Copy)]
pub struct Value<'d, 'a> {
    doc: &'d Document<'a>,
    /// 0 field, 1 repetition, 2 component, 3 sub-component.
    level: u8,
    idx: u32,
    start: u32,
    end: u32,
    literal: bool,
    set: u32,
    charset: Charset,
}

impl std::fmt::Debug for Value<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Value({:?})", String::from_utf8_lossy(self.raw()))
    }
}

impl<'d, 'a> Value<'d, 'a> {
    /// Raw (escaped) bytes.
    pub fn raw(&self) -> &'a [u8] {
        &self.doc.buf[self.start as usize..self.end as usize]
    }

    /// Raw text (escapes kept).
    pub fn raw_str(&self) -> Cow<'a, str> {
        escape::text(self.raw(), self.doc.utf8)
    }

    /// Byte range in the input.
    pub fn span(&self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    /// True if the value is empty (not sent).
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// True if the value is the explicit null `""` (delete the stored value).
    pub fn is_null(&self) -> bool {
        self.raw() == b"\"\""
    }

    /// True if this node has stored children (it contains delimiters of the next level down).
    pub fn has_children(&self) -> bool {
        self.kids_range().is_some()
    }

    /// The unescaped text. Exact for a leaf; for a node with children the
    /// delimiters are kept, and an escaped delimiter then looks like a real
    /// one: navigate to the leaves when that matters.
    pub fn value(&self) -> Cow<'a, str> {
        self.value_with(&UnescapeOptions::default())
    }

    /// Unambiguous text: the unescaped value of a leaf, or the raw (still
    /// escaped) text of a node that has children, so an escaped delimiter
    /// can never be mistaken for a real one.
    pub fn text(&self) -> Cow<'a, str> {
        if self.has_children() {
            self.raw_str()
        } else {
            self.value()
        }
    }

    /// [`Value::value`] with explicit options.
    pub fn value_with(&self, opts: &UnescapeOptions) -> Cow<'a, str> {
        if self.literal {
            return self.raw_str();
        }
        let d = self
            .doc
            .sets
            .get(self.set as usize)
            .map(|s| s.delims)
            .unwrap_or_default();
        escape::unescape_impl(self.raw(), &d, self.charset, opts, self.doc.utf8)
    }

    fn kids_range(&self) -> Option<(usize, usize)> {
        if self.idx == NONE || self.literal || self.level >= 3 {
            return None;
        }
        let i = self.idx as usize;
        let (a, b) = match self.level {
            0 => (
                if i == 0 {
                    0
                } else {
                    self.doc.fields[i - 1].kids_end
                },
                self.doc.fields[i].kids_end,
            ),
            1 => (
                if i == 0 {
                    0
                } else {
                    self.doc.reps[i - 1].kids_end
                },
                self.doc.reps[i].kids_end,
            ),
            _ => (
                if i == 0 {
                    0
                } else {
                    self.doc.comps[i - 1].kids_end
                },
                self.doc.comps[i].kids_end,
            ),
        };
        if a < b {
            Some((a as usize, b as usize))
        } else {
            None
        }
    }

    fn child_end(&self, j: usize) -> u32 {
        match self.level {
            0 => self.doc.reps[j].end,
            1 => self.doc.comps[j].end,
            _ => self.doc.subs[j],
        }
    }

    /// Number of children (1 when none are stored).
    pub fn len(&self) -> usize {
        self.kids_range().map_or(1, |(a, b)| b - a)
    }

    /// The `n`th child (1-based): repetition of a field, component of a
    /// repetition, sub-component of a component.
    pub fn child(&self, n: usize) -> Option<Value<'d, 'a>> {
        if n == 0 || self.level >= 3 {
            return None;
        }
        match self.kids_range() {
            None => (n == 1).then_some(Value {
                level: self.level + 1,
                idx: NONE,
                ..*self
            }),
            Some((a, b)) => {
                let j = a + n - 1;
                if j >= b {
                    return None;
                }
                let start = if j == a {
                    self.start
                } else {
                    self.child_end(j - 1) + 1
                };
                let end = self.child_end(j);
                Some(Value {
                    level: self.level + 1,
                    idx: j as u32,
                    start,
                    end,
                    ..*self
                })
            }
        }
    }

    /// All children in order.
    pub fn children(&self) -> impl Iterator<Item = Value<'d, 'a>> + 'd {
        let s = *self;
        let n = if s.level >= 3 { 0 } else { s.len() };
        (1..=n).filter_map(move |k| s.child(k))
    }

    /// Repetitions of a field (the node itself for lower levels).
    pub fn repetitions(&self) -> Vec<Value<'d, 'a>> {
        if self.level == 0 {
            self.children().collect()
        } else {
            vec![*self]
        }
    }

    /// Repetition `r` (1-based) of a field.
    pub fn repetition(&self, r: usize) -> Option<Value<'d, 'a>> {
        if self.level == 0 {
            self.child(r)
        } else {
            (r == 1).then_some(*self)
        }
    }

    /// Component `c` (1-based). On a field, taken from its first repetition.
    pub fn component(&self, c: usize) -> Option<Value<'d, 'a>> {
        match self.level {
            0 => self.child(1)?.child(c),
            1 => self.child(c),
            _ => None,
        }
    }

    /// Sub-component `s` (1-based) of a component.
    pub fn subcomponent(&self, s: usize) -> Option<Value<'d, 'a>> {
        if self.level == 2 { self.child(s) } else { None }
    }

    /// Unescaped value of component `c` (empty when absent).
    pub fn comp_str(&self, c: usize) -> Cow<'a, str> {
        self.component(c).map_or(Cow::Borrowed(""), |v| v.value())
    }

    /// Level: 0 field, 1 repetition, 2 component, 3 sub-component.
    pub fn level(&self) -> u8 {
        self.level
    }
}

/// A parsed address such as `PID-3`, `PID-5.1`, `OBR-4.2`, `SPM-2.2.1`,
/// `OBX-5[2]` (repetition 2). `.` is also accepted after the segment name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldPath {
    /// Segment name.
    pub segment: String,
    /// Field number (1-based).
    pub field: usize,
    /// Repetition (1-based), all repetitions when `None`.
    pub repetition: Option<usize>,
    /// Component (1-based).
    pub component: Option<usize>,
    /// Sub-component (1-based).
    pub subcomponent: Option<usize>,
}

impl FieldPath {
    /// Parses `SEG-f[r].c.s`.
    pub fn parse(s: &str) -> Result<FieldPath, String> {
        let s = s.trim();
        let bad = || format!("bad field path {s:?}: expected SEG-n[.c[.s]], e.g. PID-5.1");
        if s.len() < 5 || !s.is_char_boundary(3) {
            return Err(bad());
        }
        let (seg, rest) = s.split_at(3);
        if !seg.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(bad());
        }
        let rest = rest
            .strip_prefix('-')
            .or_else(|| rest.strip_prefix('.'))
            .ok_or_else(bad)?;
        let mut parts = rest.split('.');
        let fpart = parts.next().ok_or_else(bad)?;
        let (fnum, rep) = match fpart.split_once('[') {
            Some((f, r)) => (f, Some(r.strip_suffix(']').ok_or_else(bad)?)),
            None => (fpart, None),
        };
        let num = |t: &str| -> Result<usize, String> {
            match t.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(bad()),
            }
        };
        let field = num(fnum)?;
        let repetition = rep.map(num).transpose()?;
        let component = parts.next().map(num).transpose()?;
        let subcomponent = parts.next().map(num).transpose()?;
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(FieldPath {
            segment: seg.to_ascii_uppercase(),
            field,
            repetition,
            component,
            subcomponent,
        })
    }

    fn collect<'d, 'a>(&self, seg: Segment<'d, 'a>, out: &mut Vec<Value<'d, 'a>>) {
        if seg.name_bytes() != self.segment.as_bytes() {
            return;
        }
        let Some(f) = seg.field(self.field) else {
            return;
        };
        let reps = match self.repetition {
            Some(r) => f.repetition(r).into_iter().collect(),
            None => f.repetitions(),
        };
        for r in reps {
            let v = match (self.component, self.subcomponent) {
                (None, _) => {
                    if self.repetition.is_none() && f.len() == 1 {
                        Some(f)
                    } else {
                        Some(r)
                    }
                }
                (Some(c), None) => r.child(c),
                (Some(c), Some(s)) => r.child(c).and_then(|c| c.child(s)),
            };
            if let Some(v) = v {
                out.push(v);
            }
        }
    }
}
