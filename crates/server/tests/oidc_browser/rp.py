#!/usr/bin/env python3
"""An independent relying party for vsc's OpenID Connect provider: Python authlib (discovery,
PKCE, code exchange with client_secret_basic and private_key_jwt, ID token validation against
the JWKS, userinfo) driving a real headless Chromium over WebDriver (selenium).

Run by crates/server/tests/oidc_browser/main.rs, which owns the provider, the phone and the
relying party's HTTP endpoints. They talk over stdin/stdout, one JSON object per line:

  rp.py -> test  {"event": "hello", "jwks": {...}}        client B's public keys (private_key_jwt)
  test -> rp.py  {"config": {...}}                        issuer, CA, clients, person, browser
  rp.py -> test  {"event": "number", "number": N}         the number the sign-in page shows
  test -> rp.py  {"approved": true}                       the phone approved with N
  rp.py -> test  {"event": "signed_in", "client": ..., "id_token": ..., "claims": {...}, ...}
  rp.py -> test  {"event": "signed_out", ...}             the browser is back from the logout
  test -> rp.py  {"backchannel": "ok"}                    both logout tokens arrived and verified
  rp.py -> test  {"event": "step", "name": ...}           progress
  rp.py -> test  {"event": "done"} or {"event": "error", "message": ...}

Nothing here knows vsc's internals: only the discovery document and what a browser sees.
"""

import json
import shutil
import sys
import tempfile
import time
import urllib.parse

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, JsonWebToken
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from authlib.oidc.core import CodeIDToken
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

WAIT = 30
SCOPE_ROLE = "openid profile email nhsperson nationalrbacaccess associatedorgs selectedrole"
# Without `selectedrole`: single sign-on then needs no interaction (no role to choose).
SCOPE_NO_ROLE = "openid profile email nhsperson nationalrbacaccess associatedorgs"


class Failed(Exception):
    """A check failed; the message says which and what was seen."""


def check(ok, message):
    if not ok:
        raise Failed(message)


