"""An independent RFC 8291 receiver and RFC 8292 token check (Python `cryptography`), for the
server's Web Push test (`crates/server/tests/push.rs`).

Reads one JSON object on stdin:
  body        the push message body (base64url), as the push service received it
  ua_private  the receiving phone's P-256 private scalar (base64url)
  auth        the phone's 16-byte auth secret (base64url)
  token       the VAPID JWT from `Authorization: vapid t=...`
  k           the VAPID public key from the same header (base64url, uncompressed point)
Prints one JSON object: the plaintext (UTF-8) and the token's claims, after checking the
token's ES256 signature with `k`. Exits non-zero on any failure.
"""

import base64
import json
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def point(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def open_message(body: bytes, ua_private: bytes, auth: bytes) -> bytes:
    # RFC 8188 header: salt (16), record size (4), key id length (1), key id (the sender's key).
    salt, rs, idlen = body[:16], int.from_bytes(body[16:20], "big"), body[20]
    if idlen != 65:
        raise ValueError(f"key id of {idlen} bytes, not a P-256 point")
    sender_point, record = body[21:86], body[86:]
    if len(record) > rs:
        raise ValueError("more than one record")
    ua = ec.derive_private_key(int.from_bytes(ua_private, "big"), ec.SECP256R1())
    sender = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender_point)
    ecdh_secret = ua.exchange(ec.ECDH(), sender)
    # RFC 8291 section 3.4.
    ikm = hkdf(auth, ecdh_secret, b"WebPush: info\0" + point(ua.public_key()) + sender_point, 32)
    cek = hkdf(salt, ikm, b"Content-Encoding: aes128gcm\0", 16)
    nonce = hkdf(salt, ikm, b"Content-Encoding: nonce\0", 12)
    padded = AESGCM(cek).decrypt(nonce, record, None)
    # The last record ends with the delimiter 2, then zero or more zero bytes.
    end = len(padded.rstrip(b"\0"))
    if end == 0 or padded[end - 1] != 2:
        raise ValueError("no final-record padding delimiter")
    return padded[: end - 1]


def check_token(token: str, k: str) -> dict:
    header, claims, signature = token.split(".")
    if json.loads(unb64(header)) != {"typ": "JWT", "alg": "ES256"}:
        raise ValueError("not an ES256 JWT")
    raw = unb64(signature)
    if len(raw) != 64:
        raise ValueError("an ES256 signature is 64 bytes (r || s)")
    der = utils.encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64(k))
    key.verify(der, f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    return json.loads(unb64(claims))


given = json.load(sys.stdin)
plaintext = open_message(unb64(given["body"]), unb64(given["ua_private"]), unb64(given["auth"]))
claims = check_token(given["token"], given["k"])
print(json.dumps({"plaintext": plaintext.decode(), "claims": claims}))
