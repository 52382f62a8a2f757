//! E1394 / LIS02-A2 records: lenient parsing, typed views, host-query answers.
//!
//! Field numbering follows the standard: field 1 is the record type, so
//! `O.3` (specimen ID) is `record.field(3)`. In the H record, field 2 is the
//! delimiter definition and is never split.

use std::borrow::Cow;

/// The delimiters an H record declares (`H|\^&`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delimiters {
    /// Field, usually `|`.
    pub field: u8,
    /// Repeat, usually `\`.
    pub repeat: u8,
    /// Component, usually `^`.
    pub component: u8,
    /// Escape, usually `&`.
    pub escape: u8,
}

impl Default for Delimiters {
    fn default() -> Self {
        Delimiters {
            field: b'|',
            repeat: b'\\',
            component: b'^',
            escape: b'&',
        }
    }
}

/// Severity of a record diagnostic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Tolerated.
    Warning,
    /// Structure doubtful.
    Error,
}

/// A finding of the record parser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Severity.
    pub severity: Severity,
    /// Index of the record concerned.
    pub record: usize,
    /// Explanation.
    pub message: String,
}

/// One record, borrowing the input.
#[derive(Clone, Debug)]
pub struct Record<'a> {
    raw: &'a [u8],
    /// Field spans (start, end) relative to `raw`; `spans[0]` is the type.
    spans: Vec<(u32, u32)>,
    delims: Delimiters,
    doubled: bool,
}

/// A parsed message or stream of records.
#[derive(Clone, Debug)]
pub struct Records<'a> {
    /// The records in order.
    pub records: Vec<Record<'a>>,
    /// Diagnostics.
    pub diagnostics: Vec<Diagnostic>,
}

/// Most records kept from one input.
pub const MAX_RECORDS: usize = 100_000;

/// Parses CR-, LF- or CRLF-separated records. Never panics.
pub fn parse_records(input: &[u8]) -> Records<'_> {
    let mut records = Vec::new();
    let mut diagnostics = Vec::new();
    let mut delims = Delimiters::default();
    let mut doubled = false;
    let mut seen_header = false;
    for line in input.split(|&c| c == b'\r' || c == b'\n') {
        if line.iter().all(|c| c.is_ascii_whitespace()) {
            continue;
        }
        if records.len() >= MAX_RECORDS {
            diagnostics.push(Diagnostic {
                severity: Severity::Error,
                record: records.len(),
                message: format!("more than {MAX_RECORDS} records; the rest is ignored"),
            });
            break;
        }
        let idx = records.len();
        if line[0] == b'H' && line.len() >= 5 {
            let (d, dbl, problem) = read_header(line);
            delims = d;
            doubled = dbl;
            seen_header = true;
            if let Some(p) = problem {
                diagnostics.push(Diagnostic {
                    severity: Severity::Warning,
                    record: idx,
                    message: p,
                });
            }
        } else if line[0] == b'H' {
            diagnostics.push(Diagnostic {
                severity: Severity::Error,
                record: idx,
                message: "H record too short to declare delimiters".into(),
            });
        } else if !seen_header {
            seen_header = true;
            diagnostics.push(Diagnostic {
                severity: Severity::Warning,
                record: idx,
                message: "records before any H record; default delimiters |\\^& used".into(),
            });
        }
        let rec = split_record_fields(line, delims, doubled);
        if !matches!(
            line[0],
            b'H' | b'P' | b'O' | b'R' | b'C' | b'Q' | b'M' | b'S' | b'L'
        ) {
            diagnostics.push(Diagnostic {
                severity: Severity::Warning,
                record: idx,
                message: format!("unknown record type {:?}", line[0] as char),
            });
        }
        records.push(rec);
    }
    check_hierarchy(&records, &mut diagnostics);
    Records {
        records,
        diagnostics,
    }
}

