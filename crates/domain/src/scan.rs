//! Scanned requisitions: which files are accepted, decided by their content (magic bytes),
//! never by a file name or a client's claimed type.

use thiserror::Error;

use crate::error::impl_domain_error;

/// Largest scan accepted, in bytes ([CONFIG]).
pub const MAX_SCAN_BYTES: usize = 1024 * 1024;

/// An accepted scan format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanType {
    Pdf,
    Png,
    Jpeg,
}

impl ScanType {
    /// The media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Pdf => "application/pdf",
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
        }
    }
}

/// Why a scan was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScanError {
    #[error("the scan is empty")]
    Empty,
    #[error("the scan is {size} bytes; the limit is {max}")]
    TooLarge { size: usize, max: usize },
    #[error("the content is not a PDF, PNG or JPEG file")]
    UnsupportedType,
    #[error("the content is {detected}, but was sent as {declared}")]
    TypeMismatch {
        detected: &'static str,
        declared: String,
    },
}

impl ScanError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "scan_empty",
            Self::TooLarge { .. } => "scan_too_large",
            Self::UnsupportedType => "scan_type",
            Self::TypeMismatch { .. } => "scan_type_mismatch",
        }
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        Some("scan")
    }
}

/// Detects the format from the first bytes.
pub fn detect(bytes: &[u8]) -> Option<ScanType> {
    if bytes.starts_with(b"%PDF-") {
        Some(ScanType::Pdf)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ScanType::Png)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ScanType::Jpeg)
    } else {
        None
    }
}

/// Checks a scan: not empty, within the size limit, a PDF/PNG/JPEG by content, and of the
/// media type it was declared as (when declared).
pub fn check_scan(bytes: &[u8], declared: Option<&str>) -> Result<ScanType, ScanError> {
    if bytes.is_empty() {
        return Err(ScanError::Empty);
    }
    if bytes.len() > MAX_SCAN_BYTES {
        return Err(ScanError::TooLarge {
            size: bytes.len(),
            max: MAX_SCAN_BYTES,
        });
    }
    let t = detect(bytes).ok_or(ScanError::UnsupportedType)?;
    if let Some(d) = declared {
        let d = d
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if d != t.media_type() {
            return Err(ScanError::TypeMismatch {
                detected: t.media_type(),
                declared: d,
            });
        }
    }
    Ok(t)
}

impl_domain_error!(ScanError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_content() {
        assert_eq!(detect(b"%PDF-1.7\n..."), Some(ScanType::Pdf));
        assert_eq!(detect(b"\x89PNG\r\n\x1a\n\0\0"), Some(ScanType::Png));
        assert_eq!(detect(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(ScanType::Jpeg));
        assert_eq!(detect(b"GIF89a"), None);
        assert_eq!(detect(b"%PD"), None);
    }

    #[test]
    fn checks_size_type_and_declaration() {
        assert_eq!(check_scan(b"", None).unwrap_err().code(), "scan_empty");
        let big = [b"%PDF-".as_slice(), &vec![0u8; MAX_SCAN_BYTES]].concat();
        assert_eq!(check_scan(&big, None).unwrap_err().code(), "scan_too_large");
        assert_eq!(
            check_scan(b"MZ\x90\0", None).unwrap_err().code(),
            "scan_type"
        );
        assert_eq!(
            check_scan(b"%PDF-1.4", Some("image/png"))
                .unwrap_err()
                .code(),
            "scan_type_mismatch"
        );
        assert_eq!(
            check_scan(b"%PDF-1.4", Some("application/PDF; x=1")),
            Ok(ScanType::Pdf)
        );
        let exact = [b"%PDF-".as_slice(), &vec![0u8; MAX_SCAN_BYTES - 5]].concat();
        assert!(check_scan(&exact, None).is_ok());
    }
}
