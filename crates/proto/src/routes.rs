//! Every route of the vsc server's HTTP API and every vsc-specific header, named once: the
//! server registers its routes with these templates (axum's `{param}` syntax) and the agent, the
//! phone and the CLI build their request paths with the functions below, so a path cannot be
//! spelled two ways. The functions take path segments that the caller has already checked
//! (identifiers validated by `vsc-core`, or `path_segment` in the CLI); they do not encode.
//!
//! Who may call each route is stated where the route is implemented (the module docs of
//! `vsc-server`'s `routes`) and in README's API table.

/// Headers specific to vsc, lower-case as HTTP/2 sends them.
pub mod headers {
    /// The poll secret of a sign-in request, sent by the workstation that opened it.
    pub const REQUEST_SECRET: &str = "x-vsc-request-secret";
    /// The session's agent key: with the ticket, what a role change or logout needs.
    pub const AGENT_KEY: &str = crate::signin::AGENT_KEY_HEADER;
    /// A registered workstation's signature over its collection of a ticket.
    pub const WORKSTATION_SIGNATURE: &str = crate::signin::WORKSTATION_SIGNATURE_HEADER;
    /// The authenticator app's version (semver), sent by the phone with `POST
    /// /api/v1/device/token` so the server knows what each phone runs after enrolment. A phone
    /// that does not send it is taken to run the version it reported last (at enrolment).
    pub const APP_VERSION: &str = "x-vsc-app-version";
}

// Public, unauthenticated.
/// `GET`: server name, version and CA fingerprint.
pub const INFO: &str = "/api/v1/info";
/// `GET`: liveness.
pub const HEALTHZ: &str = "/healthz";
/// `GET`: readiness (the database answers).
pub const READYZ: &str = "/readyz";
/// `GET`: Prometheus metrics (loopback or token only).
pub const METRICS: &str = "/metrics";
/// `GET`: the activation landing page (the secret is in the URL fragment).
pub const ACTIVATE_PAGE: &str = "/activate";
/// `GET`: the unlock landing page.
pub const UNLOCK_PAGE: &str = "/unlock";
/// `GET`: the root CA certificate.
pub const CA_ROOT_PEM: &str = "/ca/root.pem";
/// `GET`: the issuing CA certificate.
pub const CA_ISSUING_PEM: &str = "/ca/issuing.pem";
/// `GET`: issuing CA and root.
pub const CA_CHAIN_PEM: &str = "/ca/chain.pem";
/// `GET`: the issuing CA's CRL.
pub const CA_ISSUING_CRL: &str = "/ca/issuing.crl";
/// `GET`: the root's CRL.
pub const CA_ROOT_CRL: &str = "/ca/root.crl";

// The phone.
/// `POST`: enrol with an activation code.
pub const ENROL: &str = "/api/v1/enrol";
/// `POST`: a challenge for a device token.
pub const DEVICE_CHALLENGE: &str = "/api/v1/device/challenge";
/// `POST`: a device token.
pub const DEVICE_TOKEN: &str = "/api/v1/device/token";
/// `GET`: the phone's event stream (SSE).
pub const DEVICE_EVENTS: &str = "/api/v1/device/events";
/// `GET`: the phone's pending sign-in requests.
pub const DEVICE_REQUESTS: &str = "/api/v1/device/requests";
/// `POST`: approve a sign-in request.
pub const DEVICE_REQUEST_APPROVE: &str = "/api/v1/device/requests/{id}/approve";
/// `POST`: decline a sign-in request.
pub const DEVICE_REQUEST_DECLINE: &str = "/api/v1/device/requests/{id}/decline";
/// `GET`: the phone's pending signing requests.
pub const DEVICE_SIGNING: &str = "/api/v1/device/signing";
/// `POST`: complete a signing request.
pub const DEVICE_SIGNING_COMPLETE: &str = "/api/v1/device/signing/{id}/complete";
/// `POST`: decline a signing request.
pub const DEVICE_SIGNING_DECLINE: &str = "/api/v1/device/signing/{id}/decline";
/// `POST`: set the virtual card's PIN.
pub const DEVICE_CARD_PIN: &str = "/api/v1/device/card-pin";
/// `POST`: a challenge for a passcode check.
pub const PASSCODE_CHALLENGE: &str = crate::passcode::PASSCODE_CHALLENGE_PATH;
/// `POST`: the passcode check.
pub const PASSCODE_CHECK: &str = crate::passcode::PASSCODE_CHECK_PATH;
/// `POST`: a challenge for redeeming an unlock code.
pub const UNLOCK_CHALLENGE: &str = crate::passcode::UNLOCK_CHALLENGE_PATH;
/// `POST`: redeem an unlock code.
pub const UNLOCK: &str = crate::passcode::UNLOCK_PATH;

