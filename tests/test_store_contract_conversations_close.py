"""Closing a group conversation, on SQLite and on PostgreSQL (`make_store`): a post or a
participant's message that races a close from another gateway process relays nothing."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from gateway.ids import new_id
from gateway.store import Store
from gateway.store import conversations as stored
from gateway.store.database import Tx

from .store_events import targets
from .test_store_contract_conversations import COURIER, NOW, SEATS, TEXT, copies, said, start

HOLD_SECONDS = 0.5
# SQLite: within the store's wait for another process's lock (sqlite.BUSY_TIMEOUT_MS), so the
# change waits for the close to commit rather than failing as "store busy".
SQLITE_HOLD_SECONDS = 0.1


def close_and_hold(store: Store, conversation_id: str, closed: threading.Event) -> None:
    """Close the conversation in a transaction of another connection (another gateway
    process, say) and commit it only HOLD_SECONDS after `closed` is set."""
    db: Any = store.db
    if db.dialect.name == "sqlite":
        conn: Any = sqlite3.connect(db.path, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("BEGIN IMMEDIATE")
    else:
        conn = db._connect()
    cursor = conn.cursor()
    tx = Tx(cursor, db.dialect)
    found = stored.load(tx, conversation_id, lock=True)
    assert found is not None
    assert stored.close(tx, found, targets, NOW)
    closed.set()
    time.sleep(SQLITE_HOLD_SECONDS if db.dialect.name == "sqlite" else HOLD_SECONDS)
    conn.commit()
    conn.close()


async def race_a_close(store: Store, conversation_id: str, change: Callable[[], Any]) -> Any:
    """Run `change` while a close of the conversation is under way, not yet committed; its
    result, or the exception it raised."""
    closed = threading.Event()
    closing = asyncio.create_task(asyncio.to_thread(close_and_hold, store, conversation_id, closed))
    assert await asyncio.to_thread(closed.wait, 10)
    try:
        return await change()
    except Exception as exc:  # the answer under test
        return exc
    finally:
        await closing


async def test_a_post_racing_a_close_is_refused_and_relays_nothing(
    make_store: Callable[[], Store],
) -> None:
    one, other = make_store(), make_store()
    conversation = await start(one)
    answer = await race_a_close(
        other,
        conversation.id,
        lambda: one.post_to_conversation(conversation.id, TEXT, None, None, NOW + 1),
    )
    assert isinstance(answer, stored.ConversationConflict), answer
    assert answer.code == "conversation_closed"
    assert await copies(one, conversation.id) == []
    assert await one.conversation_messages(conversation.id, None, 10) == []


async def test_a_participants_message_racing_a_close_stays_in_their_own_conversation(
    make_store: Callable[[], Store],
) -> None:
    one, other = make_store(), make_store()
    conversation = await start(one)
    [event] = await race_a_close(
        other,
        conversation.id,
        lambda: one.record_inbound(1, [(said("sms", COURIER), "k1")], targets, NOW + 1),
    )
    assert event.conversation_id != conversation.id and event.author is None
    assert await copies(one, conversation.id) == []


async def test_adding_a_participant_racing_a_close_is_refused(
    make_store: Callable[[], Store],
) -> None:
    one, other = make_store(), make_store()
    conversation = await start(one, seats=[])
    newcomer = stored.SeatRequest("", "courier", "Jasper", channel_id="sms", provider_id=COURIER)
    answer = await race_a_close(
        other,
        conversation.id,
        lambda: one.add_participant(conversation.id, newcomer, targets, NOW + 1),
    )
    assert isinstance(answer, stored.ConversationConflict), answer
    assert answer.code == "conversation_closed"
    found = await one.get_conversation(conversation.id)
    assert found is not None and found.participants == []


async def test_a_message_racing_the_close_of_one_of_two_conversations_joins_the_other(
    make_store: Callable[[], Store],
) -> None:
    one, other = make_store(), make_store()
    older = await start(one)
    newer = await one.create_conversation(
        new_id("conv"), "orders", "relay", None, SEATS, targets, NOW + 1
    )  # the most recently active: chosen while it is open
    [event] = await race_a_close(
        other,
        newer.id,
        lambda: one.record_inbound(1, [(said("sms", COURIER), "k1")], targets, NOW + 2),
    )
    assert event.conversation_id == older.id
    assert len(await copies(one, older.id)) == 2 and await copies(one, newer.id) == []
