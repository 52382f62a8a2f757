//! Users, login, tokens.
//!
//! Tokens are 256-bit random values; only their SHA-256 is stored, so a copy of the database
//! does not hold usable tokens. Sessions live in the database (not in a process), so any
//! server process sharing the database accepts and revokes them.

use std::sync::OnceLock;

use aliquot_domain::auth::{DisplayName, PasswordPolicy, Permission, Role, Username};
use aliquot_store::{LoginFailures, NewSession, NewUser, UserRecord};
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use jiff::{SignedDuration, Timestamp};
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};

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

async fn verify_password(password: String, hash: Option<String>) -> AppResult<bool> {
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
    /// Exchanges a username and password for a bearer token.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        source: Source,
    ) -> AppResult<IssuedToken> {
        let now = self.now();
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
        if let Some(f) = self.store.login_failures(&key).await?
            && let Some(until) = f.locked_until.filter(|u| *u > now)
        {
            return Err(AppError::Locked { until });
        }
        let user = self.store.user_by_username(&key).await?;
        let ok = verify_password(
            password.to_owned(),
            user.as_ref().map(|u| u.password_hash.clone()),
        )
        .await?;
        let usable = user.as_ref().filter(|u| ok && u.disabled_at.is_none());
        let Some(user) = usable else {
            let mut tx = self.store.begin().await?;
            let previous = tx.login_failures(&key).await?;
            // A lock that has run out starts a fresh count.
            let failures = match previous {
                Some(p) if p.locked_until.is_none_or(|u| u > now) => p.failures + 1,
                _ => 1,
            };
            let locked_until = self
                .config
                .throttle
                .lock_after(u32::try_from(failures).unwrap_or(u32::MAX))
                .and_then(|d| now.checked_add(d).ok());
            tx.set_login_failures(&LoginFailures {
                username: key.clone(),
                failures,
                locked_until,
            })
            .await?;
            tx.audit(aliquot_store::AuditEntry {
                at: now,
                actor_id: None,
                actor_name: key.clone(),
                actor_role: None,
                source: source.as_str().to_owned(),
                action: "auth.login_failed".into(),
                entity_type: "user".into(),
                entity_id: user
                    .as_ref()
                    .map(|u| u.id.to_string())
                    .unwrap_or_else(|| "unknown".into()),
                reason: None,
                old_value: None,
                new_value: Some(json!({ "failures": failures, "locked": locked_until.is_some() })),
            });
            tx.commit().await?;
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
        let mut tx = self.store.begin().await?;
        let session_id = tx
            .insert_session(&NewSession {
                token_hash: token_hash(&token, source),
                user_id: user.id,
                created_at: now,
                expires_at,
            })
            .await?;
        tx.clear_login_failures(&key).await?;
        tx.audit(self.entry(
            &actor,
            "auth.login",
            "session",
            session_id,
            None,
            Some(json!({ "user_id": user.id, "expires_at": expires_at.to_string() })),
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
        if now.duration_since(s.last_seen_at) > SignedDuration::from_secs(60) {
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
    /// caller's other sessions.
    pub async fn change_own_password(
        &self,
        actor: &Actor,
        current: &str,
        new: &str,
    ) -> AppResult<()> {
        let id = actor.user_id.ok_or(AppError::NotFound { entity: "user" })?;
        let user = self
            .store
            .user_by_id(id)
            .await?
            .ok_or(AppError::NotFound { entity: "user" })?;
        if !verify_password(current.to_owned(), Some(user.password_hash)).await? {
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

fn username_taken() -> AppError {
    AppError::Conflict {
        field: Some("username".into()),
        code: "username_taken",
        message: "this username is already taken".into(),
    }
}
