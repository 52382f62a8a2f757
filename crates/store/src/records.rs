//! Plain records that cross the store boundary. Timestamps are `jiff::Timestamp` (UTC); the
//! store converts them to epoch microseconds.

use jiff::Timestamp;

use crate::redact::redacted_debug;

#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub password_hash: String,
    pub created_at: Timestamp,
    pub password_changed_at: Timestamp,
    pub disabled_at: Option<Timestamp>,
}

/// A user's second factor (TOTP): pending until `confirmed_at`.
#[derive(Clone, PartialEq, Eq)]
pub struct MfaRecord {
    pub user_id: i64,
    /// The shared secret, Base32.
    pub secret: String,
    pub enrolled_at: Timestamp,
    pub confirmed_at: Option<Timestamp>,
    /// The last time step accepted (a code is accepted only for a later one).
    pub last_step: Option<i64>,
    /// Recovery codes not yet used.
    pub recovery_codes_left: i64,
}

/// A request to grant a privileged role, pending until a second administrator decides.
#[derive(Clone, PartialEq, Eq)]
pub struct RoleGrantRecord {
    pub id: i64,
    pub user_id: i64,
    pub username: String,
    pub role: String,
    pub reason: String,
    pub requested_by: i64,
    pub requested_by_name: String,
    pub requested_at: Timestamp,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    pub decided_by: Option<i64>,
    pub decided_by_name: Option<String>,
    pub decided_at: Option<Timestamp>,
    pub decision_reason: Option<String>,
}

#[derive(Clone)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub password_hash: String,
    pub created_at: Timestamp,
}

