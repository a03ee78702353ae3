//! The audit log: one row per state change or refused request, each row carrying the SHA-256 of
//! its own content and of the row before it, so that editing, deleting or reordering any row
//! breaks the chain at that row.
//!
//! The hash covers every column except `hash` itself, length-prefixed so that no two different
//! rows encode to the same bytes. Removing rows from the *end* of the log cannot be detected
//! from the log alone; `vsc audit verify` prints the head hash so an operator can anchor it
//! elsewhere (a ticket, a log shipper) and compare later.

use std::io::Write;

use crate::Conn;
use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

use crate::row::from_row;
use crate::{Store, StoreError, Tx};

/// Longest text field or JSON string kept in an event, in bytes; longer ones are cut (on a
/// character boundary) and marked by [`truncated`]. Callers put attacker-chosen values (UIDs,
/// paths, names) into events; the cut is made here so every caller gets it.
pub const MAX_FIELD_BYTES: usize = 256;

/// `value` cut to at most [`MAX_FIELD_BYTES`] bytes on a UTF-8 character boundary, followed by
/// `…[truncated, N bytes]` (N the original length) when it was longer; unchanged otherwise.
pub fn truncated(value: &str) -> String {
    if value.len() <= MAX_FIELD_BYTES {
        return value.to_owned();
    }
    let mut end = MAX_FIELD_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[truncated, {} bytes]", &value[..end], value.len())
}