fn read_header(line: &[u8]) -> (Delimiters, bool, Option<String>) {
    let field = line[1];
    if field.is_ascii_alphanumeric() || field >= 0x80 || field.is_ascii_whitespace() || field < 0x20
    {
        return (
            Delimiters::default(),
            false,
            Some(format!(
                "field delimiter 0x{field:02X} is not usable; defaults used"
            )),
        );
    }
    let def_end = line[2..]
        .iter()
        .position(|&c| c == field)
        .map_or(line.len(), |p| p + 2);
    let def = &line[2..def_end];
    let mut d = Delimiters {
        field,
        ..Delimiters::default()
    };
    if def.len() == 4
        && def[0] == def[1]
        && def[0] != def[2]
        && def[2] != def[3]
        && ![def[0], def[2], def[3]].contains(&field)
        && [def[0], def[2], def[3]]
            .iter()
            .all(|&b| b.is_ascii_punctuation())
    {
        // `H|\\^&`: the repeat delimiter written twice (seen in the wild).
        d.repeat = def[0];
        d.component = def[2];
        d.escape = def[3];
        return (
            d,
            true,
            Some("delimiter definition has a doubled repeat delimiter; `\\\\` read as one".into()),
        );
    }
    if def.len() < 3 {
        return (
            d,
            false,
            Some(format!(
                "delimiter definition {:?} is short; defaults used",
                String::from_utf8_lossy(def)
            )),
        );
    }
    let (r, c, e) = (def[0], def[1], def[2]);
    let distinct = r != c && r != e && c != e && ![r, c, e].contains(&field);
    if !distinct
        || [r, c, e]
            .iter()
            .any(|&b| b.is_ascii_alphanumeric() || !(0x21..0x80).contains(&b))
    {
        return (
            d,
            false,
            Some("delimiters are not distinct; defaults used".into()),
        );
    }
    d.repeat = r;
    d.component = c;
    d.escape = e;
    (
        d,
        false,
        (def.len() > 3).then(|| "delimiter definition longer than 3 characters".to_string()),
    )
}

fn split_record_fields(line: &[u8], delims: Delimiters, doubled: bool) -> Record<'_> {
    let mut spans = Vec::with_capacity(16);
    let mut start = 0u32;
    let is_h = line[0] == b'H' && line.len() >= 2 && line[1] == delims.field;
    for (i, &c) in line.iter().enumerate() {
        if c == delims.field {
            spans.push((start, i as u32));
            start = i as u32 + 1;
        }
    }
    spans.push((start, line.len() as u32));
    // In H the delimiter definition (field 2) must not be cut by its own characters.
    let _ = is_h;
    Record {
        raw: line,
        spans,
        delims,
        doubled,
    }
}

fn check_hierarchy(records: &[Record<'_>], diags: &mut Vec<Diagnostic>) {
    let mut last_parent: u8 = 0;
    for (i, r) in records.iter().enumerate() {
        let t = r.kind();
        let ok = match t {
            b'H' => true,
            b'P' | b'Q' => matches!(last_parent, b'H' | b'P' | b'O' | b'R' | b'Q'),
            b'O' => matches!(last_parent, b'P' | b'O' | b'R'),
            b'R' => matches!(last_parent, b'O' | b'R'),
            b'C' | b'M' | b'S' => last_parent != 0,
            b'L' => last_parent != 0,
            _ => true,
        };
        if !ok {
            diags.push(Diagnostic {
                severity: Severity::Warning,
                record: i,
                message: format!(
                    "{} record after {}",
                    t as char,
                    if last_parent == 0 {
                        '-'
                    } else {
                        last_parent as char
                    }
                ),
            });
        }
        if !matches!(t, b'C' | b'M' | b'S') {
            last_parent = if t == b'L' { 0 } else { t };
        }
    }
}

/// A field, a repeat or a component, borrowing the input.
#[derive(Clone, Copy, Debug)]
pub struct Field<'a> {
    raw: &'a [u8],
    delims: Delimiters,
    doubled: bool,
}

fn split_on(raw: &[u8], sep: u8, doubled: bool) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == sep {
            out.push(&raw[start..i]);
            if doubled && i + 1 < raw.len() && raw[i + 1] == sep {
                i += 1;
            }
            start = i + 1;
        }
        i += 1;
    }
    out.push(&raw[start..]);
    out
}

impl<'a> Field<'a> {
    fn sub(&self, raw: &'a [u8]) -> Field<'a> {
        Field { raw, ..*self }
    }

    /// Raw bytes.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Unescaped text (`&F& &S& &R& &E& &Xhh&`; `&Zcc&` and unknown sequences kept).
    pub fn value(&self) -> Cow<'a, str> {
        unescape(self.raw, &self.delims)
    }

    /// Unescaped and trimmed of surrounding spaces (space-padded IDs).
    pub fn trimmed(&self) -> String {
        self.value().trim().to_string()
    }

