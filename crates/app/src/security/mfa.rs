//! The second factor (issue 16): TOTP (RFC 6238, `aliquot_domain::totp`) with one-time
//! recovery codes.
//!
//! - **Enrolment** proves the password again (throttled like a login): `start_mfa_enrolment`
//!   makes a secret and shows it once, as an `otpauth://` URI; `confirm_mfa_enrolment` takes
//!   the first code from the app, confirms, and shows ten recovery codes once (stored as
//!   SHA-256; each works once). Both are open to a user who cannot log in yet, so a lab that
//!   requires a second factor does not lock out the user who must enrol.
//! - **Login** with a confirmed enrolment requires a code or a recovery code; a code is
//!   accepted only for a time step later than the last one accepted (guarded update), so the
//!   same code is refused within its step, also across servers. Wrong codes count as failed
//!   logins (the same throttle as passwords).
//! - **Required** for administrators and directors when the setting `auth.mfa_required` is
//!   `true` (roles in [`MFA_ROLES`]).
//! - **Reset** by another administrator (`user.manage`) with a reason, audited; nobody resets
//!   their own.

use std::net::IpAddr;

use aliquot_domain::auth::{Permission, Role, Username, address_key};
use aliquot_domain::totp;
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::auth::verify_password;
use crate::{Actor, App, AppError, AppResult, Source, require_reason};

/// The setting that requires a second factor of the roles in [`MFA_ROLES`].
pub const MFA_REQUIRED_SETTING: &str = "auth.mfa_required";

/// The roles a lab may require a second factor of: those that manage users and settings or
/// sign off results and rules.
pub const MFA_ROLES: [Role; 2] = [Role::Admin, Role::Director];

/// What a user offers beside the password.
#[derive(Clone, PartialEq, Eq)]
pub enum SecondFactor {
    /// A six-digit code from the authenticator app.
    Totp(String),
    /// One of the recovery codes shown at enrolment.
    RecoveryCode(String),
}

impl std::fmt::Debug for SecondFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecondFactor::Totp(_) => f.write_str("Totp(<redacted>)"),
            SecondFactor::RecoveryCode(_) => f.write_str("RecoveryCode(<redacted>)"),
        }
    }
}

impl SecondFactor {
    /// A code typed into one field: a recovery code when it has that shape, else a TOTP code.
    pub fn from_typed(code: &str) -> Option<SecondFactor> {
        let code = code.trim();
        if code.is_empty() {
            None
        } else if totp::normalise_recovery_code(code).is_some() {
            Some(SecondFactor::RecoveryCode(code.to_owned()))
        } else {
            Some(SecondFactor::Totp(code.to_owned()))
        }
    }
}

/// A second factor that passed its check, to be used up inside the login's transaction.
#[derive(Debug, Clone)]
pub(crate) enum CheckedFactor {
    Totp { step: i64 },
    Recovery { hash: String },
}

impl CheckedFactor {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            CheckedFactor::Totp { .. } => "totp",
            CheckedFactor::Recovery { .. } => "recovery_code",
        }
    }
}

/// Why a second factor was refused.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SecondFactorError {
    Wrong,
    Replayed,
}

/// A new enrolment: shown once.
#[derive(Clone, PartialEq, Eq)]
pub struct MfaEnrolment {
    /// The secret, Base32 (for apps that take it typed).
    pub secret: String,
    /// `otpauth://totp/…` for a QR code or a paste.
    pub otpauth_uri: String,
}

impl std::fmt::Debug for MfaEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MfaEnrolment(<redacted>)")
    }
}

/// A user's second-factor state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaStatus {
    pub enrolled: bool,
    pub pending: bool,
    /// The lab requires it of this user's role.
    pub required: bool,
    pub recovery_codes_left: i64,
}

fn recovery_hash(normalised: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"aliquot-recovery-code\0");
    h.update(normalised.as_bytes());
    hex::encode(h.finalize())
}

