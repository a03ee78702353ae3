//! Start-up when the only RA Manager's card is locked: the server starts (it used to refuse, as
//! "no RA Manager has an active card and none is pending") and issues an unlock code for that
//! card, which the start-up output shows; each start voids the previous code.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use vsc_server::ServerConfig;
use vsc_server::clock::SystemClock;

async fn prepare(dir: &std::path::Path, database: Option<&str>) -> vsc_server::Instance {
    let bound: SocketAddr = "127.0.0.1:8443".parse().unwrap();
    let mut config = ServerConfig::new(dir.join("data"), bound);
    config.database = database.map(str::to_owned);
    vsc_server::instance::prepare(config, bound, Arc::new(SystemClock))
        .await
        .expect("the instance starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_starts_when_the_only_ra_managers_card_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    // Each start opens the same database: the data directory's SQLite file, or one PostgreSQL
    // database when the test command runs this on PostgreSQL.
    let database = vsc_store::postgres::test_database().await.unwrap();
    let first = prepare(dir.path(), database.as_deref()).await;
    let bootstrap = first
        .bootstrap
        .clone()
        .expect("a fresh instance bootstraps");
    assert!(first.recovery.is_none());
    let (card_id,): (String,) = sqlx::query_as("SELECT id FROM cards WHERE uid = $1")
        .bind(&bootstrap.uid)
        .fetch_one(first.state.store().pool())
        .await
        .unwrap();
    // The RA Manager enrolled, then locked the card with wrong passcodes.
    sqlx::query("UPDATE cards SET state = 'locked' WHERE id = $1")
        .bind(&card_id)
        .execute(first.state.store().pool())
        .await
        .unwrap();
    first.state.store().close().await;
    drop(first);

    let second = prepare(dir.path(), database.as_deref()).await;
    assert!(second.bootstrap.is_none(), "no bootstrap for a locked card");
    let recovery = second.recovery.clone().expect("a recovery unlock code");
    assert_eq!(recovery.uid, bootstrap.uid);
    assert_eq!(recovery.card_id, card_id);
    assert!(!recovery.unlock.code.is_empty());
    // The code is a live unlock code for that card.
    let (kind, used): (String, Option<i64>) = sqlx::query_as(
        "SELECT kind, used_at FROM one_time_codes WHERE card_id = $1 AND kind = 'unlock'",
    )
    .bind(&card_id)
    .fetch_one(second.state.store().pool())
    .await
    .unwrap();
    assert_eq!((kind.as_str(), used), ("unlock", None));
    let events: Vec<(String,)> =
        sqlx::query_as("SELECT detail FROM audit_events WHERE action = 'card.unlock.recovery'")
            .fetch_all(second.state.store().pool())
            .await
            .unwrap();
    assert_eq!(events.len(), 1);
    assert!(events[0].0.contains("\"recovery\":true"), "{}", events[0].0);
    second.state.store().close().await;
    drop(second);

    // Each start issues a fresh code while the card stays locked.
    let third = prepare(dir.path(), database.as_deref()).await;
    let again = third.recovery.clone().expect("a new recovery code");
    assert_ne!(again.unlock.code, recovery.unlock.code);
    third.state.store().close().await;
}
