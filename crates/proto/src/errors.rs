//! Every error code the vsc server puts in an [`ErrorBody`](crate::ErrorBody), named once: the
//! server builds its errors with these constants and the agent, the phone and the CLI compare
//! the codes they receive with them, so a code cannot be spelled two ways. A code is stable
//! once released: clients act on it, people read the message next to it.
//!
//! Each constant says when the server returns it (and, where a client can do something about
//! it, what). [`ALL`] lists every one.

// General.
/// Anything the server could not complete for a reason of its own (the cause is in its log).
pub const INTERNAL_ERROR: &str = "internal_error";
/// A request body the endpoint cannot read (bad JSON, missing or mistyped field), or fields
/// that do not go together.
pub const INVALID_REQUEST: &str = "invalid_request";
/// `/readyz`: the server cannot reach its database.
pub const NOT_READY: &str = "not_ready";
/// `/readyz` and new requests while the server drains: send them to another node.
pub const SHUTTING_DOWN: &str = "shutting_down";
/// Too many unauthenticated requests (challenges) from one address or for one device: wait a
/// minute.
pub const TOO_MANY_REQUESTS: &str = "too_many_requests";
/// Too many wrong one-time codes or failed sign-in requests from one address: wait 15 minutes.
pub const TOO_MANY_ATTEMPTS: &str = "too_many_attempts";
/// A signature (of a challenge, an approval, a passcode check) that is not base64.
pub const SIGNATURE_MALFORMED: &str = "signature_malformed";
/// A signature that does not verify with the key the server holds for its signer.
pub const SIGNATURE_INVALID: &str = "signature_invalid";

// Metrics.
/// `/metrics` from another machine when the server serves metrics to loopback only.
pub const METRICS_FORBIDDEN: &str = "metrics_forbidden";
/// `/metrics` without the bearer token the server was started with.
pub const METRICS_TOKEN_MISSING: &str = "metrics_token_missing";
/// `/metrics` with a bearer token that is not the server's.
pub const METRICS_TOKEN_INVALID: &str = "metrics_token_invalid";

// Public endpoints.
/// A CRL asked for before the CA has published one.
pub const CRL_NOT_PUBLISHED: &str = "crl_not_published";

// Identifiers and values checked on input.
/// A UID that is not 12 digits with a valid check digit.
pub const INVALID_UID: &str = "invalid_uid";
/// An ODS code that is not one.
pub const INVALID_ODS_CODE: &str = "invalid_ods_code";
/// An NRBAC role code that is not `S…:G…:R…`.
pub const INVALID_ROLE_CODE: &str = "invalid_role_code";
/// An activity code that is not one (`B0570`, …).
pub const INVALID_ACTIVITY_CODE: &str = "invalid_activity_code";
/// An RA role that is not one of `ra-manager`, `ra-agent`, `sponsor`, `id-checker`,
/// `local-smartcard-administrator`, `service-manager`.
pub const INVALID_RA_ROLE: &str = "invalid_ra_role";
/// A person's, organisation's or role's name that is empty, too long or not printable.
pub const INVALID_NAME: &str = "invalid_name";
/// A contact email that is not an email address.
pub const INVALID_EMAIL: &str = "invalid_email";
/// A note (on a position request decision) that is too long or not printable.
pub const INVALID_NOTE: &str = "invalid_note";
/// Session limits outside their bounds (idle 1 minute to 24 hours, absolute 5 minutes to 24
/// hours and not shorter than idle).
pub const INVALID_SESSION_LIMITS: &str = "invalid_session_limits";

// RA authentication and authority.
/// An RA route without an RA session token: log in (`vsc ra login`).
pub const UNAUTHENTICATED: &str = "unauthenticated";
/// An RA session token that is unknown or has expired: log in again.
pub const SESSION_EXPIRED: &str = "session_expired";
/// RA login for a person who holds no RA role (or an RA session whose holder lost them all).
pub const NOT_AN_RA: &str = "not_an_ra";
/// The UID has no active card with a valid authentication certificate (RA login), or no
/// active card to send a sign-in request to.
pub const NO_ACTIVE_CARD: &str = "no_active_card";
/// The caller's RA role does not permit the action.
pub const RA_ROLE_NOT_PERMITTED: &str = "ra_role_not_permitted";
/// The caller holds no RA role at the organisation the action is for.
pub const RA_OUTSIDE_ORGANISATION: &str = "ra_outside_organisation";
/// A Sponsor assigning a role outside its assignable roles.
pub const SPONSOR_MAY_NOT_ASSIGN: &str = "sponsor_may_not_assign";
/// A Sponsor assigning an activity outside its assignable activities.
pub const SPONSOR_MAY_NOT_ASSIGN_ACTIVITY: &str = "sponsor_may_not_assign_activity";
/// A prescribing activity granted by a role that may not grant it.
pub const PRESCRIBING_ACTIVITY_NOT_PERMITTED: &str = "prescribing_activity_not_permitted";
/// An RA acting on their own record: another RA must do it.
pub const OWN_RECORD: &str = "own_record";
/// A Sponsor grant whose assignable activities include a prescribing one.
pub const SPONSOR_PRESCRIBING_ACTIVITY: &str = "sponsor_prescribing_activity";
/// Registering or revoking workstations, or setting the workstation policy, without a role
/// that may do it at that organisation.
pub const NOT_PERMITTED: &str = "not_permitted";