#[derive(Clone)]
pub struct NewSession {
    pub token_hash: String,
    pub user_id: i64,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A session joined with its user: all that authentication needs, in one read.
#[derive(Debug, Clone)]
pub struct SessionAuth {
    pub session_id: i64,
    pub expires_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub user: UserRecord,
}

/// Recent failed credential checks around one (address, account) pair, within a window:
/// counts and the time of the latest, as `LoginThrottle` needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoginAttempts {
    /// Failures of this account from this address, and the latest.
    pub pair: Option<(i64, Timestamp)>,
    /// Failures from this address over all accounts, and the latest.
    pub address: Option<(i64, Timestamp)>,
    /// Other addresses with failures on this account, and the latest of their failures.
    pub other_addresses: Option<(i64, Timestamp)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingRecord {
    pub key: String,
    pub value: String,
    pub updated_at: Timestamp,
    pub updated_by: Option<i64>,
}

/// A read of patient data, for the access log.
#[derive(Debug, Clone)]
pub struct AccessEntry {
    pub at: Timestamp,
    pub actor_id: Option<i64>,
    pub actor_name: String,
    pub source: String,
    pub action: String,
    pub entity_type: String,
    pub entity_id: String,
    /// The patients whose data was returned.
    pub patient_ids: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRecord {
    pub id: i64,
    pub at: Timestamp,
    pub actor_id: Option<i64>,
    pub actor_name: String,
    pub source: String,
    pub action: String,
    pub entity_type: String,
    pub entity_id: String,
    pub patient_ids: Vec<i64>,
}

// ---------------------------------------------------------------------------------------------
// Registration and ordering

/// A patient row. `facility_ids` and `contact` are JSON text; `birth_date` is `YYYY-MM-DD`.
#[derive(Clone, PartialEq, Eq)]
pub struct PatientRecord {
    pub id: i64,
    pub mrn: String,
    pub family_name: String,
    pub given_name: String,
    pub middle_name: Option<String>,
    pub family_key: String,
    pub given_key: String,
    pub birth_date: String,
    pub sex: String,
    /// Sex parameter for clinical use (`female`, `male`, `specified`, `unknown`), if recorded.
    pub clinical_sex: Option<String>,
    /// Local time of birth `HH:MM`, if recorded.
    pub birth_time: Option<String>,
    pub facility_ids: String,
    pub contact: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Set when this record was merged into another (the survivor).
    pub merged_into: Option<i64>,
}

/// Search criteria; every given criterion must hold. Merged-away records are excluded.
#[derive(Clone, Default)]
pub struct PatientQuery {
    pub mrn: Option<String>,
    pub birth_date: Option<String>,
    /// A prefix of the family name's match key (`name_match_key`).
    pub family_prefix: Option<String>,
    /// A prefix of the given name's match key.
    pub given_prefix: Option<String>,
    /// Only patients with an order by this provider (a physician's own patients).
    pub ordering_provider: Option<i64>,
    pub limit: i64,
}

/// Demographics a correction replaced (`patient_versions`, append-only). Version 1 is what
/// registration recorded; `replaced_*` and `reason` describe the correction that replaced it.
#[derive(Clone, PartialEq, Eq)]
pub struct PatientVersionRecord {
    pub id: i64,
    pub patient_id: i64,
    pub version: i64,
    pub family_name: String,
    pub given_name: String,
    pub middle_name: Option<String>,
    pub birth_date: String,
    pub sex: String,
    pub clinical_sex: Option<String>,
    pub birth_time: Option<String>,
    /// JSON text, as in `patients.contact`.
    pub contact: String,
    pub replaced_at: Timestamp,
    pub replaced_by: String,
    pub reason: String,
}

#[derive(Clone, PartialEq, Eq)]
pub struct MergeRecord {
    pub id: i64,
    pub survivor_id: i64,
    pub merged_id: i64,
    pub moved_order_ids: Vec<i64>,
    pub moved_specimen_ids: Vec<i64>,
    pub reason: String,
    pub merged_at: Timestamp,
    pub merged_by: String,
    pub undone_at: Option<Timestamp>,
    pub undone_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRecord {
    pub id: i64,
    pub npi: String,
    pub family_name: String,
    pub given_name: String,
    pub phone: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationRecord {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub kind: String,
    pub address: String,
    pub phone: Option<String>,
    pub contact_name: Option<String>,
    pub created_at: Timestamp,
}

/// A catalogue entry (test or panel); the full definition is JSON text owned by the use cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogTestRecord {
    pub id: i64,
    pub code: String,
    pub loinc: Option<String>,
    pub kind: String,
    pub name: String,
    pub version: i64,
    pub definition: String,
    pub updated_at: Timestamp,
    pub retired_at: Option<Timestamp>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct OrderRecord {
    pub id: i64,
    pub patient_id: i64,
    pub provider_id: i64,
    pub location_id: i64,
    pub priority: String,
    pub timed_at: Option<Timestamp>,
    pub placer_order_number: Option<String>,
    pub clinical_notes: Option<String>,
    /// JSON array of ICD-10-CM codes.
    pub diagnosis_codes: String,
    pub status: String,
    pub created_at: Timestamp,
    pub created_by: String,
    pub cancelled_at: Option<Timestamp>,
    pub cancel_reason: Option<String>,
    /// The draw uses a winged (butterfly) collection set (issue 10 item 9).
    pub winged_collection_set: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecimenRecord {
    pub id: i64,
    pub accession: String,
    pub order_id: i64,
    pub patient_id: i64,
    pub container: String,
    pub specimen_type: String,
    pub draw_rank: i64,
    pub status: String,
    pub volume_ul: i64,
    pub capacity_ul: i64,
    pub created_at: Timestamp,
    pub collected_at: Option<Timestamp>,
    /// Storage temperature band since collection (`room`, `refrigerated`, `frozen`).
    pub temperature: Option<String>,
    /// The planned demand of the tests on the tube, µL of specimen (`volume_ul` is the
    /// measured content: 0 before receipt).
    pub demand_ul: i64,
    /// The container recorded at receipt (`container` then holds it too).
    pub received_container: Option<String>,
}

impl SpecimenRecord {
    /// When the tube was drawn, or, when no draw time was recorded, when it was labelled:
    /// the time its results are judged at (intervals, delta checks, ages).
    pub fn collected_or_created(&self) -> Timestamp {
        self.collected_at.unwrap_or(self.created_at)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderTestRecord {
    pub id: i64,
    pub order_id: i64,
    pub test_code: String,
    pub panel_code: Option<String>,
    pub specimen_id: i64,
    pub status: String,
    pub added_at: Timestamp,
}

/// A scanned requisition attached to an order; the bytes are stored outside the database
/// under their SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanRecord {
    pub id: i64,
    pub order_id: i64,
    pub sha256: String,
    pub media_type: String,
    pub size_bytes: i64,
    pub created_at: Timestamp,
    pub created_by: String,
}

/// One version of a catalogue entry's definition (JSON text), kept when it is replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogVersionRecord {
    pub version: i64,
    pub definition: String,
    pub changed_at: Timestamp,
    pub changed_by: String,
}

/// One entry of a specimen's chain of custody: who did what, when, and the status change.
#[derive(Clone, PartialEq, Eq)]
pub struct SpecimenEventRecord {
    pub id: i64,
    pub specimen_id: i64,
    pub at: Timestamp,
    pub actor_id: Option<i64>,
    pub actor_name: String,
    /// `collect`, `receive`, `reject`, `label_print`…
    pub kind: String,
    pub from_status: String,
    pub to_status: String,
    /// JSON object.
    pub details: String,
    pub location: Option<String>,
}

/// A rejected specimen in the problem log.
#[derive(Clone, PartialEq, Eq)]
pub struct ProblemRecord {
    pub id: i64,
    pub specimen_id: i64,
    /// The specimen's accession number (read from the specimen; ignored on insert).
    pub accession: String,
    pub reason: String,
    pub comment: Option<String>,
    pub opened_at: Timestamp,
    pub opened_by: String,
    pub resolved_at: Option<Timestamp>,
    pub resolved_by: Option<String>,
    pub resolution: Option<String>,
}

/// A recollection to be done by the ordering location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecollectTaskRecord {
    pub id: i64,
    pub order_id: i64,
    pub location_id: i64,
    pub specimen_id: i64,
    /// The specimen's accession number (read from the specimen; ignored on insert).
    pub accession: String,
    pub reason: String,
    pub created_at: Timestamp,
    pub done_at: Option<Timestamp>,
    pub done_by: Option<String>,
    /// The accession of the specimen collected instead.
    pub replacement_accession: Option<String>,
}

/// A guarded status change of a specimen: applied only while its status is still `from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecimenChange {
    pub id: i64,
    pub from: String,
    pub to: String,
    /// Set when given; unchanged when `None`.
    pub collected_at: Option<Timestamp>,
    pub temperature: Option<String>,
    pub volume_ul: Option<i64>,
}

// ── processing: centrifugation, aliquots, dilutions, routing (issue 4) ──

/// A centrifugation of a specimen: where, how hard (RCF in g, not rpm), how long, who.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CentrifugationRecord {
    pub id: i64,
    pub specimen_id: i64,
    pub centrifuge_id: String,
    pub rcf_g: i64,
    pub minutes: i64,
    /// The reported temperature, °C, as text.
    pub temperature_c: String,
    pub started_at: Timestamp,
    pub operator_id: Option<i64>,
    pub operator_name: String,
    pub recorded_at: Timestamp,
}

/// A dilution of a specimen (factor `1:N`), for the results step to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DilutionRecord {
    pub id: i64,
    pub specimen_id: i64,
    pub factor: String,
    pub test_code: Option<String>,
    pub diluent: Option<String>,
    pub recorded_at: Timestamp,
    pub actor_id: Option<i64>,
    pub actor_name: String,
}

/// A specimen waiting to be sorted, with its order priority, receipt time and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortingRecord {
    pub specimen_id: i64,
    pub accession: String,
    pub status: String,
    pub container: String,
    pub specimen_type: String,
    pub volume_ul: i64,
    pub patient_id: i64,
    pub priority: String,
    /// The receipt time (the creation time for an aliquot poured in the lab).
    pub received_at: Timestamp,
    pub tests: Vec<String>,
}

