"""Readable field paths for pydantic errors (`content.actions[1].url`, not `content.buttons.actions.1.link.url`)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


def field_path(loc: tuple[int | str, ...], data: Any) -> str:
    """Drop the discriminator tags pydantic inserts for tagged unions, using the input to spot them."""
    text = ""
    node = data
    tag_skipped = False
    for index, part in enumerate(loc):
        # A tag may also be a field's name (`{"type": "text", "text": ...}`): then it is the
        # tag when more of the path follows it, as the field's own error would end there.
        is_tag = (
            isinstance(node, dict)
            and isinstance(part, str)
            and (part not in node or index < len(loc) - 1)
        )
        # A tag of a union told apart by its shape (`Recipient`'s "to:user") is never a key.
        shape_tag = (
            isinstance(part, str) and ":" in part and not (isinstance(node, dict) and part in node)
        )
        if shape_tag:
            continue
        if is_tag and not tag_skipped and node.get("type") == part:
            tag_skipped = True  # a union tag, not a field (at most one per level)
            continue
        tag_skipped = False
        if isinstance(part, int):
            text += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
        else:
            text += f".{part}" if text else part
            node = node.get(part) if isinstance(node, dict) else None
    return text or "(body)"


def problems(exc: ValidationError, data: Any) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for error in exc.errors():
        where = field_path(tuple(error["loc"]), data)
        seen.setdefault(where, error["msg"].removeprefix("Value error, "))
    return list(seen.items())