    /// The repeats (the field itself when it has none).
    pub fn repeats(&self) -> Vec<Field<'a>> {
        split_on(self.raw, self.delims.repeat, self.doubled)
            .into_iter()
            .map(|r| self.sub(r))
            .collect()
    }

    /// The components of this value (of the first repeat when it repeats).
    pub fn components(&self) -> Vec<Field<'a>> {
        let first = split_on(self.raw, self.delims.repeat, self.doubled)
            .into_iter()
            .next()
            .unwrap_or(self.raw);
        split_on(first, self.delims.component, false)
            .into_iter()
            .map(|r| self.sub(r))
            .collect()
    }

    /// Component `n` (1-based) of the first repeat, unescaped; empty when absent.
    pub fn component(&self, n: usize) -> Cow<'a, str> {
        self.components()
            .get(n.wrapping_sub(1))
            .map_or(Cow::Borrowed(""), |c| c.value())
    }
}

fn text(raw: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(raw) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(raw.iter().map(|&b| b as char).collect()),
    }
}

/// Unescapes an E1394 value.
pub fn unescape<'a>(raw: &'a [u8], d: &Delimiters) -> Cow<'a, str> {
    let e = d.escape;
    if !raw.contains(&e) {
        return text(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == e {
            if let Some(p) = raw[i + 1..].iter().position(|&c| c == e) {
                let body = &raw[i + 1..i + 1 + p];
                let close = i + 1 + p;
                let hex = body.first() == Some(&b'X')
                    && body.len() > 1
                    && (body.len() - 1).is_multiple_of(2)
                    && body[1..].iter().all(|c| c.is_ascii_hexdigit());
                match body {
                    b"F" => out.push(d.field as char),
                    b"S" => out.push(d.component as char),
                    b"R" => out.push(d.repeat as char),
                    b"E" => out.push(e as char),
                    _ if hex => {
                        let bytes: Vec<u8> = body[1..]
                            .chunks(2)
                            .map(|p| {
                                let s = std::str::from_utf8(p).unwrap_or("00");
                                u8::from_str_radix(s, 16).unwrap_or(0)
                            })
                            .collect();
                        out.push_str(&text(&bytes));
                    }
                    _ => out.push_str(&text(&raw[i..=close])),
                }
                i = close + 1;
                continue;
            }
            out.push_str(&text(&raw[i..]));
            break;
        }
        let next = raw[i..]
            .iter()
            .position(|&c| c == e)
            .map_or(raw.len(), |p| p + i);
        out.push_str(&text(&raw[i..next]));
        i = next;
    }
    Cow::Owned(out)
}

/// Escapes a value for writing.
pub fn escape(s: &str, d: &Delimiters) -> String {
    let mut out = String::with_capacity(s.len());
    let esc = d.escape as char;
    for ch in s.chars() {
        let c = ch as u32;
        if c == d.field as u32 {
            out.extend([esc, 'F', esc]);
        } else if c == d.component as u32 {
            out.extend([esc, 'S', esc]);
        } else if c == d.repeat as u32 {
            out.extend([esc, 'R', esc]);
        } else if c == d.escape as u32 {
            out.extend([esc, 'E', esc]);
        } else if c < 0x20 {
            out.push(esc);
            out.push_str(&format!("X{c:02X}"));
            out.push(esc);
        } else {
            out.push(ch);
        }
    }
    out
}

impl<'a> Record<'a> {
    /// Record type byte (`H`, `P`, `O`, ...).
    pub fn kind(&self) -> u8 {
        self.raw.first().copied().unwrap_or(b'?')
    }

    /// Raw bytes of the record (without terminator).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Delimiters in force.
    pub fn delimiters(&self) -> Delimiters {
        self.delims
    }

    /// Number of fields (including the type).
    pub fn field_count(&self) -> usize {
        self.spans.len()
    }

    /// Field `n` (1-based, `1` = record type); empty field when absent.
    pub fn field(&self, n: usize) -> Field<'a> {
        let raw = match self.spans.get(n.wrapping_sub(1)) {
            Some(&(a, b)) => &self.raw[a as usize..b as usize],
            None => &[][..],
        };
        Field {
            raw,
            delims: self.delims,
            doubled: self.doubled,
        }
    }

    /// Unescaped, trimmed text of field `n`.
    pub fn text(&self, n: usize) -> String {
        if self.kind() == b'H' && n == 2 {
            return text(self.field(2).raw()).into_owned();
        }
        self.field(n).trimmed()
    }
}

/// A numeric result value as sent: comparator, decimal comma handled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumericValue {
    /// `<`, `<=`, `>`, `>=` when the value is censored.
    pub comparator: Option<String>,
    /// The number with `.` as decimal separator, exactly the digits sent.
    pub number: String,
    /// The value used a decimal comma.
    pub decimal_comma: bool,
}

