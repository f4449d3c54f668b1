"""Which field of a payload tripped an adapter: found by reading the payload once more.

Adapters read provider payloads with plain `.get` and indexing, as the documented formats
allow. A payload of another shape (a string where Meta sends an object) then fails deep inside
with "'str' object has no attribute 'get'", which tells an operator nothing. Checking the type
at each of the adapters' ~250 reads would cost the normaliser on every row. Instead, only once
a read has failed, `explain` parses the same body again from a copy in which every node knows
its JSON path and turns its own misuse into a `ShapeError` naming that path:

    entry[0].changes[0].value.contacts[0]: expected an object, got a string

Parsing is pure, so reading again changes nothing. A null or a boolean cannot carry its
path (Python cannot subclass them). When one trips the adapter, the copy's latest nulls (or
booleans) are the suspects, and one more read confirms each in turn: that value alone becomes
a stand-in that refuses misuse as the other nodes do, and it is the culprit only if the same
line of the adapter trips on it. A failure nothing confirms keeps its original reason, so a
reason never names a field that was not at fault.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, NoReturn

from pydantic import ValidationError

# Set while `explain` reads a payload again: `json_object` then hands out the traced copy.
tracing: ContextVar[bool] = ContextVar("tracing", default=False)
# The paths of the nulls (and absent fields) and booleans the traced copy handed out, by type
# name, latest last: the suspects when 'NoneType' or 'bool' is in the error.
_last_unmarked: ContextVar[dict[str, list[str]] | None] = ContextVar("last_unmarked", default=None)
# How many of the latest suspects a failure may cost a confirming read each.
SUSPECTS = 4
# On the confirming read: the path whose null or boolean is handed out as a `_Probe`.
_probed: ContextVar[str | None] = ContextVar("probed", default=None)


class ShapeError(Exception):
    """A node of the payload is not of the kind the adapter reads there. Each refusal is also
    the exception the plain value raises in its place (AttributeError for `.get` on a string,
    KeyError for a missing field, ...), so the adapter takes the same path as on the first read
    until the error that ended that read."""

    def __str__(self) -> str:
        return str(self.args[0])


class _AttributeShapeError(ShapeError, AttributeError):
    pass


class _TypeShapeError(ShapeError, TypeError):
    pass


class _KeyShapeError(ShapeError, KeyError):
    pass


class _ValueShapeError(ShapeError, ValueError):
    pass


def _refuse(
    path: str, expected: str, got: str, error: type[ShapeError] = _TypeShapeError
) -> NoReturn:
    raise error(f"{path or 'body'}: expected {expected}, got {got}")


def _handed_out(path: str, value: Any, *, absent: bool = False) -> Any:
    if value is None or isinstance(value, bool):
        if path == _probed.get():
            return _probe(path, value, "nothing" if absent else _kind_of(value))
        last = _last_unmarked.get()
        if last is not None:
            last.setdefault(type(value).__name__, []).append(path)
    return value


def _kind_of(value: bool | None) -> str:
    return "null" if value is None else "a boolean"


class _Probe:
    """Stands in for one null or boolean on the confirming read: falsy or truthy and equal
    as the value is, and refusing, with its path, what the value cannot do. (A subclass of
    str or int, so that an adapter writing it into a key with `json.dumps` goes on.)"""

    path: str
    got: str

    def __getattr__(self, name: str) -> NoReturn:
        if name.startswith("_"):
            raise AttributeError(name)
        _refuse(self.path, "an object", self.got, _AttributeShapeError)

    def __getitem__(self, key: Any) -> NoReturn:
        _refuse(self.path, "an object" if isinstance(key, str) else "a list", self.got)

    def __iter__(self) -> NoReturn:
        _refuse(self.path, "a list", self.got)

    def __contains__(self, key: Any) -> NoReturn:
        _refuse(self.path, "an object", self.got)

    def __int__(self) -> NoReturn:
        _refuse(self.path, "a number", self.got)

    def __float__(self) -> NoReturn:
        _refuse(self.path, "a number", self.got)


class _NullProbe(_Probe, str):
    def __bool__(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return other is None

    def __hash__(self) -> int:
        return hash(None)


class _BoolProbe(_Probe, int):
    pass


def _probe(path: str, value: bool | None, got: str) -> _Probe:
    probe = _NullProbe() if value is None else _BoolProbe(value)
    probe.path, probe.got = path, got
    return probe


class _Traced:
    """What every traced node shares: its path, and a refusal for what its kind lacks."""

    path: str
    kind: str

    def __getattr__(self, name: str) -> NoReturn:  # .get / .items on a string or a number
        if name.startswith("_"):  # protocol probes (getattr(x, "__dunder__", None))
            raise AttributeError(name)
        _refuse(self.path, "an object", self.kind, _AttributeShapeError)


class _TracedContainer(_Traced):
    def __hash__(self) -> int:  # used where a type or an id goes
        _refuse(self.path, "a single value", self.kind)

    def __int__(self) -> NoReturn:
        _refuse(self.path, "a number", self.kind)

    def __float__(self) -> NoReturn:
        _refuse(self.path, "a number", self.kind)


class TracedDict(_TracedContainer, dict[str, Any]):  # type: ignore[misc]  # hashing refused
    kind = "an object"

    def __getitem__(self, key: str) -> Any:
        try:
            return _handed_out(_join(self.path, key), dict.__getitem__(self, key))
        except KeyError:
            raise _KeyShapeError(f"{_join(self.path, str(key))}: missing") from None

    def get(self, key: str, default: Any = None) -> Any:
        absent = key not in self
        return _handed_out(_join(self.path, key), dict.get(self, key, default), absent=absent)

    def __iter__(self) -> Iterator[str]:  # `for item in value["messages"]`: keys, not items
        return (_key(key, self.path) for key in dict.__iter__(self))


class TracedList(_TracedContainer, list[Any]):  # type: ignore[misc]  # hashing refused
    kind = "a list"

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, str):
            _refuse(self.path, "an object", self.kind)
        item = list.__getitem__(self, index)
        if not isinstance(index, int):  # a slice
            return item
        return _handed_out(f"{self.path}[{index % len(self)}]", item)  # [-1]: its place

    def __iter__(self) -> Iterator[Any]:
        return (
            _handed_out(f"{self.path}[{i}]", item) for i, item in enumerate(list.__iter__(self))
        )


class TracedStr(_Traced, str):
    kind = "a string"

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, str):
            _refuse(self.path, "an object", self.kind)
        return str.__getitem__(self, index)

    def __iter__(self) -> Iterator[str]:
        # The one place the copy differs: a string where a list belongs would be read
        # character by character, and the error would come later, from a bare character.
        _refuse(self.path, "a list", self.kind)

    def __int__(self) -> int:
        try:
            return int(str(self))
        except ValueError:
            _refuse(self.path, "a number", self.kind, _ValueShapeError)

    def __float__(self) -> float:
        try:
            return float(str(self))
        except ValueError:
            _refuse(self.path, "a number", self.kind, _ValueShapeError)


class TracedKey(str):
    """A key of a traced object: read as an item, the object was taken for a list."""

    path: str

    def __getattr__(self, name: str) -> NoReturn:
        if name.startswith("_"):
            raise AttributeError(name)
        _refuse(self.path, "a list", "an object", _AttributeShapeError)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, str):
            _refuse(self.path, "a list", "an object")
        return str.__getitem__(self, index)


class _TracedNumber(_Traced):
    kind = "a number"

    def __getitem__(self, key: Any) -> NoReturn:
        _refuse(self.path, "an object" if isinstance(key, str) else "a list", self.kind)

    def __iter__(self) -> NoReturn:
        _refuse(self.path, "a list", self.kind)

    def __contains__(self, key: Any) -> NoReturn:  # `"field" in value`
        _refuse(self.path, "an object", self.kind)


class TracedInt(_TracedNumber, int):
    pass


class TracedFloat(_TracedNumber, float):
    pass


def _key(key: str, path: str) -> TracedKey:
    traced_key = TracedKey(key)
    traced_key.path = path
    return traced_key


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def traced(value: Any, path: str = "") -> Any:
    """A copy of a decoded JSON value whose nodes carry their paths (null and booleans stay
    plain: Python cannot subclass them; the copy remembers where it handed them out)."""
    node: _Traced
    if isinstance(value, dict):
        # Keys stay plain (orjson writes no str subclass as a key); iterating yields TracedKeys.
        node = TracedDict({k: traced(v, _join(path, k)) for k, v in value.items()})
    elif isinstance(value, list):
        node = TracedList(traced(v, f"{path}[{i}]") for i, v in enumerate(value))
    elif isinstance(value, str):
        node = TracedStr(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        node = TracedInt(value)
    elif isinstance(value, float):
        node = TracedFloat(value)
    else:
        return value
    node.path = path
    return node


def explain(read: Callable[[], object]) -> str | None:
    """Run `read` (an adapter parsing a body that already failed) on traced payloads: the
    path and kind of the node it tripped on, or None when that cannot be told."""
    suspects: dict[str, list[str]] = {}
    failure = _read_traced(read, suspects, probed=None)
    if isinstance(failure, ShapeError):
        return str(failure)
    if isinstance(failure, ValidationError):
        for error in failure.errors():
            where = getattr(error.get("input"), "path", None)
            if where is not None:
                return f"{where or 'body'}: {error['msg']}"
        return None
    if isinstance(failure, AttributeError | TypeError):
        # A null or a boolean: confirm the suspect of its type by reading once more.
        kind = next((k for k in ("NoneType", "bool") if f"'{k}'" in str(failure)), None)
        latest = list(dict.fromkeys(reversed(suspects.get(kind, []) if kind else [])))
        for suspect in latest[:SUSPECTS]:
            confirmed = _read_traced(read, {}, probed=suspect)
            if (
                isinstance(confirmed, ShapeError)
                and str(confirmed).startswith(f"{suspect}:")
                and _where_raised(confirmed) == _where_raised(failure)
            ):  # the same line tripped on the stand-in: the suspect it is
                return str(confirmed)
    return None


def _where_raised(exc: BaseException) -> tuple[str, int | None] | None:
    """The file and line, outside this module, where `exc` was raised."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__]
    return (frames[-1].filename, frames[-1].lineno) if frames else None


def _read_traced(
    read: Callable[[], object], suspects: dict[str, list[str]], probed: str | None
) -> Exception | None:
    tokens = (tracing.set(True), _last_unmarked.set(suspects), _probed.set(probed))
    try:
        read()
    except Exception as exc:
        return exc
    finally:
        _probed.reset(tokens[2])
        _last_unmarked.reset(tokens[1])
        tracing.reset(tokens[0])
    return None
