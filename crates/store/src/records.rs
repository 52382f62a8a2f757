//! Plain records that cross the store boundary. Timestamps are `jiff::Timestamp` (UTC); the
//! store converts them to epoch microseconds.

use jiff::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
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

#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub password_hash: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone)]
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginFailures {
    pub username: String,
    pub failures: i64,
    pub locked_until: Option<Timestamp>,
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
