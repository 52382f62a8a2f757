//! The `Idempotency-Key` header (issue 9), for every write route.
//!
//! A client that sent a write and lost the answer (its connection dropped, it timed out, it
//! restarted) sends it again with the same key and gets the first answer back, marked
//! `Idempotent-Replayed: true`, instead of a second order. Without the header a request runs
//! as always. The rules (claim, take-over, what is kept) are the use cases' in
//! `aliquot_app::idempotency`; this layer only hashes the request, replays answers, and runs
//! a claimed request **to its end in a task of its own**, so that a client going away cannot
//! leave its claim without an answer.

use aliquot_app::Actor;
use aliquot_app::idempotency::{ClaimOutcome, HEADER};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;

/// Set on a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";

/// SHA-256 over the method, the path with its query, and the body.
fn fingerprint(method: &Method, uri: &axum::http::Uri, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_str().as_bytes());
    h.update(b"\n");
    h.update(
        uri.path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("")
            .as_bytes(),
    );
    h.update(b"\n");
    h.update(body);
    hex::encode(h.finalize())
}

pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(value) = req.headers().get(HEADER) else {
        return next.run(req).await;
    };
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    // Public write routes (login) have no actor: keys belong to users.
    let Some(actor) = req.extensions().get::<Actor>().cloned() else {
        return next.run(req).await;
    };
    let Ok(key) = value.to_str().map(str::to_owned) else {
        return ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_invalid",
            "Idempotency-Key must be printable ASCII",
        )
        .with_field(HEADER)
        .into_response();
    };
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, crate::MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => return crate::json::too_large().into_response(),
    };
    let fp = fingerprint(&parts.method, &parts.uri, &bytes);
    let req = Request::from_parts(parts, Body::from(bytes));
    let app = state.app.clone();
    // From the claim to the kept answer in a task of its own, which runs to the end even if
    // this future is dropped: a claim is never left without its request having run.
    let task = tokio::spawn(async move {
        let claim = match app.claim_request(&actor, &key, &fp).await {
            Ok(ClaimOutcome::Run(claim)) => claim,
            Ok(ClaimOutcome::Replay {
                status,
                content_type,
                body,
            }) => return replay(status, content_type, body),
            Err(e) => return ApiError::from(e).into_response(),
        };
        let response = aliquot_store::with_claim(claim.clone(), next.run(req)).await;
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_else(|_| Bytes::new());
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = app
            .finish_request(&claim, parts.status.as_u16(), content_type, &text)
            .await
        {
            tracing::error!(error = %e, "keeping the answer of an idempotent request failed");
        }
        Response::from_parts(parts, Body::from(bytes))
    });
    match task.await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the request failed",
        )
        .into_response(),
    }
}

fn replay(status: u16, content_type: Option<String>, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.remove(header::CONTENT_TYPE);
    if let Some(ct) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(header::CONTENT_TYPE, ct);
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

/// Documents the header on every write operation of the OpenAPI document, with the answers
/// it can add (409 while the first request still runs, 422 for a malformed or reused key).
pub fn document(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
    use utoipa::openapi::{ObjectBuilder, Ref, RefOr, Required, ResponseBuilder, Type};

    let param = ParameterBuilder::new()
        .name(HEADER)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Makes a retry safe: the same key (per user) with the same request gets the first \
             answer again, with `Idempotent-Replayed: true`, instead of being applied twice.",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(255))
                .pattern(Some("^[!-~]+$")),
        ))
        .build();
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build(),
        )
    };
    let add = |path: &str, method: &str, op: &mut Option<Operation>| {
        let Some(op) = op.as_mut() else { return };
        // Public writes (login) have no user to own a key.
        let public = crate::access::ROUTES.iter().any(|r| {
            r.path == path && r.method == method && r.access == crate::access::Access::Public
        });
        if public {
            return;
        }
        op.parameters
            .get_or_insert_with(Vec::new)
            .push(RefOr::T(param.clone()));
        let responses = &mut op.responses.responses;
        responses
            .entry("409".into())
            .or_insert_with(|| error("a request with this Idempotency-Key is still running"));
        responses.entry("422".into()).or_insert_with(|| {
            error("invalid input, or an Idempotency-Key reused for another request")
        });
    };
    for (path, item) in openapi.paths.paths.iter_mut() {
        add(path, "POST", &mut item.post);
        add(path, "PUT", &mut item.put);
        add(path, "PATCH", &mut item.patch);
        add(path, "DELETE", &mut item.delete);
    }
}