// The workstation's agent.
/// `POST`: register a workstation with a one-time code.
pub const WORKSTATION_ENROL: &str = "/api/v1/workstations/enrol";
/// `POST`: a challenge for a registered workstation's signed open.
pub const WORKSTATION_CHALLENGE: &str = "/api/v1/workstations/challenge";
/// `POST`: open a sign-in request.
pub const AUTH_REQUESTS: &str = "/api/v1/auth/requests";
/// `GET`: a sign-in request's outcome (long poll).
pub const AUTH_REQUEST: &str = "/api/v1/auth/requests/{id}";
/// `POST`: cancel a sign-in request.
pub const AUTH_REQUEST_CANCEL: &str = "/api/v1/auth/requests/{id}/cancel";
/// `GET`: the session (`?touch=false` to look without moving its idle deadline).
pub const SESSION: &str = "/api/v1/session";
/// `POST`: choose the session's role.
pub const SESSION_ROLE: &str = "/api/v1/session/role";
/// `POST`: end the session.
pub const SESSION_LOGOUT: &str = "/api/v1/session/logout";
/// `POST`: validate a ticket (relying systems).
pub const TICKETS_VALIDATE: &str = "/api/v1/tickets/validate";
/// `POST`: open a signing request.
pub const SIGNING_REQUESTS: &str = "/api/v1/signing/requests";
/// `GET`: a signing request's outcome (long poll).
pub const SIGNING_REQUEST: &str = "/api/v1/signing/requests/{id}";
/// `GET`: the virtual card's certificates.
pub const CARD: &str = "/api/v1/card";
/// `POST`: verify the virtual card's PIN.
pub const CARD_PIN_VERIFY: &str = "/api/v1/card/pin/verify";
/// `POST`: a card operation (signature with a PIV key).
pub const CARD_OPERATIONS: &str = "/api/v1/card/operations";

// The RA console.
/// `POST`: a challenge for RA sign-in.
pub const RA_AUTH_CHALLENGE: &str = "/api/v1/ra/auth/challenge";
/// `POST`: RA sign-in.
pub const RA_AUTH_LOGIN: &str = "/api/v1/ra/auth/login";
/// `GET`: the signed-in RA.
pub const RA_ME: &str = "/api/v1/ra/me";
/// `GET`, `POST`: organisations.
pub const RA_ORGANISATIONS: &str = "/api/v1/ra/organisations";
/// `POST`: an organisation's session limits.
pub const RA_ORGANISATION_SESSION_LIMITS: &str = "/api/v1/ra/organisations/{ods}/session-limits";
/// `POST`: an organisation's policy for unregistered workstations.
pub const RA_ORGANISATION_WORKSTATION_POLICY: &str =
    "/api/v1/ra/organisations/{ods}/workstation-policy";
