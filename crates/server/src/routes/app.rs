//! The phone web app (issue 13): the authenticator as an installable web app, served at
//! `/app/` as static files embedded in the server binary from `crates/server/app/`.
//!
//! Who may call: anyone. Every file here is public and carries no secret and nothing about
//! any person; the app holds its keys in the browser and talks to the device API
//! ([`super::device`]) like any phone.
//!
//! | route | content |
//! |---|---|
//! | `GET /app` | redirect to `/app/` |
//! | `GET /app/`, `/app/index.html` | the app's page, with Subresource Integrity values for its script, style and core |
//! | `GET /app/{file}` | `app.js`, `app.css`, `sw.js` (service worker, scope `/app/`), `manifest.webmanifest`, icons, `activate.js` (the /activate and /unlock landing pages' links into the app), `pkg/…` (the core in WebAssembly and its glue) |
//!
//! Every answer carries a strict Content-Security-Policy (no inline script or style, no
//! third-party origin, no `data:` or `blob:` URLs; WebAssembly compilation allowed),
//! `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`,
//! `Cross-Origin-Opener-Policy: same-origin` (no other page keeps a handle on the app's window),
//! `Cross-Origin-Resource-Policy: same-origin` (no other site embeds the app's files) and a
//! `Permissions-Policy` that allows the camera (the QR scan) to the app itself and nothing else. Every file is `Cache-Control: no-cache` (its URL stays the
//! same from one version to the next; the service worker keeps the app working offline) with a
//! strong `ETag`, so revalidation is cheap.
//!
//! The integrity values and the service worker's cache name are computed once, at startup,
//! from the embedded bytes: what the page pins is exactly what this binary serves. The page
//! pins `app.js` and `app.css` (`integrity` attributes), the core's JavaScript glue
//! (`<link rel="modulepreload" integrity=…>`, which the module import then uses) and the
//! WebAssembly module (a `<meta name="vsc-core-integrity">` the app passes to `fetch`).

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::state::AppState;

/// Where the app lives.
pub const APP_PREFIX: &str = "/app/";

/// The Content-Security-Policy of every answer under `/app/`. Only what the app uses: its own
/// images (the icons), no media source (the camera's video is a `MediaStream` set as
/// `srcObject`, which no `media-src` governs; the QR frames go through a canvas), no `data:` or
/// `blob:` URLs.
pub const CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
style-src 'self'; img-src 'self'; connect-src 'self'; manifest-src 'self'; worker-src 'self'; \
base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The Permissions-Policy of every answer under `/app/`: the camera for the app's own QR scan,
/// no microphone, location or payment.
pub const PERMISSIONS_POLICY: &str = "camera=(self), microphone=(), geolocation=(), payment=()";

/// The page as written; `{{…}}` placeholders are filled in by [`index_html`].
const INDEX_TEMPLATE: &str = include_str!("../../app/index.html");
/// The service worker as written; `{{cache}}` becomes the cache name.
const SW_TEMPLATE: &str = include_str!("../../app/sw.js");

/// One embedded file.
#[derive(Debug, Clone, Copy)]
struct Asset {
    /// Path under `/app/`.
    path: &'static str,
    /// Content type.
    content_type: &'static str,
    /// The bytes.
    body: &'static [u8],
}

/// The files served as they are.
const ASSETS: &[Asset] = &[
    Asset {
        path: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../app/app.js"),
    },
    Asset {
        path: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../app/app.css"),
    },
    Asset {
        path: "activate.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../app/activate.js"),
    },
    Asset {
        path: "manifest.webmanifest",
        content_type: "application/manifest+json",
        body: include_bytes!("../../app/manifest.webmanifest"),
    },
    Asset {
        path: "icon-192.png",
        content_type: "image/png",
        body: include_bytes!("../../app/icon-192.png"),
    },
    Asset {
        path: "icon-512.png",
        content_type: "image/png",
        body: include_bytes!("../../app/icon-512.png"),
    },
    Asset {
        path: "pkg/vsc_phone_web.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../app/pkg/vsc_phone_web.js"),
    },
    Asset {
        path: "pkg/vsc_phone_web_bg.wasm",
        content_type: "application/wasm",
        body: include_bytes!("../../app/pkg/vsc_phone_web_bg.wasm"),
    },
];

/// The app's version, as the page's footer and the service worker's cache name carry it.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A rendered file with its validator.
#[derive(Debug)]
struct Rendered {
    body: Vec<u8>,
    etag: String,
}