// Organisations, people and positions.
/// No organisation has the ODS code.
pub const UNKNOWN_ORGANISATION: &str = "unknown_organisation";
/// Registering an organisation that is already registered.
pub const ORGANISATION_EXISTS: &str = "organisation_exists";
/// No person has the UID.
pub const UNKNOWN_PERSON: &str = "unknown_person";
/// The person is neither registered at nor holds a position at the organisation.
pub const PERSON_NOT_IN_ORGANISATION: &str = "person_not_in_organisation";
/// A position request for a person who already belongs to the organisation: assign the
/// position directly.
pub const PERSON_ALREADY_IN_ORGANISATION: &str = "person_already_in_organisation";
/// The person already holds that position.
pub const POSITION_EXISTS: &str = "position_exists";
/// No position held now has that id (never held, or already ended).
pub const UNKNOWN_POSITION: &str = "unknown_position";
/// The person does not hold that RA role at that organisation.
pub const RA_ROLE_NOT_HELD: &str = "ra_role_not_held";
/// Evidence types that are not known.
pub const INVALID_EVIDENCE: &str = "invalid_evidence";
/// An identity check level that is not 1 to 3.
pub const INVALID_LEVEL: &str = "invalid_level";
/// An identity check level the evidence seen does not support.
pub const INSUFFICIENT_EVIDENCE: &str = "insufficient_evidence";
/// Issuing a card to a person without an identity check at level 3.
pub const IDENTITY_NOT_VERIFIED: &str = "identity_not_verified";

// Position requests.
/// A first position at an organisation where the person is not registered: ask their
/// registering organisation with a position request.
pub const POSITION_REQUEST_NEEDED: &str = "position_request_needed";
/// A position request for the same position is already waiting.
pub const POSITION_REQUEST_EXISTS: &str = "position_request_exists";
/// No position request has the id.
pub const UNKNOWN_POSITION_REQUEST: &str = "unknown_position_request";
/// Deciding a position request that is no longer pending (or was decided meanwhile).
pub const POSITION_REQUEST_DECIDED: &str = "position_request_decided";
/// Approving a position request after its expiry: the requesting organisation asks again.
pub const POSITION_REQUEST_EXPIRED: &str = "position_request_expired";
/// Approving a position request one asked for oneself: another RA decides.
pub const POSITION_REQUEST_OWN: &str = "position_request_own";
/// Approving a position request whose requester may no longer assign it: decline it.
pub const REQUESTER_NO_LONGER_AUTHORISED: &str = "requester_no_longer_authorised";

// Cards (RA).
/// No card has the id.
pub const UNKNOWN_CARD: &str = "unknown_card";
/// Issuing a card to a person who already has a live one: cancel it first.
pub const CARD_EXISTS: &str = "card_exists";
/// The card changed while the RA acted on it: look at it again.
pub const CARD_CHANGED: &str = "card_changed";
/// Cancelling a card that is already revoked or expired.
pub const CARD_NOT_CANCELLABLE: &str = "card_not_cancellable";
/// Unlocking a card that is neither active nor locked.
pub const CARD_NOT_UNLOCKABLE: &str = "card_not_unlockable";
/// Cancelling a card without a reason code.
pub const REASON_CODE_REQUIRED: &str = "reason_code_required";
/// A cancellation reason code that is not one.
pub const INVALID_REASON_CODE: &str = "invalid_reason_code";
/// A reason (card cancellation, declined request) that is missing, too long or not one.
pub const INVALID_REASON: &str = "invalid_reason";
/// An invalidity date that is not RFC 3339.
pub const INVALID_INVALIDITY_DATE: &str = "invalid_invalidity_date";
/// An invalidity date in the future.
pub const INVALIDITY_DATE_IN_FUTURE: &str = "invalidity_date_in_future";
/// An invalidity date before the card's certificates were issued.
pub const INVALIDITY_DATE_BEFORE_ISSUE: &str = "invalidity_date_before_issue";
/// An invalidity date with a reason code other than `key-compromise`.
pub const INVALIDITY_DATE_NEEDS_KEY_COMPROMISE: &str = "invalidity_date_needs_key_compromise";

// Activation codes (enrolment).
/// An activation code that is not in the code format.
pub const ACTIVATION_MALFORMED: &str = "activation_malformed";
/// No activation has the code: check it against what the RA gave.
pub const ACTIVATION_UNKNOWN: &str = "activation_unknown";
/// The activation code has been used: ask the RA for a new one.
pub const ACTIVATION_USED: &str = "activation_used";
/// The activation code has expired: ask the RA for a new one.
pub const ACTIVATION_EXPIRED: &str = "activation_expired";
/// The activation code was typed wrongly too many times: ask the RA for a new one.
pub const ACTIVATION_LOCKED: &str = "activation_locked";
/// The activation code's secret part is wrong: type it again (a wrong guess counts).
pub const ACTIVATION_WRONG_CODE: &str = "activation_wrong_code";

// Unlock codes.
/// An unlock code that is not in the code format.
pub const UNLOCK_CODE_MALFORMED: &str = "unlock_code_malformed";
/// No unlock has the code.
pub const UNLOCK_CODE_UNKNOWN: &str = "unlock_code_unknown";
/// The unlock code has been used: ask the RA for a new one.
pub const UNLOCK_CODE_USED: &str = "unlock_code_used";
/// The unlock code has expired: ask the RA for a new one.
pub const UNLOCK_CODE_EXPIRED: &str = "unlock_code_expired";
/// The unlock code was typed wrongly too many times: ask the RA for a new one.
pub const UNLOCK_CODE_LOCKED: &str = "unlock_code_locked";
/// The unlock code's secret part is wrong: type it again (a wrong guess counts).
pub const UNLOCK_CODE_WRONG: &str = "unlock_code_wrong";
/// An unlock redeemed without a valid proof from the card's device key (counts as a wrong
/// guess).
pub const UNLOCK_DEVICE_PROOF_FAILED: &str = "unlock_device_proof_failed";
/// Unlocking a card that is not held on any phone.
pub const UNLOCK_NO_DEVICE: &str = "unlock_no_device";

