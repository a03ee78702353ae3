"""An independent RFC 8291 sender (Python `cryptography`), for vsc-webpush's interoperability test.

Encrypts a fixed plaintext, with 7 bytes of padding after the delimiter (which vsc itself never
writes), for a fresh receiver key pair, and prints the receiver's private scalar, auth secret and
the body in base64url. The output is pasted into `ece.rs` (`python_message_decrypts`).
"""

import base64
import os

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def point(key) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


PLAINTEXT = ("Python cryptography sent this; " * 40).encode()

ua = ec.generate_private_key(ec.SECP256R1())
auth = os.urandom(16)
sender = ec.generate_private_key(ec.SECP256R1())
salt = os.urandom(16)

ecdh_secret = sender.exchange(ec.ECDH(), ua.public_key())
ikm = hkdf(auth, ecdh_secret, b"WebPush: info\0" + point(ua) + point(sender), 32)
cek = hkdf(salt, ikm, b"Content-Encoding: aes128gcm\0", 16)
nonce = hkdf(salt, ikm, b"Content-Encoding: nonce\0", 12)
record = AESGCM(cek).encrypt(nonce, PLAINTEXT + b"\x02" + b"\0" * 7, None)
body = salt + (4096).to_bytes(4, "big") + bytes([65]) + point(sender) + record

print("UA_PRIVATE", b64(ua.private_numbers().private_value.to_bytes(32, "big")))
print("AUTH", b64(auth))
print("PLAINTEXT_REPEATS", 40)
print("BODY", b64(body))
