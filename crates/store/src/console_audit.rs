//! The RA console's view of the audit log: events filtered by person, card, organisation, actor
//! and time, limited to the organisations an RA may see, newest first.
//!
//! One fixed statement per engine and scope: an empty filter field is the sentinel for "any"
//! (`$1 = '' OR …`, bound as text, so PostgreSQL always knows the parameter's type), times are
//! bounded by `0` and `i64::MAX` when not given, and the organisations travel as one JSON array
//! unpacked by each engine's own function (as in [`crate::console`]).

use crate::audit::AuditEvent;
use crate::{Conn, StoreError};

/// What to look for. Empty strings match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Events about this person: the subject, or `"uid":"…"` in the detail (card events).
    pub person: String,
    /// Events about this card: the subject, or `"card_id":"…"` in the detail (sign-ins, signing).
    pub card: String,
    /// Events in this organisation.
    pub organisation: String,
    /// Events by this actor.
    pub actor: String,
    /// From (inclusive), Unix milliseconds; `None`: from the start.
    pub from_ms: Option<i64>,
    /// To (exclusive), Unix milliseconds; `None`: up to now.
    pub to_ms: Option<i64>,
}

/// `"key":"value"` anywhere in a JSON detail, as a LIKE pattern (the detail is stored compact).
fn detail_pattern(key: &str, value: &str) -> String {
    let escaped = value
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%\"{key}\":\"{escaped}\"%")
}

const FILTER: &str = r"($1 = '' OR subject = $1 OR detail LIKE $2 ESCAPE '\')
   AND ($3 = '' OR subject = $3 OR detail LIKE $4 ESCAPE '\')
   AND ($5 = '' OR organisation = $5)
   AND ($6 = '' OR actor = $6)
   AND at_ms >= $7 AND at_ms < $8
   AND seq < $9";

/// Events matching `filter` whose organisation is one of `organisations` (every event, those
/// without an organisation included, when `None`), with a sequence number below `before`,
/// newest first, at most `limit`.
pub async fn events(
    conn: &mut Conn,
    filter: &AuditFilter,
    organisations: Option<&[String]>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditEvent>, StoreError> {
    let orgs = serde_json::to_string(&organisations.unwrap_or(&[]))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let scope = match (conn.backend_name(), organisations.is_some()) {
        ("PostgreSQL", true) => "organisation IN (SELECT json_array_elements_text($10::json))",
        (_, true) => "organisation IN (SELECT value FROM json_each($10))",
        (_, false) => "length($10) >= 0",
    };
    let sql = format!(
        "SELECT seq, at_ms, actor, action, subject, organisation, source, outcome, detail, prev_hash, hash
         FROM audit_events
         WHERE {FILTER}
           AND {scope}
         ORDER BY seq DESC LIMIT $11"
    );
    Ok(sqlx::query_as::<_, AuditEvent>(sqlx::AssertSqlSafe(sql))
        .bind(filter.person.clone())
        .bind(detail_pattern("uid", &filter.person))
        .bind(filter.card.clone())
        .bind(detail_pattern("card_id", &filter.card))
        .bind(filter.organisation.clone())
        .bind(filter.actor.clone())
        .bind(filter.from_ms.unwrap_or(0))
        .bind(filter.to_ms.unwrap_or(i64::MAX))
        .bind(before.unwrap_or(i64::MAX))
        .bind(orgs)
        .bind(limit)
        .fetch_all(conn)
        .await?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::audit::{NewEvent, Outcome, append};

    fn event(
        actor: &str,
        action: &str,
        subject: &str,
        org: &str,
        detail: serde_json::Value,
    ) -> NewEvent {
        NewEvent {
            actor: actor.into(),
            action: action.into(),
            subject: subject.into(),
            organisation: org.into(),
            source: "127.0.0.1".into(),
            outcome: Outcome::Success,
            detail,
        }
    }

    #[tokio::test]
    async fn filters_scope_and_pages() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::test_store(dir.path()).await;
        let rows = [
            event(
                "555000000001",
                "person.created",
                "555000000010",
                "RX1",
                serde_json::json!({}),
            ),
            event(
                "555000000001",
                "card.issued",
                "c0ffee",
                "RX1",
                serde_json::json!({"uid": "555000000010"}),
            ),
            event(
                "555000000002",
                "person.created",
                "555000000020",
                "RY2",
                serde_json::json!({}),
            ),
            event(
                "system",
                "instance.created",
                "",
                "",
                serde_json::json!({"card_id": "c0ffee"}),
            ),
            event(
                "555000000001",
                "x_y.z",
                "555000000011",
                "RX1",
                serde_json::json!({"uid": "55500000001%"}),
            ),
        ];
        for (i, e) in rows.iter().enumerate() {
            let mut tx = store.write().await.unwrap();
            append(&mut tx, e, 1_000 * (i as i64 + 1)).await.unwrap();
            tx.commit().await.unwrap();
        }
        let mut conn = store.pool().acquire().await.unwrap();
        let all = AuditFilter::default();
        let seqs = |v: Vec<AuditEvent>| v.into_iter().map(|e| e.seq).collect::<Vec<_>>();

        assert_eq!(
            seqs(events(&mut conn, &all, None, None, 100).await.unwrap()),
            [5, 4, 3, 2, 1]
        );
        let rx1 = vec!["RX1".to_owned()];
        assert_eq!(
            seqs(
                events(&mut conn, &all, Some(&rx1), None, 100)
                    .await
                    .unwrap()
            ),
            [5, 2, 1]
        );
        // No organisations: nothing, not everything (and never the events without one).
        assert!(
            events(&mut conn, &all, Some(&[]), None, 100)
                .await
                .unwrap()
                .is_empty()
        );
        // Paging.
        assert_eq!(
            seqs(events(&mut conn, &all, None, Some(3), 1).await.unwrap()),
            [2]
        );

        let person = AuditFilter {
            person: "555000000010".into(),
            ..all.clone()
        };
        assert_eq!(
            seqs(events(&mut conn, &person, None, None, 100).await.unwrap()),
            [2, 1]
        );
        let card = AuditFilter {
            card: "c0ffee".into(),
            ..all.clone()
        };
        assert_eq!(
            seqs(events(&mut conn, &card, None, None, 100).await.unwrap()),
            [4, 2]
        );
        let org = AuditFilter {
            organisation: "RY2".into(),
            ..all.clone()
        };
        assert_eq!(
            seqs(events(&mut conn, &org, None, None, 100).await.unwrap()),
            [3]
        );
        // Filtering for another organisation than the scope's finds nothing.
        assert!(
            events(&mut conn, &org, Some(&rx1), None, 100)
                .await
                .unwrap()
                .is_empty()
        );
        let actor = AuditFilter {
            actor: "555000000002".into(),
            ..all.clone()
        };
        assert_eq!(
            seqs(events(&mut conn, &actor, None, None, 100).await.unwrap()),
            [3]
        );
        let time = AuditFilter {
            from_ms: Some(2_000),
            to_ms: Some(4_000),
            ..all.clone()
        };
        assert_eq!(
            seqs(events(&mut conn, &time, None, None, 100).await.unwrap()),
            [3, 2]
        );
        // LIKE's wildcards in a value are literal.
        let wild = AuditFilter {
            person: "55500000001_".into(),
            ..all.clone()
        };
        assert!(
            events(&mut conn, &wild, None, None, 100)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
