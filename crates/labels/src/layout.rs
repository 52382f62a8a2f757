//! Label geometry (in printer dots) and text fitting.

use crate::LabelError;
use crate::code128::Plan;

/// Physical label and typography settings, all lengths in printer dots.
///
/// [`LabelLayout::default`] is a standard 2" x 1" (50.8 mm x 25.4 mm) tube
/// label on a 203 dpi printer; [`LabelLayout::tube_2x1_300dpi`] is the same
/// label for 300 dpi printers. Rows are stacked top to bottom:
///
/// | row | content |
/// |-----|---------|
/// | 1 | patient name (left), priority (right; STAT reversed) |
/// | 2 | second identifier (left), collection time (right) |
/// | 3 | Code 128 barcode of the accession, centred |
/// | 4 | accession number in clear text, centred |
/// | 5 | tube type |
/// | 6 | tests (left, cut with an ellipsis), reprint counter (right) |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelLayout {
    /// Printer resolution in dots per inch (203, 300 or 600 are usual).
    pub dpi: u32,
    /// Label width in dots (`^PW`).
    pub width: u32,
    /// Label height in dots (`^LL`).
    pub height: u32,
    /// Blank margin on all four sides, for text only: the barcode quiet
    /// zones may extend into it.
    pub margin: u32,
    /// Vertical gap between rows.
    pub row_gap: u32,
    /// Preferred width of one barcode module (`^BY`). A narrower module is
    /// used when the symbol and its quiet zones would not fit the label.
    pub module_width: u32,
    /// Minimum quiet zone on each side of the barcode, in modules.
    pub quiet_zone_modules: u32,
    /// Height of the bars.
    pub barcode_height: u32,
    /// Font height of the patient name and priority (row 1).
    pub name_font: u32,
    /// Font height of the accession in clear text (row 4).
    pub accession_font: u32,
    /// Font height of the other rows.
    pub text_font: u32,
}

impl Default for LabelLayout {
    fn default() -> Self {
        Self::tube_2x1_203dpi()
    }
}

impl LabelLayout {
    /// 2" x 1" tube label at 203 dpi (406 x 203 dots).
    pub fn tube_2x1_203dpi() -> Self {
        Self {
            dpi: 203,
            width: 406,
            height: 203,
            margin: 8,
            row_gap: 3,
            module_width: 2,
            quiet_zone_modules: 10,
            barcode_height: 64,
            name_font: 24,
            accession_font: 22,
            text_font: 18,
        }
    }

    /// 2" x 1" tube label at 300 dpi (600 x 300 dots).
    pub fn tube_2x1_300dpi() -> Self {
        Self {
            dpi: 300,
            width: 600,
            height: 300,
            margin: 12,
            row_gap: 4,
            module_width: 3,
            quiet_zone_modules: 10,
            barcode_height: 95,
            name_font: 36,
            accession_font: 32,
            text_font: 27,
        }
    }

    /// Label width in millimetres.
    pub fn width_mm(&self) -> f64 {
        dots_to_mm(self.width, self.dpi)
    }

    /// Label height in millimetres.
    pub fn height_mm(&self) -> f64 {
        dots_to_mm(self.height, self.dpi)
    }

    /// Computes the positions of everything on the label for `plan`.
    pub(crate) fn geometry(&self, plan: &Plan) -> Result<Geometry, LabelError> {
        if self.dpi == 0 || self.width == 0 || self.height == 0 {
            return Err(LabelError::InvalidLayout(
                "dpi, width and height must be positive",
            ));
        }
        if self.module_width == 0 || self.barcode_height == 0 {
            return Err(LabelError::InvalidLayout(
                "module width and barcode height must be positive",
            ));
        }
        if self.name_font == 0 || self.accession_font == 0 || self.text_font == 0 {
            return Err(LabelError::InvalidLayout("font sizes must be positive"));
        }
        let text_width = self
            .width
            .checked_sub(2 * self.margin)
            .filter(|w| *w > 0)
            .ok_or(LabelError::InvalidLayout("margins leave no room for text"))?;

        let mut y = self.margin;
        let mut next_row = |height: u32| {
            let top = y;
            y += height + self.row_gap;
            top
        };
        let name_y = next_row(self.name_font);
        let id_y = next_row(self.text_font);
        let barcode_y = next_row(self.barcode_height);
        let accession_y = next_row(self.accession_font);
        let tube_y = next_row(self.text_font);
        let tests_y = next_row(self.text_font);
        let bottom = tests_y + self.text_font + self.margin;
        if bottom > self.height {
            return Err(LabelError::InvalidLayout(
                "rows do not fit the label height",
            ));
        }

        let modules = plan.modules();
        let with_quiet = modules + 2 * self.quiet_zone_modules;
        let module = (1..=self.module_width)
            .rev()
            .find(|w| with_quiet * w <= self.width)
            .ok_or(LabelError::BarcodeTooWide {
                modules: with_quiet,
                available_dots: self.width,
            })?;
        let barcode_x = (self.width - modules * module) / 2;

        Ok(Geometry {
            text_x: self.margin,
            text_width,
            name_y,
            id_y,
            barcode_x,
            barcode_y,
            module,
            accession_y,
            tube_y,
            tests_y,
        })
    }
}

/// Resolved positions in dots; `*_y` values are the top of each row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub text_x: u32,
    pub text_width: u32,
    pub name_y: u32,
    pub id_y: u32,
    pub barcode_x: u32,
    pub barcode_y: u32,
    /// Module width actually used, in dots.
    pub module: u32,
    pub accession_y: u32,
    pub tube_y: u32,
    pub tests_y: u32,
}

