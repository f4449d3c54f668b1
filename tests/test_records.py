"""`promote` builds an Event as `Event.model_construct` would, without its cost
(gateway/store/records.py): the same values, in the same order, the same fields set."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.schema import ChannelRef, Event, EventDraft, MessageBody, Party, Status
from gateway.schema.content import TextContent
from gateway.store.records import conversation_of, promote

WHEN = datetime(2025, 6, 8, 21, 0, tzinfo=UTC)
CHANNEL = ChannelRef(id="wa", type="whatsapp")
DRAFTS = {
    "message": EventDraft(
        type="message",
        channel=CHANNEL,
        external_id="wamid.1",
        timestamp=WHEN,
        sender=Party(id="16505551234", name="Sheena"),
        recipient=Party(id="106540352242922"),
        message=MessageBody(content=TextContent(text="hi")),
        channel_data={"group_id": "g1"},
    ),
    "status": EventDraft(
        type="status",
        channel=CHANNEL,
        timestamp=WHEN,
        status=Status(external_id="wamid.2", state="delivered"),
    ),
}


def test_events_own_fields_follow_the_drafts_and_default_to_none() -> None:
    drafts = list(EventDraft.model_fields)
    assert list(Event.model_fields)[: len(drafts)] == drafts
    own = {n: f for n, f in Event.model_fields.items() if n not in drafts}
    assert list(own) == ["id", "conversation_id", "author", "raw_id", "standby"]
    for name, field in own.items():
        assert field.alias is None and field.validation_alias is None, name
        assert field.default_factory is None, name
        assert name == "id" or field.default is None, name
    assert not Event.__pydantic_post_init__ and not Event.__private_attributes__


@pytest.mark.parametrize("kind", sorted(DRAFTS))
def test_promote_builds_what_model_construct_builds(kind: str) -> None:
    draft = DRAFTS[kind]
    fields = {**draft.__dict__, "id": "evt_1", "raw_id": 7}
    if (conversation := conversation_of(draft)) is not None:
        fields["conversation_id"] = conversation
    expected = Event.model_construct(**fields)
    event = promote(draft, "evt_1", 7)
    assert event == expected
    assert list(event.__dict__.items()) == list(expected.__dict__.items())
    assert event.model_fields_set == expected.model_fields_set
    assert event.model_dump_json(exclude_none=True) == expected.model_dump_json(exclude_none=True)
