"""API sends accepted together: one operation, a statement per table for the group.

Each accepted send was an operation of its own: a savepoint and five statements (its contact,
its message, its history line, its turn, its outbox row), each a round trip to PostgreSQL. The
sends that meet in a group commit now go in one (joined.py): an idempotency read when any has a
key, then a statement per table (writes.insert_messages). Each gets the answer it would have
got alone, in the order they queued: a key seen earlier in the group or the store is the earlier
message (or a conflict, with another body).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from gateway.store import writes
from gateway.store.database import Result, Tx
from gateway.store.joined import Joinable, Kind
from gateway.store.records import IdempotencyConflict, NewMessage

# (id, state, created): the message's, or an earlier one's with the same idempotency key.
Accepted = tuple[str, str, bool]


class Accept(NamedTuple):
    message: NewMessage
    now: float


class _Accepting(Kind[Accept, Accepted]):
    def many(self, tx: Tx, items: Sequence[Accept]) -> list[Result]:
        seen = _earlier(tx, [a.message for a in items])
        results: list[Result] = []
        new: list[tuple[NewMessage, float]] = []
        for message, now in items:
            key = (message.api_key, message.idempotency_key)
            if message.idempotency_key is not None:
                if key in seen:
                    message_id, state, digest = seen[key]
                    if digest != message.request_hash:
                        results.append((None, IdempotencyConflict(message.idempotency_key)))
                    else:
                        results.append(((message_id, state, False), None))
                    continue
                seen[key] = (message.id, "queued", message.request_hash)
            new.append((message, now))
            results.append(((message.id, "queued", True), None))
        if new:
            writes.insert_messages(tx, new)
        return results


def _earlier(
    tx: Tx, messages: Sequence[NewMessage]
) -> dict[tuple[str, str | None], tuple[str, str, str]]:
    """The stored messages with the idempotency keys of `messages`: (id, state, request hash)
    by (api key, key)."""
    keys = list({(m.api_key, m.idempotency_key) for m in messages if m.idempotency_key})
    if not keys:
        return {}
    rows = tx.all(
        "SELECT api_key, idempotency_key, id, state, request_hash FROM messages WHERE "
        + " OR ".join(["(api_key = ? AND idempotency_key = ?)"] * len(keys)),
        [value for key in keys for value in key],
    )
    return {(row[0], row[1]): (row[2], row[3], row[4]) for row in rows}


ACCEPTING = _Accepting()


def accept(message: NewMessage, now: float) -> Joinable[Accept, Accepted]:
    """`Store.create_message`'s operation for a message without a route."""
    return Joinable(ACCEPTING, Accept(message, now))
