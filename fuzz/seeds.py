#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets, fuzz/corpus/<target>/: small valid inputs as the
real peers send them, plus edge cases. `cargo test -p vsc-fuzz-harness` replays every file through
its target (crates/fuzz-harness/tests/corpus.rs), so the seeds stay valid.

    python3 fuzz/seeds.py              # every target
    python3 fuzz/seeds.py csr json     # only these

Each run rewrites the named targets' directories. Needs `openssl` (csr, eps_der: their keys are
generated afresh, so those seeds' bytes change on every run) and python3-lxml (fragments). The EPS
seeds come from the NHS England vectors in crates/eps/tests/data (copies of shared/interop/eps).
Keep the whole corpus small (a few dozen files per target, < 1 MiB in all): the fuzzer finds the
rest."""
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

FUZZ = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(FUZZ)
EPS_DATA = os.path.join(ROOT, "crates", "eps", "tests", "data")
HL7 = "urn:hl7-org:v3"
DSIG = "http://www.w3.org/2000/09/xmldsig#"


def eps(name):
    with open(os.path.join(EPS_DATA, name), "rb") as f:
        return f.read()


def openssl(*args, stdin=None):
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True, check=True).stdout


# ---------------------------------------------------------------------------------------------
# apdu: sessions as OpenSC 0.23 and yubico-piv-tool 2.2 run them, in the script format of
# `vsc_piv::fuzzing` (a configuration byte, then frames: `n` + n APDU bytes, `FD hi lo` + a long
# APDU, `FE r` resume, `FF` reset).
CONFIG = 0x0C  # 9A EC P-256, 9C RSA 2048 with a certificate, 3 PIN tries left
PIN_CORRECT, PIN_WRONG_2, DENIED, EC_SIGNATURE, RSA_RESULT = 0, 1 + 8 * 2, 3, 5, 6


def h(s):
    return bytes.fromhex(s.replace(" ", ""))


def A(apdu):
    """An APDU frame."""
    n = len(apdu)
    return (bytes([n]) if n < 0xFD else b"\xfd" + n.to_bytes(2, "big")) + apdu


def resume(r):
    return bytes([0xFE, r])


RESET = b"\xff"
SELECT = A(h("00 A4 04 00 09 A0 00 00 03 08 00 00 10 00 00"))
VERIFY = A(h("00 20 00 80 08 31 32 33 34 35 36 FF FF"))


def get_data(tag, le):
    t = h(tag)
    return A(h("00 CB 3F FF") + bytes([len(t) + 2, 0x5C, len(t)]) + t + bytes([le]))


def sign_ec(digest):
    return A(h("00 87 11 9A") + bytes([len(digest) + 6, 0x7C, len(digest) + 4]) + h("82 00 81")
             + bytes([len(digest)]) + digest + b"\x00")


def sign_rsa_chained():
    digest_info = h("30 31 30 0d 06 09 60 86 48 01 65 03 04 02 01 05 00 04 20") + bytes(range(32))
    block = b"\x00\x01" + b"\xff" * (256 - 3 - len(digest_info)) + b"\x00" + digest_info
    template = h("7C 82 01 06 82 00 81 82 01 00") + block
    first, last = template[:255], template[255:]
    return [A(h("10 87 07 9C FF") + first), A(h("00 87 07 9C") + bytes([len(last)]) + last + b"\x00")]


APDU_SEEDS = {
    # piv_match_card, piv_init and pkcs15-piv: probing and reading every object
    "opensc-match-and-read": [
        get_data("7E", 0), SELECT, get_data("5F C1 07", 8), get_data("5F C1 07", 0x35),
        get_data("7E", 0), get_data("5F C1 0C", 0), get_data("5F C1 02", 0),
        get_data("5F C1 05", 8), get_data("5F C1 05", 0), A(h("00 C0 00 00 00")),
        A(h("00 C0 00 00 65")), get_data("5F C1 0A", 0), get_data("5F C1 01", 0),
        get_data("5F C1 0B", 0),
    ],
    # C_Login, then C_Sign with CKM_ECDSA on slot 9A
    "opensc-login-sign-ec": [
        SELECT, A(h("00 20 00 80")), get_data("5F C1 09", 8), VERIFY, resume(PIN_CORRECT),
        get_data("5F C1 09", 0), sign_ec(bytes(range(32))), resume(EC_SIGNATURE),
    ],
    # C_Sign with CKM_RSA_PKCS on slot 9C: chained GENERAL AUTHENTICATE, then GET RESPONSE
    "opensc-sign-rsa-chained": [
        SELECT, VERIFY, resume(PIN_CORRECT), *sign_rsa_chained(), resume(RSA_RESULT),
        A(h("00 C0 00 00 08")),
    ],
    # C_GenerateRandom, and a management-key authentication that cannot complete
    "opensc-challenge": [
        SELECT, A(h("00 87 00 9B 04 7C 02 81 00 00")), A(h("00 87 00 9B 04 7C 02 81 00 00")),
        A(h("00 87 03 9B 04 7C 02 80 00")),
        A(h("00 87 03 9B 16 7C 14 80 08 01 02 03 04 05 06 07 08 81 08 01 02 03 04 05 06 07 08")),
    ],
    # yubico-piv-tool: SELECT by RID, PIN status, version, serial, metadata, objects, logout
    "ykpiv-status": [
        A(h("00 A4 04 00 05 A0 00 00 03 08")), A(h("00 20 00 80 00")), A(h("00 FD 00 00 00")),
        A(h("00 F8 00 00 00")), A(h("00 F7 00 9A 00")), A(h("00 CB 3F FF 05 5C 03 5F C1 02")),
        A(h("00 CB 3F FF 05 5C 03 5F C1 07")), A(h("00 CB 3F FF 05 5C 03 5F C1 05")),
        A(h("00 C0 00 00 00")), VERIFY, resume(PIN_WRONG_2), A(h("00 20 00 80 00")),
        A(h("00 20 FF 80 00")),
    ],
    # host requests interrupted by commands and a reset, late and unexpected results
    "pending-interleaving": [
        SELECT, VERIFY, get_data("7E", 0), RESET, resume(PIN_CORRECT), SELECT, VERIFY,
        resume(PIN_CORRECT), sign_ec(b"\x01" * 20), SELECT, resume(DENIED), sign_ec(b"\x02" * 32),
        resume(PIN_CORRECT), resume(EC_SIGNATURE),
    ],
    # malformed, extended and unsupported APDUs between good ones
    "errors": [
        A(h("00")), A(h("00 A4 04")), SELECT, A(h("00 CB 3F FF 05 5C 01 7E")),
        A(h("00 CB 3F FF 00 00 03 5C 01 7E 00 00")), A(h("80 CB 3F FF 03 5C 01 7E 00")),
        A(h("00 B0 00 00 00")), A(h("10 C0 00 00 00")),
        A(h("00 24 00 80 10 31 32 33 34 35 36 FF FF 36 35 34 33 32 31 FF FF")),
        A(h("00 20 00 81 08 31 32 33 34 35 36 FF FF")), A(h("00 20 00 80 08 31 32 33 FF 34 35 36 FF")),
        A(h("00 87 07 9A 04 7C 02 81 00 00")), A(h("00 87 11 9E 04 7C 02 81 00 00")),
    ],
}


def apdu():
    for name, frames in APDU_SEEDS.items():
        yield name, bytes([CONFIG]) + b"".join(frames)


# ---------------------------------------------------------------------------------------------
# vpcd: a cutting byte (bit 7: some reads are not ready, so `next()` is cancelled), then what
# vpcd sends: 2-byte big-endian length + payload; 1-byte payloads are control messages.
def frame(payload):
    return len(payload).to_bytes(2, "big") + payload


ON, OFF, RESET_CTRL, ATR = frame(b"\x01"), frame(b"\x00"), frame(b"\x02"), frame(b"\x04")
SELECT_PIV = frame(h("00 A4 04 00 09 A0 00 00 03 08 00 00 10 00 00"))


def vpcd():
    session = ON + ATR + SELECT_PIV + frame(h("00 CB 3F FF 05 5C 03 5F C1 02 00")) + frame(
        h("00 20 00 80 08 31 32 33 34 35 36 FF FF")) + RESET_CTRL + ATR + OFF
    yield "session", b"\x00" + session
    yield "session-stalling", b"\x83" + session
    yield "session-one-byte-pieces", b"\x10" + session
    yield "extended-apdu", b"\x85" + ON + ATR + frame(h("00 87 07 9C 00 01 06") + bytes(262) + b"\x00\x00")
    yield "two-byte-apdu", b"\x01" + frame(b"\x00\x04")
    yield "empty-frame", b"\x02" + ON + frame(b"")
    yield "unknown-control", b"\x82" + ON + frame(b"\x03")
    yield "truncated-length", b"\x00" + ATR + b"\x00"
    yield "truncated-payload", b"\x81" + ATR + b"\x00\x09\x00\xa4"
    yield "closed-between-frames", b"\x04"


# ---------------------------------------------------------------------------------------------
# sse: a cutting byte, then the device channel's event stream as the server sends it.
def sse_event(event, data, event_id=None):
    out = f"event: {event}\n" + "".join(f"data: {line}\n" for line in data.split("\n"))
    if event_id is not None:
        out += f"id: {event_id}\n"
    return out + "\n"


PENDING_AUTH = {
    "request_id": "01J9Z8Y7X6W5V4T3S2R1Q0P9N8", "uid": "555012345678", "nonce": "bm9uY2U=",
    "context": {"workstation_id": "ws-7", "workstation_name": "WARD-7-PC-03",
                "client_address": "10.0.7.33", "agent_version": "0.1.0", "purpose": "sign-in",
                "registered": True, "organisation": "RX1", "organisation_name": "RX1 Example Trust"},
    "context_digest": "00" * 32, "created_at": 1767225600, "expires_at": "2026-01-01T00:02:00Z",
}


def sse():
    pending = json.dumps(PENDING_AUTH)
    closed = json.dumps({"request_id": "r", "state": "approved"})
    yield "auth-request", b"\x00" + sse_event("auth-request", pending, 7).encode()
    yield "keepalive-and-events", b"\x07" + (": keep-alive\n\n" + sse_event("auth-request", pending)
                                              + sse_event("auth-request-closed", closed) + ":\n\n").encode()
    yield "crlf-and-cr", b"\x03" + b"event: resync\r\ndata: {}\r\n\r\nevent: x\rdata: 1\r\r"
    yield "bom-and-multiline", b"\x0f" + "\ufeffdata: {\"a\":\ndata:1}\n\n".encode()
    yield "retry-and-id", b"\x01" + b"retry: 2500\nretry: x\nid: a\x00b\ndata: 1\n\nid\ndata: 2\n\n"
    yield "utf8-split", b"\x0b" + "data: caf\u00e9 \U0001F600\n\n".encode() + b"data: \xff\xfe\n\n"
    yield "no-data-no-event", b"\x05" + b"event: ignored\n\nid: 3\n\n"
    yield "field-without-colon", b"\x02" + b"data\n\nDATA: z\n\ndata:  two spaces\n\n"
    yield "pending-at-end", b"\x09" + b"data: pending"


# ---------------------------------------------------------------------------------------------
# c14n: XML documents that exercise exclusive canonicalisation.
def nested(name, depth):
    return f"<{name}>" * depth + f"</{name}>" * depth


def c14n():
    yield "namespaces", b'<a:r xmlns:a="urn:a" xmlns:b="urn:b" xmlns:u="urn:unused" xmlns="urn:d"><b:c a:z="1" b:y="2" x="3"><d xmlns="urn:d"/><e xmlns=""/></b:c></a:r>'
    yield "attribute-order", b'<r xmlns:p="urn:p" xmlns:q="urn:a" z="1" a="2" q:b="3" p:b="4" xml:lang="en"/>'
    yield "text-escaping", b'<r a="&lt;&amp;&quot;&#9;&#10;&#13;">&lt;&gt;&amp;&#13;"\'<![CDATA[<x>&]]></r>'
    yield "pi-and-comments", b'<?xml version="1.0"?>\n<?pi before?><!-- c --><r><?pi inside?><!--x--></r><?pi after?>'
    # Refused since the fuzzer found it: a reserved PI target C14N would write as a declaration.
    yield "reserved-pi-target", b"<a><?xml$a?><b/></a>"
    yield "whitespace", b'<r>\n  <a>  text  </a>\n  <b/>\n\t</r>'
    yield "redeclared", b'<p:r xmlns:p="urn:1"><p:c xmlns:p="urn:2"><p:d xmlns:p="urn:1"/></p:c></p:r>'
    yield "xml-prefix", b'<r xml:space="preserve" xml:id="x"><c xml:lang="cy"/></r>'
    yield "unicode", "<r a='\u00e9\U0001F600'>\u2028\u00a0</r>".encode()
    yield "signed-info", re.search(rb"<SignedInfo.*?</SignedInfo>", eps("ValidSignature.xml"), re.S).group(0).replace(
        b"<SignedInfo", b'<SignedInfo xmlns="' + DSIG.encode() + b'"', 1)
    yield "depth-256", nested("a", 256).encode()
    yield "depth-257", nested("a", 257).encode()
    yield "fragments", eps("PrepareIntermediate-Hl7V3SignatureFragments.xml")


# ---------------------------------------------------------------------------------------------
# prescription: whole prescriptions (NHS England's vectors), and decoys made from them.
PRESCRIPTIONS = [
    "primary-care__acute__nominated-pharmacy__medical-prescriber.xml",
    "primary-care__repeat-prescribing.xml",
    "secondary-care__community__acute__nominated-pharmacy__clinical-practitioner__multiple-drugs.xml",
    "secondary-care__community__acute__nominated-pharmacy__nurse__prescribing-and-professional-codes__controlled-drugs__additional-instructions.xml",
    "secondary-care__community__repeat-dispensing__nominated-pharmacy__clinical-practitioner__single-medication-request.xml",
    "secondary-care__community__acute__nominated-pharmacy__pharmacist__prescriber-endorsed.xml",
]


def prescription():
    valid = eps("ValidSignature.xml")
    yield "valid-signature", valid
    yield "sha256-signature", eps("SignatureAlgorithmSha256.xml")
    yield "special-characters", eps("special-characters.xml")
    for name in PRESCRIPTIONS:
        yield name.replace("__", "-").removesuffix(".xml"), eps(os.path.join("corpus", name))
    record_target = re.search(rb"<recordTarget.*?</recordTarget>", valid, re.S).group(0)
    yield "decoy-foreign-record-target", valid.replace(
        record_target, record_target.replace(b"<recordTarget", b'<recordTarget xmlns="urn:decoy"', 1)
        + record_target, 1)
    yield "decoy-second-record-target", valid.replace(record_target, record_target + record_target, 1)
    yield "decoy-no-namespace", valid.replace(
        record_target, record_target.replace(b"<recordTarget", b'<recordTarget xmlns=""', 1) + record_target, 1)


# ---------------------------------------------------------------------------------------------
# fragments: FragmentsToBeHashed documents as the server sends them to the phone (built from the
# vectors as EPS builds them), and SignedInfo payloads.
def fragments_of(xml):
    from lxml import etree
    n = {"h": HL7}
    root = etree.fromstring(xml)
    parent = root if etree.QName(root).localname == "ParentPrescription" else root.find(".//h:ParentPrescription", n)
    prescription = parent.find(".//h:pertinentPrescription", n)
    author = prescription.find("h:author", n)
    parts = [[author.find("h:time", n), prescription.find("h:id", n)], [author.find("h:AgentPerson", n)],
             [parent.find("h:recordTarget", n)]]
    for item in prescription.findall("h:pertinentInformation2/h:pertinentLineItem", n):
        for drop in item.findall("h:repeatNumber/h:low", n) + item.findall("h:pertinentInformation4", n):
            drop.getparent().remove(drop)
        parts.append([item])
    doc = etree.Element("FragmentsToBeHashed")
    for elements in parts:
        fragment = etree.SubElement(doc, "Fragment")
        for element in elements:
            fragment.append(element)
    for el in doc.iter():
        if el.text is not None and not el.text.strip():
            el.text = None
        if el.tail is not None and not el.tail.strip():
            el.tail = None
    return etree.tostring(doc, method="c14n", exclusive=True)


def fragments():
    yield "eps-intermediate", eps("PrepareIntermediate-Hl7V3SignatureFragments.xml")
    yield "eps-intermediate-canonical", eps("PrepareIntermediate-Hl7V3SignatureFragmentsCanonicalized.txt").rstrip(b"\n")
    for name in PRESCRIPTIONS[:4]:
        yield "from-" + name.split("__")[-1].removesuffix(".xml"), fragments_of(eps(os.path.join("corpus", name)))
    signed_info = re.search(rb"<SignedInfo.*?</SignedInfo>", eps("ValidSignature.xml"), re.S).group(0)
    yield "signed-info-sha1", signed_info.replace(b"<SignedInfo", b'<SignedInfo xmlns="' + DSIG.encode() + b'"', 1)
    yield "signed-info-sha256", re.search(rb"<SignedInfo.*?</SignedInfo>", eps("SignatureAlgorithmSha256.xml"), re.S).group(0).replace(
        b"<SignedInfo", b'<SignedInfo xmlns="' + DSIG.encode() + b'"', 1)
    yield "not-fragments", b'<FragmentsToBeHashed xmlns="urn:x"><Fragment/></FragmentsToBeHashed>'


# ---------------------------------------------------------------------------------------------
# csr and eps_der: CSRs, keys, certificates and CRLs made with openssl.
class Pki:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="vsc-seeds-")

    def path(self, name):
        return os.path.join(self.dir, name)

    def key(self, name, *algorithm):
        openssl("genpkey", *algorithm, "-out", self.path(name))
        return self.path(name)

    def csr(self, key, pem=False):
        return openssl("req", "-new", "-key", key, "-subj", "/CN=phone", "-outform", "PEM" if pem else "DER")

    def spki(self, key):
        return openssl("pkey", "-in", key, "-pubout", "-outform", "DER")

    def crl(self):
        """A CA, a certificate it issued and revoked (keyCompromise), and its CRL (DER)."""
        ca = self.key("ca.key", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
        with open(self.path("ca.cnf"), "w") as f:
            f.write(f"""[ca]\ndefault_ca = c\n[c]\ndatabase = {self.path('index.txt')}\ncrlnumber = {self.path('crlnumber')}
