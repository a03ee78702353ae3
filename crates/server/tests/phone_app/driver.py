#!/usr/bin/env python3
"""The phone web app (/app/) in a real headless Chromium at phone size, driven over WebDriver.

Run by crates/server/tests/phone_app/main.rs, which owns the server and plays the workstation.
They talk over stdin/stdout, one JSON object per line:

  test -> driver  {"config": {...}}                          server, browser, person, card, links
  driver -> test  {"event": "check", "what": W, ...}         a look at the server, or a request:
                  what=card {card, code?}                    card state, its device's platform
                  what=code {url}                            whether an activation code was used
                  what=open {via?}                           the workstation (vsc agent login, or
                                                             via=api its calls) opens a sign-in:
                                                             {request_id, number}
                  what=outcome {request_id, wait}            the workstation collects: {state, ...}
                  what=passcode_failures / alerts            audit events
                  what=session_open / session_ready          a sign-in whose agent stays running
                                                             (with --vpcd): the signed-in session
                  what=eps_start {algorithm, decline?}       a prescribing system posts a batch to
                                                             the agent's /v1/eps/sign: what the
                                                             phone must show (the core's review)
                  what=eps_result                            the agent's answer; signed ones checked
                                                             by `vsc eps verify` and independently
                  what=card_start / card_result              pkcs11-tool --sign with 9A; openssl
                  what=session_end                           the session's agent stops
                  what=ra_unlock                             the RA's unlock code {code, url}
                  what=deny_app_version                      the RA denies this web app version {rule}
                  what=remove_version_rule {rule}            and removes that rule again
  test -> driver  {"ok": true, ...}
  driver -> test  {"event": "stop_server"}                   the test stops the server (offline)
  test -> driver  {"ok": true}
  driver -> test  {"event": "step", "name": ...}             progress
  driver -> test  {"event": "note", "message": ...}          worth reporting, not a failure
  driver -> test  {"event": "done", "covered": [...], "missing": [...]}
                  or {"event": "error", "message": ...}

Only what a person holding the phone does: open the link, type, press. The DOM ids are the
contract's (see the app's index.html); each screen is a <section data-screen=NAME>.
"""

import json
import os
import shutil
import sys
import tempfile
import time

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

WAIT = 20
# Enrolment stretches the passcode (Argon2id in WebAssembly) and makes an RSA-2048 key, on a
# machine shared with builds.
ENROL_WAIT = 120
PHONE = {"width": 390, "height": 844, "pixelRatio": 3.0, "mobile": True, "touch": True}
MOBILE_UA = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Chrome/130.0.0.0 Mobile Safari/537.36")


class Failed(Exception):
    """A check failed; the message says which and what was seen."""


