//! What a sign-in is worth and what the tokens say about the person, with CIS2's claim names.
//!
//! **acr.** A phone sign-in proves possession of the card's authentication key, held in the
//! phone's software keystore, unlocked by the person's passcode (checked by the server with a
//! retry limit), approved with number matching. That is multi-factor with a software-protected
//! key: AAL2 in NIST SP 800-63B terms, the level the session API reports too. So it meets
//! CIS2's `AAL2_OR_AAL3_ANY` and `AAL2_ANY`; requests for AAL3 (`AAL3_ANY`, smartcards, FIDO2,
//! iOS) or for other specific methods (`AAL2_TOTP`, `AAL2_NHSMAIL`, `AAL1_USERPASS`) cannot be
//! met and fail with `unmet_authentication_requirements`. `amr` is RFC 8176's `swk` (proof of a
//! software-secured key), `pin` (the passcode) and `mfa`.
//!
//! **Claims.** ID token: `iss sub aud exp iat auth_time nonce sid acr amr azp at_hash`, `uid`
//! and `nhsid_useruid` (the 12-digit UID, also `sub`), `selected_roleid` (with the
//! `selectedrole` scope), `id_assurance_level` (the person's highest recorded identity-check
//! level) and `authentication_assurance_level` (2), plus the `profile` names. Userinfo: by scope,
//! see [`userinfo_claims`].

use serde_json::{Map, Value, json};
use vsc_store::Conn;
use vsc_store::repo;

use crate::error::{ApiError, ApiResult};

/// The `acr` values a phone sign-in meets, in the order they are preferred when none is asked.
pub const ACR_MET: &[&str] = &["AAL2_OR_AAL3_ANY", "AAL2_ANY"];

/// Every `acr` value CIS2 relying parties send (discovery lists them; only [`ACR_MET`] can be
/// earned here).
pub const ACR_VALUES_SUPPORTED: &[&str] = &["AAL2_OR_AAL3_ANY", "AAL2_ANY"];

/// The `amr` of a phone sign-in (RFC 8176).
pub const AMR: &[&str] = &["swk", "pin", "mfa"];

/// The authentication assurance level a phone sign-in earns.
pub const AUTHENTICATION_ASSURANCE_LEVEL: u8 = 2;

/// Every claim the provider can issue.
pub const CLAIMS_SUPPORTED: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "sid",
    "acr",
    "amr",
    "azp",
    "at_hash",
    "uid",
    "nhsid_useruid",
    "name",
    "given_name",
    "family_name",
    "email",
    "idassurancelevel",
    "id_assurance_level",
    "authentication_assurance_level",
    "nhsid_nrbac_roles",
    "nhsid_user_orgs",
    "selected_roleid",
];

/// The `acr` to issue for `acr_values` (space-separated preferences): the first requested
/// value a phone sign-in meets, or the default when none was asked. `None`: none can be met.
pub fn acr_for(acr_values: Option<&str>) -> Option<&'static str> {
    let requested: Vec<&str> = acr_values
        .map(|v| v.split_ascii_whitespace().collect())
        .unwrap_or_default();
    if requested.is_empty() {
        return Some(ACR_MET[1]);
    }
    requested
        .iter()
        .find_map(|r| ACR_MET.iter().find(|m| *m == r).copied())
}

/// Whether `scopes` holds `scope`.
pub fn has(scopes: &[String], scope: &str) -> bool {
    scopes.iter().any(|s| s == scope)
}

/// A stable, opaque identifier of a person's membership of an organisation (CIS2's
/// `person_orgid`): the first 12 bytes of SHA-256 over the UID and the ODS code, hex.
fn person_orgid(uid: &str, ods: &str) -> String {
    let digest = crate::routes::signin::sha256(format!("{uid}\n{ods}").as_bytes());
    hex::encode(&digest[..12])
}

/// The person's highest recorded identity-check level (0 when none is recorded).
async fn id_assurance_level(conn: &mut Conn, uid: &str) -> ApiResult<u8> {
    Ok(repo::identity_checks(conn, uid)
        .await?
        .iter()
        .map(|c| c.level)
        .max()
        .unwrap_or(0))
}

/// The person's names as the `profile` scope gives them.
async fn person(conn: &mut Conn, uid: &str) -> ApiResult<repo::PersonRow> {
    repo::person(conn, uid)
        .await?
        .ok_or_else(|| ApiError::internal("a session's person is missing"))
}