default_md = sha256\ndefault_crl_days = 30\n""")
        open(self.path("index.txt"), "w").close()
        with open(self.path("crlnumber"), "w") as f:
            f.write("01\n")
        openssl("req", "-x509", "-new", "-key", ca, "-subj", "/CN=Seed CA", "-days", "30", "-out", self.path("ca.pem"))
        with open(self.path("ca.pem")) as f:
            ca_pem = f.read()
        leaf = self.key("leaf.key", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
        openssl("req", "-new", "-key", leaf, "-subj", "/CN=leaf", "-out", self.path("leaf.csr"))
        openssl("x509", "-req", "-in", self.path("leaf.csr"), "-CA", self.path("ca.pem"), "-CAkey", ca,
                "-set_serial", "4660", "-days", "30", "-out", self.path("leaf.pem"))
        openssl("ca", "-config", self.path("ca.cnf"), "-keyfile", ca, "-cert", self.path("ca.pem"),
                "-revoke", self.path("leaf.pem"), "-crl_reason", "keyCompromise")
        openssl("ca", "-config", self.path("ca.cnf"), "-keyfile", ca, "-cert", self.path("ca.pem"),
                "-gencrl", "-out", self.path("ca.crl"))
        return (openssl("crl", "-in", self.path("ca.crl"), "-outform", "DER"),
                openssl("x509", "-in", self.path("ca.pem"), "-outform", "DER"), ca_pem)

    def close(self):
        shutil.rmtree(self.dir)


def csr():
    pki = Pki()
    try:
        ec = pki.key("ec.key", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
        rsa = pki.key("rsa.key", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")
        p384 = pki.key("p384.key", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384")
        weak = pki.key("weak.key", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024")
        ed = pki.key("ed.key", "-algorithm", "ED25519")
        ec_csr = pki.csr(ec)
        yield "ec-p256-der", b"\x00" + ec_csr
        yield "ec-p256-pem", b"\x00" + pki.csr(ec, pem=True)
        yield "rsa-2048-der", b"\x01" + pki.csr(rsa)
        yield "rsa-2048-pem", b"\x01" + pki.csr(rsa, pem=True)
        yield "ec-for-rsa", b"\x01" + ec_csr
        yield "ec-p384", b"\x00" + pki.csr(p384)
        yield "rsa-1024", b"\x01" + pki.csr(weak)
        yield "ed25519", b"\x00" + pki.csr(ed)
        yield "bad-signature", b"\x00" + ec_csr[:-3] + bytes([ec_csr[-3] ^ 1]) + ec_csr[-2:]
        yield "trailing-data", b"\x00" + ec_csr + b"\x00"
        yield "spki-ec", b"\x00" + pki.spki(ec)
        yield "pem-certificate-label", b"\x00" + pki.csr(ec, pem=True).replace(b"CERTIFICATE REQUEST", b"CERTIFICATE")
    finally:
        pki.close()


def eps_der():
    level1d = openssl("x509", "-in", os.path.join(EPS_DATA, "NHS_INT_Level1D_Base64_pem.cer"), "-outform", "DER")
    signer_b64 = re.search(rb"<X509Certificate>(.*?)</X509Certificate>", eps("ValidSignature.xml"), re.S).group(1)
    signer = base64.b64decode(b"".join(signer_b64.split()))
    pki = Pki()
    try:
        crl, seed_ca, _ = pki.crl()
    finally:
        pki.close()
    yield "crl", b"\x00" + crl
    yield "crl-truncated", b"\x00" + crl[: len(crl) // 2]
    yield "trusted-level1d", b"\x01" + level1d
    yield "trusted-seed-ca", b"\x01" + seed_ca
    yield "intermediate-level1d", b"\x02" + level1d
    yield "signer-original", b"\x03" + signer
    yield "signer-seed-ca", b"\x03" + seed_ca
    yield "self-issued-seed-ca", b"\x04" + seed_ca
    yield "self-issued-signer", b"\x04" + signer


# ---------------------------------------------------------------------------------------------
# link: activation and unlock links, and typed codes.
def link():
    fp = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    yield "activate", f"https://vsc.example.nhs.uk:8443/activate#code=ABCD1234-AAAA-BBBB-CCCC-DDDD&fp={fp}".encode()
    yield "unlock", f"https://127.0.0.1:8443/unlock#code=0123456789ABCDEFGHJKMNPQ&fp={fp.upper()}".encode()
    yield "ipv6-and-spaces", f"  https://[::1]:8443/activate#fp={fp}&code=X\n".encode()
    yield "http", f"http://vsc.example/activate#code=A&fp={fp}".encode()
    yield "other-path", f"https://vsc.example/activate/../other#code=A&fp={fp}".encode()
    yield "query-and-userinfo", f"https://user:pw@vsc.example/activate?code=B#code=A&fp={fp}&code=".encode()
    yield "percent-encoded", b"https://vsc.example/%61ctivate#code=%41%26&fp=%30"
    yield "missing-fp", b"https://vsc.example/unlock#code=ABC"
    yield "idn-host", "https://b\u00fccher.example/activate#code=\u00e9&fp=00".encode()
    yield "typed-code", b"abcd 1234-aaaa-bbbb-cccc-dddd"
    yield "typed-code-lookalikes", b"OIL0-1234-AAAA-BBBB-CCCC-DDDD"


# ---------------------------------------------------------------------------------------------
# json: `TypeName` on the first line, then the body.
def json_seeds():
    pki = Pki()
    try:
        ec = pki.key("ec.key", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
        ec_csr = base64.b64encode(pki.csr(ec)).decode()
        device_key = base64.b64encode(pki.spki(ec)).decode()
    finally:
        pki.close()
    b32 = base64.b64encode(bytes(range(32))).decode()
    context = PENDING_AUTH["context"]
    bodies = {
        "EnrolRequest": {
            "activation_code": "ABCD1234-AAAA-BBBB-CCCC-DDDD",
            "device": {"device_id": "dev-1", "platform": "android", "app_version": "1.0.0", "model": "Pixel 9"},
            "auth_csr": ec_csr, "signing_csr": ec_csr, "recovery_key": b32, "device_key": device_key,
            "passcode_verifier": b32, "passcode_secret": b32, "piv_auth_csr": ec_csr,
        },
        "CreateAuthRequest": {"uid": "555012345678", "context": context,
                              "workstation": {"workstation_id": "ws-7", "challenge_id": "c1", "signature": "c2ln"}},
        "ApproveAuthRequest": {"number": 42, "signature": "c2ln"},
        "DeclineAuthRequest": {"reason": "I didn't do this"},
        "DeviceTokenRequest": {"device_id": "dev-1", "challenge_id": "c1", "signature": "c2ln"},
        "PasscodeCheckRequest": {"device_id": "dev-1", "card_id": "card-1", "challenge_id": "c1",
                                 "verifier": b32, "signature": "c2ln"},
        "UnlockRedeemRequest": {"unlock_code": "0123-4567-89AB-CDEF-GHJK-MNPQ", "challenge_id": "c1",
                                "signature": "c2ln", "passcode_verifier": b32, "passcode_secret": b32},
        "LoginRequest": {"challenge_id": "c1", "uid": "555012345678", "signature": "c2ln"},
        "VerifyCardPin": {"pin": "123456"},
        "CardOperation": {"slot": "9c", "input": b32, "purpose": "ssh"},
        "CreateSigningRequest": {"kind": "prescriptions", "algorithm": "RS256",
                                 "items": [{"id": "p1", "fragments": "<FragmentsToBeHashed/>", "description": "x"}]},
        "CompleteSigningRequest": {"signatures": [{"id": "p1", "signature": "c2ln"}],
                                   "refused": [{"id": "p2", "reason": "declined"}]},
        "EnrolWorkstation": {"code": "ABCD1234-AAAA-BBBB-CCCC-DDDD", "name": "WARD-7-PC-03", "csr": ec_csr},
        "PendingAuthRequest": PENDING_AUTH,
        "PendingSigningRequest": {"request_id": "r1", "uid": "555012345678", "kind": "card", "algorithm": "ES256",
                                  "workstation": "WARD-7-PC-03", "role": "Nurse", "items": [{"id": "i", "payload": b32, "slot": "9a"}],
                                  "created_at": "2026-01-01T00:00:00Z", "expires_at": "2026-01-01T00:02:00+01:00"},
        "ErrorBody": {"error": {"code": "invalid_request", "message": "the request body is not what this endpoint expects"}},
    }
    for name, body in bodies.items():
        yield name, f"{name}\n{json.dumps(body)}".encode()
    yield "edge-duplicate-key", b'VerifyCardPin\n{"pin": "1", "pin": "2"}'
    yield "edge-unknown-field-and-escapes", b'ChallengeRequest\n{"uid": "\\u0035550\\ud83d\\ude00", "extra": [1e400, -0.0]}'
    yield "edge-deep-array", b"CreateSigningRequest\n" + b"[" * 200 + b"]" * 200
    yield "edge-number-overflow", b'ApproveAuthRequest\n{"number": 256, "signature": ""}'
    yield "edge-bad-time", b'PendingAuthRequest\n' + json.dumps(dict(PENDING_AUTH, expires_at="+10000-01-01T00:00:00Z")).encode()
    yield "edge-unknown-type", b'\x07{"uid": "555012345678"}'


TARGETS = {
    "apdu": apdu, "vpcd": vpcd, "sse": sse, "c14n": c14n, "prescription": prescription,
    "fragments": fragments, "eps_der": eps_der, "csr": csr, "link": link, "json": json_seeds,
}


def main(names):
    for name in names or TARGETS:
        directory = os.path.join(FUZZ, "corpus", name)
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory)
        total = 0
        for seed, data in TARGETS[name]():
            with open(os.path.join(directory, seed), "wb") as f:
                f.write(data)
            total += len(data)
        print(f"{name}: {len(os.listdir(directory))} seeds, {total} bytes")


if __name__ == "__main__":
    main(sys.argv[1:])
