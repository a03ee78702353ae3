//! Typed queries for the RA web console: its sessions (a cookie's SHA-256, the RA, the sign-in
//! session it came from, idle and absolute limits), the people search behind its search page,
//! the dashboard's counts and lists (locked cards, activations waiting) and a person's last
//! sign-ins.
//!
//! **Organisation scope.** An RA's organisations travel as one JSON array parameter, unpacked by
//! each engine's own function (PostgreSQL's `json_array_elements_text`, SQLite's `json_each`),
//! so each statement stays fixed text whatever the scope; `None` (a national RA) drops the
//! condition but still names the parameter, because PostgreSQL refuses a parameter whose type it
//! cannot infer from the statement.

use sqlx::any::AnyRow;

use crate::Conn;
use crate::StoreError;
use crate::repo::PersonRow;
use crate::row::{from_row, get};

/// A console session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSessionRow {
    /// SHA-256 of the cookie's token.
    pub token_hash: Vec<u8>,
    /// The RA.
    pub uid: String,
    /// The sign-in session (phone approval) it was opened from.
    pub session_id: String,
    /// Opened (Unix seconds).
    pub created_at: i64,
    /// Last request (Unix seconds).
    pub last_used: i64,
    /// Absolute expiry (Unix seconds).
    pub expires_at: i64,
    /// Signed out (Unix seconds).
    pub ended_at: Option<i64>,
}

from_row!(ConsoleSessionRow in "console_sessions" {
    token_hash, uid, session_id, created_at, last_used, expires_at, ended_at,
});

