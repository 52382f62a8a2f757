//! Lab-wide settings: a small, audited key/value table with a validation rule per key.

use aliquot_domain::auth::Permission;
use aliquot_store::SettingRecord;
use jiff::Timestamp;
use serde_json::json;

use crate::{Actor, App, AppError, AppResult, require_reason};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingView {
    pub key: String,
    pub value: String,
    pub updated_at: Timestamp,
    pub updated_by: Option<i64>,
}

type Rule = fn(&str) -> Result<String, String>;

/// The settings a lab may change, each with its validation rule (which also normalises).
pub fn setting_rules() -> &'static [(&'static str, &'static str, Rule)] {
    &[
        (
            "lab.name",
            "the laboratory's name, as printed on reports",
            |v| {
                let v = v.trim();
                if v.is_empty() || v.chars().count() > 200 || v.chars().any(char::is_control) {
                    Err("1 to 200 characters without control characters".into())
                } else {
                    Ok(v.to_owned())
                }
            },
        ),
        (
            "lab.address",
            "the laboratory's address, as printed on reports (CLIA 42 CFR 493.1291(c)(2))",
            |v| {
                let v = v.trim();
                if v.is_empty() || v.chars().count() > 300 || v.chars().any(char::is_control) {
                    Err("1 to 300 characters without control characters".into())
                } else {
                    Ok(v.to_owned())
                }
            },
        ),
        (
            "lab.clia",
            "the laboratory's CLIA certificate number, as printed on reports: two digits, D, \
             seven digits (e.g. 14D0123456)",
            |v| {
                let v = v.trim().to_ascii_uppercase();
                let b = v.as_bytes();
                if b.len() == 10
                    && b[..2].iter().all(u8::is_ascii_digit)
                    && b[2] == b'D'
                    && b[3..].iter().all(u8::is_ascii_digit)
                {
                    Ok(v)
                } else {
                    Err("two digits, the letter D and seven digits, e.g. 14D0123456".into())
                }
            },
        ),
        (
            "lab.phone",
            "the laboratory's telephone number, as printed on reports",
            |v| {
                let v = v.trim();
                if v.is_empty() || v.chars().count() > 40 || v.chars().any(char::is_control) {
                    Err("1 to 40 characters without control characters".into())
                } else {
                    Ok(v.to_owned())
                }
            },
        ),
        (
            "lab.timezone",
            "IANA time zone used to display times",
            |v| {
                jiff::tz::TimeZone::get(v.trim())
                    .map(|_| v.trim().to_owned())
                    .map_err(|_| format!("{:?} is not an IANA time zone", v.trim()))
            },
        ),
        (
            "lab.accession_prefix",
            "letters that start every accession number",
            |v| {
                let v = v.trim().to_ascii_uppercase();
                if (1..=2).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_uppercase()) {
                    Ok(v)
                } else {
                    Err("one or two letters A-Z".into())
                }
            },
        ),
        (
            "specimen.collection_lookback_hours",
            "how many hours back a draw time may lie (default 168: outreach requisitions are \
             entered at receipt, after the draw)",
            |v| match v.trim().parse::<u32>() {
                Ok(h) if (1..=2160).contains(&h) => Ok(h.to_string()),
                _ => Err("a whole number of hours from 1 to 2160 (90 days)".into()),
            },
        ),
        (
            "specimen.receipt_identification_required",
            "true makes receipt check the requisition's patient against the tube with two \
             identifiers for every tube (default false: checked when the station gives them)",
            |v| match v.trim() {
                "true" | "false" => Ok(v.trim().to_owned()),
                _ => Err("true or false".into()),
            },
        ),
        (
            "auth.mfa_required",
            "true requires a second factor (an authenticator app, TOTP) of administrators and \
             directors: without one enrolled they cannot log in until they enrol (default false)",
            |v| match v.trim() {
                "true" | "false" => Ok(v.trim().to_owned()),
                _ => Err("true or false".into()),
            },
        ),
        (
            "results.verification_signature_required",
            "true makes every manual release (verify, sign off) an electronic signature: the \
             reviewer re-enters the password or authenticator code (default false; corrections \
             are always signed)",
            |v| match v.trim() {
                "true" | "false" => Ok(v.trim().to_owned()),
                _ => Err("true or false".into()),
            },
        ),
        (
            "results.autoverification_suspended",
            "true suspends autoverification for the whole laboratory (every result is held for \
             review), e.g. while QC fails",
            |v| match v.trim() {
                "true" | "false" => Ok(v.trim().to_owned()),
                _ => Err("true or false".into()),
            },
        ),
        (
            "results.critical_call_minutes",
            "minutes within which a critical result's call must be documented before it is \
             overdue (default 30)",
            |v| match v.trim().parse::<u32>() {
                Ok(m) if (1..=1440).contains(&m) => Ok(m.to_string()),
                _ => Err("a whole number of minutes from 1 to 1440".into()),
            },
        ),
        (
            "interfaces.message_retention_days",
            "days an accepted interface message's content (the raw message and its \
             acknowledgement) is kept; its key and what it posted stay, so a resend is still \
             answered and never posted twice; messages in the error queue are kept until \
             replayed (default 90)",
            |v| match v.trim().parse::<u32>() {
                Ok(d) if (1..=3650).contains(&d) => Ok(d.to_string()),
                _ => Err("a whole number of days from 1 to 3650".into()),
            },
        ),
        (
            "interfaces.register_unknown_patients",
            "true lets an EMR's order message register a patient the lab does not know (default \
             false: the message waits in the interface error queue until the patient is \
             registered)",
            |v| match v.trim() {
                "true" | "false" => Ok(v.trim().to_owned()),
                _ => Err("true or false".into()),
            },
        ),
        (
            "interfaces.default_location",
            "the client location code for an EMR's orders that name no registered location \
             (unset: such a message waits in the interface error queue)",
            |v| {
                let v = v.trim().to_ascii_uppercase();
                if (1..=20).contains(&v.len())
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
                {
                    Ok(v)
                } else {
                    Err("a location code: 1 to 20 letters, digits, '-' or '_'".into())
                }
            },
        ),
    ]
}

