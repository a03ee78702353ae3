//! Approved client versions at runtime (`/api/v1/ra/versions…`), against the real server over
//! TLS on loopback: a national RA Manager withdraws the version a phone runs and its approval is
//! refused with an upgrade message, changing nothing, until the version is allowed again; an
//! identity agent below policy cannot open a sign-in request; only national RA Managers change
//! the policy; hostile rules are refused with nothing written; the list shows which cards use
//! which versions; the policy seeds from the start-up configuration; and (on PostgreSQL) a change
//! on one node holds on the other within the cache's lifetime.

#![allow(clippy::unwrap_used)]

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{Phone, TestServer, assert_api_error, assert_flow_error, auth_context, start};
use vsc_authenticator::{ClientError, PhoneLink};
use vsc_proto::errors as code;
use vsc_proto::routes;
use vsc_proto::signin::{DeviceToken, DeviceTokenRequest};
use vsc_proto::versions::{SetVersionRule, VersionRuleChanged, VersionsReport};

const OWN: &str = env!("CARGO_PKG_VERSION");

fn rule(client: &str, versions: &str) -> SetVersionRule {
    SetVersionRule {
        client: client.to_owned(),
        versions: versions.to_owned(),
        platform: None,
        reason: None,
    }
}

async fn set(
    s: &TestServer,
    token: &str,
    path: &str,
    body: &SetVersionRule,
) -> Result<VersionRuleChanged, ClientError> {
    s.post(Some(token), path, body).await
}

async fn report(s: &TestServer, token: &str) -> VersionsReport {
    s.get(Some(token), routes::RA_VERSIONS)
        .await
        .expect("an RA lists the versions")
}

/// The rows of `table` as text (every column), sorted: what a refused request must leave alone.
async fn rows(s: &TestServer, table: &str) -> Vec<String> {
    let pool = s.state.store().pool();
    let postgres = s.state.store().backend() == vsc_store::Backend::Postgres;
    let columns_sql = if postgres {
        "SELECT column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position"
    } else {
        "SELECT name FROM pragma_table_info($1) ORDER BY cid"
    };
    let columns: Vec<(String,)> = sqlx::query_as(columns_sql)
        .bind(table)
        .fetch_all(pool)
        .await
        .unwrap();
    assert!(!columns.is_empty(), "table {table} exists");
    let expr = columns
        .iter()
        .map(|(c,)| {
            if postgres {
                format!("quote_nullable({c}::text)")
            } else {
                format!("quote({c})")
            }
        })
        .collect::<Vec<_>>()
        .join(" || '|' || ");
    let out: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {expr} FROM {table} ORDER BY 1"
    )))
    .fetch_all(pool)
    .await
    .unwrap();
    out.into_iter().map(|(r,)| r).collect()
}

/// The tables a version refusal must not touch (beyond the harness's snapshot).
const EXTRA_TABLES: &[&str] = &[
    "auth_requests",
    "sessions",
    "signin_failures",
    "version_rules",
    "agent_versions",
    "devices",
];

async fn extra_snapshot(s: &TestServer) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for t in EXTRA_TABLES {
        out.push(rows(s, t).await);
    }
    out
}

/// A device token for `phone`, reporting `version` in the version header (or none).
async fn token_reporting(
    s: &TestServer,
    phone: &Phone,
    version: Option<&str>,
) -> Result<DeviceToken, ClientError> {
    let key = phone.home.device_key().unwrap().unwrap();
    let device_id = phone.device_id();
    let challenge = s.try_device_challenge(&device_id).await?;
    let statement = vsc_proto::signin::device_token_statement(
        &challenge.challenge_id,
        &challenge.nonce,
        &device_id,
        &s.state.origin(),
    );
    let body = DeviceTokenRequest {
        device_id,
        challenge_id: challenge.challenge_id,
        signature: B64.encode(key.sign(&statement).unwrap()),
    };
    let headers: Vec<(&str, &str)> = version
        .map(|v| vec![(routes::headers::APP_VERSION, v)])
        .unwrap_or_default();
    s.client
        .post_json_with_headers(routes::DEVICE_TOKEN, &body, &headers)
        .await
}

