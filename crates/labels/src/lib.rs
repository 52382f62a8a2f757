//! Specimen tube labels for Aliquot.
//!
//! For every planned container the lab prints one label carrying the
//! accession number as a **Code 128** barcode, the patient name, a second
//! identifier (date of birth or MRN), the tube type, the ordered tests, the
//! priority and the collection time. This crate renders such a label in two
//! formats from the same data and the same layout:
//!
//! * [`render_zpl`]: ZPL II for Zebra printers; the printer draws the barcode
//!   itself with its native `^BC` command at its own dot pitch.
//! * [`render_svg`]: a standalone SVG (size in millimetres, `viewBox` in
//!   printer dots) for screens, PDFs and non-Zebra printers.
//!
//! The crate is pure: callers format dates and names (see [`LabelData`]) and
//! pick the output (see [`LabelFormat`]).
//!
//! ```
//! use aliquot_labels::{LabelData, LabelFormat, LabelLayout};
//!
//! let data = LabelData {
//!     accession: "24-000123".into(),
//!     family_name: "DOE".into(),
//!     given_name: "Jane".into(),
//!     birth_date: "DOB 1980-02-29".into(),
//!     second_identifier: "MRN 12345".into(),
//!     tube: "Lavender EDTA 4 mL".into(),
//!     tests: vec!["CBC".into(), "HBA1C".into()],
//!     department: Some("Hematology".into()),
//!     priority: "STAT".into(),
//!     collection: None,
//!     copy: None,
//! };
//! let format: LabelFormat = "zpl".parse()?; // from `?format=zpl`
//! let zpl = format.render(&data, &LabelLayout::default())?;
//! assert!(zpl.starts_with("^XA\n^CI28\n"));
//! assert!(zpl.contains("^BCN,64,N,N,N^FD>:24->5000123^FS"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//!
//! All geometry is in printer dots, described by [`LabelLayout`]; the default
//! is a 2" x 1" (50.8 mm x 25.4 mm) label at 203 dpi, and
//! [`LabelLayout::tube_2x1_300dpi`] is the same label at 300 dpi. Six rows
//! are stacked top to bottom:
//!
//! ```text
//! +--------------------------------------------------+
//! | DOE, Jane                               [ STAT ] |  name, priority
//! | DOB 1980-02-29                   MRN 12345       |  birth date, 2nd id
//! |        ||| || ||| | |||| || ||| | ||||           |  Code 128
//! |                  24-000123                       |  accession text
//! | Coll 21 Nov 07:45 EST        Lavender EDTA 4 mL  |  collection, tube
//! | CBC, HBA1C, LIPID, ...                        R2 |  tests, reprint
//! +--------------------------------------------------+
//! ```
//!
//! CLSI GP33 / AUTO12: the label carries the family and given names, the
//! birth date and a second identifier (MRN), the accession, the collection
//! date and time, and the tests or the department. Names are shortened by a
//! documented rule ([`fit_name`]) and never dropped; a long test list gives
//! way to the department and the number of tests; an aliquot's label lists
//! the aliquot's own tests (the caller passes them).
//!
//! The barcode is centred with a quiet zone of at least
//! [`LabelLayout::quiet_zone_modules`] modules on both sides. Its module width
//! is [`LabelLayout::module_width`] or, if the symbol would not fit, the
//! widest narrower module that does; if not even one-dot modules fit,
//! rendering fails with [`LabelError::BarcodeTooWide`]. Runs of digits are
//! packed into Code 128 code set C where that shortens the symbol, which
//! matters on a 2" label; the ZPL output spells the very same code sets with
//! invocation codes, so the printed symbol matches the SVG one bar for bar.
//!
//! Text is fitted with a conservative width estimate (Arial-like metrics,
//! which also covers the narrower Zebra font 0): fields too long for their
//! place are cut and end with an ellipsis (`…` in SVG, `...` in ZPL, since
//! printer-resident fonts may lack U+2026). The test list is cut at whole
//! test codes so that no partial code can be mistaken for another test.
//! The clear-text accession is never cut: its font shrinks if it would not
//! fit. A `STAT` priority (any case) is printed as `STAT`, white on black at the
//! size of the name; other priorities are printed as given, in plain smaller
//! text.
//!
//! # ZPL subset and escaping
//!
//! The ZPL output uses only: `^XA`/`^XZ` (format start/end), `^CI28` (UTF-8
//! field data), `^PW`/`^LL`/`^LH` (label size and home), `^FO` (field
//! origin), `^A0N` (scalable font 0), `^FB` (one-line field block for
//! clipping and left/centre/right justification), `^GB` (filled box behind
//! STAT), `^FR` (reverse field), `^BY` (module width), `^BCN,h,N,N,N`
//! (Code 128 in mode N, no interpretation line: the clear text is a separate
//! field), `^FH_` (hex escapes, text fields) and `^FD`/`^FS`. No `~` command
//! is emitted.
//!
//! Every text `^FD` is preceded by `^FH_` and all caller data is escaped:
//! `^` → `_5E`, `~` → `_7E`, `_` → `_5F`, and every control character is
//! written as the `_XX` hex escapes of its UTF-8 bytes. A patient called
//! `O'Brien^XZ~JR_` therefore cannot end the format or inject commands.
//! Inside `^FB` fields a backslash is doubled (`\\`), because `^FB` gives
//! `\&` the meaning "new line".
//!
//! The barcode field uses the escaping that `^BC` itself defines instead
//! of `^FH`: the accession is validated as printable ASCII, and in mode N
//! `>` starts an invocation code, so the field starts with `>:` (start code
//! B) or `>;` (start code C), switches code sets with `>5` (to C) and `>6`
//! (to B), and writes the three characters ZPL cannot take literally as
//! `>0` (`>`), `><` (`^`) and `>=` (`~`), per the invocation table of the
//! ZPL II manual. The field data then contains neither `^` nor `~`.
//!
//! # SVG
//!
//! The SVG is standalone (`width`/`height` in mm, `viewBox` in dots) with a
//! white background. The bars are `<rect>` elements in `<g class="barcode">`,
//! one per run of bar modules, generated from the `barcoders` encoding;
//! text is `<text>` in a generic sans-serif font. All caller text is
//! XML-escaped (`&`, `<`, `>`, `"`, `'`), and control characters, which
//! XML 1.0 cannot carry even escaped, become U+FFFD.

