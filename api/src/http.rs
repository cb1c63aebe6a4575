//! The HTTP surface: `/graphql` (POST for queries, GET for GraphiQL),
//! `/health`. Built by [`app`] so tests can drive it without a socket.

use std::{sync::Arc, time::Duration};

use async_graphql::http::GraphiQLSource;
use async_graphql_axum::GraphQLResponse;
use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use callvault_domain::StaffId;
use callvault_projections::Projections;
use tower_http::{limit::RequestBodyLimitLayer, timeout::TimeoutLayer, trace::TraceLayer};

use crate::{
    auth::Authenticator,
    error::AppError,
    graphql::{Actor, CallvaultSchema, documents::Documents},
    service::Registry,
};

/// Largest GraphQL request body accepted.
pub const MAX_GRAPHQL_BODY: usize = 1024 * 1024;
/// Longest a request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct AppState {
    pub registry: Registry,
    pub projections: Projections,
    pub schema: CallvaultSchema,
    /// Parsed queries kept by their text.
    pub documents: Arc<Documents>,
    /// Largest recording accepted.
    pub max_upload_bytes: u64,
    /// Checks bearer tokens.
    pub auth: Arc<Authenticator>,
    /// How long a GraphQL request may run ([`REQUEST_TIMEOUT`]).
    pub request_timeout: Duration,
}

impl AppState {
    pub fn new(
        registry: Registry,
        projections: Projections,
        max_upload_bytes: u64,
        auth: Arc<Authenticator>,
    ) -> Self {
        let schema = crate::graphql::schema(registry.clone(), projections.clone());
        Self {
            registry,
            projections,
            schema,
            documents: Arc::default(),
            max_upload_bytes,
            auth,
            request_timeout: REQUEST_TIMEOUT,
        }
    }

    /// Another limit on how long a GraphQL request may run.
    pub fn with_request_timeout(mut self, limit: Duration) -> Self {
        self.request_timeout = limit;
        self
    }

    /// The staff member the request's bearer token names.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<StaffId, AppError> {
        let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
            AppError::Unauthenticated(
                "sign in: send `Authorization: Bearer <token>` \
                 (`callvault token issue --staff ID` mints one for local use)"
                    .into(),
            )
        })?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                AppError::Unauthenticated(
                    "the Authorization header must be `Bearer <token>`".into(),
                )
            })?;
        self.auth.verify(token)
    }
}

pub fn app(state: AppState) -> Router {
    let graphql_routes = Router::new()
        .route("/graphql", get(graphiql).post(graphql))
        .layer(RequestBodyLimitLayer::new(MAX_GRAPHQL_BODY))
        // A guard for reading the request too; running it is timed in
        // `graphql`, which answers in GraphQL's shape.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.request_timeout + Duration::from_secs(5),
        ));
    // Audio streams can take longer than a query; their size is checked
    // as they stream.
    let audio_routes = Router::new()
        .route("/calls/{call}/recordings", post(crate::audio::upload))
        .route(
            "/calls/{call}/recordings/{recording}",
            get(crate::audio::play),
        );
    Router::new()
        .merge(graphql_routes)
        .merge(audio_routes)
        .route("/health", get(health))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn graphiql() -> Html<String> {
    Html(GraphiQLSource::build().endpoint("/graphql").finish())
}

/// A GraphQL-shaped error, so GraphQL clients show it as one.
fn graphql_error(e: &AppError) -> Response {
    let body = serde_json::json!({
        "data": null,
        "errors": [{"message": e.to_string(), "extensions": {"code": e.code()}}],
    });
    (e.status(), Json(body)).into_response()
}

/// Reads a GraphQL request: JSON, at most [`MAX_GRAPHQL_BODY`] bytes.
async fn read_request(
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<async_graphql::Request, AppError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/json")
        && !content_type.starts_with("application/graphql-response+json")
    {
        return Err(AppError::UnsupportedMediaType(format!(
            "send GraphQL as `content-type: application/json`, not `{}`",
            content_type.chars().take(60).collect::<String>()
        )));
    }
    let bytes = axum::body::to_bytes(body, MAX_GRAPHQL_BODY)
        .await
        .map_err(|_| {
            AppError::PayloadTooLarge(format!(
                "a GraphQL request may be at most {MAX_GRAPHQL_BODY} bytes"
            ))
        })?;
    serde_json::from_slice(&bytes).map_err(|e| AppError::InvalidInput {
        field: None,
        message: format!(
            "the body is not a GraphQL request ({{\"query\": …, \"variables\": …}}): {}",
            e.to_string().chars().take(120).collect::<String>()
        ),
    })
}

async fn graphql(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let actor = match state.authenticate(&headers) {
        Ok(actor) => actor,
        Err(e) => return graphql_error(&e),
    };
    let request = match read_request(&headers, body).await {
        Ok(r) => r,
        Err(e) => return graphql_error(&e),
    };
    let mut request = request.data(Actor(actor));
    let fresh = state.documents.prepare(&mut request);
    let Ok(mut response) =
        tokio::time::timeout(state.request_timeout, state.schema.execute(request)).await
    else {
        let body = serde_json::json!({
            "data": null,
            "errors": [{
                "message": format!(
                    "the request ran longer than {} s and was stopped: ask for less (a smaller page, a shorter range)",
                    state.request_timeout.as_secs_f64()
                ),
                "extensions": {"code": "TIMEOUT"},
            }],
        });
        return (StatusCode::REQUEST_TIMEOUT, Json(body)).into_response();
    };
    // A request that never ran (syntax, unknown fields, too deep, too
    // complex) is the client's error: 400 with a stable code. Errors from
    // resolvers carry their own code and keep the 200 of GraphQL.
    let rejected = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.extensions.is_none());
    if rejected {
        for e in &mut response.errors {
            e.extensions
                .get_or_insert_with(Default::default)
                .set("code", "INVALID_INPUT");
        }
        return (StatusCode::BAD_REQUEST, GraphQLResponse::from(response)).into_response();
    }
    // Accepted, so its document is worth keeping (and no bigger than the
    // complexity limit lets a document be).
    if let Some(fresh) = fresh {
        state.documents.keep(fresh);
    }
    GraphQLResponse::from(response).into_response()
}

async fn health(State(state): State<AppState>) -> Response {
    match state.registry.store().head_position().await {
        Ok(head) => Json(serde_json::json!({
            "status": "ok",
            "logHead": head.map(|p| p.to_string()),
        }))
        .into_response(),
        Err(e) => error_response(e.into()),
    }
}

/// A REST error body: `{"error": {"code", "message"}}` with the status of
/// the code.
pub fn error_response(e: AppError) -> Response {
    e.log();
    let body = serde_json::json!({"error": {"code": e.code(), "message": e.to_string()}});
    (e.status(), Json(body)).into_response()
}