// ── storage, transport, send-out, disposal (issue 4) ──

/// A registered storage holder: room, refrigerator/freezer, rack or box, named by its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageUnitRecord {
    pub id: i64,
    /// Upper-cased `room[/unit[/rack[/box]]]`.
    pub path: String,
    pub parent_id: Option<i64>,
    /// `room`, `refrigerator`, `freezer`, `rack`, `box`.
    pub kind: String,
    pub name: Option<String>,
    /// `room`, `refrigerated`, `frozen`.
    pub temperature: Option<String>,
    pub grid_rows: Option<i64>,
    pub grid_cols: Option<i64>,
    pub created_at: Timestamp,
    pub created_by: String,
}

/// A specimen placed at a position of a holder; `removed_at` is set when it leaves (the row
/// stays: the placement history).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementRecord {
    pub id: i64,
    pub specimen_id: i64,
    pub unit_id: i64,
    /// The holder's path (read from the holder; ignored on insert).
    pub unit_path: String,
    /// Canonical position, e.g. `A7` or `15`.
    pub position: String,
    pub stored_at: Timestamp,
    pub stored_by: String,
    pub removed_at: Option<Timestamp>,
    pub removed_by: Option<String>,
    /// `retrieve` or `dispose`.
    pub removal: Option<String>,
    pub removal_reason: Option<String>,
}

/// A specimen currently in storage, with where and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSpecimenRecord {
    pub specimen_id: i64,
    pub accession: String,
    pub specimen_type: String,
    pub status: String,
    pub unit_id: i64,
    pub unit_path: String,
    pub position: String,
    pub stored_at: Timestamp,
    pub stored_by: String,
}

/// A rejected specimen not yet disposed of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedSpecimenRecord {
    pub specimen_id: i64,
    pub accession: String,
    pub specimen_type: String,
    pub rejected_at: Option<Timestamp>,
}

/// A configured retention period for a specimen type (overrides the domain default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicyRecord {
    pub specimen_type: String,
    pub hours: i64,
    pub updated_at: Timestamp,
    pub updated_by: String,
}

