//! Escape sequences (`\F\ \S\ \T\ \R\ \E\ \P\ \Xhh\ \.br\ ...`).

use std::borrow::Cow;

use crate::parse::Delimiters;

/// The character set used to decode `\Xhh\` bytes (from MSH-18).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charset {
    /// Bytes are Latin-1 code points (MSH-18 empty, ASCII, 8859/1, ...).
    Latin1,
    /// Bytes are UTF-8 (MSH-18 `UNICODE UTF-8`).
    Utf8,
}

impl Charset {
    /// Maps an MSH-18 value to the policy above.
    pub fn from_msh18(raw: &[u8]) -> Charset {
        let first = raw.split(|&b| b == b'~').next().unwrap_or(&[]);
        let up: Vec<u8> = first.iter().map(|b| b.to_ascii_uppercase()).collect();
        if up.windows(5).any(|w| w == b"UTF-8") || up.windows(4).any(|w| w == b"UTF8") {
            Charset::Utf8
        } else {
            Charset::Latin1
        }
    }
}

/// Options for unescaping.
#[derive(Clone, Copy, Debug, Default)]
pub struct UnescapeOptions<'o> {
    /// Replacement for `\H\` (highlight on). Default: nothing.
    pub highlight_on: &'o str,
    /// Replacement for `\N\` (normal text). Default: nothing.
    pub highlight_off: &'o str,
}

/// Most units a formatting escape such as `\.sp 5\` may expand to.
pub const MAX_FORMAT_REPEAT: usize = 64;

pub(crate) fn text(raw: &[u8], utf8: bool) -> Cow<'_, str> {
    if utf8 {
        match std::str::from_utf8(raw) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(raw),
        }
    } else {
        match std::str::from_utf8(raw) {
            Ok(s) if raw.is_ascii() => Cow::Borrowed(s),
            _ => Cow::Owned(raw.iter().map(|&b| b as char).collect()),
        }
    }
}

fn push_text(out: &mut String, raw: &[u8], utf8: bool) {
    out.push_str(&text(raw, utf8));
}

/// Unescapes one leaf with default options; `raw` is UTF-8 or else Latin-1.
pub fn unescape<'a>(raw: &'a [u8], delims: &Delimiters, charset: Charset) -> Cow<'a, str> {
    let utf8 = std::str::from_utf8(raw).is_ok();
    unescape_impl(raw, delims, charset, &UnescapeOptions::default(), utf8)
}

/// Unescapes one leaf with explicit options.
pub fn unescape_with<'a>(
    raw: &'a [u8],
    delims: &Delimiters,
    charset: Charset,
    opts: &UnescapeOptions,
) -> Cow<'a, str> {
    let utf8 = std::str::from_utf8(raw).is_ok();
    unescape_impl(raw, delims, charset, opts, utf8)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode_hex(h: &[u8]) -> Option<Vec<u8>> {
    if h.is_empty() || !h.len().is_multiple_of(2) {
        return None;
    }
    h.chunks(2)
        .map(|p| Some(hex_val(p[0])? << 4 | hex_val(p[1])?))
        .collect()
}

fn format_count(arg: &[u8]) -> usize {
    let t = std::str::from_utf8(arg).unwrap_or("").trim();
    if t.is_empty() {
        return 1;
    }
    t.trim_start_matches('+')
        .parse::<usize>()
        .unwrap_or(1)
        .min(MAX_FORMAT_REPEAT)
}

pub(crate) fn unescape_impl<'a>(
    raw: &'a [u8],
    d: &Delimiters,
    charset: Charset,
    opts: &UnescapeOptions,
    utf8: bool,
) -> Cow<'a, str> {
    let Some(esc) = d.escape else {
        return text(raw, utf8);
    };
    let Some(first) = memchr::memchr(esc, raw) else {
        return text(raw, utf8);
    };
    let mut out = String::with_capacity(raw.len());
    push_text(&mut out, &raw[..first], utf8);
    let mut i = first;
    while i < raw.len() {
        // raw[i] == esc
        let Some(close) = memchr::memchr(esc, &raw[i + 1..]).map(|p| p + i + 1) else {
            push_text(&mut out, &raw[i..], utf8);
            break;
        };
        let body = &raw[i + 1..close];
        let literal = |out: &mut String| push_text(out, &raw[i..=close], utf8);
        match body {
            b"F" => out.push(d.field as char),
            b"S" => push_opt(&mut out, d.component, || literal_s(raw, i, close, utf8)),
            b"T" => push_opt(&mut out, d.subcomponent, || literal_s(raw, i, close, utf8)),
            b"R" => push_opt(&mut out, d.repetition, || literal_s(raw, i, close, utf8)),
            b"E" => out.push(esc as char),
            b"P" => push_opt(&mut out, d.truncation, || literal_s(raw, i, close, utf8)),
            b"H" => out.push_str(opts.highlight_on),
            b"N" => out.push_str(opts.highlight_off),
            b".br" => out.push('\n'),
            b".fi" | b".nf" => {}
            b".ce" => out.push('\n'),
            _ if body.first() == Some(&b'X') => match decode_hex(&body[1..]) {
                Some(bytes) => match charset {
                    Charset::Utf8 => out.push_str(&String::from_utf8_lossy(&bytes)),
                    Charset::Latin1 => out.extend(bytes.iter().map(|&b| b as char)),
                },
                None => literal(&mut out),
            },
            _ if body.starts_with(b".sp") => {
                let n = format_count(&body[3..]);
                out.extend(std::iter::repeat_n('\n', n));
            }
            _ if body.starts_with(b".sk") => {
                let n = format_count(&body[3..]);
                out.extend(std::iter::repeat_n(' ', n));
            }
            _ if body.starts_with(b".in") || body.starts_with(b".ti") => {}
            _ if (body.first() == Some(&b'C') || body.first() == Some(&b'M'))
                && decode_hex(&body[1..]).is_some() => {}
            _ => literal(&mut out),
        }
        i = close + 1;
        match memchr::memchr(esc, &raw[i..]) {
            Some(p) => {
                push_text(&mut out, &raw[i..i + p], utf8);
                i += p;
            }
            None => {
                push_text(&mut out, &raw[i..], utf8);
                break;
            }
        }
    }
    Cow::Owned(out)
}

fn literal_s(raw: &[u8], i: usize, close: usize, utf8: bool) -> String {
    text(&raw[i..=close], utf8).into_owned()
}

fn push_opt(out: &mut String, c: Option<u8>, lit: impl FnOnce() -> String) {
    match c {
        Some(c) => out.push(c as char),
        None => out.push_str(&lit()),
    }
}
