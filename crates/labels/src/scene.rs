//! The label as a list of positioned elements, shared by both renderers.

use crate::code128::Plan;
use crate::layout::{
    Geometry, LabelLayout, fit, fit_name, fit_tests, text_width, text_width_hundredths,
};
use crate::{LabelData, LabelError};

/// Horizontal justification of a text field within its box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Center,
    Right,
}

/// A one-line text field: `text` is already fitted to `width`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Text {
    pub x: u32,
    /// Top of the text cell.
    pub y: u32,
    pub width: u32,
    pub font: u32,
    pub align: Align,
    /// White on black (drawn over a [`Element::Fill`]).
    pub reverse: bool,
    pub text: String,
}

/// One thing drawn on the label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Element {
    /// Solid black rectangle.
    Fill {
        x: u32,
        y: u32,
        width: u32,
        height: u32,
    },
    Text(Text),
    /// The accession barcode; `x` is the left edge of the start character.
    Barcode {
        x: u32,
        y: u32,
        module: u32,
        height: u32,
        plan: Plan,
    },
}

/// Lays out `data` on `layout`; `ellipsis` marks truncated text.
pub(crate) fn compose(
    data: &LabelData,
    layout: &LabelLayout,
    ellipsis: &str,
) -> Result<Vec<Element>, LabelError> {
    let plan = Plan::new(&data.accession)?;
    let g: Geometry = layout.geometry(&plan)?;
    let text = |y: u32, font: u32, align: Align, text: String| Text {
        x: g.text_x,
        y,
        width: g.text_width,
        font,
        align,
        reverse: false,
        text,
    };
    let mut elements = Vec::new();

    // Row 1: name, priority. STAT is reversed at the name's size; other
    // priorities are plain text at the smaller size, on the same baseline.
    let font = layout.name_font;
    let pad = font / 4;
    let mut priority_elements = Vec::new();
    let priority_width = if data.is_stat() {
        let label = "STAT".to_owned();
        let width = text_width(&label, font)
            .saturating_add(2 * pad)
            .min(g.text_width);
        let x = g.text_x + (g.text_width - width);
        priority_elements.push(Element::Fill {
            x,
            y: g.name_y.saturating_sub(pad / 2),
            width,
            height: font.saturating_add(pad / 2),
        });
        priority_elements.push(Element::Text(Text {
            x,
            width,
            reverse: true,
            ..text(g.name_y, font, Align::Center, label)
        }));
        width
    } else {
        let small = layout.text_font.min(font);
        let label = fit(data.priority.trim(), small, g.text_width / 3, ellipsis);
        let width = text_width(&label, small);
        if !label.is_empty() {
            let y = g.name_y + (font - small) / 5 * 4;
            priority_elements.push(Element::Text(text(y, small, Align::Right, label)));
        }
        width
    };
    let name_width = left_room(g.text_width, priority_width, font);
    let name = fit_name(
        &data.family_name,
        &data.given_name,
        font,
        name_width,
        ellipsis,
    );
    elements.push(Element::Text(Text {
        width: name_width,
        ..text(g.name_y, font, Align::Left, name)
    }));
    elements.append(&mut priority_elements);

    // Row 2: birth date, second identifier (MRN).
    let font = layout.text_font;
    let second = fit(
        &data.second_identifier,
        font,
        g.text_width / 5 * 3,
        ellipsis,
    );
    let birth_width = left_room(g.text_width, text_width(&second, font), font);
    let birth = fit(&data.birth_date, font, birth_width, ellipsis);
    elements.push(Element::Text(Text {
        width: birth_width,
        ..text(g.id_y, font, Align::Left, birth)
    }));
    elements.push(Element::Text(text(g.id_y, font, Align::Right, second)));

    // Rows 3 and 4: barcode and accession in clear text.
    elements.push(Element::Barcode {
        x: g.barcode_x,
        y: g.barcode_y,
        module: g.module,
        height: layout.barcode_height,
        plan,
    });
    // Never cut the accession: shrink its font instead if it is too wide.
    let accession_font = largest_font_fitting(&data.accession, layout.accession_font, g.text_width);
    elements.push(Element::Text(Text {
        // Same baseline whatever the size.
        y: g.accession_y + (layout.accession_font - accession_font) / 5 * 4,
        ..text(
            g.accession_y,
            accession_font,
            Align::Center,
            data.accession.clone(),
        )
    }));

    // Row 5: collection date and time (left, never cut while it fits half
    // the label), tube (right, cut first).
    let collection = match &data.collection {
        Some(time) => format!("Coll {}", time.trim()),
        None => "Coll __ ___ __:__".to_owned(),
    };
    let collection = fit(&collection, font, g.text_width / 5 * 3, ellipsis);
    let tube_width = left_room(g.text_width, text_width(&collection, font), font);
    let tube = fit(&data.tube, font, tube_width, ellipsis);
    elements.push(Element::Text(text(g.tube_y, font, Align::Left, collection)));
    elements.push(Element::Text(Text {
        x: g.text_x + (g.text_width - tube_width),
        width: tube_width,
        ..text(g.tube_y, font, Align::Right, tube)
    }));

    // Row 6: tests, reprint counter.
    let copy = data.copy.map(|n| format!("R{n}")).unwrap_or_default();
    let tests_width = left_room(g.text_width, text_width(&copy, font), font);
    // The tests, or, when they do not all fit, the department and how many.
    let all = data.tests.join(", ");
    let tests = match &data.department {
        Some(dept) if text_width(&all, font) > tests_width && !dept.trim().is_empty() => fit(
            &format!("{} ({} tests)", dept.trim(), data.tests.len()),
            font,
            tests_width,
            ellipsis,
        ),
        _ => fit_tests(&data.tests, font, tests_width, ellipsis),
    };
    elements.push(Element::Text(Text {
        width: tests_width,
        ..text(g.tests_y, font, Align::Left, tests)
    }));
    if !copy.is_empty() {
        elements.push(Element::Text(text(g.tests_y, font, Align::Right, copy)));
    }

    elements.retain(|e| !matches!(e, Element::Text(t) if t.text.is_empty()));
    Ok(elements)
}

