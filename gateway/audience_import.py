"""Rows of a group import, one at a time: CSV with a header, or JSON lines (docs/broadcasts.md).

CSV: a header naming `user_id`, or `channel` and `id` (both forms may share a file: a row
fills one or the other). JSON lines: `{"user_id": ...}` or `{"identity": {"channel", "id"}}`.
Each row becomes a member or a problem with its line number; a bad row never stops the import.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Collection
from dataclasses import dataclass

from pydantic import ValidationError

from gateway.schema.broadcasts import Member
from gateway.schema.errors import problems
from gateway.store import MemberRef

CSV_COLUMNS = ("user_id", "channel", "id")


class BadHeader(ValueError):
    """The CSV header names none of the columns: nothing can be read."""


@dataclass(frozen=True)
class RowProblem:
    line: int
    message: str


def member_ref(member: Member) -> MemberRef:
    if member.identity is not None:
        return MemberRef(None, member.identity.channel, member.identity.id)
    return MemberRef(user_id=member.user_id)


def unknown_channel(member: Member, channels: Collection[str]) -> str | None:
    if member.identity is not None and member.identity.channel not in channels:
        return f"unknown channel {member.identity.channel!r}"
    return None


class RowReader:
    """Turns the lines of one import into members, remembering the CSV header."""

    def __init__(self, kind: str, channels: Collection[str]) -> None:
        self.kind = kind  # "csv" or "jsonl"
        self.channels = channels
        self.columns: list[str] | None = None
        self.parse: Callable[[str], object] = self._csv if kind == "csv" else self._json

    def row(self, line_number: int, text: str) -> MemberRef | RowProblem | None:
        """The member on this line, its problem, or None for a line with nothing to read
        (blank, or the CSV header)."""
        text = text.rstrip("\r\n")
        if not text.strip():
            return None
        if self.kind == "csv" and self.columns is None:
            self._header(text)
            return None
        try:
            data = self.parse(text)
            member = Member.model_validate(data)
        except ValueError as exc:  # JSON, CSV and pydantic's ValidationError alike
            return RowProblem(line_number, _explain(exc))
        problem = unknown_channel(member, self.channels)
        if problem is not None:
            return RowProblem(line_number, problem)
        return member_ref(member)

    def _header(self, text: str) -> None:
        columns = [c.strip() for c in next(csv.reader([text]))]
        if not set(columns) & set(CSV_COLUMNS):
            raise BadHeader("the first line must name the columns: user_id, or channel and id")
        self.columns = columns

    def _csv(self, text: str) -> object:
        assert self.columns is not None
        values = next(csv.reader([text]))
        if len(values) > len(self.columns):
            raise ValueError(f"{len(values)} values for {len(self.columns)} columns")
        row = {k: v.strip() for k, v in zip(self.columns, values, strict=False) if v.strip()}
        if "user_id" in row:
            return {"user_id": row["user_id"]}
        return {"identity": {"channel": row.get("channel", ""), "id": row.get("id", "")}}

    @staticmethod
    def _json(text: str) -> object:
        return json.loads(text)


def _explain(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{f}: {m}" if f else m for f, m in problems(exc, None))
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON ({exc.msg})"
    return str(exc)