/// `GET` (search), `POST`: people.
pub const RA_PEOPLE: &str = "/api/v1/ra/people";
/// `GET`: a person.
pub const RA_PERSON: &str = "/api/v1/ra/people/{uid}";
/// `POST`: record an identity check.
pub const RA_PERSON_IDENTITY_CHECKS: &str = "/api/v1/ra/people/{uid}/identity-checks";
/// `POST`: assign a position.
pub const RA_PERSON_POSITIONS: &str = "/api/v1/ra/people/{uid}/positions";
/// `POST`: assign an RA role.
pub const RA_PERSON_RA_ROLES: &str = "/api/v1/ra/people/{uid}/ra-roles";
/// `POST`: take an RA role away (`RemoveRaRole`).
pub const RA_PERSON_RA_ROLES_REMOVE: &str = "/api/v1/ra/people/{uid}/ra-roles/remove";
/// `POST`: end a position (position ids are unique across people).
pub const RA_POSITION_END: &str = "/api/v1/ra/positions/{id}/end";
/// `POST`: issue a card.
pub const RA_PERSON_CARDS: &str = "/api/v1/ra/people/{uid}/cards";
/// `GET`: a card.
pub const RA_CARD: &str = "/api/v1/ra/cards/{id}";
/// `POST`: a new activation for a card.
pub const RA_CARD_ACTIVATION: &str = "/api/v1/ra/cards/{id}/activation";
/// `POST`: cancel a card.
pub const RA_CARD_CANCEL: &str = "/api/v1/ra/cards/{id}/cancel";
/// `POST`: an unlock code for a locked card.
pub const RA_CARD_UNLOCK: &str = "/api/v1/ra/cards/{id}/unlock";
/// `GET`, `POST`: position requests.
pub const RA_POSITION_REQUESTS: &str = "/api/v1/ra/position-requests";
/// `POST`: approve a position request.
pub const RA_POSITION_REQUEST_APPROVE: &str = "/api/v1/ra/position-requests/{id}/approve";
/// `POST`: decline a position request.
pub const RA_POSITION_REQUEST_DECLINE: &str = "/api/v1/ra/position-requests/{id}/decline";
/// Bulk issuance: `POST`, a CSV of people to register, check, place and issue cards to
/// (`vsc_proto::bulk`).
pub const RA_BULK_ISSUE: &str = "/api/v1/ra/bulk-issue";
/// `GET` (`?organisation=ODS`): registered workstations.
pub const RA_WORKSTATIONS: &str = "/api/v1/ra/workstations";
/// `POST`: a one-time workstation registration code.
pub const RA_WORKSTATION_CODES: &str = "/api/v1/ra/workstations/codes";
/// `POST`: revoke a workstation.
pub const RA_WORKSTATION_REVOKE: &str = "/api/v1/ra/workstations/{id}/revoke";
/// `GET`: registered OpenID Connect clients; `POST`: register one.
pub const RA_CLIENTS: &str = "/api/v1/ra/clients";
/// `GET`: one client.
pub const RA_CLIENT: &str = "/api/v1/ra/clients/{id}";
/// `POST`: disable a client (no new sign-ins; its tokens stop working).
pub const RA_CLIENT_DISABLE: &str = "/api/v1/ra/clients/{id}/disable";
/// `POST`: a new client secret (the old one stops working at once).
pub const RA_CLIENT_ROTATE_SECRET: &str = "/api/v1/ra/clients/{id}/rotate-secret";

// Approved versions (issue 14).
/// `GET`: the approved-versions policy and the versions in use (any RA).
pub const RA_VERSIONS: &str = "/api/v1/ra/versions";
/// `POST`: allow versions of a client kind (national RA Managers).
pub const RA_VERSIONS_ALLOW: &str = "/api/v1/ra/versions/allow";
/// `POST`: deny (withdraw) versions of a client kind (national RA Managers).
pub const RA_VERSIONS_DENY: &str = "/api/v1/ra/versions/deny";
/// `POST`: remove one rule of the policy by its id (national RA Managers).
pub const RA_VERSION_RULE_REMOVE: &str = "/api/v1/ra/versions/rules/{id}/remove";
// (end of approved versions)

// Card replacement (issue 14).
/// `POST`: replace the card's phone (`vsc_proto::replacement::ReplaceCard`): a new activation for
/// the same card; the old phone's certificates are revoked (`key-compromise` at once when lost,
/// `superseded` when the new phone enrols).
pub const RA_CARD_REPLACE: &str = "/api/v1/ra/cards/{id}/replace";
// (end of card replacement)

// OCSP (issue 14).
/// `POST`: the OCSP responder (RFC 6960; body `application/ocsp-request`). Also the URL in
/// issued certificates' Authority Information Access.
pub const CA_OCSP: &str = "/ca/ocsp";
/// `GET`: the OCSP responder, the request DER base64-encoded (then URL-encoded) in the path
/// (RFC 6960 Appendix A.1). A wildcard: unencoded `/` from base64 is accepted too.
pub const CA_OCSP_GET: &str = "/ca/ocsp/{*request}";
// (end of OCSP)

// Renewal (issue 14).
/// `POST`: a single-use challenge for a renewal request, with the card's renewal window.
pub const DEVICE_RENEWAL_CHALLENGE: &str = "/api/v1/device/renewal/challenge";
/// `POST`: a renewal request (new CSRs, signed by the current authentication key).
pub const DEVICE_RENEWAL: &str = "/api/v1/device/renewal";
/// `POST`: the phone confirms it holds the renewed keys (signed by the new authentication key).
pub const DEVICE_RENEWAL_CONFIRM: &str = "/api/v1/device/renewal/confirm";
/// `POST`: an RA makes a card's renewal due now.
pub const RA_CARD_RENEW_NOW: &str = "/api/v1/ra/cards/{id}/renew-now";
// (end of renewal)

// Licences (issue 14).
/// `GET`: the licence pool and its waiting list; `POST`: create or top up the pool.
pub const RA_LICENCES_POOL: &str = "/api/v1/ra/licences/pool";
/// `POST`: an organisation applies for licences.
pub const RA_LICENCES_APPLY: &str = "/api/v1/ra/licences/applications";
/// `POST`: approve waiting applications in order while the pool lasts.
pub const RA_LICENCES_APPROVE: &str = "/api/v1/ra/licences/approve";
/// `POST`: an organisation returns unused licences to the pool.
pub const RA_LICENCES_RETURN: &str = "/api/v1/ra/licences/return";
/// `GET`: the per-organisation report.
pub const RA_LICENCES_REPORT: &str = "/api/v1/ra/licences/report";
// (end of licences)

