//! Virtual smartcard licences (`/api/v1/ra/licences…`), against the real server over TLS on
//! loopback: two organisations apply, national RA Managers approve first come first served
//! while the pool lasts and the rest waits; issuance without a free licence is refused with the
//! waiting-list position and nothing written; cancelling frees a licence; a return serves the
//! waiting list in order; extensions are paid from the pool's funding and refused beyond it; a
//! term that ended stops its cards signing in after the grace period; permissions; hostile
//! input; and enforcement is off until a pool exists. Top-ups serve the waiting list and the
//! extension queue in order; extension requests wait first come first served while funding
//! lasts; holders are warned before their licence's term ends.

#![allow(clippy::unwrap_used)]

#[path = "common/mod.rs"]
mod common;

use common::{Ra, TestServer, assert_api_error, auth_context, start};
use vsc_authenticator::ClientError;
use vsc_proto::errors as code;
use vsc_proto::licences::{
    Apply, Approve, ApproveExtensions, Extend, Extensions, ExtensionsChanged, LicencesChanged,
    Report, Return, SetPool, WithdrawExtension,
};
use vsc_proto::routes;
use vsc_proto::{CancelCard, Card};

const LICENCE_TABLES: &[&str] = &[
    "licence_pool",
    "licence_applications",
    "card_licences",
    "licence_extension_requests",
];

/// Every row of the licence tables, as text.
async fn licence_rows(s: &TestServer) -> Vec<Vec<String>> {
    let postgres = s.state.store().backend() == vsc_store::Backend::Postgres;
    let mut out = Vec::new();
    for table in LICENCE_TABLES {
        let sql = if postgres {
            format!("SELECT CAST(row_to_json(t) AS TEXT) FROM {table} t ORDER BY 1")
        } else {
            let cols: Vec<(String,)> =
                sqlx::query_as("SELECT name FROM pragma_table_info($1) ORDER BY cid")
                    .bind(*table)
                    .fetch_all(s.state.store().pool())
                    .await
                    .unwrap();
            assert!(!cols.is_empty(), "table {table} exists");
            let expr = cols
                .iter()
                .map(|(c,)| format!("quote({c})"))
                .collect::<Vec<_>>()
                .join(" || '|' || ");
            format!("SELECT {expr} FROM {table} ORDER BY 1")
        };
        let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(s.state.store().pool())
            .await
            .unwrap();
        out.push(rows.into_iter().map(|(r,)| r).collect());
    }
    out
}

/// Asserts a refused request wrote nothing (the harness's tables and the licence tables).
async fn unchanged<F>(s: &TestServer, what: &str, f: F)
where
    F: AsyncFnOnce(),
{
    let before = s.snapshot().await;
    let before_lic = licence_rows(s).await;
    f().await;
    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, what);
    assert_eq!(
        before_lic,
        licence_rows(s).await,
        "{what}: licence tables unchanged"
    );
}

async fn set_pool(
    s: &TestServer,
    token: &str,
    req: &SetPool,
) -> Result<LicencesChanged, ClientError> {
    s.post(Some(token), routes::RA_LICENCES_POOL, req).await
}

async fn apply(
    s: &TestServer,
    token: &str,
    org: &str,
    count: i64,
) -> Result<LicencesChanged, ClientError> {
    s.post(
        Some(token),
        routes::RA_LICENCES_APPLY,
        &Apply {
            organisation: org.into(),
            count,
            contact: "Jo Bloggs, jo.bloggs@nhs.net".into(),
            systems: "EPS, SCR".into(),
        },
    )
    .await
}

async fn approve(
    s: &TestServer,
    token: &str,
    req: &Approve,
) -> Result<LicencesChanged, ClientError> {
    s.post(Some(token), routes::RA_LICENCES_APPROVE, req).await
}

async fn give_back(
    s: &TestServer,
    token: &str,
    org: &str,
    count: i64,
) -> Result<LicencesChanged, ClientError> {
    s.post(
        Some(token),
        routes::RA_LICENCES_RETURN,
        &Return {
            organisation: org.into(),
            count,
        },
    )
    .await
}

async fn extend(
    s: &TestServer,
    token: &str,
    application: i64,
    end: &str,
) -> Result<ExtensionsChanged, ClientError> {
    s.post(
        Some(token),
        routes::RA_LICENCES_EXTENSIONS,
        &Extend {
            application,
            end: end.into(),
        },
    )
    .await
}

async fn approve_extensions(
    s: &TestServer,
    token: &str,
    request: Option<i64>,
) -> Result<ExtensionsChanged, ClientError> {
    s.post(
        Some(token),
        routes::RA_LICENCES_EXTENSIONS_APPROVE,
        &ApproveExtensions { request },
    )
    .await
}

async fn withdraw(
    s: &TestServer,
    token: &str,
    request: i64,
) -> Result<ExtensionsChanged, ClientError> {
    s.post(
        Some(token),
        routes::RA_LICENCES_EXTENSIONS_WITHDRAW,
        &WithdrawExtension { request },
    )
    .await
}

async fn extensions(s: &TestServer, token: &str) -> Extensions {
    s.get(Some(token), routes::RA_LICENCES_EXTENSIONS)
        .await
        .expect("the extension queue")
}

async fn report(s: &TestServer, token: &str) -> Report {
    s.get(Some(token), routes::RA_LICENCES_REPORT)
        .await
        .expect("report")
}

async fn cancel(s: &TestServer, token: &str, card: &str) -> Card {
    s.post(
        Some(token),
        &routes::fill(routes::RA_CARD_CANCEL, card),
        &CancelCard {
            reason_code: Some("cessation-of-operation".into()),
            reason: "left the trust".into(),
            invalidity_date: None,
        },
    )
    .await
    .expect("cancel")
}

