//! Users, login, tokens.
//!
//! Tokens are 256-bit random values; only their SHA-256 is stored, so a copy of the database
//! does not hold usable tokens. Sessions live in the database (not in a process), so any
//! server process sharing the database accepts and revokes them.

use std::sync::OnceLock;

use std::net::IpAddr;

use aliquot_domain::auth::{
    AttemptHistory, DisplayName, FailureAudit, FailureCount, PasswordPolicy, Permission, Role,
    ThrottleVerdict, Username, address_key,
};
use aliquot_store::{LoginAttempts, NewSession, NewUser, UserRecord};
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use jiff::{SignedDuration, Timestamp};
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::security::grants::{approval_required, needs_approval};
use crate::security::mfa::{CheckedFactor, SecondFactor, SecondFactorError};
use crate::{Actor, App, AppError, AppResult, Source, require_reason};

/// What a client learns about a user. Never the password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserView {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: Timestamp,
}

impl UserView {
    fn from_record(u: &UserRecord) -> AppResult<UserView> {
        Ok(UserView {
            id: u.id,
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            role: Role::parse(&u.role).map_err(|e| AppError::Internal(e.to_string()))?,
            disabled: u.disabled_at.is_some(),
            created_at: u.created_at,
        })
    }
}

pub struct NewUserInput {
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub password: String,
}

#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub expires_at: Timestamp,
    pub user: UserView,
}

const BAD_CREDENTIALS: &str = "invalid username or password";

/// What the database keeps of a token. A web session's token (kept in the browser's session
/// cookie) is hashed under its own prefix, so a cookie's value is never accepted as a bearer
/// token and a bearer token never as a cookie: each finds no session on the other edge.
fn token_hash(token: &str, source: Source) -> String {
    let mut h = Sha256::new();
    if source == Source::Web {
        h.update(b"aliquot-web-session\0");
    }
    h.update(token.as_bytes());
    hex::encode(h.finalize())
}

async fn hash_password(password: String) -> AppResult<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| AppError::Internal(format!("password hashing failed: {e}")))
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))?
}

/// A hash with the same cost as a real one, verified when the username is unknown so that
/// the answer takes as long as for a known user.
static DUMMY_HASH: OnceLock<String> = OnceLock::new();

pub(crate) async fn verify_password(password: String, hash: Option<String>) -> AppResult<bool> {
    tokio::task::spawn_blocking(move || {
        let dummy = DUMMY_HASH.get_or_init(|| {
            Argon2::default()
                .hash_password(b"aliquot timing equaliser")
                .map(|h| h.to_string())
                .unwrap_or_default()
        });
        let hash = hash.as_deref().unwrap_or(dummy);
        Argon2::default()
            .verify_password(password.as_bytes(), hash)
            .is_ok()
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))
}

fn field_error(field: &str, e: aliquot_domain::auth::AuthRuleError) -> AppError {
    AppError::invalid(field, e.code(), e.to_string())
}

impl App {
    /// Refuses a credential check of `account` from `address` while the throttle makes it
    /// wait (nothing is written: a refused flood adds no rows).
    pub(crate) async fn check_throttle(&self, address: &str, account: &str) -> AppResult<()> {
        let t = &self.config.throttle;
        let now = self.now();
        let since = now
            .checked_sub(t.window)
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let counts = self.store.login_attempts(address, account, since).await?;
        match t.check(&history(&counts), now) {
            ThrottleVerdict::Allow => Ok(()),
            ThrottleVerdict::Wait { until, .. } => Err(locked(until, now)),
        }
    }