async fn device_version(s: &TestServer, phone: &Phone) -> String {
    let (v,): (String,) = sqlx::query_as("SELECT app_version FROM devices WHERE device_id = $1")
        .bind(phone.device_id())
        .fetch_one(s.state.store().pool())
        .await
        .unwrap();
    v
}

#[tokio::test]
async fn a_withdrawn_phone_version_cannot_approve_until_it_is_allowed_again() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    let (uid, card_id, phone) = s.enrolled_person(&ram.token, "RX1").await;

    // The seeded policy approves this release; the list shows the card on this version.
    let before = report(&s, &ram.token).await;
    let mine = before
        .in_use
        .iter()
        .find(|v| v.client == "authenticator" && v.version == OWN)
        .expect("this release is in use");
    assert_eq!(mine.decision, "approved");
    assert!(mine.cards.contains(&card_id) && mine.cards.contains(&ram.card_id));
    assert_eq!(mine.clients, 2);

    // A request waits for the phone; the phone has read it and signed its approval.
    let created = s.open_request(&uid, "ws-1").await;
    let token = s.device_token(&phone).await;
    let pending = s.pending_request(&token, &created.request_id).await;
    let approval = s.signed_approval(&phone, &pending, created.number).await;

    // A national RA Manager withdraws exactly this version.
    let mut deny = rule("authenticator", OWN);
    deny.reason = Some("defect INC-1: update".into());
    let changed = set(&s, &ram.token, routes::RA_VERSIONS_DENY, &deny)
        .await
        .expect("the national RA Manager denies");
    assert_eq!(changed.rule.versions, format!("={OWN}"));
    assert_eq!(changed.rule.verdict, "deny");
    assert_eq!(changed.rule.set_by, ram.uid);
    let refused = changed
        .now_refused
        .iter()
        .find(|v| v.version == OWN)
        .expect("the answer names the versions now refused");
    assert_eq!(refused.decision, "withdrawn");
    assert!(refused.cards.contains(&card_id));
    assert_eq!(s.audit_events("versions.denied").await.len(), 1);

    // The approval is refused with the upgrade message, and nothing changes.
    let snap = s.snapshot().await;
    let extra = extra_snapshot(&s).await;
    let message = assert_api_error(
        s.approve_raw(&token, &created.request_id, &approval).await,
        403,
        code::APP_VERSION_NOT_APPROVED,
    );
    assert!(
        message.contains("withdrawn") && message.contains("update") && message.contains(OWN),
        "{message}"
    );
    s.assert_unchanged(&snap, &s.snapshot().await, "a withdrawn version's approval");
    assert_eq!(extra, extra_snapshot(&s).await, "auth/session/version rows");
    assert_eq!(s.request_state(&created.request_id).await, "pending");
    assert_eq!(s.card_failures(&card_id).await, 0, "no failure is counted");
    s.assert_audited("auth.approve", code::APP_VERSION_NOT_APPROVED, 1)
        .await;

    // The device channel is refused too, as the real app meets it (it sends its version).
    let link = PhoneLink::new(&phone.home).unwrap();
    let message = assert_flow_error(link.pending(0).await, 403, code::APP_VERSION_NOT_APPROVED);
    assert!(
        message.contains("update the vsc authenticator app"),
        "{message}"
    );
    s.assert_audited("device.requests", code::APP_VERSION_NOT_APPROVED, 1)
        .await;
    let report_now = report(&s, &ram.token).await;
    assert!(report_now.approved_authenticator.contains("except"));

    // Allowed again (the deny rule's verdict flips): the same approval now goes through.
    let changed = set(
        &s,
        &ram.token,
        routes::RA_VERSIONS_ALLOW,
        &rule("authenticator", OWN),
    )
    .await
    .expect("allow again");
    assert_eq!(
        changed.replaced.as_ref().map(|r| r.verdict.as_str()),
        Some("deny")
    );
    assert!(changed.now_refused.is_empty(), "{:?}", changed.now_refused);
    s.approve_raw(&token, &created.request_id, &approval)
        .await
        .expect("approved once the version is allowed again");
    let outcome = s.outcome(&created, 5).await;
    assert_eq!(outcome.state, "collected");
    s.assert_audit_intact().await;
}

