//! ZPL II output.

use std::fmt::Write as _;

use crate::scene::{Align, Element, Text, compose};
use crate::{LabelData, LabelError, LabelLayout};

/// Ellipsis for truncated ZPL text: resident printer fonts may lack `…`.
const ELLIPSIS: &str = "...";

/// Renders the label as one ZPL II format (`^XA` … `^XZ`), one command per
/// line. See the crate documentation for the commands used and the escaping.
///
/// # Errors
///
/// [`LabelError`] if the accession is empty or not printable ASCII, if the
/// barcode does not fit the label width, or if the layout is inconsistent.
pub fn render_zpl(data: &LabelData, layout: &LabelLayout) -> Result<String, LabelError> {
    let elements = compose(data, layout, ELLIPSIS)?;
    let mut out = String::new();
    let mut line = |s: &str| {
        out.push_str(s);
        out.push('\n');
    };
    line("^XA");
    line("^CI28");
    line(&format!("^PW{}", layout.width));
    line(&format!("^LL{}", layout.height));
    line("^LH0,0");
    for element in &elements {
        line(&element_zpl(element));
    }
    line("^XZ");
    Ok(out)
}

fn element_zpl(element: &Element) -> String {
    match element {
        Element::Fill {
            x,
            y,
            width,
            height,
        } => {
            let thickness = width.min(height);
            format!("^FO{x},{y}^GB{width},{height},{thickness}^FS")
        }
        Element::Text(text) => text_zpl(text),
        Element::Barcode {
            x,
            y,
            module,
            height,
            plan,
        } => format!(
            "^BY{module}^FO{x},{y}^BCN,{height},N,N,N^FD{}^FS",
            plan.zpl_field_data()
        ),
    }
}

fn text_zpl(text: &Text) -> String {
    let Text {
        x,
        y,
        width,
        font,
        align,
        reverse,
        text,
    } = text;
    let justify = match align {
        Align::Left => 'L',
        Align::Center => 'C',
        Align::Right => 'R',
    };
    let mut out = format!("^FO{x},{y}^A0N,{font},{font}^FB{width},1,0,{justify},0");
    if *reverse {
        out.push_str("^FR");
    }
    let _ = write!(out, "^FH_^FD{}^FS", escape_field(text));
    out
}

/// Escapes text field data for `^FH_`: `^`, `~`, `_` and control
/// characters become `_XX` hex escapes of their UTF-8 bytes; other
/// characters pass through as UTF-8 (`^CI28`). Text fields are `^FB`
/// blocks, so a backslash is doubled: `\&` must not become a line break.
fn escape_field(data: &str) -> String {
    let mut out = String::with_capacity(data.len());
    for c in data.chars() {
        match c {
            '^' | '~' | '_' => hex_escape(&mut out, c),
            c if c.is_control() => hex_escape(&mut out, c),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out
}

fn hex_escape(out: &mut String, c: char) {
    let mut buf = [0; 4];
    for byte in c.encode_utf8(&mut buf).bytes() {
        let _ = write!(out, "_{byte:02X}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_command_prefixes_and_hex_indicator() {
        assert_eq!(escape_field("A^B~C_D"), "A_5EB_7EC_5FD");
    }

    #[test]
    fn escapes_control_characters_as_utf8_bytes() {
        assert_eq!(escape_field("a\nb\r\u{7f}"), "a_0Ab_0D_7F");
        assert_eq!(escape_field("x\u{85}"), "x_C2_85");
    }

    #[test]
    fn keeps_unicode_and_doubles_backslash() {
        assert_eq!(escape_field("MÜLLER, Jürgen"), "MÜLLER, Jürgen");
        assert_eq!(escape_field(r"A\&B"), r"A\\&B");
    }
}
