//! The instrument registry: each instrument, how its messages name it, its department, and its
//! own test codes mapped to catalogue tests (and the unit it reports in).

use std::collections::BTreeSet;

use aliquot_domain::auth::Permission;
use aliquot_domain::catalog::{Department, Ucum};
use aliquot_store::{InstrumentRecord, InstrumentTestCodeRecord, StoreError};
use jiff::Timestamp;
use serde_json::json;

use super::Protocol;
use crate::catalog::catalog_key;
use crate::short_text as text;
use crate::{Actor, App, AppError, AppResult, require_reason};

/// An instrument as registered or replaced.
#[derive(Debug, Clone)]
pub struct InstrumentInput {
    /// The lab's name for it, e.g. `CHEM1` (letters, digits, `-` and `_`, at most 20).
    pub code: String,
    pub name: String,
    /// `hl7` or `astm`.
    pub protocol: String,
    /// How its messages name it: HL7 MSH-3 (namespace id), ASTM H-5 (sender name).
    pub sender: String,
    pub department: String,
    pub test_codes: Vec<TestCodeInput>,
    /// `host:port` of an instrument that listens (the laboratory system connects out to it);
    /// `None` for one that connects in.
    pub connect_to: Option<String>,
}

/// One of the instrument's test codes.
#[derive(Debug, Clone)]
pub struct TestCodeInput {
    /// The code in its messages (HL7 OBX-3.1, ASTM R-3 local code).
    pub code: String,
    /// The catalogue test (code or LOINC).
    pub test: String,
    /// The UCUM unit it reports in when a message leaves the unit out.
    pub units: Option<String>,
}

#[derive(Debug, Clone)]
pub struct InstrumentView {
    pub code: String,
    pub name: String,
    pub protocol: String,
    pub sender: String,
    pub department: String,
    pub version: i64,
    pub updated_at: Timestamp,
    pub updated_by: String,
    pub retired: bool,
    /// `(instrument code, catalogue test, units)`.
    pub test_codes: Vec<(String, String, Option<String>)>,
    pub connect_to: Option<String>,
}

fn view(r: InstrumentRecord, codes: Vec<InstrumentTestCodeRecord>) -> InstrumentView {
    InstrumentView {
        code: r.code,
        name: r.name,
        protocol: r.protocol,
        sender: r.sender,
        department: r.department,
        version: r.version,
        updated_at: r.updated_at,
        updated_by: r.updated_by,
        retired: r.retired_at.is_some(),
        connect_to: r.connect_to,
        test_codes: codes
            .into_iter()
            .map(|c| (c.code, c.test_code, c.units))
            .collect(),
    }
}