#[tokio::test]
async fn a_phone_reports_its_version_with_each_device_token() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    let (_uid, card_id, phone) = s.enrolled_person(&ram.token, "RX1").await;

    // A newer app than the policy approves: recorded with the token, refused on the channel.
    let token = token_reporting(&s, &phone, Some("0.99.0"))
        .await
        .expect("a token is issued whatever the version");
    assert_eq!(device_version(&s, &phone).await, "0.99.0");
    let message = assert_api_error(
        s.try_device_pending(&token.token).await,
        403,
        code::APP_VERSION_NOT_APPROVED,
    );
    assert!(
        message.contains("is not approved") && message.contains("0.99.0"),
        "{message}"
    );
    let listed = report(&s, &ram.token).await;
    let v = listed
        .in_use
        .iter()
        .find(|v| v.version == "0.99.0")
        .expect("the list shows the phone's new version");
    assert_eq!(
        (v.decision.as_str(), v.cards.clone()),
        ("not-approved", vec![card_id.clone()])
    );

    // Once the series is allowed the phone works.
    set(
        &s,
        &ram.token,
        routes::RA_VERSIONS_ALLOW,
        &rule("authenticator", "0.99"),
    )
    .await
    .expect("allow the series");
    s.try_device_pending(&token.token)
        .await
        .expect("the phone reads its requests");

    // A malformed version is refused and recorded nowhere; an app that sends none keeps its
    // last version.
    assert_api_error(
        token_reporting(&s, &phone, Some("banana")).await,
        400,
        code::APP_VERSION_MALFORMED,
    );
    token_reporting(&s, &phone, None).await.expect("older app");
    assert_eq!(device_version(&s, &phone).await, "0.99.0");
    // The real app reports the version it runs.
    PhoneLink::new(&phone.home)
        .unwrap()
        .pending(0)
        .await
        .expect("the app reads its requests");
    assert_eq!(device_version(&s, &phone).await, OWN);
}

#[tokio::test]
async fn an_agent_below_policy_cannot_open_a_sign_in_request() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    let (uid, card_id, _phone) = s.enrolled_person(&ram.token, "RX1").await;
    let requests = || async { rows(&s, "auth_requests").await.len() };

    let mut old = auth_context("ws-old");
    old.agent_version = "vsc-agent/0.0.9".into();
    let message = assert_api_error(
        s.try_open_request(&uid, &old).await,
        403,
        code::AGENT_VERSION_NOT_APPROVED,
    );
    assert!(
        message.contains("0.0.9") && message.contains("update the identity agent"),
        "{message}"
    );
    assert!(
        message.contains(">=0.1.0") || message.contains(">="),
        "names the approved: {message}"
    );
    for junk in ["web", "0", "vsc-agent/", "vsc agent/0.1.0"] {
        let mut ctx = auth_context("ws-junk");
        ctx.agent_version = junk.into();
        assert_api_error(
            s.try_open_request(&uid, &ctx).await,
            403,
            code::AGENT_VERSION_NOT_APPROVED,
        );
    }
    assert_eq!(requests().await, 0, "no request was opened");
    s.assert_audited("auth.request", code::AGENT_VERSION_NOT_APPROVED, 5)
        .await;

    // An approved agent opens one, and the list shows its workstation and card.
    let mut current = auth_context("ws-new");
    current.agent_version = format!("vsc-agent/{OWN}");
    s.try_open_request(&uid, &current)
        .await
        .expect("an approved agent opens a request");
    let listed = report(&s, &ram.token).await;
    let v = listed
        .in_use
        .iter()
        .find(|v| v.client == "agent" && v.platform == "vsc-agent")
        .expect("the agent's version is listed");
    assert_eq!(
        (v.version.as_str(), v.clients, v.cards.clone()),
        (OWN, 1, vec![card_id.clone()])
    );

    // Withdrawn for the vsc-agent product only: that agent is refused, others are not.
    let mut deny = rule("agent", OWN);
    deny.platform = Some("vsc-agent".into());
    set(&s, &ram.token, routes::RA_VERSIONS_DENY, &deny)
        .await
        .expect("deny");
    let message = assert_api_error(
        s.try_open_request(&uid, &current).await,
        403,
        code::AGENT_VERSION_NOT_APPROVED,
    );
    assert!(message.contains("withdrawn"), "{message}");
    s.try_open_request(&uid, &auth_context("ws-new"))
        .await
        .expect("a bare version is not the denied product");
}

