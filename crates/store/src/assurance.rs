//! What `vsc assurance report` reads: the instance's standing as its own tables evidence it
//! (cards by state and custody, certificate expiry, client versions in use, each
//! organisation's session and workstation policy, the last backup). Read-only, and cheap enough
//! to run against a live instance: every query is one aggregate or one indexed lookup.

use serde::Serialize;

use crate::row::{flag, from_row};
use crate::{Conn, StoreError};

/// Cards of one state and custody.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CardCount {
    /// `active`, `locked`, …
    pub state: String,
    /// `device-held`, …
    pub custody: String,
    /// How many.
    pub cards: i64,
}

from_row!(CardCount in "cards" { state, custody, cards });

/// Cards by state and custody.
pub async fn cards_by_state_and_custody(conn: &mut Conn) -> Result<Vec<CardCount>, StoreError> {
    Ok(sqlx::query_as::<_, CardCount>(
        "SELECT state, custody, COUNT(*) AS cards FROM cards GROUP BY state, custody ORDER BY state, custody",
    )
    .fetch_all(conn)
    .await?)
}

/// Person certificates by standing at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CertificateStanding {
    /// Not revoked and not expired.
    pub valid: i64,
    /// Valid now, expiring within 30 days.
    pub expiring_within_30_days: i64,
    /// Valid now, expiring within 90 days (including the 30).
    pub expiring_within_90_days: i64,
    /// Revoked and not yet expired (what the CRL lists).
    pub revoked_unexpired: i64,
}

from_row!(CertificateStanding in "certificates" {
    valid, expiring_within_30_days, expiring_within_90_days, revoked_unexpired,
});

/// Person certificates' standing at `now` (Unix seconds).
pub async fn certificate_standing(
    conn: &mut Conn,
    now: i64,
) -> Result<CertificateStanding, StoreError> {
    Ok(sqlx::query_as::<_, CertificateStanding>(
        "SELECT
            COALESCE(SUM(CASE WHEN revoked_at IS NULL AND not_after > $1 THEN 1 ELSE 0 END), 0) AS valid,
            COALESCE(SUM(CASE WHEN revoked_at IS NULL AND not_after > $1 AND not_after <= $2 THEN 1 ELSE 0 END), 0) AS expiring_within_30_days,
            COALESCE(SUM(CASE WHEN revoked_at IS NULL AND not_after > $1 AND not_after <= $3 THEN 1 ELSE 0 END), 0) AS expiring_within_90_days,
            COALESCE(SUM(CASE WHEN revoked_at IS NOT NULL AND not_after > $1 THEN 1 ELSE 0 END), 0) AS revoked_unexpired
         FROM certificates",
    )
    .bind(now)
    .bind(now + 30 * 86_400)
    .bind(now + 90 * 86_400)
    .fetch_one(conn)
    .await?)
}

/// Phones of one platform and app version that hold a usable card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionInUse {
    /// `android`, `ios`, `web`, …
    pub platform: String,
    /// The version the phone last reported.
    pub app_version: String,
    /// Active or locked cards on such phones.
    pub cards: i64,
}

from_row!(VersionInUse in "devices" { platform, app_version, cards });

/// Authenticator versions in use: phones holding an active or locked card, by platform and the
/// version they last reported.
pub async fn versions_in_use(conn: &mut Conn) -> Result<Vec<VersionInUse>, StoreError> {
    Ok(sqlx::query_as::<_, VersionInUse>(
        "SELECT d.platform, d.app_version, COUNT(*) AS cards
         FROM cards c JOIN devices d ON d.device_id = c.device_id
         WHERE c.state IN ('active', 'locked')
         GROUP BY d.platform, d.app_version ORDER BY d.platform, d.app_version",
    )
    .fetch_all(conn)
    .await?)
}

/// One organisation's sign-in settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrganisationPolicy {
    /// ODS code.
    pub ods_code: String,
    /// Name.
    pub name: String,
    /// A session ends after this long unused.
    pub session_idle_seconds: i64,
    /// A session ends this long after sign-in, used or not.
    pub session_max_seconds: i64,
    /// Whether workstations without a registration may open sign-in requests.
    pub allow_unregistered_workstations: bool,
}

from_row!(OrganisationPolicy in "organisations" {
    ods_code, name, session_idle_seconds, session_max_seconds,
    allow_unregistered_workstations: flag,
});

