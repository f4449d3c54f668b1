"""Config problems a person can act on: plain wording in place of pydantic's, a "did you mean"
for a misspelt key, channel type or choice, and (for a file) the line and column of each.

`plain(error, model)` words one pydantic error; `Located` finds where a problem's path is in the
YAML file from the node tree `yaml.compose` gives (its marks are 0-based lines and columns).
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Mapping
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel
from pydantic_core import ErrorDetails

Path = tuple[int | str, ...]


def did_you_mean(word: str, choices: list[str]) -> str:
    """`; did you mean 'x'?` for the closest choice, or nothing when none is close."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _quoted(text: str) -> list[str]:
    return re.findall(r"'([^']*)'", text)


def _unwrap(annotation: Any) -> Any:
    """The model or list inside `Annotated[...]`, `X | None` and the like."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation  # a tagged union: the tag in the path picks the member
            annotation = members[0]
        else:
            return annotation


def model_at(root: type[BaseModel], loc: Path, tagged: Mapping[str, type[BaseModel]]) -> Any:
    """The model pydantic was validating at `loc` (its raw error location, tags included)."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int) and get_origin(current) is list:
            current = get_args(current)[0]
        elif isinstance(part, str) and part in tagged and get_origin(current) is not None:
            current = tagged[part]
        elif (
            isinstance(part, str)
            and isinstance(current, type)
            and issubclass(current, BaseModel)
            and part in current.model_fields
        ):
            current = current.model_fields[part].annotation
        else:
            return None
    return _unwrap(current)


_PATTERNS = {"^https?://": "must be a URL starting with http:// or https://"}


def plain(error: ErrorDetails, parent: Any) -> str:
    """One validation error in plain words; `parent` is the model it was validating, for the
    names an unknown key may have meant."""
    kind, ctx, loc = error["type"], error.get("ctx") or {}, error["loc"]
    last = str(loc[-1]) if loc else ""
    if kind == "extra_forbidden":
        known = (
            list(parent.model_fields)
            if isinstance(parent, type) and issubclass(parent, BaseModel)
            else []
        )
        return f"unknown setting {last!r}{did_you_mean(last, known)}"
    if kind == "missing":
        return f"{last!r} is required but not given"
    if kind == "union_tag_invalid":
        tag, known = str(ctx.get("tag")), _quoted(str(ctx.get("expected_tags", "")))
        return f"unknown channel type {tag!r}{did_you_mean(tag, known)} (known: {', '.join(known)})"
    if kind == "union_tag_not_found":
        return f"needs a 'type' ({_quoted(str(ctx.get('discriminator', '')))[0]})"
    if kind == "literal_error":
        value, known = str(error.get("input")), _quoted(str(ctx.get("expected", "")))
        return f"{value!r} is not one of {', '.join(known)}{did_you_mean(value, known)}"
    bounds = {
        "greater_than": ("must be greater than", "gt"),
        "greater_than_equal": ("must be at least", "ge"),
        "less_than": ("must be less than", "lt"),
        "less_than_equal": ("must be at most", "le"),
        "too_short": ("must have at least this many items:", "min_length"),
        "string_too_short": ("must have at least this many characters:", "min_length"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"{words} {ctx.get(key)}"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern"))
        return _PATTERNS.get(pattern, f"does not have the expected form (pattern {pattern})")
    types_ = {
        "int_parsing": "must be a whole number",
        "int_type": "must be a whole number",
        "int_from_float": "must be a whole number",
        "float_parsing": "must be a number",
        "float_type": "must be a number",
        "bool_parsing": "must be true or false",
        "bool_type": "must be true or false",
        "string_type": "must be text",
        "list_type": "must be a list (- item lines, or [a, b])",
        "dict_type": "must be a mapping of settings (key: value lines)",
        "model_type": "must be a mapping of settings (key: value lines)",
        "model_attributes_type": "must be a mapping of settings (key: value lines)",
    }
    if kind in types_:
        return types_[kind]
    return error["msg"].removeprefix("Value error, ")


def path_of(where: str) -> Path:
    """`channels[0].app_secret` → ("channels", 0, "app_secret")."""
    return tuple(
        int(index) if index else key for index, key in re.findall(r"\[(\d+)\]|([^.\[\]]+)", where)
    )


def _entry(node: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    """The key and value nodes of `key` in a mapping, its `<<` merges included."""
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return key_node, value_node
    for key_node, value_node in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            merged = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for source in merged:
                if isinstance(source, yaml.MappingNode) and (found := _entry(source, key)):
                    return found
    return None


def mark_of(root: yaml.Node | None, path: Path, *, at_key: bool = False) -> yaml.Mark | None:
    """Where `path` is in the file: its value (or, `at_key`, its key), else its nearest
    enclosing entry that is there (a missing setting is reported where its mapping starts)."""
    node, mark = root, root.start_mark if root is not None else None
    for index, part in enumerate(path):
        if isinstance(node, yaml.MappingNode) and (found := _entry(node, str(part))):
            key_node, node = found
            mark = key_node.start_mark if at_key and index == len(path) - 1 else node.start_mark
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            mark = node.start_mark
        else:
            break
    return mark


def located(
    root: yaml.Node | None, where: str, message: str, mark_at: str = "", at_key: bool = False
) -> tuple[tuple[int, int], str]:
    """`line L, column C: where: message` and (L, C) to sort by, or `where: message` and
    (0, 0) without a file to point into; the mark is that of `mark_at` (default: `where`)."""
    mark = mark_of(root, path_of(mark_at or where), at_key=at_key) if root is not None else None
    if mark is None:
        return (0, 0), f"{where}: {message}"
    line, column = mark.line + 1, mark.column + 1
    return (line, column), f"line {line}, column {column}: {where}: {message}"
