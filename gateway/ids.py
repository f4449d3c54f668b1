"""Gateway ids: a short prefix naming the kind, then a ULID (time-ordered, so indexes stay local)."""

from __future__ import annotations

import base64
import functools
import hashlib

import ulid_transform


def new_id(prefix: str) -> str:
    # ulid-transform builds the 26-character Crockford string in C: ~0.1 µs against ~12 µs for
    # python-ulid's ULID(), and every event, message and delivery takes one.
    return f"{prefix}_{ulid_transform.ulid_now()}"


# The same few users write again and again (a courier's updates, a chat's turns): a cache spares
# the hash and the pure-Python base32 (~10 µs) for all but their first message.
@functools.lru_cache(maxsize=16_384)
def conversation_id(channel_id: str, user_id: str) -> str:
    """The 1:1 conversation of a user on a channel: derived, so no lookup is needed to name it."""
    digest = hashlib.blake2b(f"{channel_id}\x00{user_id}".encode(), digest_size=16).digest()
    return "conv_" + base64.b32encode(digest).decode().rstrip("=").lower()