/// Stores a console session.
pub async fn insert_session(conn: &mut Conn, s: &ConsoleSessionRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO console_sessions (token_hash, uid, session_id, created_at, last_used, expires_at, ended_at)
         VALUES ($1, $2, $3, $4, $5, $6, NULL)",
    )
    .bind(&s.token_hash)
    .bind(&s.uid)
    .bind(&s.session_id)
    .bind(s.created_at)
    .bind(s.last_used)
    .bind(s.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A console session by its token's hash.
pub async fn session(
    conn: &mut Conn,
    token_hash: &[u8],
) -> Result<Option<ConsoleSessionRow>, StoreError> {
    Ok(sqlx::query_as::<_, ConsoleSessionRow>(
        "SELECT token_hash, uid, session_id, created_at, last_used, expires_at, ended_at
         FROM console_sessions WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await?)
}

/// Moves a live session's idle deadline.
pub async fn touch_session(
    conn: &mut Conn,
    token_hash: &[u8],
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE console_sessions SET last_used = $2 WHERE token_hash = $1 AND ended_at IS NULL",
    )
    .bind(token_hash)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends a session (sign-out); false when it had already ended.
pub async fn end_session(conn: &mut Conn, token_hash: &[u8], now: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE console_sessions SET ended_at = $2 WHERE token_hash = $1 AND ended_at IS NULL",
    )
    .bind(token_hash)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// People matching `query` (part of a name or email, case-insensitive, or a UID prefix) who
/// belong to one of `organisations` (registered there or holding a position there), or to any
/// organisation when `organisations` is `None`; ordered by family and given name, `limit`
/// rows from `offset`.
pub async fn search_people(
    conn: &mut Conn,
    query: &str,
    organisations: Option<&[String]>,
    limit: i64,
    offset: i64,
) -> Result<Vec<PersonRow>, StoreError> {
    let pattern = format!(
        "%{}%",
        query
            .trim()
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let orgs = serde_json::to_string(&organisations.unwrap_or(&[]))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    // Organisations travel as one JSON array parameter, unpacked by each engine's own function
    // (PostgreSQL's json_array_elements_text, SQLite's json_each), so the statement stays fixed.
    let scoped = organisations.is_some();
    let sql = match (conn.backend_name(), scoped) {
        ("PostgreSQL", true) => {
            "SELECT uid, given_name, family_name, email, registered_by FROM people p
             WHERE (lower(given_name || ' ' || family_name) LIKE $1 ESCAPE '\\' OR lower(coalesce(email, '')) LIKE $1 ESCAPE '\\' OR uid LIKE $2)
               AND (registered_by IN (SELECT json_array_elements_text($3::json))
                    OR EXISTS (SELECT 1 FROM positions q WHERE q.uid = p.uid AND q.ended_at IS NULL AND q.ods_code IN (SELECT json_array_elements_text($3::json))))
             ORDER BY family_name, given_name, uid LIMIT $4 OFFSET $5"
        }
        (_, true) => {
            "SELECT uid, given_name, family_name, email, registered_by FROM people p
             WHERE (lower(given_name || ' ' || family_name) LIKE $1 ESCAPE '\\' OR lower(coalesce(email, '')) LIKE $1 ESCAPE '\\' OR uid LIKE $2)
               AND (registered_by IN (SELECT value FROM json_each($3))
                    OR EXISTS (SELECT 1 FROM positions q WHERE q.uid = p.uid AND q.ended_at IS NULL AND q.ods_code IN (SELECT value FROM json_each($3))))
             ORDER BY family_name, given_name, uid LIMIT $4 OFFSET $5"
        }
        (_, false) => {
            "SELECT uid, given_name, family_name, email, registered_by FROM people p
             WHERE (lower(given_name || ' ' || family_name) LIKE $1 ESCAPE '\\' OR lower(coalesce(email, '')) LIKE $1 ESCAPE '\\' OR uid LIKE $2)
               AND length($3) >= 0
             ORDER BY family_name, given_name, uid LIMIT $4 OFFSET $5"
        }
    };
    Ok(sqlx::query_as::<_, PersonRow>(sql)
        .bind(pattern)
        .bind(format!("{}%", query.trim().replace(' ', "")))
        .bind(orgs)
        .bind(limit)
        .bind(offset)
        .fetch_all(conn)
        .await?)
}

/// Cards by state, among cards issued by one of `organisations` (all when `None`).
pub async fn card_counts(
    conn: &mut Conn,
    organisations: Option<&[String]>,
) -> Result<Vec<(String, i64)>, StoreError> {
    let orgs = serde_json::to_string(&organisations.unwrap_or(&[]))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let sql = match (conn.backend_name(), organisations.is_some()) {
        ("PostgreSQL", true) => {
            "SELECT state, COUNT(*) AS n FROM cards WHERE issued_by IN (SELECT json_array_elements_text($1::json)) GROUP BY state ORDER BY state"
        }
        (_, true) => {
            "SELECT state, COUNT(*) AS n FROM cards WHERE issued_by IN (SELECT value FROM json_each($1)) GROUP BY state ORDER BY state"
        }
        (_, false) => {
            "SELECT state, COUNT(*) AS n FROM cards WHERE length($1) >= 0 GROUP BY state ORDER BY state"
        }
    };
    Ok(sqlx::query_as(sql).bind(orgs).fetch_all(conn).await?)
}

/// "I didn't do this" reports since `since` on cards issued by one of `organisations` (all when
/// `None`): `(uid, card id, when)`, newest first.
pub async fn reports_since(
    conn: &mut Conn,
    organisations: Option<&[String]>,
    since: i64,
) -> Result<Vec<(String, String, i64)>, StoreError> {
    let orgs = serde_json::to_string(&organisations.unwrap_or(&[]))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let sql = match (conn.backend_name(), organisations.is_some()) {
        ("PostgreSQL", true) => {
            "SELECT r.uid, r.card_id, COALESCE(r.decided_at, r.created_at) AS at FROM auth_requests r JOIN cards c ON c.id = r.card_id
             WHERE r.state = 'reported' AND r.created_at >= $2 AND c.issued_by IN (SELECT json_array_elements_text($1::json))
             ORDER BY at DESC LIMIT 50"
        }
        (_, true) => {
            "SELECT r.uid, r.card_id, COALESCE(r.decided_at, r.created_at) AS at FROM auth_requests r JOIN cards c ON c.id = r.card_id
             WHERE r.state = 'reported' AND r.created_at >= $2 AND c.issued_by IN (SELECT value FROM json_each($1))
             ORDER BY at DESC LIMIT 50"
        }
        (_, false) => {
            "SELECT r.uid, r.card_id, COALESCE(r.decided_at, r.created_at) AS at FROM auth_requests r
             WHERE r.state = 'reported' AND r.created_at >= $2 AND length($1) >= 0
             ORDER BY at DESC LIMIT 50"
        }
    };
    Ok(sqlx::query_as(sql)
        .bind(orgs)
        .bind(since)
        .fetch_all(conn)
        .await?)
}

/// `column` is one of the organisations in the JSON array parameter `param`, in this
/// connection's dialect; without a scope (a national RA), a condition that is always true and
/// only names the parameter. Both names are the callers' constants, never input.
fn in_organisations(
    conn: &Conn,
    scoped: bool,
    column: &'static str,
    param: &'static str,
) -> String {
    match (conn.backend_name(), scoped) {
        ("PostgreSQL", true) => {
            format!("{column} IN (SELECT json_array_elements_text({param}::json))")
        }
        (_, true) => format!("{column} IN (SELECT value FROM json_each({param}))"),
        (_, false) => format!("length({param}) >= 0"),
    }
}

/// The organisations as the JSON array the scope condition unpacks.
fn organisations_json(organisations: Option<&[String]>) -> Result<String, StoreError> {
    serde_json::to_string(&organisations.unwrap_or(&[]))
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The first rows of a list, and how many rows the whole list has ("showing 20 of 57").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed<T> {
    /// At most the limit asked for, in the list's order.
    pub rows: Vec<T>,
    /// Rows in the whole list.
    pub total: i64,
}

/// A row read with `COUNT(*) OVER () AS total`: the list's length comes with its rows, from the
/// same snapshot, so "showing 20 of N" never disagrees with the rows shown (a separate count
/// could run after a card changed state).
struct Counted<T>(T, i64);

impl<'r, T: sqlx::FromRow<'r, AnyRow>> sqlx::FromRow<'r, AnyRow> for Counted<T> {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Counted(T::from_row(row)?, get(row, "total")?))
    }
}

impl<T> Listed<T> {
    fn of(rows: Vec<Counted<T>>) -> Listed<T> {
        Listed {
            total: rows.first().map_or(0, |r| r.1),
            rows: rows.into_iter().map(|r| r.0).collect(),
        }
    }
}

/// A locked card on the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedCardRow {
    /// Card id.
    pub card_id: String,
    /// Holder.
    pub uid: String,
    /// Holder's given name.
    pub given_name: String,
    /// Holder's family name.
    pub family_name: String,
    /// Issuing organisation (ODS code).
    pub issued_by: String,
    /// Its name.
    pub organisation_name: String,
    /// When it was locked (Unix milliseconds): the newest `card.locked` audit event about it.
    /// `None` when the log has none (a card locked by hand in the database).
    pub locked_at_ms: Option<i64>,
}

from_row!(LockedCardRow in "cards" {
    card_id, uid, given_name, family_name, issued_by, organisation_name, locked_at_ms,
});

/// Locked cards issued by one of `organisations` (all when `None`), most recently locked first
/// (cards without a lock event last, newest issued first), at most `limit` (at least 1).
pub async fn locked_cards(
    conn: &mut Conn,
    organisations: Option<&[String]>,
    limit: i64,
) -> Result<Listed<LockedCardRow>, StoreError> {
    let orgs = organisations_json(organisations)?;
    let scope = in_organisations(conn, organisations.is_some(), "c.issued_by", "$1");
    // The cards table keeps no lock time; the audit log's `card.locked` events (written in the
    // transaction that locks) do. Only events about cards locked now are aggregated, so that an
    // index on the events' subject, if one is added, is used card by card.
    let sql = format!(
        "SELECT c.id AS card_id, c.uid, p.given_name, p.family_name, c.issued_by,
                o.name AS organisation_name, l.locked_at_ms, COUNT(*) OVER () AS total
         FROM cards c
         JOIN people p ON p.uid = c.uid
         JOIN organisations o ON o.ods_code = c.issued_by
         LEFT JOIN (SELECT subject, MAX(at_ms) AS locked_at_ms FROM audit_events
                    WHERE action = 'card.locked'
                      AND subject IN (SELECT id FROM cards WHERE state = $3)
                    GROUP BY subject) l ON l.subject = c.id
         WHERE c.state = $3 AND {scope}
         ORDER BY l.locked_at_ms IS NULL, l.locked_at_ms DESC, c.created_at DESC, c.id
         LIMIT $2"
    );
    let rows = sqlx::query_as::<_, Counted<LockedCardRow>>(sqlx::AssertSqlSafe(sql))
        .bind(orgs)
        .bind(limit.max(1))
        .bind(vsc_core::CardState::Locked.as_str())
        .fetch_all(conn)
        .await?;
    Ok(Listed::of(rows))
}

/// A card issued but not yet enrolled, on the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingActivationRow {
    /// Card id.
    pub card_id: String,
    /// Holder.
    pub uid: String,
    /// Holder's given name.
    pub given_name: String,
    /// Holder's family name.
    pub family_name: String,
    /// Issuing organisation (ODS code).
    pub issued_by: String,
    /// Its name.
    pub organisation_name: String,
    /// When the card was issued (Unix seconds).
    pub issued_at: i64,
    /// Until when an activation code of the card can still be redeemed (Unix seconds): the
    /// latest expiry among its unused activation codes that have not had too many wrong
    /// guesses. Issuing a new activation voids the older codes by moving their expiry to that
    /// moment, so this is the newest code's. `None`: no such code is left.
    pub code_expires_at: Option<i64>,
}