fn dots_to_mm(dots: u32, dpi: u32) -> f64 {
    f64::from(dots) * 25.4 / f64::from(dpi)
}

/// Estimated advance width of `c` in a sans-serif font, in 1/100 em.
///
/// Deliberately generous (Helvetica/Arial-like metrics, rounded up) so that
/// text fitted with it also fits the narrower Zebra font 0.
fn char_width(c: char) -> u32 {
    match c {
        'i' | 'j' | 'l' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' | 'I' => 30,
        ' ' | 'f' | 't' | 'r' | '(' | ')' | '[' | ']' | '/' | '\\' | '-' | '"' => 38,
        'm' | 'w' | 'M' | 'W' | '@' | '%' => 90,
        c if c.is_uppercase() => 72,
        c if c.is_ascii_digit() => 58,
        _ => 60,
    }
}

/// Estimated width of `text` in dots at font height `font`.
pub(crate) fn text_width(text: &str, font: u32) -> u32 {
    let hundredths: u32 = text.chars().map(char_width).sum();
    (hundredths * font).div_ceil(100)
}

/// `text` unchanged if it fits `max_width` dots, otherwise its longest
/// prefix that fits with `ellipsis` appended.
pub(crate) fn fit(text: &str, font: u32, max_width: u32, ellipsis: &str) -> String {
    if text_width(text, font) <= max_width {
        return text.to_owned();
    }
    let mut out = String::new();
    for c in text.chars() {
        out.push(c);
        if text_width(&out, font) + text_width(ellipsis, font) > max_width {
            out.pop();
            break;
        }
    }
    let kept = out.trim_end().len();
    out.truncate(kept);
    out.push_str(ellipsis);
    out
}

/// Joins test codes with `", "`, keeping only whole codes that fit and
/// marking the cut with `ellipsis`: a partial code such as `HBA1` for
/// `HBA1C` could be read as another test. Only a first code that does not
/// fit on its own is cut mid-code (still marked with the ellipsis).
pub(crate) fn fit_tests(tests: &[String], font: u32, max_width: u32, ellipsis: &str) -> String {
    let all = tests.join(", ");
    if text_width(&all, font) <= max_width {
        return all;
    }
    let mut kept = String::new();
    for test in tests {
        let candidate = if kept.is_empty() {
            test.clone()
        } else {
            format!("{kept}, {test}")
        };
        let with_mark = format!("{candidate}, {ellipsis}");
        if text_width(&with_mark, font) > max_width {
            break;
        }
        kept = candidate;
    }
    if kept.is_empty() {
        fit(&all, font, max_width, ellipsis)
    } else {
        format!("{kept}, {ellipsis}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_layout_is_two_by_one_inch_at_203_dpi() {
        let layout = LabelLayout::default();
        assert!((layout.width_mm() - 50.8).abs() < 0.1);
        assert!((layout.height_mm() - 25.4).abs() < 0.1);
        let layout = LabelLayout::tube_2x1_300dpi();
        assert!((layout.width_mm() - 50.8).abs() < 0.1);
        assert!((layout.height_mm() - 25.4).abs() < 0.1);
    }

    #[test]
    fn both_presets_fit_their_rows() {
        let plan = Plan::new("24-000123").unwrap();
        for layout in [
            LabelLayout::tube_2x1_203dpi(),
            LabelLayout::tube_2x1_300dpi(),
        ] {
            let g = layout.geometry(&plan).unwrap();
            assert_eq!(g.module, layout.module_width);
            assert!(g.tests_y + layout.text_font + layout.margin <= layout.height);
        }
    }

    #[test]
    fn long_accession_gets_narrower_modules_then_fails() {
        let layout = LabelLayout::default();
        let g = layout
            .geometry(&Plan::new("ABCDEFGHIJKLMNOPQRST").unwrap())
            .unwrap();
        assert_eq!(g.module, 1);
        let too_long = "X".repeat(40);
        assert!(matches!(
            layout.geometry(&Plan::new(&too_long).unwrap()),
            Err(LabelError::BarcodeTooWide { .. })
        ));
    }

    #[test]
    fn quiet_zones_are_respected() {
        let layout = LabelLayout::default();
        let plan = Plan::new("ABCDEFGHIJKLMNOPQRST").unwrap();
        let g = layout.geometry(&plan).unwrap();
        let quiet = layout.quiet_zone_modules * g.module;
        assert!(g.barcode_x >= quiet);
        assert!(layout.width - (g.barcode_x + plan.modules() * g.module) >= quiet);
    }

    #[test]
    fn fit_appends_ellipsis_only_when_needed() {
        assert_eq!(fit("SHORT", 20, 400, "…"), "SHORT");
        let cut = fit(&"A".repeat(100), 20, 200, "…");
        assert!(cut.ends_with('…'));
        assert!(text_width(&cut, 20) <= 200);
    }

    #[test]
    fn fit_tests_keeps_whole_codes() {
        let tests: Vec<String> = ["CBC", "HBA1C", "LIPID", "TSH", "FT4", "CRP", "FERR"]
            .map(String::from)
            .into();
        let line = fit_tests(&tests, 20, 150, "…");
        assert!(line.ends_with(", …"), "{line}");
        assert!(text_width(&line, 20) <= 150);
        for part in line.trim_end_matches(", …").split(", ") {
            assert!(tests.iter().any(|t| t == part), "{part} is a cut code");
        }
    }
}
