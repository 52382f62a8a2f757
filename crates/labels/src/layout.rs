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
            .checked_sub(self.margin.saturating_mul(2))
            .filter(|w| *w > 0)
            .ok_or(LabelError::InvalidLayout("margins leave no room for text"))?;

        // Stack the rows in u64 so that absurd layouts are rejected, not
        // overflowed; everything is then bounded by the label height.
        let mut y = u64::from(self.margin);
        let mut next_row = |height: u32| {
            let top = y;
            y += u64::from(height) + u64::from(self.row_gap);
            top
        };
        let rows = [
            next_row(self.name_font),
            next_row(self.text_font),
            next_row(self.barcode_height),
            next_row(self.accession_font),
            next_row(self.text_font),
            next_row(self.text_font),
        ];
        let bottom = rows[5] + u64::from(self.text_font) + u64::from(self.margin);
        if bottom > u64::from(self.height) {
            return Err(LabelError::InvalidLayout(
                "rows do not fit the label height",
            ));
        }
        let [name_y, id_y, barcode_y, accession_y, tube_y, tests_y] =
            rows.map(|top| u32::try_from(top).unwrap_or(u32::MAX));

        let modules = u64::from(plan.modules());
        let with_quiet = modules + 2 * u64::from(self.quiet_zone_modules);
        let too_wide = LabelError::BarcodeTooWide {
            modules: u32::try_from(with_quiet).unwrap_or(u32::MAX),
            available_dots: self.width,
        };
        let module = (u64::from(self.width) / with_quiet).min(u64::from(self.module_width));
        if module == 0 {
            return Err(too_wide);
        }
        // Both fit in u32: module * with_quiet <= width.
        let barcode_x = u32::try_from((u64::from(self.width) - modules * module) / 2)
            .map_err(|_| too_wide.clone())?;
        let module = u32::try_from(module).map_err(|_| too_wide)?;

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
    to_dots(text_width_hundredths(text), font)
}

fn to_dots(hundredths: u64, font: u32) -> u32 {
    u32::try_from((hundredths * u64::from(font)).div_ceil(100)).unwrap_or(u32::MAX)
}

/// The patient's name as printed, `FAMILY, Given`, fitted to `max_width`
/// dots at `font` by one documented rule that shortens both names and drops
/// neither (CLSI GP33):
///
/// 1. the full name, if it fits;
/// 2. the first given name in full and the others as initials
///    (`DOE, Hubert B.`);
/// 3. that, with the family name cut (marked with `ellipsis`) to what is
///    left, as long as at least six of its characters remain
///    (`WOLFESCHLEGELST…, Hubert B.`);
/// 4. every given name as an initial, the family name cut to what is left,
///    at least one character (`WOLFESCHLEGELSTEINHAUS…, H. B.`);
/// 5. on a field too narrow even for that, the initials cut too.
pub fn fit_name(family: &str, given: &str, font: u32, max_width: u32, ellipsis: &str) -> String {
    let family = family.trim();
    let names: Vec<&str> = given.split_whitespace().collect();
    if names.is_empty() || family.is_empty() {
        let only = if family.is_empty() {
            names.join(" ")
        } else {
            family.to_owned()
        };
        return fit(&only, font, max_width, ellipsis);
    }
    let initial = |n: &&str| {
        n.chars()
            .next()
            .map(|c| format!("{c}."))
            .unwrap_or_default()
    };
    let full = names.join(" ");
    let first_plus = match names.split_first() {
        Some((first, rest)) if !rest.is_empty() => {
            let rest: Vec<String> = rest.iter().map(initial).collect();
            format!("{first} {}", rest.join(" "))
        }
        _ => full.clone(),
    };
    let initials = names.iter().map(initial).collect::<Vec<_>>().join(" ");
    for g in [&full, &first_plus] {
        let name = format!("{family}, {g}");
        if text_width(&name, font) <= max_width {
            return name;
        }
    }
    for (g, min_chars) in [(&first_plus, 6), (&initials, 1)] {
        let tail = format!(", {g}");
        let room = max_width.saturating_sub(text_width(&tail, font));
        let kept: String = family.chars().take(min_chars).collect();
        if text_width(&format!("{kept}{ellipsis}"), font) <= room {
            return format!("{}{tail}", fit(family, font, room, ellipsis));
        }
    }
    let first: String = family.chars().take(1).collect();
    let head = format!("{first}{ellipsis}, ");
    let room = max_width.saturating_sub(text_width(&head, font));
    format!("{head}{}", fit(&initials, font, room, ellipsis))
}

/// `text` unchanged if it fits `max_width` dots, otherwise its longest
/// prefix that fits with `ellipsis` appended (trailing spaces dropped).
pub(crate) fn fit(text: &str, font: u32, max_width: u32, ellipsis: &str) -> String {
    if text_width(text, font) <= max_width {
        return text.to_owned();
    }
    let mut used = text_width_hundredths(ellipsis);
    let mut end = 0;
    for (index, c) in text.char_indices() {
        used += u64::from(char_width(c));
        if to_dots(used, font) > max_width {
            break;
        }
        end = index + c.len_utf8();
    }
    format!("{}{ellipsis}", text[..end].trim_end())
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
    let separator = text_width_hundredths(", ");
    let mark = separator + text_width_hundredths(ellipsis);
    let mut used = 0;
    let mut kept = 0;
    for (index, test) in tests.iter().enumerate() {
        let width = text_width_hundredths(test) + if index > 0 { separator } else { 0 };
        if to_dots(used + width + mark, font) > max_width {
            break;
        }
        used += width;
        kept += 1;
    }
    if kept == 0 {
        fit(&all, font, max_width, ellipsis)
    } else {
        format!("{}, {ellipsis}", tests[..kept].join(", "))
    }
}

/// Estimated width of `text` in hundredths of the font size.
pub(crate) fn text_width_hundredths(text: &str) -> u64 {
    text.chars().map(|c| u64::from(char_width(c))).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row: family, given, width in dots (font 24) → the name as printed. Both names are
    /// always there, at least as an initial.
    #[test]
    fn names_are_shortened_never_dropped() {
        let rows: &[(&str, &str, u32, &str)] = &[
            ("DOE", "Jane", 390, "DOE, Jane"),
            ("DOE", "Hubert Blaine", 390, "DOE, Hubert Blaine"),
            (
                "BERGSTROM-LINDQVIST",
                "Hubert Blaine",
                390,
                "BERGSTROM-LINDQ…, Hubert B.",
            ),
            (
                "WOLFESCHLEGELSTEINHAUSENBERGERDORFF",
                "Hubert Blaine",
                390,
                "WOLFESCHLEGELS…, Hubert B.",
            ),
            (
                "WOLFESCHLEGELSTEINHAUSENBERGERDORFF",
                "Hubert Blaine",
                250,
                "WOLFESCHL…, H. B.",
            ),
            (
                "WOLFESCHLEGELSTEINHAUSENBERGERDORFF",
                "Hubert Blaine",
                90,
                "W…, H…",
            ),
            (
                "BERGSTROM",
                "Hubert Blaine Wolfe",
                390,
                "BERGSTROM, Hubert B. W.",
            ),
            ("DOE", "", 390, "DOE"),
            ("", "Jane", 390, "Jane"),
        ];
        for (family, given, width, expected) in rows {
            let got = fit_name(family, given, 24, *width, "…");
            assert_eq!(got, *expected, "{family}, {given} in {width} dots");
            assert!(
                text_width(&got, 24) <= *width || *width < 100,
                "{got} overflows"
            );
        }
    }

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