impl Rendered {
    fn new(body: Vec<u8>) -> Rendered {
        let etag = etag(&body);
        Rendered { body, etag }
    }
}

/// A strong validator for `body`: the first half of its SHA-256, quoted.
fn etag(body: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
    format!("\"{}\"", hex::encode(&digest.as_ref()[..16]))
}

/// `sha384-…`: a Subresource Integrity value.
pub fn sri(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, bytes);
    format!("sha384-{}", B64.encode(digest.as_ref()))
}

fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

fn asset_body(path: &str) -> &'static [u8] {
    asset(path).map_or(&[], |a| a.body)
}

/// The page with its integrity values and version (footer) filled in.
fn index_html() -> String {
    INDEX_TEMPLATE
        .replace("{{sri:app.js}}", &sri(asset_body("app.js")))
        .replace("{{sri:app.css}}", &sri(asset_body("app.css")))
        .replace(
            "{{sri:pkg/vsc_phone_web.js}}",
            &sri(asset_body("pkg/vsc_phone_web.js")),
        )
        .replace(
            "{{sri:pkg/vsc_phone_web_bg.wasm}}",
            &sri(asset_body("pkg/vsc_phone_web_bg.wasm")),
        )
        .replace("{{version}}", VERSION)
}

/// The cache name the service worker keeps the shell under: the version and a digest of
/// everything it caches, so any change to the shell makes a new service worker (browsers
/// compare its bytes) that replaces the old cache.
fn cache_name() -> String {
    let mut c = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    c.update(INDEX_TEMPLATE.as_bytes());
    for a in ASSETS {
        c.update(a.path.as_bytes());
        c.update(&(a.body.len() as u64).to_be_bytes());
        c.update(a.body);
    }
    let digest = c.finish();
    format!("vsc-app-{VERSION}-{}", hex::encode(&digest.as_ref()[..6]))
}

/// The page, rendered once.
static INDEX: LazyLock<Rendered> = LazyLock::new(|| Rendered::new(index_html().into_bytes()));
/// The service worker, with its cache name.
static SW: LazyLock<Rendered> =
    LazyLock::new(|| Rendered::new(SW_TEMPLATE.replace("{{cache}}", &cache_name()).into_bytes()));
/// The assets' validators, in the order of [`ASSETS`].
static ETAGS: LazyLock<Vec<String>> =
    LazyLock::new(|| ASSETS.iter().map(|a| etag(a.body)).collect());

/// The routes.
pub fn routes() -> Router<AppState> {
    // Rendered now, so a broken template shows at startup rather than on the first visit.
    LazyLock::force(&INDEX);
    LazyLock::force(&SW);
    LazyLock::force(&ETAGS);
    Router::new()
        .route("/app", get(redirect))
        .route(APP_PREFIX, get(index))
        .route("/app/{*path}", get(file))
}

async fn redirect() -> Redirect {
    Redirect::permanent(APP_PREFIX)
}

async fn index(headers: HeaderMap) -> Response {
    answer(
        &headers,
        "text/html; charset=utf-8",
        &INDEX.body,
        &INDEX.etag,
    )
}

async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match path.as_str() {
        "" | "index.html" => return index(headers).await,
        "sw.js" => {
            return answer(
                &headers,
                "text/javascript; charset=utf-8",
                &SW.body,
                &SW.etag,
            );
        }
        _ => {}
    }
    match ASSETS.iter().position(|a| a.path == path) {
        Some(i) => answer(&headers, ASSETS[i].content_type, ASSETS[i].body, &ETAGS[i]),
        None => with_headers(
            (StatusCode::NOT_FOUND, "no such file in the app\n").into_response(),
            "no-store",
        ),
    }
}

/// The file, or `304 Not Modified` when the client holds it already.
fn answer(request: &HeaderMap, content_type: &'static str, body: &[u8], etag: &str) -> Response {
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = body.to_vec().into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r
    };
    if let Ok(v) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, v);
    }
    with_headers(response, "no-cache")
}