/// A configured retention period for a specimen type and one use (a department or a test).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionUseRecord {
    pub specimen_type: String,
    /// `department` or `test`.
    pub use_kind: String,
    pub use_code: String,
    pub hours: i64,
    pub updated_at: Timestamp,
    pub updated_by: String,
}

/// A specimen handed off to a reference laboratory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOutRecord {
    pub id: i64,
    pub specimen_id: i64,
    /// The specimen's accession number (read from the specimen; ignored on insert).
    pub accession: String,
    pub reference_lab: String,
    /// JSON array of test codes.
    pub tests: String,
    pub tracking: Option<String>,
    pub temperature: String,
    pub sent_at: Timestamp,
    pub sent_by: String,
    pub resulted_at: Option<Timestamp>,
    /// The registered reference laboratory (send-outs before migration 0021 have none).
    pub reference_lab_id: Option<i64>,
    /// The shipment it was packed into, once packed.
    pub shipment_id: Option<i64>,
}

// ── reference laboratories and shipments (issue 14 item 4) ──

/// A reference laboratory: who performs the tests the lab sends out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceLabRecord {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub address: String,
    pub clia: String,
    pub phone: Option<String>,
    pub expected_tat_hours: i64,
    pub version: i64,
    pub updated_at: Timestamp,
    pub updated_by: String,
    pub retired_at: Option<Timestamp>,
}

/// One of a reference laboratory's test codes and the catalogue test it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceLabTestCodeRecord {
    pub reference_lab_id: i64,
    pub code: String,
    pub test_code: String,
}

/// A shipment of sent-out tubes to one reference laboratory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipmentRecord {
    pub id: i64,
    /// The manifest number, e.g. `SO000012`.
    pub manifest: String,
    pub reference_lab_id: i64,
    /// `created`, `shipped`, `received`, `resulted`.
    pub status: String,
    pub temperature: String,
    pub packed_at: Timestamp,
    pub packed_by: String,
    pub courier: Option<String>,
    pub tracking: Option<String>,
    pub shipped_at: Option<Timestamp>,
    pub received_at: Option<Timestamp>,
    pub resulted_at: Option<Timestamp>,
    pub version: i64,
}

/// One step of a shipment (append-only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipmentEventRecord {
    pub id: i64,
    pub shipment_id: i64,
    pub at: Timestamp,
    pub by_user: String,
    /// `pack`, `ship`, `receive`, `results_back`.
    pub kind: String,
    pub from_status: String,
    pub to_status: String,
    /// JSON.
    pub details: String,
}

// ── turnaround time (issue 4) ──

/// One ordered test on a specimen the lab holds, with what turnaround time needs: the
/// order's priority and time, the specimen's milestones, and the test's TAT targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TatRow {
    pub order_test_id: i64,
    pub order_id: i64,
    pub test_code: String,
    pub test_status: String,
    pub accession: String,
    pub specimen_status: String,
    pub priority: String,
    pub ordered_at: Timestamp,
    pub collected_at: Option<Timestamp>,
    pub received_at: Option<Timestamp>,
    pub in_process_at: Option<Timestamp>,
    /// The first result was entered.
    pub resulted_at: Option<Timestamp>,
    /// The current result was verified (by a technologist or the rules).
    pub verified_at: Option<Timestamp>,
    /// The current result was released to the record.
    pub released_at: Option<Timestamp>,
}

/// A claimed idempotency key (`Idempotency-Key`), with the answer once the request ended.
#[derive(Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub id: i64,
    pub user_id: i64,
    pub key: String,
    /// SHA-256 of the request (method, path, body): a key reused for another request is
    /// refused.
    pub fingerprint: String,
    /// The holder of the claim; a stale claim is taken over by replacing it.
    pub claim_token: String,
    pub created_at: Timestamp,
    pub claimed_at: Timestamp,
    /// Set in the same transaction as a change the request committed.
    pub applied_at: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
    pub status: Option<i64>,
    pub content_type: Option<String>,
    pub body: Option<String>,
}

// ── Debug without patient data, passwords or tokens (see `redact`) ──

redacted_debug!(IdempotencyRecord {
    shown: [
        id,
        user_id,
        fingerprint,
        created_at,
        claimed_at,
        applied_at,
        completed_at,
        status,
        content_type,
    ],
    // The answer may show patient data; the key and token are the client's and the claim's.
    redacted: [key, claim_token, body],
});

redacted_debug!(UserRecord {
    shown: [
        id,
        username,
        display_name,
        role,
        created_at,
        password_changed_at,
        disabled_at
    ],
    redacted: [password_hash],
});

redacted_debug!(RoleGrantRecord {
    shown: [
        id,
        user_id,
        username,
        role,
        requested_by,
        requested_by_name,
        requested_at,
        status,
        decided_by,
        decided_by_name,
        decided_at,
    ],
    // Free text.
    redacted: [reason, decision_reason],
});

