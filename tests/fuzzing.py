"""Mutated provider payloads, and what the gateway must do with each: read it, or say plainly
why not. Shared by the in-suite fuzz tests (tests/test_payload_fuzz.py) and the long run
(bench/fuzz.py).

Every case starts from one of the channel's documented fixtures (the bodies `cases.json`
lists) and applies one to three mutations: a node replaced by another JSON value, a huge
number, JSON nested thousands of levels deep, NaN or Infinity; a string given lone surrogates
or other odd unicode; a key removed. JSON bodies are written with escapes (`"\\ud800"`, as a
provider's encoder would) or as raw bytes (a lone surrogate then becomes bytes that are not
UTF-8). SMS bodies are Twilio's form fields with the same mutations, percent-encoded, plus
percent escapes of bytes that are not UTF-8; WeChat bodies are its XML fields, mutated alike
and written back as CDATA (a value holding "]]>" or a lone surrogate then breaks the XML). Some bodies are then cut short, or given a byte
no UTF-8 text holds.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import urllib.parse
from argparse import Namespace
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from hypothesis import strategies as st

from adapters import ADAPTERS
from adapters.base import Adapter, PayloadError
from adapters.failures import ADAPTER_FAILED, unreadable
from gateway import cli
from gateway.pipeline.normaliser import read_row
from gateway.preview import placeholder_config
from gateway.schema import Event
from gateway.store import InboxRow

FIXTURES = Path(__file__).parent / "fixtures"
CHANNELS = sorted(ADAPTERS)
RECEIVED_AT = 1_749_416_383.0

# What a reason must never show: the name of the Python error behind it (the payload's fault
# is then unexplained, or an adapter bug is blamed on the payload), or a traceback.
NOT_PLAIN = (
    ADAPTER_FAILED,  # an adapter's bug, found
    "adapter error",
    "Traceback",
    "Error:",  # "RecursionError: ...", "UnicodeEncodeError: ...", "KeyError: ..."
    "object has no attribute",
    "object is not",
    "codec can't",
    "surrogates not allowed",
    "maximum recursion",
)

# --- mutations ------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """JSON text written into the body as it is: what `json.dumps` cannot write (NaN, 1e400,
    100,000 nested brackets without recursing)."""

    text: str


def nested(depth: int, kind: str) -> Raw:
    if kind == "list":
        return Raw("[" * depth + "]" * depth)
    return Raw('{"a":' * depth + "1" + "}" * depth)


ODD_TEXT = st.sampled_from(
    [
        "\ud800",  # a lone high surrogate: an emoji cut in half
        "\udfff",  # a lone low surrogate
        "\udc00\ud800",  # a pair the wrong way round
        "a\ud83d",
        "\x00",
        "\u202e\u200f",  # right-to-left override and mark
        "\ufeff",
        "\uffff\ufffe",  # non-characters
        "\U0010ffff",
        "e" + "\u0301" * 200,  # a pile of combining accents
        "\r\n\t\x1b[31m",
        "😀" * 50,
        "",
        " ",
        "x" * 70_000,
    ]
) | st.text(st.characters(exclude_categories=()), max_size=12)  # surrogates included

HUGE_NUMBERS = st.sampled_from(
    [10**30, -(10**30), 2**64, -(2**63) - 1, 10**400, 1e308, -1e308, 5e-324, -0.0]
) | st.sampled_from([Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("1e400"), Raw("-1e999")])

DEEP = st.builds(
    nested,
    st.sampled_from([64, 500, 999, 1000, 1025, 2000, 100_000]),
    st.sampled_from(["list", "dict"]),
)

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ODD_TEXT,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)

REPLACEMENTS = JSON_VALUES | HUGE_NUMBERS | DEEP | ODD_TEXT


@functools.cache
def fixture_bodies(channel: str) -> list[bytes]:
    """The raw bodies of the channel's case table, readable ones only (the unreadable ones are
    already cases of their own)."""
    bodies = []
    for case in json.loads((FIXTURES / channel / "cases.json").read_text()):
        body = (FIXTURES / channel / case["file"]).read_bytes()
        try:
            decoded(channel, body)
        except (ValueError, UnicodeDecodeError):
            continue
        bodies.append(body)
    return bodies


def decoded(channel: str, body: bytes) -> Any:
    """A fixture body as a JSON value (SMS: Twilio's form fields as a list of pairs)."""
    if channel == "sms":
        return urllib.parse.parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=True)
    if channel == "wechat":
        return xml_fields(body)
    return json.loads(body)


