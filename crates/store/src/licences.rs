//! Typed queries for virtual smartcard licences: the national pool (`licence_pool`, one row,
//! absent until a national RA Manager creates it), organisations' applications, which become
//! blocks with a term when approved (`licence_applications`), and the licence each card holds
//! (`card_licences`), and the queue of requests to extend a block's term
//! (`licence_extension_requests`).
//!
//! Every function takes `&mut Conn`; the server calls the changing ones inside its write
//! transaction, so the pool, the waiting list and the cards' licences change together. Taking
//! a licence is one conditional `INSERT … SELECT` that only inserts while the block's live
//! licences are fewer than its allocation, so two issuances racing for the last licence cannot
//! both take it even without the store's write lock.

use crate::Conn;
use crate::StoreError;
use crate::row::from_row;

/// Waiting for the pool.
pub const WAITING: &str = "waiting";
/// Approved: a block with a term.
pub const APPROVED: &str = "approved";

/// An extension request approved (its cost spent from the pool's funding).
pub const EXTENDED: &str = "approved";
/// An extension request withdrawn before approval.
pub const WITHDRAWN: &str = "withdrawn";
/// An extension request whose block's grace period ended while it waited.
pub const LAPSED: &str = "lapsed";

/// Seconds in a day.
pub const DAY: i64 = 86_400;

/// The pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRow {
    /// Licences in all.
    pub total: i64,
    /// Extension funding left (licence-days).
    pub funding: i64,
    /// Grace period after a term (days).
    pub grace_days: i64,
    /// Warning period before a term ends (days).
    pub warn_days: i64,
    /// Default term (days).
    pub term_days: i64,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

from_row!(PoolRow in "licence_pool" {
    total, funding, grace_days, warn_days, term_days, created_by, created_at, updated_at,
});

/// One application (and, once approved, block), with the licences its cards hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationRow {
    /// Id (0 before insert).
    pub id: i64,
    /// Organisation.
    pub ods_code: String,
    /// Licences asked for.
    pub requested: i64,
    /// Contact.
    pub contact: String,
    /// Systems.
    pub systems: String,
    /// UID of the applying RA.
    pub applied_by: String,
    /// When (Unix seconds).
    pub applied_at: i64,
    /// [`WAITING`] or [`APPROVED`].
    pub state: String,
    /// Licences allocated now.
    pub allocated: i64,
    /// Term start (Unix seconds), once approved.
    pub term_start: Option<i64>,
    /// Term end, exclusive (Unix seconds), once approved.
    pub term_end: Option<i64>,
    /// Approver.
    pub approved_by: Option<String>,
    /// When approved.
    pub approved_at: Option<i64>,
    /// Licences held by cards now.
    pub used: i64,
}

from_row!(ApplicationRow in "licence_applications" {
    id, ods_code, requested, contact, systems, applied_by, applied_at, state, allocated,
    term_start, term_end, approved_by, approved_at, used,
});

const APP_SELECT: &str = "SELECT a.id, a.ods_code, a.requested, a.contact, a.systems, \
     a.applied_by, a.applied_at, a.state, a.allocated, a.term_start, a.term_end, \
     a.approved_by, a.approved_at, \
     (SELECT COUNT(*) FROM card_licences c WHERE c.application_id = a.id \
      AND c.returned_at IS NULL) AS used \
     FROM licence_applications a";

/// The pool, if one exists.
pub async fn pool(conn: &mut Conn) -> Result<Option<PoolRow>, StoreError> {
    Ok(sqlx::query_as::<_, PoolRow>(
        "SELECT total, funding, grace_days, warn_days, term_days, created_by, created_at, \
         updated_at FROM licence_pool WHERE id = 1",
    )
    .fetch_optional(conn)
    .await?)
}