#[tokio::test]
async fn only_national_ra_managers_change_the_policy() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    let national = s.state.national_ods().to_owned();
    let trust_ram = s.new_ra(&ram.token, "RX1", "ra-manager", &[]).await;
    let national_agent = s.new_ra(&ram.token, &national, "ra-agent", &[]).await;
    let before = rows(&s, "version_rules").await;

    let allow = rule("authenticator", "9.9.9");
    let message = assert_api_error(
        set(&s, &trust_ram.token, routes::RA_VERSIONS_ALLOW, &allow).await,
        403,
        code::RA_OUTSIDE_ORGANISATION,
    );
    assert!(message.contains("national"), "{message}");
    assert_api_error(
        set(&s, &trust_ram.token, routes::RA_VERSIONS_DENY, &allow).await,
        403,
        code::RA_OUTSIDE_ORGANISATION,
    );
    assert_api_error(
        set(&s, &national_agent.token, routes::RA_VERSIONS_DENY, &allow).await,
        403,
        code::RA_ROLE_NOT_PERMITTED,
    );
    let remove = routes::fill(routes::RA_VERSION_RULE_REMOVE, "1");
    assert_api_error(
        s.post::<_, VersionRuleChanged>(
            Some(&national_agent.token),
            &remove,
            &serde_json::json!({}),
        )
        .await,
        403,
        code::RA_ROLE_NOT_PERMITTED,
    );
    // Without a session at all.
    assert_api_error(
        set(&s, "not-a-token", routes::RA_VERSIONS_ALLOW, &allow).await,
        401,
        code::SESSION_EXPIRED,
    );
    assert_eq!(before, rows(&s, "version_rules").await, "nothing written");
    s.assert_audited("versions.allow", code::RA_OUTSIDE_ORGANISATION, 1)
        .await;
    s.assert_audited("versions.deny", code::RA_ROLE_NOT_PERMITTED, 1)
        .await;
    s.assert_audited("versions.remove", code::RA_ROLE_NOT_PERMITTED, 1)
        .await;

    // Both may list.
    assert!(!report(&s, &trust_ram.token).await.rules.is_empty());
    assert!(!report(&s, &national_agent.token).await.rules.is_empty());
}