    /// Counts a failed credential check and audits it, at most twice per pair and window
    /// (the first failure, and the one after which the pair or the address waits).
    pub(crate) async fn record_failure(
        &self,
        address: &str,
        account: &str,
        source: Source,
        actor: Option<&Actor>,
        user_id: Option<i64>,
        action: &str,
    ) -> AppResult<()> {
        let t = &self.config.throttle;
        let now = self.now();
        let since = now
            .checked_sub(t.window)
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let mut tx = self.store.begin().await?;
        let counts = tx
            .record_login_failure(address, account, now, since)
            .await?;
        let h = history(&counts);
        let n = |c: Option<FailureCount>| c.map_or(0, |c| c.count);
        let audit = t.audit_failure(n(h.pair), n(h.address));
        let (action, detail) = match audit {
            FailureAudit::CountOnly => (None, None),
            FailureAudit::First => (
                Some(action.to_owned()),
                Some(json!({ "address": address, "failures_in_window": n(h.pair) })),
            ),
            FailureAudit::Throttled => {
                let (retry, reason) = match t.check(&h, now) {
                    ThrottleVerdict::Wait { until, reason } => {
                        (until.duration_since(now).as_secs(), reason.as_str())
                    }
                    ThrottleVerdict::Allow => (0, "none"),
                };
                (
                    Some("auth.throttled".to_owned()),
                    Some(json!({
                        "address": address,
                        "failures_in_window": n(h.pair),
                        "address_failures_in_window": n(h.address),
                        "wait_seconds": retry,
                        "reason": reason,
                    })),
                )
            }
        };
        if let Some(action) = action {
            tx.audit(aliquot_store::AuditEntry {
                at: now,
                actor_id: actor.and_then(|a| a.user_id),
                actor_name: actor.map_or_else(|| account.to_owned(), |a| a.username.clone()),
                actor_role: actor.map(|a| a.role.as_str().to_owned()),
                source: source.as_str().to_owned(),
                action,
                entity_type: "user".into(),
                entity_id: user_id
                    .map(|id| id.to_string())
                    .unwrap_or_else(|| "unknown".into()),
                reason: None,
                old_value: None,
                new_value: detail,
            });
        }
        tx.commit().await?;
        Ok(())
    }