/// `detail` with every string (object keys included) passed through [`truncated`].
fn truncated_json(detail: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match detail {
        Value::String(s) => Value::String(truncated(s)),
        Value::Array(items) => Value::Array(items.iter().map(truncated_json).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (truncated(k), truncated_json(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The `prev_hash` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Whether the audited request succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The change was made.
    Success,
    /// The request was refused; nothing but counters changed.
    Failure,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Who: a UID, `system`, or `anonymous`.
    pub actor: String,
    /// What, dotted (`card.issued`).
    pub action: String,
    /// On whom or what: a UID, card id, ODS code.
    pub subject: String,
    /// The organisation it happened in (empty when none).
    pub organisation: String,
    /// From where: the client's address.
    pub source: String,
    /// Success or failure.
    pub outcome: Outcome,
    /// Anything else worth keeping (error codes, serials, reasons). Never secrets.
    pub detail: serde_json::Value,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When, Unix milliseconds.
    pub at_ms: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On whom.
    pub subject: String,
    /// Organisation.
    pub organisation: String,
    /// From where.
    pub source: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// JSON detail.
    pub detail: String,
    /// Hash of the previous event.
    pub prev_hash: String,
    /// Hash of this event.
    pub hash: String,
}

impl AuditEvent {
    /// The hash this event should carry.
    pub fn expected_hash(&self) -> String {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"vsc-audit/v1");
        let seq = self.seq.to_be_bytes();
        let at = self.at_ms.to_be_bytes();
        let fields: [&[u8]; 10] = [
            self.prev_hash.as_bytes(),
            &seq,
            &at,
            self.actor.as_bytes(),
            self.action.as_bytes(),
            self.subject.as_bytes(),
            self.organisation.as_bytes(),
            self.source.as_bytes(),
            self.outcome.as_bytes(),
            self.detail.as_bytes(),
        ];
        for field in fields {
            ctx.update(&(field.len() as u64).to_be_bytes());
            ctx.update(field);
        }
        hex::encode(ctx.finish())
    }
}

from_row!(AuditEvent in "audit_events" {
    seq, at_ms, actor, action, subject, organisation, source, outcome, detail, prev_hash, hash,
});

const COLUMNS: &str =
    "seq, at_ms, actor, action, subject, organisation, source, outcome, detail, prev_hash, hash";

/// Appends `event` inside the caller's write transaction and returns its sequence number. Text
/// fields and the detail's strings longer than [`MAX_FIELD_BYTES`] are stored cut and marked.
/// In a [`Tx`] use [`append_in`], which keeps the writer's remembered head right (an append
/// around it would make the next `append_in` collide with this event's `seq`, the primary key:
/// an error, never a forked chain).
pub async fn append(conn: &mut Conn, event: &NewEvent, at_ms: i64) -> Result<i64, StoreError> {
    let head = chain_head(conn).await?;
    insert_after(conn, head, event, at_ms)
        .await
        .map(|(seq, _)| seq)
}

/// [`append`] in a write transaction, which remembers the chain's head for the next append of
/// the same group (group commit): under load, most appends then skip reading the head. The
/// writer forgets it whenever a transaction of the group rolls back and at the start of every
/// group (another process may have appended in between), so a remembered head is always the
/// head this transaction sees.
pub async fn append_in(tx: &mut Tx, event: &NewEvent, at_ms: i64) -> Result<i64, StoreError> {
    let head = match tx.audit_head() {
        Some(head) => Some(head),
        None => chain_head(tx).await?,
    };
    match insert_after(tx, head, event, at_ms).await {
        Ok((seq, hash)) => {
            tx.remember_audit_head(seq, hash);
            Ok(seq)
        }
        Err(e) => {
            tx.forget_audit_head();
            Err(e)
        }
    }
}

/// The last event's sequence number and hash.
async fn chain_head(conn: &mut Conn) -> Result<Option<(i64, String)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// Inserts `event` after `head` (`None`: the first event); its sequence number and hash.
async fn insert_after(
    conn: &mut Conn,
    head: Option<(i64, String)>,
    event: &NewEvent,
    at_ms: i64,
) -> Result<(i64, String), StoreError> {
    let (seq, prev_hash) = match head {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS.to_owned()),
    };
    let mut row = AuditEvent {
        seq,
        at_ms,
        actor: truncated(&event.actor),
        action: truncated(&event.action),
        subject: truncated(&event.subject),
        organisation: truncated(&event.organisation),
        source: truncated(&event.source),
        outcome: event.outcome.as_str().to_owned(),
        detail: truncated_json(&event.detail).to_string(),
        prev_hash,
        hash: String::new(),
    };
    row.hash = row.expected_hash();
    sqlx::query(
        "INSERT INTO audit_events (seq, at_ms, actor, action, subject, organisation, source, outcome, detail, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(row.seq)
    .bind(row.at_ms)
    .bind(&row.actor)
    .bind(&row.action)
    .bind(&row.subject)
    .bind(&row.organisation)
    .bind(&row.source)
    .bind(&row.outcome)
    .bind(&row.detail)
    .bind(&row.prev_hash)
    .bind(&row.hash)
    .execute(&mut *conn)
    .await?;
    Ok((seq, row.hash))
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Events checked.
    pub events: u64,
    /// Hash of the last event checked (anchor it elsewhere to detect truncation later).
    pub head_hash: String,
    /// The first event that breaks the chain, and why.
    pub first_broken: Option<BrokenEvent>,
}

/// An event that does not fit the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenEvent {
    /// Its sequence number.
    pub seq: i64,
    /// What is wrong.
    pub reason: String,
}

/// Walks the whole chain in order and reports the first event that does not fit.
pub async fn verify(store: &Store) -> Result<VerifyReport, StoreError> {
    let mut prev_hash = GENESIS.to_owned();
    let mut expected_seq = 1;
    let mut events = 0;
    let mut after = 0i64;
    loop {
        // Pages keep memory flat for a log of millions of rows.
        let rows: Vec<AuditEvent> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT 1000"
        )))
        .bind(after)
        .fetch_all(store.pool())
        .await?;
        if rows.is_empty() {
            break;
        }
        for event in rows {
            after = event.seq;
            let broken = |reason: String| VerifyReport {
                events,
                head_hash: prev_hash.clone(),
                first_broken: Some(BrokenEvent {
                    seq: event.seq,
                    reason,
                }),
            };
            if event.seq != expected_seq {
                return Ok(broken(format!(
                    "expected event {expected_seq} next but found {}: events are missing",
                    event.seq
                )));
            }
            if event.prev_hash != prev_hash {
                return Ok(broken(
                    "its prev_hash does not match the event before it".into(),
                ));
            }
            if event.expected_hash() != event.hash {
                return Ok(broken(
                    "its content does not match its hash: the row was altered".into(),
                ));
            }
            prev_hash = event.hash.clone();
            expected_seq += 1;
            events += 1;
        }
    }
    Ok(VerifyReport {
        events,
        head_hash: prev_hash,
        first_broken: None,
    })
}