/// A person at `org` with an identity check and no card yet.
async fn checked_person(s: &TestServer, token: &str, org: &str) -> String {
    let uid = s.create_person(token, org).await;
    s.id_check(token, &uid, org).await;
    uid
}

/// `date` plus `days`, as YYYY-MM-DD.
fn day(s: &TestServer, days: i64) -> String {
    let d = (s.state.now() + time::Duration::days(days)).date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

fn row<'a>(r: &'a Report, org: &str) -> &'a vsc_proto::licences::ReportRow {
    r.organisations
        .iter()
        .find(|o| o.organisation == org)
        .unwrap_or_else(|| panic!("{org} in the report: {r:?}"))
}

struct World {
    s: TestServer,
    ram: Ra,
    rx: Ra,
    ry: Ra,
    rx_agent: Ra,
}

/// Two organisations, each with an RA Manager, and an RA Agent at RX1 — all made before the
/// pool, since their own cards are issued without licences.
async fn world() -> World {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    s.create_org(&ram.token, "RY2").await;
    let rx = s.new_ra(&ram.token, "RX1", "ra-manager", &[]).await;
    let ry = s.new_ra(&ram.token, "RY2", "ra-manager", &[]).await;
    let rx_agent = s.new_ra(&ram.token, "RX1", "ra-agent", &[]).await;
    World {
        s,
        ram,
        rx,
        ry,
        rx_agent,
    }
}

#[tokio::test]
async fn licences_across_two_organisations_with_a_waiting_list() {
    let World { s, ram, rx, ry, .. } = world().await;

    // No pool: not enforced; cards issue as before; applying needs a pool.
    let r = report(&s, &ram.token).await;
    assert!(!r.enforced);
    s.person_with_card(&rx.token, "RX1").await;
    assert_api_error(
        apply(&s, &rx.token, "RX1", 2).await,
        409,
        code::NO_LICENCE_POOL,
    );

    let pool = set_pool(
        &s,
        &ram.token,
        &SetPool {
            add_licences: Some(3),
            add_funding: Some(10),
            ..SetPool::default()
        },
    )
    .await
    .expect("the national RA Manager creates the pool")
    .pool;
    assert!(pool.exists);
    assert_eq!((pool.total, pool.available, pool.funding), (3, 3, 10));

    // With a pool, an organisation without licences cannot issue, and is told it has not applied.
    let uid = checked_person(&s, &rx.token, "RX1").await;
    unchanged(&s, "issuance before applying", async || {
        let m = assert_api_error(
            s.try_issue_card(&rx.token, &uid, "RX1").await,
            409,
            code::NO_FREE_LICENCE,
        );
        assert!(m.contains("no application in the waiting list"), "{m}");
    })
    .await;

    // RX1 applies for 2, RY2 for 2, RX1 for 1 more.
    let a = apply(&s, &rx.token, "RX1", 2)
        .await
        .unwrap()
        .application
        .unwrap();
    let b = apply(&s, &ry.token, "RY2", 2)
        .await
        .unwrap()
        .application
        .unwrap();
    let c = apply(&s, &rx.token, "RX1", 1)
        .await
        .unwrap()
        .application
        .unwrap();
    assert_eq!(
        (a.position, b.position, c.position),
        (Some(1), Some(2), Some(3))
    );
    assert_eq!(a.state, "waiting");

    // Approving out of order is refused.
    unchanged(&s, "approval out of order", async || {
        assert_api_error(
            approve(
                &s,
                &ram.token,
                &Approve {
                    application: Some(b.id),
                    ..Approve::default()
                },
            )
            .await,
            409,
            code::LICENCE_NOT_FIRST,
        );
    })
    .await;

    // First come, first served while the pool lasts: a (2) fits; b (2) does not fit the 1 left,
    // and c (1), which would, does not jump it.
    let done = approve(&s, &ram.token, &Approve::default()).await.unwrap();
    assert_eq!(
        done.approved.iter().map(|x| x.id).collect::<Vec<_>>(),
        vec![a.id]
    );
    assert_eq!(done.pool.available, 1);
    assert_eq!(
        done.pool
            .waiting
            .iter()
            .map(|x| (x.id, x.position))
            .collect::<Vec<_>>(),
        vec![(b.id, Some(1)), (c.id, Some(2))]
    );
    unchanged(&s, "nothing more fits", async || {
        assert_api_error(
            approve(&s, &ram.token, &Approve::default()).await,
            409,
            code::LICENCE_POOL_EXHAUSTED,
        );
    })
    .await;

    // RX1 issues two cards (the earlier checked person and a new one), then no more.
    let card1 = s.issue_card(&rx.token, &uid, "RX1").await;
    let (_, card2) = s.person_with_card(&rx.token, "RX1").await;
    let third = checked_person(&s, &rx.token, "RX1").await;
    unchanged(&s, "issuance without a free licence", async || {
        let m = assert_api_error(
            s.try_issue_card(&rx.token, &third, "RX1").await,
            409,
            code::NO_FREE_LICENCE,
        );
        assert!(
            m.contains(&format!("#{}", c.id)) && m.contains("number 2 of 2"),
            "{m}"
        );
    })
    .await;
    let ry_person = checked_person(&s, &ry.token, "RY2").await;
    unchanged(&s, "RY2 waiting", async || {
        let m = assert_api_error(
            s.try_issue_card(&ry.token, &ry_person, "RY2").await,
            409,
            code::NO_FREE_LICENCE,
        );
        assert!(m.contains("number 1 of 2"), "{m}");
    })
    .await;

    // The report, per organisation, and its CSV.
    let r = report(&s, &ram.token).await;
    assert!(r.enforced);
    let x = row(&r, "RX1");
    assert_eq!(
        (x.allocated, x.used, x.free, x.waiting, x.waiting_position),
        (2, 2, 0, 1, Some(2))
    );
    let y = row(&r, "RY2");
    assert_eq!(
        (y.allocated, y.used, y.free, y.waiting, y.waiting_position),
        (0, 0, 0, 2, Some(1))
    );
    let csv = r.to_csv();
    assert!(csv.starts_with(Report::CSV_HEADER), "{csv}");
    assert!(csv.contains("\nRX1,2,2,0,1,2,0,,0,,\n"), "{csv}");
    assert!(csv.contains("\nRY2,0,0,0,2,1,0,,0,,\n"), "{csv}");
    // A trust's RA sees its own organisation only.
    let mine = report(&s, &ry.token).await;
    assert_eq!(
        mine.organisations
            .iter()
            .map(|o| o.organisation.as_str())
            .collect::<Vec<_>>(),
        vec!["RY2"]
    );
    assert!(mine.applications.iter().all(|a| a.organisation == "RY2"));

    // Cancelling frees the licence: the third person now gets a card.
    cancel(&s, &rx.token, &card1.card.id).await;
    let card3 = s.issue_card(&rx.token, &third, "RX1").await;

    // Nothing unused to return.
    unchanged(&s, "return of used licences", async || {
        assert_api_error(
            give_back(&s, &rx.token, "RX1", 1).await,
            409,
            code::LICENCE_NOT_FREE,
        );
    })
    .await;
    // Cancel one and return it: the pool has 2, which goes to the waiting list in order (b).
    cancel(&s, &rx.token, &card2.card.id).await;
    let done = give_back(&s, &rx.token, "RX1", 1).await.expect("return");
    assert_eq!(
        done.approved.iter().map(|x| x.id).collect::<Vec<_>>(),
        vec![b.id]
    );
    assert_eq!(done.pool.available, 0);
    assert_eq!(
        done.pool.waiting.iter().map(|x| x.id).collect::<Vec<_>>(),
        vec![c.id]
    );
    s.issue_card(&ry.token, &ry_person, "RY2").await;
    let r = report(&s, &ram.token).await;
    let x = row(&r, "RX1");
    assert_eq!(
        (x.allocated, x.used, x.free, x.waiting_position),
        (1, 1, 0, Some(1))
    );
    let y = row(&r, "RY2");
    assert_eq!((y.allocated, y.used, y.free, y.waiting), (2, 1, 1, 0));
    let _ = card3;

    // A national RA Manager's extension request, first in the queue and funded, is approved at
    // once (block a: 1 licence × 5 days = 5 of 10); one beyond the funding waits.
    let done = extend(&s, &ram.token, a.id, &day(&s, 364 + 5))
        .await
        .expect("extension within funding");
    assert_eq!(done.funding, 5);
    assert_eq!(done.approved.len(), 1);
    assert_eq!(done.approved[0].end, day(&s, 364 + 5));
    assert_eq!(done.approved[0].cost, 5);
    let r = report(&s, &ram.token).await;
    assert_eq!(
        r.applications.iter().find(|x| x.id == a.id).unwrap().end,
        Some(day(&s, 364 + 5))
    );
    let waiting = extend(&s, &ram.token, a.id, &day(&s, 364 + 11))
        .await
        .expect("a request beyond the funding waits");
    assert!(waiting.approved.is_empty());
    let w = waiting.request.unwrap();
    assert_eq!(
        (w.state.as_str(), w.position, w.cost),
        ("waiting", Some(1), 6)
    );
    unchanged(&s, "extension beyond funding", async || {
        let m = assert_api_error(
            approve_extensions(&s, &ram.token, None).await,
            409,
            code::LICENCE_FUNDING_EXHAUSTED,
        );
        assert!(m.contains("costs 6") && m.contains("has 5 left"), "{m}");
    })
    .await;
    s.assert_audit_intact().await;
}

