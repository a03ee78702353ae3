//! The HTTP surface: public CA publication, the phone's device API (every `/api/v1/device/*`
//! route, in [`device`]), the phone web app's static files ([`app`]), the agent's sign-in,
//! session, signing and card API, and the RA API.
//! Each sub-module documents its routes.

pub mod app;
pub mod card;
pub mod challenge;
pub mod console;
pub mod device;
pub mod ocsp;
pub mod oidc;
pub mod public;
pub mod ra;
pub mod ra_bulk;
pub mod ra_clients;
pub mod ra_licences;
pub mod ra_versions;
pub mod session;
pub mod signin;
pub mod signing;
pub mod views;
pub mod workstation;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;
use vsc_proto::errors as code;

use crate::error::ApiError;
use crate::state::{AppState, AuditContext};

/// Largest request body accepted (CSRs and JSON are small).
const MAX_BODY: usize = 64 * 1024;

/// The whole application.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(public::routes())
        .merge(app::routes())
        .merge(ra::routes())
        .merge(ra_clients::routes())
        .merge(ra_versions::routes())
        .merge(ra_licences::routes())
        .merge(ocsp::routes())
        .merge(oidc::routes())
        .merge(console::routes())
        .merge(signin::routes())
        .merge(session::routes())
        .merge(card::routes())
        .merge(workstation::routes())
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        // Batches of prescriptions are larger; those routes carry their own limit.
        .merge(signing::routes())
        .merge(ra_bulk::routes())
        // The phone's whole API: it sets the limits of its routes itself (the signing answers'
        // is the larger one).
        .merge(device::routes())
        .merge(crate::metrics::routes())
        .layer(TraceLayer::new_for_http())
        // `Router::layer` wraps each route, so this sees the route template a request matched.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .with_state(state)
}

/// A JSON body whose rejection is an [`ApiError`] with code `invalid_request`, so clients get
/// the same error shape for a malformed body as for every other refusal.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let ip = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(a)| a.ip())
            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
        let path = req.uri().path().to_owned();
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => {
                let err = ApiError::bad_request(
                    code::INVALID_REQUEST,
                    format!(
                        "the request body is not what this endpoint expects: {}",
                        without_quoted_values(&rejection.body_text())
                    ),
                );
                let ctx = AuditContext {
                    actor: "anonymous".into(),
                    source: ip,
                };
                state
                    .audit_failure(&ctx, "api.request", &path, "", &err)
                    .await;
                Err(err)
            }
        }
    }
}

/// A JSON error message without the values it quotes: serde quotes the offending value between
/// backticks ("invalid type: integer `123456`"), and that value may be a PIN, a code or a key;
/// the message goes back to the client and into the audit log.
fn without_quoted_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    for part in message.split('`') {
        out.push_str(if inside { "…" } else { part });
        inside = !inside;
    }
    out
}

/// Whether `signature` (ASN.1 DER) is an ECDSA P-256 / SHA-256 signature over `message` by the
/// key `spki` (SubjectPublicKeyInfo DER): the one check behind the phone's, the RA's and the
/// workstation's signatures over the statements the server issues. Callers choose the error.
pub(crate) fn p256_signature_valid(spki: &[u8], message: &[u8], signature: &[u8]) -> bool {
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        spki,
    )
    .verify(message, signature)
    .is_ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn quoted_values_leave_error_messages() {
        assert_eq!(
            super::without_quoted_values(
                "Failed to deserialize: pin: invalid type: integer `123456`, expected a string"
            ),
            "Failed to deserialize: pin: invalid type: integer …, expected a string"
        );
        assert_eq!(super::without_quoted_values("no quotes"), "no quotes");
    }
}

/// The bearer token of a request (`Authorization: Bearer …`), trimmed; `None` when absent.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The client's address, as an anonymous audit context.
#[derive(Debug, Clone)]
pub struct Client(pub AuditContext);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(a)| a.ip())
            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
        Ok(Client(AuditContext {
            actor: "anonymous".into(),
            source: ip,
        }))
    }
}

#[cfg(test)]
mod route_table_tests {
    use axum::Router;
    use vsc_proto::routes;

    use crate::state::AppState;