mod code128;
mod layout;
mod scene;
mod svg;
mod zpl;

use std::fmt;
use std::str::FromStr;

pub use layout::{LabelLayout, fit_name};
pub use svg::render_svg;
pub use zpl::render_zpl;

/// What goes on one tube label. All fields are preformatted by the caller.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelData {
    /// Accession number; encoded in the barcode and printed in clear text.
    /// Must be printable ASCII (`' '..='~'`), as Code 128 requires.
    pub accession: String,
    /// Family name as printed, e.g. `"DOE"`; shortened by the rule of
    /// [`fit_name`], never dropped.
    pub family_name: String,
    /// Given name(s) as printed, e.g. `"Jane"`; shortened by the rule of
    /// [`fit_name`], never dropped.
    pub given_name: String,
    /// Birth date as printed, e.g. `"DOB 1980-02-29"`.
    pub birth_date: String,
    /// Second patient identifier as printed, e.g. `"MRN 12345"`.
    pub second_identifier: String,
    /// Container description, e.g. `"Lavender EDTA 4 mL"`.
    pub tube: String,
    /// Short test codes drawn into this container, e.g. `["CBC", "HBA1C"]`.
    pub tests: Vec<String>,
    /// The department(s) the tube goes to, e.g. `"Hematology"`: printed in
    /// place of the tests when they do not all fit (with their number).
    pub department: Option<String>,
    /// Priority as printed, e.g. `"ROUTINE"`; `STAT` (any case) is printed
    /// as `STAT`, reversed.
    pub priority: String,
    /// Collection time, preformatted in local time (e.g.
    /// `"2026-11-21 07:45"`); `None` prints a blank line to fill in at draw.
    pub collection: Option<String>,
    /// Reprint counter: `Some(n)` prints a small `Rn`; `None` for the
    /// original print.
    pub copy: Option<u32>,
}

