//! Queries for registration and ordering, written once and stamped for each backend by
//! [`reg_queries!`] as free functions over any executor (the read pool or a transaction), so
//! the `Store` and `Tx` methods share one SQL text.

macro_rules! reg_queries {
    ($m:ident, $db:ty) => {
        pub(crate) mod $m {
            use jiff::Timestamp;
            use sqlx::Executor;

            use crate::backend::{opt_ts, ts, us};
            use crate::records::*;
            use crate::{StoreError, StoreResult};

            type Db = $db;

            macro_rules! patient_cols {
                () => {
                    "id, mrn, family_name, given_name, middle_name, family_key, \
                given_key, birth_date, sex, facility_ids, contact, created_at, updated_at, merged_into"
                };
            }

            #[derive(sqlx::FromRow)]
            struct PatientRow {
                id: i64,
                mrn: String,
                family_name: String,
                given_name: String,
                middle_name: Option<String>,
                family_key: String,
                given_key: String,
                birth_date: String,
                sex: String,
                facility_ids: String,
                contact: String,
                created_at: i64,
                updated_at: i64,
                merged_into: Option<i64>,
            }

            fn patient(r: PatientRow) -> StoreResult<PatientRecord> {
                Ok(PatientRecord {
                    id: r.id,
                    mrn: r.mrn,
                    family_name: r.family_name,
                    given_name: r.given_name,
                    middle_name: r.middle_name,
                    family_key: r.family_key,
                    given_key: r.given_key,
                    birth_date: r.birth_date,
                    sex: r.sex,
                    facility_ids: r.facility_ids,
                    contact: r.contact,
                    created_at: ts(r.created_at)?,
                    updated_at: ts(r.updated_at)?,
                    merged_into: r.merged_into,
                })
            }

            pub async fn patient_by_id<'e, E: Executor<'e, Database = Db>>(
                e: E,
                id: i64,
            ) -> StoreResult<Option<PatientRecord>> {
                sqlx::query_as::<_, PatientRow>(concat!("SELECT ", patient_cols!(), " FROM patients WHERE id = $1"))
                .bind(id)
                .fetch_optional(e)
                .await?
                .map(patient)
                .transpose()
            }

            pub async fn patient_by_mrn<'e, E: Executor<'e, Database = Db>>(
                e: E,
                mrn: &str,
            ) -> StoreResult<Option<PatientRecord>> {
                sqlx::query_as::<_, PatientRow>(concat!("SELECT ", patient_cols!(), " FROM patients WHERE mrn = $1"))
                .bind(mrn)
                .fetch_optional(e)
                .await?
                .map(patient)
                .transpose()
            }

            pub async fn insert_patient_identifier<'e, E: Executor<'e, Database = Db>>(
                e: E,
                patient_id: i64,
                system: &str,
                value: &str,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO patient_identifiers (system, value, patient_id) VALUES ($1, $2, $3)",
                )
                .bind(system)
                .bind(value)
                .bind(patient_id)
                .execute(e)
                .await?;
                Ok(())
            }

            pub async fn patient_by_identifier<'e, E: Executor<'e, Database = Db>>(
                e: E,
                system: &str,
                value: &str,
            ) -> StoreResult<Option<PatientRecord>> {
                sqlx::query_as::<_, PatientRow>(concat!(
                    "SELECT ",
                    patient_cols!(),
                    " FROM patients WHERE id = (SELECT patient_id FROM patient_identifiers \
                     WHERE system = $1 AND value = $2)"
                ))
                .bind(system)
                .bind(value)
                .fetch_optional(e)
                .await?
                .map(patient)
                .transpose()
            }

            /// Live (not merged-away) patients born on one of `dates`.
            pub async fn patients_born_on<'e, E: Executor<'e, Database = Db>>(
                e: E,
                dates: &[String],
            ) -> StoreResult<Vec<PatientRecord>> {
                let a = dates.first().cloned().unwrap_or_default();
                let b = dates.get(1).cloned().unwrap_or_else(|| a.clone());
                sqlx::query_as::<_, PatientRow>(concat!("SELECT ", patient_cols!(), " FROM patients WHERE birth_date IN ($1, $2) \
                     AND merged_into IS NULL ORDER BY id LIMIT 500"))
                .bind(a)
                .bind(b)
                .fetch_all(e)
                .await?
                .into_iter()
                .map(patient)
                .collect()
            }

            pub async fn search_patients<'e, E: Executor<'e, Database = Db>>(
                e: E,
                q: &PatientQuery,
            ) -> StoreResult<Vec<PatientRecord>> {
                // Only the given criteria go into the SQL, so that the planner can use the
                // MRN, name-key/birth-date or birth-date index (a "$1 IS NULL OR ..." form
                // would defeat it under a generic plan).
                let mut qb = sqlx::QueryBuilder::<Db>::new(concat!(
                    "SELECT ",
                    patient_cols!(),
                    " FROM patients WHERE merged_into IS NULL"
                ));
                for (column, value) in [
                    (" AND mrn = ", &q.mrn),
                    (" AND birth_date = ", &q.birth_date),
                    (" AND family_key = ", &q.family_key),
                    (" AND given_key = ", &q.given_key),
                ] {
                    if let Some(v) = value {
                        qb.push(column).push_bind(v.clone());
                    }
                }
                qb.push(" ORDER BY family_key, given_key, id LIMIT ").push_bind(q.limit);
                qb.build_query_as::<PatientRow>()
                    .fetch_all(e)
                    .await?
                    .into_iter()
                    .map(patient)
                    .collect()
            }

            pub async fn insert_patient<'e, E: Executor<'e, Database = Db>>(
                e: E,
                p: &PatientRecord,
            ) -> StoreResult<i64> {
                let (id,) = sqlx::query_as::<_, (i64,)>(
                    "INSERT INTO patients (mrn, family_name, given_name, middle_name, family_key, \
                     given_key, birth_date, sex, facility_ids, contact, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING id",
                )
                .bind(&p.mrn)
                .bind(&p.family_name)
                .bind(&p.given_name)
                .bind(&p.middle_name)
                .bind(&p.family_key)
                .bind(&p.given_key)
                .bind(&p.birth_date)
                .bind(&p.sex)
                .bind(&p.facility_ids)
                .bind(&p.contact)
                .bind(us(p.created_at))
                .fetch_one(e)
                .await?;
                Ok(id)
            }

            pub async fn set_merged_into<'e, E: Executor<'e, Database = Db>>(
                e: E,
                id: i64,
                into: Option<i64>,
                at: Timestamp,
            ) -> StoreResult<()> {
                let r = sqlx::query(
                    "UPDATE patients SET merged_into = $1, updated_at = $2 WHERE id = $3",
                )
                .bind(into)
                .bind(us(at))
                .bind(id)
                .execute(e)
                .await?;
                if r.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }

            pub async fn order_ids_of_patient<'e, E: Executor<'e, Database = Db>>(
                e: E,
                patient_id: i64,
            ) -> StoreResult<Vec<i64>> {
                Ok(sqlx::query_as::<_, (i64,)>(
                    "SELECT id FROM orders WHERE patient_id = $1 ORDER BY id",
                )
                .bind(patient_id)
                .fetch_all(e)
                .await?
                .into_iter()
                .map(|r| r.0)
                .collect())
            }

            pub async fn specimen_ids_of_patient<'e, E: Executor<'e, Database = Db>>(
                e: E,
                patient_id: i64,
            ) -> StoreResult<Vec<i64>> {
                Ok(sqlx::query_as::<_, (i64,)>(
                    "SELECT id FROM specimens WHERE patient_id = $1 ORDER BY id",
                )
                .bind(patient_id)
                .fetch_all(e)
                .await?
                .into_iter()
                .map(|r| r.0)
                .collect())
            }

            /// Moves one order (`table` = orders) or specimen to another patient, only if it
            /// still belongs to `from`. Returns whether it moved.
            pub async fn move_row<'e, E: Executor<'e, Database = Db>>(
                e: E,
                specimen: bool,
                id: i64,
                from: i64,
                to: i64,
            ) -> StoreResult<bool> {
                let sql = if specimen {
                    "UPDATE specimens SET patient_id = $1 WHERE id = $2 AND patient_id = $3"
                } else {
                    "UPDATE orders SET patient_id = $1 WHERE id = $2 AND patient_id = $3"
                };
                let r = sqlx::query(sql).bind(to).bind(id).bind(from).execute(e).await?;
                Ok(r.rows_affected() == 1)
            }

            fn ids_json(ids: &[i64]) -> String {
                serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
            }

            fn ids_parse(s: &str) -> StoreResult<Vec<i64>> {
                serde_json::from_str(s).map_err(|e| StoreError::Database(format!("ids: {e}")))
            }

            pub async fn insert_merge<'e, E: Executor<'e, Database = Db>>(
                e: E,
                m: &MergeRecord,
            ) -> StoreResult<i64> {
                let (id,) = sqlx::query_as::<_, (i64,)>(
                    "INSERT INTO patient_merges (survivor_id, merged_id, moved_order_ids, \
                     moved_specimen_ids, reason, merged_at, merged_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                )
                .bind(m.survivor_id)
                .bind(m.merged_id)
                .bind(ids_json(&m.moved_order_ids))
                .bind(ids_json(&m.moved_specimen_ids))
                .bind(&m.reason)
                .bind(us(m.merged_at))
                .bind(&m.merged_by)
                .fetch_one(e)
                .await?;
                Ok(id)
            }

            type MergeRow = (i64, i64, i64, String, String, String, i64, String, Option<i64>, Option<String>);

            pub async fn merge_by_id<'e, E: Executor<'e, Database = Db>>(
                e: E,
                id: i64,
            ) -> StoreResult<Option<MergeRecord>> {
                sqlx::query_as::<_, MergeRow>(
                    "SELECT id, survivor_id, merged_id, moved_order_ids, moved_specimen_ids, \
                     reason, merged_at, merged_by, undone_at, undone_by \
                     FROM patient_merges WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(e)
                .await?
                .map(|r| {
                    Ok(MergeRecord {
                        id: r.0,
                        survivor_id: r.1,
                        merged_id: r.2,
                        moved_order_ids: ids_parse(&r.3)?,
                        moved_specimen_ids: ids_parse(&r.4)?,
                        reason: r.5,
                        merged_at: ts(r.6)?,
                        merged_by: r.7,
                        undone_at: opt_ts(r.8)?,
                        undone_by: r.9,
                    })
                })
                .transpose()
            }

            pub async fn set_merge_undone<'e, E: Executor<'e, Database = Db>>(
                e: E,
                id: i64,
                at: Timestamp,
                by: &str,
            ) -> StoreResult<bool> {
                let r = sqlx::query(
                    "UPDATE patient_merges SET undone_at = $1, undone_by = $2 \
                     WHERE id = $3 AND undone_at IS NULL",
                )
                .bind(us(at))
                .bind(by)
                .bind(id)
                .execute(e)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            type ScanRow = (i64, i64, String, String, i64, i64, String);

            fn scan(r: ScanRow) -> StoreResult<ScanRecord> {
                Ok(ScanRecord {
                    id: r.0,
                    order_id: r.1,
                    sha256: r.2,
                    media_type: r.3,
                    size_bytes: r.4,
                    created_at: ts(r.5)?,
                    created_by: r.6,
                })
            }

            pub async fn insert_scan<'e, E: Executor<'e, Database = Db>>(
                e: E,
                s: &ScanRecord,
            ) -> StoreResult<i64> {
                let (id,) = sqlx::query_as::<_, (i64,)>(
                    "INSERT INTO order_scans (order_id, sha256, media_type, size_bytes, created_at, \
                     created_by) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                )
                .bind(s.order_id)
                .bind(&s.sha256)
                .bind(&s.media_type)
                .bind(s.size_bytes)
                .bind(us(s.created_at))
                .bind(&s.created_by)
                .fetch_one(e)
                .await?;
                Ok(id)
            }

            pub async fn scan_by_id<'e, E: Executor<'e, Database = Db>>(
                e: E,
                id: i64,
            ) -> StoreResult<Option<ScanRecord>> {
                sqlx::query_as::<_, ScanRow>(
                    "SELECT id, order_id, sha256, media_type, size_bytes, created_at, created_by \
                     FROM order_scans WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(e)
                .await?
                .map(scan)
                .transpose()
            }

            pub async fn scans_of_order<'e, E: Executor<'e, Database = Db>>(
                e: E,
                order_id: i64,
            ) -> StoreResult<Vec<ScanRecord>> {
                sqlx::query_as::<_, ScanRow>(
                    "SELECT id, order_id, sha256, media_type, size_bytes, created_at, created_by \
                     FROM order_scans WHERE order_id = $1 ORDER BY id",
                )
                .bind(order_id)
                .fetch_all(e)
                .await?
                .into_iter()
                .map(scan)
                .collect()
            }

            /// Multi-row insert of patients (benchmark seeding only, through `seed::BenchSeeder`:
            /// no audit; not reachable from `Store` or `Tx`).
            pub async fn bulk_insert_patients<'e, E: Executor<'e, Database = Db>>(
                e: E,
                rows: &[PatientRecord],
            ) -> StoreResult<()> {
                if rows.is_empty() {
                    return Ok(());
                }
                let mut qb = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO patients (mrn, family_name, given_name, middle_name, family_key, \
                     given_key, birth_date, sex, facility_ids, contact, created_at, updated_at) ",
                );
                qb.push_values(rows, |mut b, p| {
                    b.push_bind(p.mrn.clone())
                        .push_bind(p.family_name.clone())
                        .push_bind(p.given_name.clone())
                        .push_bind(p.middle_name.clone())
                        .push_bind(p.family_key.clone())
                        .push_bind(p.given_key.clone())
                        .push_bind(p.birth_date.clone())
                        .push_bind(p.sex.clone())
                        .push_bind(p.facility_ids.clone())
                        .push_bind(p.contact.clone())
                        .push_bind(us(p.created_at))
                        .push_bind(us(p.updated_at));
                });
                qb.build().execute(e).await?;
                Ok(())
            }

            pub async fn insert_access<'e, E: Executor<'e, Database = Db>>(
                e: E,
                a: &AccessEntry,
            ) -> StoreResult<()> {
                let ids = serde_json::to_string(&a.patient_ids)
                    .map_err(|err| StoreError::Database(err.to_string()))?;
                sqlx::query(
                    "INSERT INTO access_log (occurred_at, actor_id, actor_name, source, action, \
                     entity_type, entity_id, patient_ids) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(us(a.at))
                .bind(a.actor_id)
                .bind(&a.actor_name)
                .bind(&a.source)
                .bind(&a.action)
                .bind(&a.entity_type)
                .bind(&a.entity_id)
                .bind(ids)
                .execute(e)
                .await?;
                Ok(())
            }

            // ---- providers and locations

            type ProviderRow = (i64, String, String, String, String, i64);

            fn provider(r: ProviderRow) -> StoreResult<ProviderRecord> {
                Ok(ProviderRecord {
                    id: r.0,
                    npi: r.1,
                    family_name: r.2,
                    given_name: r.3,
                    phone: r.4,
                    created_at: ts(r.5)?,
                })
            }

            pub async fn insert_provider<'e, E: Executor<'e, Database = Db>>(
                e: E,
                p: &ProviderRecord,
            ) -> StoreResult<i64> {
                let (id,) = sqlx::query_as::<_, (i64,)>(
                    "INSERT INTO providers (npi, family_name, given_name, phone, created_at) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                )
                .bind(&p.npi)
                .bind(&p.family_name)
                .bind(&p.given_name)
                .bind(&p.phone)
                .bind(us(p.created_at))
                .fetch_one(e)
                .await?;
                Ok(id)
            }

            pub async fn provider_by_id<'e, E: Executor<'e, Database = Db>>(
                e: E,
                id: i64,
            ) -> StoreResult<Option<ProviderRecord>> {
                sqlx::query_as::<_, ProviderRow>(
                    "SELECT id, npi, family_name, given_name, phone, created_at \
                     FROM providers WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(e)
                .await?
                .map(provider)
                .transpose()
            }

            pub async fn list_providers<'e, E: Executor<'e, Database = Db>>(
                e: E,
            ) -> StoreResult<Vec<ProviderRecord>> {
                sqlx::query_as::<_, ProviderRow>(
                    "SELECT id, npi, family_name, given_name, phone, created_at \
                     FROM providers ORDER BY family_name, given_name, id",
                )
                .fetch_all(e)
                .await?
                .into_iter()
                .map(provider)
                .collect()
            }

            type LocationRow = (i64, String, String, String, String, Option<String>, Option<String>, i64);

            fn location(r: LocationRow) -> StoreResult<LocationRecord> {
                Ok(LocationRecord {
                    id: r.0,
                    code: r.1,
                    name: r.2,
                    kind: r.3,
                    address: r.4,
                    phone: r.5,
                    contact_name: r.6,
                    created_at: ts(r.7)?,
                })
            }

            pub async fn insert_location<'e, E: Executor<'e, Database = Db>>(
                e: E,
                l: &LocationRecord,
            ) -> StoreResult<i64> {
                let (id,) = sqlx::query_as::<_, (i64,)>(
                    "INSERT INTO locations (code, name, kind, address, phone, contact_name, \
                     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                )
                .bind(&l.code)
                .bind(&l.name)
                .bind(&l.kind)
                .bind(&l.address)
                .bind(&l.phone)
                .bind(&l.contact_name)
                .bind(us(l.created_at))
                .fetch_one(e)
                .await?;
                Ok(id)
            }

            pub async fn location_by_id<'e, E: Executor<'e, Database = Db>>(
                e: E,
                id: i64,
            ) -> StoreResult<Option<LocationRecord>> {
                sqlx::query_as::<_, LocationRow>(
                    "SELECT id, code, name, kind, address, phone, contact_name, created_at \
                     FROM locations WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(e)
                .await?
                .map(location)
                .transpose()
            }

            pub async fn list_locations<'e, E: Executor<'e, Database = Db>>(
                e: E,
            ) -> StoreResult<Vec<LocationRecord>> {
                sqlx::query_as::<_, LocationRow>(
                    "SELECT id, code, name, kind, address, phone, contact_name, created_at \
                     FROM locations ORDER BY code",
                )
                .fetch_all(e)
                .await?
                .into_iter()
                .map(location)
                .collect()
            }

            // ---- catalogue

            type CatalogRow = (i64, String, Option<String>, String, String, i64, String, i64, Option<i64>);
            macro_rules! catalog_cols {
                () => {
                    "id, code, loinc, kind, name, version, definition, updated_at, retired_at"
                };
            }

            fn catalog(r: CatalogRow) -> StoreResult<CatalogTestRecord> {
                Ok(CatalogTestRecord {
                    id: r.0,
                    code: r.1,
                    loinc: r.2,
                    kind: r.3,
                    name: r.4,
                    version: r.5,
                    definition: r.6,
                    updated_at: ts(r.7)?,
                    retired_at: opt_ts(r.8)?,
                })
            }

            pub async fn list_catalog<'e, E: Executor<'e, Database = Db>>(
                e: E,
                include_retired: bool,
            ) -> StoreResult<Vec<CatalogTestRecord>> {
                sqlx::query_as::<_, CatalogRow>(concat!("SELECT ", catalog_cols!(), " FROM catalog_tests \
                     WHERE $1 = 1 OR retired_at IS NULL ORDER BY code"))
                .bind(i64::from(include_retired))
                .fetch_all(e)
                .await?
                .into_iter()
                .map(catalog)
                .collect()
            }

            /// By local code, or else by LOINC code (the active entry first).
            pub async fn catalog_by_code<'e, E: Executor<'e, Database = Db>>(
                e: E,
                code: &str,
            ) -> StoreResult<Option<CatalogTestRecord>> {
                sqlx::query_as::<_, CatalogRow>(concat!("SELECT ", catalog_cols!(), " FROM catalog_tests WHERE code = $1 OR loinc = $1 \
                     ORDER BY CASE WHEN code = $1 THEN 0 ELSE 1 END, \
                     CASE WHEN retired_at IS NULL THEN 0 ELSE 1 END, id LIMIT 1"))
                .bind(code)
                .fetch_optional(e)
                .await?
                .map(catalog)
                .transpose()
            }

            pub async fn insert_catalog<'e, E: Executor<'e, Database = Db>>(
                e: E,
                c: &CatalogTestRecord,
            ) -> StoreResult<i64> {
                let (id,) = sqlx::query_as::<_, (i64,)>(
                    "INSERT INTO catalog_tests (code, loinc, kind, name, version, definition, \
                     updated_at, retired_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                )
                .bind(&c.code)
                .bind(&c.loinc)
                .bind(&c.kind)
                .bind(&c.name)
                .bind(c.version)
                .bind(&c.definition)
                .bind(us(c.updated_at))
                .bind(c.retired_at.map(us))
                .fetch_one(e)
                .await?;
                Ok(id)
            }

            /// Replaces the definition of entry `c.id`, which must still be at `c.version - 1`.
            pub async fn update_catalog<'e, E: Executor<'e, Database = Db>>(
                e: E,
                c: &CatalogTestRecord,
            ) -> StoreResult<()> {
                let r = sqlx::query(
                    "UPDATE catalog_tests SET loinc = $1, kind = $2, name = $3, version = $4, \
                     definition = $5, updated_at = $6, retired_at = $7 \
                     WHERE id = $8 AND version = $9",
                )
                .bind(&c.loinc)
                .bind(&c.kind)
                .bind(&c.name)
                .bind(c.version)
                .bind(&c.definition)
                .bind(us(c.updated_at))
                .bind(c.retired_at.map(us))
                .bind(c.id)
                .bind(c.version - 1)
                .execute(e)
                .await?;
                if r.rows_affected() == 0 {
                    return Err(StoreError::Conflict("catalog entry changed meanwhile".into()));
                }
                Ok(())
            }

            pub async fn insert_catalog_version<'e, E: Executor<'e, Database = Db>>(
                e: E,
                c: &CatalogTestRecord,
                by: &str,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO catalog_test_versions (test_id, version, definition, changed_at, \
                     changed_by) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(c.id)
                .bind(c.version)
                .bind(&c.definition)
                .bind(us(c.updated_at))
                .bind(by)
                .execute(e)
                .await?;
                Ok(())
            }

            pub async fn catalog_versions<'e, E: Executor<'e, Database = Db>>(
                e: E,
                test_id: i64,
            ) -> StoreResult<Vec<CatalogVersionRecord>> {
                sqlx::query_as::<_, (i64, String, i64, String)>(
                    "SELECT version, definition, changed_at, changed_by FROM catalog_test_versions \
                     WHERE test_id = $1 ORDER BY version",
                )
                .bind(test_id)
                .fetch_all(e)
                .await?
                .into_iter()
                .map(|r| {
                    Ok(CatalogVersionRecord {
                        version: r.0,
                        definition: r.1,
                        changed_at: ts(r.2)?,
                        changed_by: r.3,
                    })
                })
                .collect()
            }

            // ---- orders and specimens

            macro_rules! order_cols {
                () => {
                    "id, patient_id, provider_id, location_id, priority, timed_at, \
                placer_order_number, clinical_notes, diagnosis_codes, status, created_at, \
                created_by, cancelled_at, cancel_reason"
                };
            }

            #[derive(sqlx::FromRow)]
            struct OrderRow {
                id: i64,
                patient_id: i64,
                provider_id: i64,
                location_id: i64,
                priority: String,
                timed_at: Option<i64>,
                placer_order_number: Option<String>,
                clinical_notes: Option<String>,
                diagnosis_codes: String,
                status: String,
                created_at: i64,
                created_by: String,
                cancelled_at: Option<i64>,
                cancel_reason: Option<String>,
            }

            fn order(r: OrderRow) -> StoreResult<OrderRecord> {
                Ok(OrderRecord {
                    id: r.id,
                    patient_id: r.patient_id,
                    provider_id: r.provider_id,
                    location_id: r.location_id,
                    priority: r.priority,
                    timed_at: opt_ts(r.timed_at)?,
                    placer_order_number: r.placer_order_number,
                    clinical_notes: r.clinical_notes,
                    diagnosis_codes: r.diagnosis_codes,
                    status: r.status,
                    created_at: ts(r.created_at)?,
                    created_by: r.created_by,
                    cancelled_at: opt_ts(r.cancelled_at)?,
                    cancel_reason: r.cancel_reason,
                })
            }

            pub async fn insert_order<'e, E: Executor<'e, Database = Db>>(
                e: E,
                o: &OrderRecord,
            ) -> StoreResult<i64> {
                let (id,) = sqlx::query_as::<_, (i64,)>(
                    "INSERT INTO orders (patient_id, provider_id, location_id, priority, timed_at, \
                     placer_order_number, clinical_notes, diagnosis_codes, status, created_at, \
                     created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
                )
                .bind(o.patient_id)
                .bind(o.provider_id)
                .bind(o.location_id)
                .bind(&o.priority)
                .bind(o.timed_at.map(us))
                .bind(&o.placer_order_number)
                .bind(&o.clinical_notes)
                .bind(&o.diagnosis_codes)
                .bind(&o.status)
                .bind(us(o.created_at))
                .bind(&o.created_by)
                .fetch_one(e)
                .await?;
                Ok(id)
            }

            pub async fn order_by_id<'e, E: Executor<'e, Database = Db>>(
                e: E,
                id: i64,
            ) -> StoreResult<Option<OrderRecord>> {
                sqlx::query_as::<_, OrderRow>(concat!("SELECT ", order_cols!(), " FROM orders WHERE id = $1"))
                .bind(id)
                .fetch_optional(e)
                .await?
                .map(order)
                .transpose()
            }

            pub async fn orders_by<'e, E: Executor<'e, Database = Db>>(
                e: E,
                placer_order_number: Option<&str>,
                patient_id: Option<i64>,
                limit: i64,
            ) -> StoreResult<Vec<OrderRecord>> {
                let mut qb = sqlx::QueryBuilder::<Db>::new(concat!(
                    "SELECT ",
                    order_cols!(),
                    " FROM orders WHERE 1 = 1"
                ));
                if let Some(p) = placer_order_number {
                    qb.push(" AND placer_order_number = ").push_bind(p.to_owned());
                }
                if let Some(id) = patient_id {
                    qb.push(" AND patient_id = ").push_bind(id);
                }
                qb.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
                qb.build_query_as::<OrderRow>()
                    .fetch_all(e)
                    .await?
                    .into_iter()
                    .map(order)
                    .collect()
            }

            pub async fn cancel_order<'e, E: Executor<'e, Database = Db>>(
                e: E,
                id: i64,
                at: Timestamp,
                reason: &str,
            ) -> StoreResult<bool> {
                let r = sqlx::query(
                    "UPDATE orders SET status = 'cancelled', cancelled_at = $1, cancel_reason = $2 \
                     WHERE id = $3 AND status <> 'cancelled'",
                )
                .bind(us(at))
                .bind(reason)
                .bind(id)
                .execute(e)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            /// Marks every test of an order that is not cancelled yet as cancelled; returns
            /// how many changed. Specimens are never changed here: each one goes through the
            /// specimen lifecycle (guarded update and custody event).
            pub async fn cancel_order_tests<'e, E: Executor<'e, Database = Db>>(
                e: E,
                order_id: i64,
            ) -> StoreResult<u64> {
                let r = sqlx::query(
                    "UPDATE order_tests SET status = 'cancelled' \
                     WHERE order_id = $1 AND status <> 'cancelled'",
                )
                .bind(order_id)
                .execute(e)
                .await?;
                Ok(r.rows_affected())
            }

            macro_rules! specimen_cols {
                () => {
                    "id, accession, order_id, patient_id, container, \
                specimen_type, draw_rank, status, volume_ul, capacity_ul, created_at, \
                collected_at, temperature"
                };
            }

            #[derive(sqlx::FromRow)]
            struct SpecimenRow {
                id: i64,
                accession: String,
                order_id: i64,
                patient_id: i64,
                container: String,
                specimen_type: String,
                draw_rank: i64,
                status: String,
                volume_ul: i64,
                capacity_ul: i64,
                created_at: i64,
                collected_at: Option<i64>,
                temperature: Option<String>,
            }

            fn specimen(r: SpecimenRow) -> StoreResult<SpecimenRecord> {
                Ok(SpecimenRecord {
                    id: r.id,
                    accession: r.accession,
                    order_id: r.order_id,
                    patient_id: r.patient_id,
                    container: r.container,
                    specimen_type: r.specimen_type,
                    draw_rank: r.draw_rank,
                    status: r.status,
                    volume_ul: r.volume_ul,
                    capacity_ul: r.capacity_ul,
                    created_at: ts(r.created_at)?,
                    collected_at: opt_ts(r.collected_at)?,
                    temperature: r.temperature,
                })
            }

            pub async fn insert_specimen<'e, E: Executor<'e, Database = Db>>(
                e: E,
                s: &SpecimenRecord,
            ) -> StoreResult<i64> {
                let (id,) = sqlx::query_as::<_, (i64,)>(
                    "INSERT INTO specimens (accession, order_id, patient_id, container, \
                     specimen_type, draw_rank, status, volume_ul, capacity_ul, created_at, \
                     collected_at, temperature) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
                )
                .bind(&s.accession)
                .bind(s.order_id)
                .bind(s.patient_id)
                .bind(&s.container)
                .bind(&s.specimen_type)
                .bind(s.draw_rank)
                .bind(&s.status)
                .bind(s.volume_ul)
                .bind(s.capacity_ul)
                .bind(us(s.created_at))
                .bind(s.collected_at.map(us))
                .bind(&s.temperature)
                .fetch_one(e)
                .await?;
                Ok(id)
            }

            /// Inserts several specimens in one statement; returns `(accession, id)` pairs.
            pub async fn insert_specimens<'e, E: Executor<'e, Database = Db>>(
                e: E,
                rows: &[SpecimenRecord],
            ) -> StoreResult<Vec<(String, i64)>> {
                if rows.is_empty() {
                    return Ok(Vec::new());
                }
                let mut qb = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO specimens (accession, order_id, patient_id, container, \
                     specimen_type, draw_rank, status, volume_ul, capacity_ul, created_at, \
                     collected_at, temperature) ",
                );
                qb.push_values(rows, |mut b, s| {
                    b.push_bind(s.accession.clone())
                        .push_bind(s.order_id)
                        .push_bind(s.patient_id)
                        .push_bind(s.container.clone())
                        .push_bind(s.specimen_type.clone())
                        .push_bind(s.draw_rank)
                        .push_bind(s.status.clone())
                        .push_bind(s.volume_ul)
                        .push_bind(s.capacity_ul)
                        .push_bind(us(s.created_at))
                        .push_bind(s.collected_at.map(us))
                        .push_bind(s.temperature.clone());
                });
                qb.push(" RETURNING accession, id");
                Ok(qb.build_query_as::<(String, i64)>().fetch_all(e).await?)
            }

            /// Inserts several order tests in one statement.
            pub async fn insert_order_tests<'e, E: Executor<'e, Database = Db>>(
                e: E,
                rows: &[OrderTestRecord],
            ) -> StoreResult<()> {
                if rows.is_empty() {
                    return Ok(());
                }
                let mut qb = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO order_tests (order_id, test_code, panel_code, specimen_id, status, \
                     added_at) ",
                );
                qb.push_values(rows, |mut b, t| {
                    b.push_bind(t.order_id)
                        .push_bind(t.test_code.clone())
                        .push_bind(t.panel_code.clone())
                        .push_bind(t.specimen_id)
                        .push_bind(t.status.clone())
                        .push_bind(us(t.added_at));
                });
                qb.build().execute(e).await?;
                Ok(())
            }

            pub async fn set_specimen_volume<'e, E: Executor<'e, Database = Db>>(
                e: E,
                id: i64,
                volume_ul: i64,
            ) -> StoreResult<()> {
                sqlx::query("UPDATE specimens SET volume_ul = $1 WHERE id = $2")
                    .bind(volume_ul)
                    .bind(id)
                    .execute(e)
                    .await?;
                Ok(())
            }

            pub async fn specimens_of_order<'e, E: Executor<'e, Database = Db>>(
                e: E,
                order_id: i64,
            ) -> StoreResult<Vec<SpecimenRecord>> {
                sqlx::query_as::<_, SpecimenRow>(concat!("SELECT ", specimen_cols!(), " FROM specimens WHERE order_id = $1 \
                     ORDER BY draw_rank, container, id"))
                .bind(order_id)
                .fetch_all(e)
                .await?
                .into_iter()
                .map(specimen)
                .collect()
            }

            pub async fn insert_order_test<'e, E: Executor<'e, Database = Db>>(
                e: E,
                t: &OrderTestRecord,
            ) -> StoreResult<i64> {
                let (id,) = sqlx::query_as::<_, (i64,)>(
                    "INSERT INTO order_tests (order_id, test_code, panel_code, specimen_id, status, \
                     added_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                )
                .bind(t.order_id)
                .bind(&t.test_code)
                .bind(&t.panel_code)
                .bind(t.specimen_id)
                .bind(&t.status)
                .bind(us(t.added_at))
                .fetch_one(e)
                .await?;
                Ok(id)
            }

            pub async fn tests_of_order<'e, E: Executor<'e, Database = Db>>(
                e: E,
                order_id: i64,
            ) -> StoreResult<Vec<OrderTestRecord>> {
                sqlx::query_as::<_, (i64, i64, String, Option<String>, i64, String, i64)>(
                    "SELECT id, order_id, test_code, panel_code, specimen_id, status, added_at \
                     FROM order_tests WHERE order_id = $1 ORDER BY id",
                )
                .bind(order_id)
                .fetch_all(e)
                .await?
                .into_iter()
                .map(|r| {
                    Ok(OrderTestRecord {
                        id: r.0,
                        order_id: r.1,
                        test_code: r.2,
                        panel_code: r.3,
                        specimen_id: r.4,
                        status: r.5,
                        added_at: ts(r.6)?,
                    })
                })
                .collect()
            }

            // ---- specimen lifecycle

            pub async fn specimen_by_accession<'e, E: Executor<'e, Database = Db>>(
                e: E,
                accession: &str,
            ) -> StoreResult<Option<SpecimenRecord>> {
                sqlx::query_as::<_, SpecimenRow>(concat!("SELECT ", specimen_cols!(), " FROM specimens WHERE accession = $1"))
                .bind(accession)
                .fetch_optional(e)
                .await?
                .map(specimen)
                .transpose()
            }

            /// Applies a status change only while the status is still `from`; false when
            /// another transaction changed it first.
            pub async fn change_specimen<'e, E: Executor<'e, Database = Db>>(
                e: E,
                c: &SpecimenChange,
            ) -> StoreResult<bool> {
                let r = sqlx::query(
                    "UPDATE specimens SET status = $1, collected_at = COALESCE($2, collected_at), \
                     temperature = COALESCE($3, temperature), volume_ul = COALESCE($4, volume_ul) \
                     WHERE id = $5 AND status = $6",
                )
                .bind(&c.to)
                .bind(c.collected_at.map(us))
                .bind(&c.temperature)
                .bind(c.volume_ul)
                .bind(c.id)
                .bind(&c.from)
                .execute(e)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            /// Counts one more label print; returns the new count (1 = the original print).
            pub async fn count_label_print<'e, E: Executor<'e, Database = Db>>(
                e: E,
                id: i64,
            ) -> StoreResult<i64> {
                let (n,) = sqlx::query_as::<_, (i64,)>(
                    "UPDATE specimens SET label_prints = label_prints + 1 WHERE id = $1 \
                     RETURNING label_prints",
                )
                .bind(id)
                .fetch_one(e)
                .await?;
                Ok(n)
            }

            pub async fn insert_specimen_event<'e, E: Executor<'e, Database = Db>>(
                e: E,
                ev: &SpecimenEventRecord,
            ) -> StoreResult<i64> {
                let (id,) = sqlx::query_as::<_, (i64,)>(
                    "INSERT INTO specimen_events (specimen_id, at, actor_id, actor_name, kind, \
                     from_status, to_status, details, location) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                )
                .bind(ev.specimen_id)
                .bind(us(ev.at))
                .bind(ev.actor_id)
                .bind(&ev.actor_name)
                .bind(&ev.kind)
                .bind(&ev.from_status)
                .bind(&ev.to_status)
                .bind(&ev.details)
                .bind(&ev.location)
                .fetch_one(e)
                .await?;
                Ok(id)
            }

            type EventRow = (i64, i64, i64, Option<i64>, String, String, String, String, String, Option<String>);

            pub async fn specimen_events<'e, E: Executor<'e, Database = Db>>(
                e: E,
                specimen_id: i64,
            ) -> StoreResult<Vec<SpecimenEventRecord>> {
                sqlx::query_as::<_, EventRow>(
                    "SELECT id, specimen_id, at, actor_id, actor_name, kind, from_status, to_status, \
                     details, location FROM specimen_events WHERE specimen_id = $1 ORDER BY id",
                )
                .bind(specimen_id)
                .fetch_all(e)
                .await?
                .into_iter()
                .map(|r| {
                    Ok(SpecimenEventRecord {
                        id: r.0,
                        specimen_id: r.1,
                        at: ts(r.2)?,
                        actor_id: r.3,
                        actor_name: r.4,
                        kind: r.5,
                        from_status: r.6,
                        to_status: r.7,
                        details: r.8,
                        location: r.9,
                    })
                })
                .collect()
            }

            /// One problem-log entry.
            pub async fn problem_by_id<'e, E: Executor<'e, Database = Db>>(
                e: E,
                id: i64,
            ) -> StoreResult<Option<ProblemRecord>> {
                sqlx::query_as::<_, ProblemRow>(
                    "SELECT p.id, p.specimen_id, s.accession, p.reason, p.comment, p.opened_at, \
                     p.opened_by, p.resolved_at, p.resolved_by, p.resolution FROM problem_log p \
                     JOIN specimens s ON s.id = p.specimen_id WHERE p.id = $1",
                )
                .bind(id)
                .fetch_optional(e)
                .await?
                .map(problem)
                .transpose()
            }

            /// One recollection task.
            pub async fn recollect_task_by_id<'e, E: Executor<'e, Database = Db>>(
                e: E,
                id: i64,
            ) -> StoreResult<Option<RecollectTaskRecord>> {
                sqlx::query_as::<_, TaskRow>(
                    "SELECT t.id, t.order_id, t.location_id, t.specimen_id, s.accession, t.reason, \
                     t.created_at, t.done_at, t.done_by, t.replacement_accession FROM recollect_tasks t \
                     JOIN specimens s ON s.id = t.specimen_id WHERE t.id = $1",
                )
                .bind(id)
                .fetch_optional(e)
                .await?
                .map(task)
                .transpose()
            }

            /// Closes an open problem-log entry; false when there is none open with this id.
            pub async fn resolve_problem<'e, E: Executor<'e, Database = Db>>(
                e: E,
                id: i64,
                at: Timestamp,
                by: &str,
                resolution: &str,
            ) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE problem_log SET resolved_at = $2, resolved_by = $3, resolution = $4 \
                     WHERE id = $1 AND resolved_at IS NULL",
                )
                .bind(id)
                .bind(us(at))
                .bind(by)
                .bind(resolution)
                .execute(e)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            /// Marks an open recollection task done; false when there is none open with this id.
            pub async fn complete_recollect_task<'e, E: Executor<'e, Database = Db>>(
                e: E,
                id: i64,
                at: Timestamp,
                by: &str,
                replacement_accession: &str,
            ) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE recollect_tasks SET done_at = $2, done_by = $3, \
                     replacement_accession = $4 WHERE id = $1 AND done_at IS NULL",
                )
                .bind(id)
                .bind(us(at))
                .bind(by)
                .bind(replacement_accession)
                .execute(e)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            pub async fn insert_problem<'e, E: Executor<'e, Database = Db>>(
                e: E,
                p: &ProblemRecord,
            ) -> StoreResult<i64> {
                let (id,) = sqlx::query_as::<_, (i64,)>(
                    "INSERT INTO problem_log (specimen_id, reason, comment, opened_at, opened_by) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                )
                .bind(p.specimen_id)
                .bind(&p.reason)
                .bind(&p.comment)
                .bind(us(p.opened_at))
                .bind(&p.opened_by)
                .fetch_one(e)
                .await?;
                Ok(id)
            }

            type ProblemRow =
                (i64, i64, String, String, Option<String>, i64, String, Option<i64>, Option<String>, Option<String>);

            fn problem(r: ProblemRow) -> StoreResult<ProblemRecord> {
                Ok(ProblemRecord {
                    id: r.0,
                    specimen_id: r.1,
                    accession: r.2,
                    reason: r.3,
                    comment: r.4,
                    opened_at: ts(r.5)?,
                    opened_by: r.6,
                    resolved_at: opt_ts(r.7)?,
                    resolved_by: r.8,
                    resolution: r.9,
                })
            }

            pub async fn problem_log<'e, E: Executor<'e, Database = Db>>(
                e: E,
                open_only: bool,
                limit: i64,
            ) -> StoreResult<Vec<ProblemRecord>> {
                let sql = if open_only {
                    "SELECT p.id, p.specimen_id, s.accession, p.reason, p.comment, p.opened_at, \
                     p.opened_by, p.resolved_at, p.resolved_by, p.resolution FROM problem_log p \
                     JOIN specimens s ON s.id = p.specimen_id \
                     WHERE p.resolved_at IS NULL ORDER BY p.id LIMIT $1"
                } else {
                    "SELECT p.id, p.specimen_id, s.accession, p.reason, p.comment, p.opened_at, \
                     p.opened_by, p.resolved_at, p.resolved_by, p.resolution FROM problem_log p \
                     JOIN specimens s ON s.id = p.specimen_id ORDER BY p.id LIMIT $1"
                };
                sqlx::query_as::<_, ProblemRow>(sql)
                .bind(limit)
                .fetch_all(e)
                .await?
                .into_iter()
                .map(problem)
                .collect()
            }

            pub async fn insert_recollect_task<'e, E: Executor<'e, Database = Db>>(
                e: E,
                t: &RecollectTaskRecord,
            ) -> StoreResult<i64> {
                let (id,) = sqlx::query_as::<_, (i64,)>(
                    "INSERT INTO recollect_tasks (order_id, location_id, specimen_id, reason, \
                     created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                )
                .bind(t.order_id)
                .bind(t.location_id)
                .bind(t.specimen_id)
                .bind(&t.reason)
                .bind(us(t.created_at))
                .fetch_one(e)
                .await?;
                Ok(id)
            }

            type TaskRow =
                (i64, i64, i64, i64, String, String, i64, Option<i64>, Option<String>, Option<String>);

            fn task(r: TaskRow) -> StoreResult<RecollectTaskRecord> {
                Ok(RecollectTaskRecord {
                    id: r.0,
                    order_id: r.1,
                    location_id: r.2,
                    specimen_id: r.3,
                    accession: r.4,
                    reason: r.5,
                    created_at: ts(r.6)?,
                    done_at: opt_ts(r.7)?,
                    done_by: r.8,
                    replacement_accession: r.9,
                })
            }

            pub async fn recollect_tasks<'e, E: Executor<'e, Database = Db>>(
                e: E,
                open_only: bool,
                limit: i64,
            ) -> StoreResult<Vec<RecollectTaskRecord>> {
                let sql = if open_only {
                    "SELECT t.id, t.order_id, t.location_id, t.specimen_id, s.accession, t.reason, \
                     t.created_at, t.done_at, t.done_by, t.replacement_accession FROM recollect_tasks t \
                     JOIN specimens s ON s.id = t.specimen_id \
                     WHERE t.done_at IS NULL ORDER BY t.id LIMIT $1"
                } else {
                    "SELECT t.id, t.order_id, t.location_id, t.specimen_id, s.accession, t.reason, \
                     t.created_at, t.done_at, t.done_by, t.replacement_accession FROM recollect_tasks t \
                     JOIN specimens s ON s.id = t.specimen_id ORDER BY t.id LIMIT $1"
                };
                sqlx::query_as::<_, TaskRow>(sql)
                .bind(limit)
                .fetch_all(e)
                .await?
                .into_iter()
                .map(task)
                .collect()
            }

            // ── processing: centrifugation, aliquots, dilutions, routing (issue 4) ──

            pub async fn specimen_children<'e, E: Executor<'e, Database = Db>>(
                e: E,
                parent_id: i64,
            ) -> StoreResult<Vec<SpecimenRecord>> {
                sqlx::query_as::<_, SpecimenRow>(concat!("SELECT ", specimen_cols!(), " FROM specimens WHERE parent_id = $1 ORDER BY id"))
                .bind(parent_id)
                .fetch_all(e)
                .await?
                .into_iter()
                .map(specimen)
                .collect()
            }

            pub async fn specimen_parent<'e, E: Executor<'e, Database = Db>>(
                e: E,
                specimen_id: i64,
            ) -> StoreResult<Option<SpecimenRecord>> {
                sqlx::query_as::<_, SpecimenRow>(concat!("SELECT ", specimen_cols!(), " FROM specimens \
                     WHERE id = (SELECT parent_id FROM specimens WHERE id = $1)"))
                .bind(specimen_id)
                .fetch_optional(e)
                .await?
                .map(specimen)
                .transpose()
            }

            pub async fn insert_aliquot<'e, E: Executor<'e, Database = Db>>(
                e: E,
                s: &SpecimenRecord,
                parent_id: i64,
            ) -> StoreResult<i64> {
                let (id,) = sqlx::query_as::<_, (i64,)>(
                    "INSERT INTO specimens (accession, order_id, patient_id, container, \
                     specimen_type, draw_rank, status, volume_ul, capacity_ul, created_at, \
                     collected_at, temperature, parent_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
                )
                .bind(&s.accession)
                .bind(s.order_id)
                .bind(s.patient_id)
                .bind(&s.container)
                .bind(&s.specimen_type)
                .bind(s.draw_rank)
                .bind(&s.status)
                .bind(s.volume_ul)
                .bind(s.capacity_ul)
                .bind(us(s.created_at))
                .bind(s.collected_at.map(us))
                .bind(&s.temperature)
                .bind(parent_id)
                .fetch_one(e)
                .await?;
                Ok(id)
            }

            /// Takes volume from a specimen only while its status is unchanged and enough is
            /// left: the guarded change of an aliquot.
            pub async fn take_volume<'e, E: Executor<'e, Database = Db>>(
                e: E,
                id: i64,
                status: &str,
                volume_ul: i64,
            ) -> StoreResult<bool> {
                let r = sqlx::query(
                    "UPDATE specimens SET volume_ul = volume_ul - $1 \
                     WHERE id = $2 AND status = $3 AND volume_ul >= $1",
                )
                .bind(volume_ul)
                .bind(id)
                .bind(status)
                .execute(e)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            pub async fn move_tests<'e, E: Executor<'e, Database = Db>>(
                e: E,
                from: i64,
                to: i64,
                codes: &[String],
            ) -> StoreResult<u64> {
                if codes.is_empty() {
                    return Ok(0);
                }
                let mut qb = sqlx::QueryBuilder::<Db>::new("UPDATE order_tests SET specimen_id = ");
                qb.push_bind(to);
                qb.push(" WHERE specimen_id = ");
                qb.push_bind(from);
                qb.push(" AND test_code IN (");
                let mut sep = qb.separated(", ");
                for c in codes {
                    sep.push_bind(c.clone());
                }
                qb.push(")");
                Ok(qb.build().execute(e).await?.rows_affected())
            }

            type CentrifugationRow = (i64, i64, String, i64, i64, String, i64, Option<i64>, String, i64);

            pub async fn insert_centrifugation<'e, E: Executor<'e, Database = Db>>(
                e: E,
                c: &CentrifugationRecord,
            ) -> StoreResult<i64> {
                let (id,) = sqlx::query_as::<_, (i64,)>(
                    "INSERT INTO centrifugations (specimen_id, centrifuge_id, rcf_g, minutes, \
                     temperature_c, started_at, operator_id, operator_name, recorded_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                )
                .bind(c.specimen_id)
                .bind(&c.centrifuge_id)
                .bind(c.rcf_g)
                .bind(c.minutes)
                .bind(&c.temperature_c)
                .bind(us(c.started_at))
                .bind(c.operator_id)
                .bind(&c.operator_name)
                .bind(us(c.recorded_at))
                .fetch_one(e)
                .await?;
                Ok(id)
            }

            pub async fn centrifugations<'e, E: Executor<'e, Database = Db>>(
                e: E,
                specimen_id: i64,
            ) -> StoreResult<Vec<CentrifugationRecord>> {
                sqlx::query_as::<_, CentrifugationRow>(
                    "SELECT id, specimen_id, centrifuge_id, rcf_g, minutes, temperature_c, \
                     started_at, operator_id, operator_name, recorded_at FROM centrifugations \
                     WHERE specimen_id = $1 ORDER BY id",
                )
                .bind(specimen_id)
                .fetch_all(e)
                .await?
                .into_iter()
                .map(|r| {
                    Ok(CentrifugationRecord {
                        id: r.0,
                        specimen_id: r.1,
                        centrifuge_id: r.2,
                        rcf_g: r.3,
                        minutes: r.4,
                        temperature_c: r.5,
                        started_at: ts(r.6)?,
                        operator_id: r.7,
                        operator_name: r.8,
                        recorded_at: ts(r.9)?,
                    })
                })
                .collect()
            }

            pub async fn insert_dilution<'e, E: Executor<'e, Database = Db>>(
                e: E,
                d: &DilutionRecord,
            ) -> StoreResult<i64> {
                let (id,) = sqlx::query_as::<_, (i64,)>(
                    "INSERT INTO dilutions (specimen_id, factor, test_code, diluent, recorded_at, \
                     actor_id, actor_name) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                )
                .bind(d.specimen_id)
                .bind(&d.factor)
                .bind(&d.test_code)
                .bind(&d.diluent)
                .bind(us(d.recorded_at))
                .bind(d.actor_id)
                .bind(&d.actor_name)
                .fetch_one(e)
                .await?;
                Ok(id)
            }

            pub async fn dilutions<'e, E: Executor<'e, Database = Db>>(
                e: E,
                specimen_id: i64,
            ) -> StoreResult<Vec<DilutionRecord>> {
                sqlx::query_as::<_, (i64, i64, String, Option<String>, Option<String>, i64, Option<i64>, String)>(
                    "SELECT id, specimen_id, factor, test_code, diluent, recorded_at, actor_id, \
                     actor_name FROM dilutions WHERE specimen_id = $1 ORDER BY id",
                )
                .bind(specimen_id)
                .fetch_all(e)
                .await?
                .into_iter()
                .map(|r| {
                    Ok(DilutionRecord {
                        id: r.0,
                        specimen_id: r.1,
                        factor: r.2,
                        test_code: r.3,
                        diluent: r.4,
                        recorded_at: ts(r.5)?,
                        actor_id: r.6,
                        actor_name: r.7,
                    })
                })
                .collect()
            }

            type SortingRow = (i64, String, String, String, String, i64, i64, String, i64, Option<String>);

            /// One query: the `limit` most urgent specimens (priority, receipt time, accession)
            /// in status `a` or `b`, joined with their tests.
            pub async fn sorting_list<'e, E: Executor<'e, Database = Db>>(
                e: E,
                a: &str,
                b: &str,
                limit: i64,
            ) -> StoreResult<Vec<SortingRecord>> {
                let rows = sqlx::query_as::<_, SortingRow>(
                    "SELECT s.id, s.accession, s.status, s.container, s.specimen_type, s.volume_ul, \
                     s.patient_id, s.priority, s.received_at, t.test_code FROM ( \
                       SELECT s.id, s.accession, s.status, s.container, s.specimen_type, \
                       s.volume_ul, s.patient_id, o.priority, \
                       COALESCE((SELECT MIN(e.at) FROM specimen_events e \
                                 WHERE e.specimen_id = s.id AND e.kind = 'receive'), \
                                s.created_at) AS received_at, \
                       CASE o.priority WHEN 'stat' THEN 0 WHEN 'asap' THEN 1 \
                                       WHEN 'timed' THEN 2 ELSE 3 END AS urgency \
                       FROM specimens s JOIN orders o ON o.id = s.order_id \
                       WHERE s.status = $1 OR s.status = $2 \
                       ORDER BY urgency, received_at, s.accession LIMIT $3 \
                     ) s LEFT JOIN order_tests t ON t.specimen_id = s.id \
                       AND t.status <> 'cancelled' \
                     ORDER BY s.urgency, s.received_at, s.accession, t.id",
                )
                .bind(a)
                .bind(b)
                .bind(limit)
                .fetch_all(e)
                .await?;
                let mut out: Vec<SortingRecord> = Vec::new();
                for r in rows {
                    if out.last().is_none_or(|l| l.specimen_id != r.0) {
                        out.push(SortingRecord {
                            specimen_id: r.0,
                            accession: r.1,
                            status: r.2,
                            container: r.3,
                            specimen_type: r.4,
                            volume_ul: r.5,
                            patient_id: r.6,
                            priority: r.7,
                            received_at: ts(r.8)?,
                            tests: Vec::new(),
                        });
                    }
                    if let (Some(last), Some(code)) = (out.last_mut(), r.9) {
                        last.tests.push(code);
                    }
                }
                Ok(out)
            }

            // ── storage, transport, send-out, disposal (issue 4) ──

            type UnitRow = (i64, String, Option<i64>, String, Option<String>, Option<String>, Option<i64>, Option<i64>, i64, String);

            fn storage_unit(r: UnitRow) -> StoreResult<StorageUnitRecord> {
                Ok(StorageUnitRecord {
                    id: r.0,
                    path: r.1,
                    parent_id: r.2,
                    kind: r.3,
                    name: r.4,
                    temperature: r.5,
                    grid_rows: r.6,
                    grid_cols: r.7,
                    created_at: ts(r.8)?,
                    created_by: r.9,
                })
            }

            macro_rules! unit_cols {
                () => {
                    "id, path, parent_id, kind, name, temperature, grid_rows, grid_cols, \
                     created_at, created_by"
                };
            }

            pub async fn storage_units<'e, E: Executor<'e, Database = Db>>(
                e: E,
            ) -> StoreResult<Vec<StorageUnitRecord>> {
                sqlx::query_as::<_, UnitRow>(concat!("SELECT ", unit_cols!(), " FROM storage_units ORDER BY path"))
                    .fetch_all(e)
                    .await?
                    .into_iter()
                    .map(storage_unit)
                    .collect()
            }

            pub async fn storage_unit_by_path<'e, E: Executor<'e, Database = Db>>(
                e: E,
                path: &str,
            ) -> StoreResult<Option<StorageUnitRecord>> {
                sqlx::query_as::<_, UnitRow>(concat!("SELECT ", unit_cols!(), " FROM storage_units WHERE path = $1"))
                    .bind(path)
                    .fetch_optional(e)
                    .await?
                    .map(storage_unit)
                    .transpose()
            }

            pub async fn insert_storage_unit<'e, E: Executor<'e, Database = Db>>(
                e: E,
                u: &StorageUnitRecord,
            ) -> StoreResult<i64> {
                let (id,) = sqlx::query_as::<_, (i64,)>(
                    "INSERT INTO storage_units (path, parent_id, kind, name, temperature, grid_rows, \
                     grid_cols, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     RETURNING id",
                )
                .bind(&u.path)
                .bind(u.parent_id)
                .bind(&u.kind)
                .bind(&u.name)
                .bind(&u.temperature)
                .bind(u.grid_rows)
                .bind(u.grid_cols)
                .bind(us(u.created_at))
                .bind(&u.created_by)
                .fetch_one(e)
                .await?;
                Ok(id)
            }

            pub async fn placement_counts<'e, E: Executor<'e, Database = Db>>(
                e: E,
            ) -> StoreResult<Vec<(i64, i64)>> {
                Ok(sqlx::query_as::<_, (i64, i64)>(
                    "SELECT unit_id, COUNT(*) FROM specimen_placements WHERE removed_at IS NULL \
                     GROUP BY unit_id",
                )
                .fetch_all(e)
                .await?)
            }

            type StoredRow = (i64, String, String, String, i64, String, String, i64, String);

            fn stored(r: StoredRow) -> StoreResult<StoredSpecimenRecord> {
                Ok(StoredSpecimenRecord {
                    specimen_id: r.0,
                    accession: r.1,
                    specimen_type: r.2,
                    status: r.3,
                    unit_id: r.4,
                    unit_path: r.5,
                    position: r.6,
                    stored_at: ts(r.7)?,
                    stored_by: r.8,
                })
            }

            /// The patients of these specimens and orders, sorted and without repeats. Asked
            /// in slices of at most 1000 ids (each backend caps the parameters of a query).
            pub async fn patients_of(
                e: &sqlx::Pool<Db>,
                specimen_ids: &[i64],
                order_ids: &[i64],
            ) -> StoreResult<Vec<i64>> {
                let mut out = std::collections::BTreeSet::new();
                for (table, ids) in [("specimens", specimen_ids), ("orders", order_ids)] {
                    for chunk in ids.chunks(1000) {
                        let mut qb = sqlx::QueryBuilder::<Db>::new("SELECT DISTINCT patient_id FROM ");
                        qb.push(table);
                        qb.push(" WHERE id IN (");
                        let mut sep = qb.separated(", ");
                        for id in chunk {
                            sep.push_bind(*id);
                        }
                        qb.push(")");
                        let rows: Vec<(i64,)> = qb.build_query_as().fetch_all(e).await?;
                        out.extend(rows.into_iter().map(|(id,)| id));
                    }
                }
                Ok(out.into_iter().collect())
            }

            const STORED_FROM: &str = "SELECT s.id, s.accession, s.specimen_type, s.status, p.unit_id, \
                u.path, p.position, p.stored_at, p.stored_by FROM specimen_placements p \
                JOIN specimens s ON s.id = p.specimen_id JOIN storage_units u ON u.id = p.unit_id \
                WHERE p.removed_at IS NULL";

            pub async fn stored_in<'e, E: Executor<'e, Database = Db>>(
                e: E,
                unit_ids: &[i64],
                limit: i64,
            ) -> StoreResult<Vec<StoredSpecimenRecord>> {
                if unit_ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut qb = sqlx::QueryBuilder::<Db>::new(STORED_FROM);
                qb.push(" AND p.unit_id IN (");
                let mut sep = qb.separated(", ");
                for id in unit_ids {
                    sep.push_bind(*id);
                }
                qb.push(") ORDER BY u.path, p.position, p.id LIMIT ");
                qb.push_bind(limit);
                qb.build_query_as::<StoredRow>()
                    .fetch_all(e)
                    .await?
                    .into_iter()
                    .map(stored)
                    .collect()
            }

            pub async fn stored_before<'e, E: Executor<'e, Database = Db>>(
                e: E,
                cutoffs: &[(String, Timestamp)],
                limit: i64,
            ) -> StoreResult<Vec<StoredSpecimenRecord>> {
                if cutoffs.is_empty() {
                    return Ok(Vec::new());
                }
                let mut qb = sqlx::QueryBuilder::<Db>::new(STORED_FROM);
                qb.push(" AND s.status = 'stored' AND (");
                for (i, (specimen_type, cutoff)) in cutoffs.iter().enumerate() {
                    if i > 0 {
                        qb.push(" OR ");
                    }
                    qb.push("(s.specimen_type = ");
                    qb.push_bind(specimen_type.clone());
                    qb.push(" AND p.stored_at <= ");
                    qb.push_bind(us(*cutoff));
                    qb.push(")");
                }
                qb.push(") ORDER BY p.stored_at, p.id LIMIT ");
                qb.push_bind(limit);
                qb.build_query_as::<StoredRow>()
                    .fetch_all(e)
                    .await?
                    .into_iter()
                    .map(stored)
                    .collect()
            }

            type PlacementRow = (i64, i64, i64, String, String, i64, String, Option<i64>, Option<String>, Option<String>, Option<String>);

            pub async fn latest_placement<'e, E: Executor<'e, Database = Db>>(
                e: E,
                specimen_id: i64,
            ) -> StoreResult<Option<PlacementRecord>> {
                sqlx::query_as::<_, PlacementRow>(
                    "SELECT p.id, p.specimen_id, p.unit_id, u.path, p.position, p.stored_at, \
                     p.stored_by, p.removed_at, p.removed_by, p.removal, p.removal_reason \
                     FROM specimen_placements p JOIN storage_units u ON u.id = p.unit_id \
                     WHERE p.specimen_id = $1 ORDER BY p.id DESC LIMIT 1",
                )
                .bind(specimen_id)
                .fetch_optional(e)
                .await?
                .map(|r| {
                    Ok(PlacementRecord {
                        id: r.0,
                        specimen_id: r.1,
                        unit_id: r.2,
                        unit_path: r.3,
                        position: r.4,
                        stored_at: ts(r.5)?,
                        stored_by: r.6,
                        removed_at: opt_ts(r.7)?,
                        removed_by: r.8,
                        removal: r.9,
                        removal_reason: r.10,
                    })
                })
                .transpose()
            }

            pub async fn insert_placement<'e, E: Executor<'e, Database = Db>>(
                e: E,
                p: &PlacementRecord,
            ) -> StoreResult<i64> {
                let (id,) = sqlx::query_as::<_, (i64,)>(
                    "INSERT INTO specimen_placements (specimen_id, unit_id, position, stored_at, \
                     stored_by) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                )
                .bind(p.specimen_id)
                .bind(p.unit_id)
                .bind(&p.position)
                .bind(us(p.stored_at))
                .bind(&p.stored_by)
                .fetch_one(e)
                .await?;
                Ok(id)
            }

            pub async fn close_placement<'e, E: Executor<'e, Database = Db>>(
                e: E,
                id: i64,
                at: Timestamp,
                by: &str,
                removal: &str,
                reason: Option<&str>,
            ) -> StoreResult<bool> {
                let r = sqlx::query(
                    "UPDATE specimen_placements SET removed_at = $1, removed_by = $2, removal = $3, \
                     removal_reason = $4 WHERE id = $5 AND removed_at IS NULL",
                )
                .bind(us(at))
                .bind(by)
                .bind(removal)
                .bind(reason)
                .bind(id)
                .execute(e)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            pub async fn retention_policies<'e, E: Executor<'e, Database = Db>>(
                e: E,
            ) -> StoreResult<Vec<RetentionPolicyRecord>> {
                sqlx::query_as::<_, (String, i64, i64, String)>(
                    "SELECT specimen_type, hours, updated_at, updated_by FROM retention_policies \
                     ORDER BY specimen_type",
                )
                .fetch_all(e)
                .await?
                .into_iter()
                .map(|r| {
                    Ok(RetentionPolicyRecord {
                        specimen_type: r.0,
                        hours: r.1,
                        updated_at: ts(r.2)?,
                        updated_by: r.3,
                    })
                })
                .collect()
            }

            pub async fn put_retention_policy<'e, E: Executor<'e, Database = Db>>(
                e: E,
                p: &RetentionPolicyRecord,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO retention_policies (specimen_type, hours, updated_at, updated_by) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (specimen_type) DO UPDATE SET \
                     hours = excluded.hours, updated_at = excluded.updated_at, \
                     updated_by = excluded.updated_by",
                )
                .bind(&p.specimen_type)
                .bind(p.hours)
                .bind(us(p.updated_at))
                .bind(&p.updated_by)
                .execute(e)
                .await?;
                Ok(())
            }

            pub async fn rejected_specimens<'e, E: Executor<'e, Database = Db>>(
                e: E,
                limit: i64,
            ) -> StoreResult<Vec<RejectedSpecimenRecord>> {
                sqlx::query_as::<_, (i64, String, String, Option<i64>)>(
                    "SELECT s.id, s.accession, s.specimen_type, \
                     (SELECT MAX(ev.at) FROM specimen_events ev WHERE ev.specimen_id = s.id \
                     AND ev.kind = 'reject') AS rejected_at \
                     FROM specimens s WHERE s.status = 'rejected' \
                     ORDER BY rejected_at, s.id LIMIT $1",
                )
                .bind(limit)
                .fetch_all(e)
                .await?
                .into_iter()
                .map(|r| {
                    Ok(RejectedSpecimenRecord {
                        specimen_id: r.0,
                        accession: r.1,
                        specimen_type: r.2,
                        rejected_at: opt_ts(r.3)?,
                    })
                })
                .collect()
            }

            pub async fn insert_send_out<'e, E: Executor<'e, Database = Db>>(
                e: E,
                o: &SendOutRecord,
            ) -> StoreResult<i64> {
                let (id,) = sqlx::query_as::<_, (i64,)>(
                    "INSERT INTO send_outs (specimen_id, reference_lab, tests, tracking, temperature, \
                     sent_at, sent_by) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                )
                .bind(o.specimen_id)
                .bind(&o.reference_lab)
                .bind(&o.tests)
                .bind(&o.tracking)
                .bind(&o.temperature)
                .bind(us(o.sent_at))
                .bind(&o.sent_by)
                .fetch_one(e)
                .await?;
                Ok(id)
            }

            pub async fn send_outs<'e, E: Executor<'e, Database = Db>>(
                e: E,
                open_only: bool,
                limit: i64,
            ) -> StoreResult<Vec<SendOutRecord>> {
                let sql = if open_only {
                    "SELECT o.id, o.specimen_id, s.accession, o.reference_lab, o.tests, o.tracking, \
                     o.temperature, o.sent_at, o.sent_by, o.resulted_at FROM send_outs o \
                     JOIN specimens s ON s.id = o.specimen_id \
                     WHERE o.resulted_at IS NULL ORDER BY o.id LIMIT $1"
                } else {
                    "SELECT o.id, o.specimen_id, s.accession, o.reference_lab, o.tests, o.tracking, \
                     o.temperature, o.sent_at, o.sent_by, o.resulted_at FROM send_outs o \
                     JOIN specimens s ON s.id = o.specimen_id ORDER BY o.id LIMIT $1"
                };
                sqlx::query_as::<_, (i64, i64, String, String, String, Option<String>, String, i64, String, Option<i64>)>(sql)
                .bind(limit)
                .fetch_all(e)
                .await?
                .into_iter()
                .map(|r| {
                    Ok(SendOutRecord {
                        id: r.0,
                        specimen_id: r.1,
                        accession: r.2,
                        reference_lab: r.3,
                        tests: r.4,
                        tracking: r.5,
                        temperature: r.6,
                        sent_at: ts(r.7)?,
                        sent_by: r.8,
                        resulted_at: opt_ts(r.9)?,
                    })
                })
                .collect()
            }

            // ── turnaround time (issue 4) ──
            type TatTuple = (i64, i64, String, String, String, String, String, i64, Option<i64>, Option<i64>, Option<i64>);

            fn tat_row(r: TatTuple) -> StoreResult<TatRow> {
                Ok(TatRow {
                    order_test_id: r.0,
                    order_id: r.1,
                    test_code: r.2,
                    test_status: r.3,
                    accession: r.4,
                    specimen_status: r.5,
                    priority: r.6,
                    ordered_at: ts(r.7)?,
                    collected_at: opt_ts(r.8)?,
                    received_at: opt_ts(r.9)?,
                    in_process_at: opt_ts(r.10)?,
                })
            }

            // An aliquot was never received itself: its tests count from the receipt (and the
            // start of processing) of the tube it was poured from.
            macro_rules! tat_select {
                () => {
                    "SELECT t.id, t.order_id, t.test_code, t.status, s.accession, s.status, \
                     o.priority, o.created_at, s.collected_at, \
                     (SELECT MIN(e.at) FROM specimen_events e WHERE e.specimen_id IN (s.id, s.parent_id) \
                      AND e.kind = 'receive'), \
                     (SELECT MIN(e.at) FROM specimen_events e WHERE e.specimen_id IN (s.id, s.parent_id) \
                      AND e.kind = 'start_processing') \
                     FROM order_tests t JOIN specimens s ON s.id = t.specimen_id \
                     JOIN orders o ON o.id = t.order_id "
                };
            }

            /// The tests of one order with their milestones, in test order.
            pub async fn tat_of_order<'e, E: Executor<'e, Database = Db>>(
                e: E,
                order_id: i64,
            ) -> StoreResult<Vec<TatRow>> {
                sqlx::query_as::<_, TatTuple>(concat!(tat_select!(), "WHERE t.order_id = $1 ORDER BY t.id"))
                    .bind(order_id)
                    .fetch_all(e)
                    .await?
                    .into_iter()
                    .map(tat_row)
                    .collect()
            }

            /// Tests still running in the lab: their specimen is held by the lab (received,
            /// in process, processed or stored), the order is active and the test is not
            /// finished. At most `limit`, most urgent priority first, then oldest specimen.
            pub async fn running_tests<'e, E: Executor<'e, Database = Db>>(
                e: E,
                limit: i64,
            ) -> StoreResult<Vec<TatRow>> {
                sqlx::query_as::<_, TatTuple>(concat!(
                    tat_select!(),
                    "WHERE s.status IN ('received', 'in_process', 'processed', 'stored') \
                     AND o.status = 'active' \
                     AND t.status NOT IN ('verified', 'reported', 'cancelled') \
                     ORDER BY CASE o.priority WHEN 'stat' THEN 0 WHEN 'asap' THEN 1 \
                     WHEN 'timed' THEN 2 ELSE 3 END, s.id, t.id LIMIT $1"
                ))
                .bind(limit)
                .fetch_all(e)
                .await?
                .into_iter()
                .map(tat_row)
                .collect()
            }

        }
    };
}

pub(crate) use reg_queries;