from_row!(WaitingActivationRow in "cards" {
    card_id, uid, given_name, family_name, issued_by, organisation_name, issued_at,
    code_expires_at,
});

/// Cards issued by one of `organisations` (all when `None`) that wait for their phone's
/// enrolment, newest issued first, at most `limit` (at least 1). A code with `max_failures`
/// wrong guesses or more can no longer be redeemed and does not count.
pub async fn waiting_activations(
    conn: &mut Conn,
    organisations: Option<&[String]>,
    limit: i64,
    max_failures: i64,
) -> Result<Listed<WaitingActivationRow>, StoreError> {
    let orgs = organisations_json(organisations)?;
    let scope = in_organisations(conn, organisations.is_some(), "c.issued_by", "$1");
    let sql = format!(
        "SELECT c.id AS card_id, c.uid, p.given_name, p.family_name, c.issued_by,
                o.name AS organisation_name, c.created_at AS issued_at, k.code_expires_at,
                COUNT(*) OVER () AS total
         FROM cards c
         JOIN people p ON p.uid = c.uid
         JOIN organisations o ON o.ods_code = c.issued_by
         LEFT JOIN (SELECT card_id, MAX(expires_at) AS code_expires_at FROM one_time_codes
                    WHERE kind = 'activation' AND used_at IS NULL AND failed_attempts < $4
                      AND card_id IN (SELECT id FROM cards WHERE state = $3)
                    GROUP BY card_id) k ON k.card_id = c.id
         WHERE c.state = $3 AND {scope}
         ORDER BY c.created_at DESC, c.id
         LIMIT $2"
    );
    let rows = sqlx::query_as::<_, Counted<WaitingActivationRow>>(sqlx::AssertSqlSafe(sql))
        .bind(orgs)
        .bind(limit.max(1))
        .bind(vsc_core::CardState::Pending.as_str())
        .bind(max_failures)
        .fetch_all(conn)
        .await?;
    Ok(Listed::of(rows))
}