def xml_fields(body: bytes) -> list[tuple[str, Any]]:
    """A WeChat push's fields as (tag, text) pairs; ValueError for a fixture that is not one
    (those that declare a DTD are cases of their own, never read here)."""
    if b"<!DOCTYPE" in body:
        raise ValueError("a DTD")
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise ValueError(str(exc)) from None
    if root.tag != "xml" or any(len(child) for child in root):
        raise ValueError("not a flat <xml> push")
    return [(child.tag, child.text or "") for child in root]


def xml_text(pairs: list[tuple[str, Any]]) -> str:
    def text(value: Any) -> str:
        return value.text if isinstance(value, Raw) else f"<![CDATA[{value}]]>"

    return "<xml>" + "".join(f"<{k}>{text(v)}</{k}>" for k, v in pairs) + "</xml>"


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def _changed(value: Any, path: tuple[Any, ...], change: Any) -> Any:
    """A copy of `value` with `change(node)` at `path`; a change returning `_DELETE` removes it."""
    if not path:
        return change(value)
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        new = _changed(value[head], rest, change)
        return {k: v for k, v in value.items() if k != head} | (
            {} if new is _DELETE else {head: new}
        )
    items = [(_changed(v, rest, change) if i == head else v) for i, v in enumerate(value)]
    return [v for v in items if v is not _DELETE]


_DELETE = object()


@st.composite
def json_mutation(draw: st.DrawFn, payload: Any) -> Any:
    """One change to a JSON payload."""
    path = draw(st.sampled_from(paths(payload)))
    node = _at(payload, path)
    kind = draw(st.sampled_from(["replace", "taint", "delete"]))
    if kind == "taint" and isinstance(node, str):  # odd characters inside a real value
        odd = draw(ODD_TEXT)
        at = draw(st.integers(0, len(node)))
        return _changed(payload, path, lambda s: s[:at] + odd + s[at:])
    if kind == "delete" and path:
        return _changed(payload, path, lambda _: _DELETE)
    new = draw(REPLACEMENTS)
    return _changed(payload, path, lambda _: new)


def json_text(value: Any, ensure_ascii: bool) -> str:
    raws: list[str] = []

    def placeholder(raw: Raw) -> str:
        raws.append(raw.text)
        return f"__raw_{len(raws) - 1}__"

    def swap(node: Any) -> Any:
        if isinstance(node, Raw):
            return placeholder(node)
        if isinstance(node, dict):
            return {k: swap(v) for k, v in node.items()}
        if isinstance(node, list):
            return [swap(v) for v in node]
        return node

    text = json.dumps(swap(value), ensure_ascii=ensure_ascii)
    for index, raw in enumerate(raws):
        text = text.replace(f'"__raw_{index}__"', raw, 1)
    return text


FORM_VALUES = (
    ODD_TEXT
    | st.sampled_from(["99999999999999999999", "-1", "1e5", "nan", "0x10", "١٢", "+", "%"])
    | st.text(max_size=8)
)
# Bytes a sender's carrier may garble: percent escapes of bytes that are not UTF-8.
BAD_ESCAPES = st.sampled_from(["%ff", "%ED%A0%80", "%C0%AF", "%e2%82", "%", "%zz", "%00"])


