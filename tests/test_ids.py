"""Gateway ids: stored for good, so their format is part of the contract."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time

from gateway.ids import conversation_id, new_id

CROCKFORD_ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")


def test_new_id_is_the_prefix_and_a_ulid() -> None:
    event_id = new_id("evt")
    prefix, _, ulid = event_id.partition("_")
    assert prefix == "evt"
    assert CROCKFORD_ULID.fullmatch(ulid), event_id


def test_new_ids_are_unique_and_ordered_by_time() -> None:
    first = [new_id("msg") for _ in range(1000)]
    assert len(set(first)) == len(first)
    time.sleep(0.002)  # ULIDs order by millisecond; within one they are random
    later = new_id("msg")
    assert all(later > earlier for earlier in first)


def test_conversation_ids_keep_their_format() -> None:
    # Stored with every contact, message and event, and derived again for each new one: a
    # change here would split every existing conversation in two. Earlier releases' values.
    assert conversation_id("wa-main", "16505551234") == "conv_ii6s46eobv5r627mnxoede54qy"
    assert conversation_id("sms", "+14155550100") == "conv_knb2bmicfgy6j3b2awryw5w4gu"
    assert conversation_id("sms", "+14155550101") != conversation_id("sms", "+14155550100")


def test_conversation_ids_are_the_digests_base32() -> None:
    for _ in range(2000):
        channel, user = os.urandom(4).hex(), os.urandom(8).hex()
        digest = hashlib.blake2b(f"{channel}\x00{user}".encode(), digest_size=16).digest()
        expected = "conv_" + base64.b32encode(digest).decode().rstrip("=").lower()
        assert conversation_id.__wrapped__(channel, user) == expected
