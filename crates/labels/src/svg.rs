//! SVG output.

use std::fmt::Write as _;

use crate::scene::{Align, Element, Text, compose};
use crate::{LabelData, LabelError, LabelLayout};

const ELLIPSIS: &str = "…";
const FONT_FAMILY: &str = "Arial, Helvetica, sans-serif";
/// Baseline position below the top of a text cell, as a fraction of the
/// font size (close to the ascent of Arial-like fonts).
const BASELINE: f64 = 0.8;

/// Renders the label as a standalone SVG document: `width`/`height` in mm,
/// `viewBox` in printer dots, bars as `<rect>`s in `<g class="barcode">`.
///
/// # Errors
///
/// Same as [`crate::render_zpl`].
pub fn render_svg(data: &LabelData, layout: &LabelLayout) -> Result<String, LabelError> {
    let elements = compose(data, layout, ELLIPSIS)?;
    let (w, h) = (layout.width, layout.height);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{:.2}mm" height="{:.2}mm" viewBox="0 0 {w} {h}">"#,
        layout.width_mm(),
        layout.height_mm(),
    );
    let _ = writeln!(
        out,
        r##"<rect x="0" y="0" width="{w}" height="{h}" fill="#fff"/>"##
    );
    for element in &elements {
        element_svg(&mut out, element)?;
    }
    out.push_str("</svg>\n");
    Ok(out)
}

fn element_svg(out: &mut String, element: &Element) -> Result<(), LabelError> {
    match element {
        Element::Fill {
            x,
            y,
            width,
            height,
        } => {
            let _ = writeln!(
                out,
                r##"<rect x="{x}" y="{y}" width="{width}" height="{height}" fill="#000"/>"##
            );
        }
        Element::Text(text) => text_svg(out, text),
        Element::Barcode {
            x,
            y,
            module,
            height,
            plan,
        } => {
            let bars = plan.bars()?;
            out.push_str(r##"<g class="barcode" fill="#000" shape-rendering="crispEdges">"##);
            out.push('\n');
            for (start, len) in bar_runs(&bars) {
                let _ = writeln!(
                    out,
                    r#"<rect x="{}" y="{y}" width="{}" height="{height}"/>"#,
                    x + start * module,
                    len * module,
                );
            }
            out.push_str("</g>\n");
        }
    }
    Ok(())
}

/// `(first module, length)` of every run of consecutive bar modules.
fn bar_runs(bars: &[bool]) -> Vec<(u32, u32)> {
    let mut runs = Vec::new();
    let mut start = None;
    for (i, &bar) in (0u32..).zip(bars.iter().chain([&false])) {
        match (bar, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                runs.push((s, i - s));
                start = None;
            }
            _ => {}
        }
    }
    runs
}

fn text_svg(out: &mut String, text: &Text) {
    if text.text.is_empty() {
        return;
    }
    let (anchor, x) = match text.align {
        Align::Left => ("start", text.x),
        Align::Center => ("middle", text.x + text.width / 2),
        Align::Right => ("end", text.x + text.width),
    };
    let baseline = f64::from(text.y) + f64::from(text.font) * BASELINE;
    let fill = if text.reverse { "#fff" } else { "#000" };
    let weight = if text.reverse {
        r#" font-weight="bold""#
    } else {
        ""
    };
    let _ = writeln!(
        out,
        r#"<text x="{x}" y="{baseline:.1}" font-family="{FONT_FAMILY}" font-size="{}" text-anchor="{anchor}" fill="{fill}"{weight} xml:space="preserve">{}</text>"#,
        text.font,
        xml_escape(&text.text),
    );
}

/// Escapes text for XML character data and attribute values. Control
/// characters, which XML 1.0 cannot carry even as references, become
/// U+FFFD.
pub(crate) fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_runs_merge_adjacent_modules() {
        let bars = [true, true, false, true, false, false, true, true, true];
        assert_eq!(bar_runs(&bars), vec![(0, 2), (3, 1), (6, 3)]);
        assert!(bar_runs(&[false, false]).is_empty());
    }

    #[test]
    fn xml_escape_handles_markup_and_controls() {
        assert_eq!(
            xml_escape(r#"<a href="x">&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;"
        );
        assert_eq!(xml_escape("a\u{0}b\tc"), "a\u{FFFD}b\u{FFFD}c");
    }
}