fn second_factor_error(e: SecondFactorError) -> AppError {
    match e {
        SecondFactorError::Wrong => AppError::Unauthorized {
            code: "invalid_second_factor",
            message: "the authentication code is wrong or expired".into(),
        },
        SecondFactorError::Replayed => AppError::Unauthorized {
            code: "totp_replayed",
            message: "this code was already used; enter the next code from your app".into(),
        },
    }
}

impl App {
    /// Whether the lab requires a second factor of `role`.
    pub async fn mfa_required_for(&self, role: Role) -> AppResult<bool> {
        Ok(MFA_ROLES.contains(&role) && self.flag_setting(MFA_REQUIRED_SETTING).await?)
    }

    /// The second factor a login of `actor` (password already checked) must use up, if any.
    /// Refuses a missing, wrong or replayed code (the last two counted as failures).
    pub(crate) async fn second_factor_due(
        &self,
        actor: &Actor,
        second: Option<SecondFactor>,
        address: &str,
        account: &str,
    ) -> AppResult<Option<CheckedFactor>> {
        let user_id = actor.user_id.ok_or(AppError::NotFound { entity: "user" })?;
        let mfa = self
            .store
            .user_mfa(user_id)
            .await?
            .filter(|m| m.confirmed_at.is_some());
        let Some(mfa) = mfa else {
            if self.mfa_required_for(actor.role).await? {
                return Err(AppError::Unauthorized {
                    code: "mfa_enrolment_required",
                    message: "your role requires a second factor: enrol an authenticator app \
                              (POST /api/v1/auth/mfa/enroll, or the login page), then log in \
                              with its code"
                        .into(),
                });
            }
            return Ok(None);
        };
        let Some(second) = second else {
            return Err(AppError::Unauthorized {
                code: "mfa_required",
                message: "enter the code from your authenticator app (or a recovery code)".into(),
            });
        };
        let checked = match second {
            SecondFactor::Totp(code) => {
                let secret = totp::base32_decode(&mfa.secret)
                    .ok_or_else(|| AppError::Internal("stored TOTP secret is not Base32".into()))?;
                totp::check(&secret, &code, self.now().as_second(), mfa.last_step)
                    .map(|step| CheckedFactor::Totp { step })
                    .map_err(|e| match e {
                        totp::TotpError::Replayed => SecondFactorError::Replayed,
                        _ => SecondFactorError::Wrong,
                    })
            }
            SecondFactor::RecoveryCode(code) => totp::normalise_recovery_code(&code)
                .map(|c| CheckedFactor::Recovery {
                    hash: recovery_hash(&c),
                })
                .ok_or(SecondFactorError::Wrong),
        };
        match checked {
            Ok(c) => Ok(Some(c)),
            Err(e) => Err(self.second_factor_failed(address, account, actor, e).await),
        }
    }

    /// Uses up a checked factor inside `tx`; false when it was used meanwhile (a replay that
    /// raced, or a recovery code already used or unknown).
    pub(crate) async fn use_second_factor(
        &self,
        tx: &mut dyn aliquot_store::Tx,
        user_id: i64,
        factor: &CheckedFactor,
    ) -> AppResult<bool> {
        Ok(match factor {
            CheckedFactor::Totp { step } => tx.use_mfa_step(user_id, *step, None).await?,
            CheckedFactor::Recovery { hash } => {
                tx.use_recovery_code(user_id, hash, self.now()).await?
            }
        })
    }

    /// Counts a refused second factor as a failed login and returns the error to answer.
    pub(crate) async fn second_factor_failed(
        &self,
        address: &str,
        account: &str,
        actor: &Actor,
        e: SecondFactorError,
    ) -> AppError {
        if let Err(recorded) = self
            .record_failure(
                address,
                account,
                actor.source,
                Some(actor),
                actor.user_id,
                "auth.mfa_failed",
            )
            .await
        {
            return recorded;
        }
        second_factor_error(e)
    }

