//! The provider's signing keys: one per algorithm in the JWK set, the client's registered ID
//! token algorithm honoured, and rotation after the key lifetime (90 days) with the retired key
//! published for the grace period (7 days) and then withdrawn.

use time::Duration;
use vsc_oidc::jose::{Alg, JwkSet};

use crate::common::start;
use crate::support::{Browser, clinician, exchange, jwks, register, signed_in, sso_code};

fn kid_of(set: &JwkSet, alg: Alg) -> Vec<String> {
    set.keys
        .iter()
        .filter(|k| k.alg.as_deref() == Some(alg.as_str()))
        .map(|k| k.kid.clone().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jwk_set_has_one_public_key_per_algorithm_and_clients_get_their_algorithm() {
    let s = start().await;
    let c = clinician(&s).await;
    let raw = Browser::new(&s).get("/oauth2/jwks").await;
    assert_eq!(raw.status, 200);
    for private in ["\"d\"", "\"p\"", "\"q\"", "\"dp\"", "\"qi\""] {
        assert!(!raw.body.contains(private), "{}", raw.body);
    }
    let set = jwks(&s).await;
    assert_eq!(set.keys.len(), 3, "{set:?}");
    for (alg, kty) in [(Alg::RS256, "RSA"), (Alg::RS512, "RSA"), (Alg::ES256, "EC")] {
        let k = set
            .keys
            .iter()
            .find(|k| k.alg.as_deref() == Some(alg.as_str()))
            .unwrap_or_else(|| panic!("a {alg} key"));
        assert_eq!(k.kty, kty);
        assert_eq!(k.use_.as_deref(), Some("sig"));
        assert!(k.kid.as_deref().is_some_and(|kid| !kid.is_empty()));
    }
    let kids: std::collections::HashSet<_> = set.keys.iter().map(|k| k.kid.clone()).collect();
    assert_eq!(kids.len(), 3, "distinct kids");

    let default = register(&s, "Default", |_| {}).await;
    let (mut b, code) = signed_in(&s, &c, &default, &[]).await;
    let t = exchange(&s, &default, &code).await;
    let (h, _) = vsc_oidc::jose::verify_jwt(&t.id_token, &set.keys, &[Alg::RS256]).unwrap();
    assert_eq!(h.kid.unwrap(), kid_of(&set, Alg::RS256)[0]);

    for alg in [Alg::ES256, Alg::RS512] {
        let rp = register(&s, "Other alg", |r| r.id_token_alg = alg.as_str().into()).await;
        let code = sso_code(&mut b, &rp, &[]).await;
        let t = exchange(&s, &rp, &code).await;
        // Only its algorithm verifies it: RS256 is not accepted in its place.
        assert!(vsc_oidc::jose::verify_jwt(&t.id_token, &set.keys, &[Alg::RS256]).is_err());
        let (h, claims) = vsc_oidc::jose::verify_jwt(&t.id_token, &set.keys, &[alg]).unwrap();
        assert_eq!(h.alg, alg);
        assert_eq!(h.kid.unwrap(), kid_of(&set, alg)[0]);
        assert_eq!(claims["aud"], rp.client_id.as_str());
        // at_hash is the left half of the access token's hash with the token's algorithm.
        assert_eq!(
            claims["at_hash"],
            vsc_oidc::jose::half_hash(alg, &t.access).as_str()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_after_90_days_and_the_old_one_stays_published_for_the_grace_period() {
    let s = start().await;
    let c = clinician(&s).await;
    let rp = register(&s, "EPR", |_| {}).await;
    let (_b, code) = signed_in(&s, &c, &rp, &[]).await;
    let old_token = exchange(&s, &rp, &code).await.id_token;
    let before = jwks(&s).await;
    let old_kid = kid_of(&before, Alg::RS256)[0].clone();

    // Within the lifetime nothing changes.
    s.clock.advance(Duration::days(89));
    assert_eq!(jwks(&s).await, before);

    // Past 90 days (and the one-minute cache): a new key signs, the old one is still published.
    s.clock.advance(Duration::days(1) + Duration::seconds(61));
    let (_b, code) = signed_in(&s, &c, &rp, &[]).await;
    let new_token = exchange(&s, &rp, &code).await.id_token;
    let after = jwks(&s).await;
    let new_kid = kid_of(&after, Alg::RS256)
        .into_iter()
        .find(|k| *k != old_kid)
        .expect("a new RS256 key");
    let (h, _) = vsc_oidc::jose::verify_jwt(&new_token, &after.keys, &[Alg::RS256]).unwrap();
    assert_eq!(h.kid.as_deref(), Some(new_kid.as_str()));
    assert!(
        kid_of(&after, Alg::RS256).contains(&old_kid),
        "the old key is in its grace period"
    );
    assert_eq!(after.keys.len(), 6, "every algorithm rotated: {after:?}");
    vsc_oidc::jose::verify_jwt(&old_token, &after.keys, &[Alg::RS256]).unwrap();
    assert_eq!(s.audit_events("oidc.key.created").await.len(), 6);

    // Eight more days: the old key is gone, the new one stays.
    s.clock.advance(Duration::days(8));
    let later = jwks(&s).await;
    assert_eq!(kid_of(&later, Alg::RS256), vec![new_kid]);
    assert_eq!(later.keys.len(), 3);
    assert!(vsc_oidc::jose::verify_jwt(&old_token, &later.keys, &[Alg::RS256]).is_err());
    vsc_oidc::jose::verify_jwt(&new_token, &later.keys, &[Alg::RS256]).unwrap();
}
