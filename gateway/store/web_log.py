"""The web channel's durable per-user log (migration m0004_web_channel), on either store.

Every part sent to a web user is a row with the next `event_id` of that user; devices read the
log from the id they last saw. An ack marks a row delivered, a read marks it and those before
it read; a row no device acknowledged by `expires_at` is failed. Each of these changes stores
the status it causes in the inbox in the same transaction (raw first, like a provider's
report), so the normaliser turns it into the message's status event and nothing is lost
between the two.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from adapters.web.frames import InboundBody, StatusNote
from gateway.ids import new_id
from gateway.store.database import Database, Tx

# Rows a device is sent per read of the log when it resumes: a long-offline user's backlog
# comes in pages, not as one query holding everything.
PAGE = 200


@dataclass(frozen=True)
class Appended:
    event_id: int
    external_id: str
    frame: str  # the JSON text the devices are sent
    new: bool  # False: a retried send found the row it wrote


@dataclass(frozen=True)
class LogEntry:
    event_id: int
    frame: str


def _frame(event_id: int, external_id: str, message_id: str, content_json: str, at: float) -> str:
    # Put together as text, not re-encoded: the content is the dispatcher's JSON already.
    return (
        f'{{"type":"message","event_id":{event_id},"external_id":"{external_id}",'
        f'"message_id":"{message_id}","sent_at":{at!r},"content":{content_json}}}'
    )


def _store_status(tx: Tx, channel_id: str, user_id: str, note: StatusNote, now: float) -> None:
    body = InboundBody(user=user_id, at=now, status=note).model_dump_json(exclude_none=True)
    tx.execute(
        "INSERT INTO inbox (channel_id, dedupe_key, received_at, url, headers, body, status)"
        " VALUES (?, ?, ?, ?, '{}', ?, 'pending') ON CONFLICT (channel_id, dedupe_key) DO NOTHING",
        (channel_id, f"{note.state}:{note.external_id}", now, f"web:{channel_id}", body.encode()),
    )


class WebLog:
    """The log's operations, each one transaction of the store's database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def append(
        self,
        channel_id: str,
        user_id: str,
        message_id: str,
        part: int,
        content_json: str,
        expires_at: float,
    ) -> Appended:
        def op(tx: Tx) -> Appended:
            found = tx.one(
                "SELECT event_id, external_id, frame FROM web_log"
                " WHERE channel_id = ? AND message_id = ? AND part = ?",
                (channel_id, message_id, part),
            )
            if found is not None:
                return Appended(int(found[0]), found[1], found[2], new=False)
            # The dispatcher sends one recipient's messages one at a time (in turn, from any
            # number of gateways): the next id is free. If not, the UNIQUE constraint refuses
            # the insert and the send is retried.
            last = tx.one(
                "SELECT COALESCE(MAX(event_id), 0) FROM web_log WHERE channel_id = ? AND user_id = ?",
                (channel_id, user_id),
            )
            event_id = int(last[0]) + 1
            external_id = new_id("web")
            now = time.time()
            frame = _frame(event_id, external_id, message_id, content_json, now)
            tx.execute(
                "INSERT INTO web_log (channel_id, user_id, event_id, message_id, part,"
                " external_id, frame, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    channel_id, user_id, event_id, message_id, part,
                    external_id, frame, now, expires_at,
                ),
            )  # fmt: skip
            return Appended(event_id, external_id, frame, new=True)

        result: Appended = await self.db.run(op)
        return result

    async def after(self, channel_id: str, user_id: str, event_id: int) -> list[LogEntry]:
        """The next page of a user's entries after `event_id`, oldest first; those that
        failed (the user was offline past the wait, and failover may have sent them on
        another channel) are left out."""

        def op(tx: Tx) -> list[LogEntry]:
            rows = tx.all(
                "SELECT event_id, frame FROM web_log WHERE channel_id = ? AND user_id = ?"
                " AND event_id > ? AND failed_at IS NULL ORDER BY event_id LIMIT ?",
                (channel_id, user_id, event_id, PAGE),
            )
            return [LogEntry(int(r[0]), r[1]) for r in rows]

        entries: list[LogEntry] = await self.db.run(op)
        return entries

    async def newest(self, channel_id: str, user_id: str) -> int:
        """The user's last event id (0: none yet)."""

        def op(tx: Tx) -> int:
            row = tx.one(
                "SELECT COALESCE(MAX(event_id), 0) FROM web_log WHERE channel_id = ? AND user_id = ?",
                (channel_id, user_id),
            )
            return int(row[0])

        newest: int = await self.db.run(op)
        return newest

    async def delivered(self, channel_id: str, user_id: str, event_id: int, now: float) -> bool:
        """A device shows entry `event_id`: True when this is the first to say so."""

        def op(tx: Tx) -> bool:
            row = tx.one(
                "SELECT external_id, message_id FROM web_log WHERE channel_id = ? AND user_id = ?"
                " AND event_id = ? AND delivered_at IS NULL AND failed_at IS NULL",
                (channel_id, user_id, event_id),
            )
            if row is None:
                return False
            tx.execute(
                "UPDATE web_log SET delivered_at = ? WHERE channel_id = ? AND external_id = ?",
                (now, channel_id, row[0]),
            )
            note = StatusNote(external_id=row[0], message_id=row[1], state="delivered")
            _store_status(tx, channel_id, user_id, note, now)
            return True

        changed: bool = await self.db.run(op)
        return changed

    async def read(self, channel_id: str, user_id: str, event_id: int, now: float) -> int:
        """The user has seen every entry up to `event_id`: how many became read."""

        def op(tx: Tx) -> int:
            rows = tx.all(
                "SELECT external_id, message_id, delivered_at FROM web_log WHERE channel_id = ?"
                " AND user_id = ? AND event_id <= ? AND read_at IS NULL AND failed_at IS NULL",
                (channel_id, user_id, event_id),
            )
            for external_id, message_id, delivered_at in rows:
                tx.execute(
                    "UPDATE web_log SET read_at = ?, delivered_at = COALESCE(delivered_at, ?)"
                    " WHERE channel_id = ? AND external_id = ?",
                    (now, now, channel_id, external_id),
                )
                if delivered_at is None:  # read implies delivered; the report says so first
                    delivered = StatusNote(
                        external_id=external_id, message_id=message_id, state="delivered"
                    )
                    _store_status(tx, channel_id, user_id, delivered, now)
                note = StatusNote(external_id=external_id, message_id=message_id, state="read")
                _store_status(tx, channel_id, user_id, note, now)
            return len(rows)

        count: int = await self.db.run(op)
        return count

    async def expire(self, now: float, reason: str, limit: int = 500) -> list[tuple[str, str]]:
        """Fail what no device acknowledged in time: (channel, user) of each row failed."""

        def op(tx: Tx) -> list[tuple[str, str]]:
            rows = tx.all(
                "SELECT channel_id, user_id, external_id, message_id, expires_at FROM web_log"
                " WHERE delivered_at IS NULL AND failed_at IS NULL AND expires_at <= ?"
                " ORDER BY expires_at LIMIT ?",
                (now, limit),
            )
            failed: list[tuple[str, str]] = []
            for channel_id, user_id, external_id, message_id, _expires in rows:
                changed = tx.execute(
                    "UPDATE web_log SET failed_at = ? WHERE channel_id = ? AND external_id = ?"
                    " AND delivered_at IS NULL AND failed_at IS NULL",
                    (now, channel_id, external_id),
                )
                if not changed:
                    continue
                note = StatusNote(
                    external_id=external_id,
                    message_id=message_id,
                    state="failed",
                    error_code="offline_timeout",
                    error_title=reason,
                )
                _store_status(tx, channel_id, user_id, note, now)
                failed.append((channel_id, user_id))
            return failed

        expired: list[tuple[str, str]] = await self.db.run(op)
        return expired

    async def recent(self, since: float) -> list[tuple[str, str, int]]:
        """(channel, user, newest event id) of the users written to since `since`: what a
        gateway checks its own devices against, for entries another process appended."""

        def op(tx: Tx) -> list[Any]:
            return tx.all(
                "SELECT channel_id, user_id, MAX(event_id) FROM web_log WHERE created_at >= ?"
                " GROUP BY channel_id, user_id",
                (since,),
            )

        rows: list[Any] = await self.db.run(op)
        return [(r[0], r[1], int(r[2])) for r in rows]