#[tokio::test]
async fn permissions_and_hostile_input() {
    let World {
        s,
        ram,
        rx,
        ry,
        rx_agent,
    } = world().await;
    set_pool(
        &s,
        &ram.token,
        &SetPool {
            add_licences: Some(5),
            ..SetPool::default()
        },
    )
    .await
    .unwrap();
    let a = apply(&s, &rx.token, "RX1", 1)
        .await
        .unwrap()
        .application
        .unwrap();

    unchanged(&s, "refused permissions", async || {
        // A trust RA Manager cannot run the pool, approve or extend.
        assert_api_error(
            approve(&s, &rx.token, &Approve::default()).await,
            403,
            code::RA_OUTSIDE_ORGANISATION,
        );
        assert_api_error(
            set_pool(
                &s,
                &rx.token,
                &SetPool {
                    add_licences: Some(1000),
                    ..SetPool::default()
                },
            )
            .await,
            403,
            code::RA_OUTSIDE_ORGANISATION,
        );
        assert_api_error(
            approve_extensions(&s, &rx.token, None).await,
            403,
            code::RA_OUTSIDE_ORGANISATION,
        );
        // An RA Agent cannot apply; another organisation cannot apply or return for ours.
        assert_api_error(
            apply(&s, &rx_agent.token, "RX1", 1).await,
            403,
            code::RA_ROLE_NOT_PERMITTED,
        );
        assert_api_error(
            apply(&s, &ry.token, "RX1", 1).await,
            403,
            code::RA_OUTSIDE_ORGANISATION,
        );
        assert_api_error(
            give_back(&s, &ry.token, "RX1", 1).await,
            403,
            code::RA_OUTSIDE_ORGANISATION,
        );
        assert_api_error(
            give_back(&s, &rx_agent.token, "RX1", 1).await,
            403,
            code::RA_ROLE_NOT_PERMITTED,
        );
        // Hostile counts, dates, organisations, settings.
        for n in [0, -1, -1_000_000, 100_001, i64::MAX, i64::MIN] {
            assert_api_error(
                apply(&s, &rx.token, "RX1", n).await,
                400,
                code::INVALID_LICENCE_REQUEST,
            );
            assert_api_error(
                give_back(&s, &rx.token, "RX1", n).await,
                400,
                code::INVALID_LICENCE_REQUEST,
            );
        }
        assert_api_error(
            apply(&s, &ram.token, "ZZ99", 1).await,
            404,
            code::UNKNOWN_ORGANISATION,
        );
        assert_api_error(
            apply(&s, &ram.token, "not an ods", 1).await,
            400,
            code::INVALID_ODS_CODE,
        );
        assert_api_error(
            give_back(&s, &ram.token, "ZZ99", 1).await,
            404,
            code::UNKNOWN_ORGANISATION,
        );
        for bad in [
            "2026-13-01",
            "2026-02-30",
            "tomorrow",
            "",
            "2026-1-1",
            "1999-12-31",
            "9999-01-01",
            "2026-01-01T00:00:00Z",
        ] {
            assert_api_error(
                approve(
                    &s,
                    &ram.token,
                    &Approve {
                        end: Some(bad.into()),
                        ..Approve::default()
                    },
                )
                .await,
                400,
                code::INVALID_LICENCE_REQUEST,
            );
            assert_api_error(
                extend(&s, &ram.token, a.id, bad).await,
                400,
                code::INVALID_LICENCE_REQUEST,
            );
        }
        // An end before the start.
        assert_api_error(
            approve(
                &s,
                &ram.token,
                &Approve {
                    start: Some("2030-06-01".into()),
                    end: Some("2030-05-01".into()),
                    application: None,
                },
            )
            .await,
            400,
            code::INVALID_LICENCE_REQUEST,
        );
        for bad in [
            SetPool {
                add_licences: Some(-5),
                ..SetPool::default()
            },
            SetPool {
                add_funding: Some(-1),
                ..SetPool::default()
            },
            SetPool {
                grace_days: Some(1000),
                ..SetPool::default()
            },
            SetPool {
                warn_days: Some(0),
                ..SetPool::default()
            },
            SetPool {
                term_days: Some(-3),
                ..SetPool::default()
            },
        ] {
            assert_api_error(
                set_pool(&s, &ram.token, &bad).await,
                400,
                code::INVALID_LICENCE_REQUEST,
            );
        }
        let mut long = Apply {
            organisation: "RX1".into(),
            count: 1,
            contact: "x".repeat(201),
            systems: "EPS".into(),
        };
        let r: Result<LicencesChanged, _> = s
            .post(Some(&rx.token), routes::RA_LICENCES_APPLY, &long)
            .await;
        assert_api_error(r, 400, code::INVALID_LICENCE_REQUEST);
        long.contact = "Jo".into();
        long.systems = "EPS\u{202e}".into();
        let r: Result<LicencesChanged, _> = s
            .post(Some(&rx.token), routes::RA_LICENCES_APPLY, &long)
            .await;
        assert_api_error(r, 400, code::INVALID_LICENCE_REQUEST);
        // Unknown blocks; a waiting application is not a block.
        assert_api_error(
            extend(&s, &ram.token, 999_999, "2030-01-01").await,
            404,
            code::UNKNOWN_LICENCE_APPLICATION,
        );
        assert_api_error(
            extend(&s, &ram.token, a.id, "2030-01-01").await,
            404,
            code::UNKNOWN_LICENCE_APPLICATION,
        );
        assert_api_error(
            approve(
                &s,
                &ram.token,
                &Approve {
                    application: Some(999_999),
                    ..Approve::default()
                },
            )
            .await,
            404,
            code::UNKNOWN_LICENCE_APPLICATION,
        );
    })
    .await;
    // The organisation's own RA Manager and a national one may apply.
    apply(&s, &rx.token, "RX1", 1)
        .await
        .expect("own RA Manager");
    apply(&s, &ram.token, "RY2", 1)
        .await
        .expect("national RA Manager");
    s.assert_audit_intact().await;
}