impl App {
    /// Checks an instrument's fields and resolves its test codes to catalogue tests.
    async fn parse_instrument(
        &self,
        input: &InstrumentInput,
    ) -> AppResult<(InstrumentRecord, Vec<InstrumentTestCodeRecord>)> {
        let code = input.code.trim();
        if code.is_empty()
            || code.len() > 20
            || !code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(AppError::invalid(
                "code",
                "invalid_instrument_code",
                "1 to 20 letters, digits, '-' or '_'",
            ));
        }
        let protocol = Protocol::parse(input.protocol.trim())
            .ok_or_else(|| AppError::invalid("protocol", "invalid_protocol", "`hl7` or `astm`"))?;
        let department = Department::parse(input.department.trim()).map_err(|_| {
            AppError::invalid(
                "department",
                "unknown_department",
                "not a department of the catalogue",
            )
        })?;
        let mut seen = BTreeSet::new();
        let mut codes = Vec::with_capacity(input.test_codes.len());
        for (i, t) in input.test_codes.iter().enumerate() {
            let field = |f: &str| format!("test_codes[{i}].{f}");
            let c = text(&field("code"), &t.code, 50)?;
            if !seen.insert(c.clone()) {
                return Err(AppError::invalid(
                    &field("code"),
                    "duplicate_test_code",
                    "this instrument code is mapped twice",
                ));
            }
            let test = self
                .store
                .catalog_by_code(&catalog_key(&t.test))
                .await?
                .ok_or_else(|| {
                    AppError::invalid(
                        &field("test"),
                        "unknown_test",
                        "no such test in the catalogue",
                    )
                })?;
            let units = match t.units.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(u) => Some(
                    Ucum::parse(u)
                        .map_err(|e| {
                            AppError::invalid(&field("units"), "invalid_units", e.to_string())
                        })?
                        .as_str()
                        .to_owned(),
                ),
            };
            codes.push(InstrumentTestCodeRecord {
                instrument_id: 0,
                code: c,
                test_code: test.code,
                units,
            });
        }
        let connect_to = match input.connect_to.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(a) => Some(parse_address(a)?),
        };
        let record = InstrumentRecord {
            id: 0,
            connect_to,
            code: code.to_owned(),
            name: text("name", &input.name, 100)?,
            protocol: protocol.as_str().to_owned(),
            sender: text("sender", &input.sender, 100)?,
            department: department.as_str().to_owned(),
            version: 1,
            updated_at: self.now(),
            updated_by: String::new(),
            retired_at: None,
        };
        Ok((record, codes))
    }

    /// Registers an instrument with its test codes (`interface.manage`).
    pub async fn register_instrument(
        &self,
        actor: &Actor,
        input: InstrumentInput,
    ) -> AppResult<InstrumentView> {
        actor.require(Permission::InterfaceManage)?;
        let (mut record, mut codes) = self.parse_instrument(&input).await?;
        record.updated_by = actor.username.clone();
        let mut tx = self.store.begin().await?;
        record.id = tx.insert_instrument(&record).await.map_err(|e| match e {
            StoreError::Conflict(_) => AppError::Conflict {
                field: Some("code".into()),
                code: "instrument_exists",
                message: "an instrument with this code, or this protocol and sender, is \
                          already registered"
                    .into(),
            },
            other => other.into(),
        })?;
        for c in &mut codes {
            c.instrument_id = record.id;
        }
        tx.replace_instrument_test_codes(record.id, &codes).await?;
        let v = view(record, codes);
        tx.audit(self.entry(
            actor,
            "instrument.register",
            "instrument",
            &v.code,
            None,
            Some(audit_value(&v)),
            None,
        ));
        tx.commit().await?;
        Ok(v)
    }

    /// Replaces an instrument's name, sender, department and whole test-code mapping, over
    /// the version the caller read (`interface.manage`, with a reason).
    pub async fn replace_instrument(
        &self,
        actor: &Actor,
        code: &str,
        expected_version: i64,
        input: InstrumentInput,
        retired: bool,
        reason: Option<&str>,
    ) -> AppResult<InstrumentView> {
        actor.require(Permission::InterfaceManage)?;
        let reason = require_reason(reason)?;
        let (new, mut codes) = self.parse_instrument(&input).await?;
        let mut tx = self.store.begin().await?;
        let old = tx
            .instrument_by_code(code)
            .await?
            .ok_or(AppError::NotFound {
                entity: "instrument",
            })?;
        if new.code != old.code || new.protocol != old.protocol {
            return Err(AppError::invalid(
                "code",
                "instrument_identity",
                "an instrument's code and protocol are not changed; register another",
            ));
        }
        if old.version != expected_version {
            return Err(changed(old.version, expected_version));
        }
        let old_codes = tx.instrument_test_codes(old.id).await?;
        let now = self.now();
        let record = InstrumentRecord {
            id: old.id,
            version: old.version + 1,
            updated_at: now,
            updated_by: actor.username.clone(),
            retired_at: if retired {
                old.retired_at.or(Some(now))
            } else {
                None
            },
            ..new
        };
        match tx.update_instrument(&record).await {
            Ok(true) => {}
            Ok(false) => return Err(changed(old.version + 1, expected_version)),
            Err(StoreError::Conflict(_)) => {
                return Err(AppError::Conflict {
                    field: Some("sender".into()),
                    code: "instrument_exists",
                    message: "another instrument already has this protocol and sender".into(),
                });
            }
            Err(e) => return Err(e.into()),
        }
        for c in &mut codes {
            c.instrument_id = old.id;
        }
        tx.replace_instrument_test_codes(old.id, &codes).await?;
        let before = audit_value(&view(old, old_codes));
        let v = view(record, codes);
        tx.audit(self.entry(
            actor,
            "instrument.replace",
            "instrument",
            &v.code,
            Some(before),
            Some(audit_value(&v)),
            Some(&reason),
        ));
        tx.commit().await?;
        Ok(v)
    }

    /// Every instrument with its test codes (`interface.manage`).
    pub async fn list_instruments(&self, actor: &Actor) -> AppResult<Vec<InstrumentView>> {
        actor.require(Permission::InterfaceManage)?;
        let mut out = Vec::new();
        for r in self.store.instruments().await? {
            let codes = self.store.instrument_test_codes(r.id).await?;
            out.push(view(r, codes));
        }
        Ok(out)
    }

    /// One instrument with its test codes (`interface.manage`).
    pub async fn get_instrument(&self, actor: &Actor, code: &str) -> AppResult<InstrumentView> {
        actor.require(Permission::InterfaceManage)?;
        let r = self
            .store
            .instrument_by_code(code)
            .await?
            .ok_or(AppError::NotFound {
                entity: "instrument",
            })?;
        let codes = self.store.instrument_test_codes(r.id).await?;
        Ok(view(r, codes))
    }
}

/// `host:port` (a name or an address, and a port 1–65535).
fn parse_address(a: &str) -> AppResult<String> {
    let bad = || {
        AppError::invalid(
            "connect_to",
            "invalid_address",
            "host:port, e.g. 10.1.2.30:5000",
        )
    };
    let (host, port) = a.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty()
        || host.len() > 253
        || host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/')
        || port.parse::<u16>().ok().filter(|p| *p > 0).is_none()
    {
        return Err(bad());
    }
    Ok(a.to_owned())
}

/// An instrument the laboratory system connects out to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOut {
    pub code: String,
    pub protocol: super::Protocol,
    pub address: String,
    pub version: i64,
}

impl App {
    /// The active instruments that listen, for the connector (the server's own worker).
    pub async fn connect_out_targets(&self) -> AppResult<Vec<ConnectOut>> {
        Ok(self
            .store
            .instruments()
            .await?
            .into_iter()
            .filter(|i| i.retired_at.is_none())
            .filter_map(|i| {
                Some(ConnectOut {
                    protocol: super::Protocol::parse(&i.protocol)?,
                    address: i.connect_to?,
                    code: i.code,
                    version: i.version,
                })
            })
            .collect())
    }
}

fn changed(current: i64, expected: i64) -> AppError {
    AppError::Conflict {
        field: Some("version".into()),
        code: "instrument_changed",
        message: format!("the instrument is at version {current}, not {expected}: reload it"),
    }
}

fn audit_value(v: &InstrumentView) -> serde_json::Value {
    json!({
        "name": v.name,
        "protocol": v.protocol,
        "sender": v.sender,
        "department": v.department,
        "version": v.version,
        "retired": v.retired,
        "connect_to": v.connect_to,
        "test_codes": v.test_codes.iter().map(|(c, t, u)| json!({"code": c, "test": t, "units": u})).collect::<Vec<_>>(),
    })
}
