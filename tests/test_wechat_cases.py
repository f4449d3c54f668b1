"""WeChat Official Accounts inbound side, table-driven over WeChat's XML pushes.

Each row of fixtures/wechat/cases.json names a raw body (the XML of WeChat's "receiving
standard messages" and "receiving event pushes" pages, with realistic values; `safe_mode`
rows are the same pushes encrypted as safe mode sends them) and either the events it parses
to, with their dedupe keys, or the PayloadError it raises.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from adapters.base import InboundRequest, PayloadError
from adapters.wechat.crypto import aes_key, encrypt
from tests.tables import check_admission, check_parse
from tests.wechat_support import APP_ID, APP_SECRET, ENCODING_AES_KEY, TOKEN, make_adapter

FIXTURES = Path(__file__).parent / "fixtures" / "wechat"
CASES: list[dict[str, Any]] = json.loads((FIXTURES / "cases.json").read_text())
PARSED = [c for c in CASES if "events" in c]


def body(case: dict[str, Any]) -> bytes:
    return (FIXTURES / str(case["file"])).read_bytes()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_parse(case: dict[str, Any]) -> None:
    check_parse(make_adapter(case.get("safe_mode", False)), body(case), case)


@pytest.mark.parametrize("case", PARSED, ids=[c["name"] for c in PARSED])
def test_admission_reads_the_key_and_the_push_time(case: dict[str, Any]) -> None:
    check_admission(make_adapter(case.get("safe_mode", False)), body(case), case)


def test_dedupe_keys_differ_between_pushes() -> None:
    plain = [make_adapter().dedupe_key(body(c)) for c in PARSED if not c.get("safe_mode")]
    assert len(set(plain)) == len(plain)


def test_a_retry_re_encrypted_with_new_random_bytes_keeps_its_key() -> None:
    """WeChat encrypts each retry afresh (16 new random bytes): the key comes from MsgId."""
    xml = (FIXTURES / "text.xml").read_bytes()
    first, retry = (
        f"<xml><Encrypt><![CDATA[{encrypt(aes_key(ENCODING_AES_KEY), xml, APP_ID, r)}]]></Encrypt></xml>"
        for r in (b"a" * 16, b"b" * 16)
    )
    assert first != retry
    adapter = make_adapter(safe=True)
    assert adapter.dedupe_key(first.encode()) == adapter.dedupe_key(retry.encode())
    assert adapter.dedupe_key(first.encode()) == make_adapter().dedupe_key(xml)


def test_an_encrypted_push_without_a_key_configured_says_so() -> None:
    with pytest.raises(PayloadError, match="no encoding_aes_key is configured"):
        make_adapter().parse((FIXTURES / "safe_text.xml").read_bytes())


def reference_decrypt(encrypted: str) -> tuple[bytes, bytes]:
    """Written out from WeChat's Technical Plan, apart from the adapter's code."""
    key = base64.b64decode(ENCODING_AES_KEY + "=")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(base64.b64decode(encrypted)) + decryptor.finalize()
    plain = plain[: -plain[-1]]
    (length,) = struct.unpack("!I", plain[16:20])
    return plain[20 : 20 + length], plain[20 + length :]


def test_encryption_follows_the_technical_plan() -> None:
    xml = (FIXTURES / "text.xml").read_bytes()
    sealed = encrypt(aes_key(ENCODING_AES_KEY), xml, APP_ID, b"0123456789abcdef")
    assert len(base64.b64decode(sealed)) % 32 == 0  # PKCS#7 to 32 bytes, not AES's 16
    assert reference_decrypt(sealed) == (xml, APP_ID.encode())


# --- signatures ---------------------------------------------------------------------


def sha1(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def request(raw: bytes, query: str) -> InboundRequest:
    url = f"https://gw.example/webhooks/wechat-main?{query}"
    return InboundRequest("POST", url, {"Content-Type": "text/xml"}, raw)


RAW = (FIXTURES / "text.xml").read_bytes()
SAFE_RAW = (FIXTURES / "safe_text.xml").read_bytes()
ENCRYPTED = SAFE_RAW.split(b"<![CDATA[")[2].split(b"]]>")[0].decode()
TS, NONCE = "1748831860", "1320562132"
PLAIN_SIGNATURES = {
    "valid": (f"signature={sha1(TOKEN, TS, NONCE)}&timestamp={TS}&nonce={NONCE}", True),
    "other_token": (f"signature={sha1('x', TS, NONCE)}&timestamp={TS}&nonce={NONCE}", False),
    "other_nonce": (f"signature={sha1(TOKEN, TS, NONCE)}&timestamp={TS}&nonce=1", False),
    "missing": (f"timestamp={TS}&nonce={NONCE}", False),
    "empty": (f"signature=&timestamp={TS}&nonce={NONCE}", False),
}


@pytest.mark.parametrize(("query", "valid"), PLAIN_SIGNATURES.values(), ids=PLAIN_SIGNATURES)
def test_verify_plain_mode(query: str, valid: bool) -> None:
    assert make_adapter().verify(request(RAW, query)) is valid


SAFE_SIGNATURES = {
    "valid": (sha1(TOKEN, TS, NONCE, ENCRYPTED), SAFE_RAW, True),
    "plain_signature_only": (sha1(TOKEN, TS, NONCE), SAFE_RAW, False),
    "body_changed": (sha1(TOKEN, TS, NONCE, ENCRYPTED), SAFE_RAW.replace(b"Q3st", b"Q3su"), False),
    "plain_body_in_safe_mode": (sha1(TOKEN, TS, NONCE, ENCRYPTED), RAW, False),
    "not_xml": (sha1(TOKEN, TS, NONCE, ENCRYPTED), b"{}", False),
}


@pytest.mark.parametrize(("signed", "raw", "valid"), SAFE_SIGNATURES.values(), ids=SAFE_SIGNATURES)
def test_verify_safe_mode_covers_the_body(signed: str, raw: bytes, valid: bool) -> None:
    query = (
        f"signature={sha1(TOKEN, TS, NONCE)}&timestamp={TS}&nonce={NONCE}"
        f"&openid=oLVPpjqs9BhvzwPj5A-vTYAX3GLc&encrypt_type=aes&msg_signature={signed}"
    )
    assert make_adapter(safe=True).verify(request(raw, query)) is valid


def test_handshake_echoes_echostr_only_when_signed() -> None:
    query = {"signature": sha1(TOKEN, TS, NONCE), "timestamp": TS, "nonce": NONCE}
    reply = make_adapter().handshake({**query, "echostr": "5837397520665436492"})
    assert reply is not None and (reply.status, reply.body) == (200, "5837397520665436492")
    forged = make_adapter().handshake({**query, "nonce": "2", "echostr": "1"})
    assert forged is not None and forged.status == 403 and forged.body != "1"


def test_acknowledged_with_success() -> None:
    reply = make_adapter().acknowledge(RAW)
    assert (reply.status, reply.body) == (200, "success")


def test_secrets_are_listed_for_redaction() -> None:
    assert set(make_adapter(safe=True).secrets()) == {APP_SECRET, TOKEN, ENCODING_AES_KEY}


def test_a_bad_encoding_aes_key_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="43 letters and digits"):
        make_adapter(encoding_aes_key="too-short")
