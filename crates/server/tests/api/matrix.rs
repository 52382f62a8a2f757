//! The permission matrix, walked: every route × every role is allowed or 403 exactly as the
//! table in code says, and every route without a token is 401 (except the public ones).

use aliquot_domain::auth::Role;
use aliquot_server::access::{Access, ROUTES};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

crate::both_backends!(every_route_times_every_role, every_route_without_a_token);

fn concrete(path: &str) -> String {
    path.replace("{id}", "999999").replace("{key}", "lab.name")
}

fn body_for(method: &str) -> Option<serde_json::Value> {
    (method != "GET").then(|| json!({}))
}

#[test]
fn the_openapi_document_covers_exactly_the_route_table() {
    let doc = serde_json::to_value(aliquot_server::openapi()).unwrap();
    let mut documented: Vec<(String, String)> = vec![];
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    let mut table: Vec<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    documented.sort();
    table.sort();
    assert_eq!(documented, table);
}

/// Every `{placeholder}` of a path is a path parameter, and every other parameter is a query
/// parameter (a query parameter documented as `in: path` breaks every generated client).
#[test]
fn path_parameters_are_exactly_the_placeholders() {
    let doc = serde_json::to_value(aliquot_server::openapi()).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let placeholders: Vec<&str> = path
            .split('{')
            .skip(1)
            .filter_map(|p| p.split('}').next())
            .collect();
        for (method, op) in item.as_object().unwrap() {
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let mut in_path: Vec<&str> = Vec::new();
            for p in &params {
                let name = p["name"].as_str().unwrap();
                match p["in"].as_str().unwrap() {
                    "path" => in_path.push(name),
                    "query" | "header" => assert!(
                        !placeholders.contains(&name),
                        "{method} {path}: {name} is a placeholder, documented as {}",
                        p["in"]
                    ),
                    other => panic!("{method} {path}: {name} in {other}"),
                }
            }
            in_path.sort_unstable();
            let mut want = placeholders.clone();
            want.sort_unstable();
            assert_eq!(in_path, want, "{method} {path}");
        }
    }
}

async fn every_route_times_every_role(db: Db) {
    let app = spawn_app(db).await;
    let mut tokens = vec![];
    for role in Role::ALL {
        tokens.push((role, app.token_for(role).await));
    }
    for route in ROUTES {
        for (role, token) in &tokens {
            // Logging out would spend the token; it is covered by the auth tests.
            if route.path == "/api/v1/auth/logout" {
                continue;
            }
            let method = Method::from_bytes(route.method.as_bytes()).unwrap();
            let (status, body) = app
                .call(
                    method,
                    &concrete(route.path),
                    Some(token),
                    body_for(route.method),
                )
                .await;
            let allowed = match route.access {
                Access::Public | Access::Authenticated => true,
                Access::Permission(p) => role.allows(p),
            };
            if allowed {
                assert!(
                    status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                    "{role} should reach {} {}: {status} {body}",
                    route.method,
                    route.path
                );
                assert!(
                    !status.is_server_error(),
                    "{} {}: {status} {body}",
                    route.method,
                    route.path
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{role} must not reach {} {}: {body}",
                    route.method,
                    route.path
                );
                assert_eq!(body["error"]["code"], "forbidden");
            }
        }
    }
    app.finish().await;
}

async fn every_route_without_a_token(db: Db) {
    let app = spawn_app(db).await;
    let before = app.audit_len().await;
    for route in ROUTES {
        let method = Method::from_bytes(route.method.as_bytes()).unwrap();
        let (status, body) = app
            .call(method, &concrete(route.path), None, body_for(route.method))
            .await;
        if route.access == Access::Public {
            assert_ne!(
                status,
                StatusCode::UNAUTHORIZED,
                "{} {}",
                route.method,
                route.path
            );
        } else {
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{} {}: {body}",
                route.method,
                route.path
            );
            assert_eq!(body["error"]["code"], "unauthenticated");
        }
    }
    // The empty login body failed validation before any credential check: nothing written.
    assert_eq!(app.audit_len().await, before);
    app.finish().await;
}