    /// Exchanges a username and password for a bearer token. `address` is the client's
    /// address: failures are throttled per (address, username), per address and per
    /// username (see [`LoginThrottle`](aliquot_domain::auth::LoginThrottle)).
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        source: Source,
        address: IpAddr,
    ) -> AppResult<IssuedToken> {
        self.login_with(username, password, None, source, address)
            .await
    }

    /// [`App::login`] with a second factor: required when the user has confirmed a TOTP
    /// enrolment (401 `mfa_required` without one); a user whose role the lab requires a
    /// second factor of (setting `auth.mfa_required`) and who has none enrolled is refused
    /// (401 `mfa_enrolment_required`) until they enrol. A wrong or replayed code counts as a
    /// failed login, throttled like a wrong password.
    pub async fn login_with(
        &self,
        username: &str,
        password: &str,
        second: Option<SecondFactor>,
        source: Source,
        address: IpAddr,
    ) -> AppResult<IssuedToken> {
        let now = self.now();
        let address = address_key(address);
        // An unparsable name cannot exist; it is still throttled under its trimmed spelling so
        // the answer does not reveal which names are well-formed.
        let key = Username::parse(username)
            .map(|u| u.as_str().to_owned())
            .unwrap_or_else(|_| {
                username
                    .trim()
                    .chars()
                    .take(64)
                    .collect::<String>()
                    .to_lowercase()
            });
        self.check_throttle(&address, &key).await?;
        let user = self.store.user_by_username(&key).await?;
        let ok = verify_password(
            password.to_owned(),
            user.as_ref().map(|u| u.password_hash.clone()),
        )
        .await?;
        let usable = user.as_ref().filter(|u| ok && u.disabled_at.is_none());
        let Some(user) = usable else {
            self.record_failure(
                &address,
                &key,
                source,
                None,
                user.as_ref().map(|u| u.id),
                "auth.login_failed",
            )
            .await?;
            return Err(AppError::Unauthorized {
                code: "invalid_credentials",
                message: BAD_CREDENTIALS.into(),
            });
        };

        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let token = hex::encode(raw);
        let expires_at = now
            .checked_add(self.config.token_ttl)
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let actor = Actor {
            user_id: Some(user.id),
            username: user.username.clone(),
            role: Role::parse(&user.role).map_err(|e| AppError::Internal(e.to_string()))?,
            source,
            session_id: None,
        };
        let factor = self
            .second_factor_due(&actor, second, &address, &key)
            .await?;
        let mut tx = self.store.begin().await?;
        if let Some(factor) = &factor
            && !self.use_second_factor(&mut *tx, user.id, factor).await?
        {
            drop(tx);
            return Err(self
                .second_factor_failed(&address, &key, &actor, SecondFactorError::Replayed)
                .await);
        }
        let session_id = tx
            .insert_session(&NewSession {
                token_hash: token_hash(&token, source),
                user_id: user.id,
                created_at: now,
                expires_at,
            })
            .await?;
        tx.clear_login_failures(&address, &key).await?;
        tx.audit(self.entry(
            &actor,
            "auth.login",
            "session",
            session_id,
            None,
            Some(json!({
                "user_id": user.id,
                "expires_at": expires_at.to_string(),
                "second_factor": factor.as_ref().map(CheckedFactor::kind),
            })),
            None,
        ));
        tx.commit().await?;
        Ok(IssuedToken {
            token,
            expires_at,
            user: UserView::from_record(user)?,
        })
    }

    /// Resolves a token to the acting user, refusing revoked, expired and idle tokens and
    /// disabled users. `source` is the edge it came from: a web session's token
    /// ([`Source::Web`], issued by `login(…, Source::Web)`) is accepted only there.
    pub async fn authenticate(&self, token: &str, source: Source) -> AppResult<Actor> {
        self.authenticate_as(token, source, true).await
    }

    /// As [`App::authenticate`], but the request does not count as the user's activity: a
    /// page refreshing itself (the dashboard's polling) keeps no session alive past its idle
    /// timeout.
    pub async fn authenticate_passive(&self, token: &str, source: Source) -> AppResult<Actor> {
        self.authenticate_as(token, source, false).await
    }

    async fn authenticate_as(&self, token: &str, source: Source, active: bool) -> AppResult<Actor> {
        let unauthorized = |code, message: &str| AppError::Unauthorized {
            code,
            message: message.to_owned(),
        };
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(unauthorized("invalid_token", "the token is not valid"));
        }
        let now = self.now();
        let Some(s) = self
            .store
            .session_by_token_hash(&token_hash(token, source))
            .await?
        else {
            return Err(unauthorized("invalid_token", "the token is not valid"));
        };
        if s.revoked_at.is_some() {
            return Err(unauthorized(
                "token_revoked",
                "the token has been revoked; log in again",
            ));
        }
        if s.expires_at <= now {
            return Err(unauthorized(
                "token_expired",
                "the token has expired; log in again",
            ));
        }
        if s.last_seen_at
            .checked_add(self.config.idle_timeout)
            .is_ok_and(|t| t <= now)
        {
            return Err(unauthorized(
                "token_idle",
                "the session timed out after inactivity; log in again",
            ));
        }
        if s.user.disabled_at.is_some() {
            return Err(unauthorized("user_disabled", "this account is disabled"));
        }
        let role = Role::parse(&s.user.role).map_err(|e| AppError::Internal(e.to_string()))?;
        // Keep the idle clock current without a write on every request.
        if active && now.duration_since(s.last_seen_at) > SignedDuration::from_secs(60) {
            let mut tx = self.store.begin().await?;
            tx.touch_session(s.session_id, now).await?;
            tx.commit().await?;
        }
        Ok(Actor {
            user_id: Some(s.user.id),
            username: s.user.username,
            role,
            source,
            session_id: Some(s.session_id),
        })
    }

    /// Revokes the caller's token (a web session by its own hash: `actor.source`).
    pub async fn logout(&self, actor: &Actor, token: &str) -> AppResult<()> {
        let mut tx = self.store.begin().await?;
        tx.revoke_session(&token_hash(token, actor.source), self.now())
            .await?;
        tx.audit(self.entry(
            actor,
            "auth.logout",
            "session",
            actor.session_id.unwrap_or(0),
            None,
            None,
            None,
        ));
        tx.commit().await?;
        Ok(())
    }

    pub async fn create_user(&self, actor: &Actor, input: NewUserInput) -> AppResult<UserView> {
        actor.require(Permission::UserManage)?;
        let username = Username::parse(&input.username).map_err(|e| field_error("username", e))?;
        let display_name =
            DisplayName::parse(&input.display_name).map_err(|e| field_error("display_name", e))?;
        let role = Role::parse(&input.role).map_err(|e| field_error("role", e))?;
        if needs_approval(actor, role) {
            return Err(approval_required(role));
        }
        PasswordPolicy::check(&input.password).map_err(|e| field_error("password", e))?;
        if self
            .store
            .user_by_username(username.as_str())
            .await?
            .is_some()
        {
            return Err(username_taken());
        }
        let hash = hash_password(input.password).await?;
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let id = tx
            .insert_user(&NewUser {
                username: username.as_str().to_owned(),
                display_name: display_name.as_str().to_owned(),
                role: role.as_str().to_owned(),
                password_hash: hash,
                created_at: now,
            })
            .await
            .map_err(|e| match e {
                aliquot_store::StoreError::Conflict(_) => username_taken(),
                other => other.into(),
            })?;
        tx.audit(self.entry(
            actor,
            "user.create",
            "user",
            id,
            None,
            Some(json!({
                "username": username.as_str(),
                "display_name": display_name.as_str(),
                "role": role.as_str(),
            })),
            None,
        ));
        tx.commit().await?;
        Ok(UserView {
            id,
            username: username.as_str().to_owned(),
            display_name: display_name.as_str().to_owned(),
            role,
            disabled: false,
            created_at: now,
        })
    }

    pub async fn list_users(&self, actor: &Actor) -> AppResult<Vec<UserView>> {
        actor.require(Permission::UserRead)?;
        self.store
            .list_users()
            .await?
            .iter()
            .map(UserView::from_record)
            .collect()
    }

    /// The caller's own account; every authenticated user may see it.
    pub async fn me(&self, actor: &Actor) -> AppResult<UserView> {
        let id = actor.user_id.ok_or(AppError::NotFound { entity: "user" })?;
        let u = self
            .store
            .user_by_id(id)
            .await?
            .ok_or(AppError::NotFound { entity: "user" })?;
        UserView::from_record(&u)
    }

    /// Changes a user's role. Nobody changes their own role, so no one can raise their own
    /// privileges; the user's sessions are revoked so the new role applies at once.
    pub async fn set_user_role(
        &self,
        actor: &Actor,
        user_id: i64,
        role: &str,
        reason: Option<&str>,
    ) -> AppResult<UserView> {
        actor.require(Permission::UserManage)?;
        if actor.user_id == Some(user_id) {
            return Err(AppError::Forbidden {
                message: "you cannot change your own role".into(),
            });
        }
        let role = Role::parse(role).map_err(|e| field_error("role", e))?;
        let reason = require_reason(reason)?;
        if needs_approval(actor, role) {
            return Err(approval_required(role));
        }
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let before = tx
            .user_by_id(user_id)
            .await?
            .ok_or(AppError::NotFound { entity: "user" })?;
        tx.set_user_role(user_id, role.as_str()).await?;
        tx.revoke_user_sessions(user_id, None, now).await?;
        tx.audit(self.entry(
            actor,
            "user.role_change",
            "user",
            user_id,
            Some(json!({ "role": before.role })),
            Some(json!({ "role": role.as_str() })),
            Some(&reason),
        ));
        tx.commit().await?;
        let mut view = UserView::from_record(&before)?;
        view.role = role;
        Ok(view)
    }

    /// Disables (or re-enables) an account. Accounts are never deleted: the audit trail
    /// refers to them.
    pub async fn set_user_disabled(
        &self,
        actor: &Actor,
        user_id: i64,
        disabled: bool,
        reason: Option<&str>,
    ) -> AppResult<UserView> {
        actor.require(Permission::UserManage)?;
        if actor.user_id == Some(user_id) {
            return Err(AppError::Forbidden {
                message: "you cannot disable your own account".into(),
            });
        }
        let reason = require_reason(reason)?;
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let before = tx
            .user_by_id(user_id)
            .await?
            .ok_or(AppError::NotFound { entity: "user" })?;
        tx.set_user_disabled(user_id, disabled.then_some(now))
            .await?;
        if disabled {
            tx.revoke_user_sessions(user_id, None, now).await?;
        }
        tx.audit(self.entry(
            actor,
            if disabled {
                "user.disable"
            } else {
                "user.enable"
            },
            "user",
            user_id,
            Some(json!({ "disabled": before.disabled_at.is_some() })),
            Some(json!({ "disabled": disabled })),
            Some(&reason),
        ));
        tx.commit().await?;
        let mut view = UserView::from_record(&before)?;
        view.disabled = disabled;
        Ok(view)
    }

    /// Changes the caller's own password, after checking the current one, and revokes the
    /// caller's other sessions. A wrong current password counts as a failed login of the
    /// account from `address`, so a stolen session cannot guess the password faster than a
    /// login could.
    pub async fn change_own_password(
        &self,
        actor: &Actor,
        current: &str,
        new: &str,
        address: IpAddr,
    ) -> AppResult<()> {
        let id = actor.user_id.ok_or(AppError::NotFound { entity: "user" })?;
        let user = self
            .store
            .user_by_id(id)
            .await?
            .ok_or(AppError::NotFound { entity: "user" })?;
        let address = address_key(address);
        self.check_throttle(&address, &user.username).await?;
        if !verify_password(current.to_owned(), Some(user.password_hash)).await? {
            self.record_failure(
                &address,
                &user.username,
                actor.source,
                Some(actor),
                Some(id),
                "user.password_change_failed",
            )
            .await?;
            return Err(AppError::invalid(
                "current_password",
                "invalid_credentials",
                "the current password is wrong",
            ));
        }
        PasswordPolicy::check(new).map_err(|e| field_error("new_password", e))?;
        let hash = hash_password(new.to_owned()).await?;
        let now = self.now();
        let mut tx = self.store.begin().await?;
        tx.set_user_password(id, &hash, now).await?;
        tx.clear_login_failures(&address, &user.username).await?;
        let revoked = tx.revoke_user_sessions(id, actor.session_id, now).await?;
        tx.audit(self.entry(
            actor,
            "user.password_change",
            "user",
            id,
            None,
            Some(json!({ "other_sessions_revoked": revoked })),
            None,
        ));
        tx.commit().await?;
        Ok(())
    }
}

fn history(c: &LoginAttempts) -> AttemptHistory {
    let count = |v: Option<(i64, Timestamp)>| {
        v.map(|(n, last_at)| FailureCount {
            count: u32::try_from(n).unwrap_or(u32::MAX),
            last_at,
        })
    };
    AttemptHistory {
        pair: count(c.pair),
        address: count(c.address),
        other_addresses: count(c.other_addresses),
    }
}

fn locked(until: Timestamp, now: Timestamp) -> AppError {
    let secs = until.duration_since(now).as_secs().max(1);
    AppError::Locked {
        retry_after_secs: secs.unsigned_abs(),
    }
}

fn username_taken() -> AppError {
    AppError::Conflict {
        field: Some("username".into()),
        code: "username_taken",
        message: "this username is already taken".into(),
    }
}
