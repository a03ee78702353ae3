// The vsc phone app: the authenticator in the browser, on the same Rust core as
// `vsc authenticator` (compiled to WebAssembly: pkg/vsc_phone_web.js).
//
// What it does, and where the terminal phone does the same (crates/authenticator/src):
// * enrol with an activation link (flows.rs `enrol`): checks the server's root CA against the
//   link's fingerprint, makes the keys, sends the certificate requests, keeps the state in
//   IndexedDB (database "vsc", store "state");
// * listens for sign-in requests on the device channel (phone.rs `Listener`): server-sent events
//   read with fetch, long-polling when the stream does not work here;
// * approves with the number the person types and the passcode (unlock.rs: the server checks
//   the passcode and releases the keystore's secret), declines, or reports "I didn't do this";
// * signs prescription batches and virtual-smartcard operations (phone.rs `sign`, signing.rs):
//   what is shown and every byte signed come from the core's review (`reviewSigning`);
// * after three wrong passcodes, redeems the RA's unlock code with a new passcode (flows.rs
//   `redeem_unlock`).
//
// Keys (see ARCHITECTURE.md):
// * device key: WebCrypto ECDSA P-256, made non-extractable; only authenticates the channel;
// * authentication key (ECDSA P-256) and signing key (RSA-2048): WebCrypto keys kept only
//   wrapped ("pkcs8", AES-GCM) under the keystore's wrapping key, which the passcode and the
//   server's secret open; unwrapped non-extractable for one operation;
// * the virtual smartcard's PIV keys: inside the core's keystore (pre-hashed ECDSA).
//
// Same origin only: every request goes to the server that served the app.

import init, * as core from "./pkg/vsc_phone_web.js";

const ORIGIN = location.origin;
const CSR_COMMON_NAME = "vsc enrolment";
const PLATFORM = "web";

const PATHS = {
  chain: "/ca/chain.pem",
  enrol: "/api/v1/enrol",
  deviceChallenge: "/api/v1/device/challenge",
  deviceToken: "/api/v1/device/token",
  events: "/api/v1/device/events",
  requests: "/api/v1/device/requests",
  passcodeChallenge: "/api/v1/device/passcode/challenge",
  passcodeCheck: "/api/v1/device/passcode/check",
  signing: "/api/v1/device/signing",
  unlockChallenge: "/api/v1/device/unlock/challenge",
  unlock: "/api/v1/device/unlock",
  push: "/api/v1/device/push",
  pushSubscription: "/api/v1/device/push/subscription",
  cardPin: "/api/v1/device/card-pin",
};

/** Seconds a long-poll waits (as the terminal phone). */
const LONG_POLL_SECONDS = 25;
/** Failed event streams in a row before long-polling instead. */
const STREAM_FAILURES_BEFORE_FALLBACK = 3;
/** How long to long-poll before trying the event stream again. */
const STREAM_RETRY_AFTER_MS = 300_000;
/** An event stream silent this long (not even a keep-alive) is taken as broken. */
const STREAM_SILENCE_MS = 45_000;
/** A device token is renewed this long before it expires. */
const TOKEN_MARGIN_MS = 60_000;

let VERSION = "";

/**
 * `/app/?transport=long-poll` listens by long-polling only (for networks that break event
 * streams, and to test the fallback), as `vsc authenticator listen --long-poll` does.
 */
const LONG_POLL_ONLY = new URLSearchParams(location.search).get("transport") === "long-poll";

// ---------------------------------------------------------------------------------------------
// Small helpers

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
/** Lets the browser paint (a progress message) before the core blocks the thread. */
const painted = () => new Promise((resolve) => {
  // requestAnimationFrame does not fire in a hidden page: the timeout goes on regardless.
  const timer = setTimeout(resolve, 100);
  requestAnimationFrame(() => setTimeout(() => {
    clearTimeout(timer);
    resolve();
  }, 0));
});

function b64(bytes) {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let s = "";
  for (let i = 0; i < u8.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/** Standard or URL-safe base64, padded or not, line breaks allowed (PEM). */
function unb64(text) {
  const clean = text.replace(/\s|=/g, "").replace(/-/g, "+").replace(/_/g, "/");
  const s = atob(clean + "===".slice((clean.length + 3) % 4));
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** An error from the server: its machine code and its sentence for a person. */
class ServerError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** A wrong passcode or a locked card (the server's answer to the passcode check). */
class PasscodeError extends Error {
  constructor(message, locked) {
    super(message);
    this.locked = locked;
  }
}

/** What a person reads for an error. */
function describe(e) {
  if (e instanceof ServerError || e instanceof PasscodeError) return e.message;
  if (e instanceof TypeError && /fetch|network/i.test(e.message)) {
    return "The server cannot be reached. Check your connection and try again.";
  }
  if (e && e.name === "NotAllowedError") return "The browser refused: " + e.message;
  if (e && typeof e.message === "string" && e.message) return e.message;
  return String(e);
}

// ---------------------------------------------------------------------------------------------
// Screens

const SCREENS = ["loading", "welcome", "passcode-new", "home", "signin", "signing", "card", "locked", "result"];
let screen = "loading";

function show(name) {
  for (const id of SCREENS) $(id).hidden = id !== name;
  if (name !== screen) clearError();
  screen = name;
  window.scrollTo(0, 0);
}

function showError(e) {
  const box = $("error");
  box.textContent = typeof e === "string" ? e : describe(e);
  box.hidden = false;
  box.scrollIntoView({ block: "nearest" });
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

function result(title, message) {
  $("result-title").textContent = title;
  $("result-message").textContent = message;
  show("result");
  $("result-done").focus();
}

// ---------------------------------------------------------------------------------------------
// Storage: IndexedDB "vsc", object store "state", one record per key.

let dbPromise = null;

function db() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      const open = indexedDB.open("vsc", 1);
      open.onupgradeneeded = () => open.result.createObjectStore("state");
      open.onsuccess = () => resolve(open.result);
      open.onerror = () => reject(new Error("This browser's storage cannot be opened: " + open.error));
    });
  }
  return dbPromise;
}

async function load(keys) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const tx = d.transaction("state", "readonly");
    const store = tx.objectStore("state");
    const out = {};
    for (const k of keys) store.get(k).onsuccess = (ev) => (out[k] = ev.target.result);
    tx.oncomplete = () => resolve(out);
    tx.onerror = () => reject(new Error("Reading this browser's storage failed: " + tx.error));
  });
}

/** Writes every entry of `values` in one transaction: all or nothing. */
async function save(values) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const tx = d.transaction("state", "readwrite");
    const store = tx.objectStore("state");
    for (const [k, v] of Object.entries(values)) store.put(v, k);
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(new Error("Saving to this browser's storage failed: " + tx.error));
    tx.onabort = () => reject(new Error("Saving to this browser's storage failed: " + tx.error));
  });
}

/** The app's state once enrolled: see `enrol`. */
let state = null;

async function loadState() {
  const s = await load(["enrolment", "keystore", "deviceId", "deviceKey", "wrapped", "locked"]);
  state = s.enrolment && s.keystore && s.deviceKey && s.wrapped ? s : null;
  return s;
}

// ---------------------------------------------------------------------------------------------
// The server

async function api(method, path, body, { token, headers, signal } = {}) {
  const h = { accept: "application/json", "x-vsc-app-version": VERSION, ...(headers || {}) };
  if (body !== undefined && body !== null) h["content-type"] = "application/json";
  if (token) h.authorization = "Bearer " + token;
  const response = await fetch(path, {
    method,
    headers: h,
    body: body === undefined || body === null ? undefined : JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
    signal,
  });
  return readAnswer(response);
}