/// One of a person's sign-ins (a sign-in session), for their page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInRow {
    /// Session id.
    pub session_id: String,
    /// The card that signed in.
    pub card_id: String,
    /// When the phone approved (Unix seconds).
    pub auth_time: i64,
    /// The workstation id the request carried: a registered workstation's id,
    /// `unregistered:<claimed>`, or `web:<flow>` for the web sign-in page.
    pub workstation_id: String,
    /// The context the phone showed (JSON of `vsc_proto::signin::AuthContext`): written by the
    /// server from its registries, so the names in it are the ones of the time of the sign-in.
    pub context: Option<String>,
    /// The role used: the session's position or, for a web sign-in whose role was chosen per
    /// application, the position of the newest authorization made under it. `None`: no role.
    pub role_name: Option<String>,
    /// Its role code.
    pub role_code: Option<String>,
    /// Its organisation (ODS code).
    pub role_organisation: Option<String>,
    /// Last use (Unix seconds).
    pub last_used: i64,
    /// Idle timeout (seconds).
    pub idle_seconds: i64,
    /// Absolute expiry (Unix seconds).
    pub expires_at: i64,
    /// When it was ended (Unix seconds); a session that ran out of time is never marked.
    pub ended_at: Option<i64>,
    /// Why it was ended (`logout`, `card-locked`, …).
    pub end_reason: Option<String>,
}