// Licence extensions (issue 14).
/// `GET`: the extension requests (waiting first, in order); `POST`: an organisation asks for a
/// block's term to be extended.
pub const RA_LICENCES_EXTENSIONS: &str = "/api/v1/ra/licences/extensions";
/// `POST`: approve waiting extension requests in order while the pool's funding lasts.
pub const RA_LICENCES_EXTENSIONS_APPROVE: &str = "/api/v1/ra/licences/extensions/approve";
/// `POST`: withdraw a waiting extension request.
pub const RA_LICENCES_EXTENSIONS_WITHDRAW: &str = "/api/v1/ra/licences/extensions/withdraw";
// (end of licence extensions)

// Grace period and fast user switching (issue 14).
/// `POST`: the identity agent reports that the workstation locked (ticket + agent key).
pub const SESSION_LOCK: &str = "/api/v1/session/lock";
/// `POST`: re-open a locked session without a phone approval, inside the organisation's grace
/// period (ticket + agent key).
pub const SESSION_RESUME: &str = "/api/v1/session/resume";
// (end of grace period and fast user switching)

// Web Push (issue 13).
/// `GET`: the server's VAPID public key (the phone app's `applicationServerKey`) and whether
/// the calling phone has a push subscription (device token).
pub const DEVICE_PUSH: &str = "/api/v1/device/push";
/// `POST`: store (or replace) the calling phone's push subscription, the browser's
/// `PushSubscription.toJSON()` (device token).
pub const DEVICE_PUSH_SUBSCRIPTION: &str = "/api/v1/device/push/subscription";
/// `POST`: remove the calling phone's push subscription (device token).
pub const DEVICE_PUSH_UNSUBSCRIBE: &str = "/api/v1/device/push/unsubscribe";
// (end of Web Push)

/// The OpenID Connect provider (issue 11): discovery.
pub const OIDC_DISCOVERY: &str = "/.well-known/openid-configuration";
/// Authorization endpoint (`GET` and `POST`).
pub const OIDC_AUTHORIZE: &str = "/oauth2/authorize";
/// Token endpoint.
pub const OIDC_TOKEN: &str = "/oauth2/token";
/// UserInfo endpoint (`GET` and `POST`).
pub const OIDC_USERINFO: &str = "/oauth2/userinfo";
/// The provider's public keys.
pub const OIDC_JWKS: &str = "/oauth2/jwks";
/// RP-initiated logout (`GET` and `POST`).
pub const OIDC_LOGOUT: &str = "/oauth2/logout";
/// The web sign-in page of one authorization request (`GET`; `POST` submits the UID).
pub const OIDC_SIGNIN: &str = "/oauth2/signin/{flow}";
/// The page's wait for the phone (`GET ?wait=S`, JSON).
pub const OIDC_SIGNIN_STATUS: &str = "/oauth2/signin/{flow}/status";
/// Continue after the phone approved (`POST`, form).
pub const OIDC_SIGNIN_CONTINUE: &str = "/oauth2/signin/{flow}/continue";
/// Role selection (`POST`, form).
pub const OIDC_SIGNIN_ROLE: &str = "/oauth2/signin/{flow}/role";
/// The sign-in pages' one script and stylesheet.
pub const OIDC_ASSETS: &str = "/oauth2/assets/{file}";

/// `template` with its one `{param}` replaced by `value` (a checked path segment).
pub fn fill(template: &str, value: &str) -> String {
    match (template.find('{'), template.find('}')) {
        (Some(open), Some(close)) if open < close => {
            format!("{}{value}{}", &template[..open], &template[close + 1..])
        }
        _ => template.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_in_their_one_parameter() {
        assert_eq!(
            fill(RA_PERSON, "545737588804"),
            "/api/v1/ra/people/545737588804"
        );
        assert_eq!(fill(RA_CARD_CANCEL, "c-1"), "/api/v1/ra/cards/c-1/cancel");
        assert_eq!(fill(AUTH_REQUESTS, "x"), AUTH_REQUESTS);
        for template in [
            DEVICE_REQUEST_APPROVE,
            AUTH_REQUEST,
            RA_ORGANISATION_SESSION_LIMITS,
            RA_WORKSTATION_REVOKE,
        ] {
            assert!(!fill(template, "v").contains('{'), "{template}");
        }
    }
}