#[tokio::test]
async fn a_term_that_ends_stops_sign_in_after_the_grace_period() {
    let World { s, ram, rx, .. } = world().await;
    // A card issued before the pool holds no licence and is never cut off by a term.
    let (old_uid, _, _old_phone) = s.enrolled_person(&rx.token, "RX1").await;
    set_pool(
        &s,
        &ram.token,
        &SetPool {
            add_licences: Some(2),
            add_funding: Some(100),
            grace_days: Some(2),
            warn_days: Some(10),
            ..SetPool::default()
        },
    )
    .await
    .unwrap();
    let a = apply(&s, &rx.token, "RX1", 2)
        .await
        .unwrap()
        .application
        .unwrap();
    // The term ends at the end of today.
    let today = day(&s, 0);
    let done = approve(
        &s,
        &ram.token,
        &Approve {
            end: Some(today.clone()),
            ..Approve::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(done.approved[0].end.as_deref(), Some(today.as_str()));
    let (uid, _, _phone) = s.enrolled_person(&rx.token, "RX1").await;
    s.try_open_request(&uid, &auth_context("ws-1"))
        .await
        .expect("in term");

    // Expiring: in the report, with a warning.
    let r = report(&s, &rx.token).await;
    let x = row(&r, "RX1");
    assert_eq!(
        (x.expiring, x.expiring_on.as_deref()),
        (2, Some(today.as_str()))
    );
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("RX1") && w.contains(&today)),
        "{:?}",
        r.warnings
    );

    // The term ended: in grace, sign-in still works; no new card can take a licence.
    s.clock
        .advance(time::Duration::days(1) + time::Duration::hours(1));
    let ram_token = s.login(&ram.phone).await;
    let rx_token = s.login(&rx.phone).await;
    s.try_open_request(&uid, &auth_context("ws-2"))
        .await
        .expect("in grace");
    let late = checked_person(&s, &rx_token, "RX1").await;
    assert_api_error(
        s.try_issue_card(&rx_token, &late, "RX1").await,
        409,
        code::NO_FREE_LICENCE,
    );
    let r = report(&s, &rx_token).await;
    assert_eq!(row(&r, "RX1").free, 0);
    assert!(
        r.warnings.iter().any(|w| w.contains("ended on")),
        "{:?}",
        r.warnings
    );

    // After the grace period: refused with its own code, and nothing written.
    s.clock.advance(time::Duration::days(2));
    let ram_token2 = s.login(&ram.phone).await;
    let _ = ram_token;
    unchanged(&s, "sign-in after the grace period", async || {
        let m = assert_api_error(
            s.try_open_request(&uid, &auth_context("ws-3")).await,
            403,
            code::LICENCE_EXPIRED,
        );
        assert!(
            m.contains(&today) && m.contains("grace period of 2 days"),
            "{m}"
        );
    })
    .await;
    // A card without a licence (issued before the pool) is not cut off.
    s.try_open_request(&old_uid, &auth_context("ws-4"))
        .await
        .expect("a card from before the pool");
    // Too late to extend once the grace period is over.
    unchanged(&s, "extension after the grace period", async || {
        let m = assert_api_error(
            extend(&s, &ram_token2, a.id, &day(&s, 30)).await,
            409,
            code::LICENCE_TERM_OVER,
        );
        assert!(m.contains("applies again"), "{m}");
    })
    .await;
}