/// Creates the pool or replaces its settings.
pub async fn set_pool(conn: &mut Conn, p: &PoolRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO licence_pool (id, total, funding, grace_days, warn_days, term_days, \
         created_by, created_at, updated_at) VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (id) DO UPDATE SET total = excluded.total, funding = excluded.funding, \
         grace_days = excluded.grace_days, warn_days = excluded.warn_days, \
         term_days = excluded.term_days, updated_at = excluded.updated_at",
    )
    .bind(p.total)
    .bind(p.funding)
    .bind(p.grace_days)
    .bind(p.warn_days)
    .bind(p.term_days)
    .bind(&p.created_by)
    .bind(p.created_at)
    .bind(p.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Spends `amount` of the pool's funding if that much is left; answers whether it did.
pub async fn spend_funding(conn: &mut Conn, amount: i64, now: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE licence_pool SET funding = funding - $1, updated_at = $2 \
         WHERE id = 1 AND funding >= $3",
    )
    .bind(amount)
    .bind(now)
    .bind(amount)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Licences held by blocks that still count against the pool: approved, and not past their
/// term's end plus `grace` seconds at `now`.
pub async fn allocated_total(conn: &mut Conn, now: i64, grace: i64) -> Result<i64, StoreError> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(allocated), 0) AS BIGINT) FROM licence_applications \
         WHERE state = $1 AND term_end + $2 > $3",
    )
    .bind(APPROVED)
    .bind(grace)
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(n)
}

/// Inserts an application; answers its id.
pub async fn insert_application(conn: &mut Conn, a: &ApplicationRow) -> Result<i64, StoreError> {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO licence_applications (ods_code, requested, contact, systems, applied_by, \
         applied_at, state, allocated) VALUES ($1, $2, $3, $4, $5, $6, $7, 0) RETURNING id",
    )
    .bind(&a.ods_code)
    .bind(a.requested)
    .bind(&a.contact)
    .bind(&a.systems)
    .bind(&a.applied_by)
    .bind(a.applied_at)
    .bind(WAITING)
    .fetch_one(conn)
    .await?;
    Ok(id)
}

/// One application by id.
pub async fn application(conn: &mut Conn, id: i64) -> Result<Option<ApplicationRow>, StoreError> {
    Ok(
        sqlx::query_as::<_, ApplicationRow>(sqlx::AssertSqlSafe(format!(
            "{APP_SELECT} WHERE a.id = $1"
        )))
        .bind(id)
        .fetch_optional(conn)
        .await?,
    )
}

/// Every application, waiting ones first in their order (time, then id), then blocks by
/// organisation and term.
pub async fn applications(conn: &mut Conn) -> Result<Vec<ApplicationRow>, StoreError> {
    Ok(
        sqlx::query_as::<_, ApplicationRow>(sqlx::AssertSqlSafe(format!(
            "{APP_SELECT} ORDER BY CASE WHEN a.state = '{WAITING}' THEN 0 ELSE 1 END, \
             a.applied_at, a.id"
        )))
        .fetch_all(conn)
        .await?,
    )
}

/// The waiting list, first come first served: by time of application, ties by id.
pub async fn waiting(conn: &mut Conn) -> Result<Vec<ApplicationRow>, StoreError> {
    Ok(
        sqlx::query_as::<_, ApplicationRow>(sqlx::AssertSqlSafe(format!(
            "{APP_SELECT} WHERE a.state = $1 ORDER BY a.applied_at, a.id"
        )))
        .bind(WAITING)
        .fetch_all(conn)
        .await?,
    )
}

/// Approves a waiting application with its full request and a term; answers whether it was
/// still waiting.
pub async fn approve(
    conn: &mut Conn,
    id: i64,
    start: i64,
    end: i64,
    by: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE licence_applications SET state = $1, allocated = requested, term_start = $2, \
         term_end = $3, approved_by = $4, approved_at = $5 WHERE id = $6 AND state = $7",
    )
    .bind(APPROVED)
    .bind(start)
    .bind(end)
    .bind(by)
    .bind(now)
    .bind(id)
    .bind(WAITING)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Lowers a block's allocation by `count` if that leaves at least the licences its cards
/// hold; answers whether it did.
pub async fn give_back(conn: &mut Conn, id: i64, count: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE licence_applications SET allocated = allocated - $1 WHERE id = $2 \
         AND state = $3 AND allocated - $4 >= (SELECT COUNT(*) FROM card_licences c \
         WHERE c.application_id = $5 AND c.returned_at IS NULL)",
    )
    .bind(count)
    .bind(id)
    .bind(APPROVED)
    .bind(count)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Moves an approved block's term end from `from` to `to`; answers whether the block was