redacted_debug!(MfaRecord {
    shown: [
        user_id,
        enrolled_at,
        confirmed_at,
        last_step,
        recovery_codes_left
    ],
    redacted: [secret],
});

redacted_debug!(NewUser {
    shown: [username, display_name, role, created_at],
    redacted: [password_hash],
});

redacted_debug!(NewSession {
    shown: [user_id, created_at, expires_at],
    redacted: [token_hash],
});

redacted_debug!(PatientRecord {
    shown: [id, created_at, updated_at, merged_into],
    redacted: [
        mrn,
        family_name,
        given_name,
        middle_name,
        family_key,
        given_key,
        birth_date,
        sex,
        clinical_sex,
        birth_time,
        facility_ids,
        contact
    ],
});

redacted_debug!(PatientQuery {
    shown: [limit, ordering_provider],
    redacted: [mrn, birth_date, family_prefix, given_prefix],
});

redacted_debug!(PatientVersionRecord {
    shown: [id, patient_id, version, replaced_at, replaced_by],
    redacted: [
        family_name,
        given_name,
        middle_name,
        birth_date,
        sex,
        clinical_sex,
        birth_time,
        contact,
        reason
    ],
});

redacted_debug!(MergeRecord {
    shown: [
        id,
        survivor_id,
        merged_id,
        moved_order_ids,
        moved_specimen_ids,
        merged_at,
        merged_by,
        undone_at,
        undone_by
    ],
    redacted: [reason],
});

redacted_debug!(OrderRecord {
    shown: [
        id,
        patient_id,
        provider_id,
        location_id,
        priority,
        timed_at,
        status,
        created_at,
        created_by,
        cancelled_at,
        winged_collection_set
    ],
    redacted: [
        placer_order_number,
        clinical_notes,
        diagnosis_codes,
        cancel_reason
    ],
});

redacted_debug!(SpecimenEventRecord {
    shown: [
        id,
        specimen_id,
        at,
        actor_id,
        actor_name,
        kind,
        from_status,
        to_status,
        location
    ],
    redacted: [details],
});

redacted_debug!(ProblemRecord {
    shown: [
        id,
        specimen_id,
        accession,
        reason,
        opened_at,
        opened_by,
        resolved_at,
        resolved_by
    ],
    redacted: [comment, resolution],
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_ids_and_never_patient_data_or_secrets() {
        let t = Timestamp::UNIX_EPOCH;
        let patient = PatientRecord {
            id: 41,
            mrn: "MRN-SECRET".into(),
            family_name: "Okafor".into(),
            given_name: "Adaeze".into(),
            middle_name: Some("Nneka".into()),
            family_key: "OKAFOR".into(),
            given_key: "ADAEZE".into(),
            birth_date: "1980-02-29".into(),
            sex: "female".into(),
            clinical_sex: Some("female".into()),
            birth_time: None,
            facility_ids: r#"[{"system":"X","value":"FAC-77"}]"#.into(),
            contact: r#"{"phone":"555-0100"}"#.into(),
            created_at: t,
            updated_at: t,
            merged_into: Some(42),
        };
        let user = UserRecord {
            id: 7,
            username: "ana".into(),
            display_name: "Ana".into(),
            role: "technician".into(),
            password_hash: "$argon2id$v=19$secret".into(),
            created_at: t,
            password_changed_at: t,
            disabled_at: None,
        };
        let order = OrderRecord {
            id: 9,
            patient_id: 41,
            provider_id: 1,
            location_id: 2,
            priority: "stat".into(),
            timed_at: None,
            placer_order_number: Some("EMR-778".into()),
            clinical_notes: Some("on warfarin".into()),
            diagnosis_codes: r#"["E11.9"]"#.into(),
            status: "cancelled".into(),
            created_at: t,
            created_by: "ana".into(),
            cancelled_at: Some(t),
            cancel_reason: Some("Okafor discharged".into()),
            winged_collection_set: false,
        };
        let session = SessionAuth {
            session_id: 3,
            expires_at: t,
            last_seen_at: t,
            revoked_at: None,
            user: user.clone(),
        };
        let shown = format!("{patient:?} {user:?} {order:?} {session:?}");
        for secret in [
            "MRN-SECRET",
            "Okafor",
            "OKAFOR",
            "Adaeze",
            "Nneka",
            "1980-02-29",
            "female",
            "FAC-77",
            "555-0100",
            "argon2id",
            "EMR-778",
            "warfarin",
            "E11.9",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        for kept in [
            "id: 41",
            "merged_into: Some(42)",
            "id: 7",
            "username: \"ana\"",
            "patient_id: 41",
            "session_id: 3",
        ] {
            assert!(shown.contains(kept), "{kept} not in {shown}");
        }
        assert!(shown.contains("password_hash: <redacted>"), "{shown}");
    }
}

// ── results (issue 11) ──

/// A test's result rules: a JSON document (its shape belongs to the app), versioned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultRulesRecord {
    pub test_code: String,
    pub version: i64,
    pub definition: String,
    pub updated_at: Timestamp,
    pub updated_by: String,
}

/// One kept version of a test's result rules, with why it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultRuleVersionRecord {
    pub test_code: String,
    pub version: i64,
    pub definition: String,
    pub changed_at: Timestamp,
    pub changed_by: String,
    pub reason: String,
}

