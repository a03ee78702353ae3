//! Card replacement (issue 14), the phone's side: what enrolling the new phone does to the old
//! one, and how the old phone is refused afterwards. The RA's side (`POST
//! /api/v1/ra/cards/{id}/replace`) is in [`crate::routes::ra`].
//!
//! A replacement keeps the card (its id, holder, history) and moves it to a new phone:
//!
//! - **Lost** (`--lost`): at the RA's request, in one transaction, the old phone's
//!   certificates are revoked `key-compromise`, its sessions end, its open sign-in requests
//!   fail, its device tokens are deleted, outstanding unlock codes are void, the card leaves the
//!   phone (`pending`, no device) and a CRL is published. Enrolling the new phone is then an
//!   ordinary enrolment of a pending card, on a phone the card has never been on.
//! - **Not lost**: the old phone keeps working (the person is not locked out while the new phone
//!   is on its way). Enrolling the new phone does the rest in the enrolment's transaction: the
//!   old certificates are revoked `superseded` (before the new ones are issued), the old
//!   phone's sessions end, its open requests fail, its device tokens go, the CRL is published,
//!   and the card binds the new phone.
//!
//! Either way `card_devices` records when the card left the old phone and why, and from then on
//! that phone is refused with `card_replaced`: its passcode checks (which every use of the
//! card's keys starts with: approvals, signing, RA sign-in), and its device tokens (the device
//! channel, its requests and signing).

use vsc_core::CardState;
use vsc_pki::RevocationReason;
use vsc_proto::errors as code;
use vsc_store::Tx;
use vsc_store::repo::{self, CardRow, MovedAwayRow, ReplacementRow};

use crate::crl::{self, CrlIssuer};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// What enrolling the new phone did to the old one, for the audit log and the hub.
#[derive(Debug)]
pub(super) struct Retired {
    /// For the `card.replaced` event.
    pub detail: serde_json::Value,
    /// Sign-in requests failed (their agents are told once the transaction commits).
    pub failed_requests: Vec<String>,
}

/// The card states a replacement enrols from: an active or locked card still on its old phone
/// (not lost), or a pending one whose phone was reported lost.
pub(super) fn enrollable_states(replacement: Option<&ReplacementRow>) -> &'static [CardState] {
    match replacement {
        Some(r) if !r.lost => &[CardState::Active, CardState::Locked],
        _ => &[CardState::Pending],
    }
}

/// Refuses to enrol a replacement on a phone the card is on or has been on: a replacement moves
/// the card to a *different* phone. Re-keying the same phone is renewal's job, and were the
/// same device id allowed, "the old phone" and "the new phone" would be one device id and the
/// old phone could not be refused afterwards.
pub(super) async fn check_new_phone(tx: &mut Tx, card: &CardRow, device_id: &str) -> ApiResult<()> {
    if card.device_id.as_deref() == Some(device_id)
        || repo::card_was_on_device(tx, &card.id, device_id).await?
    {
        return Err(ApiError::conflict(
            code::REPLACEMENT_NEEDS_NEW_PHONE,
            "this card is being moved to a new phone, and this is a phone it is on or was on; enrol the replacement on the new phone",
        ));
    }
    Ok(())
}

/// In the enrolment's transaction, before the new phone's certificates are issued: retires the
/// old phone and completes the replacement.
pub(super) async fn retire_old_phone(
    state: &AppState,
    tx: &mut Tx,
    card: &CardRow,
    replacement: &ReplacementRow,
    new_device_id: &str,
    now: i64,
) -> ApiResult<Retired> {
    if !repo::complete_replacement(tx, &replacement.id, new_device_id, now).await? {
        return Err(ApiError::conflict(
            code::CARD_CHANGED,
            "the card's replacement changed while enrolling; try again",
        ));
    }
    // Approvals the old phone gave but nobody collected yet must not become sessions; with a
    // lost phone there are none left (the card was pending), but the statement costs nothing.
    let failed_requests = repo::fail_open_requests_of_card(tx, &card.id, now).await?;
    // The new phone starts with a clean slate: the failures counted against the card were the
    // old phone's (an RA-issued activation is at least what an unlock code is).
    vsc_store::signin::reset_card_failures(tx, &card.id).await?;
    vsc_store::signing::reset_pin_failures(tx, &card.id).await?;
    let mut detail = serde_json::json!({
        "uid": card.uid, "replacement_id": replacement.id, "lost": replacement.lost,
        "old_device_id": replacement.old_device_id, "new_device_id": new_device_id,
        "requested_by": replacement.requested_by, "requests_failed": failed_requests,
    });
    if !replacement.lost {
        // Revoked before the new certificates exist, since this takes every live one.
        let revoked = repo::revoke_certificates_of(
            tx,
            &card.id,
            now,
            RevocationReason::Superseded.code(),
            None,
        )
        .await?;
        let sessions =
            vsc_store::signin::end_live_sessions_of_card(tx, &card.id, now, "card-replaced")
                .await?;
        // An unlock code was for the old phone's keystore.
        repo::void_codes(tx, &card.id, "unlock", now).await?;
        repo::record_card_unbound(tx, &card.id, now, repo::UNBOUND_REPLACED).await?;
        let (tokens, push_removed) = match card.device_id.as_deref() {
            // The old phone's push subscription goes with its tokens.
            Some(old) => (
                repo::delete_device_tokens(tx, old).await?,
                vsc_store::push::delete(tx, old).await?,
            ),
            None => (0, false),
        };
        let crl_number = crl::publish(state, tx, CrlIssuer::Issuing).await?;
        detail["reason_code"] = "superseded".into();
        detail["certificates_revoked"] = revoked.into();
        detail["sessions_ended"] = sessions.into();
        detail["push_subscription_removed"] = push_removed.into();
        detail["device_tokens_deleted"] = tokens.into();
        detail["crl_number"] = serde_json::json!(crl_number);
    }
    Ok(Retired {
        detail,
        failed_requests,
    })
}

/// The refusal a phone gets for a card that was moved away from it by a replacement.
pub(crate) fn moved_away(moved: &MovedAwayRow) -> ApiError {
    let when = time::OffsetDateTime::from_unix_timestamp(moved.unbound_at)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    let how = if moved.unbound_reason == repo::UNBOUND_LOST {
        "after this phone was reported lost"
    } else {
        "when a new phone was enrolled"
    };
    ApiError::forbidden(
        code::CARD_REPLACED,
        format!(
            "card {} was moved to another phone {how} ({when}); this phone can no longer use it. If you did not ask for this, contact your RA",
            moved.card_id
        ),
    )
}

/// Why `device_id` cannot use `card` (which is not bound to it): `card_replaced` if a
/// replacement moved the card away from this phone, `card_not_on_this_device` otherwise.
pub(super) async fn not_on_this_device(
    tx: &mut Tx,
    card: Option<&CardRow>,
    device_id: &str,
) -> ApiError {
    let moved = match card {
        Some(card) => repo::card_moved_from_device(tx, &card.id, device_id).await,
        None => Ok(None),
    };
    match moved {
        Ok(Some(moved)) => moved_away(&moved),
        Ok(None) => ApiError::forbidden(
            code::CARD_NOT_ON_THIS_DEVICE,
            "this phone holds no such card; enrol again",
        ),
        Err(e) => e.into(),
    }
}