// Enrolment.
/// An app version that is not a semantic version.
pub const APP_VERSION_MALFORMED: &str = "app_version_malformed";
/// An app version the server's policy does not approve: update the app.
pub const APP_VERSION_NOT_APPROVED: &str = "app_version_not_approved";
/// A simulated phone enrolling with a server that is not a sandbox.
pub const SIMULATED_DEVICE_REFUSED: &str = "simulated_device_refused";
/// A device id that is not 16 to 128 letters, digits or dashes.
pub const DEVICE_ID_MALFORMED: &str = "device_id_malformed";
/// The phone already holds another person's card: one person per device.
pub const DEVICE_BOUND_TO_OTHER_PERSON: &str = "device_bound_to_other_person";
/// Enrolling a card that is not pending.
pub const CARD_NOT_PENDING: &str = "card_not_pending";
/// A CSR that is not base64 or not DER.
pub const CSR_MALFORMED: &str = "csr_malformed";
/// A CSR whose signature does not verify with its own key.
pub const CSR_PROOF_OF_POSSESSION_FAILED: &str = "csr_proof_of_possession_failed";
/// A CSR with a key that is too weak.
pub const CSR_WEAK_KEY: &str = "csr_weak_key";
/// A CSR with a key of another type than the slot needs.
pub const CSR_WRONG_KEY_TYPE: &str = "csr_wrong_key_type";
/// A CSR the server does not support.
pub const CSR_UNSUPPORTED: &str = "csr_unsupported";
/// The same key twice in one enrolment, or a key that already has a certificate.
pub const KEY_REUSED: &str = "key_reused";
/// A device key that is not base64 or not an ECDSA P-256 key.
pub const DEVICE_KEY_MALFORMED: &str = "device_key_malformed";
/// An app that sends no device key: update the app.
pub const DEVICE_KEY_MISSING: &str = "device_key_missing";
/// A recovery key that is not 32 bytes of base64.
pub const RECOVERY_KEY_MALFORMED: &str = "recovery_key_malformed";
/// An app that does not deposit its passcode verifier and secret: update the app.
pub const PASSCODE_DEPOSIT_MISSING: &str = "passcode_deposit_missing";
/// A passcode verifier that is not 32 bytes of base64.
pub const PASSCODE_VERIFIER_MALFORMED: &str = "passcode_verifier_malformed";
/// A passcode server secret that is not 32 bytes of base64.
pub const PASSCODE_SECRET_MALFORMED: &str = "passcode_secret_malformed";

// The phone: device authentication and passcode checks.
/// A device route without a device token: get one first.
pub const DEVICE_UNAUTHENTICATED: &str = "device_unauthenticated";
/// A device token that is unknown or has expired: get a new one and retry.
pub const DEVICE_TOKEN_EXPIRED: &str = "device_token_expired";
/// The device is not enrolled (or enrolled before device keys): enrol again.
pub const UNKNOWN_DEVICE: &str = "unknown_device";
/// No challenge has the id (for this purpose and device): ask for a new one.
pub const CHALLENGE_UNKNOWN: &str = "challenge_unknown";
/// The challenge was already used: ask for a new one.
pub const CHALLENGE_USED: &str = "challenge_used";
/// The challenge expired: ask for a new one.
pub const CHALLENGE_EXPIRED: &str = "challenge_expired";
/// The phone holds no such card: enrol again.
pub const CARD_NOT_ON_THIS_DEVICE: &str = "card_not_on_this_device";
/// The card is locked after too many wrong passcodes or refused sign-ins: the holder needs an
/// unlock code from an RA or Local Smartcard Administrator.
pub const CARD_LOCKED: &str = "card_locked";
/// The card is suspended, revoked or expired: the holder needs a new card.
pub const CARD_NOT_USABLE: &str = "card_not_usable";
/// The card's keystore was made by an app that did not register its passcode with the server:
/// the holder needs an unlock.
pub const PASSCODE_NOT_REGISTERED: &str = "passcode_not_registered";

// Sign-in requests.
/// A context field that is too long or not printable.
pub const INVALID_CONTEXT: &str = "invalid_context";
/// Sign-in to the card is blocked for a while after its holder reported a request they did
/// not make.
pub const CARD_BLOCKED: &str = "card_blocked";
/// A sign-in request for the card is already waiting on the phone.
pub const REQUEST_ALREADY_OPEN: &str = "request_already_open";
/// No sign-in request has the id.
pub const UNKNOWN_REQUEST: &str = "unknown_request";
/// Polling a sign-in request without its secret (`X-Vsc-Request-Secret`).
pub const REQUEST_SECRET_MISSING: &str = "request_secret_missing";
/// A sign-in or signing request for a card held on another device.
pub const REQUEST_NOT_FOR_THIS_DEVICE: &str = "request_not_for_this_device";
/// Answering or cancelling a sign-in or signing request that is no longer pending.
pub const REQUEST_ALREADY_DECIDED: &str = "request_already_decided";
/// Answering a sign-in or signing request after its expiry: start again at the workstation.
pub const REQUEST_EXPIRED: &str = "request_expired";
/// An approval with a number that is not the one the workstation shows: the request fails.
pub const WRONG_NUMBER: &str = "wrong_number";
/// The card's authentication certificate is revoked or outside its validity.
pub const CERTIFICATE_INVALID: &str = "certificate_invalid";