/// See [`crate::Store::entry_list_rows`].
#[derive(Clone, Default)]
pub struct EntryListRows {
    /// The running tests of the list's test codes in all.
    pub total: i64,
    /// The first of them, most urgent first, then the oldest tube.
    pub tests: Vec<TatRow>,
    /// The held results of those tests.
    pub held: Vec<ResultRecord>,
    /// Their tubes and patients.
    pub specimens: Vec<SpecimenRecord>,
    pub patients: Vec<PatientRecord>,
    /// Per test (in `tests`' order): the patient's latest released result of the same test
    /// collected before its tube (what the delta check compares with).
    pub previous: Vec<Option<ResultRecord>>,
}

/// See [`crate::Tx::result_batch_rows`].
#[derive(Clone, Default)]
pub struct ResultBatchRows {
    pub specimens: Vec<SpecimenRecord>,
    pub orders: Vec<OrderRecord>,
    pub tests: Vec<OrderTestRecord>,
    pub patients: Vec<PatientRecord>,
    pub results: Vec<ResultRecord>,
    pub dilutions: Vec<DilutionRecord>,
    /// The tubes' chain-of-custody events, spins and send-outs (their stability history and
    /// whether a test went to a reference laboratory).
    pub events: Vec<SpecimenEventRecord>,
    pub centrifugations: Vec<CentrifugationRecord>,
    pub send_outs: Vec<SendOutRecord>,
    /// The tubes poured from another (their history includes their parent's).
    pub aliquots: Vec<i64>,
}

/// One new result as [`crate::Tx::insert_new_results`] stores it: the result, its first
/// version and critical call (their `result_id` is filled in when stored), and the status its
/// ordered test moves to.
#[derive(Clone)]
pub struct NewResultRows {
    pub result: ResultRecord,
    pub version: ResultVersionRecord,
    pub test_status: String,
    pub critical_call: Option<CriticalCallRecord>,
}

/// The current version of one ordered test's result. `body` is the app's JSON (value as
/// reported, units, flags, interval, hold reasons, instrument data).
#[derive(Clone, PartialEq, Eq)]
pub struct ResultRecord {
    pub id: i64,
    pub order_test_id: i64,
    pub order_id: i64,
    pub patient_id: i64,
    pub specimen_id: i64,
    pub test_code: String,
    /// `held`, `released`, `corrected` (released again after a correction), `not_performed`.
    pub status: String,
    pub version: i64,
    pub collected_at: Option<Timestamp>,
    pub resulted_at: Timestamp,
    pub verified_at: Option<Timestamp>,
    pub released_at: Option<Timestamp>,
    pub body: String,
    pub updated_at: Timestamp,
    /// The instrument it was measured on (the lab's code, as posted), for QC.
    pub instrument: Option<String>,
}

redacted_debug!(ResultRecord {
    shown: [
        id,
        order_test_id,
        order_id,
        patient_id,
        specimen_id,
        test_code,
        status,
        version,
        collected_at,
        resulted_at,
        verified_at,
        released_at,
        updated_at,
        instrument
    ],
    redacted: [body],
});

/// One version of a result, kept for ever.
#[derive(Clone, PartialEq, Eq)]
pub struct ResultVersionRecord {
    pub result_id: i64,
    pub version: i64,
    pub status: String,
    pub body: String,
    pub reason: Option<String>,
    pub at: Timestamp,
    pub by_user: String,
}

redacted_debug!(ResultVersionRecord {
    shown: [result_id, version, status, at, by_user],
    redacted: [body, reason],
});

/// A critical result's call: opened when the result is critical, documented once.
#[derive(Clone, PartialEq, Eq)]
pub struct CriticalCallRecord {
    pub id: i64,
    pub result_id: i64,
    pub result_version: i64,
    pub opened_at: Timestamp,
    pub due_at: Timestamp,
    pub called_at: Option<Timestamp>,
    pub called_by: Option<String>,
    pub notified_name: Option<String>,
    pub notified_role: Option<String>,
    pub read_back: Option<bool>,
}