async function readAnswer(response) {
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch (_) {
    // not JSON: reported below
  }
  if (!response.ok) {
    const detail = json && json.error;
    if (detail && detail.message) throw new ServerError(response.status, detail.code, detail.message);
    throw new ServerError(response.status, "http_" + response.status,
      `The server answered ${response.status} ${response.statusText}.`);
  }
  return json;
}

// ---------------------------------------------------------------------------------------------
// WebCrypto

const ECDSA_P256 = { name: "ECDSA", namedCurve: "P-256" };
const ECDSA_SHA256 = { name: "ECDSA", hash: "SHA-256" };
const RSA_2048 = {
  name: "RSASSA-PKCS1-v1_5",
  modulusLength: 2048,
  publicExponent: new Uint8Array([1, 0, 1]),
  hash: "SHA-256",
};

/** An ECDSA P-256 / SHA-256 signature, DER (what the server verifies). */
async function signEcdsa(key, data) {
  const p1363 = await crypto.subtle.sign(ECDSA_SHA256, key, data);
  return core.ecdsaDer(new Uint8Array(p1363));
}

/** The keystore's wrapping key as a WebCrypto key that can only wrap and unwrap. */
function wrappingKey(raw) {
  return crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["wrapKey", "unwrapKey"]);
}

/** Binds a wrapped key to what it is and to this device. */
function wrapAad(which, deviceId) {
  return new TextEncoder().encode(`vsc-web-key/v1\nkey=${which}\ndevice=${deviceId}\n`);
}

async function wrap(key, wk, which, deviceId) {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const data = await crypto.subtle.wrapKey("pkcs8", key, wk, {
    name: "AES-GCM", iv, additionalData: wrapAad(which, deviceId),
  });
  return { iv, data: new Uint8Array(data) };
}

async function unwrap(wrapped, wk, which, deviceId, algorithm) {
  return crypto.subtle.unwrapKey("pkcs8", wrapped.data, wk,
    { name: "AES-GCM", iv: wrapped.iv, additionalData: wrapAad(which, deviceId) },
    algorithm, false, ["sign"]);
}

/** A PKCS#10 request for `keyPair`, signed in WebCrypto, assembled by the core. */
async function csr(keyPair, kind) {
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", keyPair.publicKey));
  const info = core.csrInfo(spki, CSR_COMMON_NAME);
  let signature;
  if (kind === "ecdsa-p256-sha256") {
    signature = await signEcdsa(keyPair.privateKey, info);
  } else {
    signature = new Uint8Array(await crypto.subtle.sign("RSASSA-PKCS1-v1_5", keyPair.privateKey, info));
  }
  return { spki, der: core.csrAssemble(info, kind, signature) };
}

// ---------------------------------------------------------------------------------------------
// Certificates (only what the status screen shows, and the key check after enrolment)

// The core reads them (core.certificateFacts): serial, expiry, and whether a certificate is
// for a given public key.