// Sessions.
/// A session route without a ticket.
pub const TICKET_MISSING: &str = "ticket_missing";
/// A ticket that belongs to no session: the session is gone, sign in again.
pub const TICKET_INVALID: &str = "ticket_invalid";
/// The session has ended (logout, card cancelled, "not me"): sign in again.
pub const SESSION_ENDED: &str = "session_ended";
/// The session was idle too long: sign in again. (A session past its absolute length gets
/// [`SESSION_EXPIRED`].)
pub const SESSION_IDLE_TIMEOUT: &str = "session_idle_timeout";
/// A session action that needs the session's agent key (`X-Vsc-Agent-Key`) without it.
pub const AGENT_KEY_REQUIRED: &str = "agent_key_required";
/// Selecting a role (position) the person does not hold.
pub const UNKNOWN_ROLE: &str = "unknown_role";

// Workstations.
/// A workstation name that is empty, too long or not printable.
pub const INVALID_WORKSTATION_NAME: &str = "invalid_workstation_name";
/// A workstation CSR that is not base64 or not a valid ECDSA P-256 request.
pub const INVALID_CSR: &str = "invalid_csr";
/// A registration code that is not in the code format.
pub const WORKSTATION_CODE_MALFORMED: &str = "workstation_code_malformed";
/// No workstation registration has the code.
pub const WORKSTATION_CODE_UNKNOWN: &str = "workstation_code_unknown";
/// The registration code has been used: ask the RA for a new one.
pub const WORKSTATION_CODE_USED: &str = "workstation_code_used";
/// The registration code has expired: ask the RA for a new one.
pub const WORKSTATION_CODE_EXPIRED: &str = "workstation_code_expired";
/// The registration code was typed wrongly too many times: ask the RA for a new one.
pub const WORKSTATION_CODE_LOCKED: &str = "workstation_code_locked";
/// The registration code's secret part is wrong: type it again (a wrong guess counts).
pub const WORKSTATION_CODE_WRONG: &str = "workstation_code_wrong";
/// Enrolling under another name than the one the registration code is for.
pub const WORKSTATION_NAME_MISMATCH: &str = "workstation_name_mismatch";
/// The organisation already has a registered workstation of that name.
pub const WORKSTATION_NAME_TAKEN: &str = "workstation_name_taken";
/// A workstation key that is already registered: every registration needs a new key.
pub const WORKSTATION_KEY_REUSED: &str = "workstation_key_reused";
/// No workstation has the id (or the workstation is not registered).
pub const UNKNOWN_WORKSTATION: &str = "unknown_workstation";
/// The workstation's registration was revoked (or revoking it again): register it again.
pub const WORKSTATION_REVOKED: &str = "workstation_revoked";
/// The workstation's certificate is outside its validity: enrol it again.
pub const WORKSTATION_CERTIFICATE_EXPIRED: &str = "workstation_certificate_expired";
/// A sign-in from an unregistered workstation to a card whose organisation accepts registered
/// workstations only.
pub const WORKSTATION_NOT_REGISTERED: &str = "workstation_not_registered";
/// Collecting a request a registered workstation opened without its signature
/// (`X-Vsc-Workstation-Signature`).
pub const WORKSTATION_SIGNATURE_MISSING: &str = "workstation_signature_missing";
/// A workstation signature that is not base64.
pub const WORKSTATION_SIGNATURE_MALFORMED: &str = "workstation_signature_malformed";
/// A workstation signature that does not verify with the registered workstation key.
pub const WORKSTATION_SIGNATURE_INVALID: &str = "workstation_signature_invalid";

// OpenID Connect clients (registration by RA Managers at the national organisation and Service
// Managers).
/// A client name that is empty, longer than 100 characters or not printable.
pub const INVALID_CLIENT_NAME: &str = "invalid_client_name";
/// A client registered without any redirect URI.
pub const REDIRECT_URI_REQUIRED: &str = "redirect_uri_required";
/// A redirect or post-logout redirect URI that is not absolute, has a fragment or userinfo, uses
/// `http` for a host that is not loopback, or is listed twice.
pub const INVALID_REDIRECT_URI: &str = "invalid_redirect_uri";
/// A token endpoint authentication method that is not one, or does not fit the client: a
/// public client uses `none`, a confidential one never does.
pub const INVALID_AUTH_METHOD: &str = "invalid_auth_method";
/// Client keys that are missing (`private_key_jwt` needs exactly one of `jwks` and `jwks_uri`),
/// given to a client that does not use them, or not a JWK set of public RSA or P-256 keys.
pub const INVALID_JWKS: &str = "invalid_jwks";
/// A client key that is too weak (RSA below 2048 bits).
pub const WEAK_CLIENT_KEY: &str = "weak_client_key";
/// A `jwks_uri` that is not `https` (or `http` on loopback), or has a fragment or userinfo.
pub const INVALID_JWKS_URI: &str = "invalid_jwks_uri";
/// A back-channel logout URI that is not `https` (or `http` on loopback), or has a fragment or
/// userinfo.
pub const INVALID_BACKCHANNEL_LOGOUT_URI: &str = "invalid_backchannel_logout_uri";
/// An ID token algorithm that is not `RS256`, `RS512` or `ES256`.
pub const INVALID_ID_TOKEN_ALG: &str = "invalid_id_token_alg";
/// No client has the id.
pub const UNKNOWN_CLIENT: &str = "unknown_client";
/// The client is disabled (disabling it again, rotating its secret).
pub const CLIENT_DISABLED: &str = "client_disabled";
/// Rotating the secret of a client that has none (public, or `private_key_jwt`).
pub const CLIENT_HAS_NO_SECRET: &str = "client_has_no_secret";

