//! Helpers shared by the integration tests: sample data, rasterising and
//! decoding with rxing.

#![allow(dead_code)] // each test binary uses a different subset

use aliquot_labels::LabelData;
use rxing::BarcodeFormat;

/// A typical routine label.
pub fn sample() -> LabelData {
    LabelData {
        accession: "24-000123".into(),
        family_name: "DOE".into(),
        given_name: "Jane".into(),
        birth_date: "DOB 1980-02-29".into(),
        second_identifier: "MRN 12345".into(),
        tube: "Lavender EDTA 4 mL".into(),
        tests: vec!["CBC".into(), "HBA1C".into()],
        department: None,
        priority: "ROUTINE".into(),
        collection: Some("2026-11-21 07:45".into()),
        copy: None,
    }
}

/// A grey-scale bitmap, one byte per pixel (0 = black, 255 = white).
pub struct Luma {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

impl Luma {
    pub fn white(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            pixels: vec![255; (width * height) as usize],
        }
    }

    pub fn fill_black(&mut self, x: u32, y: u32, width: u32, height: u32) {
        for row in y..(y + height).min(self.height) {
            for col in x..(x + width).min(self.width) {
                self.pixels[(row * self.width + col) as usize] = 0;
            }
        }
    }

    /// Nearest-neighbour upscaling, so that one-dot modules become several
    /// pixels wide, as a scanner would see a printed label.
    pub fn scaled(&self, factor: u32) -> Self {
        let (width, height) = (self.width * factor, self.height * factor);
        let mut pixels = Vec::with_capacity((width * height) as usize);
        for row in 0..height {
            for col in 0..width {
                pixels.push(self.pixels[((row / factor) * self.width + col / factor) as usize]);
            }
        }
        Self {
            width,
            height,
            pixels,
        }
    }
}

/// Rasterises an SVG document with resvg to a bitmap `width` pixels wide
/// (height by aspect ratio), composited on white.
///
/// The document's size is in mm, which usvg converts to CSS pixels; pick
/// `width` as a multiple of the viewBox width to get whole pixels per dot.
pub fn rasterize_svg(svg: &str, width: u32) -> Luma {
    use resvg::{tiny_skia, usvg};

    let tree = usvg::Tree::from_str(svg, &usvg::Options::default()).expect("SVG parses");
    let size = tree.size();
    let scale = width as f32 / size.width();
    let height = (size.height() * scale).round() as u32;
    let mut pixmap = tiny_skia::Pixmap::new(width, height).expect("non-empty pixmap");
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    let pixels = pixmap
        .pixels()
        .iter()
        .map(|p| {
            // Premultiplied RGBA over a white background.
            let c = p.demultiply();
            let a = u32::from(c.alpha());
            let lum =
                (299 * u32::from(c.red()) + 587 * u32::from(c.green()) + 114 * u32::from(c.blue()))
                    / 1000;
            ((lum * a + 255 * (255 - a)) / 255) as u8
        })
        .collect();
    Luma {
        width,
        height,
        pixels,
    }
}

/// Decodes the one Code 128 symbol in `image` with rxing.
pub fn decode_code128(image: &Luma) -> Result<String, String> {
    rxing::helpers::detect_in_luma(
        image.pixels.clone(),
        image.width,
        image.height,
        Some(BarcodeFormat::CODE_128),
    )
    .map(|result| result.getText().to_owned())
    .map_err(|e| e.to_string())
}

/// Code 128 charset accepted by the renderers, as a proptest regex.
pub const CODE128_ACCESSION: &str = "[ -~]{6,20}";
