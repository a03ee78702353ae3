//! Operations against the real server: `GET /metrics` after real sign-ins (route templates, never
//! ids, as labels; outcomes; audit events; the phone's event stream), who may read it, and
//! `GET /readyz` before and after the database goes away.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use vsc_server::metrics::MetricsAccess;

use crate::common::{TestServer, other_number, start, start_with};

const TOKEN: &str = "metrics-token-0123456789abcdef";

/// Request headers, as raw bytes (some tests send what is not valid text).
type Headers<'a> = &'a [(&'a str, &'a [u8])];

/// Sum of the samples of `name` whose labels include every `labels` pair (`None` when no sample
/// matches).
fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut total = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').expect("a sample line has a value");
        let (metric, label_text) = match series.split_once('{') {
            Some((m, rest)) => (m, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if metric != name {
            continue;
        }
        if labels
            .iter()
            .all(|(k, v)| label_text.split(',').any(|kv| kv == format!("{k}=\"{v}\"")))
        {
            *total.get_or_insert(0.0) += value.parse::<f64>().expect("a numeric sample");
        }
    }
    total
}

/// `GET path` over the server's TLS with optional extra headers: status, content type, body.
async fn get(s: &TestServer, path: &str, headers: Headers<'_>) -> (StatusCode, String, String) {
    let mut request = s.raw_http().get(s.url.join(path).expect("a URL"));
    for (name, value) in headers {
        request = request.header(
            *name,
            reqwest::header::HeaderValue::from_bytes(value).expect("a header value"),
        );
    }
    let response = request.send().await.expect("the request is answered");
    let status = response.status();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = response.text().await.expect("a body");
    (status, content_type, body)
}

