"""A payload of the wrong shape fails with the JSON path of the node the adapter tripped on
(typed payload models, adapters/payload_errors.py; adapters/shape.py for the channels not yet
typed), and reading a payload again on its traced copy changes nothing else.

The cases (`tests/fixtures/<channel>/shapes.json`) each take a documented fixture, replace one
node and give the reason the failed inbox row must keep."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import BaseModel, Field, ValidationError
from structlog.testing import capture_logs

from adapters import ADAPTERS, Adapter
from adapters.failures import ADAPTER_FAILED
from adapters.shape import ShapeError, explain, traced, tracing
from gateway.pipeline.normaliser import read_row
from gateway.preview import placeholder_config
from gateway.store import InboxRow
from tests.tables import replaced

FIXTURES = Path(__file__).parent / "fixtures"
# The channels whose adapters still read payloads through adapters/shape.py; the others read
# them into typed models (tests/test_payload_shapes.py runs their shapes.json).
JSON_CHANNELS = ["messenger", "whatsapp"]
TYPED = {"whatsapp", "messenger"}


def adapter_for(channel: str) -> Adapter:
    cls = ADAPTERS[channel]
    return cls(placeholder_config(cls.config_model, channel))


def shape_cases() -> list[Any]:
    return [
        pytest.param(channel, case, id=f"{channel}-{case['name']}")
        for channel in JSON_CHANNELS
        for case in json.loads((FIXTURES / channel / "shapes.json").read_text())
    ]


@pytest.mark.parametrize(("channel", "case"), shape_cases())
def test_a_node_of_the_wrong_kind_is_named_by_its_path(channel: str, case: dict[str, Any]) -> None:
    original = json.loads((FIXTURES / channel / case["file"]).read_bytes())
    body = json.dumps(replaced(original, case["path"], case["value"])).encode()
    reason = read_row(adapter_for(channel), InboxRow(1, channel, body, 1_749_416_383.0, 1))
    assert reason == case["reason"]


def documented_payloads() -> list[Any]:
    return [
        pytest.param(channel, case["file"], id=f"{channel}-{case['file']}")
        for channel in JSON_CHANNELS
        if channel not in TYPED
        for case in json.loads((FIXTURES / channel / "cases.json").read_text())
        if "events" in case
    ]


@pytest.mark.parametrize(("channel", "file"), documented_payloads())
def test_the_traced_copy_reads_as_the_payload_does(channel: str, file: str) -> None:
    """Every documented payload gives the same events from its traced copy: the copy only
    ever differs where a read would fail anyway."""
    adapter, body = adapter_for(channel), (FIXTURES / channel / file).read_bytes()
    plain = adapter.parse(body)
    token = tracing.set(True)
    try:
        again = adapter.parse(body)
    finally:
        tracing.reset(token)
    assert [orjson.loads(orjson.dumps(e.draft.model_dump(mode="json"))) for e in again] == [
        e.draft.model_dump(mode="json") for e in plain
    ]
    assert [e.dedupe_key for e in again] == [e.dedupe_key for e in plain]


def test_traced_nodes_fail_like_plain_values_but_say_where() -> None:
    payload = traced({"entry": [{"id": "1", "time": 5, "value": "x", "ratio": 0.5}]})
    entry = payload["entry"][0]
    # The same exception types as the plain values, so an adapter takes the same path...
    with pytest.raises(KeyError):
        entry["changes"]
    with pytest.raises(AttributeError):
        entry["value"].get("body")
    with pytest.raises(TypeError):
        entry["time"]["at"]
    assert not hasattr(entry["value"], "get")  # hasattr answers as for a plain string
    # ...and each says which node it was.
    with pytest.raises(ShapeError, match=r"^entry\[0\]\.changes: missing$"):
        entry["changes"]
    with pytest.raises(ShapeError, match=r"^entry\[0\]\.value: expected an object, got a string$"):
        entry["value"].get("body")
    with pytest.raises(ShapeError, match=r"^entry\[0\]\.ratio: expected a list, got a number$"):
        list(entry["ratio"])
    with pytest.raises(ShapeError, match=r"^entry: expected a single value, got a list$"):
        {payload["entry"]: 1}
    with pytest.raises(ShapeError, match=r"^entry\[0\]: expected a list, got an object$"):
        [item.get("id") for item in entry]
    # Values compare, hash and serialise as the plain ones do.
    assert entry["id"] == "1" and hash(entry["id"]) == hash("1") and entry["time"] == 5
    assert orjson.loads(orjson.dumps(payload, default=float)) == {
        "entry": [{"id": "1", "time": 5, "value": "x", "ratio": 0.5}]
    }


def test_an_adapter_bug_that_is_no_shape_is_the_adapters_failure() -> None:
    """Reading again explains shapes only: a bug of the adapter's own is reported as one,
    with where it was raised, and logged with its traceback for whoever fixes the adapter."""

    class Broken(type(adapter_for("whatsapp"))):  # type: ignore[misc]
        def read(self, body: bytes, received_at: Any, only: Any = None) -> Any:
            super().read(body, received_at, only)
            return 1 / 0

    adapter = Broken(adapter_for("whatsapp").config)
    body = (FIXTURES / "whatsapp" / "text.json").read_bytes()
    with capture_logs() as logs:
        reason = read_row(adapter, InboxRow(1, "whatsapp", body, 0.0, 1))
    # The payload is not blamed; the reason says where the bug is, not Python's message.
    assert re.fullmatch(
        rf"{ADAPTER_FAILED} \(a bug: ZeroDivisionError at test_shape\.py:\d+\); replay it after a fix",
        reason,
    ), reason
    assert [e["event"] for e in logs] == ["adapter_failed"] and logs[0]["exc_info"]


def test_a_null_is_named_by_the_read_that_confirms_it() -> None:
    """The latest nulls read are suspects; the one the failing line trips on is named, under
    its place in the list however it was indexed."""
    payload = traced({"a": [1, None], "b": None, "c": {"d": None}})

    def read() -> None:
        payload["c"].get("e")  # absent: a suspect that is not at fault
        payload["b"]  # null, read and left alone: another
        payload["a"][-1].get("x")

    assert explain(read) == "a[1]: expected an object, got null"


def test_explain_names_nothing_for_a_read_that_succeeds_or_fails_for_another_reason() -> None:
    assert explain(lambda: None) is None

    def broken() -> None:
        raise RuntimeError("not a shape")

    assert explain(broken) is None
    assert not tracing.get()  # reset whatever happened


class _Named(BaseModel):
    name: str


class _Card(BaseModel):
    owner: _Named
    rating: float = Field(strict=True)


def test_a_null_a_model_refuses_is_named_by_its_path_not_the_models_field() -> None:
    """Pydantic names the model's field (`owner.name`) and reads the dict without our `.get`;
    the payload's null whose path ends the same way, confirmed by a stand-in, is named. A
    decoy at the same ending that the model never read is not."""
    raw = {"decoy": {"owner": {"name": None}}, "cards": [{"owner": {"name": None}}]}

    def read() -> None:
        payload = traced(raw)  # as `json_object` does, inside the read
        _Card.model_validate({**payload["cards"][0], "rating": 4.5})

    assert explain(read) == "cards[0].owner.name: Input should be a valid string"


def test_a_boolean_passed_on_by_the_adapter_is_named_by_the_read_that_confirms_it() -> None:
    raw = {"meta": {"flag": True}, "stars": True}

    def read() -> None:
        payload = traced(raw)
        payload["meta"].get("flag")  # another boolean read, not at fault
        _Card(owner=_Named(name="x"), rating=payload.get("stars") or 0.0)

    assert explain(read) == "stars: Input should be a valid number"


def test_a_null_from_the_adapter_itself_is_not_blamed_on_the_payload() -> None:
    """The model refuses a null that the adapter wrote, not one it read: the payload's null
    with the same ending is no culprit, and the reason stays the model's."""
    raw = {"owner": {"name": None}}

    def read() -> None:
        traced(raw)
        _Named.model_validate({"name": None})

    assert explain(read) is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"cards": [{"rating": "4.5"}]}, "cards[0].rating: Input should be a valid number"),
        # Two leaves could be the one: naming either might name the wrong one.
        ({"cards": [{"rating": "4.5"}], "decoy": {"rating": "4.5"}}, None),
        (
            {"cards": [{"rating": "4.5"}], "other": {"rating": 4.5}},
            "cards[0].rating: Input should be a valid number",
        ),
    ],
    ids=["unique", "ambiguous", "a number is not the string"],
)
def test_a_numeric_string_a_strict_model_refuses_is_named_by_its_path(
    raw: dict[str, Any], reason: str | None
) -> None:
    """The traced copy cannot fail there (a traced string has __float__, for the adapter's
    own float(), and a strict model takes it): the payload's leaf holding the refused value,
    at a path ending like the error's, is named when it is the only one."""

    def read(payload: Any) -> None:
        _Card(owner=_Named(name="x"), rating=payload["cards"][0]["rating"])

    with pytest.raises(ValidationError) as untraced:
        read(raw)
    assert explain(lambda: read(traced(raw)), untraced.value) == reason


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"cards": [{"score": "4.5"}]}, "cards[0].score: Input should be a valid number"),
        ({"cards": [{"score": "4.5"}], "title": "4.5"}, None),
    ],
    ids=["the only leaf holding it", "two leaves hold it"],
)
def test_a_numeric_string_under_a_field_the_adapter_renames_is_named_when_only_one_holds_it(
    raw: dict[str, Any], reason: str | None
) -> None:
    """Messenger's `coordinates.lat` is the schema's `latitude`: no path ends like the error."""

    def read(payload: Any) -> None:
        _Card(owner=_Named(name="x"), rating=payload["cards"][0]["score"])

    with pytest.raises(ValidationError) as untraced:
        read(raw)
    assert explain(lambda: read(traced(raw)), untraced.value) == reason
