"""What WhatsApp and Messenger share on the way in (adapters/meta_graph.py), as tables each channel's
cases run against its own adapter: Graph's X-Hub-Signature-256 (HMAC-SHA256 of the exact
bytes, under the app secret) and the hub.challenge handshake of a webhook subscription.

https://developers.facebook.com/docs/graph-api/webhooks/getting-started
"""

from __future__ import annotations

import json

from adapters.meta_graph import SIGNATURE_HEADER, hub_signature

CHALLENGE = "1158201444"


def signature_cases(app_secret: str, raw: bytes) -> dict[str, tuple[dict[str, str], bool]]:
    """Headers for `raw`, each with whether the signature must be accepted."""
    signed = hub_signature(app_secret, raw)
    reserialised = json.dumps(json.loads(raw)).encode()  # the same JSON, other bytes
    return {
        "valid": ({SIGNATURE_HEADER: signed}, True),
        "valid_uppercase_hex": ({SIGNATURE_HEADER: signed.upper()}, True),
        "forged": ({SIGNATURE_HEADER: hub_signature("not-the-app-secret", raw)}, False),
        "missing": ({}, False),
        "legacy_sha1_only": ({"X-Hub-Signature": "sha1=0123456789abcdef"}, False),
        "bare_hex_without_prefix": ({SIGNATURE_HEADER: signed.removeprefix("sha256=")}, False),
        "over_reserialised_json": (
            {SIGNATURE_HEADER: hub_signature(app_secret, reserialised)},
            False,
        ),
    }


def handshake_cases(verify_token: str) -> dict[str, tuple[dict[str, str], int]]:
    """Subscription queries, each with the status the handshake must answer."""
    query = {"hub.mode": "subscribe", "hub.challenge": CHALLENGE}
    return {
        "right_token": (query | {"hub.verify_token": verify_token}, 200),
        "wrong_token": (query | {"hub.verify_token": "guess"}, 403),
        "missing_token": (query, 403),
        "wrong_mode": (query | {"hub.verify_token": verify_token, "hub.mode": "unsubscribe"}, 403),
    }
