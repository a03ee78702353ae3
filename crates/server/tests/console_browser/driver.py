#!/usr/bin/env python3
"""The RA console (/ra) in a real headless Chromium, driven over WebDriver (selenium).

Run by crates/server/tests/console_browser/main.rs, which owns the server and the phones. They
talk over stdin/stdout, one JSON object per line:

  test -> driver  {"config": {...}}                          server, browser, people, what to do
  driver -> test  {"event": "number", "who": W, "number": N, "why": ...}
                                                             the number a page shows for W's phone
  test -> driver  {"approved": true}                         W's phone approved with N
  driver -> test  {"event": "activation", "url": U, "card": C}
                                                             the activation decoded from the QR
  test -> driver  {"enrolled": true, "card": C}              a new phone enrolled with U
  driver -> test  {"event": "check", "what": ..., ...}       the test looks at the server's state
  test -> driver  {"ok": true, ...}
  driver -> test  {"event": "step", "name": ...}             progress
  driver -> test  {"event": "note", "message": ...}          something worth reporting, not a failure
  driver -> test  {"event": "done", "covered": [...], "missing": [...]}
                  or {"event": "error", "message": ...}

Only what a browser sees: pages, forms, links, the QR code as pixels (decoded with zbarimg).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

WAIT = 20
LAPTOP = (1280, 900)
TABLET = (820, 1180)


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


def note(message):
    send({"event": "note", "message": message})


# Labels for every control a person fills in: a <label for=id>, a wrapping <label>,
# aria-label or aria-labelledby. Returns the controls without one.
UNLABELLED_JS = """
const out = [];
for (const el of document.querySelectorAll('input, select, textarea')) {
  const type = (el.getAttribute('type') || '').toLowerCase();
  if (['hidden', 'submit', 'button', 'reset', 'image'].includes(type)) continue;
  let ok = false;
  if (el.id && document.querySelector('label[for="' + CSS.escape(el.id) + '"]')) ok = true;
  if (el.closest('label')) ok = true;
  if ((el.getAttribute('aria-label') || '').trim()) ok = true;
  const by = el.getAttribute('aria-labelledby');
  if (by && by.split(/\\s+/).every(id => document.getElementById(id))) ok = true;
  if (!ok) out.push(el.outerHTML.slice(0, 160));
}
return out;
"""


# What a screen reader or a person with low vision meets on a page, checked as WCAG 2.2 AA
# states it: the page's language, one h1 and no skipped heading levels, images with text
# alternatives, and a contrast of at least 4.5:1 for text (3:1 for large text) against the
# background it is drawn on. Returns the problems found.
A11Y_JS = """
const out = [];
if (!(document.documentElement.getAttribute('lang') || '').trim()) out.push('<html> has no lang');
const heads = [...document.querySelectorAll('h1, h2, h3, h4, h5, h6')].filter(h => h.getClientRects().length);
if (heads.filter(h => h.tagName === 'H1').length !== 1) out.push('not exactly one visible h1');
let level = 0;
for (const h of heads) {
  const l = Number(h.tagName[1]);
  if (level && l > level + 1) out.push('heading level skipped: ' + h.tagName + ' ' + h.innerText.slice(0, 40) + ' after h' + level);
  level = l;
}
for (const img of document.querySelectorAll('img')) {
  if (!img.hasAttribute('alt')) out.push('img without alt: ' + img.outerHTML.slice(0, 120));
}
for (const svg of document.querySelectorAll('svg')) {
  if (svg.closest('[aria-hidden=true]')) continue;
  const named = (svg.getAttribute('aria-label') || '').trim() || svg.querySelector('title')
    || svg.getAttribute('aria-labelledby');
  if (svg.getAttribute('role') !== 'img' || !named) out.push('svg without role=img and a name');
}
const rgba = c => { const m = c.match(/[\d.]+/g) || [0, 0, 0, 0]; return m.map(Number).concat([1]).slice(0, 4); };
const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); })
  .reduce((a, v, i) => a + v * [0.2126, 0.7152, 0.0722][i], 0);