/// Claims about the person for an ID token (beyond the protocol's own).
pub async fn id_token_claims(
    conn: &mut Conn,
    uid: &str,
    scopes: &[String],
    position_id: Option<&str>,
) -> ApiResult<Map<String, Value>> {
    let mut c = Map::new();
    c.insert("uid".into(), json!(uid));
    c.insert("nhsid_useruid".into(), json!(uid));
    c.insert(
        "id_assurance_level".into(),
        json!(id_assurance_level(conn, uid).await?),
    );
    c.insert(
        "authentication_assurance_level".into(),
        json!(AUTHENTICATION_ASSURANCE_LEVEL),
    );
    if has(scopes, "profile") {
        let p = person(conn, uid).await?;
        c.insert(
            "name".into(),
            json!(format!("{} {}", p.given_name, p.family_name)),
        );
        c.insert("given_name".into(), json!(p.given_name));
        c.insert("family_name".into(), json!(p.family_name));
    }
    if has(scopes, "selectedrole")
        && let Some(id) = position_id
    {
        c.insert("selected_roleid".into(), json!(id));
    }
    Ok(c)
}

/// The userinfo answer: `sub` always; `profile` → `name`, `given_name`, `family_name`, `uid`;
/// `email` → `email`; `nhsperson` → `nhsid_useruid`, `name`, `given_name`, `family_name`,
/// `display_name`, `idassurancelevel` (a string, as CIS2 sends it); `nationalrbacaccess` →
/// `nhsid_nrbac_roles` (each with `person_orgid`, `person_roleid`, `org_code`, `role_code`,
/// `role_name`, `activities`, `activity_codes`; vsc records activity codes only, so
/// `activities` repeats them); `associatedorgs` → `nhsid_user_orgs` (`org_code`, `org_name`);
/// `selectedrole` → `selected_roleid`. `professionalmemberships` and
/// `organisationalmemberships` are accepted and add nothing: vsc keeps no such records.
pub async fn userinfo_claims(
    conn: &mut Conn,
    uid: &str,
    scopes: &[String],
    position_id: Option<&str>,
) -> ApiResult<Map<String, Value>> {
    let mut c = Map::new();
    c.insert("sub".into(), json!(uid));
    let p = person(conn, uid).await?;
    let name = format!("{} {}", p.given_name, p.family_name);
    if has(scopes, "profile") || has(scopes, "nhsperson") {
        c.insert("name".into(), json!(name));
        c.insert("given_name".into(), json!(p.given_name));
        c.insert("family_name".into(), json!(p.family_name));
    }
    if has(scopes, "profile") {
        c.insert("uid".into(), json!(uid));
    }
    if has(scopes, "email")
        && let Some(email) = &p.email
    {
        c.insert("email".into(), json!(email));
    }
    if has(scopes, "nhsperson") {
        c.insert("nhsid_useruid".into(), json!(uid));
        c.insert("display_name".into(), json!(name));
        c.insert(
            "idassurancelevel".into(),
            json!(id_assurance_level(conn, uid).await?.to_string()),
        );
    }
    let positions = if has(scopes, "nationalrbacaccess") || has(scopes, "associatedorgs") {
        repo::positions_with_organisation_names(conn, uid).await?
    } else {
        Vec::new()
    };
    if has(scopes, "nationalrbacaccess") {
        let roles: Vec<Value> = positions
            .iter()
            .map(|(pos, _)| {
                json!({
                    "person_orgid": person_orgid(uid, &pos.ods_code),
                    "person_roleid": pos.id,
                    "org_code": pos.ods_code,
                    "role_code": pos.role_code,
                    "role_name": pos.role_name,
                    "activities": pos.activities,
                    "activity_codes": pos.activities,
                })
            })
            .collect();
        c.insert("nhsid_nrbac_roles".into(), Value::Array(roles));
    }
    if has(scopes, "associatedorgs") {
        let mut orgs: Vec<(String, String)> = positions
            .iter()
            .map(|(pos, name)| (pos.ods_code.clone(), name.clone()))
            .collect();
        orgs.sort();
        orgs.dedup();
        let orgs: Vec<Value> = orgs
            .into_iter()
            .map(|(code, name)| json!({"org_code": code, "org_name": name}))
            .collect();
        c.insert("nhsid_user_orgs".into(), Value::Array(orgs));
    }
    if has(scopes, "selectedrole")
        && let Some(id) = position_id
    {
        c.insert("selected_roleid".into(), json!(id));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acr_is_what_a_phone_sign_in_meets() {
        assert_eq!(acr_for(None), Some("AAL2_ANY"));
        assert_eq!(acr_for(Some("AAL2_OR_AAL3_ANY")), Some("AAL2_OR_AAL3_ANY"));
        assert_eq!(acr_for(Some("AAL3_ANY AAL2_ANY")), Some("AAL2_ANY"));
        assert_eq!(acr_for(Some("AAL3_ANY")), None);
        assert_eq!(acr_for(Some("AAL1_USERPASS")), None);
        assert_eq!(acr_for(Some("  ")), Some("AAL2_ANY"));
    }

    #[test]
    fn person_orgid_is_stable_and_opaque() {
        let a = person_orgid("555555555555", "RX1");
        assert_eq!(a, person_orgid("555555555555", "RX1"));
        assert_ne!(a, person_orgid("555555555555", "RX2"));
        assert_eq!(a.len(), 24);
        assert!(!a.contains("555555555555"));
    }
}