function sameBytes(a, b) {
  if (!a || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Enrolment (flows.rs `enrol`)

/** The activation link the person is enrolling with (kept out of the address bar). */
let activationLink = "";

function startEnrol(link) {
  let parsed;
  try {
    parsed = core.parseActivation(link, ORIGIN);
  } catch (e) {
    showError(e);
    return;
  }
  activationLink = link;
  $("enrol-server").textContent = ORIGIN;
  $("new-passcode").value = "";
  $("new-passcode-again").value = "";
  $("enrol-progress").textContent = "";
  show("passcode-new");
  if (state) {
    showError(`This app holds the card of ${state.enrolment.given_name} ${state.enrolment.family_name}. ` +
      "A new activation works only for the same person (one person per device).");
  }
  void parsed;
  $("new-passcode").focus();
}

async function enrol() {
  const passcode = $("new-passcode").value;
  const again = $("new-passcode-again").value;
  clearError();
  if (!core.passcodeWellFormed(passcode)) {
    showError("The passcode must be 6 to 64 digits (numbers only).");
    return;
  }
  if (passcode !== again) {
    showError("The two passcodes are not the same. Type the same passcode twice.");
    return;
  }
  const progress = (text) => ($("enrol-progress").textContent = text);
  const button = $("enrol");
  button.disabled = true;
  let store = null;
  try {
    const { code, caFingerprint } = core.parseActivation(activationLink, ORIGIN);

    progress("Checking the server…");
    const chainResponse = await fetch(PATHS.chain, { cache: "no-store", credentials: "omit" });
    if (!chainResponse.ok) throw new Error(`The server did not send its CA certificates (${chainResponse.status}).`);
    core.checkRootCa(await chainResponse.text(), caFingerprint);

    const saved = await load(["deviceId", "enrolment"]);
    let deviceId = saved.deviceId;
    if (!deviceId) {
      deviceId = hex(crypto.getRandomValues(new Uint8Array(16)));
      await save({ deviceId });
    }

    progress("Making your keys (this takes a few seconds)…");
    await painted();
    store = core.createKeystore(passcode, CSR_COMMON_NAME);
    const deviceKey = await crypto.subtle.generateKey(ECDSA_P256, false, ["sign", "verify"]);
    let authPair = await crypto.subtle.generateKey(ECDSA_P256, true, ["sign", "verify"]);
    let signingPair = await crypto.subtle.generateKey(RSA_2048, true, ["sign", "verify"]);
    const raw = store.wrappingKey;
    const wk = await wrappingKey(raw);
    raw.fill(0);
    const wrapped = {
      auth: await wrap(authPair.privateKey, wk, "auth", deviceId),
      signing: await wrap(signingPair.privateKey, wk, "signing", deviceId),
    };
    const authCsr = await csr(authPair, "ecdsa-p256-sha256");
    const signingCsr = await csr(signingPair, "rsa-sha256");
    // The extractable handles go now: from here on the keys exist only wrapped.
    authPair = null;
    signingPair = null;
    const deviceSpki = new Uint8Array(await crypto.subtle.exportKey("spki", deviceKey.publicKey));

    progress("Sending your certificate requests…");
    const request = {
      activation_code: code,
      device: {
        device_id: deviceId,
        platform: PLATFORM,
        app_version: VERSION,
        model: "web browser: " + navigator.userAgent.slice(0, 200),
        simulated: false,
      },
      auth_csr: b64(authCsr.der),
      signing_csr: b64(signingCsr.der),
      recovery_key: store.recoveryKey,
      device_key: b64(deviceSpki),
      passcode_verifier: store.verifier,
      passcode_secret: store.secret,
      piv_auth_csr: store.pivAuthCsr,
      piv_signing_csr: store.pivSigningCsr,
    };
    const answer = await api("POST", PATHS.enrol, request);

    progress("Checking your certificates…");
    if (saved.enrolment && saved.enrolment.uid !== answer.uid) {
      throw new Error(`This app holds the card of UID ${saved.enrolment.uid}; it cannot take a second person's card.`);
    }
    core.checkRootCa(answer.ca_chain, caFingerprint);
    for (const [pem, spki, what] of [
      [answer.auth_certificate, authCsr.spki, "authentication"],
      [answer.signing_certificate, signingCsr.spki, "signing"],
    ]) {
      let matches = false;
      try {
        matches = core.certificateFacts(pem, spki).spkiMatches === true;
      } catch (_) {
        matches = false;
      }
      if (!matches) {
        throw new Error(`The ${what} certificate from the server is not for this phone's ${what} key.`);
      }
    }

    const enrolment = {
      server: ORIGIN,
      uid: answer.uid,
      given_name: answer.given_name,
      family_name: answer.family_name,
      card_id: answer.card_id,
      auth_certificate: answer.auth_certificate,
      signing_certificate: answer.signing_certificate,
      piv_auth_certificate: answer.piv_auth_certificate || null,
      piv_signing_certificate: answer.piv_signing_certificate || null,
      ca_chain: answer.ca_chain,
      ca_fingerprint: caFingerprint,
      enrolled_at: new Date().toISOString(),
    };
    await save({
      enrolment,
      keystore: store.store,
      deviceId,
      deviceKey: deviceKey.privateKey,
      wrapped,
    });
    activationLink = "";
    await loadState();
    token = null;
    progress("");
    result("Your card is ready",
      `${answer.given_name} ${answer.family_name}, this phone now holds your smartcard ` +
      `(card ${answer.card_id}). Keep this app open or installed to approve sign-ins.`);
    startListening();
  } catch (e) {
    progress("");
    showError(e);
  } finally {
    if (store) store.free();
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Device token (phone.rs `PhoneLink::token`)

let token = null;
let tokenRenewAt = 0;

async function deviceToken() {
  if (token && Date.now() < tokenRenewAt) return token;
  token = null;
  const challenge = await api("POST", PATHS.deviceChallenge, { device_id: state.deviceId });
  const statement = core.deviceTokenStatement(challenge.challenge_id, challenge.nonce, state.deviceId, ORIGIN);
  const signature = await signEcdsa(state.deviceKey, statement);
  const answer = await api("POST", PATHS.deviceToken, {
    device_id: state.deviceId,
    challenge_id: challenge.challenge_id,
    signature: b64(signature),
  });
  token = answer.token;
  tokenRenewAt = Date.now() + Math.max(0, Date.parse(answer.expires_at) - Date.now() - TOKEN_MARGIN_MS);
  return token;
}

function tokenLapsed(e) {
  return e instanceof ServerError && e.status === 401 &&
    (e.code === "device_token_expired" || e.code === "device_unauthenticated");
}

/** Runs `op` with a device token; once more with a new token if the server says it lapsed. */
async function authed(op) {
  try {
    return await op(await deviceToken());
  } catch (e) {
    if (!tokenLapsed(e)) throw e;
    token = null;
    return op(await deviceToken());
  }
}

// ---------------------------------------------------------------------------------------------
// Listening (phone.rs `Listener`)

/**
 * Requests waiting for an answer: id -> the request's JSON (parsed and serialised again, so a
 * request from the event stream and the same request from a list compare equal).
 */
const pending = new Map();
/** Requests this app answered (their "closed" events are expected). */
const answered = new Set();
/** Signing requests (prescriptions, card operations) waiting: id -> the request's JSON. */
const signingPending = new Map();
/** The request on screen, if any (a sign-in or a signing request id). */
let current = null;
let listening = false;

function setChannel(text) {
  $("status-channel").textContent = text;
}

function absorbRequest(json) {
  const request = JSON.parse(json);
  if (answered.has(request.request_id)) return;
  pending.set(request.request_id, JSON.stringify(request));
  presentNext();
}

function absorbClosed(requestId, how) {
  pending.delete(requestId);
  if (current === requestId && !answered.has(requestId) && !busy) {
    current = null;
    stopCountdown();
    result("Request closed", closedMessage(how));
  }
}

function closedMessage(how) {
  switch (how) {
    case "approved":
    case "collected":
      return "This request was approved.";
    case "declined":
      return "This request was declined.";
    case "reported":
      return "This request was reported as not yours.";
    case "cancelled":
      return "The workstation withdrew this request.";
    case "superseded":
      return "The workstation sent a newer request; this one is closed.";
    case "expired":
      return "This request expired before it was answered.";
    case "failed":
      return "This request failed (a wrong number, or the card cannot be used now).";
    default:
      return "This request is no longer waiting for an answer.";
  }
}

async function resync() {
  if (!state) return;
  const list = await authed((t) => api("GET", `${PATHS.requests}?wait=0`, null, { token: t }));
  absorbList(list);
  await fetchSigning();
}

/**
 * Reads the signing requests waiting (the event stream only names them: a batch can be
 * megabytes), as phone.rs `signing_requests`. A failure leaves what is known as it is.
 */
async function fetchSigning() {
  if (!state) return;
  let list;
  try {
    list = await authed((t) => api("GET", PATHS.signing, null, { token: t }));
  } catch (e) {
    console.warn("signing requests could not be read", e);
    return;
  }
  const ids = new Set();
  for (const request of list || []) {
    ids.add(request.request_id);
    if (!answered.has(request.request_id)) signingPending.set(request.request_id, JSON.stringify(request));
  }
  for (const id of [...signingPending.keys()]) if (!ids.has(id)) absorbSigningClosed(id, "closed");
  presentNext();
}

function absorbSigningClosed(requestId, how) {
  signingPending.delete(requestId);
  if (current === requestId && !answered.has(requestId) && !busy) {
    current = null;
    stopCountdown();
    result("Request closed", signingClosedMessage(how));
  }
}

function signingClosedMessage(how) {
  switch (how) {
    case "completed":
      return "This signing request was already signed.";
    case "declined":
      return "This signing request was declined.";
    case "expired":
      return "This signing request expired before it was answered.";
    case "cancelled":
      return "The workstation withdrew this signing request.";
    default:
      return "This signing request is no longer waiting for an answer.";
  }
}

function absorbList(list) {
  const ids = new Set();
  for (const request of list || []) {
    ids.add(request.request_id);
    if (!answered.has(request.request_id)) pending.set(request.request_id, JSON.stringify(request));
  }
  for (const id of [...pending.keys()]) if (!ids.has(id)) absorbClosed(id, "closed");
  presentNext();
}

/** One event stream, until it ends or breaks; `connected` is called once it is open. */
async function streamOnce(connected) {
  const t = await deviceToken();
  const abort = new AbortController();
  let silence = setTimeout(() => abort.abort(), STREAM_SILENCE_MS);
  const alive = () => {
    clearTimeout(silence);
    silence = setTimeout(() => abort.abort(), STREAM_SILENCE_MS);
  };
  try {
    const response = await fetch(PATHS.events, {
      headers: { accept: "text/event-stream", authorization: "Bearer " + t, "x-vsc-app-version": VERSION },
      cache: "no-store",
      credentials: "omit",
      signal: abort.signal,
    });
    if (!response.ok) await readAnswer(response);
    if (!(response.headers.get("content-type") || "").startsWith("text/event-stream") || !response.body) {
      const e = new Error("the event stream does not work from here");
      e.unsupported = true;
      throw e;
    }
    setChannel("listening (stream)");
    streamFailures = 0;
    connected();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let event = "message";
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      alive();
      buffer += value;
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop();
      for (const line of lines) {
        if (line === "") {
          if (data.length) handleEvent(event, data.join("\n"));
          event = "message";
          data = [];
        } else if (line.startsWith(":")) {
          // keep-alive
        } else {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") event = value;
          else if (field === "data") data.push(value);
        }
      }
    }
  } finally {
    clearTimeout(silence);
    abort.abort();
  }
}

function handleEvent(event, data) {
  try {
    switch (event) {
      case "auth-request":
        absorbRequest(data);
        break;
      case "auth-request-closed": {
        const closed = JSON.parse(data);
        absorbClosed(closed.request_id, closed.state);
        break;
      }
      case "signing-request-closed": {
        const closed = JSON.parse(data);
        absorbSigningClosed(closed.request_id, closed.state);
        break;
      }
      case "resync":
        resync().catch(() => {});
        break;
      case "signing-request":
        // The stream only names it: fetch it in full.
        fetchSigning().catch(() => {});
        break;
      default:
        break;
    }
  } catch (e) {
    console.warn("skipped an event the server sent", event, e);
  }
}

let streamFailures = 0;

/** Errors after which retrying does not help until something changes. */
function permanent(e) {
  return e instanceof ServerError && e.status >= 400 && e.status < 500 && !tokenLapsed(e) &&
    e.status !== 408 && e.status !== 429;
}

async function listen() {
  let mode = LONG_POLL_ONLY ? "long-poll" : "stream";
  let retryStreamAt = 0;
  let failures = 0;
  while (listening) {
    try {
      if (mode === "stream") {
        await streamOnce(() => {
          failures = 0;
        });
      } else {
        setChannel("listening (long-poll)");
        const list = await authed((t) =>
          api("GET", `${PATHS.requests}?wait=${LONG_POLL_SECONDS}`, null, { token: t }));
        failures = 0;
        absorbList(list);
        await fetchSigning();
        if (!LONG_POLL_ONLY && Date.now() > retryStreamAt) mode = "stream";
        await sleep(1000);
      }
    } catch (e) {
      if (!listening) return;
      if (tokenLapsed(e) && mode === "stream") {
        // The stream was refused for its token: a new token, then the stream again.
        token = null;
        if (++failures < STREAM_FAILURES_BEFORE_FALLBACK) continue;
      }
      if (permanent(e)) {
        setChannel("offline");
        showError(e);
        await sleep(30_000);
        continue;
      }
      failures++;
      if (mode === "stream") {
        streamFailures++;
        if (e.unsupported || streamFailures >= STREAM_FAILURES_BEFORE_FALLBACK) {
          mode = "long-poll";
          retryStreamAt = Date.now() + STREAM_RETRY_AFTER_MS;
          streamFailures = 0;
          continue;
        }
      }
      setChannel("offline");
      await sleep(Math.min(30_000, 1000 * 2 ** Math.min(failures, 5)));
    }
  }
}

function startListening() {
  if (listening || !state) return;
  listening = true;
  listen();
}

// ---------------------------------------------------------------------------------------------
// Sign-in (phone.rs `approve`, `decline`; unlock.rs)

let busy = false;
let countdown = null;
/**
 * The sign-in request on screen: {id, json}, `json` exactly as checked and shown. The approval
 * is built from this JSON, never from a newer copy the server sent since.
 */
let shownSignIn = null;

/**
 * Throws unless the request (`json`, as the server sent it) is for the person enrolled here: a
 * request for anyone else is never shown or answered.
 */
function checkForMe(json, what) {
  let uid;
  try {
    uid = JSON.parse(json).uid;
  } catch (_) {
    uid = undefined;
  }
  const mine = state && state.enrolment && state.enrolment.uid;
  if (typeof uid !== "string" || !mine || uid !== mine) {
    const e = new Error(`The server sent a ${what} for someone else (UID ${typeof uid === "string" ? uid : "missing"}); this app holds the card of UID ${mine}. Nothing was signed: tell your RA.`);
    e.notForMe = true;
    throw e;
  }
}

function presentNext() {
  if (current || busy || !state) return;
  if (screen !== "home" && screen !== "loading") return;
  for (const [id, json] of pending) {
    let view;
    try {
      checkForMe(json, "sign-in request");
      view = core.checkSignIn(json, Math.floor(Date.now() / 1000));
    } catch (e) {
      pending.delete(id);
      // Not answered (not even declined), and not shown again when the server lists it.
      if (e.notForMe) answered.add(id);
      showError(e);
      continue;
    }
    current = id;
    shownSignIn = { id, json };
    showSignIn(view);
    buzz();
    return;
  }
  for (const [id, json] of signingPending) {
    if (answered.has(id)) continue;
    try {
      checkForMe(json, "signing request");
    } catch (e) {
      // Not answered (not even declined): it is not this person's to answer.
      signingPending.delete(id);
      answered.add(id);
      showError(e);
      continue;
    }
    current = id;
    if (showSigningRequest(id, json)) buzz();
    else current = null;
    return;
  }
}

function buzz() {
  // Browsers allow vibration only after the person has touched the page.
  if (navigator.vibrate && navigator.userActivation && navigator.userActivation.hasBeenActive) {
    navigator.vibrate(200);
  }
}

function showSignIn(view) {
  // `who` says whether the workstation is registered ("UNREGISTERED WORKSTATION claiming …").
  $("signin-client").textContent = view.who || view.client || "";
  $("signin-organisation").textContent = view.organisation || "—";
  $("signin-address").textContent = view.address || "—";
  const lines = $("signin-lines");
  // The purpose and any notices (renewal, licence); the rest is shown above.
  const shown = /^(Sign-in request from|Organisation:|Address:|Expires in) /;
  lines.replaceChildren(...(view.lines || []).filter((line) => !shown.test(line)).map((line) => {
    const li = document.createElement("li");
    li.textContent = line;
    return li;
  }));
  $("signin-number").value = "";
  $("signin-passcode").value = "";
  $("signin-progress").textContent = "";
  setAnswerButtons(true);
  show("signin");
  const deadline = Date.now() + view.secondsLeft * 1000;
  const tick = () => {
    const left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
    $("signin-time-left").textContent = left > 0
      ? `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`
      : "expired";
    if (left === 0 && !busy) {
      stopCountdown();
      pending.delete(current);
      current = null;
      result("Request expired", closedMessage("expired"));
    }
  };
  stopCountdown();
  tick();
  countdown = setInterval(tick, 1000);
  $("signin-number").focus();
}

function stopCountdown() {
  if (countdown) clearInterval(countdown);
  countdown = null;
}

function setAnswerButtons(enabled) {
  for (const id of ["signin-approve", "signin-decline", "signin-not-me"]) $(id).disabled = !enabled;
}

/**
 * Opens the keystore with `passcode`, checked by the server (unlock.rs `open_keystore`), and
 * answers the WebCrypto wrapping key (non-extractable AES-GCM).
 */
async function openWrappingKey(passcode, progress) {
  const unlocked = await openKeystore(passcode, progress);
  try {
    const raw = unlocked.wrappingKey;
    const wk = await wrappingKey(raw);
    raw.fill(0);
    return wk;
  } finally {
    unlocked.free();
  }
}

/**
 * Opens the keystore with `passcode`, checked by the server (unlock.rs `open_keystore`): the
 * core's `Unlocked` (the caller frees it as soon as the operation is done). A wrong passcode or
 * a locked card throws a `PasscodeError`.
 */
async function openKeystore(passcode, progress) {
  const challengeP = api("POST", PATHS.passcodeChallenge, { device_id: state.deviceId });
  challengeP.catch(() => {});
  progress("Checking your passcode…");
  await painted();
  const stretched = core.stretch(state.keystore, passcode);
  try {
    const challenge = await challengeP;
    const verifier = stretched.verifier;
    const statement = core.passcodeCheckStatement(challenge.challenge_id, challenge.nonce,
      state.deviceId, state.enrolment.card_id, verifier, ORIGIN);
    const signature = await signEcdsa(state.deviceKey, statement);
    let answer;
    try {
      answer = await api("POST", PATHS.passcodeCheck, {
        device_id: state.deviceId,
        card_id: state.enrolment.card_id,
        challenge_id: challenge.challenge_id,
        verifier,
        signature: b64(signature),
      });
    } catch (e) {
      if (e instanceof ServerError && e.code === "card_locked") throw new PasscodeError(e.message, true);
      throw e;
    }
    if (!answer.correct) {
      if (answer.locked) {
        throw new PasscodeError("Wrong passcode. Your card is now locked: ask your RA for an unlock code.", true);
      }
      throw new PasscodeError(`Wrong passcode. ${answer.tries_left} ${answer.tries_left === 1 ? "try" : "tries"} left before the card locks.`, false);
    }
    return core.unlock(state.keystore, stretched, answer.secret);
  } finally {
    stretched.free();
  }
}

async function approve() {
  if (!current || busy || !shownSignIn || shownSignIn.id !== current) return;
  const { id, json } = shownSignIn;
  const numberText = $("signin-number").value.trim();
  const passcode = $("signin-passcode").value;
  clearError();
  if (!/^[0-9]{1,2}$/.test(numberText)) {
    showError("Type the two-digit number shown on the screen you are signing in at.");
    $("signin-number").focus();
    return;
  }
  if (!core.passcodeWellFormed(passcode)) {
    showError("Type your passcode (6 to 64 digits).");
    $("signin-passcode").focus();
    return;
  }
  // The approval covers exactly the request on screen: if the server has since sent a different
  // version of it, nothing is signed.
  const latest = pending.get(id);
  if (latest !== undefined && latest !== json) {
    showError("This sign-in request changed after it was shown; nothing was signed. Decline it and sign in again at the workstation.");
    return;
  }
  const number = Number(numberText);
  const progress = (text) => ($("signin-progress").textContent = text);
  busy = true;
  setAnswerButtons(false);
  try {
    // Checked again now: the request shown must still be for this person and not expired.
    checkForMe(json, "sign-in request");
    const view = core.checkSignIn(json, Math.floor(Date.now() / 1000));
    const wk = await openWrappingKey(passcode, progress);
    $("signin-passcode").value = "";
    progress("Signing…");
    const authKey = await unwrap(state.wrapped.auth, wk, "auth", state.deviceId, ECDSA_P256);
    const statement = core.approvalStatement(json, number, ORIGIN);
    const signature = await signEcdsa(authKey, statement);
    answered.add(id);
    await authed((t) => api("POST", `${PATHS.requests}/${encodeURIComponent(id)}/approve`,
      { number, signature: b64(signature) }, { token: t }));
    finishRequest(id);
    result("Approved", `You are signing in at ${view.client || "the workstation"}.`);
  } catch (e) {
    progress("");
    if (e instanceof PasscodeError && !e.locked) {
      showError(e);
      $("signin-passcode").value = "";
      $("signin-passcode").focus();
    } else if (permanent(e)) {
      // The server refused the answer (a wrong number fails the request): it is over.
      finishRequest(id);
      result("Not approved", e.message);
    } else if (e instanceof PasscodeError) {
      finishRequest(id);
      goLocked(e.message);
    } else {
      answered.delete(id);
      showError(e);
    }
  } finally {
    busy = false;
    setAnswerButtons(true);
  }
}

async function decline(notMe) {
  if (!current || busy) return;
  const id = current;
  busy = true;
  setAnswerButtons(false);
  clearError();
  try {
    answered.add(id);
    await authed((t) => api("POST", `${PATHS.requests}/${encodeURIComponent(id)}/decline`,
      { reason: notMe ? "not-me" : "declined" }, { token: t }));
    finishRequest(id);
    result(notMe ? "Reported" : "Declined", notMe
      ? "Thank you. The request was refused and reported: your organisation is alerted, and new sign-in requests are blocked for a while."
      : "The request was declined. Nobody is signed in.");
  } catch (e) {
    answered.delete(id);
    if (permanent(e)) {
      finishRequest(id);
      result("Request closed", e.message);
    } else {
      showError(e);
    }
  } finally {
    busy = false;
    setAnswerButtons(true);
  }
}

function finishRequest(id) {
  pending.delete(id);
  if (current === id) current = null;
  if (shownSignIn && shownSignIn.id === id) shownSignIn = null;
  stopCountdown();
}

// ---------------------------------------------------------------------------------------------
// Signing: prescription batches and smartcard operations (phone.rs `sign`, signing.rs)
//
// The core reviews the request (core.reviewSigning): it canonicalises the prescriptions, builds
// each SignedInfo, and renders what the prescriber sees from those same bytes. This screen shows
// the core's lines and signs exactly the core's `toSign` bytes, nothing else.

/**
 * The review on screen: {id, json, review}: `json` is the request exactly as reviewed and
 * shown, `review` the core's review of it, which is what is signed.
 */
let shownSigning = null;

/** WebCrypto's hash for the review's algorithm (`RS1` / `RS256`, as vsc-eps names them). */
function rsaHash(algorithm) {
  const a = String(algorithm || "").toLowerCase();
  if (a === "rs1" || a === "rsa-sha1" || a === "sha1") return "SHA-1";
  if (a === "rs256" || a === "rsa-sha256" || a === "sha256") return "SHA-256";
  throw new Error(`This app cannot sign with the algorithm '${algorithm}'.`);
}

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

function lineItems(lines) {
  return lines.map((line) => {
    const li = document.createElement("li");
    li.textContent = line;
    return li;
  });
}

/** Shows a signing request; false (and the request declined) when the core refuses it whole. */
function showSigningRequest(id, json) {
  let review;
  try {
    review = core.reviewSigning(json);
  } catch (e) {
    // Nothing in it can be signed: tell the person and the workstation (as the terminal phone).
    signingPending.delete(id);
    refuseSigning(id);
    result("Signing request refused",
      `This app cannot sign the request from the workstation, and declined it: ${describe(e)}`);
    return false;
  }
  let expires = NaN;
  try {
    expires = Date.parse(JSON.parse(json).expires_at);
  } catch (_) {
    // shown without a countdown
  }
  shownSigning = { id, json, review };
  const card = review.kind === "card";
  const prefix = card ? "card" : "signing";
  if (card) {
    $("card-workstation").textContent = review.workstation || "—";
    const first = review.items[0];
    const slot = first ? first.slot : "";
    $("card-slot").textContent = slot || "—";
    $("card-slot-name").textContent = slot === "9c" ? "(digital signature)"
      : slot === "9a" ? "(authentication)" : "";
    $("card-purpose").textContent = first ? first.lines[0] || "" : "";
    const rest = [];
    for (const item of review.items) rest.push(...item.lines.slice(item === first ? 1 : 0));
    for (const r of review.refused) rest.push(`Refused: ${r.reason}`);
    $("card-lines").replaceChildren(...lineItems(rest));
    $("card-approve").disabled = review.items.length === 0;
  } else {
    $("signing-header").replaceChildren(...lineItems(review.header));
    const what = review.kind === "prepared"
      ? plural(review.items.length, "prepared signature", "prepared signatures")
      : plural(review.items.length, "prescription", "prescriptions");
    $("signing-count").textContent = review.refused.length
      ? `${what} to sign (${review.refused.length} not signed)`
      : what;
    $("signing-items").replaceChildren(...review.items.map((item) => {
      const li = document.createElement("li");
      li.className = item.verified ? "signing-item" : "signing-item unverified";
      li.dataset.id = item.id;
      if (!item.verified) {
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = "Not checked by this phone";
        li.append(badge);
      }
      for (const line of item.lines) {
        const span = document.createElement("span");
        span.className = "item-line";
        span.textContent = line;
        li.append(span);
      }
      return li;
    }));
    $("signing-refused").replaceChildren(...review.refused.map((r) => {
      const li = document.createElement("li");
      li.dataset.id = r.id;
      li.textContent = `${r.id}: ${r.reason}`;
      return li;
    }));
    $("signing-refused-box").hidden = review.refused.length === 0;
    $("signing-approve").textContent = review.items.length ? `Sign ${what}` : "Send the refusal";
  }
  $(`${prefix}-passcode`).value = "";
  $(`${prefix}-progress`).textContent = "";
  setSigningButtons(true);
  show(card ? "card" : "signing");
  stopCountdown();
  if (Number.isFinite(expires)) {
    const tick = () => {
      const left = Math.max(0, Math.round((expires - Date.now()) / 1000));
      $(`${prefix}-time-left`).textContent = left > 0
        ? `Time left: ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`
        : "Expired";
      if (left === 0 && !busy && current === id) {
        stopCountdown();
        signingPending.delete(id);
        current = null;
        shownSigning = null;
        result("Request expired", signingClosedMessage("expired"));
      }
    };
    tick();
    countdown = setInterval(tick, 1000);
  } else {
    $(`${prefix}-time-left`).textContent = "";
  }
  // The prescriber reads from the top; the passcode field is below everything it signs.
  window.scrollTo(0, 0);
  $(`${prefix}-passcode`).focus({ preventScroll: true });
  return true;
}

function setSigningButtons(enabled) {
  const empty = shownSigning && shownSigning.review.items.length === 0;
  for (const id of ["signing-approve", "signing-decline", "card-decline"]) $(id).disabled = !enabled;
  $("card-approve").disabled = !enabled || !!empty;
}

/** Declines a request the core refused whole. */
async function refuseSigning(id) {
  answered.add(id);
  try {
    await authed((t) => api("POST", `${PATHS.signing}/${encodeURIComponent(id)}/decline`,
      { reason: "declined" }, { token: t }));
  } catch (e) {
    console.warn("declining a signing request this app cannot sign failed", e);
  }
}

function finishSigning(id) {
  signingPending.delete(id);
  if (current === id) current = null;
  shownSigning = null;
  stopCountdown();
}

async function approveSigning() {
  if (!shownSigning || busy || current !== shownSigning.id) return;
  const { id, json, review } = shownSigning;
  const card = review.kind === "card";
  const prefix = card ? "card" : "signing";
  const passcodeInput = $(`${prefix}-passcode`);
  const passcode = passcodeInput.value;
  const progress = (text) => ($(`${prefix}-progress`).textContent = text);
  clearError();
  // What is signed is exactly what is on the screen: the core's review of the request as
  // shown. If the server's current version of the request differs from the one shown, nothing
  // is signed.
  try {
    checkForMe(json, "signing request");
  } catch (e) {
    showError(e);
    return;
  }
  const latest = signingPending.get(id);
  if (latest !== undefined && latest !== json) {
    showError("This signing request changed after it was shown; nothing was signed. Decline it and send it again from the workstation.");
    return;
  }
  if (review.items.length && !core.passcodeWellFormed(passcode)) {
    showError("Type your passcode (6 to 64 digits).");
    passcodeInput.focus();
    return;
  }
  busy = true;
  setSigningButtons(false);
  try {
    const signatures = [];
    if (review.items.length) {
      const unlocked = await openKeystore(passcode, progress);
      passcodeInput.value = "";
      try {
        progress(review.items.length > 1 ? `Signing ${review.items.length} items…` : "Signing…");
        if (card) {
          for (const item of review.items) {
            if (!item.slot) throw new Error("A smartcard operation without a slot was not signed.");
            const signature = unlocked.signPivDigest(item.slot, unb64(item.toSign));
            signatures.push({ id: item.id, signature: b64(signature) });
          }
        } else {
          const raw = unlocked.wrappingKey;
          const wk = await wrappingKey(raw);
          raw.fill(0);
          const hash = rsaHash(review.algorithm);
          const signingKey = await unwrap(state.wrapped.signing, wk, "signing", state.deviceId,
            { name: "RSASSA-PKCS1-v1_5", hash });
          for (const item of review.items) {
            if (item.slot) throw new Error("A prescription item named a smartcard slot; nothing was signed.");
            const signature = await crypto.subtle.sign("RSASSA-PKCS1-v1_5", signingKey, unb64(item.toSign));
            signatures.push({ id: item.id, signature: b64(new Uint8Array(signature)) });
          }
        }
      } finally {
        unlocked.free();
      }
    }
    progress("Sending the signatures…");
    answered.add(id);
    const outcome = await authed((t) => api("POST", `${PATHS.signing}/${encodeURIComponent(id)}/complete`,
      { signatures, refused: review.refused.map((r) => ({ id: r.id, reason: r.reason })) }, { token: t }));
    finishSigning(id);
    const failed = (outcome && outcome.failed_signatures) || [];
    const signed = (outcome && outcome.signatures ? outcome.signatures.length : signatures.length);
    const done = card
      ? "Your smartcard key was used."
      : `Signed ${plural(signed, review.kind === "prepared" ? "item" : "prescription",
        review.kind === "prepared" ? "items" : "prescriptions")}.`;
    const notDone = failed.length
      ? " Not signed: " + failed.map((f) => `${f.id} (${f.reason})`).join("; ") + "."
      : "";
    result(signed || card ? (card ? "Allowed" : "Signed") : "Not signed", done + notDone);
  } catch (e) {
    progress("");
    if (e instanceof PasscodeError && !e.locked) {
      showError(e);
      passcodeInput.value = "";
      passcodeInput.focus();
    } else if (e instanceof PasscodeError) {
      finishSigning(id);
      goLocked(e.message);
    } else if (permanent(e)) {
      finishSigning(id);
      result("Not signed", e.message);
    } else {
      answered.delete(id);
      showError(e);
    }
  } finally {
    busy = false;
    setSigningButtons(true);
  }
}

async function declineSigning() {
  if (!shownSigning || busy || current !== shownSigning.id) return;
  const { id } = shownSigning;
  const card = shownSigning.review.kind === "card";
  busy = true;
  setSigningButtons(false);
  clearError();
  try {
    answered.add(id);
    await authed((t) => api("POST", `${PATHS.signing}/${encodeURIComponent(id)}/decline`,
      { reason: "declined" }, { token: t }));
    finishSigning(id);
    result("Declined", card
      ? "The smartcard operation was declined. Nothing was signed."
      : "The signing request was declined. Nothing was signed.");
  } catch (e) {
    answered.delete(id);
    if (permanent(e)) {
      finishSigning(id);
      result("Request closed", e.message);
    } else {
      showError(e);
    }
  } finally {
    busy = false;
    setSigningButtons(true);
  }
}

// ---------------------------------------------------------------------------------------------
// Locked card and the RA's unlock code (flows.rs `redeem_unlock`)

/** Shows the unlock screen (after a lock, or from an unlock link); remembers the lock. */
function goLocked(message, codeOrLink) {
  if (!state) {
    show("welcome");
    showError("This app holds no card yet: set it up with your activation link first.");
    return;
  }
  if (message) {
    state.locked = true;
    save({ locked: true }).catch(() => {});
  }
  // An unlock link shows as the code it carries (checked for this server and CA now; a link
  // for another server stays as it is and says why).
  let filled = codeOrLink || "";
  let linkProblem = null;
  if (filled) {
    try {
      filled = core.parseUnlock(filled, ORIGIN, state.enrolment.ca_fingerprint || "");
    } catch (e) {
      linkProblem = e;
    }
  }
  $("unlock-code").value = filled;
  $("unlock-passcode").value = "";
  $("unlock-passcode-again").value = "";
  $("unlock-progress").textContent = "";
  show("locked");
  if (message) showError(message);
  if (linkProblem) showError(linkProblem);
  (filled && !linkProblem ? $("unlock-passcode") : $("unlock-code")).focus();
}

async function redeemUnlock() {
  if (busy || !state) return;
  clearError();
  const input = $("unlock-code").value;
  const passcode = $("unlock-passcode").value;
  const again = $("unlock-passcode-again").value;
  let code;
  try {
    code = core.parseUnlock(input, ORIGIN, state.enrolment.ca_fingerprint || "");
  } catch (e) {
    showError(e);
    $("unlock-code").focus();
    return;
  }
  if (!core.passcodeWellFormed(passcode)) {
    showError("The new passcode must be 6 to 64 digits (numbers only).");
    $("unlock-passcode").focus();
    return;
  }
  if (passcode !== again) {
    showError("The two passcodes are not the same. Type the same passcode twice.");
    $("unlock-passcode-again").focus();
    return;
  }
  const progress = (text) => ($("unlock-progress").textContent = text);
  busy = true;
  $("unlock-submit").disabled = true;
  let prepared = null;
  try {
    const challengeP = api("POST", PATHS.unlockChallenge, { device_id: state.deviceId });
    challengeP.catch(() => {});
    progress("Preparing your new passcode (a few seconds)…");
    await painted();
    prepared = core.newPasscode(passcode);
    const challenge = await challengeP;
    const verifier = prepared.verifier;
    const secret = prepared.secret;
    const statement = core.unlockStatement(challenge.challenge_id, challenge.nonce, state.deviceId,
      code, verifier, secret, ORIGIN);
    const signature = await signEcdsa(state.deviceKey, statement);
    progress("Unlocking your card…");
    const answer = await api("POST", PATHS.unlock, {
      unlock_code: code,
      challenge_id: challenge.challenge_id,
      signature: b64(signature),
      passcode_verifier: verifier,
      passcode_secret: secret,
    });
    // The server now checks the new passcode: the keystore must be re-wrapped under it with the
    // recovery key it released. (If this page stops here, a second unlock code puts it right.)
    const keystore = core.installPasscode(state.keystore, prepared, answer.recovery_key);
    await save({ keystore, locked: false });
    await loadState();
    $("unlock-passcode").value = "";
    $("unlock-passcode-again").value = "";
    $("unlock-code").value = "";
    progress("");
    result("Card unlocked", "Your card is unlocked. Use your new passcode from now on.");
  } catch (e) {
    progress("");
    showError(e);
  } finally {
    if (prepared) prepared.free();
    busy = false;
    $("unlock-submit").disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Status

function renderHome() {
  const e = state.enrolment;
  $("status-name").textContent = `${e.given_name} ${e.family_name}`;
  $("status-uid").textContent = e.uid;
  $("status-card").textContent = e.card_id;
  $("status-server").textContent = e.server;
  $("status-version").textContent = VERSION;
  const list = $("status-certificates");
  list.replaceChildren();
  for (const [what, pem] of [
    ["Authentication", e.auth_certificate],
    ["Signing", e.signing_certificate],
    ["Smartcard authentication (9A)", e.piv_auth_certificate],
    ["Smartcard signature (9C)", e.piv_signing_certificate],
  ]) {
    if (!pem) continue;
    const li = document.createElement("li");
    const title = document.createElement("span");
    title.className = "what";
    title.textContent = what;
    const detail = document.createElement("span");
    detail.className = "detail";
    try {
      const facts = core.certificateFacts(pem);
      const expiry = facts.notAfter ? facts.notAfter.slice(0, 10) : "unknown";
      detail.append("expires " + expiry + " · serial ");
      const serial = document.createElement("span");
      serial.className = "mono";
      serial.textContent = facts.serial;
      detail.append(serial);
    } catch (err) {
      detail.textContent = describe(err);
    }
    li.append(title, detail);
    list.append(li);
  }
  $("home-locked").hidden = !state.locked;
  pushOffer().catch(() => {});
}

// ---------------------------------------------------------------------------------------------
// Card PIN (phone.rs `set_card_pin`): the PIN the agent asks for when the smartcard is used.

async function setCardPin() {
  if (!state || busy) return;
  clearError();
  const first = $("pin-new");
  const again = $("pin-again");
  const stateText = $("pin-state");
  const pin = first.value;
  if (!core.pinWellFormed(pin)) {
    const { min, max } = core.pinLengths();
    showError(`A card PIN is ${min} to ${max} digits.`);
    first.focus();
    return;
  }
  if (again.value !== pin) {
    showError("The two PINs differ. Type the same PIN twice.");
    again.value = "";
    again.focus();
    return;
  }
  const button = $("pin-set");
  button.disabled = true;
  stateText.textContent = "Setting the card PIN…";
  try {
    await authed((t) => api("POST", PATHS.cardPin, { pin }, { token: t }));
    first.value = "";
    again.value = "";
    stateText.textContent = "Card PIN set. Your computer asks for it when it uses your smartcard.";
  } catch (e) {
    stateText.textContent = "";
    showError(e);
  } finally {
    button.disabled = false;
  }
}

function goHome() {
  if (!state) {
    show("welcome");
    return;
  }
  renderHome();
  show("home");
  presentNext();
}

// ---------------------------------------------------------------------------------------------
// Web Push: a notice wakes the app when it is closed (only a request id; the app fetches it).

function pushSupported() {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

/** The push button and what it says (`#push-state`): on, off, blocked or not available. */
async function pushOffer() {
  const button = $("push-enable");
  const stateText = $("push-state");
  if (!pushSupported()) {
    button.hidden = true;
    stateText.textContent = "Notifications: not available in this browser.";
    return;
  }
  button.hidden = false;
  if (Notification.permission === "denied") {
    stateText.textContent = "Notifications: blocked in this browser's settings.";
    return;
  }
  const registration = await navigator.serviceWorker.getRegistration();
  const subscription = registration ? await registration.pushManager.getSubscription() : null;
  const on = !!subscription && Notification.permission === "granted";
  button.textContent = on ? "Renew notifications" : "Notify me when the app is closed";
  stateText.textContent = on ? "Notifications: on." : "Notifications: off.";
}

/** A promise that fails after `ms` with `message`. */
function within(promise, ms, message) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms))),
  ]).finally(() => clearTimeout(timer));
}

