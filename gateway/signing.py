"""How the webhooks the gateway posts to backends are signed.

Two signatures ride on every delivery:

- Standard Webhooks (https://www.standardwebhooks.com, spec: github.com/standard-webhooks/
  standard-webhooks/blob/main/spec/standard-webhooks.md): `webhook-id`, `webhook-timestamp`
  (Unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
  The timestamp is signed, so a receiver refuses a delivery replayed outside its tolerance
  (the spec's libraries allow 5 minutes either way) and the id lets it drop a repeat inside it.
- `X-Gateway-Signature: sha256=<hex HMAC-SHA256(secret, body)>`, the gateway's first scheme,
  kept for receivers written against it. It signs no time, so a replay passes it.

The key: the spec's secrets are `whsec_` + base64 of the key bytes. A backend `secret` written
that way is used as the spec says (its decoded bytes); any other secret's UTF-8 bytes are the
key, and a receiver hands its library `whsec_` + base64(secret) (docs/webhooks.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SIGNATURE_HEADER = "X-Gateway-Signature"
SECRET_PREFIX = "whsec_"
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"


def sign(secret: str, body: bytes) -> str:
    """The `X-Gateway-Signature` value: keyed by the secret's UTF-8 bytes, whatever its form."""
    return "sha256=" + hmac.digest(secret.encode(), body, "sha256").hex()


def standard_key(secret: str) -> bytes:
    """The Standard Webhooks key of a backend secret: a `whsec_<base64>` secret's decoded
    bytes, any other secret's UTF-8 bytes. Raises ValueError for a `whsec_` secret whose rest
    is not base64 (config validation reports it)."""
    if not secret.startswith(SECRET_PREFIX):
        return secret.encode()
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise ValueError("a secret starting with whsec_ must go on in base64") from None
    if not key:
        raise ValueError("a secret starting with whsec_ must go on in base64 of the key")
    return key


def receiver_secret(secret: str) -> str:
    """What a receiver passes to a Standard Webhooks library to verify this backend's
    deliveries: the secret itself when it is `whsec_...`, else `whsec_` + base64(secret)."""
    if secret.startswith(SECRET_PREFIX):
        return secret
    return SECRET_PREFIX + base64.b64encode(secret.encode()).decode()


def message_id(body: bytes) -> str:
    """The `webhook-id` of a body: the same events in the same batch, posted again after a
    failure, keep their id (as the spec asks of a resent message), so a receiver may drop the
    repeat; any other batch differs in its events, whose ids are unique."""
    return "msg_" + hashlib.sha256(body).hexdigest()[:32]


def standard_headers(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The Standard Webhooks headers of one post of `body` at `timestamp` (Unix seconds)."""
    msg_id = message_id(body)
    signed = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.digest(standard_key(secret), signed, "sha256")
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        STANDARD_SIGNATURE_HEADER: "v1," + base64.b64encode(mac).decode(),
    }


def delivery_headers(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    """Both signatures' headers for one post to a backend."""
    return {SIGNATURE_HEADER: sign(secret, body), **standard_headers(secret, body, timestamp)}