// Signing (EPS prescriptions and prepared items).
/// Signing or using the card when the session's card is not active.
pub const CARD_NOT_ACTIVE: &str = "card_not_active";
/// Signing with a card whose keys are not on a phone (appliance custody refused).
pub const KEYS_NOT_ON_PHONE: &str = "keys_not_on_phone";
/// Signing without a selected role, or with one that no longer exists: select a role.
pub const NO_ROLE_SELECTED: &str = "no_role_selected";
/// Signing prescriptions with a role that does not include prescribing.
pub const NOT_A_PRESCRIBING_ROLE: &str = "not_a_prescribing_role";
/// The card already has signing requests waiting on the phone: answer them or let them
/// expire.
pub const TOO_MANY_SIGNING_REQUESTS: &str = "too_many_signing_requests";
/// A signing request with too few or too many items.
pub const BATCH_SIZE: &str = "batch_size";
/// A signing algorithm that is not RS1 or RS256.
pub const INVALID_ALGORITHM: &str = "invalid_algorithm";
/// A signing kind this route does not take.
pub const INVALID_KIND: &str = "invalid_kind";
/// An item id that is empty, too long or not printable ASCII.
pub const INVALID_ITEM_ID: &str = "invalid_item_id";
/// An item id that appears twice in one request.
pub const DUPLICATE_ITEM_ID: &str = "duplicate_item_id";
/// An item without its payload.
pub const PAYLOAD_MISSING: &str = "payload_missing";
/// An item payload that is not base64 or not UTF-8 XML.
pub const PAYLOAD_INVALID: &str = "payload_invalid";
/// A prepared item without its fragments.
pub const FRAGMENTS_MISSING: &str = "fragments_missing";
/// A prepared item whose fragments cannot be read.
pub const FRAGMENTS_INVALID: &str = "fragments_invalid";
/// An item larger than the server accepts.
pub const ITEM_TOO_LARGE: &str = "item_too_large";
/// No signing request has the id (for this session).
pub const UNKNOWN_SIGNING_REQUEST: &str = "unknown_signing_request";
/// The card has no valid, unrevoked signing certificate: the RA renews the card.
pub const SIGNING_CERTIFICATE_INVALID: &str = "signing_certificate_invalid";

// Card operations (the virtual smartcard's PIV keys).
/// A card slot that is not `9a` or `9c`.
pub const INVALID_SLOT: &str = "invalid_slot";
/// An operation input that is not base64.
pub const INPUT_MALFORMED: &str = "input_malformed";
/// An operation input of the wrong length for its slot.
pub const INPUT_LENGTH: &str = "input_length";
/// A card PIN that is not 6 to 8 digits.
pub const PIN_MALFORMED: &str = "pin_malformed";
/// Verifying a card PIN before one has been set on the phone.
pub const PIN_NOT_SET: &str = "pin_not_set";
/// Using the card's keys before verifying the card PIN in the session.
pub const CARD_PIN_NOT_VERIFIED: &str = "card_pin_not_verified";
/// The card has no valid smartcard (PIV) certificates.
pub const NO_SMARTCARD_KEYS: &str = "no_smartcard_keys";

// Bulk issuance (`POST /api/v1/ra/bulk-issue`, the console's `/ra/bulk`).
/// A bulk CSV that cannot be read: an unterminated quote, a stray quote, a header that does not
/// name the columns, no rows; or a row with a different number of fields than the header.
pub const BULK_CSV_INVALID: &str = "bulk_csv_invalid";
/// A bulk CSV larger than 1 MiB: split it.
pub const BULK_CSV_TOO_LARGE: &str = "bulk_csv_too_large";
/// A bulk CSV with more than 1,000 rows: split it.
pub const BULK_CSV_TOO_MANY_ROWS: &str = "bulk_csv_too_many_rows";
/// A bulk CSV cell that a spreadsheet would run as a formula (starts with `=`, `+`, `-`, `@`).
pub const BULK_FORMULA_CELL: &str = "bulk_formula_cell";
/// A bulk CSV row for the same email as an earlier row of the file.
pub const BULK_DUPLICATE_ROW: &str = "bulk_duplicate_row";
/// A bulk CSV row for an email already registered at that organisation (a file run twice).
pub const BULK_PERSON_EXISTS: &str = "bulk_person_exists";
/// A bulk CSV row whose checker does not hold a role that checks identity (RA Manager, RA
/// Agent, ID Checker) at the row's organisation or nationally.
pub const BULK_CHECKER_NOT_PERMITTED: &str = "bulk_checker_not_permitted";

// Approved versions (issue 14).
/// An identity agent whose reported version (`AuthContext::agent_version`, `PRODUCT/VERSION`)
/// the approved-versions policy does not allow, or that is not a semantic version: the message
/// says which versions are approved; update the agent.
pub const AGENT_VERSION_NOT_APPROVED: &str = "agent_version_not_approved";
/// `vsc ra versions allow|deny`: a version requirement, platform or reason that cannot be read
/// (the message says how to write one).
pub const INVALID_VERSION_RULE: &str = "invalid_version_rule";
/// `vsc ra versions`: a client kind other than `authenticator` or `agent`.
pub const UNKNOWN_CLIENT_KIND: &str = "unknown_client_kind";
/// `vsc ra versions remove`: no rule has that id.
pub const UNKNOWN_VERSION_RULE: &str = "unknown_version_rule";
/// `vsc ra versions remove`: the rule is the last `allow` rule of its client kind; removing it
/// would refuse every client of that kind. Allow the versions that should stay first.
pub const LAST_ALLOW_RULE: &str = "last_allow_rule";
// (end of approved versions)

// Card replacement (issue 14).
/// Replacing a card that is not on a phone: a pending card gets a new activation instead
/// (`vsc ra card activation`); a cancelled or expired one needs a new card.
pub const CARD_NOT_REPLACEABLE: &str = "card_not_replaceable";
/// Enrolling a replacement on the phone the card is being moved away from (or one it was on
/// before): a replacement goes on a different phone.
pub const REPLACEMENT_NEEDS_NEW_PHONE: &str = "replacement_needs_new_phone";
/// A phone using a card that has been moved to another phone (replaced, or reported lost):
/// this phone can no longer use it; the holder contacts their RA.
pub const CARD_REPLACED: &str = "card_replaced";
// (end of card replacement)

