//! The one error type every API handler returns: an HTTP status, a stable machine code and a
//! sentence for a person, serialised as [`vsc_proto::ErrorBody`].

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use vsc_proto::errors as code;
use vsc_proto::{ErrorBody, ErrorDetail};

/// An API error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable snake_case code.
    pub code: &'static str,
    /// What happened and what to do next.
    pub message: String,
    /// Set once the failure has been written to the audit log, so it is not written twice.
    pub audited: bool,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            audited: false,
        }
    }
    /// 400.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
    /// 401.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, code, message)
    }
    /// 403.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, code, message)
    }
    /// 404.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }
    /// 409.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }
    /// 410.
    pub fn gone(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::GONE, code, message)
    }
    /// 429.
    pub fn too_many(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, message)
    }
    /// 500: the detail goes to the server log, never to the client.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            code::INTERNAL_ERROR,
            "the server could not complete the request; the operator can find the cause in the server log",
        )
    }
    /// Marks the error as already audited.
    pub fn audited(mut self) -> ApiError {
        self.audited = true;
        self
    }
}

impl From<vsc_store::StoreError> for ApiError {
    fn from(e: vsc_store::StoreError) -> ApiError {
        ApiError::internal(e)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> ApiError {
        ApiError::internal(e)
    }
}

impl From<vsc_pki::PkiError> for ApiError {
    fn from(e: vsc_pki::PkiError) -> ApiError {
        ApiError::internal(e)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// The result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// Every `.rs` file under `dir`.
    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read the source directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// An error code written as a string literal at an `ApiError` constructor would be a code
    /// the clients cannot name: every code comes from `vsc_proto::errors`.
    #[test]
    fn error_codes_come_from_vsc_proto() {
        const CTORS: &[&str] = &[
            "new",
            "bad_request",
            "unauthorized",
            "forbidden",
            "not_found",
            "conflict",
            "gone",
            "too_many",
        ];
        let mut files = Vec::new();
        sources(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let mut calls = 0;
        let mut literal = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).expect("read a source file");
            for ctor in CTORS {
                let call = format!("ApiError::{ctor}(");
                for (at, _) in text.match_indices(&call) {
                    let mut args = &text[at + call.len()..];
                    if *ctor == "new" {
                        // The code is the second argument; the first is a `StatusCode`.
                        args = args.split_once(',').map_or("", |(_, rest)| rest);
                    }
                    calls += 1;
                    if args.trim_start().starts_with('"') {
                        let line = text[..at].matches('\n').count() + 1;
                        literal.push(format!("{}:{line}", file.display()));
                    }
                }
            }
        }
        assert!(calls > 100, "only {calls} ApiError constructors found");
        assert!(
            literal.is_empty(),
            "error codes written as literals (use a constant of vsc_proto::errors): {literal:?}"
        );
    }
}
