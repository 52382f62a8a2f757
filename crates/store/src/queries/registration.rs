//! Registration: patients, their identifiers and merges, providers and locations.

use aliquot_domain::patient::name_match_key;
use jiff::Timestamp;
use sqlx::Executor;

use super::Db;
use crate::backend::{opt_ts, ts, us};
use crate::records::{
    LocationRecord, MergeRecord, PatientQuery, PatientRecord, PatientVersionRecord, ProviderRecord,
};
use crate::{StoreError, StoreResult};

macro_rules! patient_cols {
    () => {
        "id, mrn, family_name, given_name, middle_name, family_key, \
    given_key, birth_date, sex, clinical_sex, birth_time, facility_ids, contact, created_at, \
    updated_at, merged_into"
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
    clinical_sex: Option<String>,
    birth_time: Option<String>,
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
        clinical_sex: r.clinical_sex,
        birth_time: r.birth_time,
        facility_ids: r.facility_ids,
        contact: r.contact,
        created_at: ts(r.created_at)?,
        updated_at: ts(r.updated_at)?,
        merged_into: r.merged_into,
    })
}

pub(crate) async fn patient_by_id<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
) -> StoreResult<Option<PatientRecord>> {
    sqlx::query_as::<_, PatientRow>(concat!(
        "SELECT ",
        patient_cols!(),
        " FROM patients WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(e)
    .await?
    .map(patient)
    .transpose()
}

/// The patients with these ids (those that exist).
pub(crate) async fn patients_by_ids<'e, E: Executor<'e, Database = Db>>(
    e: E,
    ids: &[i64],
) -> StoreResult<Vec<PatientRecord>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = sqlx::QueryBuilder::<Db>::new(concat!(
        "SELECT ",
        patient_cols!(),
        " FROM patients WHERE id IN ("
    ));
    let mut list = qb.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    qb.push(")");
    qb.build_query_as::<PatientRow>()
        .fetch_all(e)
        .await?
        .into_iter()
        .map(patient)
        .collect()
}

pub(crate) async fn patient_by_mrn<'e, E: Executor<'e, Database = Db>>(
    e: E,
    mrn: &str,
) -> StoreResult<Option<PatientRecord>> {
    sqlx::query_as::<_, PatientRow>(concat!(
        "SELECT ",
        patient_cols!(),
        " FROM patients WHERE mrn = $1"
    ))
    .bind(mrn)
    .fetch_optional(e)
    .await?
    .map(patient)
    .transpose()
}

pub(crate) async fn insert_patient_identifier<'e, E: Executor<'e, Database = Db>>(
    e: E,
    patient_id: i64,
    system: &str,
    value: &str,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO patient_identifiers (system, value, patient_id) VALUES ($1, $2, $3)")
        .bind(system)
        .bind(value)
        .bind(patient_id)
        .execute(e)
        .await?;
    Ok(())
}

pub(crate) async fn patient_by_identifier<'e, E: Executor<'e, Database = Db>>(
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

/// Live (not merged-away) patients born on one of `dates` (at most 500).
pub(crate) async fn patients_born_on<'e, E: Executor<'e, Database = Db>>(
    e: E,
    dates: &[String],
) -> StoreResult<Vec<PatientRecord>> {
    if dates.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = sqlx::QueryBuilder::<Db>::new(concat!(
        "SELECT ",
        patient_cols!(),
        " FROM patients WHERE birth_date IN ("
    ));
    let mut list = qb.separated(", ");
    for d in dates {
        list.push_bind(d.clone());
    }
    qb.push(") AND merged_into IS NULL ORDER BY id LIMIT 500");
    qb.build_query_as::<PatientRow>()
        .fetch_all(e)
        .await?
        .into_iter()
        .map(patient)
        .collect()
}

/// The smallest string above every string that starts with `prefix` (in code point order),
/// or `None` when there is none: `gar` → `gas`.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = u32::from(last) + 1;
        if (0xD800..=0xDFFF).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Fills the match keys of rows written before migration 0015 (NULL there): the keys are
/// derived from the stored names by `name_match_key`, which SQL cannot compute. Runs at
/// open, in pages; idempotent; guarded on the names so a concurrent correction wins.
pub(crate) async fn backfill_match_keys<'c, A>(conn: A) -> StoreResult<u64>
where
    A: sqlx::Acquire<'c, Database = Db>,
{
    let mut conn = conn.acquire().await?;
    let mut filled = 0;
    loop {
        let rows = sqlx::query_as::<_, (i64, String, String)>(
            "SELECT id, family_name, given_name FROM patients \
             WHERE family_match IS NULL OR given_match IS NULL ORDER BY id LIMIT 500",
        )
        .fetch_all(&mut *conn)
        .await?;
        if rows.is_empty() {
            return Ok(filled);
        }
        for (id, family, given) in rows {
            let r = sqlx::query(
                "UPDATE patients SET family_match = $1, given_match = $2 \
                 WHERE id = $3 AND family_name = $4 AND given_name = $5",
            )
            .bind(name_match_key(&family))
            .bind(name_match_key(&given))
            .bind(id)
            .bind(&family)
            .bind(&given)
            .execute(&mut *conn)
            .await?;
            filled += r.rows_affected();
        }
    }
}

pub(crate) async fn search_patients<'e, E: Executor<'e, Database = Db>>(
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
    ] {
        if let Some(v) = value {
            qb.push(column).push_bind(v.clone());
        }
    }
    // Name prefixes are ranges on the indexed match keys: `key >= 'gar' AND key < 'gas'`.
    for (column, prefix) in [
        ("family_match", &q.family_prefix),
        ("given_match", &q.given_prefix),
    ] {
        if let Some(p) = prefix {
            qb.push(format!(" AND {column} >= ")).push_bind(p.clone());
            if let Some(end) = prefix_end(p) {
                qb.push(format!(" AND {column} < ")).push_bind(end);
            }
        }
    }
    if let Some(provider) = q.ordering_provider {
        qb.push(" AND id IN (SELECT patient_id FROM orders WHERE provider_id = ")
            .push_bind(provider)
            .push(")");
    }
    qb.push(" ORDER BY family_key, given_key, id LIMIT ")
        .push_bind(q.limit);
    qb.build_query_as::<PatientRow>()
        .fetch_all(e)
        .await?
        .into_iter()
        .map(patient)
        .collect()
}

pub(crate) async fn insert_patient<'e, E: Executor<'e, Database = Db>>(
    e: E,
    p: &PatientRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO patients (mrn, family_name, given_name, middle_name, family_key, \
         given_key, birth_date, sex, facility_ids, contact, created_at, updated_at, \
         family_match, given_match, clinical_sex, birth_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $13, $14, $15) \
         RETURNING id",
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
    .bind(name_match_key(&p.family_name))
    .bind(name_match_key(&p.given_name))
    .bind(&p.clinical_sex)
    .bind(&p.birth_time)
    .fetch_one(e)
    .await?;
    Ok(id)
}

/// Writes corrected demographics (and their search keys) to a live patient. Returns false
/// when the patient is missing or merged away. The MRN, identifiers and merge state are not
/// touched.
pub(crate) async fn correct_patient<'e, E: Executor<'e, Database = Db>>(
    e: E,
    p: &PatientRecord,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE patients SET family_name = $1, given_name = $2, middle_name = $3, \
         family_key = $4, given_key = $5, birth_date = $6, sex = $7, contact = $8, \
         updated_at = $9, family_match = $11, given_match = $12, clinical_sex = $13, \
         birth_time = $14 WHERE id = $10 AND merged_into IS NULL",
    )
    .bind(&p.family_name)
    .bind(&p.given_name)
    .bind(&p.middle_name)
    .bind(&p.family_key)
    .bind(&p.given_key)
    .bind(&p.birth_date)
    .bind(&p.sex)
    .bind(&p.contact)
    .bind(us(p.updated_at))
    .bind(p.id)
    .bind(name_match_key(&p.family_name))
    .bind(name_match_key(&p.given_name))
    .bind(&p.clinical_sex)
    .bind(&p.birth_time)
    .execute(e)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Appends replaced demographics as the patient's next version; returns its number.
pub(crate) async fn insert_patient_version<'e, E: Executor<'e, Database = Db>>(
    e: E,
    v: &PatientVersionRecord,
) -> StoreResult<i64> {
    let (version,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO patient_versions (patient_id, version, family_name, given_name, \
         middle_name, birth_date, sex, contact, replaced_at, replaced_by, reason, \
         clinical_sex, birth_time) \
         SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
         $11, $12 FROM patient_versions WHERE patient_id = $1 RETURNING version",
    )
    .bind(v.patient_id)
    .bind(&v.family_name)
    .bind(&v.given_name)
    .bind(&v.middle_name)
    .bind(&v.birth_date)
    .bind(&v.sex)
    .bind(&v.contact)
    .bind(us(v.replaced_at))
    .bind(&v.replaced_by)
    .bind(&v.reason)
    .bind(&v.clinical_sex)
    .bind(&v.birth_time)
    .fetch_one(e)
    .await?;
    Ok(version)
}

#[derive(sqlx::FromRow)]
struct PatientVersionRow {
    id: i64,
    patient_id: i64,
    version: i64,
    family_name: String,
    given_name: String,
    middle_name: Option<String>,
    birth_date: String,
    sex: String,
    clinical_sex: Option<String>,
    birth_time: Option<String>,
    contact: String,
    replaced_at: i64,
    replaced_by: String,
    reason: String,
}

/// A patient's replaced demographics, oldest first.
pub(crate) async fn patient_versions<'e, E: Executor<'e, Database = Db>>(
    e: E,
    patient_id: i64,
) -> StoreResult<Vec<PatientVersionRecord>> {
    sqlx::query_as::<_, PatientVersionRow>(
        "SELECT id, patient_id, version, family_name, given_name, middle_name, birth_date, \
         sex, clinical_sex, birth_time, contact, replaced_at, replaced_by, reason \
         FROM patient_versions \
         WHERE patient_id = $1 ORDER BY version",
    )
    .bind(patient_id)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(|r| {
        Ok(PatientVersionRecord {
            id: r.id,
            patient_id: r.patient_id,
            version: r.version,
            family_name: r.family_name,
            given_name: r.given_name,
            middle_name: r.middle_name,
            birth_date: r.birth_date,
            sex: r.sex,
            clinical_sex: r.clinical_sex,
            birth_time: r.birth_time,
            contact: r.contact,
            replaced_at: ts(r.replaced_at)?,
            replaced_by: r.replaced_by,
            reason: r.reason,
        })
    })
    .collect()
}

pub(crate) async fn set_merged_into<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
    into: Option<i64>,
    at: Timestamp,
) -> StoreResult<()> {
    let r = sqlx::query("UPDATE patients SET merged_into = $1, updated_at = $2 WHERE id = $3")
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

pub(crate) async fn order_ids_of_patient<'e, E: Executor<'e, Database = Db>>(
    e: E,
    patient_id: i64,
) -> StoreResult<Vec<i64>> {
    Ok(
        sqlx::query_as::<_, (i64,)>("SELECT id FROM orders WHERE patient_id = $1 ORDER BY id")
            .bind(patient_id)
            .fetch_all(e)
            .await?
            .into_iter()
            .map(|r| r.0)
            .collect(),
    )
}

pub(crate) async fn specimen_ids_of_patient<'e, E: Executor<'e, Database = Db>>(
    e: E,
    patient_id: i64,
) -> StoreResult<Vec<i64>> {
    Ok(
        sqlx::query_as::<_, (i64,)>("SELECT id FROM specimens WHERE patient_id = $1 ORDER BY id")
            .bind(patient_id)
            .fetch_all(e)
            .await?
            .into_iter()
            .map(|r| r.0)
            .collect(),
    )
}

/// Moves one order (`table` = orders) or specimen to another patient, only if it
/// still belongs to `from`. Returns whether it moved.
pub(crate) async fn move_row<'e, E: Executor<'e, Database = Db>>(
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
    let r = sqlx::query(sql)
        .bind(to)
        .bind(id)
        .bind(from)
        .execute(e)
        .await?;
    Ok(r.rows_affected() == 1)
}

fn ids_json(ids: &[i64]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

fn ids_parse(s: &str) -> StoreResult<Vec<i64>> {
    serde_json::from_str(s).map_err(|e| StoreError::Database(format!("ids: {e}")))
}

pub(crate) async fn insert_merge<'e, E: Executor<'e, Database = Db>>(
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

type MergeRow = (
    i64,
    i64,
    i64,
    String,
    String,
    String,
    i64,
    String,
    Option<i64>,
    Option<String>,
);

pub(crate) async fn merge_by_id<'e, E: Executor<'e, Database = Db>>(
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

pub(crate) async fn set_merge_undone<'e, E: Executor<'e, Database = Db>>(
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

/// Multi-row insert of patients (benchmark seeding only, through `seed::BenchSeeder`:
/// no audit; not reachable from `Store` or `Tx`).
pub(crate) async fn bulk_insert_patients<'e, E: Executor<'e, Database = Db>>(
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

pub(crate) async fn insert_provider<'e, E: Executor<'e, Database = Db>>(
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

pub(crate) async fn provider_by_id<'e, E: Executor<'e, Database = Db>>(
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

pub(crate) async fn provider_by_npi<'e, E: Executor<'e, Database = Db>>(
    e: E,
    npi: &str,
) -> StoreResult<Option<ProviderRecord>> {
    sqlx::query_as::<_, ProviderRow>(
        "SELECT id, npi, family_name, given_name, phone, created_at \
         FROM providers WHERE npi = $1",
    )
    .bind(npi)
    .fetch_optional(e)
    .await?
    .map(provider)
    .transpose()
}

pub(crate) async fn list_providers<'e, E: Executor<'e, Database = Db>>(
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

type LocationRow = (
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
);

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

pub(crate) async fn insert_location<'e, E: Executor<'e, Database = Db>>(
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

pub(crate) async fn location_by_id<'e, E: Executor<'e, Database = Db>>(
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

pub(crate) async fn location_by_code<'e, E: Executor<'e, Database = Db>>(
    e: E,
    code: &str,
) -> StoreResult<Option<LocationRecord>> {
    sqlx::query_as::<_, LocationRow>(
        "SELECT id, code, name, kind, address, phone, contact_name, created_at \
         FROM locations WHERE code = $1",
    )
    .bind(code)
    .fetch_optional(e)
    .await?
    .map(location)
    .transpose()
}

pub(crate) async fn list_locations<'e, E: Executor<'e, Database = Db>>(
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

/// The provider a user is linked to (a physician's own orders), if any.
pub(crate) async fn user_provider<'e, E: Executor<'e, Database = Db>>(
    e: E,
    user_id: i64,
) -> StoreResult<Option<i64>> {
    Ok(
        sqlx::query_as::<_, (Option<i64>,)>("SELECT provider_id FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(e)
            .await?
            .and_then(|(p,)| p),
    )
}

/// Links a user to a provider (or unlinks with `None`); false when the user is missing.
pub(crate) async fn set_user_provider<'e, E: Executor<'e, Database = Db>>(
    e: E,
    user_id: i64,
    provider_id: Option<i64>,
) -> StoreResult<bool> {
    let r = sqlx::query("UPDATE users SET provider_id = $1 WHERE id = $2")
        .bind(provider_id)
        .bind(user_id)
        .execute(e)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Whether the patient has an order placed by the provider.
pub(crate) async fn patient_ordered_by<'e, E: Executor<'e, Database = Db>>(
    e: E,
    patient_id: i64,
    provider_id: i64,
) -> StoreResult<bool> {
    Ok(sqlx::query_as::<_, (i64,)>(
        "SELECT id FROM orders WHERE patient_id = $1 AND provider_id = $2 LIMIT 1",
    )
    .bind(patient_id)
    .bind(provider_id)
    .fetch_optional(e)
    .await?
    .is_some())
}
