"""Recipients' contact state, read for sends that meet in a group commit with one statement.

Every send reads its recipient's state (window, consent, reply token) just before it goes;
on PostgreSQL that was a savepoint and a select, two round trips, a send. Reads that meet in
a group commit are joined (joined.py): one select per channel for all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.store import writes
from gateway.store.database import Result, Tx
from gateway.store.joined import Joinable, Kind
from gateway.store.records import ContactState

Person = tuple[str, str]  # (channel id, user id)


class _Reading(Kind[Person, ContactState]):
    def many(self, tx: Tx, items: Sequence[Person]) -> list[Result]:
        by_channel: dict[str, set[str]] = {}
        for channel_id, user_id in items:
            by_channel.setdefault(channel_id, set()).add(user_id)
        found: dict[Person, ContactState] = {}
        for channel_id, ids in by_channel.items():
            users = sorted(ids)
            for row in tx.all(
                "SELECT user_id, last_inbound_at, unsubscribed_at, unsubscribe_reason,"
                " reply_token, reply_token_at FROM contacts WHERE channel_id = ? AND user_id IN "
                + writes.in_list(users),
                (channel_id, *users),
            ):
                found[(channel_id, row[0])] = ContactState(
                    writes.optional_float(row[1]),
                    writes.optional_float(row[2]),
                    row[3],
                    row[4],
                    writes.optional_float(row[5]),
                )
        return [(found.get(person, ContactState()), None) for person in items]


READING = _Reading()


def read(channel_id: str, user_id: str) -> Joinable[Person, ContactState]:
    """`Store.get_contact`'s operation."""
    return Joinable(READING, (channel_id, user_id))
