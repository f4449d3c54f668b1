"""The router's status decisions, as tables, without I/O: what a provider's status report
does (watermark, hold, apply, pass), what a held one does when looked at again, whether a
report moves a message on, and the events that name our message to the backends."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.router.statuses import (
    SentMessage,
    covered_status,
    held_route,
    named_status,
    state_change,
    status_error,
    status_route,
    watermark_moves,
)
from gateway.schema import Event, ParticipantRef, Status

SENT = SentMessage("msg_1", "conv_A", "sent", None)
QUEUED = SentMessage("msg_1", "conv_A", "queued", None)
COPY = SentMessage("msg_2", "conv_G", "delivered", "par_j")
JASPER = ParticipantRef(id="par_j", role="courier", display_name="Jasper")
AT = datetime(2026, 1, 1, tzinfo=UTC)


def status(**fields: Any) -> Status:
    return Status.model_validate({"state": "delivered", **fields})


def status_event(recipient: str | None = "psid-1", **fields: Any) -> Event:
    return Event.model_validate(
        {
            "id": "evt_in",
            "type": "status",
            "channel": {"id": "fb", "type": "messenger"},
            "timestamp": AT,
            "external_id": fields.get("external_id"),
            **({"recipient": {"id": recipient}} if recipient else {}),
            "status": {"state": "delivered", **fields},
        }
    )


@pytest.mark.parametrize(
    ("reported", "sent", "route"),
    [
        (status(watermark=AT), None, "watermark"),
        (status(external_id="m.1", watermark=AT), SENT, "apply"),  # its id names it already
        (status(external_id="m.1"), None, "hold"),  # our send may not be recorded yet
        (status(external_id="m.1"), QUEUED, "hold"),  # a part; the rest waits for a retry
        (status(external_id="m.1"), SENT, "apply"),
        (status(external_id="m.1", state="failed"), SENT, "apply"),
        (status(), None, "pass"),  # no provider id: it names nothing of ours
    ],
    ids=[
        "watermark",
        "watermark with an id",
        "unknown id",
        "part of a queued message",
        "ours",
        "ours failed",
        "no id",
    ],
)
def test_what_an_inbound_status_does(
    reported: Status, sent: SentMessage | None, route: str
) -> None:
    assert status_route(reported, sent) == route


@pytest.mark.parametrize(
    ("sent", "route"),
    [(None, "release"), (QUEUED, "hold"), (SENT, "apply"), (COPY, "apply")],
    ids=["still unmatched", "queued again for a retry", "recorded", "recorded copy"],
)
def test_what_a_held_status_does_when_settled(sent: SentMessage | None, route: str) -> None:
    assert held_route(sent) == route


@pytest.mark.parametrize(
    ("current", "reported", "change"),
    [
        ("queued", "sent", "forward"),
        ("sent", "delivered", "forward"),
        ("delivered", "read", "forward"),
        ("sent", "read", "forward"),  # a read report may come first
        ("sent", "failed", "forward"),
        ("delivered", "delivered", "same"),
        ("read", "delivered", "stale"),  # reports arrive out of order
        ("read", "sent", "stale"),
    ],
)
def test_a_report_only_moves_a_message_on(current: str, reported: str, change: str) -> None:
    assert state_change(current, reported) == change


def test_a_failed_sends_error_and_its_history_line() -> None:
    error = {"code": "131047", "title": "Re-engagement message"}
    assert status_error(status(state="failed", error=error)) == (
        {**error, "retryable": False, "detail": None},
        "131047: Re-engagement message",
    )
    assert status_error(status()) == (None, None)


@pytest.mark.parametrize(
    ("event", "states"),
    [
        (status_event(watermark=AT), ("sent",)),
        (status_event(watermark=AT, state="read"), ("sent", "delivered")),
        (status_event(watermark=AT, state="failed"), ()),
        (status_event(None, watermark=AT), ()),  # no recipient: no messages to cover
    ],
    ids=["delivered", "read", "failed", "no recipient"],
)
def test_which_messages_a_watermark_moves_on(event: Event, states: tuple[str, ...]) -> None:
    assert watermark_moves(event) == states


@pytest.mark.parametrize(
    ("sent", "participant"), [(SENT, None), (COPY, JASPER)], ids=["message", "relayed copy"]
)
def test_the_status_names_our_message(sent: SentMessage, participant: ParticipantRef) -> None:
    named = named_status(status_event(external_id="m.1"), sent, participant)
    assert named.status is not None
    assert (named.id, named.external_id, named.conversation_id) == (
        "evt_in",
        "m.1",
        sent.conversation_id,
    )
    assert (named.status.message_id, named.status.participant) == (sent.id, participant)


def test_a_watermark_gives_each_covered_message_a_status_of_its_own() -> None:
    covered = covered_status(status_event(watermark=AT), COPY, "m.first", JASPER, "evt_new")
    assert covered.status is not None
    assert (covered.id, covered.external_id, covered.conversation_id) == (
        "evt_new",
        "m.first",
        "conv_G",
    )
    assert covered.status.model_dump(exclude_none=True) == {
        "message_id": "msg_2",
        "external_id": "m.first",
        "state": "delivered",
        "participant": JASPER.model_dump(exclude_none=True),
        "watermark": AT,
    }
