//! Behind a reverse proxy (issue 16): the client's address used by login throttling is taken
//! from the forwarded header only when the connection comes from a trusted proxy
//! (`--trusted-proxy`); from any other peer the header is ignored, so a client cannot escape
//! its throttle by inventing addresses. (The header parsing itself is a case table in
//! `crates/server/src/client.rs`.)

use std::net::{IpAddr, Ipv4Addr};

use aliquot_domain::auth::Role;
use aliquot_server::ServeConfig;
use aliquot_server::client::{ForwardedHeader, TrustedProxies};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

crate::both_backends!(forwarded_for_is_believed_only_from_a_trusted_proxy);

/// The test client connects from 127.0.0.1 (the trusted proxy); 127.0.0.3 is a client that
/// reaches the server directly.
const DIRECT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

async fn login(
    client: &reqwest::Client,
    base: &str,
    forwarded_for: &str,
    password: &str,
) -> (StatusCode, Value) {
    let resp = client
        .post(format!("{base}/api/v1/auth/token"))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"username": "technician", "password": password}))
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

async fn forwarded_for_is_believed_only_from_a_trusted_proxy(db: Db) {
    let trusted =
        TrustedProxies::parse(&["127.0.0.1".to_owned()], ForwardedHeader::XForwardedFor).unwrap();
    let app = spawn_app_with(
        db,
        ServeConfig {
            trusted_proxies: trusted,
            ..ServeConfig::default()
        },
    )
    .await;
    app.create_user("technician", Role::Technician).await;
    let proxy = reqwest::Client::new();
    // Through the proxy, client 203.0.113.7 guesses: its free attempts, then it waits.
    for _ in 0..5 {
        let got = login(&proxy, &app.base, "203.0.113.7", "wrong guess").await;
        assert_error(&got, StatusCode::UNAUTHORIZED, "invalid_credentials", None);
    }
    let got = login(&proxy, &app.base, "203.0.113.7", PASSWORD).await;
    assert_error(
        &got,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        None,
    );
    // Another client behind the same proxy is a different address: the owner logs in.
    let got = login(&proxy, &app.base, "198.51.100.4", PASSWORD).await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    // A value the client put left of the proxy's own is not believed either.
    let got = login(&proxy, &app.base, "198.51.100.4, 203.0.113.7", PASSWORD).await;
    assert_error(
        &got,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        None,
    );

    // A client reaching the server directly invents a new address for every guess: ignored,
    // its own address is throttled.
    let direct = reqwest::Client::builder()
        .local_address(DIRECT)
        .build()
        .unwrap();
    for n in 0..5 {
        let got = login(&direct, &app.base, &format!("192.0.2.{n}"), "wrong guess").await;
        assert_error(&got, StatusCode::UNAUTHORIZED, "invalid_credentials", None);
    }
    let got = login(&direct, &app.base, "192.0.2.200", PASSWORD).await;
    assert_error(
        &got,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        None,
    );
    app.finish().await;
}