fn with_headers(mut response: Response, cache: &'static str) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static(PERMISSIONS_POLICY),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sri_is_sha384_base64() {
        // SHA-384 of the empty string (FIPS 180-2 test vector), base64.
        assert_eq!(
            sri(b""),
            "sha384-OLBgp1GsljhM2TJ+sbHjaiH9txEUvgdDTAzHv2P24donTt6/529l+9Ua0vFImLlb"
        );
    }

    #[test]
    fn the_page_pins_what_is_served() {
        let page = index_html();
        assert!(!page.contains("{{"), "every placeholder is filled: {page}");
        for (path, tag) in [
            ("app.js", "<script type=\"module\" src=\"app.js\""),
            ("app.css", "<link rel=\"stylesheet\" href=\"app.css\""),
            (
                "pkg/vsc_phone_web.js",
                "<link rel=\"modulepreload\" href=\"pkg/vsc_phone_web.js\"",
            ),
        ] {
            let integrity = format!("integrity=\"{}\"", sri(asset_body(path)));
            let at = page
                .find(tag)
                .unwrap_or_else(|| panic!("{tag} in the page"));
            let end = at + page[at..].find('>').expect("the tag ends");
            assert!(
                page[at..end].contains(&integrity),
                "{path}: {}",
                &page[at..end]
            );
        }
        assert!(page.contains(&sri(asset_body("pkg/vsc_phone_web_bg.wasm"))));
        // No inline script or style: the CSP would refuse them.
        assert!(!page.contains("<style"));
        assert!(!page.contains(" style="));
        for script in page.split("<script").skip(1) {
            assert!(
                script.split('>').next().is_some_and(|t| t.contains("src=")),
                "inline script: {script}"
            );
        }
    }

    #[test]
    fn the_service_worker_names_its_cache_by_version_and_content() {
        let sw = String::from_utf8(SW.body.clone()).expect("UTF-8");
        assert!(!sw.contains("{{"));
        assert!(sw.contains(&format!("vsc-app-{VERSION}-")));
    }

    async fn get(path: &str, if_none_match: Option<&str>) -> Response {
        let mut headers = HeaderMap::new();
        if let Some(tag) = if_none_match {
            headers.insert(
                header::IF_NONE_MATCH,
                HeaderValue::from_str(tag).expect("ASCII"),
            );
        }
        match path.strip_prefix(APP_PREFIX) {
            Some("") => index(headers).await,
            Some(rest) => file(Path(rest.to_owned()), headers).await,
            None => redirect().await.into_response(),
        }
    }

    #[tokio::test]
    async fn files_have_their_types_and_headers() {
        for (path, content_type, cache) in [
            ("/app/", "text/html; charset=utf-8", "no-cache"),
            ("/app/index.html", "text/html; charset=utf-8", "no-cache"),
            ("/app/sw.js", "text/javascript; charset=utf-8", "no-cache"),
            ("/app/app.js", "text/javascript; charset=utf-8", "no-cache"),
            ("/app/app.css", "text/css; charset=utf-8", "no-cache"),
            (
                "/app/manifest.webmanifest",
                "application/manifest+json",
                "no-cache",
            ),
            ("/app/icon-192.png", "image/png", "no-cache"),
            ("/app/icon-512.png", "image/png", "no-cache"),
            (
                "/app/pkg/vsc_phone_web_bg.wasm",
                "application/wasm",
                "no-cache",
            ),
        ] {
            let r = get(path, None).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            let h = r.headers();
            assert_eq!(h[header::CONTENT_TYPE], content_type, "{path}");
            assert_eq!(h[header::CONTENT_SECURITY_POLICY], CSP, "{path}");
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
            assert_eq!(h[header::REFERRER_POLICY], "no-referrer", "{path}");
            assert_eq!(h["cross-origin-opener-policy"], "same-origin", "{path}");
            assert_eq!(h["cross-origin-resource-policy"], "same-origin", "{path}");
            assert_eq!(
                h["permissions-policy"], "camera=(self), microphone=(), geolocation=(), payment=()",
                "{path}"
            );
            assert_eq!(h[header::CACHE_CONTROL], cache, "{path}");
            let etag = h[header::ETAG].to_str().expect("ASCII").to_owned();
            let again = get(path, Some(&etag)).await;
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
            assert_eq!(again.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        }
        let missing = get("/app/nothing.js", None).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(missing.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(
            missing.headers()["cross-origin-resource-policy"],
            "same-origin"
        );
        let bare = get("/app", None).await;
        assert!(bare.status().is_redirection());
        assert_eq!(bare.headers()[header::LOCATION], "/app/");
    }

    #[test]
    fn the_policy_allows_no_inline_code_and_no_other_origin() {
        assert!(!CSP.contains("unsafe-inline"));
        assert!(!CSP.contains("'unsafe-eval'"));
        assert!(!CSP.contains("https:"));
        assert!(CSP.contains("frame-ancestors 'none'"));
        // No URL schemes the app does not use.
        assert!(!CSP.contains("data:"));
        assert!(!CSP.contains("blob:"));
        assert!(!CSP.contains("media-src"));
    }
}
