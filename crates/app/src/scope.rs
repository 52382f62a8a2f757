//! Whose patients an actor may read (issue 10 item 16): a physician reads only the patients
//! of orders where they are the ordering provider, through the provider their user is linked
//! to (`users.provider_id`, set by an administrator: [`App::set_user_provider`], audited).
//! A physician with no linked provider reads nobody. Every use case that reads patient data
//! and may be called by a physician checks [`App::require_patient_visible`] (or restricts its
//! query, for search and lists); a patient outside the scope is answered exactly as a patient
//! that does not exist (404), so the answer does not tell that the patient is registered.

use aliquot_domain::auth::Permission;
use serde_json::json;

use crate::{Actor, App, AppError, AppResult, require_reason};

/// The patients an actor may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatientScope {
    /// Every patient (the role's permissions decide the rest).
    All,
    /// Only patients with an order by this provider; `None`: no provider linked, nobody.
    OrderedBy(Option<i64>),
}

impl App {
    /// The actor's patient scope.
    pub async fn patient_scope(&self, actor: &Actor) -> AppResult<PatientScope> {
        if !actor.role.sees_own_patients_only() {
            return Ok(PatientScope::All);
        }
        let provider = match actor.user_id {
            Some(id) => self.store.user_provider(id).await?,
            None => None,
        };
        Ok(PatientScope::OrderedBy(provider))
    }

    /// Refuses, as "no such `entity`" (404), a read of a patient outside the actor's scope.
    pub(crate) async fn require_patient_visible(
        &self,
        actor: &Actor,
        patient_id: i64,
        entity: &'static str,
    ) -> AppResult<()> {
        match self.patient_scope(actor).await? {
            PatientScope::All => Ok(()),
            PatientScope::OrderedBy(Some(provider))
                if self.store.patient_ordered_by(patient_id, provider).await? =>
            {
                Ok(())
            }
            PatientScope::OrderedBy(_) => Err(AppError::NotFound { entity }),
        }
    }

    /// Links a user to a provider (`None` unlinks), with a reason; audited with the old and
    /// new provider (`user.provider`). Returns the provider now linked.
    pub async fn set_user_provider(
        &self,
        actor: &Actor,
        user_id: i64,
        provider_id: Option<i64>,
        reason: Option<&str>,
    ) -> AppResult<Option<i64>> {
        actor.require(Permission::UserManage)?;
        let reason = require_reason(reason)?;
        let mut tx = self.store.begin().await?;
        if tx.user_by_id(user_id).await?.is_none() {
            return Err(AppError::NotFound { entity: "user" });
        }
        if let Some(p) = provider_id
            && self.store.provider_by_id(p).await?.is_none()
        {
            return Err(AppError::invalid(
                "provider_id",
                "unknown_provider",
                "no provider with this id",
            ));
        }
        let old = tx.user_provider(user_id).await?;
        if old == provider_id {
            return Ok(old);
        }
        if !tx.set_user_provider(user_id, provider_id).await? {
            return Err(AppError::NotFound { entity: "user" });
        }
        tx.audit(self.entry(
            actor,
            "user.provider",
            "user",
            user_id,
            Some(json!({ "provider_id": old })),
            Some(json!({ "provider_id": provider_id })),
            Some(&reason),
        ));
        tx.commit().await?;
        Ok(provider_id)
    }
}
