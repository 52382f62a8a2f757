//! The attestations of a receipt (issue 10 items 5 and 6): the label, the container that
//! arrived and its fill are stated by the receiving technologist, never assumed. A receipt
//! that leaves one out is refused naming every missing field; the fill must suit the
//! container (a line for citrate, µL for the rest, within what the container holds).

use aliquot_domain::catalog::ContainerType;
use aliquot_domain::specimen::{Fill, LabelStatus, LineFill, check_fill_form};

use super::{ReceiveInput, container_by_code};
use crate::patients::invalid;
use crate::{AppError, AppResult};

/// The lab setting that makes the requisition's two identifiers mandatory at receipt.
pub(crate) const IDENTIFICATION_SETTING: &str = "specimen.receipt_identification_required";

/// What the technologist attested, parsed.
pub(crate) struct Attested {
    pub label: LabelStatus,
    pub container: ContainerType,
    pub fill: Fill,
}

/// Parses the attestations; every missing one is named in a single refusal.
pub(crate) fn attested(input: &ReceiveInput, identification_required: bool) -> AppResult<Attested> {
    let mut missing: Vec<&str> = Vec::new();
    if input.label.as_deref().is_none_or(|l| l.trim().is_empty()) {
        missing.push("label");
    }
    if input
        .container
        .as_deref()
        .is_none_or(|c| c.trim().is_empty())
    {
        missing.push("container");
    }
    if input.volume_ul.is_none() && input.fill.as_deref().is_none_or(|f| f.trim().is_empty()) {
        missing.push("volume_ul or fill");
    }
    if identification_required && input.patient.is_none() {
        missing.push("patient");
    }
    if let Some(first) = missing.first() {
        let field = first.split(' ').next().unwrap_or(first);
        return Err(AppError::invalid(
            field,
            "receipt_attestation_required",
            format!(
                "receipt is attested, never assumed; missing: {}",
                missing.join(", ")
            ),
        ));
    }
    let label = match input.label.as_deref().map(str::trim) {
        Some("ok") => LabelStatus::Present,
        Some("missing") => LabelStatus::Missing,
        Some("illegible") => LabelStatus::Illegible,
        _ => {
            return Err(AppError::invalid(
                "label",
                "label_status",
                "ok, missing or illegible",
            ));
        }
    };
    let code = input.container.as_deref().unwrap_or_default().trim();
    let container = container_by_code(&code.to_ascii_uppercase()).ok_or_else(|| {
        AppError::invalid(
            "container",
            "unknown_container",
            "not in the container catalogue",
        )
    })?;
    let fill = match (input.volume_ul, input.fill.as_deref().map(str::trim)) {
        (Some(_), Some(f)) if !f.is_empty() => {
            return Err(AppError::invalid(
                "fill",
                "fill_or_volume",
                "give either the fill against the line or volume_ul, not both",
            ));
        }
        (Some(v), _) => Fill::Measured {
            volume_ul: u32::try_from(v)
                .ok()
                .filter(|v| *v <= 1_000_000)
                .ok_or_else(|| AppError::invalid("volume_ul", "volume_range", "0 to 1000000 µL"))?,
        },
        (None, Some(f)) => Fill::Line(LineFill::parse(f).map_err(|e| invalid(&e, "", "fill"))?),
        (None, None) => unreachable_missing()?,
    };
    check_fill_form(&container, fill).map_err(|e| invalid(&e, "", ""))?;
    Ok(Attested {
        label,
        container,
        fill,
    })
}

/// Missing fields were refused above; kept as an error rather than a panic.
fn unreachable_missing() -> AppResult<Fill> {
    Err(AppError::invalid(
        "volume_ul",
        "receipt_attestation_required",
        "receipt is attested, never assumed; missing: volume_ul or fill",
    ))
}
