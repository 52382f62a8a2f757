//! Patient reports as PDF: typst (layout) and typst-pdf (PDF writer) used as a library.
//!
//! This crate is the only one that compiles typst. Its [`World`] is deliberately small:
//!
//! - the template is compiled into the binary (`templates/report.typ`), and the report's data
//!   is one in-memory file, `data.json`, which the template reads with `json("data.json")`;
//! - fonts are embedded with `include_bytes!` (Noto Sans regular and bold for Latin, Greek
//!   and Cyrillic, Noto Sans Math for ≥ ≤, Droid Sans Fallback for CJK); no system font is
//!   looked at;
//! - there is no file system, no package and no network access: any other file or package
//!   the template would ask for is "not found";
//! - `today` is the report's own issue time, so nothing reads the clock.
//!
//! The PDFs conform to PDF/A-2b (see [`STANDARDS`]).
//!
//! The same data and the same [`PdfMeta`] give the same bytes: the PDF's creation date and
//! its document identifier come from [`PdfMeta`], never from the clock or a random source.
//!
//! The data is JSON in the shape documented at the top of the template (the app writes it and
//! keeps it as the report version's snapshot, so a reprint renders exactly what was issued).

use std::sync::LazyLock;

use typst::diag::{FileError, FileResult, SourceDiagnostic};
use typst::foundations::{Bytes, Datetime, Duration, Smart};
use typst::syntax::{FileId, RootedPath, Source, VirtualPath, VirtualRoot};
use typst::text::{Font, FontBook};
use typst::utils::LazyHash;
use typst::{Library, LibraryExt, World};
use typst_layout::PagedDocument;

/// Noto Sans Regular (SIL OFL 1.1, `fonts/OFL.txt`).
static NOTO_SANS_REGULAR: &[u8] = include_bytes!("../fonts/NotoSans-Regular.ttf");
/// Noto Sans Bold (SIL OFL 1.1).
static NOTO_SANS_BOLD: &[u8] = include_bytes!("../fonts/NotoSans-Bold.ttf");
/// Noto Sans Math Regular (SIL OFL 1.1): ≥ ≤ and other symbols interval texts use.
static NOTO_SANS_MATH: &[u8] = include_bytes!("../fonts/NotoSansMath-Regular.ttf");
/// Droid Sans Fallback Full (Apache License 2.0, `fonts/LICENSE-Apache-2.0.txt`): CJK.
static DROID_SANS_FALLBACK: &[u8] = include_bytes!("../fonts/DroidSansFallbackFull.ttf");

/// The report template (typst markup).
static REPORT_TEMPLATE: &str = include_str!("../templates/report.typ");

/// What the PDF's metadata is derived from (never the clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdfMeta {
    /// A stable identifier of the document (e.g. `order-17-report-2`): its hash becomes the
    /// PDF's document ID.
    pub ident: String,
    /// The creation date written into the PDF (the report version's issue time), UTC.
    pub created: jiff::Timestamp,
}

/// Rendering failed: the template and the data did not agree (a bug, not bad input).
#[derive(Debug, thiserror::Error)]
#[error("report rendering failed: {0}")]
pub struct ReportError(pub String);

struct Fonts {
    book: LazyHash<FontBook>,
    fonts: Vec<Font>,
}

/// Parsed once per process: font parsing is the expensive part of a small document.
static FONTS: LazyLock<Fonts> = LazyLock::new(|| {
    let fonts: Vec<Font> = [
        NOTO_SANS_REGULAR,
        NOTO_SANS_BOLD,
        NOTO_SANS_MATH,
        DROID_SANS_FALLBACK,
    ]
    .into_iter()
    .flat_map(|data| Font::iter(Bytes::new(data)))
    .collect();
    Fonts {
        book: LazyHash::new(FontBook::from_fonts(&fonts)),
        fonts,
    }
});

static LIBRARY: LazyLock<LazyHash<Library>> = LazyLock::new(|| LazyHash::new(Library::default()));

static MAIN_ID: LazyLock<FileId> = LazyLock::new(|| project_file("report.typ"));
static DATA_ID: LazyLock<FileId> = LazyLock::new(|| project_file("data.json"));

fn project_file(path: &str) -> FileId {
    #[allow(clippy::expect_used)]
    let vpath = VirtualPath::new(path).expect("a valid virtual path");
    RootedPath::new(VirtualRoot::Project, vpath).intern()
}