async function enablePush() {
  clearError();
  const button = $("push-enable");
  if (!pushSupported()) {
    showError("This browser cannot show notifications for web apps; keep the app open to receive requests.");
    return;
  }
  button.disabled = true;
  $("push-state").textContent = "Notifications: turning on…";
  try {
    const permission = await Notification.requestPermission();
    if (permission !== "granted") {
      throw new Error("Notifications are not allowed for this app; requests arrive only while it is open.");
    }
    const registration = await within(navigator.serviceWorker.ready, 10_000,
      "The app's service worker is not running here (it needs https), so notifications cannot be turned on.");
    const status = await authed((t) => api("GET", PATHS.push, null, { token: t }));
    if (!status || !status.application_server_key) {
      throw new Error("The server does not send notifications (it has no push key).");
    }
    const serverKey = unb64(status.application_server_key);
    let subscription = await registration.pushManager.getSubscription();
    if (subscription) {
      // A subscription made for another server key cannot be used: replace it.
      const key = subscription.options && subscription.options.applicationServerKey;
      if (key && !sameBytes(new Uint8Array(key), serverKey)) {
        await subscription.unsubscribe();
        subscription = null;
      }
    }
    if (!subscription) {
      try {
        subscription = await within(registration.pushManager.subscribe({
          userVisibleOnly: true,
          applicationServerKey: serverKey,
        }), 20_000, "The browser's push service did not answer (it needs the internet); " +
          "notifications stay off. Keep the app open to receive requests.");
      } catch (e) {
        if (/push service did not answer/.test(e.message)) throw e;
        throw new Error("The browser's push service refused the subscription: " + describe(e));
      }
    }
    await authed((t) => api("POST", PATHS.pushSubscription, subscription.toJSON(), { token: t }));
  } catch (e) {
    showError(e);
  } finally {
    button.disabled = false;
    await pushOffer().catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------
// QR scanning: BarcodeDetector where the browser has it, the core's decoder otherwise.

let scanning = null;

async function scanQr() {
  clearError();
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showError("This browser cannot use the camera here. Paste the activation link instead.");
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
  } catch (e) {
    showError("The camera is not available: " + describe(e) + " Paste the activation link instead.");
    return;
  }
  const video = $("scanner-video");
  video.srcObject = stream;
  $("scanner").hidden = false;
  await video.play().catch(() => {});
  const detector = "BarcodeDetector" in window
    ? new window.BarcodeDetector({ formats: ["qr_code"] })
    : null;
  const canvas = document.createElement("canvas");
  const context = canvas.getContext("2d", { willReadFrequently: true });
  const session = { stop: false };
  scanning = session;
  const stop = () => {
    session.stop = true;
    for (const track of stream.getTracks()) track.stop();
    video.srcObject = null;
    $("scanner").hidden = true;
    if (scanning === session) scanning = null;
  };
  session.close = stop;
  while (!session.stop) {
    await sleep(250);
    if (session.stop || video.readyState < 2) continue;
    let text;
    try {
      if (detector) {
        const codes = await detector.detect(video);
        text = codes.length ? codes[0].rawValue : undefined;
      } else {
        const w = video.videoWidth;
        const h = video.videoHeight;
        if (!w || !h) continue;
        canvas.width = w;
        canvas.height = h;
        context.drawImage(video, 0, 0, w, h);
        const rgba = context.getImageData(0, 0, w, h).data;
        const luma = new Uint8Array(w * h);
        for (let i = 0, j = 0; j < luma.length; i += 4, j++) {
          luma[j] = (rgba[i] * 77 + rgba[i + 1] * 150 + rgba[i + 2] * 29) >> 8;
        }
        text = core.decodeQr(luma, w, h);
      }
    } catch (e) {
      console.warn("QR decoding failed on a frame", e);
    }
    if (text) {
      stop();
      $("activation-link").value = text;
      startEnrol(text);
      return;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Start

function wire() {
  // The forms never go anywhere (the CSP has form-action 'none'): their submit events (a tap
  // on the button, or Enter / Go on the keyboard) run the step.
  $("link-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const link = $("activation-link").value.trim();
    if (!link) {
      showError("Paste the activation link from your letter, or scan its QR code.");
      return;
    }
    startEnrol(link);
  });
  $("scan-qr").addEventListener("click", () => scanQr());
  $("scan-cancel").addEventListener("click", () => scanning && scanning.close());
  $("enrol-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    enrol();
  });
  $("enrol-back").addEventListener("click", () => {
    activationLink = "";
    goHome();
  });
  $("signin-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    approve();
  });
  $("signin-number").addEventListener("input", () => {
    const v = $("signin-number").value.replace(/[^0-9]/g, "").slice(0, 2);
    $("signin-number").value = v;
    if (v.length === 2) $("signin-passcode").focus();
  });
  $("signin-decline").addEventListener("click", () => decline(false));
  $("signin-not-me").addEventListener("click", () => decline(true));
  $("result-done").addEventListener("click", () => goHome());
  $("signing-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    approveSigning();
  });
  $("signing-decline").addEventListener("click", () => declineSigning());
  $("card-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    approveSigning();
  });
  $("card-decline").addEventListener("click", () => declineSigning());
  $("unlock-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    redeemUnlock();
  });
  $("unlock-back").addEventListener("click", () => goHome());
  $("home-unlock").addEventListener("click", () => goLocked(""));
  $("push-enable").addEventListener("click", () => enablePush());
  $("pin-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    setCardPin();
  });
  // A link opened while the app is already open changes only the fragment.
  window.addEventListener("hashchange", () => {
    if (!VERSION || busy) return;
    const link = ORIGIN + location.pathname + location.hash;
    if (/^#code=/.test(location.hash)) {
      history.replaceState(null, "", location.pathname + location.search);
      $("activation-link").value = link;
      startEnrol(link);
    } else if (/^#unlock=1&/.test(location.hash)) {
      history.replaceState(null, "", location.pathname + location.search);
      goLocked("", link);
    }
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && state) resync().catch(() => {});
  });
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.addEventListener("message", (ev) => {
      if (ev.data && ev.data.type === "push" && state) resync().catch(() => {});
    });
  }
}

