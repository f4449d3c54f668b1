"""Gateway ids: a short prefix naming the kind, then a ULID (time-ordered, so indexes stay local)."""

from __future__ import annotations

from ulid import ULID


def new_id(prefix: str) -> str:
    return f"{prefix}_{ULID()}"
