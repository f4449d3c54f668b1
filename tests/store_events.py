"""Events and messages as the store tests hand them to the store."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from gateway.schema import ChannelRef, Event, Party, Status
from gateway.store import NewMessage, Store


def targets(event_type: str) -> list[str]:
    return ["orders"]


def whatsapp_event(type_: str, external_id: str, **fields: Any) -> Event:
    return Event(
        id=f"evt_{uuid.uuid4().hex}",
        type=type_,  # type: ignore[arg-type]
        channel=ChannelRef(id="wa", type="whatsapp"),
        external_id=external_id,
        timestamp=datetime.now(UTC),
        **fields,
    )


def inbound(text_id: str, sender: str = "16505551234") -> Event:
    text = {"content": {"type": "text", "text": "hi"}}
    return whatsapp_event("message", text_id, sender=Party(id=sender, name="Sheena"), message=text)


def status(external_id: str, state: str, raw_id: int | None = 1) -> Event:
    return whatsapp_event(
        "status",
        external_id,
        recipient=Party(id="16505551234"),
        status=Status(external_id=external_id, state=state),  # type: ignore[arg-type]
        raw_id=raw_id,
    )


def unsupported(wamid: str, raw_id: int) -> Event:
    """What the adapters make of a payload they cannot represent (a WhatsApp poll, say)."""
    reason = {"reason": "message type 'poll' is not supported"}
    return whatsapp_event(
        "unsupported", wamid, sender=Party(id="16505551234"), unsupported=reason, raw_id=raw_id
    )


def new_message(message_id: str, key: str | None = None, body_hash: str = "h1") -> NewMessage:
    return NewMessage(
        message_id,
        "wa",
        "16505551234",
        '{"type":"text","text":"hi"}',
        None,
        "orders",
        key,
        body_hash,
    )


async def events_of_types(store: Store, types: tuple[str, ...]) -> list[dict[str, Any]]:
    """Stored events of `types`, oldest first, each with the backend its delivery is queued
    for (`target`)."""
    rows = await store.db.run(
        lambda tx: tx.all(
            "SELECT e.body, o.target FROM events e LEFT JOIN outbox o ON o.ref = e.id"
            " WHERE e.type IN (" + ",".join("?" * len(types)) + ") ORDER BY e.created_at, o.id",
            types,
        )
    )
    return [{**json.loads(body), "target": target} for body, target in rows]
