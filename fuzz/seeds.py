#!/usr/bin/env python3
"""Writes the seed corpus of the `apdu` fuzz target: sessions as OpenSC 0.23 and
yubico-piv-tool 2.2 run them, in the script format of `vsc_piv::fuzzing` (a configuration byte,
then frames: `n` + n APDU bytes, `FD hi lo` + a long APDU, `FE r` resume, `FF` reset).

Run it from anywhere; it rewrites fuzz/corpus/apdu/."""
import os

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "apdu")
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


seeds = {
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

os.makedirs(HERE, exist_ok=True)
for name, frames in seeds.items():
    script = bytes([CONFIG]) + b"".join(frames)
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(script)
    print(f"{name}: {len(script)} bytes")
