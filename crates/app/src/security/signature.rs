//! Electronic signatures (21 CFR 11.50, 11.200): at signing the signer proves again who they
//! are — the session identifies the user, the re-entered password (or, with an
//! authenticator app enrolled, its current code) is the component only they know — and the
//! record keeps the signer's name, the time, the meaning of the signature and the result
//! version it was applied to.
//!
//! **When a signature is required.** A *correction* always: it changes a result that was
//! already reported and relied upon, so the person answerable for the change signs it (not
//! configurable). A *release* (verification, sign-off) when the lab sets
//! `results.verification_signature_required` to `true` (default `false`): releases are the
//! bench's high-volume action, most results are released by autoverification without a
//! person at all, and whether a manual release is a signed record is the lab's policy
//! (its predicate rules and SOPs). A signature given when not required is checked and kept
//! all the same.
//!
//! A wrong password or code counts as a failed login of the account from the caller's
//! address (the same throttle), so a left-open session cannot be used to guess the password.
//! A TOTP code used to sign is used up like a login's (never accepted twice).

use std::net::{IpAddr, Ipv4Addr};

use aliquot_domain::auth::address_key;
use aliquot_domain::totp;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::verify_password;
use crate::{Actor, App, AppError, AppResult};

/// The setting that requires a signature to release (verify or sign off) a result.
pub const VERIFICATION_SIGNATURE_SETTING: &str = "results.verification_signature_required";

/// The meanings a signature on a result can carry.
pub const MEANING_VERIFIED: &str = "verified";
pub const MEANING_SIGNED_OFF: &str = "signed off";
pub const MEANING_CORRECTED: &str = "corrected";

/// What the signer enters at signing: the password, or the authenticator's current code.
#[derive(Clone, Default)]
pub struct SignatureInput {
    pub password: Option<String>,
    pub totp: Option<String>,
    /// The signer's address (for the throttle); loopback when unknown.
    pub address: Option<IpAddr>,
}

impl std::fmt::Debug for SignatureInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureInput")
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("totp", &self.totp.as_ref().map(|_| "<redacted>"))
            .field("address", &self.address)
            .finish()
    }
}

/// A signature as recorded with a result version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// `verified`, `signed off` or `corrected`.
    pub meaning: String,
    /// The signer's username and printed name (21 CFR 11.50(a)(1)).
    pub signer: String,
    pub signer_name: String,
    pub at: Timestamp,
    /// How the signer proved it was them: `password` or `totp`.
    pub method: String,
    /// The result version signed.
    pub version: i64,
}

impl Signature {
    /// What the audit entry records of it.
    pub(crate) fn audit(&self) -> Value {
        json!({
            "meaning": self.meaning,
            "signer": self.signer,
            "signer_name": self.signer_name,
            "method": self.method,
            "version": self.version,
        })
    }
}

/// A signer whose credential was checked; [`Signer::sign`] makes the signature.
#[derive(Debug, Clone)]
pub(crate) struct Signer {
    username: String,
    name: String,
    method: &'static str,
}

impl Signer {
    pub(crate) fn sign(&self, meaning: &str, version: i64, at: Timestamp) -> Signature {
        Signature {
            meaning: meaning.to_owned(),
            signer: self.username.clone(),
            signer_name: self.name.clone(),
            at,
            method: self.method.to_owned(),
            version,
        }
    }
}

fn invalid(field: &str, code: &'static str, message: &str) -> AppError {
    AppError::invalid(field, code, message)
}

impl App {
    /// Whether the lab requires a signature to release a result.
    pub async fn verification_signature_required(&self) -> AppResult<bool> {
        self.flag_setting(VERIFICATION_SIGNATURE_SETTING).await
    }

    /// Checks the credential re-entered to sign (`None` when none was given and none is
    /// `required`). Errors name the field: `signature` (missing), `signature.password`,
    /// `signature.totp`.
    pub(crate) async fn signer(
        &self,
        actor: &Actor,
        input: Option<&SignatureInput>,
        required: bool,
    ) -> AppResult<Option<Signer>> {
        let given = input.filter(|i| {
            i.password.as_deref().is_some_and(|p| !p.is_empty())
                || i.totp.as_deref().is_some_and(|t| !t.trim().is_empty())
        });
        let Some(input) = given else {
            if required {
                return Err(invalid(
                    "signature",
                    "signature_required",
                    "sign with your password (or your authenticator app's code): this action \
                     is an electronic signature",
                ));
            }
            return Ok(None);
        };
        let user_id = actor.user_id.ok_or(AppError::Forbidden {
            message: "only a user signs".into(),
        })?;
        let user = self
            .store
            .user_by_id(user_id)
            .await?
            .ok_or(AppError::NotFound { entity: "user" })?;
        let address = address_key(input.address.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        self.check_throttle(&address, &user.username).await?;
        let method = if let Some(code) = input.totp.as_deref().filter(|t| !t.trim().is_empty()) {
            let Some(mfa) = self
                .store
                .user_mfa(user_id)
                .await?
                .filter(|m| m.confirmed_at.is_some())
            else {
                return Err(invalid(
                    "signature.totp",
                    "no_second_factor",
                    "you have no authenticator app enrolled: sign with your password",
                ));
            };
            let secret = totp::base32_decode(&mfa.secret)
                .ok_or_else(|| AppError::Internal("stored TOTP secret is not Base32".into()))?;
            match totp::check(&secret, code, self.now().as_second(), mfa.last_step) {
                Ok(step) => {
                    // Used up now, in its own transaction: never accepted twice.
                    let mut tx = self.store.begin().await?;
                    if !tx.use_mfa_step(user_id, step, None).await? {
                        drop(tx);
                        return Err(self
                            .signature_failed(
                                actor,
                                &address,
                                &user.username,
                                "signature.totp",
                                "totp_replayed",
                                "this code was already used; enter the next one",
                            )
                            .await);
                    }
                    tx.commit().await?;
                    "totp"
                }
                Err(totp::TotpError::Replayed) => {
                    return Err(self
                        .signature_failed(
                            actor,
                            &address,
                            &user.username,
                            "signature.totp",
                            "totp_replayed",
                            "this code was already used; enter the next one",
                        )
                        .await);
                }
                Err(_) => {
                    return Err(self
                        .signature_failed(
                            actor,
                            &address,
                            &user.username,
                            "signature.totp",
                            "invalid_signature",
                            "the code is wrong or expired: the signature was not applied",
                        )
                        .await);
                }
            }
        } else {
            let password = input.password.clone().unwrap_or_default();
            if !verify_password(password, Some(user.password_hash.clone())).await? {
                return Err(self
                    .signature_failed(
                        actor,
                        &address,
                        &user.username,
                        "signature.password",
                        "invalid_signature",
                        "the password is wrong: the signature was not applied",
                    )
                    .await);
            }
            "password"
        };
        Ok(Some(Signer {
            username: user.username.clone(),
            name: user.display_name.clone(),
            method,
        }))
    }

    /// Counts a refused signature as a failed login and returns the error naming the field.
    #[allow(clippy::too_many_arguments)]
    async fn signature_failed(
        &self,
        actor: &Actor,
        address: &str,
        account: &str,
        field: &str,
        code: &'static str,
        message: &str,
    ) -> AppError {
        if let Err(e) = self
            .record_failure(
                address,
                account,
                actor.source,
                Some(actor),
                actor.user_id,
                "result.signature_failed",
            )
            .await
        {
            return e;
        }
        invalid(field, code, message)
    }
}
