"""Gateway ids: a short prefix naming the kind, then a ULID (time-ordered, so indexes stay local)."""

from __future__ import annotations

import base64
import hashlib

from ulid import ULID


def new_id(prefix: str) -> str:
    return f"{prefix}_{ULID()}"


def conversation_id(channel_id: str, user_id: str) -> str:
    """The 1:1 conversation of a user on a channel: derived, so no lookup is needed to name it."""
    digest = hashlib.blake2b(f"{channel_id}\x00{user_id}".encode(), digest_size=16).digest()
    return "conv_" + base64.b32encode(digest).decode().rstrip("=").lower()
