"""Gateway ids: a short prefix naming the kind, then a ULID (time-ordered, so indexes stay local)."""

from __future__ import annotations

import functools
import hashlib

import ulid_transform


def new_id(prefix: str) -> str:
    # ulid-transform builds the 26-character Crockford string in C: ~0.1 µs against ~12 µs for
    # python-ulid's ULID(), and every event, message and delivery takes one.
    return f"{prefix}_{ulid_transform.ulid_now()}"


# RFC 4648 base32, lower case, in pairs of letters: ten bits a lookup.
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
_BASE32_PAIRS = [a + b for a in _BASE32 for b in _BASE32]
_PAIR_SHIFTS = range(120, -1, -10)  # 128 bits shifted left by 2: 13 pairs of 5-bit letters


# The same few users write again and again (a courier's updates, a chat's turns): a cache spares
# the hash and the base32 for all but their first message.
@functools.lru_cache(maxsize=16_384)
def conversation_id(channel_id: str, user_id: str) -> str:
    """The 1:1 conversation of a user on a channel: derived, so no lookup is needed to name it.

    The digest's base32 without its padding (`base64.b32encode`'s letters, lower case), read
    ten bits at a time: b32encode is pure Python, and cost twice as much (30k instructions)."""
    digest = hashlib.blake2b(f"{channel_id}\x00{user_id}".encode(), digest_size=16).digest()
    bits = int.from_bytes(digest, "big") << 2
    return "conv_" + "".join([_BASE32_PAIRS[(bits >> shift) & 1023] for shift in _PAIR_SHIFTS])