async fn scrape(s: &TestServer) -> String {
    let (status, content_type, body) = get(s, "/metrics", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(body.ends_with("# EOF\n"), "a complete exposition");
    body
}

/// Waits until `vsc_device_streams_open` is `want`.
async fn streams_become(s: &TestServer, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = scrape(s).await;
        if sum(&text, "vsc_device_streams_open", &[]) == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "vsc_device_streams_open never became {want}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_error(status: StatusCode, body: &str, want: StatusCode, code: &str) {
    assert_eq!(status, want, "{body}");
    let json: serde_json::Value = serde_json::from_str(body).expect("a JSON error body");
    assert_eq!(json["error"]["code"], code, "{body}");
    assert!(json["error"]["message"].is_string(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_sign_ins_under_route_templates_never_ids() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, _card, phone) = s.enrolled_person(t, "RX1").await;

    // The phone connects to its event stream: one open stream.
    let token = s.device_token(&phone).await;
    let stream = s
        .raw_http()
        .get(s.url.join("/api/v1/device/events").expect("a URL"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("the event stream opens");
    assert_eq!(stream.status(), StatusCode::OK);
    streams_become(&s, 1.0).await;

    // One complete sign-in, and one approval with the wrong number.
    let (signed_in, ticket) = s.sign_in(&phone, &uid, "pc-1").await;
    let refused = s.open_request(&uid, "pc-1").await;
    let pending = s.pending_request(&token, &refused.request_id).await;
    let body = s
        .signed_approval(&phone, &pending, other_number(refused.number, 1))
        .await;
    let err = s
        .approve_raw(&token, &refused.request_id, &body)
        .await
        .expect_err("a wrong number is refused");
    assert!(format!("{err:?}").contains("wrong_number"), "{err:?}");
    // A path that matches no route, with something secret-looking in it.
    let (status, _, _) = get(&s, "/api/v1/no-such-route/secret-id-4242", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let text = scrape(&s).await;
    let at_least_one = |name: &str, labels: &[(&str, &str)]| {
        let n = sum(&text, name, labels).unwrap_or(0.0);
        assert!(n >= 1.0, "{name}{labels:?} is {n}:\n{text}");
    };
    // Requests by route template, method and status; latency under the same template.
    at_least_one(
        "vsc_http_requests_total",
        &[
            ("method", "GET"),
            ("route", "/api/v1/auth/requests/{id}"),
            ("status", "200"),
        ],
    );
    at_least_one(
        "vsc_http_requests_total",
        &[
            ("method", "POST"),
            ("route", "/api/v1/device/requests/{id}/approve"),
            ("status", "200"),
        ],
    );
    at_least_one(
        "vsc_http_requests_total",
        &[
            ("method", "POST"),
            ("route", "/api/v1/device/requests/{id}/approve"),
            ("status", "403"),
        ],
    );
    at_least_one(
        "vsc_http_requests_total",
        &[("route", "unmatched"), ("status", "404")],
    );
    at_least_one(
        "vsc_http_request_duration_seconds_count",
        &[("method", "POST"), ("route", "/api/v1/auth/requests")],
    );
    at_least_one(
        "vsc_http_request_duration_seconds_bucket",
        &[
            ("method", "POST"),
            ("route", "/api/v1/auth/requests"),
            ("le", "+Inf"),
        ],
    );
    // Sign-in outcomes, as the server decided them.
    assert_eq!(
        sum(&text, "vsc_signin_requests_opened_total", &[]),
        Some(2.0)
    );
    for (outcome, n) in [("approved", 1.0), ("collected", 1.0), ("wrong_number", 1.0)] {
        assert_eq!(
            sum(&text, "vsc_signin_outcomes_total", &[("outcome", outcome)]),
            Some(n),
            "{outcome}:\n{text}"
        );
    }
    assert_eq!(
        sum(
            &text,
            "vsc_signin_outcomes_total",
            &[("outcome", "declined")]
        ),
        None
    );
    // Every audit event this process appended is counted, by outcome.
    let (in_log,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_events")
        .fetch_one(s.state.store().pool())
        .await
        .expect("count the audit log");
    let counted = sum(&text, "vsc_audit_events_total", &[]).expect("audit events");
    assert_eq!(counted, in_log as f64, "{text}");
    at_least_one("vsc_audit_events_total", &[("outcome", "failure")]);
    assert_eq!(sum(&text, "vsc_audit_write_errors_total", &[]), Some(0.0));
    // The store: writes waited for, the read pool sampled.
    at_least_one("vsc_store_write_wait_seconds_count", &[]);
    // Group commit: every committed transaction counted, never fewer transactions than commits.
    let transactions = sum(&text, "vsc_store_write_transactions_total", &[]).expect("transactions");
    let commits = sum(&text, "vsc_store_commits_total", &[]).expect("commits");
    assert!(
        commits >= 1.0 && transactions >= commits,
        "{transactions} {commits}"
    );
    let cpu = sum(&text, "vsc_process_cpu_seconds_total", &[]).expect("process CPU");
    assert!(cpu > 0.0, "{cpu}");
    at_least_one("vsc_store_read_pool_max_connections", &[]);
    assert!(
        sum(
            &text,
            "vsc_store_read_pool_connections",
            &[("state", "open")]
        )
        .is_some()
    );
    assert!(text.contains(&format!(
        "vsc_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));
    // No id, ticket, token or raw path ever becomes a label.
    for secret in [
        signed_in.request_id.as_str(),
        refused.request_id.as_str(),
        signed_in.poll_secret.as_str(),
        ticket.as_str(),
        token.as_str(),
        uid.as_str(),
        "secret-id-4242",
    ] {
        assert!(!text.contains(secret), "{secret} leaked into:\n{text}");
    }

    // The phone goes away: its stream is no longer counted.
    drop(stream);
    streams_become(&s, 0.0).await;
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_configured_token_and_refuse_garbage_cleanly() {
    let s = start_with(|c| c.metrics = MetricsAccess::loopback().with_token(TOKEN)).await;
    let long = format!("Bearer {}", "A".repeat(8000));
    let wrong_bearer = format!("Bearer {TOKEN}x");
    let refusals: [(Headers<'_>, StatusCode, &str); 6] = [
        (&[], StatusCode::UNAUTHORIZED, "metrics_token_missing"),
        (
            &[("authorization", b"Basic bWV0cmljczpwYXNzd29yZA==")],
            StatusCode::UNAUTHORIZED,
            "metrics_token_missing",
        ),
        (
            &[("authorization", wrong_bearer.as_bytes())],
            StatusCode::UNAUTHORIZED,
            "metrics_token_invalid",
        ),
        (
            &[("authorization", b"Bearer ' OR 1=1 -- \xff\xfe")],
            StatusCode::UNAUTHORIZED,
            "metrics_token_missing",
        ),
        (
            &[("authorization", b"Bearer {{7*7}}%00../../etc/passwd")],
            StatusCode::UNAUTHORIZED,
            "metrics_token_invalid",
        ),
        (
            &[("authorization", long.as_bytes())],
            StatusCode::UNAUTHORIZED,
            "metrics_token_invalid",
        ),
    ];
    for (headers, want, code) in refusals {
        let (status, content_type, body) = get(&s, "/metrics", headers).await;
        assert_error(status, &body, want, code);
        assert!(
            content_type.starts_with("application/json"),
            "{content_type}"
        );
        assert!(!body.contains("vsc_"), "no figures in a refusal: {body}");
    }
    // Refusals are audited like any other, without the token they carried.
    s.assert_audited("metrics.read", "metrics_token_missing", 3)
        .await;
    let invalid = s
        .assert_audited("metrics.read", "metrics_token_invalid", 3)
        .await;
    assert!(invalid.iter().all(|e| !e.detail.contains(TOKEN)));

    let bearer = format!("Bearer {TOKEN}");
    let (status, _, body) = get(&s, "/metrics", &[("authorization", bearer.as_bytes())]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The refusals themselves were counted, under the route template.
    assert_eq!(
        sum(
            &body,
            "vsc_http_requests_total",
            &[("route", "/metrics"), ("status", "401")]
        ),
        Some(6.0),
        "{body}"
    );
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_database_and_the_shutdown() {
    let s = start().await;
    let (status, content_type, body) = get(&s, "/readyz", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(content_type.starts_with("application/json"));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).expect("JSON"),
        serde_json::json!({"status": "ready"})
    );

    // The database goes away: not ready, and nothing about the cause is told to the prober.
    s.state.store().close().await;
    let (status, _, body) = get(&s, "/readyz", &[]).await;
    assert_error(status, &body, StatusCode::SERVICE_UNAVAILABLE, "not_ready");
    for internal in ["sqlx", "pool", "closed", "sqlite", "vsc.db"] {
        assert!(
            !body.to_lowercase().contains(internal),
            "{internal} in {body}"
        );
    }
    // Liveness is not readiness; the figures still render (the pool is empty now).
    let (status, _, body) = get(&s, "/healthz", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    let text = scrape(&s).await;
    assert_eq!(
        sum(
            &text,
            "vsc_store_read_pool_connections",
            &[("state", "open")]
        ),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sum(
            &text,
            "vsc_http_requests_total",
            &[("route", "/readyz"), ("status", "503")]
        ),
        Some(1.0)
    );

    // Stopping: load balancers are told to send new requests elsewhere.
    s.state.hub().stop();
    let (status, _, body) = get(&s, "/readyz", &[]).await;
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "shutting_down",
    );
}
