//! Refresh tokens rotate (each works once; a replay revokes the grant and every token it
//! issued) and die with the sign-in session: logout, idle timeout.

use time::Duration;

use crate::common::{TestServer, start};
use crate::support::{
    Auth, Reply, Rp, Tokens, assert_access_refused, assert_access_works, clinician, exchange,
    register, session_row, signed_in, token_form, verify,
};

async fn refresh(s: &TestServer, rp: &Rp, refresh_token: &str, scope: Option<&str>) -> Reply {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    token_form(s, Auth::Basic(&rp.client_id, &rp.secret), &form).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_rotates_and_a_replay_revokes_the_new_tokens() {
    let s = start().await;
    let c = clinician(&s).await;
    let rp = register(&s, "EPR", |_| {}).await;
    let (_b, code) = signed_in(&s, &c, &rp, &[("scope", "openid profile email")]).await;
    let first = exchange(&s, &rp, &code).await;

    s.clock.advance(Duration::seconds(5));
    let r = refresh(&s, &rp, &first.refresh, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["scope"], "openid profile email");
    let second = Tokens::of(r.body);
    assert_ne!(second.access, first.access);
    assert_ne!(second.refresh, first.refresh);
    let (_, claims) = verify(&s, &second.id_token, vsc_oidc::jose::Alg::RS256).await;
    assert_eq!(claims["sid"], first.claims["sid"]);
    assert_eq!(claims["sub"], first.claims["sub"]);
    assert_eq!(claims["auth_time"], first.claims["auth_time"]);
    assert!(claims["iat"].as_i64() > first.claims["iat"].as_i64());
    assert!(
        claims.get("nonce").is_none(),
        "a refreshed ID token carries no nonce"
    );
    assert_access_works(&s, &second.access, &c.uid).await;
    // A narrower scope is allowed.
    let r = refresh(&s, &rp, &second.refresh, Some("openid")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let third = Tokens::of(r.body);
    assert_access_works(&s, &third.access, &c.uid).await;

    // The first refresh token again: refused, and everything of the grant is revoked.
    refresh(&s, &rp, &first.refresh, None)
        .await
        .assert_error(400, "invalid_grant");
    assert_access_refused(&s, &second.access).await;
    assert_access_refused(&s, &third.access).await;
    refresh(&s, &rp, &third.refresh, None)
        .await
        .assert_error(400, "invalid_grant");
    assert_eq!(s.audit_events("oidc.refresh.replayed").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_cannot_widen_the_scope_or_cross_clients() {
    let s = start().await;
    let c = clinician(&s).await;
    let rp = register(&s, "EPR", |_| {}).await;
    let other = register(&s, "Other", |_| {}).await;
    let (_b, code) = signed_in(&s, &c, &rp, &[("scope", "openid profile")]).await;
    let t = exchange(&s, &rp, &code).await;
    for wider in [
        "openid profile email",
        "openid nationalrbacaccess",
        "openid anything",
    ] {
        refresh(&s, &rp, &t.refresh, Some(wider))
            .await
            .assert_error(400, "invalid_scope");
    }
    // Another client with its own credentials; the access token as a refresh token; nonsense.
    refresh(&s, &other, &t.refresh, None)
        .await
        .assert_error(400, "invalid_grant");
    refresh(&s, &rp, &t.access, None)
        .await
        .assert_error(400, "invalid_grant");
    refresh(&s, &rp, "nonsense", None)
        .await
        .assert_error(400, "invalid_grant");
    // None of that used the refresh token or revoked anything.
    assert_access_works(&s, &t.access, &c.uid).await;
    let r = refresh(&s, &rp, &t.refresh, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_die_with_the_session_at_logout() {
    let s = start().await;
    let c = clinician(&s).await;
    let rp = register(&s, "EPR", |_| {}).await;
    let (mut b, code) = signed_in(&s, &c, &rp, &[]).await;
    let t = exchange(&s, &rp, &code).await;
    let url = format!(
        "/oauth2/logout?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("id_token_hint", &t.id_token)
            .finish()
    );
    let out = b.get(&url).await;
    assert_eq!(out.status, 200, "{}", out.body);
    refresh(&s, &rp, &t.refresh, None)
        .await
        .assert_error(400, "invalid_grant");
    assert_access_refused(&s, &t.access).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_die_with_the_session_at_its_idle_timeout() {
    let s = start().await;
    let c = clinician(&s).await;
    let rp = register(&s, "EPR", |_| {}).await;
    let (_b, code) = signed_in(&s, &c, &rp, &[]).await;
    let t = exchange(&s, &rp, &code).await;
    let session = session_row(&s, t.claims["sid"].as_str().unwrap()).await;
    assert!(session.idle_seconds > 0);
    // Refreshing within the idle timeout keeps the session alive...
    s.clock
        .advance(Duration::seconds(session.idle_seconds - 10));
    let r = refresh(&s, &rp, &t.refresh, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let t = Tokens::of(r.body);
    s.clock
        .advance(Duration::seconds(session.idle_seconds - 10));
    let r = refresh(&s, &rp, &t.refresh, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let t = Tokens::of(r.body);
    // ...and idle past it the session is over.
    s.clock.advance(Duration::seconds(session.idle_seconds + 1));
    refresh(&s, &rp, &t.refresh, None)
        .await
        .assert_error(400, "invalid_grant");
    // The access token (60 minutes) does not outlive the session either.
    assert_access_refused(&s, &t.access).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_refreshes_with_one_token_at_once_rotate_once_and_then_revoke() {
    let s = start().await;
    let c = clinician(&s).await;
    let rp = register(&s, "EPR", |_| {}).await;
    let (_b, code) = signed_in(&s, &c, &rp, &[]).await;
    let t = exchange(&s, &rp, &code).await;
    let (a, b) = tokio::join!(
        refresh(&s, &rp, &t.refresh, None),
        refresh(&s, &rp, &t.refresh, None)
    );
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 400], "{} {}", a.body, b.body);
    let (won, lost) = if a.status == 200 { (a, b) } else { (b, a) };
    lost.assert_error(400, "invalid_grant");
    assert_access_refused(&s, won.body["access_token"].as_str().unwrap()).await;
    assert_access_refused(&s, &t.access).await;
}