fn view(r: SettingRecord) -> SettingView {
    SettingView {
        key: r.key,
        value: r.value,
        updated_at: r.updated_at,
        updated_by: r.updated_by,
    }
}

impl App {
    pub async fn settings(&self, actor: &Actor) -> AppResult<Vec<SettingView>> {
        actor.require(Permission::SettingsRead)?;
        Ok(self
            .store
            .list_settings()
            .await?
            .into_iter()
            .map(view)
            .collect())
    }

    /// Sets a lab setting. Changing a value that is already set is a correction and needs a
    /// reason.
    pub async fn put_setting(
        &self,
        actor: &Actor,
        key: &str,
        value: &str,
        reason: Option<&str>,
    ) -> AppResult<SettingView> {
        actor.require(Permission::SettingsWrite)?;
        let Some((_, _, rule)) = setting_rules().iter().find(|(k, _, _)| *k == key) else {
            return Err(AppError::NotFound { entity: "setting" });
        };
        let value = rule(value).map_err(|m| AppError::invalid("value", "invalid_setting", m))?;
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let old = tx.setting(key).await?;
        let reason = match &old {
            Some(_) => Some(require_reason(reason)?),
            None => reason
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty()),
        };
        let record = SettingRecord {
            key: key.to_owned(),
            value: value.clone(),
            updated_at: now,
            updated_by: actor.user_id,
        };
        tx.put_setting(&record).await?;
        tx.audit(self.entry(
            actor,
            "setting.update",
            "setting",
            key,
            old.map(|o| json!(o.value)),
            Some(json!(value)),
            reason.as_deref(),
        ));
        tx.commit().await?;
        Ok(view(record))
    }
}

impl App {
    /// The lab's time zone (`lab.timezone`, default UTC), for times shown to people.
    /// How far back a draw time may lie (`specimen.collection_lookback_hours`).
    pub(crate) async fn collection_lookback(&self) -> AppResult<jiff::SignedDuration> {
        Ok(
            match self
                .store
                .setting("specimen.collection_lookback_hours")
                .await?
            {
                Some(s) => s
                    .value
                    .trim()
                    .parse::<i64>()
                    .map(jiff::SignedDuration::from_hours)
                    .unwrap_or(aliquot_domain::specimen::COLLECTION_LOOKBACK),
                None => aliquot_domain::specimen::COLLECTION_LOOKBACK,
            },
        )
    }

    pub async fn lab_timezone(&self) -> AppResult<jiff::tz::TimeZone> {
        Ok(match self.store.setting("lab.timezone").await? {
            Some(s) => jiff::tz::TimeZone::get(s.value.trim()).unwrap_or(jiff::tz::TimeZone::UTC),
            None => jiff::tz::TimeZone::UTC,
        })
    }
}