def send(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def recv():
    line = sys.stdin.readline()
    if not line:
        raise Failed("the Rust test closed the channel")
    return json.loads(line)


def ask(what, **detail):
    send({"event": "check", "what": what, **detail})
    return recv()


def norm(text):
    """Whitespace collapsed, for comparing the core's lines with what the page shows."""
    return " ".join((text or "").split())


def step(name, **detail):
    send({"event": "step", "name": name, **detail})


def note(message):
    send({"event": "note", "message": message})


# The screen on show: the visible <section data-screen>s (the contract: exactly one).
SCREENS_JS = """
return [...document.querySelectorAll('[data-screen]')]
  .filter(s => !s.hidden && s.getClientRects().length && getComputedStyle(s).visibility !== 'hidden')
  .map(s => s.dataset.screen || s.id);
"""

# The #error alert's text when it is shown, else ''.
ERROR_JS = """
const e = document.getElementById('error');
if (!e || e.hidden || !e.getClientRects().length) return '';
return (e.innerText || e.textContent || '').trim();
"""

# What the page holds that a strict CSP would refuse: inline scripts, inline handlers, and the
# integrity of each script and style sheet.
PAGE_JS = """
const inline = document.querySelectorAll('script:not([src])').length;
const handlers = [];
for (const el of document.querySelectorAll('*')) {
  for (const a of el.attributes) if (a.name.startsWith('on')) handlers.push(el.tagName + '[' + a.name + ']');
}
const resources = [...document.querySelectorAll('script[src], link[rel~=stylesheet], link[rel~=modulepreload]')]
  .map(e => ({src: e.getAttribute('src') || e.getAttribute('href'), integrity: e.getAttribute('integrity') || ''}));
const viewport = document.querySelector('meta[name=viewport]');
const manifest = document.querySelector('link[rel=manifest]');
return {inline, handlers, resources, viewport: viewport ? viewport.content : null,
        manifest: manifest ? manifest.getAttribute('href') : null,
        width: innerWidth, height: innerHeight, ratio: devicePixelRatio, secure: isSecureContext,
        ua: navigator.userAgent};
"""

SW_JS = """
const cb = arguments[arguments.length - 1];
if (!('serviceWorker' in navigator)) { cb({error: 'no navigator.serviceWorker'}); return; }
navigator.serviceWorker.getRegistration('/app/').then(r => cb(r ? {
  scope: r.scope,
  active: r.active ? r.active.state : null,
  script: r.active ? r.active.scriptURL : null,
  installing: r.installing ? r.installing.state : null,
  waiting: r.waiting ? r.waiting.state : null,
  controlled: !!navigator.serviceWorker.controller,
} : {error: 'no registration for /app/'}), e => cb({error: String(e)}));
"""


class Phone:
    def __init__(self, cfg):
        self.cfg = cfg
        self.base = cfg["base"]
        self.shots = cfg["screenshots"]
        self.driver = None
        self.profile = None
        self.drivers = []
        self.profiles = []
        self.console = []
        self.covered = []
        self.missing = []

    # --- the browser ---------------------------------------------------------------------------

    def start_browser(self, extra=()):
        """A fresh phone: a new profile (no storage, no service worker), phone-sized."""
        options = webdriver.ChromeOptions()
        options.binary_location = self.cfg["chromium"]
        self.profile = tempfile.mkdtemp(prefix="vsc-phone-app-")
        self.profiles.append(self.profile)
        for arg in [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            # The server's certificate chains to the instance's own root CA. Chromium lets a
            # service worker register over such a connection with this switch (checked: the
            # registration goes active), so no SPKI pinning is needed.
            "--ignore-certificate-errors",
            "--user-data-dir=" + self.profile,
            "--no-proxy-server",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            *extra,
        ]:
            options.add_argument(arg)
        options.add_experimental_option("mobileEmulation", {"deviceMetrics": PHONE, "userAgent": MOBILE_UA})
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(self.cfg["chromedriver"]), options=options)
        self.drivers.append(self.driver)
        self.driver.set_page_load_timeout(WAIT)
        self.driver.set_script_timeout(WAIT)
        self.console = []

    def close(self):
        for driver in self.drivers:
            try:
                driver.quit()
            except Exception:  # noqa: BLE001 - best effort at the end
                pass
        for profile in self.profiles:
            shutil.rmtree(profile, ignore_errors=True)

    def logs(self):
        """The browser's console, accumulated (reading it drains chromedriver's buffer)."""
        try:
            for e in self.driver.get_log("browser"):
                self.console.append(f"{e.get('level')}: {e.get('message')}")
        except Exception:  # noqa: BLE001 - the browser may be gone
            pass
        return self.console

    def console_tail(self, n):
        """The last `n` console messages that are not DEBUG chatter."""
        return [m for m in self.logs() if not m.startswith("DEBUG")][-n:]

    def csp_problems(self):
        return [m for m in self.logs() if "Content Security Policy" in m or "Refused to" in m
                or "integrity" in m.lower()]

    def screen(self):
        try:
            return self.driver.execute_script(SCREENS_JS) or []
        except Exception:  # noqa: BLE001
            return []

    def error_text(self):
        try:
            return self.driver.execute_script(ERROR_JS) or ""
        except Exception:  # noqa: BLE001
            return ""

    def body_text(self):
        try:
            return self.driver.execute_script("return document.body ? document.body.innerText : ''") or ""
        except Exception:  # noqa: BLE001
            return ""

    def where(self):
        """Where the app is, for a failure message: screen, #error, console, page text."""
        return (f"the browser is at {self.driver.current_url}; screen {self.screen()}; "
                f"#error {self.error_text()!r}; console (last 15): {self.console_tail(15)}; "
                f"page: {self.body_text()[:600]!r}")

    def check(self, ok, message):
        if not ok:
            raise Failed(f"{message}; {self.where()}")

    def wait_for(self, what, condition, timeout=WAIT):
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.2,
                                 ignored_exceptions=[StaleElementReferenceException]).until(
                lambda d: condition(d))
        except Exception as e:  # noqa: BLE001 - reported with where the app is
            raise Failed(f"{type(e).__name__} after at most {timeout} s waiting for {what}; {self.where()}") from e

    def wait_screen(self, name, timeout=WAIT, fail_on_error=True):
        """Waits for screen `name`; an #error shown meanwhile fails at once with its text."""
        def ready(_):
            if fail_on_error:
                err = self.error_text()
                if err:
                    raise Failed(f"the app shows an error while {name!r} was expected: {err!r}")
            return self.screen() == [name]
        try:
            WebDriverWait(self.driver, timeout, poll_frequency=0.2,
                          ignored_exceptions=[StaleElementReferenceException]).until(ready)
        except Failed as e:
            raise Failed(f"{e}; {self.where()}") from e
        except Exception as e:  # noqa: BLE001
            raise Failed(f"{type(e).__name__} after at most {timeout} s waiting for the {name!r} screen; "
                         f"{self.where()}") from e

    def wait_error(self, what, timeout=WAIT):
        return self.wait_for(f"the app to show an error ({what})", lambda d: self.error_text(), timeout)

    def el(self, element_id):
        found = self.driver.find_elements("id", element_id)
        self.check(found, f"no #{element_id} in the page")
        return found[0]

    def text(self, element_id):
        return (self.driver.execute_script(
            "const e = document.getElementById(arguments[0]); return e ? (e.innerText || e.textContent || '') : null;",
            element_id) or "").strip()

    def type_into(self, element_id, value):
        el = self.el(element_id)
        self.check(el.is_displayed(), f"#{element_id} is not visible")
        el.clear()
        el.send_keys(value)

    def press(self, element_id):
        el = self.el(element_id)
        self.check(el.is_displayed() and el.is_enabled(), f"#{element_id} cannot be pressed")
        el.click()

    def shot(self, screen):
        """phone-app-<screen>.png, the phone's whole viewport, into the screenshots directory."""
        path = os.path.join(self.shots, f"phone-app-{screen}.png")
        time.sleep(0.3)  # fonts and layout settle
        self.driver.save_screenshot(path)
        self.check(os.path.getsize(path) > 1000, f"the screenshot {path} is empty")
        step("screenshot", path=path)
        return path

    def open_app(self, fragment=""):
        """Opens /app/ (with a fragment): a fresh document each time."""
        self.driver.get("about:blank")
        self.driver.get(self.base + "/app/" + fragment)

    def page_checks(self, where):
        problems = self.csp_problems()
        self.check(not problems, f"{where}: the browser blocked something (CSP or integrity): {problems}")

    # --- 0: the shell, its policy, its service worker ------------------------------------------

    def shell(self):
        self.open_app()
        self.wait_screen("welcome")
        page = self.driver.execute_script(PAGE_JS)
        step("app loaded", page=page)
        self.check(page["inline"] == 0, f"the app has {page['inline']} inline script(s)")
        self.check(not page["handlers"], f"the app has inline event handlers: {page['handlers']}")
        self.check(page["resources"], "the app names no script")
        for r in page["resources"]:
            self.check(r["integrity"].startswith("sha384-"), f"{r['src']} has no sha384 integrity: {r}")
        self.check(page["secure"], "the page is not a secure context")
        self.check(page["width"] == PHONE["width"] and page["ratio"] == PHONE["pixelRatio"],
                   f"the viewport is not the phone's (the app needs <meta name=viewport>): {page}")
        if not page["manifest"]:
            self.missing.append("no <link rel=manifest> in /app/")
        sw = self.wait_for("the service worker to be active",
                           lambda d: (lambda r: r if r.get("active") == "activated" else None)(
                               d.execute_async_script(SW_JS)), timeout=WAIT)
        step("service worker active", sw=sw)
        self.page_checks("the welcome screen")
        self.shot("welcome")
        self.covered.append("shell: no inline script or handler, sha384 integrity on every script and "
                            "style sheet (and CSP/SRI bytes checked by the Rust side), service worker active")

    # --- 1: an activation for another server ----------------------------------------------------

    def activation_elsewhere(self):
        """The link of another origin is refused, on the welcome screen or at the latest when
        enrolling; the code stays unused."""
        cfg = self.cfg
        self.open_app()
        self.wait_screen("welcome")
        self.type_into("activation-link", cfg["activation_elsewhere"])
        self.press("start-enrol")
        self.wait_for("an error or the passcode screen",
                      lambda d: self.error_text() or self.screen() == ["passcode-new"])
        if not self.error_text():
            # Refused only when it matters: at enrolment, before anything is sent.
            self.type_into("new-passcode", cfg["passcode"])
            self.type_into("new-passcode-again", cfg["passcode"])
            self.press("enrol")
            self.wait_error("enrolling with another server's link", timeout=ENROL_WAIT)
            note("a link for another origin is refused only at enrolment, not when it is entered")
        err = self.error_text()
        self.shot("error-other-server")
        code = ask("code", url=cfg["activation"])
        self.check(not code["used"], f"the activation was used through a link of another origin: {code}")
        self.check(self.screen() != ["home"], "the app enrolled with another server's link")
        step("another server's link refused", error=err)
        self.covered.append(f"an activation link of another origin is refused ({err!r}), the code unused")

    # --- 2: enrolment ----------------------------------------------------------------------------

    def enrol(self):
        cfg = self.cfg
        fragment = "#" + cfg["activation"].split("#", 1)[1]
        self.open_app(fragment)
        self.wait_screen("passcode-new")
        link = self.el("activation-link").get_attribute("value") if self.driver.find_elements("id", "activation-link") else None
        step("activation link opened", link_field=link)
        self.shot("passcode-new")
        # Too short first: the app says so and sends nothing.
        self.type_into("new-passcode", "1234")
        self.type_into("new-passcode-again", "1234")
        self.press("enrol")
        self.wait_error("a four-digit passcode")
        step("a short passcode refused", error=self.error_text())
        card = ask("card", card=cfg["card"])
        self.check(card["state"] != "active", f"a four-digit passcode enrolled the card: {card}")

        self.type_into("new-passcode", cfg["passcode"])
        self.type_into("new-passcode-again", cfg["passcode"])
        started = time.time()
        self.press("enrol")
        self.wait_for("the enrolment to finish (result, home screen or error)",
                      lambda d: self.screen() in (["home"], ["result"]) or self.error_text(), timeout=ENROL_WAIT)
        self.check(not self.error_text() and self.screen() in (["home"], ["result"]), "enrolment failed")
        took = time.time() - started
        if self.screen() == ["result"]:
            step("enrolled", result=self.text("result-message"))
            self.shot("result-enrolled")
            self.press("result-done")
            self.wait_screen("home")
        self.wait_for("the status screen to show the UID", lambda d: cfg["uid"] in self.text("status-uid"))
        name = self.text("status-name")
        self.check(cfg["given_name"] in name and cfg["family_name"] in name,
                   f"#status-name is {name!r}, expected {cfg['given_name']} {cfg['family_name']}")
        status = {k: self.text("status-" + k) for k in
                  ["name", "uid", "card", "server", "version", "certificates", "channel"]}
        step("enrolled", seconds=round(took, 1), status=status)
        self.check(status["card"], "#status-card is empty")
        if cfg["card"] not in status["card"]:
            note(f"#status-card shows {status['card']!r}, not the card id {cfg['card']}")
        self.check(self.base.split("//", 1)[1] in status["server"], f"#status-server is {status['server']!r}")
        self.check(status["version"], "#status-version is empty")
        self.check(status["certificates"], "#status-certificates is empty")
        self.wait_for("the device channel to listen",
                      lambda d: self.text("status-channel").startswith("listening"), timeout=WAIT)
        self.page_checks("the status screen")
        self.shot("home")
        card = ask("card", card=cfg["card"])
        self.check(card["state"] == "active", f"the server has the card {card['state']}: {card}")
        self.check(card["platform"] == "web", f"the card's device has platform {card['platform']!r}: {card}")
        self.check(card["simulated"] is False, f"the app enrolled as a simulated phone: {card}")
        self.check(card["app_version"] and card["app_version"] in status["version"],
                   f"the server saw app version {card['app_version']!r}, the app shows {status['version']!r}")
        step("the server has the card active on a web device", card=card)
        self.covered.append(f"enrol by activation link in {took:.1f} s: status shows UID and name; card active, "
                            "platform web, not simulated; a short passcode refused")

    # --- 3: sign-ins ------------------------------------------------------------------------------

    def open_signin(self, why):
        opened = ask("open")
        self.check(opened.get("ok"), f"the workstation cannot open a sign-in ({why}): {opened}")
        step("the workstation opened a sign-in", why=why, number=opened["number"])
        self.wait_screen("signin")
        return opened

    def outcome(self, opened, wait=20, agent=None):
        """What the workstation gets; with the real agent, also what it said (`agent`: the event
        expected, signed-in or sign-in-failed)."""
        out = ask("outcome", request_id=opened["request_id"], wait=wait)
        if agent and "agent_event" in out:
            self.check(out["agent_event"].get("event") == agent,
                       f"`vsc agent login` said {out['agent_event']}, expected {agent}: {out}")
        return out

    def approve(self):
        cfg = self.cfg
        opened = self.open_signin("approve")
        number = "%02d" % opened["number"]
        shown = {k: self.text("signin-" + k) for k in ["client", "organisation", "address", "time-left"]}
        step("the sign-in request on the phone", shown=shown)
        everything = " ".join(shown.values())
        self.check(cfg["workstation"] in everything, f"the request does not name the workstation {cfg['workstation']}")
        self.check(cfg["client_address"] in shown["address"],
                   f"the request does not show the address {cfg['client_address']} the workstation connected from")
        self.check(any(c.isdigit() for c in shown["time-left"]), "the request shows no time left")
        self.page_checks("the sign-in screen")
        self.shot("signin")

        # A wrong passcode: refused with the server's count, counted in the audit log.
        self.type_into("signin-number", number)
        self.type_into("signin-passcode", cfg["wrong_passcode"])
        self.press("signin-approve")
        err = self.wait_error("a wrong passcode", timeout=60)
        failures = ask("passcode_failures")
        self.check(len(failures["failed"]) == 1, f"the server counted {len(failures['failed'])} wrong passcodes: {failures}")
        self.check('"consecutive_failures":1' in failures["failed"][0]["detail"].replace(" ", ""),
                   f"the wrong passcode's audit event: {failures['failed'][0]}")
        self.check("2" in err or "two" in err.lower(),
                   f"the app's message for a wrong passcode does not give the 2 tries the server said are left: {err!r}")
        self.shot("signin-wrong-passcode")
        state = self.outcome(opened, wait=0)
        self.check(state.get("db_state") == "pending", f"after a wrong passcode the request is {state}")
        step("a wrong passcode refused and counted", error=err)

        # The right passcode: approved; the workstation collects a ticket for the clinician.
        if self.screen() != ["signin"]:
            note(f"after a wrong passcode the app left the sign-in screen for {self.screen()}")
            self.wait_screen("signin", fail_on_error=False)
        self.type_into("signin-number", number)
        self.type_into("signin-passcode", cfg["passcode"])
        self.press("signin-approve")
        self.wait_for("the result of the approval", lambda d: self.screen() == ["result"], timeout=60)
        message = self.text("result-message")
        out = self.outcome(opened, agent="signed-in")
        self.check(out.get("state") == "collected" and out.get("ticket") and out.get("agent_key"),
                   f"the workstation's sign-in did not complete: {out}")
        self.check(out["validated"].get("uid") == cfg["uid"], f"the ticket validates as {out['validated']}")
        self.shot("result")
        self.press("result-done")
        self.wait_screen("home", fail_on_error=False)
        step("approved: the workstation signed in", result=message)
        self.covered.append("sign-in approved with the number after a wrong passcode (refused with the server's "
                            "count, audited): the workstation collected a ticket that validates for the clinician")

    def decline(self):
        opened = self.open_signin("decline")
        self.press("signin-decline")
        self.wait_for("the app to leave the sign-in screen", lambda d: self.screen() != ["signin"], timeout=WAIT)
        out = self.outcome(opened, agent="sign-in-failed")
        self.check(out.get("state") == "declined" and not out.get("ticket"),
                   f"a declined sign-in ended {out}")
        if self.screen() == ["result"]:
            self.press("result-done")
        self.wait_screen("home", fail_on_error=False)
        step("declined: the workstation's sign-in failed", outcome=out["state"])
        self.covered.append("sign-in declined: the workstation sees declined, no ticket")

    def wrong_number(self):
        """A number that is not the workstation's: the server refuses the approval and fails the
        request; the app says so with the server's message."""
        cfg = self.cfg
        opened = self.open_signin("wrong number")
        self.type_into("signin-number", "%02d" % ((opened["number"] + 1) % 100))
        self.type_into("signin-passcode", cfg["passcode"])
        self.press("signin-approve")
        self.wait_for("the app to answer a wrong number",
                      lambda d: self.screen() != ["signin"] or self.error_text(), timeout=60)
        message = self.text("result-message") if self.screen() == ["result"] else self.error_text()
        self.check("not the number the workstation shows" in message,
                   f"the app's answer to a wrong number is not the server's message: {message!r}")
        self.shot("result-wrong-number")
        out = self.outcome(opened, agent="sign-in-failed")
        self.check(out.get("state") == "failed" and not out.get("ticket"),
                   f"a wrong number ended the sign-in as {out}")
        if self.screen() == ["result"]:
            self.press("result-done")
        self.wait_screen("home", fail_on_error=False)
        step("a wrong number refused: the workstation's sign-in failed", message=message)
        self.covered.append("a wrong number: refused with the server's message, the workstation sees failed")

    def not_me(self):
        opened = self.open_signin("I didn't do this")
        self.press("signin-not-me")
        self.wait_for("the app to leave the sign-in screen", lambda d: self.screen() != ["signin"], timeout=WAIT)
        out = self.outcome(opened, agent="sign-in-failed")
        self.check(out.get("state") == "reported" and not out.get("ticket"),
                   f"\"I didn't do this\" ended the sign-in as {out}")
        alerts = ask("alerts")["alerts"]
        self.check(len(alerts) == 1 and opened["request_id"] in alerts[0]["detail"]
                   and alerts[0]["subject"] == self.cfg["uid"],
                   f"the server's alerts after \"I didn't do this\": {alerts}")
        after = ask("open", via="api")
        self.check(not after.get("ok") and after.get("code") == "card_blocked",
                   f"after \"I didn't do this\" the workstation could open another sign-in: {after}")
        if self.screen() == ["result"]:
            self.shot("result-not-me")
            self.press("result-done")
        self.wait_screen("home", fail_on_error=False)
        step("reported: the workstation's sign-in failed, the server alerted", outcome=out["state"])
        self.covered.append("\"I didn't do this\": the workstation sees reported, alert.not_me audited, "
                            "the next sign-in refused (card_blocked)")

    # --- 3b: a prescription batch (round 2) ----------------------------------------------------

    def items_shown(self):
        """The signing screen's items: [{id, text, unverified}]."""
        return self.driver.execute_script("""
return [...document.querySelectorAll('#signing-items li.signing-item')].map(li => ({
  id: li.dataset.id, text: (li.innerText || li.textContent || ''),
  unverified: /unverified/i.test(li.className + ' ' + (li.innerText || ''))}));
""") or []

    def finish_result(self, what, timeout=60):
        """After an approval: the result screen (then home) or straight home; an error fails."""
        self.wait_for(f"the result of {what}", lambda d: self.screen() in (["result"], ["home"])
                      or self.error_text(), timeout=timeout)
        self.check(not self.error_text(), f"{what} failed in the app")
        message = self.text("result-message") if self.screen() == ["result"] else ""
        if self.screen() == ["result"]:
            self.press("result-done")
        self.wait_screen("home", fail_on_error=False)
        return message

    def session(self):
        """A sign-in whose agent stays running: the session that signs prescriptions and
        presents the virtual card."""
        cfg = self.cfg
        self.set_card_pin()
        opened = ask("session_open")
        if not opened.get("ok") and opened.get("skip"):
            return opened
        self.check(opened.get("ok"), f"the agent cannot open the session's sign-in: {opened}")
        if opened.get("card_skipped"):
            note(f"the card operation is skipped: {opened['card_skipped']}")
        self.wait_screen("signin")
        self.type_into("signin-number", "%02d" % opened["number"])
        self.type_into("signin-passcode", cfg["passcode"])
        self.press("signin-approve")
        self.finish_result("the session's sign-in")
        ready = ask("session_ready", request_id=opened["request_id"])
        self.check(ready.get("ok"), f"the agent's session did not start: {ready}")
        step("a signed-in session at the workstation (vsc agent login, kept running)")
        return opened

    def set_card_pin(self):
        """The card PIN the agent asks for when the virtual card is used, set on the home screen
        (#pin-new, #pin-again, #pin-set -> POST /api/v1/device/card-pin): first a malformed one
        and two that differ (refused by the app), then the real one."""
        cfg = self.cfg
        self.wait_screen("home", fail_on_error=False)
        self.type_into("pin-new", "1234")
        self.type_into("pin-again", "1234")
        self.press("pin-set")
        self.wait_error("a four-digit card PIN refused")
        self.check("6 to 8 digits" in self.error_text(), f"a four-digit PIN: the app says {self.error_text()!r}")
        self.type_into("pin-new", cfg["card_pin"])
        self.type_into("pin-again", cfg["card_pin"][::-1])
        self.press("pin-set")
        self.wait_for("two different PINs refused", lambda d: "differ" in self.error_text(), timeout=WAIT)
        before = ask("card", card=cfg["card"])
        self.check(not before.get("pin_set"), f"the server has a card PIN after refused ones: {before}")
        self.type_into("pin-new", cfg["card_pin"])
        self.type_into("pin-again", cfg["card_pin"])
        self.press("pin-set")
        self.wait_for("the card PIN set", lambda d: "PIN set" in self.text("pin-state") or self.error_text(),
                      timeout=WAIT)
        self.check(not self.error_text(), "setting the card PIN failed in the app")
        after = ask("card", card=cfg["card"])
        self.check(after.get("pin_set"), f"the app says the card PIN is set; the server has none: {after}")
        step("the card PIN set in the app", state=self.text("pin-state"))
        self.covered.append("card PIN set on the home screen (#pin-set): a four-digit PIN and two different PINs "
                            "refused by the app, then the server has the PIN the agent's card asks for")

    def prescriptions(self):
        opened = self.session()
        if opened.get("skip"):
            note(f"prescription batch and card operation skipped: {opened['skip']}")
            self.missing.append("prescription batch: " + opened["skip"])
            return False
        # A batch of three (RS1), then one with special characters (RS256), signed through the
        # agent's EPS API.
        self.sign_batch("RS1", "batch", shot=True)
        self.sign_batch("RS256", "special")
        self.decline_batch()
        return True

    def sign_batch(self, algorithm, which, shot=False):
        cfg = self.cfg
        batch = ask("eps_start", algorithm=algorithm, set=which)
        self.check(batch.get("ok"), f"the batch did not reach the phone's server: {batch}")
        self.check(not batch["refused"], f"the core refuses items of the corpus batch: {batch['refused']}")
        self.wait_screen("signing", timeout=30)
        count = self.text("signing-count")
        self.check(str(batch["count"]) in count and "prescription" in count.lower(),
                   f"#signing-count is {count!r}, the batch has {batch['count']} prescriptions")
        header = self.text("signing-header")
        for line in batch["header"]:
            if norm(line) not in norm(header):
                note(f"#signing-header lacks the core's header line {line!r}: {header!r}")
        shown = self.items_shown()
        self.check([i["id"] for i in shown] == [i["id"] for i in batch["items"]],
                   f"#signing-items shows {[i['id'] for i in shown]}, the batch is "
                   f"{[i['id'] for i in batch['items']]}")
        for want, got in zip(batch["items"], shown):
            text = norm(got["text"])
            self.check(want["medication"], f"the core rendered no medication lines for {want['id']}: {want}")
            for line in want["medication"]:
                self.check(norm(line) in text, f"item {want['id']}: the medication line {line!r} is not shown; "
                           f"the item shows {got['text']!r}")
            self.check(want["prescriber"] and norm(want["prescriber"]) in text,
                       f"item {want['id']}: the prescriber {want['prescriber']!r} is not shown: {got['text']!r}")
            missing = [l for l in want["lines"] if norm(l) not in text]
            if missing:
                note(f"item {want['id']}: the core's lines not shown: {missing}")
            self.check(not got["unverified"], f"item {want['id']} is marked unverified: {got['text']!r}")
        step("the batch on the phone", count=count, items=len(shown))
        self.page_checks("the signing screen")
        if shot:
            # The screenshot from the top (the header, the count, the first prescription).
            self.driver.execute_script(
                "document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
            self.shot("signing")
        self.type_into("signing-passcode", cfg["passcode"])
        self.press("signing-approve")
        message = self.finish_result("approving the batch", timeout=90)
        out = ask("eps_result")
        self.check(out.get("ok") and out.get("status") == 200,
                   f"the agent's /v1/eps/sign did not succeed: {out}")
        self.check(out["signed"] == batch["count"] and not out["failed_signatures"],
                   f"the agent signed {out['signed']} of {batch['count']}: {out}")
        self.check(out["verify"]["ok"], f"`vsc eps verify` refuses the signed batch: {out['verify']['output']}")
        bad = [i for i in out["independent"] if not i["ok"]]
        self.check(not bad, f"the independent check (libxml2 C14N + OpenSSL) refuses: {bad}")
        self.check(out.get("db_state") == "completed", f"the signing request ended {out.get('db_state')}")
        step("the batch signed: vsc eps verify and the independent check pass", result=message,
             algorithm=algorithm)
        self.covered.append(f"a batch of {batch['count']} prescription(s) ({which}) from the agent's EPS API "
                            f"({algorithm}): the signing screen shows the count, each item's medication lines and "
                            "prescriber as the core renders them; approved with the passcode; the signed "
                            "prescriptions pass `vsc eps verify` (CA + CRL) and the independent libxml2 C14N + "
                            "OpenSSL check")

    def decline_batch(self):
        """A batch declined: the agent's call fails with the server's state."""
        batch = ask("eps_start", algorithm="RS1", decline=True)
        self.check(batch.get("ok"), f"the batch to decline did not reach the phone's server: {batch}")
        self.wait_screen("signing", timeout=30)
        count = self.text("signing-count")
        self.check(str(batch["count"]) in count, f"#signing-count is {count!r} for a batch of {batch['count']}")
        self.press("signing-decline")
        self.wait_for("the app to leave the signing screen", lambda d: self.screen() != ["signing"]
                      or self.error_text(), timeout=WAIT)
        self.check(not self.error_text(), "declining the batch failed in the app")
        out = ask("eps_result")
        answer = json.dumps(out.get("answer"))
        self.check(out.get("status") == 403 and "signing_declined" in answer and out.get("db_state") == "declined",
                   f"a declined batch: the agent answered {out}")
        if self.screen() == ["result"]:
            self.press("result-done")
        self.wait_screen("home", fail_on_error=False)
        step("a batch declined: the agent's call failed", answer=out.get("answer"))
        self.covered.append("a batch declined with #signing-decline: the agent's API answers 403 signing_declined, "
                            "the server's request is declined")

    # --- 3c: a card operation (round 2) ----------------------------------------------------------

    def card_operation(self):
        cfg = self.cfg
        started = ask("card_start")
        if started.get("skip"):
            note(f"the card operation is skipped: {started['skip']}")
            self.missing.append("card operation: " + started["skip"])
            return
        self.check(started.get("ok"), f"pkcs11-tool's signature did not reach the phone's server: {started}")
        self.wait_screen("card", timeout=30)
        shown = {k: self.text("card-" + k) for k in ["workstation", "slot", "purpose"]}
        step("the card operation on the phone", shown=shown)
        self.check(cfg["workstation"] in shown["workstation"],
                   f"#card-workstation is {shown['workstation']!r}, the workstation is {cfg['workstation']}")
        self.check(shown["slot"].lower() == started["slot"],
                   f"#card-slot is {shown['slot']!r}, the operation is for slot {started['slot']}")
        self.check(shown["purpose"], "#card-purpose is empty")
        self.page_checks("the card screen")
        self.shot("card")
        self.type_into("card-passcode", cfg["passcode"])
        self.press("card-approve")
        message = self.finish_result("approving the card operation", timeout=60)
        out = ask("card_result")
        self.check(out.get("ok") and out.get("signed"), f"pkcs11-tool did not sign: {out}")
        self.check(out["verified"] and out["other_refused"],
                   f"the card's signature does not verify with openssl against its 9A certificate: {out}")
        step("pkcs11-tool signed with 9A; openssl verifies it", result=message)
        self.covered.append("a card operation: pkcs11-tool --sign with the 9A key through OpenSC/pcscd/vpcd; the card "
                            "screen shows the workstation and slot; approved with the passcode; the signature verifies "
                            "with openssl against the 9A certificate read through OpenSC")

    # --- 3d: lock and RA unlock (round 2) -------------------------------------------------------

    def lock_and_unlock(self):
        cfg = self.cfg
        ask("session_end")
        opened = self.open_signin("three wrong passcodes")
        number = "%02d" % opened["number"]
        for attempt in (1, 2, 3):
            if self.screen() != ["signin"]:
                self.wait_screen("signin", fail_on_error=False)
            self.type_into("signin-number", number)
            self.type_into("signin-passcode", cfg["wrong_passcode"])
            self.press("signin-approve")
            if attempt < 3:
                err = self.wait_error(f"wrong passcode {attempt}", timeout=60)
                self.check(self.screen() != ["locked"], f"the card locked after {attempt} wrong passcode(s)")
                step(f"wrong passcode {attempt} refused", error=err)
        self.wait_screen("locked", timeout=60, fail_on_error=False)
        card = ask("card", card=cfg["card"])
        self.check(card["state"] == "locked", f"after three wrong passcodes the server has the card {card['state']}")
        failures = ask("passcode_failures")
        self.check(any('"card_locked":true' in f["detail"].replace(" ", "") for f in failures["failed"]),
                   f"the server's audit of the wrong passcodes: {failures}")
        self.page_checks("the locked screen")
        self.shot("locked")
        step("three wrong passcodes: the card is locked", error=self.error_text())
        # The lock fails the sign-in that was waiting: the workstation hears at once (not at
        # the request's expiry), and it does not come back to the phone after the unlock.
        out = self.outcome(opened, wait=10, agent="sign-in-failed")
        self.check(out.get("state") == "failed" and not out.get("ticket"),
                   f"the sign-in waiting when the card locked ended {out}")
        step("the lock failed the waiting sign-in", outcome=out["state"])
        self.covered.append("a sign-in waiting when the card locks fails with the lock")

        unlock = ask("ra_unlock")
        self.check(unlock.get("ok"), f"the RA could not issue an unlock code: {unlock}")
        # The person opens the app again later: it still knows the card is locked.
        self.open_app()
        self.wait_for("the locked screen after reopening the app", lambda d: self.screen() == ["locked"],
                      timeout=15)
        step("reopened, the app shows the locked screen")
        # The RA's unlock link, opened on the phone (/unlock#code=…&fp=… becomes
        # /app/#unlock=1&code=…&fp=…), fills the code in.
        self.open_app("#unlock=1&" + unlock["url"].split("#", 1)[1])
        self.wait_screen("locked", fail_on_error=False)
        filled = self.el("unlock-code").get_attribute("value")
        self.check(filled.replace("-", "").upper() == unlock["code"].replace("-", "").upper(),
                   f"the unlock link filled in {filled!r}, the RA's code is {unlock['code']!r}")
        step("the unlock link fills the RA's code in", code=filled)
        self.type_into("unlock-passcode", cfg["new_passcode"])
        self.type_into("unlock-passcode-again", cfg["new_passcode"])
        self.press("unlock-submit")
        self.wait_for("the unlock to finish", lambda d: self.screen() in (["result"], ["home"])
                      or self.error_text(), timeout=ENROL_WAIT)
        self.check(not self.error_text(), "the RA unlock failed in the app")
        message = self.text("result-message") if self.screen() == ["result"] else ""
        if self.screen() == ["result"]:
            self.press("result-done")
        self.wait_screen("home", fail_on_error=False)
        card = ask("card", card=cfg["card"])
        self.check(card["state"] == "active", f"after the unlock the server has the card {card['state']}")
        step("unlocked with the RA's code and a new passcode", result=message)

        # A new sign-in: the old passcode is refused, the new one approves.
        opened = self.open_signin("after the unlock")
        number = "%02d" % opened["number"]
        self.type_into("signin-number", number)
        self.type_into("signin-passcode", cfg["passcode"])
        self.press("signin-approve")
        err = self.wait_error("the old passcode after the unlock", timeout=60)
        self.check(self.screen() != ["result"], "the old passcode was accepted after the unlock")
        if self.screen() != ["signin"]:
            self.wait_screen("signin", fail_on_error=False)
        self.type_into("signin-number", number)
        self.type_into("signin-passcode", cfg["new_passcode"])
        self.press("signin-approve")
        self.wait_for("the result of the approval with the new passcode",
                      lambda d: self.screen() == ["result"], timeout=60)
        out = self.outcome(opened, agent="signed-in")
        self.check(out.get("state") == "collected" and out.get("ticket"),
                   f"the sign-in with the new passcode did not complete: {out}")
        self.press("result-done")
        self.wait_screen("home", fail_on_error=False)
        cfg["passcode"] = cfg["new_passcode"]
        step("after the unlock: the old passcode refused, the new one signs in", error=err)
        self.covered.append("three wrong passcodes lock the card (the locked screen, the server's card locked); the "
                            "RA's unlock code with a new passcode in the app unlocks it; the old passcode is then "
                            "refused and the new one signs in")

    # --- 4: one person per device ------------------------------------------------------------------

    def second_person(self):
        cfg = self.cfg
        fragment = "#" + cfg["second_activation"].split("#", 1)[1]
        # As the person does: the letter's link opens the server's landing page, whose "Set up in
        # this browser" link carries the code into the app.
        self.driver.get("about:blank")
        self.driver.get(cfg["second_activation"])
        wanted = self.base + "/app/" + fragment
        self.wait_for("the landing page's link to the app with the code",
                      lambda d: (d.find_elements("id", "open-app") or [None])[0] is not None
                      and d.find_element("id", "open-app").get_attribute("href") == wanted)
        self.shot("activate-landing")
        # Its strict CSP allows its script (the link above) and its style sheet (by hash) and
        # blocks nothing else.
        problems = self.csp_problems()
        self.check(not problems, f"the /activate landing page: the browser blocked {problems}")
        colour = self.driver.execute_script(
            "return getComputedStyle(document.getElementById('open-app')).backgroundColor")
        self.check(colour == "rgb(0, 94, 184)", f"the landing page's style sheet did not apply ({colour})")
        self.driver.find_element("id", "open-app").click()
        self.wait_for("a refusal of a second person's activation",
                      lambda d: self.error_text() or self.screen() == ["passcode-new"], timeout=WAIT)
        err = self.error_text()
        if self.screen() == ["passcode-new"]:
            # Warned or not, pressing on must be refused too.
            self.type_into("new-passcode", cfg["passcode"])
            self.type_into("new-passcode-again", cfg["passcode"])
            self.press("enrol")
            self.wait_for("a refusal when enrolling a second person anyway",
                          lambda d: self.error_text() or self.screen() == ["home"], timeout=ENROL_WAIT)
            self.check(self.screen() != ["home"] or self.error_text(),
                       "the app enrolled a second person on a phone that holds a card")
            err = err or self.error_text()
            self.shot("error-second-person")
            step("pressing on with a second person's activation refused", error=self.error_text())
        self.check(err, "no refusal of a second person's activation")
        code = ask("code", url=cfg["second_activation"])
        self.check(not code["used"], f"the enrolled phone redeemed a second person's activation: {code}")
        step("a second person's activation refused", error=err)
        self.covered.append(f"the /activate landing page's link opens the app with the code; one person per "
                            f"device: a second activation is refused ({err!r})")

    # --- 4b: a second phone enrols by scanning the letter's QR code -------------------------------

    def scan_enrol(self):
        """Another clinician's phone (a fresh browser whose camera shows the activation QR code):
        "Scan the QR code" reads it (BarcodeDetector where the browser has it, the core's decoder
        otherwise) and enrolment goes on as with the link."""
        qr = self.cfg["qr"]
        first, first_console = self.driver, self.console
        self.start_browser(["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                            "--use-file-for-fake-video-capture=" + qr["video"]])
        try:
            self.open_app()
            self.wait_screen("welcome")
            detector = self.driver.execute_script("return 'BarcodeDetector' in window")
            self.press("scan-qr")
            self.wait_for("the camera preview", lambda d: d.execute_script(
                "const v = document.getElementById('scanner-video');"
                "return v && v.videoWidth > 0 && !document.getElementById('scanner').hidden") or
                self.screen() == ["passcode-new"], timeout=WAIT)
            if self.screen() == ["welcome"]:
                path = self.shot("scan-qr")
                if self.screen() != ["welcome"]:
                    os.remove(path)  # decoded meanwhile: the picture is of the next screen
                    note("the QR code was read before the scanner's screenshot was taken")
            self.wait_screen("passcode-new", timeout=40)
            link = self.el("activation-link").get_attribute("value")
            self.check(link == qr["activation"], f"the scanned link is {link!r}, the QR code holds {qr['activation']!r}")
            step("the QR code read by the camera", decoder="BarcodeDetector" if detector else "the core (rqrr)")
            self.type_into("new-passcode", self.cfg["passcode"])
            self.type_into("new-passcode-again", self.cfg["passcode"])
            self.press("enrol")
            self.wait_for("the enrolment to finish", lambda d: self.screen() in (["home"], ["result"])
                          or self.error_text(), timeout=ENROL_WAIT)
            self.check(not self.error_text(), "enrolment by the scanned QR code failed")
            if self.screen() == ["result"]:
                self.press("result-done")
            self.wait_for("the status screen to show the UID", lambda d: qr["uid"] in self.text("status-uid"))
            name = self.text("status-name")
            self.check(qr["given_name"] in name and qr["family_name"] in name, f"#status-name is {name!r}")
            card = ask("card", card=qr["card"])
            self.check(card["state"] == "active" and card["platform"] == "web",
                       f"the scanned activation left the card {card}")
            self.page_checks("the second phone")
            step("a second phone enrolled by scanning the QR code", uid=qr["uid"])
            self.covered.append("enrol by scanning the activation QR code with the camera (fake camera showing the "
                                "letter's QR code; " + ("BarcodeDetector" if detector else "the core's decoder")
                                + ")")
        finally:
            self.driver.quit()
            self.drivers.remove(self.driver)
            self.driver, self.console = first, first_console

    # --- 4b: the approved-version policy ------------------------------------------------------------

    def version_policy(self):
        """An RA withdraws this version of the web app: its next device token is refused and the
        app says why; allowed again, it listens again."""
        denied = ask("deny_app_version")
        self.check(denied.get("ok"), f"the RA could not deny the app's version: {denied}")
        self.open_app()
        err = self.wait_error("the withdrawn version", timeout=WAIT)
        version = self.text("status-version")
        self.check(f"web {version}" in err and "withdrawn" in err,
                   f"with version {version} denied the app says {err!r}")
        self.shot("error-version")
        removed = ask("remove_version_rule", rule=denied["rule"])
        self.check(removed.get("ok"), f"the RA could not remove the rule: {removed}")
        self.open_app()
        self.wait_for("the device channel to listen again",
                      lambda d: self.text("status-channel").startswith("listening"), timeout=WAIT)
        step("the approved-version policy applies to the web app", refused=err)
        self.covered.append("the approved-version policy applies to the web app: a denied version gets no "
                            "device token and the app shows the server's reason; allowed again, it listens")

    # --- 5: offline ---------------------------------------------------------------------------------

    def offline(self):
        cfg = self.cfg
        self.open_app()
        self.wait_screen("home", fail_on_error=False)
        self.driver.execute_cdp_cmd("Network.enable", {})
        self.driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        send({"event": "stop_server"})
        self.check(recv().get("ok"), "the test did not stop the server")
        self.driver.refresh()
        self.wait_for("the status screen from the offline shell",
                      lambda d: self.screen() == ["home"] and cfg["uid"] in self.text("status-uid"), timeout=WAIT)
        sw = self.driver.execute_async_script(SW_JS)
        self.check(sw.get("controlled"), f"offline, the page is not controlled by the service worker: {sw}")
        channel = self.text("status-channel")
        if channel != "offline":
            note(f"offline, #status-channel says {channel!r} (the contract: 'offline')")
        self.shot("home-offline")
        step("offline shell shows the status screen", channel=channel)
        self.covered.append("offline: network off and server stopped, a reload shows the status screen from "
                            "the service worker")

    def run(self):
        self.start_browser()
        step("browser started", version=self.driver.capabilities.get("browserVersion"),
             workstation=self.cfg["workstation_kind"])
        self.shell()
        self.activation_elsewhere()
        self.enrol()
        self.approve()
        self.decline()
        self.wrong_number()
        if self.prescriptions():
            self.card_operation()
        self.lock_and_unlock()
        self.not_me()
        self.second_person()
        self.scan_enrol()
        self.version_policy()
        self.offline()


def main():
    phone = None
    try:
        cfg = recv()["config"]
        phone = Phone(cfg)
        phone.run()
        send({"event": "done", "covered": phone.covered, "missing": phone.missing})
    except Exception as e:  # noqa: BLE001 - every failure goes back to the test, readable
        where = ""
        if phone is not None and phone.driver is not None:
            try:
                path = os.path.join(phone.cfg["failures"], "failure.png")
                phone.driver.save_screenshot(path)
                where = f" (screenshot {path})"
            except Exception:  # noqa: BLE001
                pass
        send({"event": "error", "message": f"{type(e).__name__}: {e}{where}"})
    finally:
        if phone is not None:
            phone.close()


if __name__ == "__main__":
    main()
