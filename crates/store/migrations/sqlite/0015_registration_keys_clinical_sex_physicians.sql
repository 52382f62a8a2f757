-- Issue 10 items 15-17.
-- Names are compared through a stored match key (the lower-cased Unicode TS #39 confusable
-- skeleton of the name, `aliquot_domain::patient::name_match_key`), indexed for exact and
-- prefix search. The skeleton cannot be computed in SQL, so the store writes it with every
-- patient it writes and, at open, fills the rows this migration leaves NULL (a derived key,
-- not a change of patient data).
ALTER TABLE patients ADD COLUMN family_match TEXT;
ALTER TABLE patients ADD COLUMN given_match TEXT;
CREATE INDEX patients_match ON patients (family_match, given_match);

-- HL7 Gender Harmony sex parameter for clinical use (female, male, specified, unknown) and an
-- optional local time of birth (HH:MM), beside the administrative sex; versioned like the rest
-- of the demographics.
ALTER TABLE patients ADD COLUMN clinical_sex TEXT;
ALTER TABLE patients ADD COLUMN birth_time TEXT;
ALTER TABLE patient_versions ADD COLUMN clinical_sex TEXT;
ALTER TABLE patient_versions ADD COLUMN birth_time TEXT;

-- A user may be linked to a provider (a physician sees the patients of their own orders).
ALTER TABLE users ADD COLUMN provider_id INTEGER REFERENCES providers (id);
CREATE INDEX orders_provider_patient ON orders (provider_id, patient_id);
