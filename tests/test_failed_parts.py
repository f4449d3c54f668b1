"""One bad part fails alone (adapters/webhook_parts.py): a batched webhook yields the events of
every readable part, keeps each unreadable part with its JSON path and reason, and a replay
reads only the failed parts again, so the others' events are not emitted twice.

The tables (`tests/fixtures/<channel>/parts.json`) each name a documented-shape batch with
one or more bad parts, the events of the good ones and the failed parts."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BeforeValidator, ConfigDict, TypeAdapter, with_config
from typing_extensions import TypedDict

from adapters import ADAPTERS, Adapter
from adapters.line import payloads as lp
from adapters.messenger import payloads as fb
from adapters.webhook_parts import PartReader
from adapters.whatsapp import payloads as wa
from gateway.cli import main
from gateway.pipeline.normaliser import Normaliser
from gateway.preview import placeholder_config
from gateway.store import Store
from tests.tables import check_read, load_table, node

FIXTURES = Path(__file__).parent / "fixtures"
CHANNELS = [c for c in sorted(ADAPTERS) if (FIXTURES / c / "parts.json").exists()]
WA_BATCH = "batch_one_bad_message.json"
WA_BAD = "entry[0].changes[0].value.messages[1]"
FB_BATCH = "batch_one_bad_item.json"
FB_BAD = "entry[0].messaging[1]"
LINE_BATCH = "batch_one_bad_event.json"
LINE_BAD = "events[1]"


def adapter_for(channel: str, channel_id: str | None = None) -> Adapter:
    cls = ADAPTERS[channel]
    return cls(placeholder_config(cls.config_model, channel_id or channel))


def table() -> list[Any]:
    return [
        pytest.param(channel, case, id=f"{channel}-{case['name']}")
        for channel in CHANNELS
        for case in load_table(FIXTURES / channel / "parts.json")
    ]


@pytest.mark.parametrize(("channel", "case"), table())
def test_the_readable_parts_yield_their_events_and_the_bad_ones_fail_alone(
    channel: str, case: dict[str, Any]
) -> None:
    check_read(adapter_for(channel), (FIXTURES / channel / case["file"]).read_bytes(), case)


def test_every_channel_that_batches_has_a_table() -> None:
    assert {"whatsapp", "messenger", "line"} <= set(CHANNELS)


# --- "a fix": the payload models made to read what the bad parts hold ---------------------
@with_config(ConfigDict(strict=True))
class _NumberTolerantText(TypedDict):
    body: Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, int) else v)]


@with_config(ConfigDict(extra="ignore", strict=True))
class _FixedWhatsAppMessage(wa.Message, total=False):
    text: _NumberTolerantText | None  # type: ignore[misc]  # the fix: a wider `text`


@with_config(ConfigDict(extra="ignore", strict=True))
class _ListTolerantMessage(fb.Message, total=False):
    text: Annotated[  # type: ignore[misc]  # the fix: a wider `text`
        str | None, BeforeValidator(lambda v: " ".join(v) if isinstance(v, list) else v)
    ]


@with_config(ConfigDict(extra="ignore", strict=True))
class _FixedMessaging(fb.Messaging, total=False):
    message: _ListTolerantMessage | None  # type: ignore[misc]


@lp.strict
class _NumberTolerantMedia(lp.MediaMessage):
    id: Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, int) else v)]  # type: ignore[misc]


@lp.strict
class _FixedMediaEvent(lp.Event):
    message: _NumberTolerantMedia


def fix(monkeypatch: pytest.MonkeyPatch, channel: str) -> None:
    if channel == "whatsapp":
        monkeypatch.setattr(wa, "MESSAGE", TypeAdapter(_FixedWhatsAppMessage))
    elif channel == "messenger":
        monkeypatch.setattr(fb, "MESSAGING", TypeAdapter(_FixedMessaging))
    else:
        monkeypatch.setitem(lp.MESSAGE_EVENTS, "image", TypeAdapter(_FixedMediaEvent))


def external_id(channel: str, part: dict[str, Any]) -> str:
    """The id of the event a fixed adapter reads from the bad part."""
    if channel == "whatsapp":
        return str(part["id"])
    if channel == "messenger":
        return str(part["message"]["mid"])
    return str(part["message"]["id"])


BATCHES = [
    ("whatsapp", WA_BATCH, WA_BAD),
    ("messenger", FB_BATCH, FB_BAD),
    ("line", LINE_BATCH, LINE_BAD),
]


@pytest.mark.parametrize(
    ("channel", "file", "bad", "text"),
    [
        ("whatsapp", WA_BATCH, WA_BAD, "42"),
        ("messenger", FB_BATCH, FB_BAD, "not text"),
        ("line", LINE_BATCH, LINE_BAD, None),  # an image
    ],
)
def test_reading_only_the_failed_part_after_a_fix_yields_only_its_events(
    monkeypatch: pytest.MonkeyPatch, channel: str, file: str, bad: str, text: str | None
) -> None:
    adapter = adapter_for(channel)
    body = (FIXTURES / channel / file).read_bytes()
    before = adapter.read(body, None, frozenset({bad}))
    assert before.events == [] and [f.path for f in before.failed] == [bad]
    fix(monkeypatch, channel)
    after = adapter.read(body, None, frozenset({bad}))
    assert after.failed == []
    [event] = after.events
    assert event.draft.external_id == external_id(channel, node(json.loads(body), bad))
    assert event.draft.message is not None
    assert getattr(event.draft.message.content, "text", None) == text
    everything = adapter.read(body, None)  # the fixed adapter reads the whole body alike
    assert everything.failed == [] and event in everything.events


def test_only_names_parts_by_their_whole_path() -> None:
    reader = PartReader(frozenset({"entry[1].messaging[0]"}))
    assert reader.wants("entry[1]")  # on the way to it
    assert reader.wants("entry[1].messaging[0]")
    assert not reader.wants("entry[1].messaging[10]")  # not a prefix of the path
    assert not reader.wants("entry[0]")
    whole = PartReader(frozenset({"entry[1]"}))
    assert whole.wants("entry[1].messaging[3]")  # inside a failed entry: all of it again
    assert PartReader().wants("anything")


# --- through the store: failed, listed, replayed once -------------------------------------
async def _events_of(store: Store, raw_id: int) -> list[str]:
    rows = await store.db.run(
        lambda tx: tx.all(
            "SELECT body FROM events WHERE raw_id = ? ORDER BY created_at, id", (raw_id,)
        )
    )
    return [json.loads(r[0])["external_id"] for r in rows]


@pytest.mark.parametrize(("channel", "file", "bad"), BATCHES)
async def test_a_failed_part_is_stored_listed_and_replayed_alone(
    store: Store, monkeypatch: pytest.MonkeyPatch, channel: str, file: str, bad: str
) -> None:
    adapter = adapter_for(channel, "ch")
    normaliser = Normaliser(store, {"ch": adapter}, lambda _t: [], 0.1)
    body = (FIXTURES / channel / file).read_bytes()
    good = [e.draft.external_id for e in adapter.read(body, None).events]
    raw_id = await store.append_inbox("ch", adapter.dedupe_key(body), "u", "{}", body, time.time())
    assert raw_id is not None

    await normaliser.run_once()
    assert sorted(await _events_of(store, raw_id)) == sorted(good)
    [(row, channel_id, reason)] = await store.inbox_rows("failed")
    assert (row, channel_id) == (raw_id, "ch")
    [(path, why)] = (await store.failed_parts_of([raw_id]))[raw_id]
    assert path == bad and why.startswith(bad) and reason == f"invalid payload: {why}"

    # Replayed before the fix: the part fails again, nothing else is read twice.
    assert await store.replay_inbox() == 1
    await normaliser.run_once()
    assert sorted(await _events_of(store, raw_id)) == sorted(good)
    assert [p for p, _ in (await store.failed_parts_of([raw_id]))[raw_id]] == [bad]

    fix(monkeypatch, channel)
    assert await store.replay_inbox() == 1
    await normaliser.run_once()
    events = await _events_of(store, raw_id)
    [new] = [e for e in events if e not in good]
    part = node(json.loads(body), bad)
    assert new == external_id(channel, part)
    assert len(events) == len(good) + 1  # the good parts' events were not emitted again
    assert await store.inbox_rows("failed") == []
    assert await store.failed_parts_of([raw_id]) == {}


def test_normalize_prints_the_readable_parts_and_the_reason_for_the_rest(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = FIXTURES / "whatsapp" / WA_BATCH
    assert main(["normalize", "--channel", "whatsapp", str(path)]) == 1
    out, err = capsys.readouterr()
    assert [json.loads(line)["type"] for line in out.splitlines()] == [
        "message",
        "message",
        "status",
    ]
    assert err == (
        f"{path}: cannot parse as whatsapp: invalid payload: {WA_BAD}.text.body:"
        " expected a string, got a number\n"
    )
