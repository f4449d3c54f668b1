"""The router's decisions on agents, bots and control, as tables, without I/O: who a silent
observer or an API-only participant gets copies from, who is told of a join, how control
moves between backends, and which backends get an event or its standby copy."""

from __future__ import annotations

import pytest

from gateway.router.control import Handover, Refused, hand_over, webhook_targets
from gateway.router.conversations import (
    API_ONLY,
    Seat,
    announced_to,
    announcement,
    recipients,
    relay_targets,
)

BACKENDS = ["bot", "desk", "crm"]


def seat(pid: str, *, observer: bool = False, api_only: bool = False) -> Seat:
    channel = API_ONLY if api_only else "wa"
    return Seat(pid, "conv_A", channel, pid, "agent", pid.title(), None, True, observer)


SEATS = [seat("a"), seat("b"), seat("watcher", observer=True), seat("console", api_only=True)]


@pytest.mark.parametrize(
    ("mode", "author", "expected"),
    [
        ("relay", "a", ["b", "watcher"]),  # an observer gets everything; the console reads history
        ("hub", "a", ["watcher"]),  # in a hub, only observers see the others' messages
        ("relay", "watcher", ["a", "b"]),
        ("relay", "console", ["a", "b", "watcher"]),
    ],
)
def test_who_gets_a_participants_message(mode: str, author: str, expected: list[str]) -> None:
    assert [s.id for s in relay_targets(mode, SEATS, author)] == expected


def test_an_api_only_participant_gets_no_copy_even_when_named() -> None:
    assert [s.id for s in recipients(SEATS, None, ["console", "a"])] == ["a"]


@pytest.mark.parametrize(
    ("mode", "who", "told"),
    [
        ("relay", seat("new"), ["a", "b", "watcher"]),
        ("relay", seat("a"), ["b", "watcher"]),  # not themselves
        ("relay", seat("shy", observer=True), []),  # an observer is announced to no one
        ("hub", seat("new"), []),  # a hub's participants do not hear of each other
    ],
)
def test_who_is_told_of_a_join(mode: str, who: Seat, told: list[str]) -> None:
    assert [s.id for s in announced_to(mode, SEATS, who)] == told


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{name} ({role}) joined", "Sam (support) joined"),
        ("{name} from {role} joined", "Sam from support joined"),
        ("{role}: {name} {name}", "support: Sam Sam"),
        ("{other} {0} joined", "{other} {0} joined"),  # not str.format: no field is an error
    ],
)
def test_announcement_text(template: str, expected: str) -> None:
    sam = Seat("p", "conv_A", "wa", "x", "support", "Sam")
    assert announcement(template, sam) == expected


@pytest.mark.parametrize(
    ("action", "backend", "current", "default", "expected"),
    [
        ("pass", "desk", "bot", "bot", Handover("pass", "bot", "desk")),
        ("pass", "desk", None, None, Handover("pass", None, "desk")),
        ("pass", "desk", "desk", "bot", None),  # held already: nothing changes
        ("pass", None, "bot", "bot", Refused(422, "missing_backend", "backend", "")),
        ("pass", "nope", "bot", "bot", Refused(422, "unknown_backend", "backend", "")),
        ("take", "desk", "bot", "bot", Handover("take", "bot", "desk")),
        ("take", None, "desk", "bot", Handover("take", "desk", "bot")),  # the default takes it
        ("take", None, "desk", None, Refused(422, "missing_backend", "backend", "")),
        ("release", None, "desk", "bot", Handover("release", "desk", "bot")),
        ("release", "desk", "desk", "bot", Handover("release", "desk", "bot")),
        ("release", "bot", "desk", "bot", Refused(409, "not_in_control", "backend", "")),
        ("release", None, "bot", "bot", Handover("release", "bot", None)),  # to no one
        ("release", None, "desk", None, Handover("release", "desk", None)),
        ("release", None, None, "bot", None),
    ],
)
def test_control_moves_like_messengers_handover(
    action: str,
    backend: str | None,
    current: str | None,
    default: str | None,
    expected: Handover | Refused | None,
) -> None:
    decided = hand_over(action, backend, current, default, BACKENDS)
    if isinstance(expected, Refused):
        assert isinstance(decided, Refused)
        assert (decided.status, decided.code, decided.field) == (
            expected.status,
            expected.code,
            expected.field,
        )
        assert decided.message
    else:
        assert decided == expected


@pytest.mark.parametrize(
    ("event_type", "subscribed", "controller", "primary", "standby"),
    [
        ("message", ["bot", "desk"], None, ["bot", "desk"], []),  # no control: as in a 1:1
        ("message", ["bot", "desk", "crm"], "desk", ["desk"], ["bot", "crm"]),
        ("postback", ["bot", "desk"], "bot", ["bot"], ["desk"]),
        ("message", ["bot"], "desk", [], ["bot"]),  # the controller asked for no messages
        ("status", ["bot", "desk"], "desk", ["bot", "desk"], []),  # statuses: every subscriber
        ("reaction", ["bot", "desk"], "desk", ["bot", "desk"], []),
    ],
)
def test_which_backends_get_an_event_or_its_standby_copy(
    event_type: str,
    subscribed: list[str],
    controller: str | None,
    primary: list[str],
    standby: list[str],
) -> None:
    assert webhook_targets(event_type, subscribed, controller) == (primary, standby)