impl LabelData {
    /// Whether the priority is STAT (case-insensitive, surrounding spaces
    /// ignored).
    pub fn is_stat(&self) -> bool {
        self.priority.trim().eq_ignore_ascii_case("STAT")
    }
}

/// Why a label could not be rendered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LabelError {
    /// The accession number is empty.
    #[error("accession number is empty")]
    EmptyAccession,
    /// The accession contains a character Code 128 cannot carry here.
    #[error(
        "accession number has {character:?} at byte {position}: only printable ASCII can be encoded in Code 128"
    )]
    InvalidAccessionChar {
        /// The offending character.
        character: char,
        /// Its byte offset in the accession.
        position: usize,
    },
    /// The barcode (with quiet zones) is wider than the label even with
    /// one-dot modules.
    #[error(
        "barcode needs {modules} modules including quiet zones but the label is {available_dots} dots wide"
    )]
    BarcodeTooWide {
        /// Modules needed, quiet zones included.
        modules: u32,
        /// Label width in dots.
        available_dots: u32,
    },
    /// The layout is inconsistent (e.g. rows taller than the label).
    #[error("invalid label layout: {0}")]
    InvalidLayout(&'static str),
    /// The Code 128 encoder rejected the data (not expected after
    /// validation).
    #[error("Code 128 encoder failed: {0}")]
    Encoder(barcoders::error::Error),
}

/// Output format of a label, as selected by `?format=zpl|svg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabelFormat {
    /// ZPL II for Zebra printers.
    Zpl,
    /// Standalone SVG image.
    Svg,
}

impl LabelFormat {
    /// Renders `data` in this format.
    pub fn render(self, data: &LabelData, layout: &LabelLayout) -> Result<String, LabelError> {
        match self {
            Self::Zpl => render_zpl(data, layout),
            Self::Svg => render_svg(data, layout),
        }
    }

    /// HTTP `Content-Type` for the rendered output. ZPL has no registered
    /// media type; it is plain UTF-8 text (thanks to `^CI28`).
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Zpl => "text/plain; charset=utf-8",
            Self::Svg => "image/svg+xml",
        }
    }

    /// Conventional file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Zpl => "zpl",
            Self::Svg => "svg",
        }
    }
}

/// The `format` query value was neither `zpl` nor `svg`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown label format {0:?}, expected \"zpl\" or \"svg\"")]
pub struct UnknownLabelFormat(pub String);

impl FromStr for LabelFormat {
    type Err = UnknownLabelFormat;

    /// Parses `zpl` or `svg`, ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("zpl") {
            Ok(Self::Zpl)
        } else if s.eq_ignore_ascii_case("svg") {
            Ok(Self::Svg)
        } else {
            Err(UnknownLabelFormat(s.to_owned()))
        }
    }
}

impl fmt::Display for LabelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_parses_query_values() {
        assert_eq!("zpl".parse::<LabelFormat>(), Ok(LabelFormat::Zpl));
        assert_eq!("SVG".parse::<LabelFormat>(), Ok(LabelFormat::Svg));
        assert_eq!(
            "pdf".parse::<LabelFormat>(),
            Err(UnknownLabelFormat("pdf".into()))
        );
        assert_eq!(LabelFormat::Svg.to_string(), "svg");
    }

    #[test]
    fn stat_detection_ignores_case_and_spaces() {
        let mut data = LabelData {
            priority: " stat ".into(),
            ..LabelData::default()
        };
        assert!(data.is_stat());
        data.priority = "ROUTINE".into();
        assert!(!data.is_stat());
    }
}
