//! The one edge error: every failure a client can see, with a stable code
//! (GraphQL `extensions.code`, HTTP status). Internal causes are logged once
//! with their chain and shown only as "internal error".

use callvault_domain::DomainError;
use callvault_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{message}")]
    InvalidInput {
        /// The input field at fault, as the client named it.
        field: Option<String>,
        message: String,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("the register is unavailable: {0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    pub fn code(&self) -> &'static str {
        match self {
            AppError::InvalidInput { .. } => "INVALID_INPUT",
            AppError::NotFound(_) => "NOT_FOUND",
            AppError::Conflict(_) => "CONFLICT",
            AppError::Gone(_) => "GONE",
            AppError::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            AppError::UnsupportedMediaType(_) => "UNSUPPORTED_MEDIA_TYPE",
            AppError::Unauthenticated(_) => "UNAUTHENTICATED",
            AppError::Forbidden(_) => "FORBIDDEN",
            AppError::Unavailable(_) => "UNAVAILABLE",
            AppError::Internal(_) => "INTERNAL",
        }
    }

    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode as S;
        match self {
            AppError::InvalidInput { .. } => S::BAD_REQUEST,
            AppError::NotFound(_) => S::NOT_FOUND,
            AppError::Conflict(_) => S::CONFLICT,
            AppError::Gone(_) => S::GONE,
            AppError::PayloadTooLarge(_) => S::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => S::UNSUPPORTED_MEDIA_TYPE,
            AppError::Unauthenticated(_) => S::UNAUTHORIZED,
            AppError::Forbidden(_) => S::FORBIDDEN,
            AppError::Unavailable(_) => S::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => S::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl std::fmt::Display) -> Self {
        let field = field.into();
        AppError::InvalidInput {
            message: format!("{field}: {message}"),
            field: Some(field),
        }
    }

    /// Logs an internal error once, with its cause chain.
    pub fn log(&self) {
        if let AppError::Internal(e) = self {
            tracing::error!(error = format!("{e:#}"), "internal error");
        }
    }
}

impl From<DomainError> for AppError {
    fn from(e: DomainError) -> Self {
        use DomainError as D;
        let message = e.to_string();
        match e {
            D::CallNotStarted { .. }
            | D::ChatNotStarted { .. }
            | D::UnknownRecording { .. }
            | D::UnknownHold { .. }
            | D::UnknownEmailRequest { .. } => AppError::NotFound(message),
            D::RecordingPurged { .. } | D::ContactHistoryPurged { .. } => AppError::Gone(message),
            D::InvalidField { field, .. } => AppError::InvalidInput {
                field: Some(field.to_owned()),
                message,
            },
            D::SubjectInformedInFuture { .. } => AppError::InvalidInput {
                field: Some("subjectInformedAt".to_owned()),
                message,
            },
            _ => AppError::Conflict(message),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { .. } | StoreError::IdempotencyMismatch { .. } => {
                AppError::Conflict(e.to_string())
            }
            StoreError::InvalidStreamName { .. }
            | StoreError::EmptyAppend
            | StoreError::TooLarge(_) => AppError::InvalidInput {
                field: None,
                message: e.to_string(),
            },
            StoreError::Unavailable(_) => AppError::Unavailable(e.to_string()),
            StoreError::Corrupt(_) | StoreError::Refused(_) | StoreError::Io { .. } => {
                AppError::Internal(e.into())
            }
        }
    }
}

impl From<callvault_projections::journal::DecodeError> for AppError {
    fn from(e: callvault_projections::journal::DecodeError) -> Self {
        AppError::Internal(e.into())
    }
}