/// still approved and ending at `from`.
pub async fn extend_term(conn: &mut Conn, id: i64, from: i64, to: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE licence_applications SET term_end = $1 WHERE id = $2 AND state = $3 \
         AND term_end = $4",
    )
    .bind(to)
    .bind(id)
    .bind(APPROVED)
    .bind(from)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One request to extend a block's term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionRow {
    /// Id (0 before insert).
    pub id: i64,
    /// The block (its application id).
    pub application_id: i64,
    /// The block's organisation.
    pub ods_code: String,
    /// The new term end asked for, exclusive (Unix seconds).
    pub new_end: i64,
    /// UID of the requesting RA.
    pub requested_by: String,
    /// When (Unix seconds).
    pub requested_at: i64,
    /// [`WAITING`], [`EXTENDED`], [`WITHDRAWN`] or [`LAPSED`].
    pub state: String,
    /// What it cost (licence-days), once approved.
    pub cost: Option<i64>,
    /// Who approved or withdrew it.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<i64>,
}

from_row!(ExtensionRow in "licence_extension_requests" {
    id, application_id, ods_code, new_end, requested_by, requested_at, state, cost, decided_by,
    decided_at,
});

const EXT_SELECT: &str = "SELECT id, application_id, ods_code, new_end, requested_by, \
     requested_at, state, cost, decided_by, decided_at FROM licence_extension_requests";

/// Inserts a waiting extension request unless one already waits for its block (one
/// conditional statement); answers its id, or `None` when one was waiting.
pub async fn insert_extension(
    conn: &mut Conn,
    e: &ExtensionRow,
) -> Result<Option<i64>, StoreError> {
    let row: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO licence_extension_requests (application_id, ods_code, new_end, \
         requested_by, requested_at, state) \
         SELECT $1, $2, $3, $4, $5, $6 WHERE NOT EXISTS (SELECT 1 FROM \
         licence_extension_requests w WHERE w.application_id = $7 AND w.state = $8) \
         RETURNING id",
    )
    .bind(e.application_id)
    .bind(&e.ods_code)
    .bind(e.new_end)
    .bind(&e.requested_by)
    .bind(e.requested_at)
    .bind(WAITING)
    .bind(e.application_id)
    .bind(WAITING)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(id,)| id))
}

