"""Events and messages as the store tests hand them to the store."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from gateway.schema import ChannelRef, Event, Party, Status
from gateway.store import NewMessage


def targets(event_type: str) -> list[str]:
    return ["orders"]


def inbound(text_id: str, sender: str = "16505551234") -> Event:
    return Event(
        id=f"evt_{uuid.uuid4().hex}",
        type="message",
        channel=ChannelRef(id="wa", type="whatsapp"),
        external_id=text_id,
        timestamp=datetime.now(UTC),
        sender=Party(id=sender, name="Sheena"),
        message={"content": {"type": "text", "text": "hi"}},  # type: ignore[arg-type]
    )


def status(external_id: str, state: str, raw_id: int | None = 1) -> Event:
    return Event(
        id=f"evt_{uuid.uuid4().hex}",
        type="status",
        channel=ChannelRef(id="wa", type="whatsapp"),
        external_id=external_id,
        timestamp=datetime.now(UTC),
        recipient=Party(id="16505551234"),
        status=Status(external_id=external_id, state=state),
        raw_id=raw_id,  # type: ignore[arg-type]
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


def unsupported(wamid: str, raw_id: int) -> Event:
    """What the adapters make of a payload they cannot represent (a WhatsApp poll, say)."""
    return Event(
        id=f"evt_{wamid}",
        type="unsupported",
        channel=ChannelRef(id="wa", type="whatsapp"),
        external_id=wamid,
        timestamp=datetime.now(UTC),
        sender=Party(id="16505551234"),
        unsupported={"reason": "message type 'poll' is not supported"},  # type: ignore[arg-type]
        raw_id=raw_id,  # type: ignore[arg-type]
    )
