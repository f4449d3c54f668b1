"""WeChat's webhook signatures and its safe (encrypted) mode, both ways: the adapter checks
and decrypts, the simulator signs and encrypts, with the same functions.

Signatures: https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/Access_Overview.html
Safe mode:  https://developers.weixin.qq.com/doc/oplatform/Third-party_Platforms/2.0/api/Before_Develop/Technical_Plan.html

Safe mode encrypts `16 random bytes + 4-byte big-endian length + XML + AppID` with AES-256-CBC
(key: the 43-character EncodingAESKey with "=" appended, base64-decoded; IV: the key's first
16 bytes), padded PKCS#7 to a multiple of 32 bytes (not AES's 16), then base64.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

# The EncodingAESKey is 43 characters of [A-Za-z0-9]: 32 bytes once "=" is appended.
ENCODING_AES_KEY_LENGTH = 43
# WeChat pads to a multiple of 32 bytes, its key length (the Technical Plan's "K").
PAD_BLOCK = 32


class DecryptError(ValueError):
    """An Encrypt element that is not what WeChat's safe mode produces."""


def signature(*parts: str) -> str:
    """SHA-1 hex of the parts sorted and joined: `signature` over (token, timestamp, nonce),
    `msg_signature` over the same and the Encrypt element's text."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte AES key behind an EncodingAESKey; ValueError if it is not one."""
    if len(encoding_aes_key) != ENCODING_AES_KEY_LENGTH or not encoding_aes_key.isalnum():
        raise ValueError("an EncodingAESKey is 43 letters and digits")
    return base64.b64decode(encoding_aes_key + "=")


def _cipher(key: bytes) -> Cipher[modes.CBC]:
    return Cipher(algorithms.AES(key), modes.CBC(key[:16]))


def encrypt(key: bytes, xml: bytes, app_id: str, random: bytes | None = None) -> str:
    """The Encrypt element's text for `xml` (what WeChat, here the simulator, sends)."""
    plain = (random or os.urandom(16)) + struct.pack(">I", len(xml)) + xml + app_id.encode()
    pad = PAD_BLOCK - len(plain) % PAD_BLOCK
    encryptor = _cipher(key).encryptor()
    sealed = encryptor.update(plain + bytes([pad]) * pad) + encryptor.finalize()
    return base64.b64encode(sealed).decode()


def decrypt(key: bytes, encrypted: str) -> tuple[bytes, str]:
    """(XML, AppID) from an Encrypt element's text; DecryptError, saying why, otherwise."""
    try:
        sealed = base64.b64decode(encrypted, validate=True)
    except (binascii.Error, ValueError):
        raise DecryptError("Encrypt is not base64") from None
    if not sealed or len(sealed) % 16:
        raise DecryptError("Encrypt is not a whole number of AES blocks")
    decryptor = _cipher(key).decryptor()
    plain = decryptor.update(sealed) + decryptor.finalize()
    pad = plain[-1]
    if not 1 <= pad <= PAD_BLOCK or plain[-pad:] != bytes([pad]) * pad:
        raise DecryptError("Encrypt does not decrypt with this EncodingAESKey (bad padding)")
    plain = plain[:-pad]
    if len(plain) < 20:
        raise DecryptError("Encrypt is too short to hold a message")
    (length,) = struct.unpack(">I", plain[16:20])
    if 20 + length > len(plain):
        raise DecryptError("Encrypt's length field exceeds its content")
    xml, app_id = plain[20 : 20 + length], plain[20 + length :]
    try:
        return xml, app_id.decode()
    except UnicodeDecodeError:
        raise DecryptError("Encrypt's AppID is not text") from None