@st.composite
def form_mutation(draw: st.DrawFn, pairs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """One change to Twilio's form fields (values may be Raw: percent-encoded already)."""
    index = draw(st.integers(0, len(pairs) - 1))
    key, value = pairs[index]
    kind = draw(st.sampled_from(["replace", "taint", "delete", "duplicate", "bad bytes"]))
    if kind == "delete":
        return pairs[:index] + pairs[index + 1 :]
    if kind == "duplicate":
        return [*pairs, (key, draw(FORM_VALUES))]
    if kind == "bad bytes":
        return [*pairs[:index], (key, Raw(draw(BAD_ESCAPES))), *pairs[index + 1 :]]
    if kind == "taint" and isinstance(value, str):
        odd = draw(ODD_TEXT)
        at = draw(st.integers(0, len(value)))
        return [*pairs[:index], (key, value[:at] + odd + value[at:]), *pairs[index + 1 :]]
    return [*pairs[:index], (key, draw(FORM_VALUES)), *pairs[index + 1 :]]


def form_text(pairs: list[tuple[str, Any]]) -> str:
    def quoted(value: Any) -> str:
        if isinstance(value, Raw):
            return value.text
        return urllib.parse.quote_plus(value, errors="surrogatepass")

    return "&".join(f"{quoted(k)}={quoted(v)}" for k, v in pairs)


@st.composite
def mutated_bodies(draw: st.DrawFn, channel: str) -> bytes:
    """A fixture of `channel` after one to three mutations, as the bytes a webhook carries."""
    payload = decoded(channel, draw(st.sampled_from(fixture_bodies(channel))))
    mutation = form_mutation if channel in ("sms", "wechat") else json_mutation
    for _ in range(draw(st.integers(1, 3))):
        if not payload:  # every field deleted
            break
        payload = draw(mutation(payload))
    if channel == "sms":
        body = form_text(payload).encode()
    elif channel == "wechat":
        body = xml_text(payload).encode("utf-8", "surrogatepass")
    else:  # escapes, or a lone surrogate written as bytes that are not UTF-8
        escaped = draw(st.booleans())
        body = json_text(payload, ensure_ascii=escaped).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 9)) == 0:  # cut short, as a proxy with a size limit would
        body = body[: draw(st.integers(0, len(body)))]
    if draw(st.integers(0, 9)) == 0:  # a byte no UTF-8 text holds, as a Latin-1 sender writes
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.sampled_from([b"\xff", b"\xc0", b"\x80", b"\xe9"])) + body[at:]
    return body


# --- what must hold -------------------------------------------------------------------


def adapter_for(channel: str) -> Adapter:
    cls = ADAPTERS[channel]
    return cls(placeholder_config(cls.config_model, channel))


def assert_plain(reason: str) -> None:
    """A reason an operator can act on: says what is wrong with the payload, in one line."""
    assert reason.strip(), "a failed payload must say why"
    assert not any(word in reason for word in NOT_PLAIN), reason
    reason.encode("utf-8")  # kept in the inbox row, logged, printed: must be text


@dataclass(frozen=True)
class Outcome:
    events: int
    reason: str | None


def check_body(adapter: Adapter, body: bytes, tmp_file: Path) -> Outcome:
    """What ingress, the normaliser and `gateway normalize` do with `body`, checked: events
    that can be sent to a backend, or a plain reason, and never an exception."""
    channel = adapter.type
    try:
        key = adapter.dedupe_key(body)
    except PayloadError as refused:  # ingress answers 400 with this
        assert_plain(str(refused))
    except Exception as exc:  # ingress keeps the body under its hash, logging why
        why = unreadable(exc)
        assert why is not None, f"dedupe_key: {type(exc).__name__}: {exc}"
        assert_plain(why)
    else:
        assert isinstance(key, str) and key
    row = InboxRow(1, channel, body, RECEIVED_AT, 1)
    events = read_row(adapter, row)  # raising here would leave the row to be claimed forever
    if isinstance(events, str):
        assert_plain(events)
        outcome = Outcome(0, events)
    else:
        for prepared in events:  # what the backend webhook carries: UTF-8 JSON, read back
            assert prepared.event.raw_id == 1 and prepared.dedupe_key
            body_json = (prepared.body or prepared.event.model_dump_json()).encode("utf-8")
            Event.model_validate_json(body_json)
        outcome = Outcome(len(events), None)
    check_normalize(channel, body, tmp_file, outcome)
    return outcome


def check_normalize(channel: str, body: bytes, tmp_file: Path, outcome: Outcome) -> None:
    """`gateway normalize` on the body: the events as JSON lines, or one plain line saying why
    not (exit 1), never a traceback; what it prints is valid UTF-8 (a terminal's encoding)."""
    tmp_file.write_bytes(body)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        # The command itself: `main` would build the whole argument parser each time (15 ms).
        code = cli.cmd_normalize(Namespace(channel=channel, channel_id=None, file=str(tmp_file)))
    printed, complaint = out.getvalue(), err.getvalue()
    printed.encode("utf-8")
    complaint.encode("utf-8")
    if outcome.reason is None:
        assert code == 0, complaint
        assert printed.count("\n") == outcome.events  # not splitlines: U+0085 splits it
    else:
        assert code == 1
        prefix = f"{tmp_file}: cannot parse as {channel}: "
        assert complaint.startswith(prefix) and complaint.count("\n") == 1, complaint
        assert_plain(complaint.removeprefix(prefix))
