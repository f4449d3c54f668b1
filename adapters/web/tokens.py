"""Short-lived tokens that let one user's app open the web channel's socket.

A token is `<payload>.<signature>`, both base64url without padding: the payload is JSON
`{"c": channel id, "u": user id, "exp": epoch seconds}`, the signature HMAC-SHA256 of the
payload's base64 text under the channel's `token_secret`. The backend mints one for a user it
has logged in (`POST /v1/web/tokens`) and hands it to its app; the gateway trusts the user id
in it and nothing the app says about itself. Signatures are compared in constant time, and a
token is never logged (it is a credential for as long as it lives).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

# A token no longer than this is read at all: a few hundred bytes are enough for any user id.
MAX_TOKEN_CHARS = 2048


class TokenError(ValueError):
    """A token that opens nothing; `expired` tells a stale token from a forged one."""

    def __init__(self, reason: str, *, expired: bool = False) -> None:
        super().__init__(reason)
        self.expired = expired


@dataclass(frozen=True)
class TokenClaims:
    channel_id: str
    user_id: str
    expires_at: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, payload.encode("ascii"), hashlib.sha256).digest())


def mint(secret: bytes, channel_id: str, user_id: str, expires_at: float) -> str:
    claims = {"c": channel_id, "u": user_id, "exp": int(expires_at)}
    payload = _b64(json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode())
    return f"{payload}.{_signature(secret, payload)}"


def verify(secret: bytes, channel_id: str, token: str, now: float) -> TokenClaims:
    """The claims of a token this channel signed and that has not expired; TokenError else."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise TokenError("the token is missing or too long")
    payload, dot, signature = token.partition(".")
    if not dot or not payload.isascii() or not signature.isascii():
        raise TokenError("the token is not of the form <payload>.<signature>")
    expected = _signature(secret, payload)
    if not hmac.compare_digest(signature.encode("ascii"), expected.encode("ascii")):
        raise TokenError("the token's signature does not match")
    try:
        claims = json.loads(_unb64(payload))
        channel, user, expires_at = claims["c"], claims["u"], claims["exp"]
    except (ValueError, KeyError, TypeError):
        raise TokenError("the token's payload is unreadable") from None
    if channel != channel_id or not isinstance(user, str) or not isinstance(expires_at, int):
        raise TokenError("the token was not issued for this channel")
    if expires_at <= now:
        raise TokenError("the token has expired; ask the backend for a new one", expired=True)
    return TokenClaims(channel, user, float(expires_at))