#[tokio::test]
async fn extending_in_grace_restores_sign_in() {
    let World { s, ram, rx, .. } = world().await;
    set_pool(
        &s,
        &ram.token,
        &SetPool {
            add_licences: Some(1),
            add_funding: Some(30),
            grace_days: Some(0),
            ..SetPool::default()
        },
    )
    .await
    .unwrap();
    let a = apply(&s, &rx.token, "RX1", 1)
        .await
        .unwrap()
        .application
        .unwrap();
    approve(
        &s,
        &ram.token,
        &Approve {
            end: Some(day(&s, 0)),
            ..Approve::default()
        },
    )
    .await
    .unwrap();
    let (uid, _, _phone) = s.enrolled_person(&rx.token, "RX1").await;
    s.clock
        .advance(time::Duration::days(1) + time::Duration::hours(1));
    let ram_token = s.login(&ram.phone).await;
    assert_api_error(
        s.try_open_request(&uid, &auth_context("ws-1")).await,
        403,
        code::LICENCE_EXPIRED,
    );
    // Grace 0: over at once, so no extension; a pool with grace lets the RA extend.
    assert_api_error(
        extend(&s, &ram_token, a.id, &day(&s, 10)).await,
        409,
        code::LICENCE_TERM_OVER,
    );
    set_pool(
        &s,
        &ram_token,
        &SetPool {
            grace_days: Some(7),
            ..SetPool::default()
        },
    )
    .await
    .unwrap();
    let done = extend(&s, &ram_token, a.id, &day(&s, 10))
        .await
        .expect("extend in grace");
    assert_eq!(done.funding, 30 - 11);
    assert_eq!(done.approved.len(), 1, "{done:?}");
    s.try_open_request(&uid, &auth_context("ws-2"))
        .await
        .expect("extended");
}