#[tokio::test]
async fn hostile_rules_are_refused_and_nothing_is_written() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let before = rows(&s, "version_rules").await;
    assert_eq!(
        before.len(),
        2,
        "one seeded allow rule per client kind: {before:?}"
    );
    // Just under the body limit (64 KiB), so the rules themselves are judged.
    let huge = "1".repeat(60_000);
    let cases: Vec<(SetVersionRule, &str)> = vec![
        (rule("authenticator", "banana"), code::INVALID_VERSION_RULE),
        (rule("authenticator", "1.4.2.9"), code::INVALID_VERSION_RULE),
        (rule("authenticator", ""), code::INVALID_VERSION_RULE),
        (
            rule("authenticator", ">=1.0\u{0}"),
            code::INVALID_VERSION_RULE,
        ),
        (rule("authenticator", &huge), code::INVALID_VERSION_RULE),
        (rule("phone", "1.4.2"), code::UNKNOWN_CLIENT_KIND),
        (rule(&huge, "1.4.2"), code::UNKNOWN_CLIENT_KIND),
        (
            SetVersionRule {
                platform: Some("ios; DROP TABLE version_rules".into()),
                ..rule("authenticator", "1.4.2")
            },
            code::INVALID_VERSION_RULE,
        ),
        (
            SetVersionRule {
                platform: Some(huge.clone()),
                ..rule("authenticator", "1.4.2")
            },
            code::INVALID_VERSION_RULE,
        ),
        (
            SetVersionRule {
                reason: Some("x".repeat(201)),
                ..rule("authenticator", "1.4.2")
            },
            code::INVALID_VERSION_RULE,
        ),
        (
            SetVersionRule {
                reason: Some("fine\u{202e}txet".into()),
                ..rule("authenticator", "1.4.2")
            },
            code::INVALID_VERSION_RULE,
        ),
    ];
    for (body, expected) in &cases {
        assert_api_error(
            set(&s, &ram.token, routes::RA_VERSIONS_ALLOW, body).await,
            400,
            expected,
        );
    }
    // Bodies that are not the type at all.
    let not_json: Result<VersionRuleChanged, _> = s
        .post(
            Some(&ram.token),
            routes::RA_VERSIONS_DENY,
            &serde_json::json!({"client": 7, "versions": ["1"]}),
        )
        .await;
    assert_api_error(not_json, 400, code::INVALID_REQUEST);
    // Removing what does not exist, or the last allow rule of a kind.
    for id in ["abc", "0", "-1", "99999", "1%20OR%201=1"] {
        assert_api_error(
            s.post::<_, VersionRuleChanged>(
                Some(&ram.token),
                &routes::fill(routes::RA_VERSION_RULE_REMOVE, id),
                &serde_json::json!({}),
            )
            .await,
            404,
            code::UNKNOWN_VERSION_RULE,
        );
    }
    let listed = report(&s, &ram.token).await;
    let seeded = listed
        .rules
        .iter()
        .find(|r| r.client == "agent")
        .expect("the agent's seeded rule");
    assert_eq!(seeded.set_by, "system");
    assert_api_error(
        s.post::<_, VersionRuleChanged>(
            Some(&ram.token),
            &routes::fill(routes::RA_VERSION_RULE_REMOVE, &seeded.id.to_string()),
            &serde_json::json!({}),
        )
        .await,
        409,
        code::LAST_ALLOW_RULE,
    );
    // Turning the last allow rule into a deny is the same slip.
    let flip = rule("agent", &seeded.versions);
    assert_api_error(
        set(&s, &ram.token, routes::RA_VERSIONS_DENY, &flip).await,
        409,
        code::LAST_ALLOW_RULE,
    );
    assert_eq!(before, rows(&s, "version_rules").await, "nothing written");
    assert_eq!(
        s.audit_failures("versions.allow").await.len(),
        cases.len(),
        "every refusal is audited"
    );
    assert!(s.audit_events("versions.allowed").await.is_empty());

    // With another allow rule in place the seeded one can go.
    set(
        &s,
        &ram.token,
        routes::RA_VERSIONS_ALLOW,
        &rule("agent", "0.1"),
    )
    .await
    .expect("allow");
    let removed: VersionRuleChanged = s
        .post(
            Some(&ram.token),
            &routes::fill(routes::RA_VERSION_RULE_REMOVE, &seeded.id.to_string()),
            &serde_json::json!({}),
        )
        .await
        .expect("remove");
    assert_eq!(removed.rule.id, seeded.id);
    assert_eq!(s.audit_events("versions.rule_removed").await.len(), 1);
    s.assert_audit_intact().await;
}

