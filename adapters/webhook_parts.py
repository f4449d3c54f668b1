"""One bad part fails alone: reading a batched webhook part by part.

Providers batch: Meta's `entry[].changes[].value.messages[]`, Messenger's `entry[].messaging[]`,
LINE's `events[]`. A part the adapter cannot read (a wrong shape, a missing field) must not
hold back the others: the reader keeps it as a `FailedPart` (its JSON path, the reason, the
part as received) beside the events of every part that could be read. The normaliser stores
both; `gateway replay` later reads only the failed parts again (`only`).

An adapter uses it in a few lines:

    reader = PartReader(only)
    for i, raw in enumerate(webhook.events):
        reader.read(f"events[{i}]", raw, Event, self._events)
        # self._events(event: Event, raw: Any, path: str) -> list[ParsedEvent]
    return reader.reading()

and `reader.model(Model, path, raw)` validates a container part (an entry) into its model,
or records it as failed and answers None. `typed` and `read_typed` do the same for parts read
into TypedDicts by a pydantic TypeAdapter (WhatsApp's), which cost a third of a model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from adapters.base import FailedPart, ParsedEvent, PayloadError, Reading
from adapters.payload_errors import validation_reason

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
INVALID = "invalid payload: "


def validated(model: type[M], part: Any) -> M:
    """`model.model_validate(part)` without its Python wrapper: a webhook validates several
    parts, and the wrapper was an eighth of each one's cost."""
    typed: M = model.__pydantic_validator__.validate_python(part)
    return typed


def adapted(adapter: TypeAdapter[T], part: Any) -> T:
    """`adapter.validate_python(part)` without its Python wrapper, as `validated`."""
    typed: T = adapter.validator.validate_python(part)
    return typed


def _within(path: str, ancestor: str) -> bool:
    """`path` is `ancestor` or lies inside it (`a[1]` is inside `a`, `a[10]` is not in `a[1]`)."""
    return path == ancestor or (path.startswith(ancestor) and path[len(ancestor)] in ".[")


class PartReader:
    """Collects the events of each readable part and the parts that failed.

    `only`: the paths of parts to read (a replay of failed parts); None reads every part.
    A part is read when it is one of them, inside one (a failed entry's messages), or on the
    way to one (the entry holding a failed message, whose other messages are skipped).
    """

    def __init__(self, only: frozenset[str] | None = None) -> None:
        self.only = only
        self.events: list[ParsedEvent] = []
        self.failed: list[FailedPart] = []

    def wants(self, path: str) -> bool:
        if self.only is None:
            return True
        return any(_within(path, p) or _within(p, path) for p in self.only)

    def _inside_wanted(self, path: str) -> bool:
        """A leaf part is read only when it is a wanted part or inside one, not merely on the
        way to one."""
        return self.only is None or any(_within(path, p) for p in self.only)

    def fail(self, path: str, reason: str, part: Any) -> None:
        self.failed.append(FailedPart(path, reason, part))

    def model(self, model: type[M], path: str, part: Any) -> M | None:
        """`part` as `model` (a container of further parts); None when it is not wanted or
        cannot be read, which is then recorded as failed."""
        if not self.wants(path):
            return None
        try:
            return validated(model, part)
        except ValidationError as exc:
            self.fail(path, validation_reason(exc, path), part)
            return None

    def typed(self, adapter: TypeAdapter[T], path: str, part: Any) -> T | None:
        """`model` for a container validated into a TypedDict by its TypeAdapter."""
        if not self.wants(path):
            return None
        try:
            return adapted(adapter, part)
        except ValidationError as exc:
            self.fail(path, validation_reason(exc, path), part)
            return None

    def read(
        self,
        path: str,
        part: Any,
        model: type[M],
        parse: Callable[[M, Any, str], list[ParsedEvent]],
    ) -> None:
        """The events `parse(typed, part, path)` reads from one leaf part, validated as
        `model` first (`part` is the part as received, for what keeps it whole). A refusal
        of the model or a PayloadError from `parse` keeps the part as failed, with its path in
        the reason; so does a refusal of the gateway's schema (a value the payload model
        allows but an event cannot hold), said as such."""
        self._read(path, part, model.__pydantic_validator__.validate_python, parse)

    def read_typed(
        self,
        path: str,
        part: Any,
        adapter: TypeAdapter[T],
        parse: Callable[[T, Any, str], list[ParsedEvent]],
    ) -> None:
        """`read` for a leaf part validated into a TypedDict by its TypeAdapter."""
        self._read(path, part, adapter.validator.validate_python, parse)

    def _read(
        self,
        path: str,
        part: Any,
        validate: Callable[[Any], Any],
        parse: Callable[[Any, Any, str], list[ParsedEvent]],
    ) -> None:
        if not self._inside_wanted(path):
            return
        try:
            typed = validate(part)
        except ValidationError as exc:
            self.fail(path, validation_reason(exc, path), part)
            return
        self._parse(path, part, lambda: parse(typed, part, path))

    def read_part(
        self, path: str, part: Any, parse: Callable[[Any, str], list[ParsedEvent]]
    ) -> None:
        """Like `read`, for a part whose reader validates it itself (LINE picks the model
        by the event's type): `parse(part, path)` raises PayloadError naming what is wrong."""
        if self._inside_wanted(path):
            self._parse(path, part, lambda: parse(part, path))

    def _parse(self, path: str, part: Any, parse: Callable[[], list[ParsedEvent]]) -> None:
        try:
            self.events += parse()
        except PayloadError as exc:
            # The row's reason says "invalid payload" once, before its failed parts' reasons.
            reason = str(exc).removeprefix(INVALID)
            self.fail(path, reason if reason.startswith(path) else f"{path}: {reason}", part)
        except ValidationError as exc:
            self.fail(path, f"{path}: the event cannot hold it: {validation_reason(exc)}", part)

    def reading(self) -> Reading:
        return Reading(self.events, self.failed)
