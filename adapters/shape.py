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

Pydantic reports a null or a boolean it refused by the model's field (`name.formatted_name`),
not by the payload's path, and it reads the dicts it validates without our `.get`. There the
suspects are also the payload's nulls (or booleans) whose path ends as the error's location
does, and the stand-in is placed in the copy itself, of no type a model accepts: confirmed
when the same line's error is about the stand-in, at the same location.
"""

from __future__ import annotations

import os
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
# On the confirming read: the path whose null or boolean is handed out as a `_Probe`, and,
# for a model's refusal, the kind of probe placed in the copy itself ("text" or "number").
_probed: ContextVar[str | None] = ContextVar("probed", default=None)
_stand_in: ContextVar[str | None] = ContextVar("stand_in", default=None)
# The traced copies made while reading again (a body, or JSON inside one of its strings).
_roots: ContextVar[list[Any] | None] = ContextVar("roots", default=None)


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


class _Null:
    """Falsy and equal to None, as the null it stands in for."""

    def __bool__(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return other is None

    def __hash__(self) -> int:
        return hash(None)


class _NullProbe(_Null, _Probe, str):
    pass


class _BoolProbe(_Probe, int):
    pass


# For a model's refusal the probe must be refused as the value was, so its base is what the
# field does not take (a number where a string was refused, else a string), and still what
# `json.dumps` writes, as an adapter may on the way.
class _NullNumberProbe(_Null, _Probe, int):
    pass


class _BoolTextProbe(_Probe, str):
    value: bool

    def __bool__(self) -> bool:
        return self.value

    def __eq__(self, other: object) -> bool:
        return other is self.value

    def __hash__(self) -> int:
        return hash(self.value)


def _probe(path: str, value: bool | None, got: str) -> _Probe:
    probe: _Probe
    if _stand_in.get() == "number":
        probe = _NullNumberProbe() if value is None else _BoolProbe(value)
    elif value is None:
        probe = _NullProbe()
    elif _stand_in.get() == "text":
        probe = _BoolTextProbe()
        probe.value = value
    else:
        probe = _BoolProbe(value)
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
    elif path and path == _probed.get() and _stand_in.get():  # where a model reads it too
        return _probe(path, value, _kind_of(value))
    else:
        return value
    node.path = path
    if not path and (roots := _roots.get()) is not None:
        roots.append(node)
    return node


def explain(read: Callable[[], object], original: BaseException | None = None) -> str | None:
    """Run `read` (an adapter parsing a body that already failed, with `original`) on traced
    payloads: the path and kind of the node it tripped on, or None when that cannot be told."""
    suspects: dict[str, list[str]] = {}
    roots: list[Any] = []
    failure = _read_traced(read, suspects, probed=None, roots=roots)
    if failure is None and isinstance(original, ValidationError):
        # The traced copy passed where the payload failed: a strict model takes a traced
        # string for a number (its __float__ is there for the adapter's own float()).
        return _same_value_leaf(original, roots)
    if isinstance(failure, ShapeError):
        return str(failure)
    if isinstance(failure, ValidationError):
        for error in failure.errors():
            where = getattr(error.get("input"), "path", None)
            if where is not None:
                return f"{where or 'body'}: {error['msg']}"
        return _confirm_refused(read, failure, suspects, roots)
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


def _confirm_refused(
    read: Callable[[], object],
    failure: ValidationError,
    suspects: dict[str, list[str]],
    roots: list[Any],
) -> str | None:
    """A model refused a null or a boolean: which one of the payload's, confirmed by placing
    a stand-in there and seeing the same line refuse it at the same location."""
    refused = next((e for e in failure.errors() if _unmarkable(e.get("input"))), None)
    if refused is None:
        return None
    kind, location = type(refused["input"]).__name__, refused["loc"]
    stand_in = "number" if refused["type"] == "string_type" else "text"
    ending = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location)
    read_last = list(dict.fromkeys(reversed(suspects.get(kind, []))))[:SUSPECTS]
    same_place = [
        path
        for root in roots
        for path, value in _unmarked_leaves(root)
        if value is refused["input"] and f".{path}".endswith(ending)
    ][:SUSPECTS]
    for suspect in dict.fromkeys(read_last + same_place):
        confirmed = _read_traced(read, {}, probed=suspect, stand_in=stand_in)
        if _where_raised(confirmed) != _where_raised(failure):
            continue
        if isinstance(confirmed, ShapeError) and str(confirmed).startswith(f"{suspect}:"):
            return str(confirmed)
        if isinstance(confirmed, ValidationError) and any(
            getattr(e.get("input"), "path", None) == suspect and e["loc"] == location
            for e in confirmed.errors()
        ):
            return f"{suspect}: {refused['msg']}"
    return None


def _same_value_leaf(failure: ValidationError, roots: list[Any]) -> str | None:
    """The one payload leaf holding the refused value: at a path ending like the error's, or
    else the only one holding it at all (an adapter may rename a field: Messenger's `lat` is
    the schema's `latitude`)."""
    error = failure.errors()[0]
    refused, location = error.get("input"), error["loc"]
    if not isinstance(refused, str | int | float) or not location:
        return None
    ending = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location)
    holding = [
        path
        for root in roots
        for path, value in _leaves(root)
        if _plain_type(value) is _plain_type(refused) and value == refused
    ]
    found = set(path for path in holding if f".{path}".endswith(ending)) or set(holding)
    return f"{found.pop()}: {error['msg']}" if len(found) == 1 else None


def _plain_type(value: object) -> type | None:
    """str for a str or a traced one, and so on: "1" and 1 are not the same leaf."""
    return next((t for t in (bool, str, int, float) if isinstance(value, t)), None)


def _leaves(node: Any) -> Iterator[tuple[str, Any]]:
    """Every leaf under a traced node, with its path (read without marking)."""
    if isinstance(node, TracedDict):
        children = ((_join(node.path, k), v) for k, v in dict.items(node))
    elif isinstance(node, TracedList):
        children = ((f"{node.path}[{i}]", v) for i, v in enumerate(list.__iter__(node)))
    else:
        return
    for path, value in children:
        if isinstance(value, TracedDict | TracedList):
            yield from _leaves(value)
        else:
            yield path, value


def _unmarkable(value: object) -> bool:
    return value is None or isinstance(value, bool)


def _unmarked_leaves(node: Any) -> Iterator[tuple[str, bool | None]]:
    """The nulls and booleans under a traced node, with their paths (read without marking)."""
    return ((path, value) for path, value in _leaves(node) if _unmarkable(value))


def _where_raised(exc: BaseException | None) -> tuple[str, int | None] | None:
    """The file and line, outside this module and pydantic, where `exc` was raised."""
    if exc is None:
        return None
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if f.filename != __file__ and f"{os.sep}pydantic{os.sep}" not in f.filename
    ]
    return (frames[-1].filename, frames[-1].lineno) if frames else None


def _read_traced(
    read: Callable[[], object],
    suspects: dict[str, list[str]],
    probed: str | None,
    *,
    stand_in: str | None = None,
    roots: list[Any] | None = None,
) -> Exception | None:
    tokens = (
        tracing.set(True),
        _last_unmarked.set(suspects),
        _probed.set(probed),
        _stand_in.set(stand_in),
        _roots.set(roots),
    )
    try:
        read()
    except Exception as exc:
        return exc
    finally:
        _roots.reset(tokens[4])
        _stand_in.reset(tokens[3])
        _probed.reset(tokens[2])
        _last_unmarked.reset(tokens[1])
        tracing.reset(tokens[0])
    return None