    /// Checks a username and password for enrolment (throttled like a login) and returns
    /// the user as an actor.
    async fn enrolling_user(
        &self,
        username: &str,
        password: &str,
        source: Source,
        address: &str,
    ) -> AppResult<Actor> {
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
        self.check_throttle(address, &key).await?;
        let user = self.store.user_by_username(&key).await?;
        let ok = verify_password(
            password.to_owned(),
            user.as_ref().map(|u| u.password_hash.clone()),
        )
        .await?;
        let Some(user) = user.filter(|u| ok && u.disabled_at.is_none()) else {
            self.record_failure(address, &key, source, None, None, "auth.login_failed")
                .await?;
            return Err(AppError::Unauthorized {
                code: "invalid_credentials",
                message: "invalid username or password".into(),
            });
        };
        Ok(Actor {
            user_id: Some(user.id),
            username: user.username.clone(),
            role: Role::parse(&user.role).map_err(|e| AppError::Internal(e.to_string()))?,
            source,
            session_id: None,
        })
    }

    /// Starts a TOTP enrolment after checking the password: a new secret, shown once. A
    /// pending enrolment is replaced; a confirmed one must be reset by an administrator
    /// first (409 `mfa_already_enrolled`).
    pub async fn start_mfa_enrolment(
        &self,
        username: &str,
        password: &str,
        source: Source,
        address: IpAddr,
    ) -> AppResult<MfaEnrolment> {
        let address = address_key(address);
        let actor = self
            .enrolling_user(username, password, source, &address)
            .await?;
        let user_id = actor.user_id.ok_or(AppError::NotFound { entity: "user" })?;
        let mut secret = [0u8; totp::SECRET_BYTES];
        rand::rng().fill_bytes(&mut secret);
        let encoded = totp::base32_encode(&secret);
        let issuer = self
            .store
            .setting("lab.name")
            .await?
            .map(|s| s.value)
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| "Aliquot".to_owned());
        let mut tx = self.store.begin().await?;
        if !tx.start_mfa(user_id, &encoded, self.now()).await? {
            return Err(AppError::Conflict {
                field: None,
                code: "mfa_already_enrolled",
                message: "a second factor is already enrolled; an administrator must reset it \
                          before a new one is enrolled"
                    .into(),
            });
        }
        tx.audit(self.entry(
            &actor,
            "user.mfa_enrol_start",
            "user",
            user_id,
            None,
            Some(json!({ "method": "totp" })),
            None,
        ));
        tx.commit().await?;
        Ok(MfaEnrolment {
            otpauth_uri: totp::otpauth_uri(&issuer, &actor.username, &secret),
            secret: encoded,
        })
    }

    /// Confirms a pending enrolment with the first code from the app (password checked
    /// again) and returns the recovery codes, shown once.
    pub async fn confirm_mfa_enrolment(
        &self,
        username: &str,
        password: &str,
        code: &str,
        source: Source,
        address: IpAddr,
    ) -> AppResult<Vec<String>> {
        let address = address_key(address);
        let actor = self
            .enrolling_user(username, password, source, &address)
            .await?;
        let user_id = actor.user_id.ok_or(AppError::NotFound { entity: "user" })?;
        let pending = self
            .store
            .user_mfa(user_id)
            .await?
            .filter(|m| m.confirmed_at.is_none())
            .ok_or(AppError::Conflict {
                field: None,
                code: "no_pending_enrolment",
                message: "no enrolment is waiting for its first code; start one first".into(),
            })?;
        let secret = totp::base32_decode(&pending.secret)
            .ok_or_else(|| AppError::Internal("stored TOTP secret is not Base32".into()))?;
        let step = match totp::check(&secret, code, self.now().as_second(), pending.last_step) {
            Ok(step) => step,
            Err(totp::TotpError::Malformed) => {
                return Err(AppError::invalid(
                    "code",
                    "invalid_totp",
                    "the code must be the 6 digits the app shows",
                ));
            }
            Err(_) => {
                self.record_failure(
                    &address,
                    &actor.username,
                    source,
                    Some(&actor),
                    Some(user_id),
                    "auth.mfa_failed",
                )
                .await?;
                return Err(AppError::invalid(
                    "code",
                    "wrong_totp",
                    "the code is wrong or expired: check the phone's clock and enter the \
                     current code",
                ));
            }
        };
        let codes: Vec<String> = (0..totp::RECOVERY_CODES)
            .map(|_| {
                let mut raw = [0u8; 10];
                rand::rng().fill_bytes(&mut raw);
                totp::recovery_code(&raw)
            })
            .collect();
        let hashes: Vec<String> = codes
            .iter()
            .filter_map(|c| totp::normalise_recovery_code(c))
            .map(|c| recovery_hash(&c))
            .collect();
        let now = self.now();
        let mut tx = self.store.begin().await?;
        if !tx.use_mfa_step(user_id, step, Some(now)).await? {
            return Err(AppError::Conflict {
                field: None,
                code: "no_pending_enrolment",
                message: "the enrolment was confirmed or replaced meanwhile".into(),
            });
        }
        tx.replace_recovery_codes(user_id, &hashes).await?;
        tx.clear_login_failures(&address, &actor.username).await?;
        tx.audit(self.entry(
            &actor,
            "user.mfa_enrol",
            "user",
            user_id,
            None,
            Some(json!({ "method": "totp", "recovery_codes": codes.len() })),
            None,
        ));
        tx.commit().await?;
        Ok(codes)
    }

    /// The caller's second-factor state.
    pub async fn mfa_status(&self, actor: &Actor) -> AppResult<MfaStatus> {
        let user_id = actor.user_id.ok_or(AppError::NotFound { entity: "user" })?;
        let mfa = self.store.user_mfa(user_id).await?;
        Ok(MfaStatus {
            enrolled: mfa.as_ref().is_some_and(|m| m.confirmed_at.is_some()),
            pending: mfa.as_ref().is_some_and(|m| m.confirmed_at.is_none()),
            required: self.mfa_required_for(actor.role).await?,
            recovery_codes_left: mfa.map_or(0, |m| m.recovery_codes_left),
        })
    }

    /// Removes another user's second factor (a lost phone), with a reason; the user enrols
    /// again. Their sessions are revoked. Nobody resets their own.
    pub async fn reset_user_mfa(
        &self,
        actor: &Actor,
        user_id: i64,
        reason: Option<&str>,
    ) -> AppResult<()> {
        actor.require(Permission::UserManage)?;
        if actor.user_id == Some(user_id) {
            return Err(AppError::Forbidden {
                message: "you cannot reset your own second factor; ask another administrator"
                    .into(),
            });
        }
        let reason = require_reason(reason)?;
        let now = self.now();
        let mut tx = self.store.begin().await?;
        tx.user_by_id(user_id)
            .await?
            .ok_or(AppError::NotFound { entity: "user" })?;
        let before = tx.user_mfa(user_id).await?;
        if !tx.delete_mfa(user_id).await? {
            return Err(AppError::Conflict {
                field: None,
                code: "no_second_factor",
                message: "this user has no second factor to reset".into(),
            });
        }
        tx.revoke_user_sessions(user_id, None, now).await?;
        tx.audit(self.entry(
            actor,
            "user.mfa_reset",
            "user",
            user_id,
            Some(json!({
                "enrolled": before.as_ref().is_some_and(|m| m.confirmed_at.is_some()),
                "recovery_codes_left": before.map_or(0, |m| m.recovery_codes_left),
            })),
            Some(json!({ "enrolled": false })),
            Some(&reason),
        ));
        tx.commit().await?;
        Ok(())
    }
}
