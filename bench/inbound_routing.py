"""The store's inbound transaction with its routing rules: CPU per event of recording batches
of WhatsApp events that exercise each rule (numbered-choice answers, form answers, statuses of
our sends, plain messages), on SQLite, in this process. Run it on two trees (the same script)
to compare: `PYTHONPATH=<tree> python bench/inbound_routing.py`.

    python bench/inbound_routing.py [--batches 200] [--batch-size 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from gateway.downgrade.choices import Choice
from gateway.schema import ChannelRef, Event, Party, Status
from gateway.store import NewMessage, Store, sqlite_database, writes
from gateway.store.database import Tx
from gateway.store.records import PreparedEvent

WA = ChannelRef(id="wa", type="whatsapp")
FOREVER = 4e9
FORM = '{"type":"form","title":"Signup","fields":[{"name":"email","label":"Email","type":"email"}]}'


def targets(event_type: str) -> list[str]:
    return ["orders"]


def text_from(sender: str, text: str) -> Event:
    return Event(
        id=f"evt_{uuid.uuid4().hex}",
        type="message",
        channel=WA,
        external_id=f"wamid.{uuid.uuid4().hex}",
        timestamp=datetime.now(UTC),
        sender=Party(id=sender),
        message={"content": {"type": "text", "text": text}},
    )


def status_of(external_id: str, state: str) -> Event:
    return Event(
        id=f"evt_{uuid.uuid4().hex}",
        type="status",
        channel=WA,
        external_id=external_id,
        timestamp=datetime.now(UTC),
        recipient=Party(id="16505550000"),
        status=Status(external_id=external_id, state=state),
    )


def prepared(event: Event) -> PreparedEvent:
    body = None if event.type == "status" else event.model_dump_json(exclude_none=True)
    return PreparedEvent(event, event.id, body)


async def seed(store: Store, users: int, sent: int) -> list[str]:
    """Users 0..users-1 hold numbered choices, users-..2*users-1 a form that refuses their
    answer (so it stays open), and `sent` messages of ours are recorded sent: their wamids."""
    choices = [Choice(1, "Pizza", "PIZZA"), Choice(2, "Sushi", "SUSHI")]
    for n in range(users):
        await store.record_plan(f"msg_c{n}", "wa", f"c{n}", [], choices, FOREVER, time.time())
        await store.start_form("wa", f"f{n}", f"msg_f{n}", FORM, FOREVER, time.time())
    wamids = [f"wamid.sent{n}" for n in range(sent)]

    def record(tx: Tx) -> None:
        now = time.time()
        for n, wamid in enumerate(wamids):
            message = NewMessage(
                f"msg_s{n}",
                "wa",
                "16505550000",
                '{"type":"text","text":"hi"}',
                None,
                "k",
                None,
                "h",
            )
            writes.insert_message(tx, message, now)
            writes.record_parts(tx, "wa", message.id, [wamid])
            writes.advance(tx, message.id, "sent", None, None, now)

    await store.db.run(record)
    return wamids


def batches(count: int, size: int, users: int, wamids: list[str]) -> list[list[Event]]:
    """A quarter each: a choice answer, a form answer, a plain message, a status."""
    made, statuses = [], iter((w, s) for s in ("delivered", "read") for w in wamids)
    for b in range(count):
        events = []
        for i in range(size):
            n = (b * size + i) % users
            match i % 4:
                case 0:
                    events.append(text_from(f"c{n}", "2"))
                case 1:
                    events.append(text_from(f"f{n}", "not an email"))
                case 2:
                    events.append(text_from(f"p{n}", "hello"))
                case _:
                    events.append(status_of(*next(statuses)))
        made.append(events)
    return made


async def run(count: int, size: int) -> float:
    """CPU microseconds per event recorded."""
    users = 100
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(sqlite_database(Path(tmp) / "store.db"))
        store.start()
        try:
            wamids = await seed(store, users, count * size // 4 // 2 + 1)
            work = batches(count, size, users, wamids)
            started = time.process_time()
            for raw_id, events in enumerate(work, 1):
                rows = [(raw_id, [prepared(e) for e in events])]
                await store.record_inbound_batch(rows, targets, time.time())
            spent = time.process_time() - started
        finally:
            store.close()
    return spent / (count * size) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    figures = [asyncio.run(run(args.batches, args.batch_size)) for _ in range(args.repeat)]
    print(
        f"{sys.modules['gateway'].__file__}: {args.batches} batches of {args.batch_size},"
        f" CPU per event {statistics.median(figures):.0f} µs (median of {args.repeat}:"
        f" {', '.join(f'{f:.0f}' for f in figures)})"
    )


if __name__ == "__main__":
    main()