#[tokio::test]
async fn the_start_up_flags_seed_the_policy() {
    let s = common::start_with(|c| {
        c.approved_app_versions =
            vsc_core::AppVersionPolicy::parse(&[">=0.1.0, <0.2.0".into(), "ios=>=3.4.0".into()])
                .unwrap();
        c.approved_agent_versions =
            vsc_core::AppVersionPolicy::parse(&["vsc-agent=>=0.1.0, <0.2.0".into()]).unwrap();
    })
    .await;
    let ram = s.enrol_bootstrap_ram().await;
    let listed = report(&s, &ram.token).await;
    let described: Vec<(String, String, Option<String>, String)> = listed
        .rules
        .iter()
        .map(|r| {
            (
                r.client.clone(),
                r.verdict.clone(),
                r.platform.clone(),
                r.versions.clone(),
            )
        })
        .collect();
    assert_eq!(
        described,
        vec![
            (
                "authenticator".into(),
                "allow".into(),
                None,
                ">=0.1.0, <0.2.0".into()
            ),
            (
                "authenticator".into(),
                "allow".into(),
                Some("ios".into()),
                ">=3.4.0".into()
            ),
            (
                "agent".into(),
                "allow".into(),
                Some("vsc-agent".into()),
                ">=0.1.0, <0.2.0".into()
            ),
        ]
    );
    assert!(listed.rules.iter().all(|r| r.set_by == "system"));
    assert_eq!(s.audit_events("versions.seeded").await.len(), 2);
    // The public info shows the same policy.
    let info: vsc_proto::ServerInfo = s.get(None, routes::INFO).await.unwrap();
    assert_eq!(info.approved_app_versions, listed.approved_authenticator);
    // The seeded agent rule names a product: a bare version is not approved.
    s.create_org(&ram.token, "RX1").await;
    let (uid, _card, _phone) = s.enrolled_person(&ram.token, "RX1").await;
    assert_api_error(
        s.try_open_request(&uid, &auth_context("ws-1")).await,
        403,
        code::AGENT_VERSION_NOT_APPROVED,
    );
}

#[tokio::test]
async fn a_change_on_one_node_holds_on_the_other() {
    if std::env::var_os("VSC_TEST_POSTGRES").is_none() {
        eprintln!("skipped: two nodes need a shared PostgreSQL database (VSC_TEST_POSTGRES)");
        return;
    }
    let a = start().await;
    let ram = a.enrol_bootstrap_ram().await;
    a.create_org(&ram.token, "RX1").await;
    let (uid, _card, _phone) = a.enrolled_person(&ram.token, "RX1").await;
    let b = a.start_node().await;
    // B has read (and cached) the policy: the agent is approved there.
    let mut ctx = auth_context("ws-b");
    ctx.agent_version = format!("vsc-agent/{OWN}");
    b.try_open_request(&uid, &ctx).await.expect("approved on B");
    set(
        &a,
        &ram.token,
        routes::RA_VERSIONS_DENY,
        &rule("agent", OWN),
    )
    .await
    .expect("deny on A");
    // A applies it at once; B within the cache's lifetime. (Each node registers its own test
    // workstation, so A's agent is another workstation.)
    let mut ctx_a = auth_context("ws-a");
    ctx_a.agent_version = ctx.agent_version.clone();
    assert_api_error(
        a.try_open_request(&uid, &ctx_a).await,
        403,
        code::AGENT_VERSION_NOT_APPROVED,
    );
    let started = Instant::now();
    let limit = Duration::from_secs(vsc_server::routes::ra_versions::CACHE_SECONDS + 3);
    loop {
        match b.try_open_request(&uid, &ctx).await {
            Err(ClientError::Server { code: c, .. }) if c == code::AGENT_VERSION_NOT_APPROVED => {
                break;
            }
            _ if started.elapsed() < limit => tokio::time::sleep(Duration::from_millis(250)).await,
            other => panic!("node B still approves after {limit:?}: {other:?}"),
        }
    }
    assert!(started.elapsed() <= limit);
}
