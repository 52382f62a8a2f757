//! The edges of Aliquot: the HTTP/JSON API, the bench web UI (`ui`), and later FHIR and the
//! MLLP and ASTM listeners. Handlers translate between the wire and the use cases in `aliquot-app`;
//! they hold no rules of their own.

pub mod access;
pub mod api;
pub mod client;
pub mod conn;
pub mod contract;
pub mod error;
pub mod fhir;
pub mod idempotency;
pub mod json;
pub mod qc_chart;
pub mod schema_rules;
pub mod tls;
pub mod ui;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use aliquot_app::App;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use crate::conn::ServeConfig;
use crate::error::ApiError;

/// The largest request body accepted (JSON); larger bodies get 413 before they are parsed.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub app: App,
    pub metrics: PrometheusHandle,
    pub openapi: Arc<String>,
}

/// The process-wide Prometheus recorder (a `metrics` recorder is global).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("aliquot_http_request_duration_seconds".into()),
                    &[
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    ],
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests build several servers); the
            // handle still renders this recorder's view.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The OpenAPI document, generated from the handlers' annotations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api::router().into_openapi();
    idempotency::document(&mut doc);
    contract::document(&mut doc);
    doc
}

/// Builds the whole HTTP application.
pub fn router(app: App) -> Router {
    let (routes, mut openapi) = api::router().split_for_parts();
    idempotency::document(&mut openapi);
    contract::document(&mut openapi);
    let openapi_json = openapi.to_pretty_json().unwrap_or_else(|_| "{}".into());
    let state = AppState {
        app,
        metrics: metrics_handle(),
        openapi: Arc::new(openapi_json),
    };
    let api = routes
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::layer,
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), access::guard))
        .route_layer(middleware::from_fn(record_metrics));
    // The web UI: its own route table and guard (session cookie, CSRF), merged beside the API.
    let pages = ui::router(state.clone()).route_layer(middleware::from_fn(record_metrics));
    // FHIR R4 (issue 14): its own routes, guard and error form (OperationOutcome).
    let fhir = fhir::router(state.clone()).route_layer(middleware::from_fn(record_metrics));
    api.merge(pages)
        .merge(fhir)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(security_headers))
        .layer(
            // Spans carry the route template, never the URI: query strings may hold patient
            // identifiers, and patient data never goes into logs.
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let route = req
                    .extensions()
                    .get::<MatchedPath>()
                    .map(|m| m.as_str().to_owned())
                    .unwrap_or_else(|| "unmatched".into());
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                // The client's address, through trusted proxies only (`client.rs`).
                let client = req
                    .extensions()
                    .get::<client::ClientAddr>()
                    .map(|c| c.0.to_string())
                    .unwrap_or_default();
                tracing::info_span!("http", method = %req.method(), route, request_id = id, client)
            }),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// Unknown routes: JSON under the API's prefixes, a page elsewhere (a person typed it).
async fn not_found(uri: axum::http::Uri) -> Response {
    let path = uri.path();
    if path.starts_with("/fhir/") {
        fhir::unknown().await.into_response()
    } else if path.starts_with("/api/") || path == "/healthz" {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route").into_response()
    } else {
        ui::error_page(StatusCode::NOT_FOUND, "Not found", "There is no such page.")
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}

async fn record_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("aliquot_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("aliquot_http_request_duration_seconds", "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    response
}

/// Headers every response carries (ASVS 14.4): no sniffing, no framing, no referrer, and no
/// caching of anything that might hold patient data.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Pages say `same-origin` (with `no-referrer` a browser sends `Origin: null` on a form
    // POST, and the UI's origin check needs the real one).
    h.entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("no-referrer"));
    // Nothing that might hold patient data is cached; static UI assets say otherwise.
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    // Pages set their own policy (scripts and styles from this site); everything else
    // may load nothing.
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'none'; frame-ancestors 'none'",
        ));
    response
}

/// Addresses the server listens on. MLLP and ASTM listeners are accepted in configuration
/// now; they are served once their use cases exist.
#[derive(Debug, Clone)]
pub struct Listen {
    pub http: SocketAddr,
    pub mllp: SocketAddr,
    pub astm: SocketAddr,
}

/// Serves HTTP until `shutdown` completes, then stops accepting, lets in-flight requests
/// finish (their transactions commit or roll back as a whole), and closes the database.
/// Connection limits and timeouts are [`ServeConfig::default`]'s.
pub async fn serve(
    app: App,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(app, listener, shutdown, ServeConfig::default()).await
}

/// [`serve`] with the given connection limits and timeouts (see [`conn`]).
pub async fn serve_with(
    app: App,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    config: ServeConfig,
) -> std::io::Result<()> {
    let store = app.store().clone();
    let router = router(app);
    let result = conn::serve_connections(listener, router, config, shutdown).await;
    // Give connections that are closing a moment, then close the pools.
    tokio::time::sleep(Duration::from_millis(10)).await;
    store.close().await;
    result
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}

/// For handlers that return a response built by hand.
pub fn json_response<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    (status, axum::Json(body)).into_response()
}

#[allow(dead_code)]
fn _state_is_clone(s: State<AppState>) -> State<AppState> {
    s
}
