"""What WhatsApp Cloud API and Messenger share: Graph webhooks' handshake and signature.

https://developers.facebook.com/docs/graph-api/webhooks/getting-started
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from adapters.base import Reply

SIGNATURE_HEADER = "X-Hub-Signature-256"


def hub_handshake(query: Mapping[str, str], verify_token: str) -> Reply:
    """Echo `hub.challenge` when Meta subscribes with our verify token; 403 otherwise."""
    token = query.get("hub.verify_token", "")
    if query.get("hub.mode") == "subscribe" and hmac.compare_digest(
        token.encode(), verify_token.encode()
    ):
        return Reply(200, query.get("hub.challenge", ""))
    return Reply(403, "verify token mismatch")


def hub_signature(app_secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def verify_hub_signature(headers: Mapping[str, str], body: bytes, app_secret: str) -> bool:
    provided = headers.get(SIGNATURE_HEADER, "")
    # Meta sends lowercase hex; compare case-insensitively but in constant time.
    return hmac.compare_digest(provided.lower().encode(), hub_signature(app_secret, body).encode())


def graph_error(payload: object) -> tuple[int, str, str]:
    """(code, title, details) from a Graph API error body; code 0 when there is none."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return 0, "unknown error", ""
    code = error.get("code")
    data = error.get("error_data")
    details = data.get("details", "") if isinstance(data, dict) else ""
    return (
        code if isinstance(code, int) else 0,
        str(error.get("message") or error.get("title") or "unknown error"),
        str(details),
    )