from_row!(SignInRow in "sessions" {
    session_id, card_id, auth_time, workstation_id, context, role_name, role_code,
    role_organisation, last_used, idle_seconds, expires_at, ended_at, end_reason,
});

/// `uid`'s last `limit` sign-ins, newest first.
pub async fn last_sign_ins(
    conn: &mut Conn,
    uid: &str,
    limit: i64,
) -> Result<Vec<SignInRow>, StoreError> {
    Ok(sqlx::query_as::<_, SignInRow>(
        "SELECT s.id AS session_id, s.card_id, s.auth_time, s.workstation_id, r.context,
                pos.role_name, pos.role_code, pos.ods_code AS role_organisation,
                s.last_used, s.idle_seconds, s.expires_at, s.ended_at, s.end_reason
         FROM (SELECT id, card_id, request_id, position_id, workstation_id, auth_time, last_used,
                      idle_seconds, expires_at, ended_at, end_reason
               FROM sessions WHERE uid = $1 ORDER BY auth_time DESC, id DESC LIMIT $2) s
         LEFT JOIN auth_requests r ON r.id = s.request_id
         LEFT JOIN positions pos ON pos.id = COALESCE(s.position_id,
             (SELECT g.position_id FROM oidc_grants g
              WHERE g.session_id = s.id AND g.position_id IS NOT NULL
              ORDER BY g.created_at DESC, g.id DESC LIMIT 1))
         ORDER BY s.auth_time DESC, s.id DESC",
    )
    .bind(uid)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::audit::{NewEvent, Outcome, append};
    use crate::oidc::{GrantRow, insert_grant};
    use crate::oidc_clients::{ClientRow, insert_client};
    use crate::signin::{AuthRequestRow, SessionRow, insert_auth_request, insert_session};

    const RX1_PERSON: &str = "555000000001";
    const RY2_PERSON: &str = "555000000002";
    const RX1_OTHER: &str = "555000000003";

    /// A text or integer parameter of [`exec`].
    enum Arg {
        Text(&'static str),
        Int(i64),
    }
    use Arg::{Int, Text};

    /// One fixture statement.
    async fn exec(conn: &mut Conn, sql: &'static str, args: &[Arg]) {
        let mut q = sqlx::query(sql);
        for a in args {
            q = match a {
                Text(t) => q.bind(*t),
                Int(i) => q.bind(*i),
            };
        }
        q.execute(conn).await.unwrap();
    }

    async fn card(
        conn: &mut Conn,
        id: &'static str,
        uid: &'static str,
        state: &'static str,
        org: &'static str,
        created: i64,
    ) {
        exec(
            conn,
            "INSERT INTO cards (id, uid, state, custody, issued_by, created_at) VALUES ($1, $2, $3, 'device-held', $4, $5)",
            &[Text(id), Text(uid), Text(state), Text(org), Int(created)],
        )
        .await;
    }

    async fn code(
        conn: &mut Conn,
        id: &'static str,
        kind: &'static str,
        card: &'static str,
        expires: i64,
        used: Option<i64>,
        failures: i64,
    ) {
        sqlx::query(
            "INSERT INTO one_time_codes (id, kind, card_id, secret_hash, created_by, created_at, expires_at, used_at, failed_attempts)
             VALUES ($1, $2, $3, $4, 'test', 1, $5, $6, $7)",
        )
        .bind(id)
        .bind(kind)
        .bind(card)
        .bind(vec![0u8; 32])
        .bind(expires)
        .bind(used)
        .bind(failures)
        .execute(conn)
        .await
        .unwrap();
    }

    async fn locked_event(store: &crate::Store, card: &str, at_ms: i64) {
        let mut tx = store.write().await.unwrap();
        let event = NewEvent {
            actor: "system".into(),
            action: "card.locked".into(),
            subject: card.into(),
            organisation: "RX1".into(),
            source: "127.0.0.1".into(),
            outcome: Outcome::Success,
            detail: serde_json::json!({}),
        };
        append(&mut tx, &event, at_ms).await.unwrap();
        tx.commit().await.unwrap();
    }

    /// The national organisation, RX1 and RY2; two people at RX1 and one at RY2.
    async fn seed(conn: &mut Conn) {
        for (ods, name, national) in [
            ("X26", "National", 1),
            ("RX1", "Trust RX1", 0),
            ("RY2", "Trust RY2", 0),
        ] {
            exec(
                conn,
                "INSERT INTO organisations (ods_code, name, national, created_at) VALUES ($1, $2, $3, 1)",
                &[Text(ods), Text(name), Int(national)],
            )
            .await;
        }
        for (uid, family, org) in [
            (RX1_PERSON, "Able", "RX1"),
            (RY2_PERSON, "Baker", "RY2"),
            (RX1_OTHER, "Cole", "RX1"),
        ] {
            exec(
                conn,
                "INSERT INTO people (uid, given_name, family_name, email, registered_by, created_at) VALUES ($1, 'Test', $2, NULL, $3, 1)",
                &[Text(uid), Text(family), Text(org)],
            )
            .await;
        }
    }

    fn ids<T>(listed: &Listed<T>, id: impl Fn(&T) -> &str) -> Vec<String> {
        listed.rows.iter().map(|r| id(r).to_owned()).collect()
    }

    #[tokio::test]
    async fn locked_cards_in_scope_most_recently_locked_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::test_store(dir.path()).await;
        let mut conn = store.pool().acquire().await.unwrap();
        seed(&mut conn).await;
        card(&mut conn, "locked-a", RX1_PERSON, "locked", "RX1", 10).await;
        card(&mut conn, "locked-b", RX1_OTHER, "locked", "RX1", 20).await;
        card(&mut conn, "locked-c", RY2_PERSON, "locked", "RY2", 30).await;
        // Locked once and unlocked since: not listed, and its old event changes nothing.
        card(&mut conn, "active-d", RX1_OTHER, "active", "RX1", 40).await;
        drop(conn);
        locked_event(&store, "locked-a", 20_000).await;
        locked_event(&store, "active-d", 40_000).await;
        // Locked, unlocked and locked again: the newest lock counts.
        locked_event(&store, "locked-a", 50_000).await;
        locked_event(&store, "locked-c", 60_000).await;
        let mut conn = store.pool().acquire().await.unwrap();
        let rx1 = vec!["RX1".to_owned()];

        let mine = locked_cards(&mut conn, Some(&rx1), 10).await.unwrap();
        assert_eq!(ids(&mine, |r| &r.card_id), ["locked-a", "locked-b"]);
        assert_eq!(mine.total, 2);
        let a = &mine.rows[0];
        assert_eq!(
            (
                a.uid.as_str(),
                a.family_name.as_str(),
                a.issued_by.as_str(),
                a.organisation_name.as_str()
            ),
            (RX1_PERSON, "Able", "RX1", "Trust RX1")
        );
        assert_eq!(a.locked_at_ms, Some(50_000));
        assert_eq!(
            mine.rows[1].locked_at_ms, None,
            "no lock event: listed last, no time"
        );

        let all = locked_cards(&mut conn, None, 10).await.unwrap();
        assert_eq!(
            ids(&all, |r| &r.card_id),
            ["locked-c", "locked-a", "locked-b"]
        );
        assert_eq!(all.total, 3);
        // The limit cuts the rows, not the count.
        let first = locked_cards(&mut conn, Some(&rx1), 1).await.unwrap();
        assert_eq!(ids(&first, |r| &r.card_id), ["locked-a"]);
        assert_eq!(first.total, 2);
        // No organisations: nothing, not everything.
        let none = locked_cards(&mut conn, Some(&[]), 10).await.unwrap();
        assert!(none.rows.is_empty());
        assert_eq!(none.total, 0);
    }

    #[tokio::test]
    async fn waiting_activations_in_scope_with_the_usable_codes_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::test_store(dir.path()).await;
        let mut conn = store.pool().acquire().await.unwrap();
        seed(&mut conn).await;
        card(&mut conn, "pending-e", RX1_PERSON, "pending", "RX1", 30).await;
        // Voided by a new activation (expiry moved back), the new one, a used one, an unlock code.
        code(&mut conn, "e-old", "activation", "pending-e", 40, None, 0).await;
        code(
            &mut conn,
            "e-new",
            "activation",
            "pending-e",
            1_000,
            None,
            0,
        )
        .await;
        code(
            &mut conn,
            "e-used",
            "activation",
            "pending-e",
            5_000,
            Some(35),
            0,
        )
        .await;
        code(&mut conn, "e-unlock", "unlock", "pending-e", 9_000, None, 0).await;
        // Its only code had too many wrong guesses: nothing usable.
        card(&mut conn, "pending-f", RX1_OTHER, "pending", "RX1", 40).await;
        code(
            &mut conn,
            "f-guessed",
            "activation",
            "pending-f",
            2_000,
            None,
            5,
        )
        .await;
        card(&mut conn, "pending-g", RY2_PERSON, "pending", "RY2", 50).await;
        code(
            &mut conn,
            "g-code",
            "activation",
            "pending-g",
            3_000,
            None,
            4,
        )
        .await;
        card(&mut conn, "active-h", RX1_PERSON, "active", "RX1", 60).await;
        let rx1 = vec!["RX1".to_owned()];

        let mine = waiting_activations(&mut conn, Some(&rx1), 10, 5)
            .await
            .unwrap();
        assert_eq!(ids(&mine, |r| &r.card_id), ["pending-f", "pending-e"]);
        assert_eq!(mine.total, 2);
        assert_eq!(mine.rows[0].code_expires_at, None);
        let e = &mine.rows[1];
        assert_eq!(
            (e.uid.as_str(), e.issued_at, e.code_expires_at),
            (RX1_PERSON, 30, Some(1_000))
        );
        assert_eq!(e.organisation_name, "Trust RX1");

        let all = waiting_activations(&mut conn, None, 10, 5).await.unwrap();
        assert_eq!(
            ids(&all, |r| &r.card_id),
            ["pending-g", "pending-f", "pending-e"]
        );
        assert_eq!(all.rows[0].code_expires_at, Some(3_000));
        let first = waiting_activations(&mut conn, None, 1, 5).await.unwrap();
        assert_eq!((first.rows.len(), first.total), (1, 3));
        let ry2 = vec!["RY2".to_owned()];
        let theirs = waiting_activations(&mut conn, Some(&ry2), 10, 5)
            .await
            .unwrap();
        assert_eq!(ids(&theirs, |r| &r.card_id), ["pending-g"]);
    }

    #[tokio::test]
    async fn last_sign_ins_newest_first_with_the_role_used() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::test_store(dir.path()).await;
        let mut conn = store.pool().acquire().await.unwrap();
        seed(&mut conn).await;
        card(&mut conn, "card-1", RX1_PERSON, "active", "RX1", 1).await;
        card(&mut conn, "card-3", RX1_OTHER, "active", "RX1", 1).await;
        for (id, uid, code) in [
            ("pos-1", RX1_PERSON, "R8000"),
            ("pos-2", RX1_PERSON, "R8001"),
        ] {
            exec(
                &mut conn,
                "INSERT INTO positions (id, uid, ods_code, role_code, role_name, activities, created_at) VALUES ($1, $2, 'RX1', $3, $4, '[]', 1)",
                &[Text(id), Text(uid), Text(code), Text(if code == "R8000" { "Clinical Practitioner" } else { "Nurse" })],
            )
            .await;
        }
        let sessions = [
            (
                "s-ward",
                RX1_PERSON,
                "card-1",
                Some("pos-1"),
                100,
                Some((150, "logout")),
            ),
            ("s-web", RX1_PERSON, "card-1", None, 200, None),
            ("s-norole", RX1_PERSON, "card-1", None, 300, None),
            ("s-other", RX1_OTHER, "card-3", None, 400, None),
        ];
        for (id, uid, card_id, position, at, ended) in sessions {
            insert_auth_request(
                &mut conn,
                &AuthRequestRow {
                    id: format!("r-{id}"),
                    card_id: card_id.into(),
                    uid: uid.into(),
                    nonce: "n".into(),
                    context: format!("{{\"workstation_id\":\"ws-{id}\"}}"),
                    context_digest: "d".into(),
                    workstation_id: format!("ws-{id}"),
                    number: 7,
                    choices: "[]".into(),
                    poll_secret_hash: id.as_bytes().to_vec(),
                    source: "127.0.0.1".into(),
                    created_at: at,
                    expires_at: at + 60,
                    state: vsc_core::AuthRequestState::Collected,
                    decided_at: Some(at),
                },
            )
            .await
            .unwrap();
            insert_session(
                &mut conn,
                &SessionRow {
                    id: id.into(),
                    ticket_hash: id.as_bytes().to_vec(),
                    uid: uid.into(),
                    card_id: card_id.into(),
                    request_id: format!("r-{id}"),
                    position_id: position.map(str::to_owned),
                    workstation_id: format!("ws-{id}"),
                    auth_time: at,
                    last_used: at,
                    idle_seconds: 900,
                    expires_at: at + 43_200,
                    ended_at: ended.map(|e| e.0),
                    end_reason: ended.map(|e| e.1.to_owned()),
                    locked_at: None,
                },
                None,
            )
            .await
            .unwrap();
        }
        // The web sign-in chose its role per application: two grants, the newer one's counts.
        insert_client(
            &mut conn,
            &ClientRow {
                client_id: "epr".into(),
                name: "Example EPR".into(),
                redirect_uris: vec!["https://rp.example/cb".into()],
                post_logout_redirect_uris: vec![],
                public_client: true,
                auth_method: "none".into(),
                secret_hash: None,
                jwks: None,
                jwks_uri: None,
                backchannel_logout_uri: None,
                id_token_alg: "RS256".into(),
                any_loopback_redirect: false,
                ods_code: "X26".into(),
                created_by: "test".into(),
                created_at: 1,
                disabled_at: None,
            },
        )
        .await
        .unwrap();
        for (id, position, at) in [("g-1", "pos-1", 210), ("g-2", "pos-2", 220)] {
            insert_grant(
                &mut conn,
                &GrantRow {
                    id: id.into(),
                    code_hash: id.as_bytes().to_vec(),
                    client_id: "epr".into(),
                    session_id: "s-web".into(),
                    redirect_uri: "https://rp.example/cb".into(),
                    scope: "openid".into(),
                    nonce: None,
                    code_challenge: None,
                    position_id: Some(position.into()),
                    acr: "aal3".into(),
                    created_at: at,
                    code_expires_at: at + 60,
                    code_used_at: None,
                    revoked_at: None,
                },
            )
            .await
            .unwrap();
        }

        let rows = last_sign_ins(&mut conn, RX1_PERSON, 10).await.unwrap();
        let seen: Vec<(&str, Option<&str>)> = rows
            .iter()
            .map(|r| (r.session_id.as_str(), r.role_name.as_deref()))
            .collect();
        assert_eq!(
            seen,
            [
                ("s-norole", None),
                ("s-web", Some("Nurse")),
                ("s-ward", Some("Clinical Practitioner")),
            ]
        );
        let ward = &rows[2];
        assert_eq!(
            (ward.auth_time, ward.ended_at, ward.end_reason.as_deref()),
            (100, Some(150), Some("logout"))
        );
        assert_eq!(ward.role_organisation.as_deref(), Some("RX1"));
        assert_eq!(
            ward.context.as_deref(),
            Some("{\"workstation_id\":\"ws-s-ward\"}")
        );
        let newest = last_sign_ins(&mut conn, RX1_PERSON, 1).await.unwrap();
        assert_eq!(newest.len(), 1);
        assert_eq!(newest[0].session_id, "s-norole");
    }
}