/// Writes every event as one JSON object per line; returns how many.
pub async fn export(store: &Store, out: &mut dyn Write) -> Result<u64, StoreError> {
    let mut after = 0i64;
    let mut count = 0;
    loop {
        let rows: Vec<AuditEvent> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT 1000"
        )))
        .bind(after)
        .fetch_all(store.pool())
        .await?;
        if rows.is_empty() {
            break;
        }
        for event in rows {
            after = event.seq;
            let at = time::OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(event.at_ms) * 1_000_000,
            )
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
            let detail: serde_json::Value = serde_json::from_str(&event.detail)
                .unwrap_or(serde_json::Value::String(event.detail.clone()));
            let line = serde_json::json!({
                "seq": event.seq, "at": at, "actor": event.actor, "action": event.action,
                "subject": event.subject, "organisation": event.organisation, "source": event.source,
                "outcome": event.outcome, "detail": detail, "prev_hash": event.prev_hash, "hash": event.hash,
            });
            serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::other)?;
            out.write_all(b"\n")?;
            count += 1;
        }
    }
    Ok(count)
}

/// Events about one subject, newest first (for the RA's view of a person or card).
pub async fn for_subject(
    store: &Store,
    subject: &str,
    limit: i64,
) -> Result<Vec<AuditEvent>, StoreError> {
    Ok(sqlx::query_as::<_, AuditEvent>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM audit_events WHERE subject = $1 ORDER BY seq DESC LIMIT $2"
    )))
    .bind(subject)
    .bind(limit)
    .fetch_all(store.pool())
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str) -> NewEvent {
        NewEvent {
            actor: "555000000001".into(),
            action: action.into(),
            subject: "555000000002".into(),
            organisation: "X26".into(),
            source: "127.0.0.1".into(),
            outcome: Outcome::Success,
            detail: serde_json::json!({"k": "v"}),
        }
    }

    async fn store_with_events(n: usize) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::test_store(dir.path()).await;
        for i in 0..n {
            let mut tx = store.write().await.expect("tx");
            append(&mut tx, &event(&format!("test.{i}")), 1000 + i as i64)
                .await
                .expect("append");
            tx.commit().await.expect("commit");
        }
        (dir, store)
    }

    #[test]
    fn long_values_are_cut_on_a_character_boundary_and_marked() {
        assert_eq!(truncated("short"), "short");
        let exact = "a".repeat(MAX_FIELD_BYTES);
        assert_eq!(truncated(&exact), exact);
        // 'é' is two bytes: 255 ASCII bytes then 'é' straddles the limit, so the cut is at 255.
        let long = format!(
            "{}é{}",
            "a".repeat(MAX_FIELD_BYTES - 1),
            "b".repeat(64 * 1024)
        );
        let cut = truncated(&long);
        assert_eq!(
            cut,
            format!(
                "{}…[truncated, {} bytes]",
                "a".repeat(MAX_FIELD_BYTES - 1),
                long.len()
            )
        );
    }

    #[tokio::test]
    async fn attacker_strings_are_stored_cut_and_marked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::test_store(dir.path()).await;
        let huge = "x".repeat(64 * 1024);
        let mut e = event("auth.request");
        e.subject = huge.clone();
        e.detail = serde_json::json!({"message": huge, "items": [huge], huge.clone(): 1});
        let mut tx = store.write().await.expect("tx");
        append(&mut tx, &e, 1).await.expect("append");
        tx.commit().await.expect("commit");
        let (subject, detail): (String, String) =
            sqlx::query_as("SELECT subject, detail FROM audit_events")
                .fetch_one(store.pool())
                .await
                .expect("row");
        let marker = format!("…[truncated, {} bytes]", huge.len());
        assert!(
            subject.len() < 300 && subject.ends_with(&marker),
            "{subject}"
        );
        assert!(detail.len() < 1200, "{} bytes", detail.len());
        assert_eq!(detail.matches(&marker).count(), 3, "{detail}");
        assert_eq!(verify(&store).await.expect("verify").first_broken, None);
    }

    #[tokio::test]
    async fn intact_chain_verifies() {
        let (_dir, store) = store_with_events(5).await;
        let report = verify(&store).await.expect("verify");
        assert_eq!(report.events, 5);
        assert_eq!(report.first_broken, None);
        let mut out = Vec::new();
        assert_eq!(export(&store, &mut out).await.expect("export"), 5);
        assert_eq!(String::from_utf8(out).expect("utf8").lines().count(), 5);
    }

    #[tokio::test]
    async fn altered_row_is_named() {
        let (_dir, store) = store_with_events(5).await;
        sqlx::query("UPDATE audit_events SET subject = 'someone-else' WHERE seq = 3")
            .execute(store.pool())
            .await
            .expect("tamper");
        let report = verify(&store).await.expect("verify");
        assert_eq!(report.first_broken.map(|b| b.seq), Some(3));
        assert_eq!(report.events, 2);
    }

    #[tokio::test]
    async fn deleted_row_is_named() {
        let (_dir, store) = store_with_events(5).await;
        sqlx::query("DELETE FROM audit_events WHERE seq = 2")
            .execute(store.pool())
            .await
            .expect("tamper");
        let broken = verify(&store)
            .await
            .expect("verify")
            .first_broken
            .expect("broken");
        assert_eq!(broken.seq, 3);
        assert!(broken.reason.contains("missing"), "{}", broken.reason);
    }

    #[tokio::test]
    async fn grouped_appends_keep_one_chain_when_members_roll_back() {
        let (_dir, store) = store_with_events(1).await;
        // Hold the writer so that the tasks below queue and run as one group.
        let mut holder = store.write().await.expect("tx");
        append_in(&mut holder, &event("test.holder"), 5)
            .await
            .expect("append");
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut tx = store.write().await.expect("tx");
                    append_in(&mut tx, &event("test.grouped"), 10 + i)
                        .await
                        .expect("append");
                    // Every third one rolls back after appending: the next member must not
                    // chain onto its event.
                    if i % 3 == 0 {
                        drop(tx);
                        false
                    } else {
                        tx.commit().await.expect("commit");
                        true
                    }
                })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        holder.commit().await.expect("commit");
        let mut committed = 0;
        for t in tasks {
            if t.await.expect("task") {
                committed += 1;
            }
        }
        let report = verify(&store).await.expect("verify");
        assert_eq!(report.first_broken, None, "{report:?}");
        assert_eq!(report.events, 1 + 1 + committed);
        assert!(
            store.writer_stats().commits < store.writer_stats().transactions,
            "the appends were not grouped"
        );
    }

    #[tokio::test]
    async fn rolled_back_transaction_leaves_no_event() {
        let (_dir, store) = store_with_events(1).await;
        let mut tx = store.write().await.expect("tx");
        append(&mut tx, &event("test.rolled-back"), 5)
            .await
            .expect("append");
        tx.rollback().await.expect("rollback");
        assert_eq!(verify(&store).await.expect("verify").events, 1);
    }
}