async function registerServiceWorker() {
  if (!("serviceWorker" in navigator)) return;
  try {
    await navigator.serviceWorker.register("sw.js", { scope: "./" });
  } catch (e) {
    // Offline use and notifications need it; the app works without (for example on a server
    // whose certificate the browser accepts only by exception).
    console.warn("the service worker was not registered", e);
  }
}

async function start() {
  wire();
  // The link's code is a secret: out of the address bar (and history) at once.
  let linkFromUrl = "";
  let unlockFromUrl = "";
  if (/^#code=/.test(location.hash)) {
    linkFromUrl = ORIGIN + location.pathname + location.hash;
    history.replaceState(null, "", location.pathname + location.search);
  } else if (/^#unlock=1&/.test(location.hash)) {
    unlockFromUrl = ORIGIN + location.pathname + location.hash;
    history.replaceState(null, "", location.pathname + location.search);
  }
  try {
    // The server pins the core's bytes in the page: without that pin the core is not loaded.
    const integrity = document.querySelector('meta[name="vsc-core-integrity"]');
    const pin = integrity ? (integrity.getAttribute("content") || "").trim() : "";
    if (!/^sha(256|384|512)-[A-Za-z0-9+/]+={0,2}$/.test(pin)) {
      throw new Error("The page does not say which core it expects (its integrity value is missing).");
    }
    const wasm = new URL("pkg/vsc_phone_web_bg.wasm", import.meta.url);
    await init({ module_or_path: fetch(wasm, { integrity: pin }) });
    VERSION = core.version();
  } catch (e) {
    $("loading-detail").textContent = "";
    showError("The app's core did not load: " + describe(e) + " Reload the page; if this persists, the app may have been tampered with.");
    return;
  }
  try {
    await loadState();
  } catch (e) {
    showError(e);
    return;
  }
  registerServiceWorker();
  if (linkFromUrl) {
    $("activation-link").value = linkFromUrl;
    startEnrol(linkFromUrl);
  } else if (unlockFromUrl) {
    goLocked("", unlockFromUrl);
  } else if (state && state.locked) {
    goLocked("");
  } else {
    goHome();
  }
  if (state) {
    startListening();
  }
}

start();
