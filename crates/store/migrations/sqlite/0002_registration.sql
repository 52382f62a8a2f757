-- Registration and ordering: patients (with merges), providers, client locations, the test
-- catalogue (versioned), orders, their tests, and specimens (one per planned tube, each with
-- its accession number). Timestamps are UTC epoch microseconds; JSON is TEXT; dates are
-- ISO 8601 TEXT (YYYY-MM-DD), which sorts and compares correctly.

CREATE TABLE patients (
    id INTEGER PRIMARY KEY,
    mrn TEXT NOT NULL UNIQUE,
    family_name TEXT NOT NULL,
    given_name TEXT NOT NULL,
    middle_name TEXT,
    family_key TEXT NOT NULL,
    given_key TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    sex TEXT NOT NULL,
    facility_ids TEXT NOT NULL,
    contact TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    merged_into INTEGER REFERENCES patients (id)
);
CREATE INDEX patients_name_dob ON patients (family_key, birth_date);
CREATE INDEX patients_dob ON patients (birth_date);

CREATE TABLE patient_merges (
    id INTEGER PRIMARY KEY,
    survivor_id INTEGER NOT NULL REFERENCES patients (id),
    merged_id INTEGER NOT NULL REFERENCES patients (id),
    moved_order_ids TEXT NOT NULL,
    moved_specimen_ids TEXT NOT NULL,
    reason TEXT NOT NULL,
    merged_at INTEGER NOT NULL,
    merged_by TEXT NOT NULL,
    undone_at INTEGER,
    undone_by TEXT
);
CREATE INDEX patient_merges_merged ON patient_merges (merged_id);

CREATE TABLE providers (
    id INTEGER PRIMARY KEY,
    npi TEXT NOT NULL UNIQUE,
    family_name TEXT NOT NULL,
    given_name TEXT NOT NULL,
    phone TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE locations (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    address TEXT NOT NULL,
    phone TEXT,
    contact_name TEXT,
    created_at INTEGER NOT NULL
);

CREATE TABLE catalog_tests (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    loinc TEXT,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    definition TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    retired_at INTEGER
);
CREATE INDEX catalog_tests_loinc ON catalog_tests (loinc);

CREATE TABLE catalog_test_versions (
    test_id INTEGER NOT NULL REFERENCES catalog_tests (id),
    version INTEGER NOT NULL,
    definition TEXT NOT NULL,
    changed_at INTEGER NOT NULL,
    changed_by TEXT NOT NULL,
    PRIMARY KEY (test_id, version)
);

CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients (id),
    provider_id INTEGER NOT NULL REFERENCES providers (id),
    location_id INTEGER NOT NULL REFERENCES locations (id),
    priority TEXT NOT NULL,
    timed_at INTEGER,
    placer_order_number TEXT,
    clinical_notes TEXT,
    diagnosis_codes TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    cancelled_at INTEGER,
    cancel_reason TEXT
);
CREATE INDEX orders_placer ON orders (placer_order_number);
CREATE INDEX orders_patient ON orders (patient_id);

CREATE TABLE specimens (
    id INTEGER PRIMARY KEY,
    accession TEXT NOT NULL UNIQUE,
    order_id INTEGER NOT NULL REFERENCES orders (id),
    patient_id INTEGER NOT NULL REFERENCES patients (id),
    container TEXT NOT NULL,
    specimen_type TEXT NOT NULL,
    draw_rank INTEGER NOT NULL,
    status TEXT NOT NULL,
    volume_ul INTEGER NOT NULL,
    capacity_ul INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    collected_at INTEGER,
    temperature TEXT
);
CREATE INDEX specimens_order ON specimens (order_id);
CREATE INDEX specimens_patient ON specimens (patient_id);

CREATE TABLE order_tests (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders (id),
    test_code TEXT NOT NULL,
    panel_code TEXT,
    specimen_id INTEGER NOT NULL REFERENCES specimens (id),
    status TEXT NOT NULL,
    added_at INTEGER NOT NULL,
    UNIQUE (order_id, test_code)
);
CREATE INDEX order_tests_specimen ON order_tests (specimen_id);

-- Scanned requisitions: the file lives outside the database, content-addressed by SHA-256.
CREATE TABLE order_scans (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders (id),
    sha256 TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX order_scans_order ON order_scans (order_id);

-- Identifiers assigned by other facilities, for locating a patient by them (also kept in
-- patients.facility_ids for display). One patient per (system, value).
CREATE TABLE patient_identifiers (
    system TEXT NOT NULL,
    value TEXT NOT NULL,
    patient_id INTEGER NOT NULL REFERENCES patients (id),
    PRIMARY KEY (system, value)
);
CREATE INDEX patient_identifiers_patient ON patient_identifiers (patient_id);
