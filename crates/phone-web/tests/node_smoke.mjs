// Smoke test of the WebAssembly build through its JS bindings (the `--target web` module the
// app loads, crates/server/app/pkg), with Node's WebCrypto standing in for the browser's: the
// calls the app makes, checked against WebCrypto and OpenSSL. Run by tests/wasm_in_node.rs:
//   node crates/phone-web/tests/node_smoke.mjs crates/server/app/pkg
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const pkg = path.resolve(process.argv[2] || 'crates/server/app/pkg');
const core = await import(pathToFileURL(path.join(pkg, 'vsc_phone_web.js')).href);
// The app calls the default `init()`, which fetches the .wasm; here the bytes are at hand.
core.initSync({ module: fs.readFileSync(path.join(pkg, 'vsc_phone_web_bg.wasm')) });
const subtle = globalThis.crypto.subtle;

function pem(label, der) {
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

function opensslVerifiesCsr(der) {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'csr-')), 'req.pem');
  fs.writeFileSync(file, pem('CERTIFICATE REQUEST', der));
  const out = execFileSync('openssl', ['req', '-in', file, '-noout', '-verify', '-subject'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  }).toString();
  return out;
}

let passed = 0;
let failed = 0;
const ok = (name) => { passed += 1; console.log(`ok - ${name}`); };