// OCSP (issue 14). OCSP protocol refusals (a malformed request, a certificate of another
// issuer) are OCSP responses (`malformedRequest`, `unauthorized`) with HTTP 200, as RFC 6960
// clients expect; these two are for requests that are not OCSP at all.
/// `POST /ca/ocsp` with a body that is not `application/ocsp-request` (HTTP 415).
pub const OCSP_CONTENT_TYPE: &str = "ocsp_content_type";
/// An OCSP request larger than the responder reads (HTTP 413).
pub const OCSP_REQUEST_TOO_LARGE: &str = "ocsp_request_too_large";
// (end of OCSP)

// Renewal (issue 14).
/// A renewal asked for before the card's renewal window opens (and no RA made it due).
pub const RENEWAL_NOT_DUE: &str = "renewal_not_due";
/// A renewal request signed by a key whose certificate is revoked: nothing changed.
pub const RENEWAL_KEY_REVOKED: &str = "renewal_key_revoked";
/// A renewal request signed by a key whose certificate has expired: the card needs re-issuing.
pub const RENEWAL_KEY_EXPIRED: &str = "renewal_key_expired";
/// A renewal request signed by a key that is not the card's authentication key.
pub const RENEWAL_KEY_UNKNOWN: &str = "renewal_key_unknown";
/// A renewal confirmation for a renewal that is unknown, ended, or expired unconfirmed.
pub const RENEWAL_NOT_OPEN: &str = "renewal_not_open";
/// Signing in (or renewing) with a card whose certificates have expired.
pub const CARD_EXPIRED: &str = "card_expired";
// (end of renewal)

// Licences (issue 14).
/// Issuing a card at an organisation with no free licence while a licence pool exists; the
/// message says where the organisation stands in the waiting list.
pub const NO_FREE_LICENCE: &str = "no_free_licence";
/// A licence request that does not parse or is out of range (count, date, contact, systems,
/// pool settings).
pub const INVALID_LICENCE_REQUEST: &str = "invalid_licence_request";
/// A licence action that needs a pool when none exists yet.
pub const NO_LICENCE_POOL: &str = "no_licence_pool";
/// No application or block with this id (or not one this action applies to).
pub const UNKNOWN_LICENCE_APPLICATION: &str = "unknown_licence_application";
/// Approving an application that is not first in the waiting list (first come, first served).
pub const LICENCE_NOT_FIRST: &str = "licence_not_first";
/// The pool has too few licences for the next application (it stays waiting).
pub const LICENCE_POOL_EXHAUSTED: &str = "licence_pool_exhausted";
/// Returning more licences than the organisation has free.
pub const LICENCE_NOT_FREE: &str = "licence_not_free";
/// Extending a term beyond the pool's extension funding.
pub const LICENCE_FUNDING_EXHAUSTED: &str = "licence_funding_exhausted";
/// A card whose licence's term ended more than the grace period ago: sign-in is refused until
/// the organisation's term is extended.
pub const LICENCE_EXPIRED: &str = "licence_expired";
// (end of licences)

// Licence extensions (issue 14).
/// No extension request has this id, or it is not waiting.
pub const UNKNOWN_LICENCE_EXTENSION: &str = "unknown_licence_extension";
/// Extending a block whose term and grace period are over (the organisation applies again).
pub const LICENCE_TERM_OVER: &str = "licence_term_over";
/// Asking for an extension of a block that already has one waiting (withdraw it first).
pub const LICENCE_EXTENSION_PENDING: &str = "licence_extension_pending";
/// Approving an extension request that is not first in the queue (first come, first served).
pub const LICENCE_EXTENSION_NOT_FIRST: &str = "licence_extension_not_first";
// (end of licence extensions)

// Grace period and fast user switching (issue 14).
/// A card operation, signing request or role change on a session whose workstation is locked:
/// unlock the workstation first.
pub const SESSION_LOCKED: &str = "session_locked";
/// Resuming a locked session without a phone approval after the organisation's grace period
/// (or where it has none): approve the unlock on the phone.
pub const UNLOCK_GRACE_OVER: &str = "unlock_grace_over";
/// Resuming a session that is not locked.
pub const SESSION_NOT_LOCKED: &str = "session_not_locked";
/// A workstation policy's grace period outside 0 to 15 minutes.
pub const INVALID_WORKSTATION_POLICY: &str = "invalid_workstation_policy";
// (end of grace period and fast user switching)

// Web Push (issue 13).
/// A push subscription that is not the browser's `PushSubscription.toJSON()` (not JSON, a
/// field missing), or whose `p256dh` key is not an uncompressed P-256 point or whose `auth`
/// secret is not 16 bytes: nothing was stored; send the subscription exactly as the browser
/// made it.
pub const PUSH_SUBSCRIPTION_INVALID: &str = "push_subscription_invalid";
/// A push subscription whose endpoint is not an `https:` URL with a host (and no user name or
/// password): nothing was stored; browsers' push services are always `https:`.
pub const PUSH_ENDPOINT_INVALID: &str = "push_endpoint_invalid";
// (end of Web Push)

// Never sent to a client: recorded as the `error` of audit events only.
/// The holder declined a sign-in request.
pub const DECLINED: &str = "declined";
/// The holder reported a sign-in request they did not make.
pub const NOT_ME: &str = "not_me";
/// `refusals.aggregated`: refusals beyond the aggregator's distinct keys, counted together.
pub const TOO_MANY_DISTINCT_REFUSALS: &str = "too_many_distinct_refusals";

