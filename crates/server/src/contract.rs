//! The OpenAPI document says what the server does, including what every operation shares and
//! the handlers' annotations would repeat 150 times (issue 16, "The API contract"; checked by
//! schemathesis in CI, `crates/cli/tests/schemathesis.rs`):
//!
//! - the errors of the edge itself: `400` (`invalid_json`, `unreadable_body`, `invalid_path`,
//!   `invalid_query`), `413` and `415` (`ApiJson`) and `422` where there is a JSON body,
//!   `401` and `403` where the route table asks for a login or a permission
//!   (`access::guard`), `404` where a path names something;
//! - a schema built with `#[serde(flatten)]` (utoipa's `allOf` of the flattened struct,
//!   which may refuse additional properties, and the own fields) is written as the one object
//!   it is, so a response validates against its own schema;
//! - bodies that are not JSON (order scans: PDF, PNG or JPEG) are described as what they are;
//! - the server's input rules (closed vocabularies, identifier shapes, required reasons,
//!   ranges) are stated as `enum`, `pattern`, `minLength` and `minimum`, from the domain's
//!   own definitions (`crate::schema_rules`).

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{AdditionalProperties, Schema};
use utoipa::openapi::{
    ContentBuilder, ObjectBuilder, OpenApi, Ref, RefOr, Required, ResponseBuilder, Type,
};

use crate::access::{Access, ROUTES};

/// Adds what every operation shares; see the module documentation.
pub fn document(openapi: &mut OpenApi) {
    flatten_all_of(openapi);
    for (path, item) in openapi.paths.paths.iter_mut() {
        for (method, op) in [
            ("GET", &mut item.get),
            ("POST", &mut item.post),
            ("PUT", &mut item.put),
            ("PATCH", &mut item.patch),
            ("DELETE", &mut item.delete),
        ] {
            if let Some(op) = op.as_mut() {
                common_errors(path, method, op);
            }
        }
    }
    scans(openapi);
    crate::schema_rules::apply(openapi);
}

fn error(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

fn common_errors(path: &str, method: &str, op: &mut Operation) {
    let has_param = |kind: ParameterIn| {
        op.parameters.iter().flatten().any(|p| match p {
            RefOr::T(p) => p.parameter_in == kind,
            RefOr::Ref(_) => false,
        })
    };
    let path_params = has_param(ParameterIn::Path);
    let query_params = has_param(ParameterIn::Query);
    let json_body = op.request_body.as_ref().is_some_and(|b| match b {
        RefOr::T(b) => b.content.contains_key("application/json"),
        RefOr::Ref(_) => true,
    });
    let any_body = op.request_body.is_some();
    let access = ROUTES
        .iter()
        .find(|r| r.path == path && r.method == method)
        .map(|r| r.access);

    let mut bad_request = Vec::new();
    if json_body {
        bad_request.push("`invalid_json`: the body is not JSON");
    }
    if any_body {
        bad_request.push("`unreadable_body`: the body could not be read");
    }
    if path_params {
        bad_request.push("`invalid_path`: a path parameter does not parse (`field` names it)");
    }
    if query_params {
        bad_request.push(
            "`invalid_query`: a query parameter does not parse or is unknown (`field` names it)",
        );
    }
    let responses = &mut op.responses.responses;
    if !bad_request.is_empty() {
        let text = bad_request.join("; ");
        responses
            .entry("400".into())
            .or_insert_with(|| error(&text));
    }
    if any_body {
        responses
            .entry("413".into())
            .or_insert_with(|| error("`body_too_large`: the body is larger than 1 MiB"));
    }
    if json_body {
        responses.entry("415".into()).or_insert_with(|| {
            error("`unsupported_media_type`: the body is not sent as `application/json`")
        });
        responses.entry("422".into()).or_insert_with(|| {
            error("`invalid_field` and the rules' codes: a field is missing, unknown or invalid (`field` names it)")
        });
    }
    match access {
        Some(Access::Authenticated) => {
            responses
                .entry("401".into())
                .or_insert_with(|| error("no valid bearer token"));
        }
        Some(Access::Permission(_)) => {
            responses
                .entry("401".into())
                .or_insert_with(|| error("no valid bearer token"));
            responses
                .entry("403".into())
                .or_insert_with(|| error("`forbidden`: the caller's role lacks the permission"));
        }
        Some(Access::Public) | None => {}
    }
    if path_params {
        responses
            .entry("404".into())
            .or_insert_with(|| error("`not_found`: nothing with that identifier"));
    }
}

/// `allOf` of objects (what `#[serde(flatten)]` produces) merged into one object.
fn flatten_all_of(openapi: &mut OpenApi) {
    let Some(components) = openapi.components.as_mut() else {
        return;
    };
    let snapshot = components.schemas.clone();
    for schema in components.schemas.values_mut() {
        let RefOr::T(Schema::AllOf(all)) = schema else {
            continue;
        };
        let mut merged = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(all.description.clone())
            .build();
        let mut closed = true;
        let mut ok = true;
        for item in &all.items {
            let part = match item {
                RefOr::T(s) => Some(s.clone()),
                RefOr::Ref(r) => r
                    .ref_location
                    .strip_prefix("#/components/schemas/")
                    .and_then(|name| snapshot.get(name))
                    .and_then(|s| match s {
                        RefOr::T(s) => Some(s.clone()),
                        RefOr::Ref(_) => None,
                    }),
            };
            let Some(Schema::Object(part)) = part else {
                ok = false;
                break;
            };
            for (name, prop) in part.properties {
                merged.properties.insert(name, prop);
            }
            for name in part.required {
                if !merged.required.contains(&name) {
                    merged.required.push(name);
                }
            }
            closed &= matches!(
                part.additional_properties.as_deref(),
                Some(AdditionalProperties::FreeForm(false))
            );
        }
        if ok {
            if closed {
                merged.additional_properties =
                    Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
            *schema = RefOr::T(Schema::Object(merged));
        }
    }
}

/// Order scans: uploaded as PDF, PNG or JPEG bytes, downloaded with the media type stored.
fn scans(openapi: &mut OpenApi) {
    const TYPES: [&str; 3] = ["application/pdf", "image/png", "image/jpeg"];
    let binary = |media: &str| {
        ContentBuilder::new()
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .content_media_type(media)
                    .build(),
            ))
            .build()
    };
    if let Some(op) = openapi
        .paths
        .paths
        .get_mut("/api/v1/orders/{id}/scans")
        .and_then(|i| i.post.as_mut())
    {
        let mut body = RequestBodyBuilder::new()
            .description(Some(
                "The scan's bytes: PDF, PNG or JPEG (by content, and the declared type must \
                 agree), at most 1 MiB; anything else is 422.",
            ))
            .required(Some(Required::True));
        for media in TYPES {
            body = body.content(media, binary(media));
        }
        op.request_body = Some(RefOr::T(body.build()));
    }
    if let Some(op) = openapi
        .paths
        .paths
        .get_mut("/api/v1/scans/{id}")
        .and_then(|i| i.get.as_mut())
    {
        let mut ok = ResponseBuilder::new().description("The scan, with its media type");
        for media in TYPES {
            ok = ok.content(media, binary(media));
        }
        op.responses
            .responses
            .insert("200".into(), RefOr::T(ok.build()));
    }
}