#[tokio::test]
async fn two_issuances_racing_for_the_last_licence() {
    let World { s, ram, rx, .. } = world().await;
    set_pool(
        &s,
        &ram.token,
        &SetPool {
            add_licences: Some(1),
            ..SetPool::default()
        },
    )
    .await
    .unwrap();
    apply(&s, &rx.token, "RX1", 1).await.unwrap();
    approve(&s, &ram.token, &Approve::default()).await.unwrap();
    let one = checked_person(&s, &rx.token, "RX1").await;
    let two = checked_person(&s, &rx.token, "RX1").await;
    let (a, b) = tokio::join!(
        s.try_issue_card(&rx.token, &one, "RX1"),
        s.try_issue_card(&ram.token, &two, "RX1")
    );
    assert_eq!(
        [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "exactly one issuance takes the last licence: {a:?} {b:?}"
    );
    let refused = if a.is_ok() { b } else { a };
    assert_api_error(refused, 409, code::NO_FREE_LICENCE);
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM card_licences")
        .fetch_one(s.state.store().pool())
        .await
        .unwrap();
    assert_eq!(n, 1);
}

/// `n` of the audit events of `action` whose detail says `how`.
async fn audited_how(s: &TestServer, action: &str, how: &str) -> usize {
    s.audit_events(action)
        .await
        .iter()
        .filter(|e| e.detail.contains(&format!("\"how\":\"{how}\"")))
        .count()
}

#[tokio::test]
async fn a_licence_top_up_serves_the_waiting_list_in_order() {
    let World { s, ram, rx, ry, .. } = world().await;
    set_pool(
        &s,
        &ram.token,
        &SetPool {
            add_licences: Some(1),
            ..SetPool::default()
        },
    )
    .await
    .unwrap();
    // RX1 asks for 2 (more than the pool has), then RY2 for 1: RY2 must not jump RX1.
    let a = apply(&s, &rx.token, "RX1", 2)
        .await
        .unwrap()
        .application
        .unwrap();
    let b = apply(&s, &ry.token, "RY2", 1)
        .await
        .unwrap()
        .application
        .unwrap();
    assert_api_error(
        approve(&s, &ram.token, &Approve::default()).await,
        409,
        code::LICENCE_POOL_EXHAUSTED,
    );
    // Changing only a setting approves nothing.
    let done = set_pool(
        &s,
        &ram.token,
        &SetPool {
            warn_days: Some(20),
            ..SetPool::default()
        },
    )
    .await
    .unwrap();
    assert!(done.approved.is_empty());
    assert_eq!(done.pool.waiting.len(), 2);
    // A top-up of 1: the pool has 2, which serves RX1 (first) in the same request; RY2 waits.
    let done = set_pool(
        &s,
        &ram.token,
        &SetPool {
            add_licences: Some(1),
            ..SetPool::default()
        },
    )
    .await
    .expect("top-up");
    assert_eq!(
        done.approved.iter().map(|x| x.id).collect::<Vec<_>>(),
        vec![a.id]
    );
    assert_eq!(done.approved[0].end, Some(day(&s, 364)), "the default term");
    assert_eq!(
        done.pool
            .waiting
            .iter()
            .map(|x| (x.id, x.position))
            .collect::<Vec<_>>(),
        vec![(b.id, Some(1))]
    );
    assert_eq!((done.pool.total, done.pool.available), (2, 0));
    // RX1 can issue at once.
    s.person_with_card(&rx.token, "RX1").await;
    // The next top-up serves RY2.
    let done = set_pool(
        &s,
        &ram.token,
        &SetPool {
            add_licences: Some(3),
            ..SetPool::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        done.approved.iter().map(|x| x.id).collect::<Vec<_>>(),
        vec![b.id]
    );
    assert!(done.pool.waiting.is_empty());
    assert_eq!(done.pool.available, 2);
    assert_eq!(
        audited_how(&s, "licences.approved", "after a top-up").await,
        2
    );
    s.assert_audit_intact().await;
}

#[tokio::test]
async fn the_extension_queue_is_first_come_first_served_while_funding_lasts() {
    let World {
        s,
        ram,
        rx,
        ry,
        rx_agent,
    } = world().await;
    set_pool(
        &s,
        &ram.token,
        &SetPool {
            add_licences: Some(10),
            add_funding: Some(5),
            ..SetPool::default()
        },
    )
    .await
    .unwrap();
    let a = apply(&s, &rx.token, "RX1", 3)
        .await
        .unwrap()
        .application
        .unwrap();
    let b = apply(&s, &ry.token, "RY2", 1)
        .await
        .unwrap()
        .application
        .unwrap();
    approve(&s, &ram.token, &Approve::default()).await.unwrap();
    let end = day(&s, 364);

    // RX1 asks first: 3 licences × 10 days = 30, more than the 5 left. It waits.
    let ea = extend(&s, &rx.token, a.id, &day(&s, 374))
        .await
        .expect("RX1's RA Manager asks")
        .request
        .unwrap();
    assert_eq!(
        (ea.state.as_str(), ea.position, ea.cost, ea.licences),
        ("waiting", Some(1), 30, 3)
    );
    assert_eq!(
        (ea.current_end.as_str(), ea.end.clone()),
        (end.as_str(), day(&s, 374))
    );
    // RY2 asks second: 1 × 2 = 2 would fit the funding, but does not jump RX1.
    let eb = extend(&s, &ry.token, b.id, &day(&s, 366))
        .await
        .expect("RY2's RA Manager asks")
        .request
        .unwrap();
    assert_eq!((eb.position, eb.cost), (Some(2), 2));

    unchanged(&s, "refused extension requests", async || {
        // The same request again (a replay, or a second one for the block) is refused.
        let m = assert_api_error(
            extend(&s, &rx.token, a.id, &day(&s, 374)).await,
            409,
            code::LICENCE_EXTENSION_PENDING,
        );
        assert!(m.contains("withdraw"), "{m}");
        // Another organisation's RA Manager can neither ask for nor withdraw ours; an RA
        // Agent cannot ask; a trust RA Manager cannot approve.
        assert_api_error(
            extend(&s, &ry.token, a.id, &day(&s, 380)).await,
            403,
            code::RA_OUTSIDE_ORGANISATION,
        );
        assert_api_error(
            withdraw(&s, &ry.token, ea.id).await,
            403,
            code::RA_OUTSIDE_ORGANISATION,
        );
        assert_api_error(
            extend(&s, &rx_agent.token, a.id, &day(&s, 380)).await,
            403,
            code::RA_ROLE_NOT_PERMITTED,
        );
        assert_api_error(
            withdraw(&s, &rx_agent.token, ea.id).await,
            403,
            code::RA_ROLE_NOT_PERMITTED,
        );
        assert_api_error(
            approve_extensions(&s, &rx.token, None).await,
            403,
            code::RA_OUTSIDE_ORGANISATION,
        );
        assert_api_error(
            approve_extensions(&s, &rx_agent.token, Some(ea.id)).await,
            403,
            code::RA_ROLE_NOT_PERMITTED,
        );
        // Strictly in order: the second cannot be approved first, and the first waits for
        // funding.
        let m = assert_api_error(
            approve_extensions(&s, &ram.token, Some(eb.id)).await,
            409,
            code::LICENCE_EXTENSION_NOT_FIRST,
        );
        assert!(m.contains(&format!("approve #{} first", ea.id)), "{m}");
        let m = assert_api_error(
            approve_extensions(&s, &ram.token, None).await,
            409,
            code::LICENCE_FUNDING_EXHAUSTED,
        );
        assert!(m.contains("costs 30") && m.contains("has 5 left"), "{m}");
        assert_api_error(
            approve_extensions(&s, &ram.token, Some(ea.id)).await,
            409,
            code::LICENCE_FUNDING_EXHAUSTED,
        );
        // Hostile input: dates, blocks, ids.
        for bad in [
            "2026-13-01",
            "-2026-01-01",
            "+99999-01-01",
            "99999-01-01",
            "1970-01-01",
            "",
            "2026-01-01\u{202e}",
            "2026-01-01T00:00:00Z",
        ] {
            assert_api_error(
                extend(&s, &rx.token, a.id, bad).await,
                400,
                code::INVALID_LICENCE_REQUEST,
            );
        }
        // Not after the current end, or more than ten years after it.
        for bad in [day(&s, 364), day(&s, 100), day(&s, -5), day(&s, 364 + 3651)] {
            let m = assert_api_error(
                extend(&s, &ram.token, b.id, &bad).await,
                400,
                code::INVALID_LICENCE_REQUEST,
            );
            assert!(m.contains(&end), "{m}");
        }
        for block in [999_999, -1, 0, i64::MAX, i64::MIN] {
            assert_api_error(
                extend(&s, &ram.token, block, &day(&s, 400)).await,
                404,
                code::UNKNOWN_LICENCE_APPLICATION,
            );
        }
        for id in [999_999, -1, i64::MAX] {
            assert_api_error(
                approve_extensions(&s, &ram.token, Some(id)).await,
                404,
                code::UNKNOWN_LICENCE_EXTENSION,
            );
            assert_api_error(
                withdraw(&s, &rx.token, id).await,
                404,
                code::UNKNOWN_LICENCE_EXTENSION,
            );
        }
    })
    .await;

    // The queue as each RA sees it: RY2 only its own (with its place in the whole queue).
    let all = extensions(&s, &ram.token).await;
    assert_eq!((all.funding, all.waiting), (5, 2));
    assert_eq!(
        all.requests
            .iter()
            .map(|e| (e.id, e.position))
            .collect::<Vec<_>>(),
        vec![(ea.id, Some(1)), (eb.id, Some(2))]
    );
    let mine = extensions(&s, &ry.token).await;
    assert_eq!(mine.waiting, 2);
    assert_eq!(
        mine.requests
            .iter()
            .map(|e| (e.id, e.position))
            .collect::<Vec<_>>(),
        vec![(eb.id, Some(2))]
    );
    // The report shows the waiting requests per organisation and per block.
    let r = report(&s, &ry.token).await;
    let y = row(&r, "RY2");
    assert_eq!(
        (
            y.extensions_waiting,
            y.extension_position,
            y.extension_requested_to.clone()
        ),
        (1, Some(2), Some(day(&s, 366)))
    );
    assert_eq!(
        r.extensions.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![eb.id]
    );
    let block_b = r.applications.iter().find(|x| x.id == b.id).unwrap();
    assert_eq!(
        (
            block_b.extension_requested_to.clone(),
            block_b.extension_position
        ),
        (Some(day(&s, 366)), Some(2))
    );
    assert!(
        r.to_csv()
            .contains(&format!("\nRY2,1,0,1,0,,0,,1,2,{}\n", day(&s, 366))),
        "{}",
        r.to_csv()
    );

    // A funding top-up serves the queue in order in the same request: RX1 (30), then RY2 (2).
    let done = set_pool(
        &s,
        &ram.token,
        &SetPool {
            add_funding: Some(30),
            ..SetPool::default()
        },
    )
    .await
    .expect("funding top-up");
    assert_eq!(
        done.extensions_approved
            .iter()
            .map(|e| (e.id, e.state.as_str(), e.cost))
            .collect::<Vec<_>>(),
        vec![(ea.id, "approved", 30), (eb.id, "approved", 2)]
    );
    assert_eq!(done.pool.funding, 3);
    let r = report(&s, &ram.token).await;
    let ends: Vec<_> = [a.id, b.id]
        .iter()
        .map(|id| {
            r.applications
                .iter()
                .find(|x| x.id == *id)
                .unwrap()
                .end
                .clone()
        })
        .collect();
    assert_eq!(ends, vec![Some(day(&s, 374)), Some(day(&s, 366))]);
    assert!(r.extensions.is_empty());
    assert_eq!(
        audited_how(&s, "licences.extended", "after a funding top-up").await,
        2
    );

    // A replayed approval does nothing twice.
    unchanged(&s, "replayed approval", async || {
        assert_api_error(
            approve_extensions(&s, &ram.token, Some(ea.id)).await,
            404,
            code::UNKNOWN_LICENCE_EXTENSION,
        );
        let none = approve_extensions(&s, &ram.token, None)
            .await
            .expect("an empty queue");
        assert!(none.approved.is_empty());
    })
    .await;
    assert_eq!(s.audit_events("licences.extended").await.len(), 2);

    // Withdrawal by the requesting organisation; a second withdrawal finds nothing waiting.
    let ec = extend(&s, &rx.token, a.id, &day(&s, 375))
        .await
        .unwrap()
        .request
        .unwrap();
    assert_eq!((ec.position, ec.cost), (Some(1), 3));
    let w = withdraw(&s, &rx.token, ec.id).await.expect("withdraw");
    assert_eq!(w.request.unwrap().state, "withdrawn");
    assert_eq!(w.waiting, 0);
    unchanged(&s, "replayed withdrawal", async || {
        assert_api_error(
            withdraw(&s, &rx.token, ec.id).await,
            404,
            code::UNKNOWN_LICENCE_EXTENSION,
        );
    })
    .await;
    // Once withdrawn, the block may be asked for again; a national RA Manager's own request,
    // first and funded, is approved at once.
    let done = extend(&s, &ram.token, a.id, &day(&s, 375)).await.unwrap();
    assert_eq!(done.approved.len(), 1);
    assert_eq!(done.funding, 0);
    s.assert_audit_intact().await;
}

#[tokio::test]
async fn a_request_whose_grace_period_ends_while_it_waits_lapses() {
    let World { s, ram, rx, ry, .. } = world().await;
    set_pool(
        &s,
        &ram.token,
        &SetPool {
            add_licences: Some(2),
            grace_days: Some(1),
            ..SetPool::default()
        },
    )
    .await
    .unwrap();
    let a = apply(&s, &rx.token, "RX1", 1)
        .await
        .unwrap()
        .application
        .unwrap();
    let b = apply(&s, &ry.token, "RY2", 1)
        .await
        .unwrap()
        .application
        .unwrap();
    approve(
        &s,
        &ram.token,
        &Approve {
            end: Some(day(&s, 0)),
            ..Approve::default()
        },
    )
    .await
    .unwrap();
    let ea = extend(&s, &rx.token, a.id, &day(&s, 10))
        .await
        .unwrap()
        .request
        .unwrap();
    let eb = extend(&s, &ry.token, b.id, &day(&s, 10))
        .await
        .unwrap()
        .request
        .unwrap();
    // Past the term and the grace period: RX1's request lapses, RY2's (also past) too; with
    // funding added nothing is spent on them.
    s.clock.advance(time::Duration::days(3));
    let ram_token = s.login(&ram.phone).await;
    let done = set_pool(
        &s,
        &ram_token,
        &SetPool {
            add_funding: Some(100),
            ..SetPool::default()
        },
    )
    .await
    .unwrap();
    assert!(done.extensions_approved.is_empty());
    assert_eq!(done.pool.funding, 100);
    let all = extensions(&s, &ram_token).await;
    assert_eq!(all.waiting, 0);
    let states: std::collections::BTreeMap<i64, String> = all
        .requests
        .iter()
        .map(|e| (e.id, e.state.clone()))
        .collect();
    assert_eq!(states[&ea.id], "lapsed");
    assert_eq!(states[&eb.id], "lapsed");
    assert_eq!(s.audit_events("licences.extension_lapsed").await.len(), 2);
}

#[tokio::test]
async fn holders_are_warned_before_their_licence_term_ends() {
    use vsc_authenticator::PhoneLink;
    let World { s, ram, rx, .. } = world().await;
    set_pool(
        &s,
        &ram.token,
        &SetPool {
            add_licences: Some(1),
            add_funding: Some(100),
            grace_days: Some(3),
            warn_days: Some(10),
            ..SetPool::default()
        },
    )
    .await
    .unwrap();
    let a = apply(&s, &rx.token, "RX1", 1)
        .await
        .unwrap()
        .application
        .unwrap();
    let term_end = day(&s, 20);
    let last_day = day(&s, 23);
    approve(
        &s,
        &ram.token,
        &Approve {
            end: Some(term_end.clone()),
            ..Approve::default()
        },
    )
    .await
    .unwrap();
    let (uid, _, phone) = s.enrolled_person(&rx.token, "RX1").await;
    // Moves the clock to noon of the `days`th day after today (never backwards), so the test
    // does not depend on the hour it runs at.
    let d0 = s.state.now().date();
    let noon_of = |days: i64| {
        let target =
            (d0 + time::Duration::days(days)).midnight().assume_utc() + time::Duration::hours(12);
        s.clock.advance(target - s.state.now());
    };

    // One sign-in: what the phone shows with the request, and what the agent collects.
    let sign_in = async |ws: &str| {
        let link = PhoneLink::new(&phone.home).expect("the phone's link");
        let created = s.open_request(&uid, ws).await;
        let request = link
            .pending(5)
            .await
            .expect("pending")
            .into_iter()
            .find(|r| r.request_id == created.request_id)
            .expect("the request reaches the phone");
        link.approve(&request, created.number, &common::passcode())
            .await
            .expect("approve");
        let collected = s.outcome(&created, 5).await;
        let session = collected.session.expect("the session, with the ticket");
        assert_eq!(
            session.licence_warning, request.licence_warning,
            "the agent and the phone say the same"
        );
        session.licence_warning
    };

    // Before the warning period: nothing.
    assert_eq!(sign_in("ws-1").await, None);
    // 11 days before the end (the warning period is 10): still nothing.
    noon_of(10);
    assert_eq!(sign_in("ws-2").await, None);
    // Inside the warning period.
    noon_of(11);
    let w = sign_in("ws-3").await.expect("a warning inside the period");
    assert_eq!(
        (
            w.organisation.as_str(),
            w.term_end.as_str(),
            w.last_sign_in_day.as_str(),
            w.ended
        ),
        ("RX1", term_end.as_str(), last_day.as_str(), false)
    );
    assert!(
        w.message.contains(&format!("ends on {term_end}"))
            && w.message.contains(&format!("after {last_day}"))
            && w.message.contains("RA"),
        "{}",
        w.message
    );
    // An extension request waiting: the holder is told.
    let rx_token = s.login(&rx.phone).await;
    extend(&s, &rx_token, a.id, &day(&s, 30)).await.unwrap();
    let w = sign_in("ws-4").await.unwrap();
    assert!(
        w.message
            .contains(&format!("asked for an extension to {}", day(&s, 30))),
        "{}",
        w.message
    );
    // In the grace period: ended.
    noon_of(22);
    let w = sign_in("ws-5").await.expect("a warning in grace");
    assert!(w.ended);
    assert!(
        w.message.contains(&format!("ended on {term_end}")),
        "{}",
        w.message
    );
    // The extension approved: no warning any more.
    let ram_token = s.login(&ram.phone).await;
    approve_extensions(&s, &ram_token, None)
        .await
        .expect("approved");
    assert_eq!(sign_in("ws-6").await, None);
}