/// `font`, or the largest smaller size at which `text` fits `width` (at
/// least 1).
fn largest_font_fitting(text: &str, font: u32, width: u32) -> u32 {
    match text_width_hundredths(text) {
        0 => font,
        // ceil(h * f / 100) <= width  <=>  f <= 100 * width / h
        hundredths => {
            let fitting = u64::from(width) * 100 / hundredths;
            u32::try_from(fitting).map_or(font, |f| f.min(font)).max(1)
        }
    }
}

/// Width left for a left-aligned field next to a right-aligned one of
/// `right` dots, keeping a gap of half a font height.
fn left_room(total: u32, right: u32, font: u32) -> u32 {
    if right == 0 {
        total
    } else {
        total.saturating_sub(right.saturating_add(font / 2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accession_text_shrinks_instead_of_being_cut() {
        let data = LabelData {
            accession: "W".repeat(20),
            ..LabelData::default()
        };
        let layout = LabelLayout::default();
        let elements = compose(&data, &layout, "…").unwrap();
        let accession = elements
            .iter()
            .find_map(|e| match e {
                Element::Text(t) if t.text == data.accession => Some(t),
                _ => None,
            })
            .expect("accession printed in full");
        assert!(accession.font < layout.accession_font);
        assert!(text_width(&accession.text, accession.font) <= accession.width);
        assert!(text_width(&accession.text, accession.font + 1) > accession.width);
    }

    #[test]
    fn every_text_fits_its_box() {
        let data = LabelData {
            accession: "24-000123".into(),
            family_name: "VERYLONGFAMILYNAME-DOUBLEBARREL".into(),
            given_name: "Christopher".into(),
            birth_date: "DOB 1980-02-29".into(),
            second_identifier: "MRN 1234567890123456789012345".into(),
            department: Some("Hematology".into()),
            tube: "Light blue sodium citrate 3.2% 2.7 mL (coagulation)".into(),
            tests: (0..30).map(|i| format!("TEST{i}")).collect(),
            priority: "ROUTINE-WITH-A-LONG-NAME".into(),
            collection: Some("Saturday 21 November 2026 07:45".into()),
            copy: Some(12),
        };
        for layout in [
            LabelLayout::tube_2x1_203dpi(),
            LabelLayout::tube_2x1_300dpi(),
        ] {
            for element in compose(&data, &layout, "…").unwrap() {
                if let Element::Text(t) = element {
                    assert!(
                        text_width(&t.text, t.font) <= t.width,
                        "{:?} overflows {} dots",
                        t.text,
                        t.width
                    );
                }
            }
        }
    }
}
