//! Ordering providers (NPI with its check digit) and client locations (clinics, wards,
//! outreach clients).

use aliquot_domain::auth::Permission;
use aliquot_domain::ids::Npi;
use aliquot_domain::patient::PersonName;
use aliquot_store::{LocationRecord, ProviderRecord};
use serde_json::json;

use crate::patients::invalid;
use crate::{Actor, App, AppError, AppResult};

pub struct NewProviderInput {
    pub npi: String,
    pub family_name: String,
    pub given_name: String,
    /// For critical-value calls.
    pub phone: String,
}

pub struct NewLocationInput {
    pub code: String,
    pub name: String,
    /// `clinic`, `ward`, `outreach`, `emergency` or `other`.
    pub kind: String,
    pub address: String,
    pub phone: Option<String>,
    pub contact_name: Option<String>,
}

pub const LOCATION_KINDS: &[&str] = &["clinic", "ward", "outreach", "emergency", "other"];

fn text(field: &str, v: &str, max: usize) -> AppResult<String> {
    let v = v.trim();
    if v.is_empty() || v.chars().count() > max || v.chars().any(|c| c.is_control() && c != '\n') {
        return Err(AppError::invalid(
            field,
            "text_format",
            format!("1 to {max} characters"),
        ));
    }
    Ok(v.to_owned())
}

fn phone(field: &str, v: &str) -> AppResult<String> {
    let v = v.trim();
    let digits = v.chars().filter(char::is_ascii_digit).count();
    if !(7..=20).contains(&digits)
        || !v
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().xX".contains(c))
    {
        return Err(AppError::invalid(
            field,
            "phone_format",
            "a telephone number (7 to 20 digits)",
        ));
    }
    Ok(v.to_owned())
}

impl App {
    pub async fn create_provider(
        &self,
        actor: &Actor,
        input: NewProviderInput,
    ) -> AppResult<ProviderRecord> {
        actor.require(Permission::CatalogWrite)?;
        let npi =
            Npi::parse(input.npi.trim()).map_err(|e| invalid(&e, "", "npi").with_field("npi"))?;
        let name = PersonName::new(&input.family_name, &input.given_name, None).map_err(|e| {
            invalid(&e, "", "name").with_field(if e.field() == Some("given") {
                "given_name"
            } else {
                "family_name"
            })
        })?;
        let mut p = ProviderRecord {
            id: 0,
            npi: npi.as_str().to_owned(),
            family_name: name.family().to_owned(),
            given_name: name.given().to_owned(),
            phone: phone("phone", &input.phone)?,
            created_at: self.now(),
        };
        let mut tx = self.store.begin().await?;
        p.id = tx.insert_provider(&p).await.map_err(|e| match e {
            aliquot_store::StoreError::Conflict(_) => AppError::Conflict {
                field: Some("npi".into()),
                code: "npi_taken",
                message: "a provider with this NPI exists".into(),
            },
            e => e.into(),
        })?;
        tx.audit(self.entry(actor, "provider.create", "provider", p.id, None, Some(json!({
            "npi": p.npi, "family_name": p.family_name, "given_name": p.given_name, "phone": p.phone,
        })), None));
        tx.commit().await?;
        Ok(p)
    }

    pub async fn providers(&self, actor: &Actor) -> AppResult<Vec<ProviderRecord>> {
        actor.require(Permission::CatalogRead)?;
        Ok(self.store.list_providers().await?)
    }

    pub async fn create_location(
        &self,
        actor: &Actor,
        input: NewLocationInput,
    ) -> AppResult<LocationRecord> {
        actor.require(Permission::CatalogWrite)?;
        let code = input.code.trim().to_ascii_uppercase();
        if !(1..=20).contains(&code.len())
            || !code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(AppError::invalid(
                "code",
                "location_code",
                "1 to 20 characters A-Z, 0-9, - or _",
            ));
        }
        let kind = input.kind.trim().to_ascii_lowercase();
        if !LOCATION_KINDS.contains(&kind.as_str()) {
            return Err(AppError::invalid(
                "kind",
                "location_kind",
                format!("one of {}", LOCATION_KINDS.join(", ")),
            ));
        }
        let mut l = LocationRecord {
            id: 0,
            code,
            name: text("name", &input.name, 200)?,
            kind,
            address: text("address", &input.address, 500)?,
            phone: input
                .phone
                .as_deref()
                .filter(|p| !p.trim().is_empty())
                .map(|p| phone("phone", p))
                .transpose()?,
            contact_name: input
                .contact_name
                .as_deref()
                .filter(|p| !p.trim().is_empty())
                .map(|c| text("contact_name", c, 200))
                .transpose()?,
            created_at: self.now(),
        };
        let mut tx = self.store.begin().await?;
        l.id = tx.insert_location(&l).await.map_err(|e| match e {
            aliquot_store::StoreError::Conflict(_) => AppError::Conflict {
                field: Some("code".into()),
                code: "location_code_taken",
                message: "a location with this code exists".into(),
            },
            e => e.into(),
        })?;
        tx.audit(self.entry(
            actor,
            "location.create",
            "location",
            l.id,
            None,
            Some(json!({
                "code": l.code, "name": l.name, "kind": l.kind, "address": l.address,
                "phone": l.phone, "contact_name": l.contact_name,
            })),
            None,
        ));
        tx.commit().await?;
        Ok(l)
    }

    pub async fn locations(&self, actor: &Actor) -> AppResult<Vec<LocationRecord>> {
        actor.require(Permission::CatalogRead)?;
        Ok(self.store.list_locations().await?)
    }
}