/// Every code above.
pub const ALL: &[&str] = &[
    INTERNAL_ERROR,
    INVALID_REQUEST,
    NOT_READY,
    SHUTTING_DOWN,
    TOO_MANY_REQUESTS,
    TOO_MANY_ATTEMPTS,
    SIGNATURE_MALFORMED,
    SIGNATURE_INVALID,
    METRICS_FORBIDDEN,
    METRICS_TOKEN_MISSING,
    METRICS_TOKEN_INVALID,
    CRL_NOT_PUBLISHED,
    INVALID_UID,
    INVALID_ODS_CODE,
    INVALID_ROLE_CODE,
    INVALID_ACTIVITY_CODE,
    INVALID_RA_ROLE,
    INVALID_NAME,
    INVALID_EMAIL,
    INVALID_NOTE,
    INVALID_SESSION_LIMITS,
    UNAUTHENTICATED,
    SESSION_EXPIRED,
    NOT_AN_RA,
    NO_ACTIVE_CARD,
    RA_ROLE_NOT_PERMITTED,
    RA_OUTSIDE_ORGANISATION,
    SPONSOR_MAY_NOT_ASSIGN,
    SPONSOR_MAY_NOT_ASSIGN_ACTIVITY,
    PRESCRIBING_ACTIVITY_NOT_PERMITTED,
    OWN_RECORD,
    SPONSOR_PRESCRIBING_ACTIVITY,
    NOT_PERMITTED,
    UNKNOWN_ORGANISATION,
    ORGANISATION_EXISTS,
    UNKNOWN_PERSON,
    PERSON_NOT_IN_ORGANISATION,
    PERSON_ALREADY_IN_ORGANISATION,
    POSITION_EXISTS,
    UNKNOWN_POSITION,
    RA_ROLE_NOT_HELD,
    INVALID_EVIDENCE,
    INVALID_LEVEL,
    INSUFFICIENT_EVIDENCE,
    IDENTITY_NOT_VERIFIED,
    POSITION_REQUEST_NEEDED,
    POSITION_REQUEST_EXISTS,
    UNKNOWN_POSITION_REQUEST,
    POSITION_REQUEST_DECIDED,
    POSITION_REQUEST_EXPIRED,
    POSITION_REQUEST_OWN,
    REQUESTER_NO_LONGER_AUTHORISED,
    UNKNOWN_CARD,
    CARD_EXISTS,
    CARD_CHANGED,
    CARD_NOT_CANCELLABLE,
    CARD_NOT_UNLOCKABLE,
    REASON_CODE_REQUIRED,
    INVALID_REASON_CODE,
    INVALID_REASON,
    INVALID_INVALIDITY_DATE,
    INVALIDITY_DATE_IN_FUTURE,
    INVALIDITY_DATE_BEFORE_ISSUE,
    INVALIDITY_DATE_NEEDS_KEY_COMPROMISE,
    ACTIVATION_MALFORMED,
    ACTIVATION_UNKNOWN,
    ACTIVATION_USED,
    ACTIVATION_EXPIRED,
    ACTIVATION_LOCKED,
    ACTIVATION_WRONG_CODE,
    UNLOCK_CODE_MALFORMED,
    UNLOCK_CODE_UNKNOWN,
    UNLOCK_CODE_USED,
    UNLOCK_CODE_EXPIRED,
    UNLOCK_CODE_LOCKED,
    UNLOCK_CODE_WRONG,
    UNLOCK_DEVICE_PROOF_FAILED,
    UNLOCK_NO_DEVICE,
    APP_VERSION_MALFORMED,
    APP_VERSION_NOT_APPROVED,
    SIMULATED_DEVICE_REFUSED,
    DEVICE_ID_MALFORMED,
    DEVICE_BOUND_TO_OTHER_PERSON,
    CARD_NOT_PENDING,
    CSR_MALFORMED,
    CSR_PROOF_OF_POSSESSION_FAILED,
    CSR_WEAK_KEY,
    CSR_WRONG_KEY_TYPE,
    CSR_UNSUPPORTED,
    KEY_REUSED,
    DEVICE_KEY_MALFORMED,
    DEVICE_KEY_MISSING,
    RECOVERY_KEY_MALFORMED,
    PASSCODE_DEPOSIT_MISSING,
    PASSCODE_VERIFIER_MALFORMED,
    PASSCODE_SECRET_MALFORMED,
    DEVICE_UNAUTHENTICATED,
    DEVICE_TOKEN_EXPIRED,
    UNKNOWN_DEVICE,
    CHALLENGE_UNKNOWN,
    CHALLENGE_USED,
    CHALLENGE_EXPIRED,
    CARD_NOT_ON_THIS_DEVICE,
    CARD_LOCKED,
    CARD_NOT_USABLE,
    PASSCODE_NOT_REGISTERED,
    INVALID_CONTEXT,
    CARD_BLOCKED,
    REQUEST_ALREADY_OPEN,
    UNKNOWN_REQUEST,
    REQUEST_SECRET_MISSING,
    REQUEST_NOT_FOR_THIS_DEVICE,
    REQUEST_ALREADY_DECIDED,
    REQUEST_EXPIRED,
    WRONG_NUMBER,
    CERTIFICATE_INVALID,
    TICKET_MISSING,
    TICKET_INVALID,
    SESSION_ENDED,
    SESSION_IDLE_TIMEOUT,
    AGENT_KEY_REQUIRED,
    UNKNOWN_ROLE,
    INVALID_WORKSTATION_NAME,
    INVALID_CSR,
    WORKSTATION_CODE_MALFORMED,
    WORKSTATION_CODE_UNKNOWN,
    WORKSTATION_CODE_USED,
    WORKSTATION_CODE_EXPIRED,
    WORKSTATION_CODE_LOCKED,
    WORKSTATION_CODE_WRONG,
    WORKSTATION_NAME_MISMATCH,
    WORKSTATION_NAME_TAKEN,
    WORKSTATION_KEY_REUSED,
    UNKNOWN_WORKSTATION,
    WORKSTATION_REVOKED,
    WORKSTATION_CERTIFICATE_EXPIRED,
    WORKSTATION_NOT_REGISTERED,
    WORKSTATION_SIGNATURE_MISSING,
    WORKSTATION_SIGNATURE_MALFORMED,
    WORKSTATION_SIGNATURE_INVALID,
    INVALID_CLIENT_NAME,
    REDIRECT_URI_REQUIRED,
    INVALID_REDIRECT_URI,
    INVALID_AUTH_METHOD,
    INVALID_JWKS,
    WEAK_CLIENT_KEY,
    INVALID_JWKS_URI,
    INVALID_BACKCHANNEL_LOGOUT_URI,
    INVALID_ID_TOKEN_ALG,
    UNKNOWN_CLIENT,
    CLIENT_DISABLED,
    CLIENT_HAS_NO_SECRET,
    CARD_NOT_ACTIVE,
    KEYS_NOT_ON_PHONE,
    NO_ROLE_SELECTED,
    NOT_A_PRESCRIBING_ROLE,
    TOO_MANY_SIGNING_REQUESTS,
    BATCH_SIZE,
    INVALID_ALGORITHM,
    INVALID_KIND,
    INVALID_ITEM_ID,
    DUPLICATE_ITEM_ID,
    PAYLOAD_MISSING,
    PAYLOAD_INVALID,
    FRAGMENTS_MISSING,
    FRAGMENTS_INVALID,
    ITEM_TOO_LARGE,
    UNKNOWN_SIGNING_REQUEST,
    SIGNING_CERTIFICATE_INVALID,
    INVALID_SLOT,
    INPUT_MALFORMED,
    INPUT_LENGTH,
    PIN_MALFORMED,
    PIN_NOT_SET,
    CARD_PIN_NOT_VERIFIED,
    NO_SMARTCARD_KEYS,
    BULK_CSV_INVALID,
    BULK_CSV_TOO_LARGE,
    BULK_CSV_TOO_MANY_ROWS,
    BULK_FORMULA_CELL,
    BULK_DUPLICATE_ROW,
    BULK_PERSON_EXISTS,
    BULK_CHECKER_NOT_PERMITTED,
    DECLINED,
    NOT_ME,
    TOO_MANY_DISTINCT_REFUSALS,
    // approved versions
    AGENT_VERSION_NOT_APPROVED,
    INVALID_VERSION_RULE,
    UNKNOWN_CLIENT_KIND,
    UNKNOWN_VERSION_RULE,
    LAST_ALLOW_RULE,
    // card replacement
    CARD_NOT_REPLACEABLE,
    REPLACEMENT_NEEDS_NEW_PHONE,
    CARD_REPLACED,
    // OCSP
    OCSP_CONTENT_TYPE,
    OCSP_REQUEST_TOO_LARGE,
    // renewal
    RENEWAL_NOT_DUE,
    RENEWAL_KEY_REVOKED,
    RENEWAL_KEY_EXPIRED,
    RENEWAL_KEY_UNKNOWN,
    RENEWAL_NOT_OPEN,
    CARD_EXPIRED,
    // licences
    NO_FREE_LICENCE,
    INVALID_LICENCE_REQUEST,
    NO_LICENCE_POOL,
    UNKNOWN_LICENCE_APPLICATION,
    LICENCE_NOT_FIRST,
    LICENCE_POOL_EXHAUSTED,
    LICENCE_NOT_FREE,
    LICENCE_FUNDING_EXHAUSTED,
    LICENCE_EXPIRED,
    // licence extensions (issue 14)
    UNKNOWN_LICENCE_EXTENSION,
    LICENCE_TERM_OVER,
    LICENCE_EXTENSION_PENDING,
    LICENCE_EXTENSION_NOT_FIRST,
    // grace period and fast user switching (issue 14)
    SESSION_LOCKED,
    UNLOCK_GRACE_OVER,
    SESSION_NOT_LOCKED,
    INVALID_WORKSTATION_POLICY,
    // Web Push (issue 13)
    PUSH_SUBSCRIPTION_INVALID,
    PUSH_ENDPOINT_INVALID,
];

#[cfg(test)]
mod tests {
    use super::ALL;
    use std::collections::HashSet;

    #[test]
    fn codes_are_distinct_lower_snake_case() {
        let mut seen = HashSet::new();
        for code in ALL {
            assert!(seen.insert(*code), "{code} is listed twice");
            assert!(
                !code.is_empty()
                    && !code.starts_with('_')
                    && !code.ends_with('_')
                    && !code.contains("__")
                    && code
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{code} is not lower_snake_case"
            );
        }
    }

    #[test]
    fn every_constant_is_listed() {
        // Each `pub const NAME: &str = "value";` of this file is in ALL, and NAME is the
        // value in upper case.
        let source = include_str!("errors.rs");
        let mut declared = 0;
        for line in source.lines() {
            let Some(rest) = line.strip_prefix("pub const ") else {
                continue;
            };
            let Some((name, value)) = rest.split_once(": &str = \"") else {
                continue;
            };
            let value = value.trim_end_matches("\";");
            assert_eq!(name, value.to_ascii_uppercase(), "{name}");
            assert!(ALL.contains(&value), "{name} is not in ALL");
            declared += 1;
        }
        assert_eq!(declared, ALL.len());
    }
}