redacted_debug!(CriticalCallRecord {
    shown: [
        id,
        result_id,
        result_version,
        opened_at,
        due_at,
        called_at,
        called_by,
        notified_role,
        read_back
    ],
    redacted: [notified_name],
});

/// A corrected result's notice to the ordering provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultNoticeRecord {
    pub id: i64,
    pub result_id: i64,
    pub result_version: i64,
    pub provider_id: i64,
    pub created_at: Timestamp,
    pub acknowledged_at: Option<Timestamp>,
    pub acknowledged_by: Option<String>,
}

/// An instrument (or middleware) and how its messages name it (issue 12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstrumentRecord {
    pub id: i64,
    pub code: String,
    pub name: String,
    /// `hl7` or `astm`.
    pub protocol: String,
    /// HL7 MSH-3 namespace id, or ASTM H-5 sender name.
    pub sender: String,
    pub department: String,
    pub version: i64,
    pub updated_at: Timestamp,
    pub updated_by: String,
    pub retired_at: Option<Timestamp>,
    /// `host:port` when the laboratory system connects out to the instrument.
    pub connect_to: Option<String>,
}

/// One of an instrument's own test codes and the catalogue test it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstrumentTestCodeRecord {
    pub instrument_id: i64,
    pub code: String,
    pub test_code: String,
    /// The unit the instrument reports in when its messages leave it out.
    pub units: Option<String>,
}

/// An inbound interface message with the acknowledgement it was answered with.
#[derive(Clone, PartialEq, Eq)]
pub struct InterfaceMessageRecord {
    pub id: i64,
    /// `hl7` or `astm`.
    pub protocol: String,
    /// The instrument's code, or the sender as named when it is not registered.
    pub connection: String,
    pub sender: String,
    pub control_id: String,
    pub message_type: String,
    pub received_at: Timestamp,
    /// The message as received.
    pub raw: Vec<u8>,
    /// `accepted`, `error` (in the interface error queue) or `replayed`.
    pub status: String,
    pub ack: Vec<u8>,
    /// JSON list of `{"location", "code", "message"}`.
    pub errors: String,
    /// Results posted (or found already stored) from it.
    pub posted: i64,
    pub updated_at: Timestamp,
    pub updated_by: String,
}

redacted_debug!(InterfaceMessageRecord {
    shown: [
        id,
        protocol,
        connection,
        message_type,
        received_at,
        status,
        posted,
        updated_at,
        updated_by,
    ],
    // The message and its acknowledgement hold patient data; the sender's control id and
    // name are the sender's free text, and the errors may quote values.
    redacted: [sender, control_id, raw, ack, errors],
});

/// An EMR (or other system) that released and corrected results are sent to over MLLP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationRecord {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub host: String,
    pub port: i64,
    pub version: i64,
    pub created_at: Timestamp,
    pub created_by: String,
    pub updated_at: Timestamp,
    pub updated_by: String,
    pub retired_at: Option<Timestamp>,
}

/// One outbound message waiting for, or done with, its destination.
#[derive(Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    pub id: i64,
    pub destination_id: i64,
    pub order_id: i64,
    pub result_id: i64,
    pub result_version: i64,
    /// MSH-10 of the message: the acknowledgement must name it in MSA-2.
    pub control_id: String,
    /// What to send, protocol-neutral JSON (patient, order, results).
    pub document: String,
    /// `pending`, `sent`, `failed` (refused too often: waits for an analyst) or `skipped`.
    pub status: String,
    pub attempts: i64,
    /// Attempts the destination refused (AE/AR/CE/CR), as opposed to transport failures.
    pub refusals: i64,
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    /// The message as last sent.
    pub message: Option<Vec<u8>>,
    /// The acknowledgement that answered it.
    pub ack: Option<Vec<u8>>,
    pub created_at: Timestamp,
    pub sent_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    pub updated_by: String,
}

redacted_debug!(OutboxRecord {
    shown: [
        id,
        destination_id,
        order_id,
        result_id,
        result_version,
        control_id,
        status,
        attempts,
        refusals,
        next_attempt_at,
        created_at,
        sent_at,
        updated_at,
        updated_by,
    ],
    // The document, the message and the acknowledgement hold patient data; the destination's
    // error text may quote them.
    redacted: [document, message, ack, last_error],
});

// ── quality control (issue 13) ──

/// One level of one control material, by lot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QcLotRecord {
    pub id: i64,
    pub material: String,
    pub manufacturer: String,
    pub lot: String,
    pub level: i64,
    /// The last day it may be used (ISO date, the lab's time zone).
    pub expires_on: String,
    pub created_at: Timestamp,
    pub created_by: String,
}