def send(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def recv():
    line = sys.stdin.readline()
    if not line:
        raise Failed("the Rust test closed the channel")
    return json.loads(line)


def step(name, **detail):
    send({"event": "step", "name": name, **detail})


class NhsPrivateKeyJWT(PrivateKeyJWT):
    """authlib's private_key_jwt with what CIS2 asks of the assertion: RS512, `kid` = the
    key's JWK thumbprint, and a short life (authlib's default `exp` is an hour; CIS2 and vsc
    accept at most five minutes)."""

    def __init__(self, token_endpoint, kid):
        super().__init__(token_endpoint, alg="RS512")
        self.kid = kid

    def sign(self, auth, token_endpoint):
        now = int(time.time())
        return private_key_jwt_sign(
            auth.client_secret,
            client_id=auth.client_id,
            token_endpoint=token_endpoint,
            alg=self.alg,
            header={"kid": self.kid},
            issued_at=now,
            expires_at=now + 120,
        )


class Rp:
    def __init__(self, cfg, key, kid):
        self.cfg = cfg
        self.ca = cfg["ca_pem"]
        self.issuer = cfg["issuer"]
        self.key = key
        self.kid = kid
        self.driver = None

    # --- the browser -------------------------------------------------------------------------

    def start_browser(self):
        options = webdriver.ChromeOptions()
        options.binary_location = self.cfg["chromium"]
        self.profile = tempfile.mkdtemp(prefix="vsc-oidc-browser-")
        for arg in [
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            # The provider's certificate chains to the instance's own root CA.
            "--ignore-certificate-errors",
            "--user-data-dir=" + self.profile,
            "--no-proxy-server",
            "--no-first-run",
            "--disable-background-networking",
        ]:
            options.add_argument(arg)
        # The console (CSP violations) and the network log (which pages the browser loaded).
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        self.driver = webdriver.Chrome(service=Service(self.cfg["chromedriver"]), options=options)
        self.driver.set_page_load_timeout(WAIT)

    def close(self):
        if self.driver is not None:
            try:
                self.driver.quit()
            except Exception:  # noqa: BLE001 - best effort at the end
                pass
        if getattr(self, "profile", None):
            shutil.rmtree(self.profile, ignore_errors=True)

    def navigations(self):
        """The documents the browser requested since the last call: [(method, url)], redirects
        included (each hop is its own request)."""
        seen = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") != "Network.requestWillBeSent":
                continue
            params = message["params"]
            # Web pages only: not the browser's own start page (chrome://…).
            if params.get("type") == "Document" and params["request"]["url"].startswith("http"):
                seen.append((params["request"]["method"], params["request"]["url"]))
        return seen

    def console_problems(self):
        """Console messages saying the page's security policy blocked something."""
        return [
            e["message"]
            for e in self.driver.get_log("browser")
            if "Content Security Policy" in e["message"] or "Refused to" in e["message"]
        ]

    def assert_no_csp_violation(self, where):
        problems = self.console_problems()
        check(not problems, f"{where}: the browser blocked something: {problems}")

    def wait_for(self, what, condition, timeout=WAIT):
        try:
            return WebDriverWait(self.driver, timeout).until(lambda d: condition(d))
        except Exception as e:  # noqa: BLE001 - reported with where the browser is
            raise Failed(
                f"timed out after {timeout} s waiting for {what}; the browser is at "
                f"{self.driver.current_url}; console: {self.console_problems()}; "
                f"page: {self.driver.find_element(By.TAG_NAME, 'body').text[:600]!r}"
            ) from e

    def wait_for_url(self, prefix, what):
        return self.wait_for(what, lambda d: d.current_url.startswith(prefix) and d.current_url)

    # --- the relying party -----------------------------------------------------------------

    def discover(self):
        url = self.issuer + "/.well-known/openid-configuration"
        http = self.loopback(requests.Session())
        meta = http.get(url, timeout=10).json()
        check(meta["issuer"] == self.issuer, f"discovery issuer {meta['issuer']!r} != {self.issuer!r}")
        for endpoint in ["authorization_endpoint", "token_endpoint", "userinfo_endpoint",
                         "jwks_uri", "end_session_endpoint"]:
            check(meta.get(endpoint, "").startswith(self.issuer + "/"), f"discovery {endpoint}: {meta.get(endpoint)!r}")
        check("S256" in meta["code_challenge_methods_supported"], "PKCE S256 not advertised")
        check("private_key_jwt" in meta["token_endpoint_auth_methods_supported"], "private_key_jwt not advertised")
        check(meta.get("backchannel_logout_supported") is True, "back-channel logout not advertised")
        self.meta = meta
        jwks = http.get(meta["jwks_uri"], timeout=10).json()
        self.jwks = JsonWebKey.import_key_set(jwks)
        step("discovery", issuer=meta["issuer"], keys=len(jwks["keys"]))

    def loopback(self, session):
        """Straight to the provider, trusting its root: no proxy from the environment, and no
        REQUESTS_CA_BUNDLE (which requests would otherwise prefer to `session.verify`)."""
        session.trust_env = False
        session.verify = self.ca
        return session

    def session_a(self, scope):
        a = self.cfg["a"]
        s = OAuth2Session(
            a["client_id"], a["secret"], scope=scope, redirect_uri=a["redirect_uri"],
            code_challenge_method="S256", token_endpoint_auth_method="client_secret_basic",
        )
        return self.loopback(s)

    def session_b(self, scope):
        b = self.cfg["b"]
        s = OAuth2Session(
            b["client_id"], self.key, scope=scope, redirect_uri=b["redirect_uri"],
            code_challenge_method="S256", token_endpoint_auth_method="private_key_jwt",
        )
        s.register_client_auth_method(NhsPrivateKeyJWT(self.meta["token_endpoint"], self.kid))
        return self.loopback(s)

    def authorization(self, session, **extra):
        verifier = generate_token(64)
        nonce = generate_token(24)
        url, state = session.create_authorization_url(
            self.meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce, **extra
        )
        return url, state, verifier, nonce

    def callback(self, state):
        """The code from the browser's address after the redirect back, with its checks."""
        url = self.driver.current_url
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
        check("error" not in q, f"the provider redirected back with an error: {q}")
        check(q.get("state") == state, f"state {q.get('state')!r} != {state!r}")
        check(q.get("iss") == self.issuer, f"iss in the authorization response {q.get('iss')!r} (RFC 9207)")
        check(q.get("code"), f"no code in {url}")
        return url

    def exchange(self, session, client_id, url, state, verifier, nonce, alg):
        token = session.fetch_token(
            self.meta["token_endpoint"], authorization_response=url, state=state, code_verifier=verifier
        )
        check(token.get("token_type", "").lower() == "bearer", f"token_type {token.get('token_type')!r}")
        check("id_token" in token and "access_token" in token, f"token response: {sorted(token)}")
        claims = JsonWebToken([alg]).decode(
            token["id_token"],
            self.jwks,
            claims_cls=CodeIDToken,
            claims_options={
                "iss": {"essential": True, "value": self.issuer},
                "aud": {"essential": True, "value": client_id},
            },
            claims_params={"nonce": nonce, "client_id": client_id, "access_token": token["access_token"]},
        )
        claims.validate(leeway=30)  # iss, aud, exp, iat, nonce, azp, at_hash when present
        check(claims.header.get("kid"), "the ID token has no kid")
        check(claims["nonce"] == nonce, "nonce")
        for name in ["sub", "sid", "auth_time", "acr", "amr", "uid", "nhsid_useruid"]:
            check(name in claims, f"the ID token has no {name}: {dict(claims)}")
        check(claims["sub"] == self.cfg["uid"], f"sub {claims['sub']!r}")
        return token, dict(claims)

    # --- the steps -------------------------------------------------------------------------

    def sign_in_with_role(self):
        a = self.cfg["a"]
        session = self.session_a(SCOPE_ROLE)
        url, state, verifier, nonce = self.authorization(session)
        self.navigations()
        self.driver.get(url)
        uid = self.wait_for("the UID form", lambda d: d.find_elements(By.ID, "uid"))[0]
        check(self.driver.current_url.startswith(self.issuer + "/oauth2/signin/"),
              f"the UID form is at {self.driver.current_url}")
        uid.clear()
        uid.send_keys(self.cfg["uid"])
        self.driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        shown = self.wait_for("the number", lambda d: d.find_elements(By.CSS_SELECTOR, ".number"))[0]
        number = int(shown.text.strip())
        send({"event": "number", "number": number})
        reply = recv()
        check(reply.get("approved") is True, f"the phone did not approve: {reply}")
        # No click from here: the page's script sees the approval and continues by itself.
        radios = self.wait_for(
            "the role page after the phone approved (the page's script should continue by itself)",
            lambda d: d.find_elements(By.CSS_SELECTOR, "input[name=role]"),
        )
        values = [r.get_attribute("value") for r in radios]
        check(sorted(values) == sorted(self.cfg["roles"]), f"roles offered {values}, expected {self.cfg['roles']}")
        check(radios[0].is_selected() and not radios[1].is_selected(), "the first role should be preselected")
        chosen = values[1]
        radios[1].click()
        check(radios[1].is_selected(), "the second role could not be chosen")
        self.driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        landed = self.wait_for_url(a["redirect_uri"], "the redirect to client A's callback")
        pages = self.navigations()
        posts = [u for m, u in pages if m == "POST"]
        check(any(u.endswith("/continue") for u in posts),
              f"the browser never posted the continue form (the script did not run?): {pages}")
        self.assert_no_csp_violation("sign-in with role selection")
        self.callback(state)
        token, claims = self.exchange(session, a["client_id"], landed, state, verifier, nonce, "RS256")
        check(claims.get("selected_roleid") == chosen, f"selected_roleid {claims.get('selected_roleid')!r} != {chosen!r}")
        userinfo = session.get(self.meta["userinfo_endpoint"], timeout=10)
        check(userinfo.status_code == 200, f"userinfo {userinfo.status_code}: {userinfo.text}")
        info = userinfo.json()
        check(info.get("sub") == claims["sub"], f"userinfo sub {info.get('sub')!r}")
        roles = info.get("nhsid_nrbac_roles") or []
        check(len(roles) == 2, f"nhsid_nrbac_roles: {roles}")
        check(sorted(r.get("person_roleid") for r in roles) == sorted(self.cfg["roles"]),
              f"person_roleid of nhsid_nrbac_roles: {roles}")
        check(info.get("selected_roleid") == chosen, f"userinfo selected_roleid {info.get('selected_roleid')!r}")
        send({"event": "signed_in", "client": "A", "chosen": chosen, "id_token": token["id_token"],
              "claims": claims, "userinfo": info, "pages": pages})
        return token["id_token"], claims

    def single_sign_on(self, sid_a):
        b = self.cfg["b"]
        session = self.session_b(SCOPE_NO_ROLE)
        url, state, verifier, nonce = self.authorization(session)
        self.navigations()
        self.driver.get(url)
        landed = self.wait_for_url(b["redirect_uri"], "the redirect to client B's callback")
        pages = self.navigations()
        check([u for _, u in pages if "/oauth2/signin/" in u] == [],
              f"single sign-on showed a sign-in page: {pages}")
        check([m for m, _ in pages] == ["GET", "GET"] and pages[0][1] == url,
              f"expected the authorization request then the callback, saw {pages}")
        self.assert_no_csp_violation("single sign-on")
        self.callback(state)
        token, claims = self.exchange(session, b["client_id"], landed, state, verifier, nonce, "RS512")
        check(claims["sid"] == sid_a, f"client B's sid {claims['sid']!r} != client A's {sid_a!r}")
        userinfo = session.get(self.meta["userinfo_endpoint"], timeout=10)
        check(userinfo.status_code == 200, f"client B's userinfo {userinfo.status_code}: {userinfo.text}")
        send({"event": "signed_in", "client": "B", "id_token": token["id_token"], "claims": claims,
              "pages": pages})

    def prompt_none(self, sid_a):
        a = self.cfg["a"]
        session = self.session_a(SCOPE_NO_ROLE)
        url, state, verifier, nonce = self.authorization(session, prompt="none")
        self.driver.get(url)
        landed = self.wait_for_url(a["redirect_uri"], "the redirect for prompt=none")
        self.callback(state)
        token, claims = self.exchange(session, a["client_id"], landed, state, verifier, nonce, "RS256")
        check(claims["sid"] == sid_a, f"prompt=none sid {claims['sid']!r} != {sid_a!r}")
        step("prompt=none with a session: a code", sid=claims["sid"])

    def logout(self, id_token_a):
        a = self.cfg["a"]
        state = generate_token(16)
        url = self.meta["end_session_endpoint"] + "?" + urllib.parse.urlencode({
            "id_token_hint": id_token_a,
            "post_logout_redirect_uri": a["post_logout_uri"],
            "state": state,
        })
        self.driver.get(url)
        landed = self.wait_for_url(a["post_logout_uri"], "the redirect after logout")
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(landed).query))
        check(q.get("state") == state, f"logout state {q.get('state')!r} != {state!r} ({landed})")
        send({"event": "signed_out", "url": landed})
        reply = recv()
        check(reply.get("backchannel") == "ok", f"back-channel logout: {reply}")

    def prompt_none_after_logout(self):
        a = self.cfg["a"]
        session = self.session_a(SCOPE_NO_ROLE)
        url, state, _, _ = self.authorization(session, prompt="none")
        self.driver.get(url)
        landed = self.wait_for_url(a["redirect_uri"], "the redirect for prompt=none after logout")
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(landed).query))
        check(q.get("error") == "login_required", f"prompt=none after logout: {q}")
        check(q.get("state") == state, f"state {q.get('state')!r} != {state!r}")
        check("code" not in q, f"a code after logout: {q}")
        step("prompt=none after logout: login_required")

    def run(self):
        self.discover()
        self.start_browser()
        step("browser started", version=self.driver.capabilities.get("browserVersion"))
        id_token_a, claims_a = self.sign_in_with_role()
        self.single_sign_on(claims_a["sid"])
        self.prompt_none(claims_a["sid"])
        self.logout(id_token_a)
        self.prompt_none_after_logout()


def main():
    # Client B's key, as an NHS relying party makes one: RSA 2048, kid = JWK thumbprint.
    key = JsonWebKey.generate_key("RSA", 2048, is_private=True)
    kid = key.thumbprint()
    public = key.as_dict(is_private=False)
    public.update({"kid": kid, "alg": "RS512", "use": "sig"})
    send({"event": "hello", "jwks": {"keys": [public]}})
    rp = None
    try:
        cfg = recv()["config"]
        rp = Rp(cfg, key, kid)
        rp.run()
        send({"event": "done"})
    except Exception as e:  # noqa: BLE001 - every failure goes back to the test, readable
        where = ""
        if rp is not None and rp.driver is not None:
            try:
                where = f" (browser at {rp.driver.current_url})"
            except Exception:  # noqa: BLE001
                pass
        send({"event": "error", "message": f"{type(e).__name__}: {e}{where}"})
    finally:
        if rp is not None:
            rp.close()


if __name__ == "__main__":
    main()