/// Every organisation's sign-in settings, by ODS code.
pub async fn organisation_policies(conn: &mut Conn) -> Result<Vec<OrganisationPolicy>, StoreError> {
    Ok(sqlx::query_as::<_, OrganisationPolicy>(
        "SELECT ods_code, name, session_idle_seconds, session_max_seconds, allow_unregistered_workstations
         FROM organisations ORDER BY ods_code",
    )
    .fetch_all(conn)
    .await?)
}

/// The newest audit event of `action` that succeeded: when (Unix milliseconds) and its detail.
pub async fn last_event(
    conn: &mut Conn,
    action: &str,
) -> Result<Option<(i64, String)>, StoreError> {
    Ok(sqlx::query_as::<_, (i64, String)>(
        "SELECT at_ms, detail FROM audit_events WHERE action = $1 AND outcome = 'success'
         ORDER BY seq DESC LIMIT 1",
    )
    .bind(action)
    .fetch_optional(conn)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{NewEvent, Outcome, append};

    async fn exec(store: &crate::Store, sql: &str) {
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(store.pool())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    #[tokio::test]
    async fn the_reads_count_what_the_tables_hold_on_either_backend() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::test_store(dir.path()).await;
        for sql in [
            "INSERT INTO organisations (ods_code, name, national, created_at) VALUES ('X26', 'National', 1, 1)",
            "INSERT INTO people (uid, given_name, family_name, registered_by, created_at) VALUES ('555000000001', 'A', 'B', 'X26', 1)",
            "INSERT INTO devices (device_id, uid, platform, app_version, model, simulated, first_seen, last_seen) VALUES ('d1', '555000000001', 'android', '1.2.0', 'm', 0, 1, 1)",
            "INSERT INTO cards (id, uid, state, custody, issued_by, device_id, created_at) VALUES ('c1', '555000000001', 'active', 'device-held', 'X26', 'd1', 1)",
            "INSERT INTO cards (id, uid, state, custody, issued_by, created_at) VALUES ('c2', '555000000001', 'revoked', 'device-held', 'X26', 1)",
        ] {
            exec(&store, sql).await;
        }
        // (serial, card, not_after, revoked_at) around `now` = 1000.
        for (serial, card, not_after, revoked_at) in [
            ("01", "c1", 1000 + 10 * 86_400, None),
            ("02", "c1", 1000 + 60 * 86_400, None),
            ("03", "c2", 1000 + 400 * 86_400, Some(500_i64)),
            ("04", "c2", 900, None),
        ] {
            sqlx::query(
                "INSERT INTO certificates (serial, card_id, usage, der, spki_sha256, not_before, not_after, revoked_at)
                 VALUES ($1, $2, 'authentication', $3, $1, 0, $4, $5)",
            )
            .bind(serial)
            .bind(card)
            .bind(vec![0_u8])
            .bind(not_after)
            .bind(revoked_at)
            .execute(store.pool())
            .await
            .expect("certificate");
        }
        let mut conn = store.pool().acquire().await.expect("conn");
        assert_eq!(
            versions_in_use(&mut conn).await.expect("versions"),
            vec![VersionInUse {
                platform: "android".into(),
                app_version: "1.2.0".into(),
                cards: 1
            }],
            "the revoked card's phone is not counted"
        );
        assert_eq!(
            cards_by_state_and_custody(&mut conn)
                .await
                .expect("cards")
                .iter()
                .map(|c| (c.state.as_str(), c.cards))
                .collect::<Vec<_>>(),
            [("active", 1), ("revoked", 1)]
        );
        assert_eq!(
            certificate_standing(&mut conn, 1000).await.expect("certs"),
            CertificateStanding {
                valid: 2,
                expiring_within_30_days: 1,
                expiring_within_90_days: 2,
                revoked_unexpired: 1,
            }
        );
        let orgs = organisation_policies(&mut conn).await.expect("orgs");
        assert_eq!(
            (
                orgs[0].session_idle_seconds,
                orgs[0].allow_unregistered_workstations
            ),
            (900, false)
        );
        assert_eq!(
            last_event(&mut conn, "backup.taken").await.expect("none"),
            None
        );
        for at in [5_000, 9_000] {
            let event = NewEvent {
                actor: "system".into(),
                action: "backup.taken".into(),
                subject: format!("b{at}"),
                organisation: String::new(),
                source: "test".into(),
                outcome: Outcome::Success,
                detail: serde_json::json!({"at": at}),
            };
            append(&mut conn, &event, at).await.expect("append");
        }
        let (at, detail) = last_event(&mut conn, "backup.taken")
            .await
            .expect("read")
            .expect("some");
        assert_eq!((at, detail.contains("9000")), (9_000, true));
    }
}
