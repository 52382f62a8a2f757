//! Patients: registration with duplicate detection, search and reads (access-logged),
//! positive identification for orders, and merge / unmerge.

use aliquot_domain::auth::Permission;
use aliquot_domain::error::DomainError;
use aliquot_domain::ids::Mrn;
use aliquot_domain::patient::{
    AdministrativeSex, BirthDate, BirthTime, CandidateKey, ClinicalSex, FacilityId, IdentityRecord,
    PersonName, PresentedIdentifiers, candidate_birth_dates, confirm_identity, duplicate_match,
    name_match_key, name_search_key,
};
use aliquot_store::{
    AccessEntry, MergeRecord, PatientQuery, PatientRecord, PatientVersionRecord, Tx,
};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{Actor, App, AppError, AppResult, PatientScope, require_reason};

/// A domain error as a 422 naming the field, under `prefix` when the input is nested.
pub(crate) fn invalid<E: DomainError>(e: &E, prefix: &str, fallback: &str) -> AppError {
    let field = e.field().unwrap_or(fallback);
    let field = if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    };
    AppError::Invalid {
        field: Some(field),
        code: e.code(),
        message: e.to_string(),
    }
}

/// Contact details: free text, each at most 200 characters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
}

impl Contact {
    fn validate(&self) -> AppResult<Contact> {
        let clean = |name: &str, v: &Option<String>| -> AppResult<Option<String>> {
            match v.as_deref().map(str::trim) {
                None | Some("") => Ok(None),
                Some(s)
                    if s.chars().count() <= 200
                        && !s.chars().any(|c| c.is_control() && c != '\n') =>
                {
                    Ok(Some(s.to_owned()))
                }
                Some(_) => Err(AppError::invalid(
                    &format!("contact.{name}"),
                    "contact_format",
                    "at most 200 characters without control characters",
                )),
            }
        };
        Ok(Contact {
            phone: clean("phone", &self.phone)?,
            email: clean("email", &self.email)?,
            address: clean("address", &self.address)?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacilityIdentifier {
    pub system: String,
    pub value: String,
}

#[derive(Debug, Clone, Default)]
pub struct NewPatientInput {
    pub mrn: String,
    pub family_name: String,
    pub given_name: String,
    pub middle_name: Option<String>,
    pub birth_date: String,
    pub sex: String,
    /// Sex parameter for clinical use (female, male, specified, unknown); `None` or empty:
    /// not recorded.
    pub clinical_sex: Option<String>,
    /// Local time of birth `HH:MM`; `None` or empty: not recorded.
    pub birth_time: Option<String>,
    pub identifiers: Vec<FacilityIdentifier>,
    pub contact: Contact,
    /// The registrar has checked the candidates and this is a different person.
    pub confirm_not_duplicate: bool,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientView {
    pub id: i64,
    pub mrn: String,
    pub family_name: String,
    pub given_name: String,
    pub middle_name: Option<String>,
    pub birth_date: String,
    pub sex: String,
    pub clinical_sex: Option<String>,
    pub birth_time: Option<String>,
    pub identifiers: Vec<FacilityIdentifier>,
    pub contact: Contact,
    pub created_at: jiff::Timestamp,
    pub merged_into: Option<i64>,
}

impl PatientView {
    pub(crate) fn from_record(r: &PatientRecord) -> AppResult<PatientView> {
        Ok(PatientView {
            id: r.id,
            mrn: r.mrn.clone(),
            family_name: r.family_name.clone(),
            given_name: r.given_name.clone(),
            middle_name: r.middle_name.clone(),
            birth_date: r.birth_date.clone(),
            sex: r.sex.clone(),
            clinical_sex: r.clinical_sex.clone(),
            birth_time: r.birth_time.clone(),
            identifiers: serde_json::from_str(&r.facility_ids)
                .map_err(|e| AppError::Internal(format!("patient identifiers: {e}")))?,
            contact: serde_json::from_str(&r.contact)
                .map_err(|e| AppError::Internal(format!("patient contact: {e}")))?,
            created_at: r.created_at,
            merged_into: r.merged_into,
        })
    }

    fn audit_value(&self) -> serde_json::Value {
        json!({
            "mrn": self.mrn, "family_name": self.family_name, "given_name": self.given_name,
            "middle_name": self.middle_name, "birth_date": self.birth_date, "sex": self.sex,
            "clinical_sex": self.clinical_sex, "birth_time": self.birth_time,
            "identifiers": self.identifiers, "contact": self.contact,
        })
    }
}

/// A correction of a patient's demographics. `None` keeps a field; an empty `middle_name`
/// or contact field clears it. The MRN and facility identifiers are not corrected here.
#[derive(Debug, Clone, Default)]
pub struct PatientCorrection {
    pub family_name: Option<String>,
    pub given_name: Option<String>,
    pub middle_name: Option<String>,
    pub birth_date: Option<String>,
    pub sex: Option<String>,
    /// `None` keeps, `Some("")` clears.
    pub clinical_sex: Option<String>,
    /// `None` keeps, `Some("")` clears.
    pub birth_time: Option<String>,
    /// Each field `None` keeps, `Some("")` clears.
    pub contact: Option<Contact>,
    /// The corrected patient resembles others and the registrar checked they differ.
    pub confirm_not_duplicate: bool,
    /// Required: why the demographics were wrong.
    pub reason: Option<String>,
}

/// Demographics a correction replaced (`version` 1 is what registration recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientVersionView {
    pub version: i64,
    pub family_name: String,
    pub given_name: String,
    pub middle_name: Option<String>,
    pub birth_date: String,
    pub sex: String,
    pub clinical_sex: Option<String>,
    pub birth_time: Option<String>,
    pub contact: Contact,
    pub replaced_at: jiff::Timestamp,
    pub replaced_by: String,
    pub reason: String,
}

/// A registration that looks like an existing patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateCandidate {
    pub patient_id: i64,
    pub reason: &'static str,
}

/// The identifiers presented with a requisition. `id`, `mrn` or a facility `identifier`
/// locates the record; the
/// identifiers presented (MRN, name, birth date, facility identifier) must match at least
/// two of the record's and contradict none.
#[derive(Debug, Clone, Default)]
pub struct PatientIdentification {
    pub id: Option<i64>,
    pub mrn: Option<String>,
    pub family_name: Option<String>,
    pub given_name: Option<String>,
    pub birth_date: Option<String>,
    pub identifier: Option<FacilityIdentifier>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeView {
    pub id: i64,
    pub survivor_id: i64,
    pub merged_id: i64,
    pub moved_order_ids: Vec<i64>,
    pub moved_specimen_ids: Vec<i64>,
    pub reason: String,
    pub merged_at: jiff::Timestamp,
    pub undone_at: Option<jiff::Timestamp>,
}

impl From<MergeRecord> for MergeView {
    fn from(m: MergeRecord) -> Self {
        MergeView {
            id: m.id,
            survivor_id: m.survivor_id,
            merged_id: m.merged_id,
            moved_order_ids: m.moved_order_ids,
            moved_specimen_ids: m.moved_specimen_ids,
            reason: m.reason,
            merged_at: m.merged_at,
            undone_at: m.undone_at,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct PatientSearch {
    pub mrn: Option<String>,
    pub birth_date: Option<String>,
    pub family_name: Option<String>,
    pub given_name: Option<String>,
}

/// A recorded clinical sex: `None` or blank is "not recorded".
fn parse_clinical_sex(input: Option<&str>) -> AppResult<Option<ClinicalSex>> {
    match input.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => ClinicalSex::parse(s)
            .map(Some)
            .map_err(|e| invalid(&e, "", "clinical_sex")),
    }
}

/// A recorded time of birth: `None` or blank is "not recorded".
fn parse_birth_time(input: Option<&str>) -> AppResult<Option<BirthTime>> {
    match input.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => BirthTime::parse(s)
            .map(Some)
            .map_err(|e| invalid(&e, "", "birth_time")),
    }
}

impl App {
    pub(crate) fn today(&self) -> Date {
        self.now().to_zoned(TimeZone::UTC).date()
    }

    pub(crate) fn access(
        &self,
        actor: &Actor,
        action: &str,
        entity_type: &str,
        entity_id: impl ToString,
        patient_ids: Vec<i64>,
    ) -> AccessEntry {
        AccessEntry {
            at: self.now(),
            actor_id: actor.user_id,
            actor_name: actor.username.clone(),
            source: actor.source.as_str().to_owned(),
            action: action.to_owned(),
            entity_type: entity_type.to_owned(),
            entity_id: entity_id.to_string(),
            patient_ids,
        }
    }

    /// Registers a patient. A registration resembling a live patient (same birth date and
    /// equal, swapped or near-miss names; or same names with day and month swapped) is
    /// refused with the candidates unless `confirm_not_duplicate` is set with a reason.
    pub async fn register_patient(
        &self,
        actor: &Actor,
        input: NewPatientInput,
    ) -> AppResult<Result<PatientView, Vec<DuplicateCandidate>>> {
        actor.require(Permission::PatientWrite)?;
        let mut tx = self.store.begin().await?;
        let out = self.register_patient_in(&mut tx, actor, &input).await?;
        match &out {
            Ok(_) => {
                tx.commit().await?;
            }
            Err(candidates) => {
                drop(tx);
                self.log_candidates(actor, "register", candidates).await?;
            }
        }
        Ok(out)
    }

    /// The candidates a possible duplicate names are shown to the caller: a read of those
    /// patients, access-logged.
    async fn log_candidates(
        &self,
        actor: &Actor,
        during: &str,
        candidates: &[DuplicateCandidate],
    ) -> AppResult<()> {
        let mut ids: Vec<i64> = candidates.iter().map(|c| c.patient_id).collect();
        ids.sort_unstable();
        ids.dedup();
        self.store
            .record_access(&self.access(
                actor,
                "patient.duplicate_candidates",
                "patient",
                during,
                ids,
            ))
            .await?;
        Ok(())
    }

    /// [`App::register_patient`] inside `tx` (not committed).
    pub(crate) async fn register_patient_in(
        &self,
        tx: &mut Box<dyn Tx>,
        actor: &Actor,
        input: &NewPatientInput,
    ) -> AppResult<Result<PatientView, Vec<DuplicateCandidate>>> {
        actor.require(Permission::PatientWrite)?;
        let mrn = Mrn::parse(&input.mrn).map_err(|e| invalid(&e, "", "mrn"))?;
        let (name, birth_date, sex) = self.parse_demographics(
            &input.family_name,
            &input.given_name,
            input.middle_name.as_deref(),
            &input.birth_date,
            &input.sex,
        )?;
        let clinical_sex = parse_clinical_sex(input.clinical_sex.as_deref())?;
        let birth_time = parse_birth_time(input.birth_time.as_deref())?;
        let mut ids = Vec::new();
        for (i, f) in input.identifiers.iter().enumerate() {
            let id = FacilityId::new(&f.system, &f.value).map_err(|e| {
                invalid(&e, "", "identifiers").with_field(&format!("identifiers[{i}]"))
            })?;
            if ids
                .iter()
                .any(|x: &FacilityIdentifier| x.system == id.system())
            {
                return Err(AppError::invalid(
                    &format!("identifiers[{i}]"),
                    "identifier_duplicate_system",
                    "one identifier per assigning system",
                ));
            }
            ids.push(FacilityIdentifier {
                system: id.system().to_owned(),
                value: id.value().to_owned(),
            });
        }
        let contact = input.contact.validate()?;
        let reason = if input.confirm_not_duplicate {
            Some(require_reason(input.reason.as_deref())?)
        } else {
            None
        };
        // Duplicate detection is check-then-insert: no other registration (in any process)
        // may slip between our look-up and our insert.
        tx.serialize_writes().await?;
        if tx.patient_by_mrn(mrn.as_str()).await?.is_some() {
            return Err(AppError::Conflict {
                field: Some("mrn".into()),
                code: "mrn_taken",
                message: "a patient with this MRN is already registered".into(),
            });
        }
        let candidates = duplicate_candidates(tx, &name, birth_date, sex, None).await?;
        if !candidates.is_empty() && !input.confirm_not_duplicate {
            return Ok(Err(candidates));
        }
        let date = birth_date.date();
        let now = self.now();
        let mut record = PatientRecord {
            id: 0,
            mrn: mrn.as_str().to_owned(),
            family_name: name.family().to_owned(),
            given_name: name.given().to_owned(),
            middle_name: name.middle().map(str::to_owned),
            family_key: name_search_key(name.family()),
            given_key: name_search_key(name.given()),
            birth_date: date.to_string(),
            sex: sex.as_str().to_owned(),
            clinical_sex: clinical_sex.map(|c| c.as_str().to_owned()),
            birth_time: birth_time.map(BirthTime::as_string),
            facility_ids: serde_json::to_string(&ids)
                .map_err(|e| AppError::Internal(e.to_string()))?,
            contact: serde_json::to_string(&contact)
                .map_err(|e| AppError::Internal(e.to_string()))?,
            created_at: now,
            updated_at: now,
            merged_into: None,
        };
        record.id = tx.insert_patient(&record).await?;
        for (i, f) in ids.iter().enumerate() {
            if let Some(other) = tx.patient_by_identifier(&f.system, &f.value).await? {
                return Err(AppError::Conflict {
                    field: Some(format!("identifiers[{i}]")),
                    code: "identifier_taken",
                    message: format!("patient {} already holds this identifier", other.id),
                });
            }
            tx.insert_patient_identifier(record.id, &f.system, &f.value)
                .await?;
        }
        let view = PatientView::from_record(&record)?;
        let mut new = view.audit_value();
        if !candidates.is_empty() {
            new["confirmed_not_duplicate_of"] =
                json!(candidates.iter().map(|c| c.patient_id).collect::<Vec<_>>());
        }
        tx.audit(self.entry(
            actor,
            "patient.create",
            "patient",
            record.id,
            None,
            Some(new),
            reason.as_deref(),
        ));
        Ok(Ok(view))
    }

    /// The registration rules for demographics (the domain's parse functions), with errors
    /// naming the request's fields. Registration and correction both use it.
    fn parse_demographics(
        &self,
        family_name: &str,
        given_name: &str,
        middle_name: Option<&str>,
        birth_date: &str,
        sex: &str,
    ) -> AppResult<(PersonName, BirthDate, AdministrativeSex)> {
        let name =
            PersonName::new(family_name, given_name, middle_name).map_err(|e| match e.field() {
                Some("family") => invalid(&e, "", "family_name").with_field("family_name"),
                Some("given") => invalid(&e, "", "given_name").with_field("given_name"),
                _ => invalid(&e, "", "middle_name").with_field("middle_name"),
            })?;
        let birth_date = BirthDate::parse(birth_date, self.today())
            .map_err(|e| invalid(&e, "", "birth_date").with_field("birth_date"))?;
        let sex = AdministrativeSex::parse(sex).map_err(|e| invalid(&e, "", "sex"))?;
        Ok((name, birth_date, sex))
    }

    /// Corrects a live patient's demographics (names, birth date, sex, contact; not the MRN
    /// or facility identifiers, which are identifiers) with a reason. Fields left `None`
    /// keep their value; an empty middle name or contact field clears it. The registration
    /// rules apply, the search keys are recomputed, the replaced demographics are appended
    /// to `patient_versions`, and the change is audited (`patient.correct`, old and new
    /// values of the changed fields) in the same transaction. A correction of name, birth
    /// date or sex that makes the patient resemble another live patient is refused with the
    /// candidates, as at registration, unless `confirm_not_duplicate` is set.
    pub async fn correct_patient(
        &self,
        actor: &Actor,
        id: i64,
        input: PatientCorrection,
    ) -> AppResult<Result<PatientView, Vec<DuplicateCandidate>>> {
        actor.require(Permission::PatientWrite)?;
        let reason = require_reason(input.reason.as_deref())?;
        if input.family_name.is_none()
            && input.given_name.is_none()
            && input.middle_name.is_none()
            && input.birth_date.is_none()
            && input.sex.is_none()
            && input.clinical_sex.is_none()
            && input.birth_time.is_none()
            && input.contact.is_none()
        {
            return Err(AppError::invalid(
                "family_name",
                "correction_empty",
                "give at least one of family_name, given_name, middle_name, birth_date, sex, \
                 clinical_sex, birth_time, contact",
            ));
        }
        let mut tx = self.store.begin().await?;
        // The duplicate check is check-then-write, as at registration.
        tx.serialize_writes().await?;
        let old = tx
            .patient_by_id(id)
            .await?
            .ok_or(AppError::NotFound { entity: "patient" })?;
        let merged = |survivor: i64| AppError::Conflict {
            field: None,
            code: "patient_merged",
            message: format!(
                "this record was merged into patient {survivor}; correct the survivor instead"
            ),
        };
        if let Some(survivor) = old.merged_into {
            return Err(merged(survivor));
        }
        let (name, birth_date, sex) = self.parse_demographics(
            input.family_name.as_deref().unwrap_or(&old.family_name),
            input.given_name.as_deref().unwrap_or(&old.given_name),
            input.middle_name.as_deref().or(old.middle_name.as_deref()),
            input.birth_date.as_deref().unwrap_or(&old.birth_date),
            input.sex.as_deref().unwrap_or(&old.sex),
        )?;
        let clinical_sex = match &input.clinical_sex {
            None => old.clinical_sex.clone(),
            Some(c) => parse_clinical_sex(Some(c))?.map(|c| c.as_str().to_owned()),
        };
        let birth_time = match &input.birth_time {
            None => old.birth_time.clone(),
            Some(t) => parse_birth_time(Some(t))?.map(BirthTime::as_string),
        };
        let old_contact: Contact = serde_json::from_str(&old.contact)
            .map_err(|e| AppError::Internal(format!("patient contact: {e}")))?;
        let contact = match &input.contact {
            None => old_contact.clone(),
            Some(c) => Contact {
                phone: c.phone.clone().or(old_contact.phone.clone()),
                email: c.email.clone().or(old_contact.email.clone()),
                address: c.address.clone().or(old_contact.address.clone()),
            }
            .validate()?,
        };
        let now = self.now();
        let new = PatientRecord {
            family_name: name.family().to_owned(),
            given_name: name.given().to_owned(),
            middle_name: name.middle().map(str::to_owned),
            family_key: name_search_key(name.family()),
            given_key: name_search_key(name.given()),
            birth_date: birth_date.date().to_string(),
            sex: sex.as_str().to_owned(),
            clinical_sex,
            birth_time,
            contact: serde_json::to_string(&contact)
                .map_err(|e| AppError::Internal(e.to_string()))?,
            updated_at: now,
            ..old.clone()
        };
        let (old_view, new_view) = (
            PatientView::from_record(&old)?,
            PatientView::from_record(&new)?,
        );
        let (before, after) = (old_view.audit_value(), new_view.audit_value());
        let mut old_value = serde_json::Map::new();
        let mut new_value = serde_json::Map::new();
        for field in [
            "family_name",
            "given_name",
            "middle_name",
            "birth_date",
            "sex",
            "clinical_sex",
            "birth_time",
            "contact",
        ] {
            if before[field] != after[field] {
                old_value.insert(field.into(), before[field].clone());
                new_value.insert(field.into(), after[field].clone());
            }
        }
        if new_value.is_empty() {
            return Err(AppError::invalid(
                "family_name",
                "correction_unchanged",
                "the correction changes nothing",
            ));
        }
        let identity_changed = (&new.family_key, &new.given_key, &new.birth_date, &new.sex)
            != (&old.family_key, &old.given_key, &old.birth_date, &old.sex);
        let candidates = if identity_changed {
            duplicate_candidates(&mut tx, &name, birth_date, sex, Some(id)).await?
        } else {
            Vec::new()
        };
        if !candidates.is_empty() && !input.confirm_not_duplicate {
            drop(tx);
            self.log_candidates(actor, "correct", &candidates).await?;
            return Ok(Err(candidates));
        }
        let version = tx
            .insert_patient_version(&PatientVersionRecord {
                id: 0,
                patient_id: id,
                version: 0,
                family_name: old.family_name.clone(),
                given_name: old.given_name.clone(),
                middle_name: old.middle_name.clone(),
                birth_date: old.birth_date.clone(),
                sex: old.sex.clone(),
                clinical_sex: old.clinical_sex.clone(),
                birth_time: old.birth_time.clone(),
                contact: old.contact.clone(),
                replaced_at: now,
                replaced_by: actor.username.clone(),
                reason: reason.clone(),
            })
            .await?;
        if !tx.correct_patient(&new).await? {
            // Merged in between: not possible under serialize_writes, but the guarded update
            // says so rather than assume it.
            return Err(AppError::Conflict {
                field: None,
                code: "patient_merged",
                message: "this record was merged into another meanwhile".into(),
            });
        }
        new_value.insert("replaced_version".into(), json!(version));
        if !candidates.is_empty() {
            new_value.insert(
                "confirmed_not_duplicate_of".into(),
                json!(candidates.iter().map(|c| c.patient_id).collect::<Vec<_>>()),
            );
        }
        tx.audit(self.entry(
            actor,
            "patient.correct",
            "patient",
            id,
            Some(old_value.into()),
            Some(new_value.into()),
            Some(&reason),
        ));
        tx.commit().await?;
        Ok(Ok(new_view))
    }

    /// The demographics a patient's corrections replaced, oldest first. Recorded in the
    /// access log.
    pub async fn patient_versions(
        &self,
        actor: &Actor,
        id: i64,
    ) -> AppResult<Vec<PatientVersionView>> {
        actor.require(Permission::PatientRead)?;
        if self.store.patient_by_id(id).await?.is_none() {
            return Err(AppError::NotFound { entity: "patient" });
        }
        self.require_patient_visible(actor, id, "patient").await?;
        let versions = self.store.patient_versions(id).await?;
        self.store
            .record_access(&self.access(actor, "patient.versions", "patient", id, vec![id]))
            .await?;
        versions
            .into_iter()
            .map(|v| {
                Ok(PatientVersionView {
                    version: v.version,
                    family_name: v.family_name,
                    given_name: v.given_name,
                    middle_name: v.middle_name,
                    birth_date: v.birth_date,
                    sex: v.sex,
                    clinical_sex: v.clinical_sex,
                    birth_time: v.birth_time,
                    contact: serde_json::from_str(&v.contact)
                        .map_err(|e| AppError::Internal(format!("patient contact: {e}")))?,
                    replaced_at: v.replaced_at,
                    replaced_by: v.replaced_by,
                    reason: v.reason,
                })
            })
            .collect()
    }

    pub async fn patient(&self, actor: &Actor, id: i64) -> AppResult<PatientView> {
        actor.require(Permission::PatientRead)?;
        let record = self
            .store
            .patient_by_id(id)
            .await?
            .ok_or(AppError::NotFound { entity: "patient" })?;
        self.require_patient_visible(actor, id, "patient").await?;
        self.store
            .record_access(&self.access(actor, "patient.read", "patient", id, vec![id]))
            .await?;
        PatientView::from_record(&record)
    }

    /// Searches live patients by MRN, birth date and/or name prefixes (match keys: case,
    /// accents, punctuation, compatibility forms and confusable look-alike letters ignored, so
    /// `gar` finds `García` and `G\u{430}rcia`). At least one criterion is required. A
    /// physician finds only their own patients (see [`App::patient_scope`]).
    pub async fn search_patients(
        &self,
        actor: &Actor,
        q: PatientSearch,
    ) -> AppResult<Vec<PatientView>> {
        actor.require(Permission::PatientRead)?;
        let nonempty = |s: Option<String>| s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let mrn = nonempty(q.mrn)
            .map(|m| Mrn::parse(&m).map(|m| m.as_str().to_owned()))
            .transpose()
            .map_err(|e| invalid(&e, "", "mrn"))?;
        let birth_date = nonempty(q.birth_date)
            .map(|d| {
                d.parse::<Date>().map(|d| d.to_string()).map_err(|_| {
                    AppError::invalid("birth_date", "birth_date_format", "use YYYY-MM-DD")
                })
            })
            .transpose()?;
        let key = |s: Option<String>| {
            nonempty(s)
                .map(|s| name_match_key(&s))
                .filter(|k| !k.is_empty())
        };
        let query = PatientQuery {
            mrn,
            birth_date,
            family_prefix: key(q.family_name),
            given_prefix: key(q.given_name),
            ordering_provider: None,
            limit: 50,
        };
        if query.mrn.is_none()
            && query.birth_date.is_none()
            && query.family_prefix.is_none()
            && query.given_prefix.is_none()
        {
            return Err(AppError::invalid(
                "mrn",
                "search_criteria_required",
                "give an MRN, a birth date or a name",
            ));
        }
        let records = match self.patient_scope(actor).await? {
            PatientScope::All => self.store.search_patients(&query).await?,
            PatientScope::OrderedBy(None) => Vec::new(),
            PatientScope::OrderedBy(Some(provider)) => {
                self.store
                    .search_patients(&PatientQuery {
                        ordering_provider: Some(provider),
                        ..query
                    })
                    .await?
            }
        };
        let ids: Vec<i64> = records.iter().map(|r| r.id).collect();
        self.store
            .record_access(&self.access(actor, "patient.search", "patient", "search", ids))
            .await?;
        records.iter().map(PatientView::from_record).collect()
    }

    /// Positive identification inside a transaction: locates the record and confirms at
    /// least two identifiers match and none contradicts. Field names are under `patient.`.
    pub(crate) async fn identify_patient(
        &self,
        tx: &mut Box<dyn Tx>,
        ident: &PatientIdentification,
    ) -> AppResult<PatientRecord> {
        let presented_mrn = ident
            .mrn
            .as_deref()
            .map(Mrn::parse)
            .transpose()
            .map_err(|e| invalid(&e, "patient", "mrn"))?;
        let name = match (&ident.family_name, &ident.given_name) {
            (Some(f), Some(g)) => Some(PersonName::new(f, g, None).map_err(|e| {
                invalid(&e, "", "name").with_field(match e.field() {
                    Some("given") => "patient.given_name",
                    _ => "patient.family_name",
                })
            })?),
            (None, None) => None,
            _ => {
                return Err(AppError::invalid(
                    "patient.given_name",
                    "name_incomplete",
                    "a name identifies only with both family and given names",
                ));
            }
        };
        let birth_date = ident
            .birth_date
            .as_deref()
            .map(|d| BirthDate::parse(d, self.today()))
            .transpose()
            .map_err(|e| invalid(&e, "", "birth_date").with_field("patient.birth_date"))?;
        let facility_id = ident
            .identifier
            .as_ref()
            .map(|f| FacilityId::new(&f.system, &f.value))
            .transpose()
            .map_err(|e| invalid(&e, "", "identifier").with_field("patient.identifier"))?;
        let record = match (ident.id, &presented_mrn, &facility_id) {
            (Some(id), _, _) => tx.patient_by_id(id).await?,
            (None, Some(m), _) => tx.patient_by_mrn(m.as_str()).await?,
            (None, None, Some(f)) => tx.patient_by_identifier(f.system(), f.value()).await?,
            (None, None, None) => {
                return Err(AppError::invalid(
                    "patient",
                    "patient_unlocatable",
                    "give the patient's id, MRN or a facility identifier, with a second identifier",
                ));
            }
        };
        let record = record
            .ok_or_else(|| AppError::invalid("patient", "unknown_patient", "no such patient"))?;
        if let Some(survivor) = record.merged_into {
            return Err(AppError::invalid(
                "patient",
                "patient_merged",
                format!("this record was merged into patient {survivor}"),
            ));
        }
        let identity = identity_record(&record)?;
        let presented = PresentedIdentifiers {
            mrn: presented_mrn,
            name,
            birth_date,
            facility_id,
        };
        confirm_identity(&identity, &presented).map_err(|e| {
            let field = e
                .field()
                .map_or("patient".to_owned(), |f| format!("patient.{f}"));
            AppError::Invalid {
                field: Some(field),
                code: e.code(),
                message: e.to_string(),
            }
        })?;
        Ok(record)
    }

    /// Merges `merged_id` into `survivor_id`: moves its orders and specimens, marks it merged,
    /// and records exactly what moved so that [`App::unmerge_patients`] can restore it.
    pub async fn merge_patients(
        &self,
        actor: &Actor,
        survivor_id: i64,
        merged_id: i64,
        reason: Option<&str>,
    ) -> AppResult<MergeView> {
        actor.require(Permission::PatientMerge)?;
        let reason = require_reason(reason)?;
        if survivor_id == merged_id {
            return Err(AppError::invalid(
                "merged_patient_id",
                "merge_self",
                "a patient cannot be merged into itself",
            ));
        }
        let mut tx = self.store.begin().await?;
        let survivor = tx
            .patient_by_id(survivor_id)
            .await?
            .ok_or(AppError::NotFound { entity: "patient" })?;
        let merged = tx.patient_by_id(merged_id).await?.ok_or_else(|| {
            AppError::invalid("merged_patient_id", "unknown_patient", "no such patient")
        })?;
        if survivor.merged_into.is_some() || merged.merged_into.is_some() {
            return Err(AppError::Conflict {
                field: Some("merged_patient_id".into()),
                code: "already_merged",
                message: "one of the records is already merged into another".into(),
            });
        }
        let order_ids = tx.order_ids_of_patient(merged_id).await?;
        let specimen_ids = tx.specimen_ids_of_patient(merged_id).await?;
        // Results belong to their order: they move with it (and back on undo), so delta
        // checks and the cumulative view see one patient.
        let mut moved_results = 0;
        for id in &order_ids {
            tx.move_row(false, *id, merged_id, survivor_id).await?;
            moved_results += tx.move_results(*id, merged_id, survivor_id).await?;
        }
        for id in &specimen_ids {
            tx.move_row(true, *id, merged_id, survivor_id).await?;
        }
        let now = self.now();
        tx.set_merged_into(merged_id, Some(survivor_id), now)
            .await?;
        let mut record = MergeRecord {
            id: 0,
            survivor_id,
            merged_id,
            moved_order_ids: order_ids,
            moved_specimen_ids: specimen_ids,
            reason: reason.clone(),
            merged_at: now,
            merged_by: actor.username.clone(),
            undone_at: None,
            undone_by: None,
        };
        record.id = tx.insert_merge(&record).await?;
        tx.audit(self.entry(
            actor,
            "patient.merge",
            "patient",
            merged_id,
            Some(json!({"merged_into": null})),
            Some(json!({
                "merged_into": survivor_id, "merge_id": record.id,
                "moved_order_ids": record.moved_order_ids,
                "moved_specimen_ids": record.moved_specimen_ids,
                "moved_results": moved_results,
            })),
            Some(&reason),
        ));
        tx.commit().await?;
        Ok(record.into())
    }

    /// Undoes a merge: moves back exactly the orders and specimens it moved and revives the
    /// merged record.
    pub async fn unmerge_patients(
        &self,
        actor: &Actor,
        merge_id: i64,
        reason: Option<&str>,
    ) -> AppResult<MergeView> {
        actor.require(Permission::PatientMerge)?;
        let reason = require_reason(reason)?;
        let mut tx = self.store.begin().await?;
        let merge = tx
            .merge_by_id(merge_id)
            .await?
            .ok_or(AppError::NotFound { entity: "merge" })?;
        let conflict = |m: &str| AppError::Conflict {
            field: None,
            code: "unmerge_conflict",
            message: m.to_owned(),
        };
        if merge.undone_at.is_some() {
            return Err(conflict("this merge was already undone"));
        }
        for id in &merge.moved_order_ids {
            if !tx
                .move_row(false, *id, merge.survivor_id, merge.merged_id)
                .await?
            {
                return Err(conflict("an order moved by the merge has moved since"));
            }
            tx.move_results(*id, merge.survivor_id, merge.merged_id)
                .await?;
        }
        for id in &merge.moved_specimen_ids {
            if !tx
                .move_row(true, *id, merge.survivor_id, merge.merged_id)
                .await?
            {
                return Err(conflict("a specimen moved by the merge has moved since"));
            }
        }
        let now = self.now();
        tx.set_merged_into(merge.merged_id, None, now).await?;
        tx.set_merge_undone(merge_id, now, &actor.username).await?;
        tx.audit(self.entry(
            actor,
            "patient.unmerge",
            "patient",
            merge.merged_id,
            Some(json!({"merged_into": merge.survivor_id, "merge_id": merge_id})),
            Some(json!({
                "merged_into": null,
                "restored_order_ids": merge.moved_order_ids,
                "restored_specimen_ids": merge.moved_specimen_ids,
            })),
            Some(&reason),
        ));
        tx.commit().await?;
        let mut view = MergeView::from(merge);
        view.undone_at = Some(now);
        Ok(view)
    }
}

fn identity_record(r: &PatientRecord) -> AppResult<IdentityRecord> {
    let bad = |what: &str| AppError::Internal(format!("stored patient {what} is invalid"));
    let ids: Vec<FacilityIdentifier> =
        serde_json::from_str(&r.facility_ids).map_err(|_| bad("identifiers"))?;
    Ok(IdentityRecord {
        mrn: Mrn::parse(&r.mrn).map_err(|_| bad("mrn"))?,
        name: PersonName::new(&r.family_name, &r.given_name, r.middle_name.as_deref())
            .map_err(|_| bad("name"))?,
        birth_date: stored_birth_date(&r.birth_date).ok_or_else(|| bad("birth date"))?,
        facility_ids: ids
            .iter()
            .filter_map(|f| FacilityId::new(&f.system, &f.value).ok())
            .collect(),
    })
}

fn stored_birth_date(s: &str) -> Option<BirthDate> {
    let d: Date = s.parse().ok()?;
    // A stored date was validated at registration; only "not in the future" is rechecked,
    // against a far date so that it always holds.
    BirthDate::new(d, Date::new(9999, 12, 31).ok()?).ok()
}

/// Live patients the given demographics resemble (registration's duplicate detection: the
/// birth dates of `candidate_birth_dates`, judged by `duplicate_match`), other than `except`.
async fn duplicate_candidates(
    tx: &mut Box<dyn Tx>,
    name: &PersonName,
    birth_date: BirthDate,
    sex: AdministrativeSex,
    except: Option<i64>,
) -> AppResult<Vec<DuplicateCandidate>> {
    let key = CandidateKey::new(name, birth_date, sex);
    let dates: Vec<String> = candidate_birth_dates(birth_date.date())
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut candidates = Vec::new();
    for existing in tx.patients_born_on(&dates).await? {
        if Some(existing.id) == except {
            continue;
        }
        if let Some(reason) = candidate_key(&existing).and_then(|k| duplicate_match(&key, &k)) {
            candidates.push(DuplicateCandidate {
                patient_id: existing.id,
                reason: reason.as_str(),
            });
        }
    }
    Ok(candidates)
}

fn candidate_key(r: &PatientRecord) -> Option<CandidateKey> {
    let name = PersonName::new(&r.family_name, &r.given_name, r.middle_name.as_deref()).ok()?;
    let sex = AdministrativeSex::parse(&r.sex).ok()?;
    Some(CandidateKey::new(
        &name,
        stored_birth_date(&r.birth_date)?,
        sex,
    ))
}
