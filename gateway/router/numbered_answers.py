"""Numbered answers: a person's text reply to choices the gateway sent them as numbered text
(a channel that could not show the buttons, list or carousel) becomes the postback a native
button would have produced. Pure: the store reads the choices last offered to the sender and
persists the event this returns (gateway/downgrade/choices.py says how a reply is matched).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.downgrade.choices import Choice, match_choice
from gateway.schema import Event, Postback


@dataclass(frozen=True)
class OfferedChoices:
    """The numbered choices last sent to a person, and the message that carried them."""

    message_id: str
    choices: Sequence[Choice]


def may_answer_choices(event: Event) -> bool:
    """Whether `event` could answer numbered choices: a person's text message. Only then does
    the store look up what they were offered."""
    return (
        event.type == "message"
        and event.sender is not None
        and event.message is not None
        and event.message.content.type == "text"
    )


def answered_choice(event: Event, offered: OfferedChoices | None) -> Event:
    """`event` as the postback of the choice its text picks from `offered`, keeping what was
    typed and which message offered the choice in `channel_data`; else `event` itself."""
    if offered is None or not may_answer_choices(event):
        return event
    assert event.message is not None and event.message.content.type == "text"
    answer = event.message.content.text
    picked = match_choice(answer, list(offered.choices))
    if picked is None:
        return event
    return event.model_copy(
        update={
            "type": "postback",
            "message": None,
            "postback": Postback(payload=picked.payload, title=picked.title),
            "channel_data": {
                **(event.channel_data or {}),
                "answered_with_text": answer,
                "choices_message_id": offered.message_id,
            },
        }
    )