/// The in-memory world of one report.
struct ReportWorld {
    main: Source,
    data: Bytes,
    today: Datetime,
}

impl World for ReportWorld {
    fn library(&self) -> &LazyHash<Library> {
        &LIBRARY
    }

    fn book(&self) -> &LazyHash<FontBook> {
        &FONTS.book
    }

    fn main(&self) -> FileId {
        *MAIN_ID
    }

    fn source(&self, id: FileId) -> FileResult<Source> {
        if id == *MAIN_ID {
            Ok(self.main.clone())
        } else {
            Err(FileError::AccessDenied)
        }
    }

    fn file(&self, id: FileId) -> FileResult<Bytes> {
        if id == *DATA_ID {
            Ok(self.data.clone())
        } else {
            Err(FileError::AccessDenied)
        }
    }

    fn font(&self, index: usize) -> Option<Font> {
        FONTS.fonts.get(index).cloned()
    }

    fn today(&self, _offset: Option<Duration>) -> Option<Datetime> {
        Some(self.today)
    }
}

/// Every PDF is written as PDF/A-2b (ISO 19005-2, level B: archivable, its appearance
/// reproducible years later): typst-pdf (krilla) then embeds every font used (subset), writes
/// the XMP metadata with the PDF/A identification and an sRGB output intent, and refuses
/// anything the standard forbids (rendering fails rather than writing a non-conforming file).
static STANDARDS: LazyLock<Result<typst_pdf::PdfStandards, String>> = LazyLock::new(|| {
    typst_pdf::PdfStandards::new(&[typst_pdf::PdfStandard::A_2b])
        .map_err(|e| e.message().to_string())
});

static TEMPLATE_SOURCE: LazyLock<Source> =
    LazyLock::new(|| Source::new(*MAIN_ID, REPORT_TEMPLATE.to_owned()));

fn datetime(t: jiff::Timestamp) -> Result<Datetime, ReportError> {
    let c = t.to_zoned(jiff::tz::TimeZone::UTC).datetime();
    let n = |v: i8| u8::try_from(v).map_err(|_| ReportError(format!("time {t}")));
    Datetime::from_ymd_hms(
        i32::from(c.year()),
        n(c.month())?,
        n(c.day())?,
        n(c.hour())?,
        n(c.minute())?,
        n(c.second())?,
    )
    .ok_or_else(|| ReportError(format!("time {t}")))
}

fn diagnostics(d: &[SourceDiagnostic]) -> String {
    d.iter()
        .map(|d| {
            let mut s = d.message.to_string();
            for h in &d.hints {
                s.push_str("; hint: ");
                s.push_str(&h.v);
            }
            s
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Renders `data` (JSON in the template's shape) as a PDF. The same `data` and `meta` give
/// the same bytes.
pub fn render_pdf(data: &[u8], meta: &PdfMeta) -> Result<Vec<u8>, ReportError> {
    let created = datetime(meta.created)?;
    let world = ReportWorld {
        main: TEMPLATE_SOURCE.clone(),
        data: Bytes::new(data.to_vec()),
        today: created,
    };
    let document: PagedDocument = typst::compile(&world)
        .output
        .map_err(|e| ReportError(diagnostics(&e)))?;
    let options = typst_pdf::PdfOptions {
        ident: Smart::Custom(meta.ident.clone()),
        creator: Smart::Custom(Some("Aliquot".into())),
        timestamp: Some(typst_pdf::Timestamp::new_utc(created)),
        standards: STANDARDS.clone().map_err(ReportError)?,
        ..typst_pdf::PdfOptions::default()
    };
    let pdf = typst_pdf::pdf(&document, &options).map_err(|e| ReportError(diagnostics(&e)));
    // Keep typst's memo cache from growing with every distinct report.
    typst::comemo::evict(4);
    pdf
}

/// The typst source of the template (for sites that review it).
pub fn template() -> &'static str {
    REPORT_TEMPLATE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_fonts_cover_the_names_we_must_print() {
        let book = &FONTS.book;
        for c in "Zoë Okonkwo-Lindqvist Đorđević 王秀英 Ünal Øster – — · µ ≥ ≤ ±".chars()
        {
            let covered = FONTS
                .fonts
                .iter()
                .any(|f| f.info().coverage.contains(c as u32));
            assert!(covered, "no embedded font has {c:?}");
        }
        assert!(book.families().count() >= 2);
    }
}