/// Reads `7,41`, `<0.5`, `>100`, `-1.2`; `None` for text such as `POS`.
pub fn parse_numeric(s: &str) -> Option<NumericValue> {
    let t = s.trim();
    let (comparator, rest) = ["<=", ">=", "<", ">"]
        .iter()
        .find_map(|c| {
            t.strip_prefix(c)
                .map(|r| (Some(c.to_string()), r.trim_start()))
        })
        .unwrap_or((None, t));
    let body = rest.strip_prefix(['+', '-']).unwrap_or(rest);
    if body.is_empty() {
        return None;
    }
    let seps = body.bytes().filter(|&c| c == b'.' || c == b',').count();
    let digits_ok = body
        .bytes()
        .all(|c| c.is_ascii_digit() || c == b'.' || c == b',');
    if !digits_ok || seps > 1 || !body.bytes().any(|c| c.is_ascii_digit()) {
        return None;
    }
    let decimal_comma = body.contains(',');
    Some(NumericValue {
        comparator,
        number: rest.replace(',', "."),
        decimal_comma,
    })
}

macro_rules! view {
    ($(#[$doc:meta])* $ty:ident, $kind:literal, { $($(#[$fdoc:meta])* $name:ident = $n:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug)]
        pub struct $ty<'r, 'a>(pub &'r Record<'a>);
        impl<'r, 'a> $ty<'r, 'a> {
            /// Wraps `r` if it has the right type.
            pub fn from_record(r: &'r Record<'a>) -> Option<Self> {
                (r.kind() == $kind).then_some($ty(r))
            }
            $(
                $(#[$fdoc])*
                pub fn $name(&self) -> Field<'a> { self.0.field($n) }
            )*
        }
    };
}

view!(
    /// H: message header.
    Header, b'H', {
    /// H.3 message control ID.
    control_id = 3,
    /// H.5 sender `name^version^serial`.
    sender = 5,
    /// H.10 receiver.
    receiver = 10,
    /// H.12 processing ID (P/T/D/Q).
    processing_id = 12,
    /// H.13 version.
    version = 13,
    /// H.14 timestamp.
    timestamp = 14,
});

view!(
    /// P: patient.
    Patient, b'P', {
    /// P.2 sequence.
    sequence = 2,
    /// P.3 practice patient ID.
    practice_id = 3,
    /// P.4 laboratory patient ID.
    lab_id = 4,
    /// P.5 third patient ID.
    third_id = 5,
    /// P.6 name `last^first^middle^suffix^title`.
    name = 6,
    /// P.8 birth date.
    birth_date = 8,
    /// P.9 sex.
    sex = 9,
    /// P.14 attending physician.
    physician = 14,
    /// P.26 location.
    location = 26,
});

view!(
    /// O: order.
    Order, b'O', {
    /// O.2 sequence.
    sequence = 2,
    /// O.3 specimen ID (host accession; may be space-padded or have components).
    specimen_field = 3,
    /// O.4 instrument specimen ID.
    instrument_specimen_id = 4,
    /// O.5 universal test IDs (`^^^code` repeated).
    tests_field = 5,
    /// O.6 priority.
    priority = 6,
    /// O.7 requested time.
    requested_time = 7,
    /// O.8 collection time.
    collection_time = 8,
    /// O.12 action code.
    action_code = 12,
    /// O.16 specimen descriptor.
    specimen_descriptor = 16,
    /// O.26 report type.
    report_type = 26,
});

view!(
    /// R: result.
    ResultRecord, b'R', {
    /// R.2 sequence.
    sequence = 2,
    /// R.3 universal test ID.
    test_field = 3,
    /// R.4 value (may have components).
    value = 4,
    /// R.5 units.
    units = 5,
    /// R.6 reference range.
    reference_range = 6,
    /// R.7 abnormal flags.
    flags = 7,
    /// R.8 nature of abnormality testing.
    abnormality_nature = 8,
    /// R.9 result status.
    status = 9,
    /// R.11 operator.
    operator = 11,
    /// R.12 test started.
    started = 12,
    /// R.13 test completed.
    completed = 13,
    /// R.14 instrument.
    instrument = 14,
});

view!(
    /// C: comment.
    Comment, b'C', {
    /// C.2 sequence.
    sequence = 2,
    /// C.3 source (P/L/I).
    source = 3,
    /// C.4 text `code^text` (may repeat).
    text = 4,
    /// C.5 type.
    comment_type = 5,
});

view!(
    /// Q: host query.
    Query, b'Q', {
    /// Q.2 sequence.
    sequence = 2,
    /// Q.3 starting range `patientID^specimenID^...`.
    starting_range = 3,
    /// Q.4 ending range.
    ending_range = 4,
    /// Q.5 tests (`ALL` or `^^^code`).
    tests = 5,
    /// Q.6 nature of the time limit.
    time_limit_nature = 6,
    /// Q.13 request status code.
    request_status = 13,
});

view!(
    /// L: terminator.
    Terminator, b'L', {
    /// L.2 sequence.
    sequence = 2,
    /// L.3 termination code (N, T, R, E, Q, I, F).
    code = 3,
});

/// Code of a universal test ID `^^^code^name...`: component 4; when that is
/// empty, the next non-empty component (Sysmex writes `^^^^WBC^1`); when
/// the sender omitted the leading carets, the first non-empty component.
fn test_code(f: &Field<'_>) -> String {
    let comps: Vec<String> = f.components().iter().map(|c| c.trimmed()).collect();
    if comps.len() >= 4
        && let Some(c) = comps[3..].iter().find(|s| !s.is_empty())
    {
        return c.clone();
    }
    comps
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or_default()
}

impl<'r, 'a> Order<'r, 'a> {
    /// O.3 specimen ID: first component, trimmed of padding.
    pub fn specimen_id(&self) -> String {
        self.specimen_field()
            .components()
            .first()
            .map(|c| c.trimmed())
            .unwrap_or_default()
    }
    /// O.5 test codes, one per repeat.
    pub fn tests(&self) -> Vec<String> {
        self.tests_field()
            .repeats()
            .iter()
            .map(test_code)
            .filter(|s| !s.is_empty())
            .collect()
    }
}

impl<'r, 'a> ResultRecord<'r, 'a> {
    /// R.3 test code.
    pub fn test_code(&self) -> String {
        test_code(&self.test_field())
    }
    /// R.4 components (e.g. `3+^3+^45`), unescaped.
    pub fn value_components(&self) -> Vec<String> {
        self.value()
            .components()
            .iter()
            .map(|c| c.value().into_owned())
            .collect()
    }
    /// R.4 as a number when it is one (first component).
    pub fn numeric(&self) -> Option<NumericValue> {
        parse_numeric(&self.value().component(1))
    }
    /// R.4 as text for storing: the first component, unescaped and trimmed,
    /// with a decimal comma turned into a point only when the value is a
    /// plain number with one comma (`5,2` → `5.2`, `<0,5` → `<0.5`); a
    /// comparator is kept (`<0.5`, `>500`); anything else (`POS`, `1,2,3`,
    /// `3+`) is returned as sent.
    pub fn value_text(&self) -> String {
        let text = self.value().component(1).trim().to_string();
        match parse_numeric(&text) {
            Some(n) if n.decimal_comma => {
                format!("{}{}", n.comparator.unwrap_or_default(), n.number)
            }
            _ => text,
        }
    }
    /// R.5 units, unescaped and trimmed (`""` when absent).
    pub fn unit(&self) -> String {
        self.units().trimmed()
    }
    /// R.9 result status code (F, P, C, X, …), trimmed.
    pub fn status_code(&self) -> String {
        self.status().trimmed()
    }
    /// R.13 date and time the test completed (`YYYYMMDDHHMMSS` as sent), if
    /// present.
    pub fn completed_at(&self) -> Option<String> {
        Some(self.completed().component(1).trim().to_string()).filter(|s| !s.is_empty())
    }
    /// R.14 instrument identifier (first component), if present.
    pub fn instrument_id(&self) -> Option<String> {
        Some(self.instrument().component(1).trim().to_string()).filter(|s| !s.is_empty())
    }
    /// R.7 flags, one per repeat.
    pub fn flag_list(&self) -> Vec<String> {
        self.flags()
            .repeats()
            .iter()
            .map(|r| r.trimmed())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

impl<'r, 'a> Query<'r, 'a> {
    /// Every specimen ID asked about, one per repeat of Q.3 (component 2, or
    /// component 1 when the instrument sends a bare ID), empty ones skipped.
    pub fn specimen_ids(&self) -> Vec<String> {
        self.starting_range()
            .repeats()
            .iter()
            .map(|r| {
                let c2 = r.component(2).trim().to_string();
                if c2.is_empty() {
                    r.component(1).trim().to_string()
                } else {
                    c2
                }
            })
            .filter(|s| !s.is_empty())
            .collect()
    }
    /// Specimen ID asked about: Q.3 component 2, or component 1 when the
    /// instrument sends a bare ID.
    pub fn specimen_id(&self) -> String {
        let f = self.starting_range();
        let c2 = f.component(2).trim().to_string();
        if !c2.is_empty() {
            c2
        } else {
            f.component(1).trim().to_string()
        }
    }
}

/// One order in a host-query answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnswerOrder {
    /// P.3 practice patient ID.
    pub patient_id: String,
    /// P.6 `last`, `first`.
    pub patient_name: (String, String),
    /// O.3 specimen ID.
    pub specimen_id: String,
    /// O.5 test codes.
    pub tests: Vec<String>,
    /// O.6 priority (S, A, R).
    pub priority: String,
}

/// Builds the answer to a host query: `H, (P, O)…, L|1|N` with O.12 = N
/// and O.26 = Q, or `H, L|1|I` when `orders` is empty (nothing known).
/// `sender` goes to H.5 and `timestamp` (the caller's clock) to H.14.
pub fn build_query_answer(sender: &str, timestamp: &str, orders: &[AnswerOrder]) -> Vec<u8> {
    let d = Delimiters::default();
    let e = |s: &str| escape(s, &d);
    let mut out = String::new();
    out.push_str(&format!(
        "H|\\^&|||{}|||||||P|LIS2-A2|{}\r",
        e(sender),
        e(timestamp)
    ));
    if orders.is_empty() {
        out.push_str("L|1|I\r");
        return out.into_bytes();
    }
    for (i, o) in orders.iter().enumerate() {
        out.push_str(&format!(
            "P|{}|{}|||{}^{}\r",
            i + 1,
            e(&o.patient_id),
            e(&o.patient_name.0),
            e(&o.patient_name.1)
        ));
        let tests: Vec<String> = o.tests.iter().map(|t| format!("^^^{}", e(t))).collect();
        let mut f = vec![String::new(); 26];
        f[0] = "O".into();
        f[1] = "1".into();
        f[2] = e(&o.specimen_id);
        f[4] = tests.join("\\");
        f[5] = e(&o.priority);
        f[11] = "N".into();
        f[25] = "Q".into();
        out.push_str(&f.join("|"));
        out.push('\r');
    }
    out.push_str("L|1|N\r");
    out.into_bytes()
}

/// An owned record for writing: fields → repeats → components (unescaped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedRecord {
    /// `fields[0]` is the record type; for H, `fields[1]` is ignored (the delimiters are written).
    pub fields: Vec<Vec<Vec<String>>>,
}

impl OwnedRecord {
    /// Encodes with `d`, without the terminating CR.
    pub fn encode(&self, d: &Delimiters) -> Vec<u8> {
        let mut s = String::new();
        let is_h = self
            .fields
            .first()
            .and_then(|f| f.first())
            .and_then(|r| r.first())
            .is_some_and(|t| t == "H");
        for (i, f) in self.fields.iter().enumerate() {
            if i > 0 {
                s.push(d.field as char);
            }
            if is_h && i == 1 {
                s.extend([d.repeat as char, d.component as char, d.escape as char]);
                continue;
            }
            if i == 0 {
                s.push_str(f.first().and_then(|r| r.first()).map_or("", |x| x.as_str()));
                continue;
            }
            let reps: Vec<String> = f
                .iter()
                .map(|r| {
                    r.iter()
                        .map(|c| escape(c, d))
                        .collect::<Vec<_>>()
                        .join(&(d.component as char).to_string())
                })
                .collect();
            s.push_str(&reps.join(&(d.repeat as char).to_string()));
        }
        s.into_bytes()
    }

    /// Reads a parsed record back (for round-trip checks).
    pub fn from_record(r: &Record<'_>) -> OwnedRecord {
        let mut fields = Vec::with_capacity(r.field_count());
        for n in 1..=r.field_count() {
            let f = r.field(n);
            if n == 1 || (r.kind() == b'H' && n == 2) {
                fields.push(vec![vec![text(f.raw()).into_owned()]]);
                continue;
            }
            fields.push(
                f.repeats()
                    .iter()
                    .map(|rep| {
                        split_on(rep.raw(), r.delims.component, false)
                            .iter()
                            .map(|c| unescape(c, &r.delims).into_owned())
                            .collect()
                    })
                    .collect(),
            );
        }
        OwnedRecord { fields }
    }
}