    /// Every route of the phone's API (and enrolment, where a phone starts).
    const PHONE_ROUTES: [&str; 21] = [
        routes::ENROL,
        routes::PASSCODE_CHALLENGE,
        routes::PASSCODE_CHECK,
        routes::UNLOCK_CHALLENGE,
        routes::UNLOCK,
        routes::DEVICE_CHALLENGE,
        routes::DEVICE_TOKEN,
        routes::DEVICE_EVENTS,
        routes::DEVICE_REQUESTS,
        routes::DEVICE_REQUEST_APPROVE,
        routes::DEVICE_REQUEST_DECLINE,
        routes::DEVICE_SIGNING,
        routes::DEVICE_SIGNING_COMPLETE,
        routes::DEVICE_SIGNING_DECLINE,
        routes::DEVICE_CARD_PIN,
        routes::DEVICE_RENEWAL_CHALLENGE,
        routes::DEVICE_RENEWAL,
        routes::DEVICE_RENEWAL_CONFIRM,
        routes::DEVICE_PUSH,
        routes::DEVICE_PUSH_SUBSCRIPTION,
        routes::DEVICE_PUSH_UNSUBSCRIBE,
    ];

    /// The path templates a router registers. axum has no accessor for them; its `Debug` output
    /// lists them (`paths: {RouteId(1): "/api/v1/enrol", ...}`) ahead of the fallback router's.
    /// Every router checked here must yield some, so a change in that output fails the test
    /// rather than passing it vacuously.
    fn registered(router: Router<AppState>) -> Vec<String> {
        let debug = format!("{router:?}");
        let routes_part = debug
            .split("fallback_router:")
            .next()
            .expect("split yields one part");
        let paths: Vec<String> = routes_part
            .split("): \"")
            .skip(1)
            .map(|rest| rest.split('"').next().expect("a quoted path").to_owned())
            .collect();
        assert!(
            !paths.is_empty(),
            "no paths found in the router's Debug output: {debug}"
        );
        paths
    }

    #[test]
    fn every_device_route_is_in_the_device_module_and_nowhere_else() {
        // The list above is complete: every `/api/v1/device/` template in vsc-proto is in it.
        for source in [
            include_str!("../../../proto/src/routes.rs"),
            include_str!("../../../proto/src/passcode.rs"),
        ] {
            for literal in source.split('"').skip(1).step_by(2) {
                if literal.starts_with("/api/v1/device/") {
                    assert!(
                        PHONE_ROUTES.contains(&literal),
                        "{literal} is missing from PHONE_ROUTES"
                    );
                }
            }
        }
        let mut device = registered(super::device::routes());
        device.sort();
        let mut expected: Vec<String> = PHONE_ROUTES.iter().map(|r| (*r).to_owned()).collect();
        expected.sort();
        assert_eq!(
            device, expected,
            "device::routes() registers exactly the phone's routes"
        );

        let others = [
            ("public", super::public::routes()),
            ("ra", super::ra::routes()),
            ("signin", super::signin::routes()),
            ("session", super::session::routes()),
            ("card", super::card::routes()),
            ("workstation", super::workstation::routes()),
            ("signing", super::signing::routes()),
            ("metrics", crate::metrics::routes()),
        ];
        for (module, router) in others {
            for path in registered(router) {
                assert!(
                    !PHONE_ROUTES.contains(&path.as_str()) && !path.starts_with("/api/v1/device/"),
                    "{module} registers the phone's route {path}"
                );
            }
        }
    }

    /// The request states the server stores (vsc-core) are exactly the ones clients are told
    /// about (vsc-proto), besides `expired`, which is only ever reported.
    #[test]
    fn stored_request_states_are_the_reported_ones() {
        use vsc_core::{AuthRequestState as A, SigningRequestState as S};
        let stored: Vec<&str> = [
            A::Pending,
            A::Approved,
            A::Collected,
            A::Declined,
            A::Reported,
            A::Failed,
            A::Superseded,
            A::Cancelled,
        ]
        .iter()
        .map(|s| s.as_str())
        .collect();
        let mut reported = vsc_proto::signin::state::ALL.to_vec();
        reported.retain(|s| *s != vsc_proto::signin::state::EXPIRED);
        assert_eq!(stored, reported);
        let stored: Vec<&str> = [S::Pending, S::Completed, S::Declined]
            .iter()
            .map(|s| s.as_str())
            .collect();
        let mut reported = vsc_proto::signing::state::ALL.to_vec();
        reported.retain(|s| *s != vsc_proto::signing::state::EXPIRED);
        assert_eq!(stored, reported);
    }
}