/// A lot's target mean and SD on one instrument and test, from `effective_at` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QcTargetRecord {
    pub id: i64,
    pub lot_id: i64,
    pub instrument_id: i64,
    pub test_code: String,
    /// Exact decimals as text.
    pub mean: String,
    pub sd: String,
    /// `manufacturer` or `lab`.
    pub source: String,
    pub points: Option<i64>,
    pub effective_at: Timestamp,
    pub set_at: Timestamp,
    pub set_by: String,
    pub reason: Option<String>,
}

/// How QC of one instrument and test is judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QcConfigRecord {
    pub instrument_id: i64,
    pub test_code: String,
    /// Rule codes, comma-separated (`1-2s,1-3s,2-2s`).
    pub rules: String,
    /// `classic` or `modern`.
    pub mode: String,
    pub calibration_interval_hours: Option<i64>,
    pub tea_pct: Option<String>,
    pub bias_pct: Option<String>,
    pub version: i64,
    pub updated_at: Timestamp,
    pub updated_by: String,
}

/// One control value of a run, with the mean and SD it was judged with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QcResultRecord {
    pub lot_id: i64,
    pub level: i64,
    pub value: String,
    pub mean: String,
    pub sd: String,
}

/// The controls of one instrument and test measured together, and the verdict on them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QcRunRecord {
    pub id: i64,
    pub instrument_id: i64,
    pub test_code: String,
    pub run_at: Timestamp,
    /// `accepted`, `warning` or `rejected`.
    pub status: String,
    /// JSON: the findings (rule, scope, levels, description).
    pub findings: String,
    pub rules: String,
    pub mode: String,
    /// `manual`, `hl7` or `astm`.
    pub source: String,
    pub entered_at: Timestamp,
    pub entered_by: String,
    pub evaluated_at: Timestamp,
    /// The instrument message it came in (`protocol:sender:control id`).
    pub message_key: Option<String>,
    /// By level.
    pub controls: Vec<QcResultRecord>,
}

/// A lock on an instrument and test opened by a rejected run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QcLockRecord {
    pub id: i64,
    pub instrument_id: i64,
    pub test_code: String,
    pub rejected_run_id: i64,
    pub locked_at: Timestamp,
    /// The last accepted run before the rejection.
    pub since: Option<Timestamp>,
    pub lifted_at: Option<Timestamp>,
    pub lifting_run_id: Option<i64>,
}

/// What was done about a rejected run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QcCorrectiveActionRecord {
    pub id: i64,
    pub lock_id: i64,
    pub action: String,
    pub reason: String,
    pub performed_at: Timestamp,
    pub performed_by: String,
}

/// A calibration, or a calibration verification, of an instrument and test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QcCalibrationRecord {
    pub id: i64,
    pub instrument_id: i64,
    pub test_code: String,
    /// `calibration` or `verification`.
    pub kind: String,
    pub calibrator_lot: String,
    /// `passed` or `failed`.
    pub outcome: String,
    pub performed_at: Timestamp,
    pub performed_by: String,
    pub notes: Option<String>,
}

/// Which runs of an instrument and test: all between two times, or the last `n` before a
/// point, or every one after a point (a point is a time and an id, the order of runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunRange {
    Between {
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        limit: i64,
    },
    LastBefore {
        at: Timestamp,
        id: i64,
        limit: i64,
    },
    After {
        at: Timestamp,
        id: i64,
    },
}

/// A search over a patient's released results (FHIR Observation search): newest first by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasedResultQuery<'a> {
    pub patient_id: i64,
    /// Any of these test codes; empty = every test.
    pub test_codes: &'a [String],
    /// Collected at or after.
    pub collected_from: Option<Timestamp>,
    /// Collected before.
    pub collected_before: Option<Timestamp>,
    /// Keyset: only results with a smaller id.
    pub before_id: Option<i64>,
    /// Only this result.
    pub id: Option<i64>,
    pub limit: i64,
}

/// A released result with the accession number and specimen type of its tube.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasedResultRecord {
    pub result: ResultRecord,
    pub accession: String,
    pub specimen_type: String,
}

/// One issued version of an order's report (issue 14): the whole content it was rendered from.
#[derive(Clone, PartialEq, Eq)]
pub struct ReportVersionRecord {
    pub id: i64,
    pub order_id: i64,
    pub version: i64,
    /// `preliminary`, `final` or `corrected`.
    pub status: String,
    /// SHA-256 (hex) of the report's content without its issue details: a new version is
    /// issued only when this changes.
    pub content_sha256: String,
    /// The JSON the PDF is rendered from (display text, patient data).
    pub document: String,
    pub issued_at: Timestamp,
    pub issued_by: String,
}

redacted_debug!(ReportVersionRecord {
    shown: [
        id,
        order_id,
        version,
        status,
        content_sha256,
        issued_at,
        issued_by
    ],
    redacted: [document],
});
