//! The demonstration lab seeded by `aliquot serve --demo`: one user per role, the lab's
//! settings, the demo catalogue, a provider and a location, and a morning's work (see
//! [`morning`]). Demo passwords are printed at start-up; never use `--demo` for a real lab.

use aliquot_app::{Actor, App, NewLocationInput, NewProviderInput, NewUserInput, Source};
use aliquot_domain::auth::Role;

mod morning;
mod qc;

pub(crate) fn demo_password(role: Role) -> String {
    format!("demo-{}-pass", role.as_str())
}

/// Seeds the demo lab when the database has no users yet; otherwise leaves it alone.
pub async fn seed(app: &App) -> anyhow::Result<()> {
    if !app.store().list_users().await?.is_empty() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let operator = Actor::cli("demo-seed");
    let mut staff = Vec::new();
    for role in Role::ALL {
        let user = app
            .create_user(
                &operator,
                NewUserInput {
                    username: role.as_str().to_owned(),
                    display_name: format!("Demo {}", role.as_str()),
                    role: role.as_str().to_owned(),
                    password: demo_password(role),
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("seeding demo user {role}: {e}"))?;
        staff.push(Actor {
            user_id: Some(user.id),
            username: user.username,
            role,
            source: Source::Cli,
            session_id: None,
        });
    }
    for (key, value) in [
        ("lab.name", "Aliquot Demonstration Laboratory"),
        ("lab.address", "1200 Main Street, Springfield, IL 62701"),
        ("lab.clia", "14D0123456"),
        ("lab.phone", "+1 217 555 0100"),
        ("lab.timezone", "America/Chicago"),
        ("lab.accession_prefix", "D"),
    ] {
        app.put_setting(&operator, key, value, None)
            .await
            .map_err(|e| anyhow::anyhow!("seeding setting {key}: {e}"))?;
    }
    app.import_catalog(&operator, aliquot_app::demo_catalog::demo_catalog())
        .await
        .map_err(|e| anyhow::anyhow!("seeding the demo catalogue: {e}"))?;
    let provider = app
        .create_provider(
            &operator,
            NewProviderInput {
                npi: "1234567893".into(),
                family_name: "Demo".into(),
                given_name: "Physician".into(),
                phone: "+1 555 010 0100".into(),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("seeding the demo provider: {e}"))?;
    // The demo physician orders as the demo provider, so they read that provider's patients.
    if let Some(physician) = staff
        .iter()
        .find(|a| a.role == Role::Physician)
        .and_then(|a| a.user_id)
    {
        app.set_user_provider(
            &operator,
            physician,
            Some(provider.id),
            Some("the demo physician orders as the demo provider"),
        )
        .await
        .map_err(|e| anyhow::anyhow!("linking the demo physician: {e}"))?;
    }
    app.create_location(
        &operator,
        NewLocationInput {
            code: "OPD".into(),
            name: "Demo outpatient clinic".into(),
            kind: "clinic".into(),
            address: "1 Demo Street".into(),
            phone: Some("+1 555 010 0200".into()),
            contact_name: None,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("seeding the demo location: {e}"))?;
    let by_role = |role: Role| {
        staff
            .iter()
            .find(|a| a.role == role)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no demo {role}"))
    };
    let director = by_role(Role::Director)?;
    for (test, rules) in aliquot_app::demo_catalog::demo_result_rules() {
        app.put_result_rules(&director, &test, 0, rules, Some("demo lab result rules"))
            .await
            .map_err(|e| anyhow::anyhow!("seeding the result rules of {test}: {e}"))?;
    }
    // The chemistry analyzer of `aliquot simulate analyzer`, with its own assay codes: once
    // over HL7 (MLLP), once over ASTM.
    let admin = by_role(Role::Admin)?;
    for (code, protocol, over) in [("CHEM1", "hl7", "HL7"), ("CHEM2", "astm", "ASTM")] {
        app.register_instrument(
            &admin,
            aliquot_app::connections::InstrumentInput {
                code: code.into(),
                name: format!("Chemistry analyzer ({over}, simulated)"),
                protocol: protocol.into(),
                sender: code.into(),
                department: "chemistry".into(),
                connect_to: None,
                test_codes: aliquot_connect::simulate::CHEMISTRY
                    .iter()
                    .map(|a| aliquot_app::connections::TestCodeInput {
                        code: a.code.into(),
                        test: a.test.into(),
                        units: Some(a.units.into()),
                    })
                    .collect(),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("registering the demo analyzer {code}: {e}"))?;
    }
    // The reference laboratory the demo's send-out tests (vitamin D) go to, with its own
    // test codes (issue 14 item 4).
    app.register_reference_lab(
        &admin,
        aliquot_app::ReferenceLabInput {
            code: "RRL".into(),
            name: "Regional Reference Laboratory".into(),
            address: "400 Commerce Drive, Peoria, IL 61602".into(),
            clia: "14D0987654".into(),
            phone: Some("+1 309 555 0140".into()),
            expected_tat_hours: 72,
            test_codes: vec![aliquot_app::ReferenceTestCodeInput {
                code: "25OHD".into(),
                test: "VITD".into(),
            }],
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("registering the demo reference laboratory: {e}"))?;
    let morning = morning::Staff {
        operator,
        phlebotomist: by_role(Role::Phlebotomist)?,
        technician: by_role(Role::Technician)?,
        technologist: by_role(Role::Technologist)?,
    };
    let summary = morning::seed(app, &morning).await?;
    let qc_runs = qc::seed(app, &morning.technologist, &morning.technician).await?;
    tracing::info!(
        patients = summary.patients,
        orders = summary.orders,
        specimens = summary.specimens,
        results = summary.results,
        qc_runs,
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "seeded the demo lab"
    );
    Ok(())
}

pub fn print_logins(scheme: &str, addr: std::net::SocketAddr) -> std::io::Result<()> {
    outln!("Demo lab logins (username / password) — for demonstration only:")?;
    for role in Role::ALL {
        outln!("  {:<13} / {}", role.as_str(), demo_password(role))?;
    }
    outln!(
        "Try: curl -s -X POST {scheme}://{addr}/api/v1/auth/token -H 'content-type: application/json' \
         -d '{{\"username\":\"admin\",\"password\":\"demo-admin-pass\"}}'"
    )?;
    Ok(())
}