// The checks build on each other: the first failure ends the run (and is counted).
(async () => {

  assert.match(core.version(), /^\d+\.\d+\.\d+/);
  ok('version');

  const fp = 'ab'.repeat(32);
  const a = core.parseActivation(`https://vsc.example/activate#code=C0DE&fp=${fp}`, 'https://vsc.example');
  assert.deepEqual(a, { code: 'C0DE', caFingerprint: fp });
  assert.throws(() => core.parseActivation(`https://evil.example/activate#code=C&fp=${fp}`, 'https://vsc.example'), /activation link is for/);
  ok('parseActivation');

  const t0 = Date.now();
  const store = core.createKeystore('135790', 'Dr Ada Example');
  console.log(`# createKeystore took ${Date.now() - t0} ms`);
  assert.throws(() => core.createKeystore('123', 'x'), /6 to 64 digits/);
  const doc = store.store;
  const verifier = store.verifier;
  const secret = store.secret;
  const wrappingKey = store.wrappingKey;
  assert.equal(wrappingKey.length, 32);
  for (const csr of [store.pivAuthCsr, store.pivSigningCsr]) {
    assert.match(opensslVerifiesCsr(Buffer.from(csr, 'base64')), /Dr Ada Example/);
  }
  ok('createKeystore (PIV CSRs verify with openssl)');

  const stretched = core.stretch(doc, '135790');
  assert.equal(stretched.verifier, verifier);
  const unlocked = core.unlock(doc, stretched, secret);
  assert.deepEqual(Buffer.from(unlocked.wrappingKey), Buffer.from(wrappingKey));
  const wrong = core.stretch(doc, '135791');
  assert.notEqual(wrong.verifier, verifier);
  assert.throws(() => core.unlock(doc, wrong, secret), /wrong passcode or secret/);
  ok('stretch / unlock / wrong passcode');

  // The wrapping key works in WebCrypto as the app uses it: wrap a PKCS#8 key, unwrap it.
  const wk = await subtle.importKey('raw', unlocked.wrappingKey, 'AES-GCM', false, ['wrapKey', 'unwrapKey']);
  const auth = await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const wrapped = await subtle.wrapKey('pkcs8', auth.privateKey, wk, { name: 'AES-GCM', iv });
  const back = await subtle.unwrapKey('pkcs8', wrapped, wk, { name: 'AES-GCM', iv },
    { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  assert.equal(back.extractable, false);
  ok('wrapping key in WebCrypto');

  // CSR for a WebCrypto key: csrInfo -> WebCrypto sign (P1363) -> ecdsaDer -> csrAssemble.
  const spki = new Uint8Array(await subtle.exportKey('spki', auth.publicKey));
  const info = core.csrInfo(spki, 'Dr Ada Example');
  const p1363 = new Uint8Array(await subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, back, info));
  const csr = core.csrAssemble(info, 'ecdsa-p256-sha256', core.ecdsaDer(p1363));
  assert.match(opensslVerifiesCsr(csr), /Dr Ada Example/);
  const rsa = await subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048,
    publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, false, ['sign', 'verify']);
  const rinfo = core.csrInfo(new Uint8Array(await subtle.exportKey('spki', rsa.publicKey)), 'Dr Ada Example');
  const rsig = new Uint8Array(await subtle.sign('RSASSA-PKCS1-v1_5', rsa.privateKey, rinfo));
  assert.match(opensslVerifiesCsr(core.csrAssemble(rinfo, 'rsa-sha256', rsig)), /Dr Ada Example/);
  ok('CSRs signed by WebCrypto (ECDSA and RSA) verify with openssl');

  // PIV digest signature: verify with WebCrypto over the message whose SHA-256 was signed.
  const msg = new TextEncoder().encode('a challenge from the middleware');
  const digest = new Uint8Array(await subtle.digest('SHA-256', msg));
  const der = unlocked.signPivDigest('9c', digest);
  assert.throws(() => unlocked.signPivDigest('9d', digest), /unknown smartcard slot/);
  // The 9C public key is the CSR's; take it from the CSR via openssl.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'piv-'));
  fs.writeFileSync(path.join(dir, 'req.pem'), pem('CERTIFICATE REQUEST', Buffer.from(store.pivSigningCsr, 'base64')));
  execFileSync('openssl', ['req', '-in', path.join(dir, 'req.pem'), '-noout', '-pubkey', '-out', path.join(dir, 'pub.pem')]);
  fs.writeFileSync(path.join(dir, 'msg'), msg);
  fs.writeFileSync(path.join(dir, 'sig'), der);
  const v = execFileSync('openssl', ['dgst', '-sha256', '-verify', path.join(dir, 'pub.pem'),
    '-signature', path.join(dir, 'sig'), path.join(dir, 'msg')]).toString();
  assert.match(v, /Verified OK/);
  ok('signPivDigest verifies with openssl');

  const stmt = core.passcodeCheckStatement('ch', 'bm9uY2U=', 'dev', 'card', verifier, 'https://vsc.example');
  assert.match(new TextDecoder().decode(stmt), /^vsc-passcode-check\/v1\n/);
  const dt = core.deviceTokenStatement('ch', 'bm9uY2U=', 'dev', 'https://vsc.example');
  assert.match(new TextDecoder().decode(dt), /^vsc-device-token\/v1\n/);
  ok('statements');

  assert.throws(() => core.checkSignIn('{"request_id":"x"}', Date.now() / 1000), /cannot be read/);
  // A sign-in request whose context digest is computed here, independently of the core
  // (vsc_proto::signin::context_digest: length-prefixed fields, then the creation time).
  const now = Math.floor(Date.now() / 1000);
  const context = {
    workstation_id: 'ws-1', workstation_name: 'WARD-7-PC-03', client_address: '10.0.0.7',
    agent_version: '0.1.0', purpose: 'Sign in to clinical systems', registered: true,
    organisation: 'RX1', organisation_name: 'Example Trust',
  };
  const enc = new TextEncoder();
  const parts = [enc.encode('vsc-auth-context/v2')];
  for (const f of [context.workstation_id, context.workstation_name, context.client_address,
    context.agent_version, context.purpose, 'registered', context.organisation,
    context.organisation_name]) {
    const bytes = enc.encode(f);
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(bytes.length));
    parts.push(len, bytes);
  }
  const created = new Uint8Array(8);
  new DataView(created.buffer).setBigInt64(0, BigInt(now - 5));
  parts.push(created);
  const digestHex = Buffer.from(await subtle.digest('SHA-256', Buffer.concat(parts))).toString('hex');
  const request = {
    request_id: 'req_1', uid: '555000000001', nonce: 'bm9uY2U=', context,
    context_digest: digestHex, created_at: now - 5,
    expires_at: new Date((now + 60) * 1000).toISOString().replace(/\.\d+Z$/, 'Z'),
  };
  const view = core.checkSignIn(JSON.stringify(request), now);
  assert.equal(view.requestId, 'req_1');
  assert.equal(view.organisation, 'Example Trust (RX1)');
  assert.equal(view.address, '10.0.0.7');
  assert.equal(view.client, 'WARD-7-PC-03');
  assert.equal(view.secondsLeft, 60);
  assert.ok(view.lines.length >= 4);
  const approval = new TextDecoder().decode(core.approvalStatement(JSON.stringify(request), 7, 'https://vsc.example'));
  assert.ok(approval.includes(`context=${digestHex}\nnumber=07\n`));
  assert.throws(() => core.approvalStatement(JSON.stringify(request), 100, 'https://vsc.example'), /two-digit/);
  const tampered = { ...request, context: { ...context, workstation_name: 'OTHER-PC' } };
  assert.throws(() => core.checkSignIn(JSON.stringify(tampered), now), /do not match/);
  assert.throws(() => core.checkSignIn(JSON.stringify(request), now + 61), /has expired/);
  ok('checkSignIn / approvalStatement (digest computed independently; tampered, expired refused)');

  const review = core.reviewSigning(JSON.stringify({
    request_id: 'r1', uid: 'u', kind: 'card', algorithm: '', workstation: 'WARD-7', role: '',
    created_at: '2026-01-01T00:00:00Z', expires_at: '2026-01-01T00:05:00Z',
    items: [{ id: 'a', slot: '9a', payload: Buffer.from(digest).toString('base64') }],
  }));
  assert.equal(review.items[0].slot, '9a');
  assert.equal(review.items[0].toSign, Buffer.from(digest).toString('base64'));
  assert.equal(review.kind, 'card');
  assert.equal(review.workstation, 'WARD-7');
  // The card screen's path: the core's PIV key over the core's digest.
  const cardSig = unlocked.signPivDigest(review.items[0].slot, Buffer.from(review.items[0].toSign, 'base64'));
  fs.writeFileSync(path.join(dir, 'sig9a'), cardSig);
  fs.writeFileSync(path.join(dir, 'req9a.pem'), pem('CERTIFICATE REQUEST', Buffer.from(store.pivAuthCsr, 'base64')));
  execFileSync('openssl', ['req', '-in', path.join(dir, 'req9a.pem'), '-noout', '-pubkey', '-out', path.join(dir, 'pub9a.pem')]);
  assert.match(execFileSync('openssl', ['dgst', '-sha256', '-verify', path.join(dir, 'pub9a.pem'),
    '-signature', path.join(dir, 'sig9a'), path.join(dir, 'msg')]).toString(), /Verified OK/);
  ok('reviewSigning (card): signPivDigest over the review\'s digest verifies with openssl');

  // The prescription screen's path for prepared SignedInfo with RS1: the RSA key wrapped under
  // the wrapping key, unwrapped non-extractable with SHA-1, signs the core's bytes.
  const rsaKey = await subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048,
    publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true, ['sign', 'verify']);
  const riv = globalThis.crypto.getRandomValues(new Uint8Array(12));
  const rwrapped = await subtle.wrapKey('pkcs8', rsaKey.privateKey, wk, { name: 'AES-GCM', iv: riv });
  const signedInfo = '<SignedInfo xmlns="http://www.w3.org/2000/09/xmldsig#">'
    + '<CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"></CanonicalizationMethod>'
    + '<SignatureMethod Algorithm="http://www.w3.org/2000/09/xmldsig#rsa-sha1"></SignatureMethod>'
    + '<Reference><Transforms><Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"></Transform></Transforms>'
    + '<DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"></DigestMethod>'
    + '<DigestValue>qZk+NkcGgWq6PiVxeFDCbJzQ2J0=</DigestValue></Reference></SignedInfo>';
  const prepared = core.reviewSigning(JSON.stringify({
    request_id: 'r2', uid: 'u', kind: 'prepared', algorithm: 'RS1', workstation: 'WARD-7', role: 'Doctor',
    created_at: '2026-01-01T00:00:00Z', expires_at: '2026-01-01T00:05:00Z',
    items: [
      { id: 'p1', payload: Buffer.from(signedInfo).toString('base64'), description: 'Rx for J Smith' },
      { id: 'p2', payload: Buffer.from('not xml').toString('base64') },
    ],
  }));
  assert.equal(prepared.kind, 'prepared');
  assert.equal(prepared.algorithm, 'RS1');
  assert.equal(prepared.items.length, 1);
  assert.equal(prepared.items[0].verified, false);
  assert.equal(prepared.items[0].slot, null);
  assert.equal(prepared.refused.length, 1);
  assert.equal(prepared.refused[0].id, 'p2');
  const rsaSha1 = await subtle.unwrapKey('pkcs8', rwrapped, wk, { name: 'AES-GCM', iv: riv },
    { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-1' }, false, ['sign']);
  assert.equal(rsaSha1.extractable, false);
  const rsig1 = new Uint8Array(await subtle.sign('RSASSA-PKCS1-v1_5', rsaSha1,
    Buffer.from(prepared.items[0].toSign, 'base64')));
  fs.writeFileSync(path.join(dir, 'si'), signedInfo);
  fs.writeFileSync(path.join(dir, 'si.sig'), rsig1);
  fs.writeFileSync(path.join(dir, 'rsa.pem'), pem('PUBLIC KEY', new Uint8Array(await subtle.exportKey('spki', rsaKey.publicKey))));
  assert.match(execFileSync('openssl', ['dgst', '-sha1', '-verify', path.join(dir, 'rsa.pem'),
    '-signature', path.join(dir, 'si.sig'), path.join(dir, 'si')]).toString(), /Verified OK/);
  ok('reviewSigning (prepared, RS1): WebCrypto RSA/SHA-1 over the core\'s SignedInfo verifies with openssl');

  // RA unlock (flows.rs redeem_unlock): the new passcode's verifier and secret first, then the
  // recovery key re-wraps the data key under them; the keys stay the same.
  assert.throws(() => core.newPasscode('12'), /6 to 64 digits/);
  const np = core.newPasscode('24681357');
  const code = core.parseUnlock(`https://vsc.example/unlock#code=k7qf3m2a9xh4pr2dw8tc5n6b&fp=${fp}`,
    'https://vsc.example', fp);
  assert.equal(code, 'K7QF3M2A-9XH4-PR2D-W8TC-5N6B');
  assert.throws(() => core.parseUnlock(`https://vsc.example/unlock#code=${code}&fp=${'1'.repeat(64)}`,
    'https://vsc.example', fp), /another CA/);
  const us = new TextDecoder().decode(core.unlockStatement('ch', 'bm9uY2U=', 'dev', code, np.verifier,
    np.secret, 'https://vsc.example'));
  assert.match(us, /^vsc-device-unlock\/v1\nchallenge=ch\n/);
  assert.throws(() => core.installPasscode(doc, np, Buffer.alloc(32, 7).toString('base64')), /recovery key/);
  const doc2 = core.installPasscode(doc, np, store.recoveryKey);
  const st2 = core.stretch(doc2, '24681357');
  assert.equal(st2.verifier, np.verifier);
  const un2 = core.unlock(doc2, st2, np.secret);
  assert.deepEqual(Buffer.from(un2.wrappingKey), Buffer.from(wrappingKey));
  assert.throws(() => core.unlock(doc2, stretched, secret), /wrong passcode/);
  un2.free(); st2.free(); np.free();
  ok('RA unlock: newPasscode, parseUnlock, unlockStatement, installPasscode');

  assert.equal(core.decodeQr(new Uint8Array(100), 10, 10), undefined);
  ok('decodeQr (no code)');

  // A certificate made by OpenSSL: the core reads its serial, expiry and key.
  const cdir = fs.mkdtempSync(path.join(os.tmpdir(), 'cert-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
    '-nodes', '-keyout', path.join(cdir, 'key.pem'), '-out', path.join(cdir, 'cert.pem'),
    '-subj', '/CN=Dr Ada Example', '-set_serial', '0x0a1b2c3d4e', '-days', '30'], { stdio: 'ignore' });
  const certPem = fs.readFileSync(path.join(cdir, 'cert.pem'), 'utf8');
  const certSpki = new Uint8Array(execFileSync('openssl', ['pkey', '-in', path.join(cdir, 'key.pem'),
    '-pubout', '-outform', 'DER']));
  const enddate = execFileSync('openssl', ['x509', '-in', path.join(cdir, 'cert.pem'), '-noout',
    '-enddate']).toString().trim().replace(/^notAfter=/, '');
  const facts = core.certificateFacts(certPem, certSpki);
  assert.equal(facts.serial, '0a1b2c3d4e');
  assert.equal(Date.parse(facts.notAfter), Date.parse(enddate));
  assert.equal(facts.spkiMatches, true);
  assert.equal(core.certificateFacts(certPem, spki).spkiMatches, false);
  assert.equal(core.certificateFacts(certPem).spkiMatches, null);
  assert.throws(() => core.certificateFacts('no certificate here'), /no certificate/);
  ok('certificateFacts (serial, expiry, key of an OpenSSL certificate)');

  for (const good of ['123456', '1'.repeat(64)]) assert.equal(core.passcodeWellFormed(good), true);
  for (const bad of ['12345', '1'.repeat(65), '12345a', ' 123456', '']) {
    assert.equal(core.passcodeWellFormed(bad), false);
  }
  for (const good of ['123456', '12345678']) assert.equal(core.pinWellFormed(good), true);
  for (const bad of ['12345', '123456789', '12345a']) assert.equal(core.pinWellFormed(bad), false);
  assert.deepEqual(core.pinLengths(), { min: 6, max: 8 });
  ok('passcodeWellFormed, pinWellFormed, pinLengths');

  stretched.free(); wrong.free(); unlocked.free(); store.free();
})().catch((e) => {
  failed += 1;
  console.error(`not ok - ${e && e.stack ? e.stack : e}`);
}).finally(() => {
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
});
