"""The groups API: audiences a broadcast goes to (docs/broadcasts.md).

A group belongs to the API key that created it: any other key gets 404 `group_not_found`
(a `read_all` key reads it). Members are users of that key, or bare identities. An import
streams its body: it is read a line at a time and stored in batches, so 100,000 rows never
sit in memory at once, and each bad row is named with its line while the good ones are kept.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from aiohttp import web
from pydantic import ValidationError

from adapters.base import Adapter
from gateway.audience_import import BadHeader, RowProblem, RowReader, member_ref, unknown_channel
from gateway.http.api import (
    API_KEY_NAME,
    _body,
    _invalid,
    _when,
    may_access,
    model_answer,
    query_limit,
    refusal,
)
from gateway.http.ingress import error
from gateway.http.request_body import BodyReader
from gateway.ids import new_id
from gateway.logs import get_logger
from gateway.schema.broadcasts import (
    AddMembers,
    CreateGroup,
    GroupView,
    ImportResult,
    Member,
    MemberPage,
    MembersAdded,
    MemberView,
)
from gateway.schema.broadcasts import RowProblem as RowProblemView
from gateway.schema.users import IdentityRef
from gateway.store import AudienceRecord, BroadcastConflict, MemberRef, Store

log = get_logger("gateway.groups")

MAX_IMPORT_ROWS = 100_000
IMPORT_BATCH = 500
REFUSALS_SHOWN = 1_000  # bad rows named in the answer; `refused_total` counts them all
MAX_LINE_BYTES = 64 * 1024
MAX_PAGE = 1_000


def _no_group() -> web.Response:
    return error(404, "group_not_found", "no group with this id")


def _member_problems(
    members: list[Member], channels: Mapping[str, Adapter]
) -> list[tuple[str, str]]:
    found = []
    for i, member in enumerate(members):
        problem = unknown_channel(member, channels)
        if problem is not None:
            found.append((f"members[{i}].identity.channel", problem))
    return found


def _conflict(conflict: BroadcastConflict) -> web.Response:
    return refusal(422, conflict.code, conflict.field, conflict.message)


def member_view(ref: MemberRef, added_at: float) -> MemberView:
    identity = None
    if ref.user_id is None:
        identity = IdentityRef.model_construct(
            channel=ref.channel_id or "", id=ref.provider_id or ""
        )
    return MemberView(user_id=ref.user_id, identity=identity, added_at=_when(added_at))


class GroupsApi:
    def __init__(self, store: Store, adapters: Mapping[str, Adapter], bodies: BodyReader) -> None:
        self.store = store
        self.adapters = adapters
        self.bodies = bodies

    async def visible(self, request: web.Request, group_id: str) -> AudienceRecord | None:
        group = await self.store.get_audience(group_id)
        if group is None or group.inline or not may_access(request, group.owner):
            return None
        return group

    async def create(self, request: web.Request) -> web.Response:
        fields = await _body(self.bodies, request, CreateGroup, "the group")
        if isinstance(fields, web.Response):
            return fields
        problems = _member_problems(fields.members, self.adapters)
        if problems:
            return _invalid("the group", problems)
        group_id = new_id("grp")
        refs = [member_ref(m) for m in fields.members]
        try:
            await self.store.create_audience(
                group_id, request[API_KEY_NAME], fields.name, refs, time.time()
            )
        except BroadcastConflict as conflict:
            return _conflict(conflict)
        group = await self.store.get_audience(group_id)
        assert group is not None
        log.info("group_created", group_id=group_id, members=group.size)
        return model_answer(self._view(group), 201)

    async def get(self, request: web.Request) -> web.Response:
        group = await self.visible(request, request.match_info["group_id"])
        return model_answer(self._view(group)) if group is not None else _no_group()

    async def add(self, request: web.Request) -> web.Response:
        fields = await _body(self.bodies, request, AddMembers, "the members")
        if isinstance(fields, web.Response):
            return fields
        problems = _member_problems(fields.members, self.adapters)
        if problems:
            return _invalid("the members", problems)
        group = await self.visible(request, request.match_info["group_id"])
        if group is None:
            return _no_group()
        refs = [member_ref(m) for m in fields.members]
        try:
            added = await self.store.add_audience_members(
                group.id, request[API_KEY_NAME], refs, time.time()
            )
        except BroadcastConflict as conflict:
            return _conflict(conflict)
        return model_answer(MembersAdded(added=added.added, already=added.already))

    async def remove(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        try:
            member = Member.model_validate(
                {"user_id": query["user_id"]}
                if "user_id" in query
                else {"identity": {"channel": query.get("channel"), "id": query.get("id")}}
            )
        except ValidationError:
            return _invalid("the member", [("user_id", "give user_id, or channel and id")])
        group = await self.visible(request, request.match_info["group_id"])
        if group is None:
            return _no_group()
        if not await self.store.remove_audience_member(group.id, member_ref(member)):
            return refusal(404, "member_not_found", "user_id", "not a member of this group")
        return model_answer(self._view(await self.store.get_audience(group.id) or group))

    async def members(self, request: web.Request) -> web.Response:
        problems: list[tuple[str, str]] = []
        limit = query_limit(request, 100, MAX_PAGE, problems)
        cursor = request.query.get("cursor", "0")
        if not (cursor.isdigit() and len(cursor) <= 18):
            problems.append(("cursor", "must be a next_cursor this endpoint gave"))
        if problems:
            return _invalid("the query", problems)
        group = await self.visible(request, request.match_info["group_id"])
        if group is None:
            return _no_group()
        page = await self.store.audience_members(group.id, int(cursor), limit + 1)
        more = len(page) > limit
        page = page[:limit]
        body = MemberPage(
            members=[member_view(m.member, m.added_at) for m in page],
            next_cursor=str(page[-1].seq) if more else None,
        )
        return model_answer(body)

    async def import_members(self, request: web.Request) -> web.Response:
        kind = _import_kind(request.content_type)
        if kind is None:
            return error(
                415, "unsupported_media_type", "send text/csv or application/x-ndjson (JSON lines)"
            )
        group = await self.visible(request, request.match_info["group_id"])
        if group is None:
            return _no_group()
        result = _Tally()
        reader = RowReader(kind, self.adapters)
        batch: list[tuple[int, MemberRef]] = []
        line_number = rows = 0
        owner = request[API_KEY_NAME]
        try:
            while line := await request.content.readline():
                line_number += 1
                if len(line) > MAX_LINE_BYTES:
                    result.refuse(
                        RowProblem(line_number, f"line longer than {MAX_LINE_BYTES} bytes")
                    )
                    continue
                found = reader.row(line_number, line.decode("utf-8", "replace"))
                if found is None:
                    continue
                rows += 1
                if rows > MAX_IMPORT_ROWS:
                    result.refuse(RowProblem(line_number, f"past {MAX_IMPORT_ROWS} rows: not read"))
                    break
                if isinstance(found, RowProblem):
                    result.refuse(found)
                    continue
                batch.append((line_number, found))
                if len(batch) >= IMPORT_BATCH:
                    await self._store_batch(group.id, owner, batch, result)
                    batch = []
        except BadHeader as bad:
            return refusal(422, "invalid_import", "line 1", str(bad))
        except ValueError:  # a line past aiohttp's reader limit, before it ended
            result.refuse(RowProblem(line_number + 1, f"line longer than {MAX_LINE_BYTES} bytes"))
        await self._store_batch(group.id, owner, batch, result)
        log.info("group_imported", group_id=group.id, added=result.added, refused=result.total)
        return model_answer(result.view())

    async def _store_batch(
        self, group_id: str, owner: str, batch: list[tuple[int, MemberRef]], result: _Tally
    ) -> None:
        if not batch:
            return
        added = await self.store.add_audience_members(
            group_id, owner, [ref for _line, ref in batch], time.time(), strict=False
        )
        result.added += added.added
        result.already += added.already
        for position in added.unknown_users:
            result.refuse(RowProblem(batch[position][0], "no user of this API key has this id"))

    @staticmethod
    def _view(group: AudienceRecord) -> GroupView:
        return GroupView(
            id=group.id, name=group.name, size=group.size, created_at=_when(group.created_at)
        )


def _import_kind(content_type: str) -> str | None:
    if content_type in ("text/csv", "application/csv"):
        return "csv"
    if content_type in ("application/x-ndjson", "application/jsonl", "application/json-lines"):
        return "jsonl"
    return None


class _Tally:
    def __init__(self) -> None:
        self.added = self.already = self.total = 0
        self.refused: list[RowProblem] = []

    def refuse(self, problem: RowProblem) -> None:
        self.total += 1
        if len(self.refused) < REFUSALS_SHOWN:
            self.refused.append(problem)

    def view(self) -> ImportResult:
        return ImportResult(
            added=self.added,
            already=self.already,
            refused=[
                RowProblemView(line=p.line, message=p.message)
                for p in sorted(self.refused, key=lambda p: p.line)
            ],
            refused_total=self.total,
        )