/// One extension request by id.
pub async fn extension(conn: &mut Conn, id: i64) -> Result<Option<ExtensionRow>, StoreError> {
    Ok(
        sqlx::query_as::<_, ExtensionRow>(sqlx::AssertSqlSafe(format!(
            "{EXT_SELECT} WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(conn)
        .await?,
    )
}

/// The extension queue, first come first served: by time of request, ties by id.
pub async fn waiting_extensions(conn: &mut Conn) -> Result<Vec<ExtensionRow>, StoreError> {
    Ok(
        sqlx::query_as::<_, ExtensionRow>(sqlx::AssertSqlSafe(format!(
            "{EXT_SELECT} WHERE state = $1 ORDER BY requested_at, id"
        )))
        .bind(WAITING)
        .fetch_all(conn)
        .await?,
    )
}

/// Every extension request: the queue in order, then the decided ones, newest first.
pub async fn extensions(conn: &mut Conn) -> Result<Vec<ExtensionRow>, StoreError> {
    Ok(
        sqlx::query_as::<_, ExtensionRow>(sqlx::AssertSqlSafe(format!(
            "{EXT_SELECT} ORDER BY CASE WHEN state = '{WAITING}' THEN 0 ELSE 1 END, \
         CASE WHEN state = '{WAITING}' THEN requested_at ELSE -COALESCE(decided_at, 0) END, \
         id"
        )))
        .fetch_all(conn)
        .await?,
    )
}

/// Decides a waiting extension request (`state`: [`EXTENDED`], [`WITHDRAWN`] or [`LAPSED`]);
/// answers whether it was still waiting.
pub async fn decide_extension(
    conn: &mut Conn,
    id: i64,
    state: &str,
    cost: Option<i64>,
    by: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE licence_extension_requests SET state = $1, cost = $2, decided_by = $3, \
         decided_at = $4 WHERE id = $5 AND state = $6",
    )
    .bind(state)
    .bind(cost)
    .bind(by)
    .bind(now)
    .bind(id)
    .bind(WAITING)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What the holder of a card is told about its licence's term: the block's organisation and
/// end, the pool's periods, and the new end of an extension request waiting for the block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderTerm {
    /// The block's organisation.
    pub ods_code: String,
    /// The block's term end, exclusive (Unix seconds).
    pub term_end: i64,
    /// The pool's grace period (days).
    pub grace_days: i64,
    /// The pool's warning period (days).
    pub warn_days: i64,
    /// The new end a waiting extension request asks for.
    pub extension_to: Option<i64>,
}

from_row!(HolderTerm in "licence_applications" {
    ods_code, term_end, grace_days, warn_days, extension_to,
});

/// [`HolderTerm`] for `card_id`, in one query (it is on the sign-in path): the card's licence
/// joined to its block and the pool, with the waiting extension request as a subquery. `None`
/// when no pool exists or the card holds no licence.
pub async fn holder_term(conn: &mut Conn, card_id: &str) -> Result<Option<HolderTerm>, StoreError> {
    Ok(sqlx::query_as::<_, HolderTerm>(
        "SELECT a.ods_code, a.term_end, p.grace_days, p.warn_days, \
         (SELECT MAX(e.new_end) FROM licence_extension_requests e \
          WHERE e.application_id = a.id AND e.state = $1) AS extension_to \
         FROM card_licences c \
         JOIN licence_applications a ON a.id = c.application_id \
         JOIN licence_pool p ON p.id = 1 \
         WHERE c.card_id = $2 AND c.returned_at IS NULL AND a.term_end IS NOT NULL",
    )
    .bind(WAITING)
    .bind(card_id)
    .fetch_optional(conn)
    .await?)
}

/// Gives `card_id` a licence from one of `ods`'s blocks in term at `now` with a licence free
/// (the block whose term ends last, then the oldest). One conditional statement: it inserts
/// nothing when no block has a free licence. Answers the block's id.
pub async fn take(
    conn: &mut Conn,
    card_id: &str,
    ods: &str,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let row: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO card_licences (card_id, application_id, taken_at) \
         SELECT $1, a.id, $2 FROM licence_applications a \
         WHERE a.ods_code = $3 AND a.state = $4 AND a.term_start <= $5 AND a.term_end > $6 \
         AND a.allocated > (SELECT COUNT(*) FROM card_licences c \
             WHERE c.application_id = a.id AND c.returned_at IS NULL) \
         ORDER BY a.term_end DESC, a.id LIMIT 1 \
         RETURNING application_id",
    )
    .bind(card_id)
    .bind(now)
    .bind(ods)
    .bind(APPROVED)
    .bind(now)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(id,)| id))
}

/// Gives back the licence `card_id` holds, if any; answers its block.
pub async fn release(conn: &mut Conn, card_id: &str, now: i64) -> Result<Option<i64>, StoreError> {
    let row: Option<(i64,)> = sqlx::query_as(
        "UPDATE card_licences SET returned_at = $1 WHERE card_id = $2 AND returned_at IS NULL \
         RETURNING application_id",
    )
    .bind(now)
    .bind(card_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(id,)| id))
}

/// The end of the term of the licence `card_id` holds (`None`: it holds none, as cards issued
/// before the pool existed).
pub async fn term_end_of_card(conn: &mut Conn, card_id: &str) -> Result<Option<i64>, StoreError> {
    let row: Option<(Option<i64>,)> = sqlx::query_as(
        "SELECT a.term_end FROM card_licences c JOIN licence_applications a \
         ON a.id = c.application_id WHERE c.card_id = $1 AND c.returned_at IS NULL",
    )
    .bind(card_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.and_then(|(end,)| end))
}