const background = el => {
  for (let e = el; e; e = e.parentElement) {
    const c = rgba(getComputedStyle(e).backgroundColor);
    if (c[3] > 0) return c;
  }
  return [255, 255, 255, 1];
};
const seen = new Set();
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) {
  const el = walker.currentNode.parentElement;
  if (!walker.currentNode.textContent.trim() || !el || seen.has(el) || !el.getClientRects().length) continue;
  seen.add(el);
  const st = getComputedStyle(el);
  if (st.visibility === 'hidden') continue;
  const fg = lum(rgba(st.color)), bg = lum(background(el));
  const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
  const size = parseFloat(st.fontSize), bold = Number(st.fontWeight) >= 700;
  const need = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
  if (ratio < need) out.push('contrast ' + ratio.toFixed(2) + ':1 < ' + need + ':1 for ' + JSON.stringify(el.innerText.slice(0, 40)));
}
return out;
"""


class Console:
    def __init__(self, cfg):
        self.cfg = cfg
        self.base = cfg["base"]
        self.shots = cfg["screenshots"]
        self.driver = None
        self.profile = None
        self.covered = []
        self.missing = []

    # --- the browser ---------------------------------------------------------------------------

    def start_browser(self):
        options = webdriver.ChromeOptions()
        options.binary_location = self.cfg["chromium"]
        self.profile = tempfile.mkdtemp(prefix="vsc-console-browser-")
        for arg in [
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            # The server's certificate chains to the instance's own root CA.
            "--ignore-certificate-errors",
            "--user-data-dir=" + self.profile,
            "--no-proxy-server",
            "--no-first-run",
            "--disable-background-networking",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--window-size=%d,%d" % LAPTOP,
        ]:
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        self.driver = webdriver.Chrome(service=Service(self.cfg["chromedriver"]), options=options)
        self.driver.set_page_load_timeout(WAIT)
        self.viewport(*LAPTOP)

    def viewport(self, width, height):
        """The page's viewport exactly `width`×`height` (the screenshots' size)."""
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def close(self):
        if self.driver is not None:
            try:
                self.driver.quit()
            except Exception:  # noqa: BLE001 - best effort at the end
                pass
        if self.profile:
            shutil.rmtree(self.profile, ignore_errors=True)

    def navigations(self):
        """The documents the browser requested since the last call: [(method, url)]."""
        seen = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") != "Network.requestWillBeSent":
                continue
            params = message["params"]
            if params.get("type") == "Document" and params["request"]["url"].startswith("http"):
                seen.append((params["request"]["method"], params["request"]["url"]))
        return seen

    def console_problems(self):
        return [
            e["message"]
            for e in self.driver.get_log("browser")
            if "Content Security Policy" in e["message"] or "Refused to" in e["message"]
        ]

    def page_checks(self, where):
        """On every page: nothing blocked by the page's own policy, every control labelled."""
        problems = self.console_problems()
        check(not problems, f"{where}: the browser blocked something: {problems}")
        unlabelled = self.driver.execute_script(UNLABELLED_JS)
        check(not unlabelled, f"{where} ({self.driver.current_url}): form controls without a label: {unlabelled}")
        problems = self.driver.execute_script(A11Y_JS)
        check(not problems, f"{where} ({self.driver.current_url}): accessibility: {problems[:10]}")

    def body_text(self):
        try:
            return self.driver.find_element(By.TAG_NAME, "body").text
        except Exception:  # noqa: BLE001
            return ""

    def wait_for(self, what, condition, timeout=WAIT):
        try:
            return WebDriverWait(self.driver, timeout, ignored_exceptions=[StaleElementReferenceException]).until(
                lambda d: condition(d))
        except Exception as e:  # noqa: BLE001 - reported with where the browser is
            raise Failed(
                f"{type(e).__name__} after at most {timeout} s waiting for {what}; the browser is at "
                f"{self.driver.current_url}; console: {self.console_problems()}; "
                f"page: {self.body_text()[:800]!r}"
            ) from e

    def h1(self):
        # Read in the page, so a navigation in between cannot leave a stale element.
        return (self.driver.execute_script(
            "const h = document.querySelector('h1'); return h ? h.innerText : '';") or "").strip()

    def wait_h1(self, text, what=None):
        return self.wait_for(what or f"a page titled {text!r}", lambda d: self.h1() == text)

    def shot(self, name, element=None):
        """A screenshot into the screenshots directory (docs/screenshots when asked for)."""
        path = os.path.join(self.shots, name)
        time.sleep(0.2)  # fonts and layout settle
        if element is None:
            self.driver.save_screenshot(path)
        else:
            with open(path, "wb") as f:
                f.write(element.screenshot_as_png)
        check(os.path.getsize(path) > 1000, f"the screenshot {path} is empty")
        step("screenshot", path=path)
        return path

    def get(self, path):
        self.driver.get(self.base + path)

    # --- forms, found by their labels as a person finds them ---------------------------------

    def control(self, label_pattern, root=None):
        """The form control whose label matches `label_pattern` (a regular expression)."""
        root = root or self.driver
        rx = re.compile(label_pattern, re.I)
        for label in root.find_elements(By.TAG_NAME, "label"):
            if not rx.search(label.text.strip()):
                continue
            target = label.get_attribute("for")
            if target:
                found = self.driver.find_elements(By.ID, target)
                if found:
                    return found[0]
            inner = label.find_elements(By.CSS_SELECTOR, "input, select, textarea")
            if inner:
                return inner[0]
        for el in root.find_elements(By.CSS_SELECTOR, "input, select, textarea"):
            if rx.search(el.get_attribute("aria-label") or ""):
                return el
        raise Failed(
            f"no form control labelled /{label_pattern}/ at {self.driver.current_url}; labels: "
            f"{[l.text for l in root.find_elements(By.TAG_NAME, 'label')]}"
        )

    def fill(self, label_pattern, value, root=None):
        el = self.control(label_pattern, root)
        if el.tag_name == "select":
            sel = Select(el)
            options = [(o.get_attribute("value"), o.text) for o in sel.options]
            for v, text in options:
                if v == value or text.strip() == value:
                    sel.select_by_value(v)
                    return el
            for v, text in options:
                if value.lower() in text.lower() or value.lower() in (v or "").lower():
                    sel.select_by_value(v)
                    return el
            raise Failed(f"/{label_pattern}/ has no option {value!r}: {options}")
        if el.get_attribute("type") in ("checkbox", "radio"):
            if not el.is_selected():
                el.click()
            return el
        el.clear()
        el.send_keys(value)
        return el

    def tick(self, label_pattern, root=None):
        el = self.control(label_pattern, root)
        if not el.is_selected():
            el.click()
        return el

    def form_of(self, el):
        return el.find_element(By.XPATH, "./ancestor::form[1]")

    def submit(self, form, label_pattern=None):
        buttons = form.find_elements(By.CSS_SELECTOR, "button[type=submit], button:not([type]), input[type=submit]")
        if label_pattern:
            rx = re.compile(label_pattern, re.I)
            buttons = [b for b in buttons if rx.search(b.text or b.get_attribute("value") or "")]
        check(buttons, f"no submit button /{label_pattern}/ in a form at {self.driver.current_url}")
        buttons[0].click()

    def link(self, text_pattern, root=None):
        root = root or self.driver
        rx = re.compile(text_pattern, re.I)
        for a in root.find_elements(By.TAG_NAME, "a"):
            if rx.search(a.text.strip()):
                return a
        return None

    def button(self, text_pattern, root=None):
        root = root or self.driver
        rx = re.compile(text_pattern, re.I)
        for b in root.find_elements(By.CSS_SELECTOR, "button, input[type=submit]"):
            if rx.search((b.text or b.get_attribute("value") or "").strip()):
                return b
        return None

    def open_action(self, link_pattern, what):
        """Follows a link (or presses a button) on the current page that leads to an action."""
        a = self.link(link_pattern)
        if a is not None:
            a.click()
            return
        b = self.button(link_pattern)
        check(b is not None, f"no link or button /{link_pattern}/ for {what} at {self.driver.current_url}: "
              f"{self.body_text()[:600]!r}")
        b.click()

    def alert_text(self):
        found = self.driver.find_elements(By.CSS_SELECTOR, "[role=alert], .error")
        return " ".join(e.text for e in found)

    # --- sign-in -------------------------------------------------------------------------------

    def sign_in(self, who, uid, why):
        """/ra with no session: to the provider's sign-in page, the UID, the number for the
        phone, then the page's own script continues to the dashboard."""
        self.navigations()
        self.get("/ra")
        field = self.wait_for("the sign-in page's UID field", lambda d: d.find_elements(By.ID, "uid"))[0]
        check("/oauth2/signin/" in self.driver.current_url,
              f"/ra did not lead to the sign-in page: {self.driver.current_url}")
        check("vsc RA console" in self.body_text(), f"the sign-in page does not name the console: {self.body_text()[:300]!r}")
        self.page_checks("the sign-in page")
        field.clear()
        field.send_keys(uid)
        self.submit(self.form_of(field))
        shown = self.wait_for("the number", lambda d: d.find_elements(By.CSS_SELECTOR, ".number"))[0]
        number = int(shown.text.strip())
        send({"event": "number", "who": who, "number": number, "why": why})
        reply = recv()
        check(reply.get("approved") is True, f"the phone did not approve: {reply}")
        # No click from here: the page's script sees the approval and continues by itself.
        self.wait_h1("Dashboard", "the dashboard after the phone approved (the page should continue by itself)")
        check(self.driver.current_url.rstrip("/") == self.base + "/ra", f"the dashboard is at {self.driver.current_url}")
        pages = self.navigations()
        paths = [(m, urllib.parse.urlsplit(u).path) for m, u in pages]
        check(paths[:2] == [("GET", "/ra"), ("GET", "/ra/signin")], f"the way in: {paths}")
        check(any(m == "POST" and p.endswith("/continue") for m, p in paths),
              f"the browser never posted the continue form (the script did not run?): {paths}")
        check(("GET", "/ra/callback") in paths, f"no /ra/callback on the way: {paths}")
        check(paths[-1] == ("GET", "/ra"), f"the way in did not end at /ra: {paths}")
        cookies = {c["name"]: c for c in self.driver.get_cookies()}
        session = cookies.get("__Host-vsc-ra")
        check(session is not None, f"no console session cookie: {sorted(cookies)}")
        check(session.get("secure") and session.get("httpOnly") and session.get("sameSite") == "Strict",
              f"the console session cookie: {session}")
        self.page_checks("the dashboard")
        step("signed in", who=who, pages=len(paths))

    def sign_out(self):
        self.submit(self.form_of(self.button("Sign out")), "Sign out")
        self.wait_for("the signed-out page", lambda d: "signed out" in self.h1().lower())
        self.page_checks("the signed-out page")

    # --- 1 and 2: dashboard, search, person ----------------------------------------------------

    def dashboard_and_person(self):
        cfg = self.cfg
        self.sign_in("ram", cfg["ram_uid"], "console sign-in")
        text = self.body_text()
        check("All organisations" in text, f"the RA Manager's dashboard: {text[:400]!r}")
        self.shot("ra-dashboard.png")
        self.covered.append("sign-in with the phone, dashboard")

        q = self.control(r"Name, UID or email")
        q.clear()
        q.send_keys(cfg["search"])
        self.submit(self.form_of(q))
        self.wait_h1("People")
        check(urllib.parse.urlsplit(self.driver.current_url).path == "/ra/people", self.driver.current_url)
        self.page_checks("the search results")
        found = self.link(re.escape(cfg["person_listed"]))
        check(found is not None, f"searching {cfg['search']!r} does not list {cfg['person_listed']!r}: "
              f"{self.body_text()[:600]!r}")
        found.click()
        self.wait_h1(cfg["person_name"])
        check(self.driver.current_url.endswith("/ra/people/" + cfg["person_uid"]), self.driver.current_url)
        text = self.body_text()
        for expected in ["Identity checks", "Positions", "RA roles", "Cards", cfg["person_uid"], "active"]:
            check(expected in text, f"the person page has no {expected!r}: {text[:800]!r}")
        self.page_checks("the person page")
        self.shot("ra-person.png")
        self.viewport(*TABLET)
        self.driver.refresh()
        self.wait_h1(cfg["person_name"])
        width = self.driver.execute_script("return document.documentElement.scrollWidth")
        check(width <= TABLET[0], f"the person page scrolls sideways on a tablet: {width} px wide")
        self.shot("ra-person-tablet.png")
        self.viewport(*LAPTOP)
        self.covered.append("search, person page (laptop and tablet)")

    # --- keyboard only -------------------------------------------------------------------------

    FOCUSED_JS = """
const el = document.activeElement;
if (!el || el === document.body) return null;
const st = getComputedStyle(el);
return {tag: el.tagName.toLowerCase(), text: (el.innerText || el.value || el.getAttribute('aria-label') || '').trim().slice(0, 60),
        href: el.getAttribute('href'), id: el.id,
        ring: st.outlineStyle !== 'none' && parseFloat(st.outlineWidth) >= 2 || st.boxShadow !== 'none'};
"""

    def tab_to(self, wanted, what, limit=40):
        """Presses Tab until `wanted(focused)` holds; every stop must show where the focus is."""
        stops = []
        for _ in range(limit):
            ActionChains(self.driver).send_keys(Keys.TAB).perform()
            focused = self.driver.execute_script(self.FOCUSED_JS)
            if focused is None:
                continue
            stops.append(focused["text"] or focused["tag"])
            check(focused["ring"], f"no visible focus on {focused} (Tab stops so far: {stops})")
            if wanted(focused):
                return stops
        raise Failed(f"{limit} presses of Tab never reached {what}; stops: {stops}")

    def keyboard_only(self):
        """The dashboard, a search and a person's page with the keyboard alone: the first Tab
        lands on the skip link, every stop shows a focus ring, Enter follows links and submits."""
        cfg = self.cfg
        self.get("/ra")
        self.wait_h1("Dashboard")
        stops = self.tab_to(lambda f: True, "anything")
        check("skip to main content" in stops[0].lower(), f"the first Tab stop is not the skip link: {stops}")
        ActionChains(self.driver).send_keys(Keys.ENTER).perform()
        check(self.driver.execute_script("return document.activeElement.id") == "main"
              or self.driver.current_url.endswith("#main"), "the skip link does not move to the main content")
        self.tab_to(lambda f: f["tag"] == "input" and f["id"] == "q", "the search field")
        ActionChains(self.driver).send_keys(cfg["search"]).send_keys(Keys.ENTER).perform()
        self.wait_h1("People", "the search results after Enter")
        listed = cfg["person_listed"]
        stops = self.tab_to(lambda f: f["tag"] == "a" and listed in f["text"], f"the link to {listed}")
        ActionChains(self.driver).send_keys(Keys.ENTER).perform()
        self.wait_h1(cfg["person_name"], "the person page after Enter on the link")
        self.tab_to(lambda f: f["tag"] == "summary", "an action on the person page")
        self.page_checks("the person page, by keyboard")
        step("keyboard only", stops=len(stops))
        self.covered.append("keyboard only: skip link, search, person page, focus visible at every stop")

    # --- 3: person actions ---------------------------------------------------------------------

    def open_details(self, summary_pattern):
        """Opens the <details> whose summary matches `summary_pattern`; returns it."""
        rx = re.compile(summary_pattern, re.I)
        for d in self.driver.find_elements(By.TAG_NAME, "details"):
            summary = d.find_elements(By.TAG_NAME, "summary")
            if summary and rx.search(summary[0].text.strip()):
                if d.get_attribute("open") is None:
                    summary[0].click()
                self.wait_for(f"the {summary_pattern!r} section to open", lambda _: d.get_attribute("open") is not None)
                return d
        raise Failed(f"no section /{summary_pattern}/ at {self.driver.current_url}: "
                     f"{[s.text for s in self.driver.find_elements(By.TAG_NAME, 'summary')]}")

    def person_page(self, url, name):
        self.driver.get(url)
        self.wait_h1(name)

    def qr_of(self, what):
        return self.wait_for(what, lambda d: d.find_elements(By.CSS_SELECTOR, ".qr svg"))[0]

    def reapprove(self, why):
        """The provider's sign-in page (prompt=login, the RA's UID already filled in), the
        number for the RA's phone, then the page continues by itself to the confirmation."""
        field = self.wait_for("the re-approval sign-in page", lambda d: d.find_elements(By.ID, "uid"))[0]
        check("/oauth2/signin/" in self.driver.current_url,
              f"the action did not lead to the provider's sign-in page: {self.driver.current_url}")
        check(field.get_attribute("value") == self.cfg["ram_uid"],
              f"the re-approval's sign-in page has UID {field.get_attribute('value')!r}, not the RA's")
        self.page_checks("the re-approval sign-in page")
        self.submit(self.form_of(field))
        shown = self.wait_for("the re-approval number", lambda d: d.find_elements(By.CSS_SELECTOR, ".number"))[0]
        send({"event": "number", "who": "ram", "number": int(shown.text.strip()), "why": why})
        check(recv().get("approved") is True, f"the phone did not approve {why}")
        self.wait_h1("Approved on your phone", "the confirmation after the phone approved (the page should continue by itself)")
        check(urllib.parse.urlsplit(self.driver.current_url).path == "/ra/reapprove/callback", self.driver.current_url)
        self.page_checks("the re-approval confirmation")

    def person_actions(self):
        """Create a person, record a level-3 identity check with two pieces of evidence, assign
        a position, issue a card (its QR code enrols a phone), the activation letter, unlock
        (its QR code redeemed by that phone) and cancel with a reason (re-approved on the
        RA's phone)."""
        n = self.cfg["new_person"]
        name = f"{n['given_name']} {n['family_name']}"
        self.get("/ra/people")
        self.wait_h1("People")
        self.open_action(r"^Create a person$", "creating a person")
        self.wait_h1("Create a person")
        check(urllib.parse.urlsplit(self.driver.current_url).path == "/ra/people/new", self.driver.current_url)
        self.page_checks("the create-person form")
        given = self.fill(r"^Given name", n["given_name"])
        self.fill(r"^Family name", n["family_name"])
        self.fill(r"^Email", n["email"])
        self.fill(r"organisation", "RX1")
        self.submit(self.form_of(given), r"Create the person")
        self.wait_h1(name, "the new person's page")
        uid = self.driver.current_url.rstrip("/").rsplit("/", 1)[-1]
        check(re.fullmatch(r"[0-9]{12}", uid), f"the new person's page is at {self.driver.current_url}")
        person_page = self.driver.current_url
        check(n["email"] in self.body_text(), f"the new person's page has no email: {self.body_text()[:600]!r}")
        self.page_checks("the new person's page")
        step("person created", uid=uid)

        # Identity check: level 3, passport and driving licence.
        section = self.open_details(r"^Record an identity check")
        self.tick(r"^Passport$", section)
        self.tick(r"driving licen[cs]e", section)
        level = self.fill(r"^Level$", "3", section)
        self.fill(r"^Checked at", "RX1", section)
        self.submit(self.form_of(level), r"Record the identity check")
        self.wait_h1(name, "the person's page after the identity check")
        self.wait_for("the identity check on the person's page",
                      lambda d: "passport, driving-licence" in self.body_text())
        step("identity check recorded")

        # Position.
        section = self.open_details(r"^Assign a position")
        self.page_checks("the position form")
        code = self.fill(r"^Role code", "S8000:G8000:R8000", section)
        self.fill(r"^Organisation", "RX1", section)
        self.fill(r"^Role name", "Clinical Practitioner Access Role", section)
        self.fill(r"^Activities", "B0570, B0278", section)
        self.submit(self.form_of(code), r"Assign the position")
        self.wait_h1(name, "the person's page after assigning the position")
        self.wait_for("the position on the person's page",
                      lambda d: "S8000:G8000:R8000" in self.body_text() and "B0570, B0278" in self.body_text())
        step("position assigned")

        # Issue a card: the activation letter with its QR code.
        section = self.open_details(r"^Issue a card")
        org = self.fill(r"^Issuing organisation", "RX1", section)
        self.submit(self.form_of(org), r"Issue a card")
        self.wait_h1("Card issued: activation letter")
        letter = self.wait_for("the activation letter", lambda d: d.find_elements(By.CSS_SELECTOR, "article.letter"))[0]
        self.page_checks("the activation letter")
        check(uid in letter.text and name in letter.text, f"the letter: {letter.text[:400]!r}")
        self.driver.execute_script("arguments[0].scrollIntoView()", letter)
        self.shot("ra-activation-letter.png", letter)
        url = self.read_qr(letter.find_element(By.CSS_SELECTOR, ".qr"), "activation-qr.png")
        check(url.startswith(self.base), f"the QR code holds {url!r}")
        send({"event": "activation", "url": url, "from": "issue card"})
        reply = recv()
        check(reply.get("enrolled") is True and reply.get("uid") == uid, f"the QR enrolled {reply}, expected {uid}")
        card = reply["card"]
        step("card issued, the phone enrolled with the letter's QR code", card=card)

        # Unlock (an active card can be unlocked): the unlock QR code, redeemed by the phone.
        self.person_page(person_page, name)
        check("active" in self.body_text(), f"the enrolled card is not active: {self.body_text()[:800]!r}")
        self.open_action(r"^Unlock card " + re.escape(card), "unlocking the card")
        self.wait_h1(f"Unlock code for card {card}")
        self.page_checks("the unlock page")
        url = self.read_qr(self.qr_of("the unlock QR code"), "unlock-qr.png")
        send({"event": "unlock", "url": url, "card": card})
        check(recv().get("ok") is True, "the phone could not redeem the unlock QR")
        step("card unlocked, the phone redeemed the unlock QR code")

        # Cancel with a reason: first a re-approval on the RA's phone, then confirm.
        self.person_page(person_page, name)
        section = self.open_details(r"^Cancel card " + re.escape(card))
        self.page_checks("the cancel form")
        code = self.fill(r"^Reason", "cessation-of-operation", section)
        self.fill(r"^Why, in words", "Left the trust", section)
        self.submit(self.form_of(code), r"Cancel the card")
        self.reapprove("cancel card " + card)
        text = self.body_text()
        check("cessation-of-operation" in text and "Left the trust" in text,
              f"the confirmation does not show the action: {text[:600]!r}")
        send({"event": "check", "what": "card_state", "card": card})
        state = recv().get("state")
        check(state == "active", f"the card is {state} before the confirmation")
        self.open_action(r"^Cancel the card now$", "confirming the cancel")
        self.wait_h1(name, "the person's page after the cancel")
        check(urllib.parse.urlsplit(self.driver.current_url).path == "/ra/people/" + uid, self.driver.current_url)
        self.wait_for("the cancelled card", lambda d: "revoked" in self.body_text())
        send({"event": "check", "what": "card_state", "card": card})
        state = recv().get("state")
        check(state == "revoked", f"the card is {state} after the cancel")
        step("card cancelled after the phone re-approved")
        self.covered.append("person actions: create, identity check, position, issue (letter's QR enrols a phone), "
                            "unlock (QR redeemed), cancel (re-approved on the phone)")

    # --- 4: bulk issuance ----------------------------------------------------------------------

    def set_text(self, el, text):
        """Fills a text area as pasting does (typing a whole CSV key by key is slow)."""
        self.driver.execute_script(
            "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'));", el, text)
        check(el.get_attribute("value") == text, "the text area did not take the CSV")

    def bulk(self):
        """A CSV with a good and a bad row: the preview names the bad row's errors (the API's
        own, from a dry run the test made), nothing is written; confirming issues the good row,
        whose activation letter's QR code enrols a phone."""
        b = self.cfg["bulk"]
        self.get("/ra")
        self.wait_h1("Dashboard")
        self.get("/ra/bulk")
        self.wait_h1("Bulk issuance")
        self.page_checks("the bulk upload page")
        area = self.control(r"CSV")
        self.set_text(area, b["csv"])
        self.submit(self.form_of(area), r"Check")
        self.wait_h1("Check the rows")
        self.page_checks("the bulk preview")
        rows = self.table_rows("Every row of the file")
        check(len(rows) == 2, f"the preview shows {len(rows)} rows: {rows}")
        good, bad = rows
        check(good[0] == str(b["good_row"]) and good[-1] == "Ready", f"the good row: {good}")
        check(bad[0] == str(b["bad_row"]), f"the bad row: {bad}")
        for e in b["bad_errors"]:
            check(e["message"] in bad[-1] and e["code"] in bad[-1],
                  f"the preview of row {b['bad_row']} does not name the error {e}: {bad[-1]!r}")
        check("1 ready" in self.body_text() and "1 with errors" in self.body_text(),
              f"the preview's summary: {self.body_text()[:400]!r}")
        send({"event": "check", "what": "bulk_written"})
        reply = recv()
        check(reply.get("people") == 0, f"the preview wrote something: {reply}")
        self.shot("ra-bulk-preview.png")

        self.submit(self.driver.find_element(By.CSS_SELECTOR, "form[action='/ra/bulk/run']"), r"Issue cards")
        self.wait_h1("Bulk issuance results")
        self.page_checks("the bulk results")
        rows = self.table_rows("What happened to each row")
        check(len(rows) == 2, f"the results show {len(rows)} rows: {rows}")
        good, bad = rows
        check(good[0] == str(b["good_row"]) and good[2] == "issued", f"the good row's result: {good}")
        check(bad[0] == str(b["bad_row"]) and bad[2] != "issued" and bad[3] == "",
              f"the bad row's result: {bad}")
        uid = good[3]
        check(re.fullmatch(r"[0-9]{12}", uid), f"the good row's UID: {good}")
        letters = self.driver.find_elements(By.CSS_SELECTOR, "article.letter")
        check(len(letters) == 1, f"{len(letters)} activation letters for one issued row")
        letter = letters[0]
        check(uid in letter.text, f"the letter does not carry the UID {uid}: {letter.text!r}")
        url = self.read_qr(letter.find_element(By.CSS_SELECTOR, ".qr"), "bulk-letter-qr.png")
        send({"event": "activation", "url": url, "from": "bulk letter"})
        reply = recv()
        check(reply.get("enrolled") is True and reply.get("uid") == uid,
              f"the bulk letter's QR enrolled {reply}, the results say {uid}")
        self.driver.execute_script("arguments[0].scrollIntoView()", letter)
        self.shot("ra-bulk-results.png")
        self.covered.append("bulk issuance: preview naming the bad row's errors, run, letter's QR enrols a phone")

    def table_rows(self, caption):
        """The body rows of the table with `caption`, as lists of cell texts."""
        for table in self.driver.find_elements(By.TAG_NAME, "table"):
            cap = table.find_elements(By.TAG_NAME, "caption")
            if cap and caption in cap[0].text:
                return [[td.text.strip() for td in tr.find_elements(By.TAG_NAME, "td")]
                        for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
        raise Failed(f"no table {caption!r} at {self.driver.current_url}: {self.body_text()[:600]!r}")

    def read_qr(self, element, name):
        """The text of the QR code `element` shows, read off its pixels."""
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        path = os.path.join(self.cfg["failures"], name)
        with open(path, "wb") as f:
            f.write(element.screenshot_as_png)
        text = decode_qr(path)
        step("QR code read", what=name, text=text[:60] + "…")
        return text

    # --- 5: an RA Agent of RX1 ------------------------------------------------------------------

    def agent_scope(self):
        cfg = self.cfg
        agent = cfg["agent"]
        self.sign_out()
        # Sign-out ends the console session. A browser shared by two RAs must not sign the
        # second one in as the first: look at what "Sign in again" does.
        self.navigations()
        self.get("/ra")
        time.sleep(0.5)
        landed = self.driver.current_url
        if self.h1() == "Dashboard":
            note("after the console's Sign out, opening /ra again signs the same RA straight back in "
                 "without the phone (the provider's single sign-on session outlives the console "
                 f"session): {[urllib.parse.urlsplit(u).path for _, u in self.navigations()]}")
        else:
            step("after sign-out /ra asks to sign in again", at=landed)
        # A fresh browser for the agent (the RA Manager's provider session stays behind).
        self.driver.delete_all_cookies()
        self.sign_in("agent", agent["uid"], "console sign-in (RA Agent of RX1)")
        text = self.body_text()
        check("Organisations: RX1" in text, f"the agent's dashboard does not say RX1: {text[:400]!r}")

        # Search everyone: RX1's people, never RY2's.
        self.get("/ra/people?q=")
        self.wait_h1("People")
        text = self.body_text()
        check(cfg["person_uid"] in text, f"the agent's search does not list RX1's {cfg['person_uid']}: {text[:600]!r}")
        other = cfg["other_org_person"]
        check(other["uid"] not in text and other["family_name"] not in text,
              f"the agent's search lists RY2's {other['uid']}: {text[:800]!r}")
        self.get("/ra/people?q=" + urllib.parse.quote(other["family_name"]))
        self.wait_h1("People")
        check("Nobody found" in self.body_text(), f"searching RY2's person by name: {self.body_text()[:600]!r}")
        self.get("/ra/people?q=" + other["uid"])
        self.wait_h1("People")
        check("Nobody found" in self.body_text(), f"searching RY2's person by UID: {self.body_text()[:600]!r}")

        # RY2's person's page: the API's refusal, and nothing of the person.
        self.get("/ra/people/" + other["uid"])
        self.wait_h1("Not done", "the console's refusal of RY2's person")
        alert = self.alert_text()
        check(agent["refusal"] in alert, f"the refusal shown is {alert!r}, the API says {agent['refusal']!r}")
        body = self.body_text()
        check(other["given_name"] not in body and other["family_name"] not in body,
              f"the refusal page shows the person's name: {body[:600]!r}")
        self.page_checks("the refusal page")

        # A file for RY2: the preview names the API's refusal; a hand-made POST of the run
        # (the page offers no button) issues nothing.
        bulk = agent["bulk"]
        self.get("/ra/bulk")
        self.wait_h1("Bulk issuance")
        area = self.control(r"CSV")
        self.set_text(area, bulk["csv"])
        self.submit(self.form_of(area), r"Check")
        self.wait_h1("Check the rows")
        rows = self.table_rows("Every row of the file")
        check(len(rows) == 1, f"the agent's preview: {rows}")
        for e in bulk["errors"]:
            check(e["message"] in rows[0][-1], f"the agent's preview does not name {e}: {rows[0]!r}")
        check(not self.driver.find_elements(By.CSS_SELECTOR, "form[action='/ra/bulk/run']"),
              "the preview offers to run a file with no ready row")
        self.driver.execute_script(
            """const f = document.createElement('form');
            f.method = 'post'; f.action = '/ra/bulk/run';
            for (const [k, v] of [['csrf', arguments[0]], ['csv', arguments[1]]]) {
              const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v;
              f.appendChild(i);
            }
            document.body.appendChild(f); f.submit();""",
            self.driver.find_element(By.CSS_SELECTOR, "input[name=csrf]").get_attribute("value"),
            bulk["csv"],
        )
        self.wait_h1("Bulk issuance results", "the results of the hand-made run")
        rows = self.table_rows("What happened to each row")
        check(len(rows) == 1 and rows[0][2] != "issued" and rows[0][3] == "",
              f"a hand-made run of RY2's row by an RA Agent of RX1: {rows}")
        check(not self.driver.find_elements(By.CSS_SELECTOR, "article.letter"), "an activation letter for RY2's row")
        send({"event": "check", "what": "agent_bulk_written"})
        reply = recv()
        check(reply.get("people") == 0, f"the hand-made run wrote something: {reply}")
        self.covered.append("RA Agent of RX1: search without RY2, RY2's person page refused with the API's message")

    def run(self):
        self.start_browser()
        step("browser started", version=self.driver.capabilities.get("browserVersion"))
        self.dashboard_and_person()
        self.keyboard_only()
        self.person_actions()
        self.bulk()
        self.agent_scope()


def decode_qr(png_path):
    """The text of the QR code in a PNG (zbarimg from Debian's zbar-tools)."""
    out = subprocess.run(["zbarimg", "--quiet", "--raw", png_path], capture_output=True, text=True, timeout=20)
    check(out.returncode == 0 and out.stdout.strip(),
          f"zbarimg found no QR code in {png_path} (exit {out.returncode}): {out.stderr.strip()}")
    return out.stdout.strip().splitlines()[0]


def main():
    console = None
    try:
        cfg = recv()["config"]
        console = Console(cfg)
        console.run()
        send({"event": "done", "covered": console.covered, "missing": console.missing})
    except Exception as e:  # noqa: BLE001 - every failure goes back to the test, readable
        where = ""
        if console is not None and console.driver is not None:
            try:
                where = f" (browser at {console.driver.current_url})"
                console.driver.save_screenshot(os.path.join(console.cfg["failures"], "failure.png"))
                where += f"; screenshot {os.path.join(console.cfg['failures'], 'failure.png')}"
            except Exception:  # noqa: BLE001
                pass
        send({"event": "error", "message": f"{type(e).__name__}: {e}{where}"})
    finally:
        if console is not None:
            console.close()


if __name__ == "__main__":
    main()
