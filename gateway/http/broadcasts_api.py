"""The broadcasts API: one message to every member of a group, or of an inline list
(docs/broadcasts.md).

`POST /v1/broadcasts` answers as soon as the broadcast is stored: the members are expanded in
the background (gateway/pipeline/broadcasts.py), each becoming a bulk send or a recorded skip.
A broadcast belongs to the API key that made it (404 `broadcast_not_found` for any other).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping

from aiohttp import web

from adapters.base import Adapter
from gateway.audience_import import member_ref
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
from gateway.http.groups_api import GroupsApi, _conflict, _member_problems
from gateway.http.ingress import error
from gateway.http.request_body import BodyReader
from gateway.ids import new_id
from gateway.logs import get_logger
from gateway.schema.broadcasts import (
    BroadcastAccepted,
    BroadcastCounts,
    BroadcastMemberView,
    BroadcastView,
    CreateBroadcast,
)
from gateway.schema.users import IdentityRef
from gateway.store import BroadcastConflict, BroadcastRecord, NewBroadcast, Store

log = get_logger("gateway.broadcasts")

MAX_PAGE = 1_000


def _no_broadcast() -> web.Response:
    return error(404, "broadcast_not_found", "no broadcast with this id")


def template_problems(
    wanted: Mapping[str, object], adapters: Mapping[str, Adapter]
) -> list[tuple[str, str]]:
    """Each channel of `options.template` must be configured, have templates, and list the
    template's name among its approved ones (`channels[].templates`)."""
    found = []
    for channel, template in wanted.items():
        field = f"options.template.{channel}"
        adapter = adapters.get(channel)
        name = getattr(template, "name", "")
        if adapter is None:
            found.append((field, f"unknown channel {channel!r}"))
        elif not adapter.profile.templates:
            found.append((field, f"channel {channel!r} ({adapter.type}) has no templates"))
        elif name not in adapter.config.templates:
            found.append(
                (f"{field}.name", f"template {name!r} is not configured for channel {channel!r}")
            )
    return found


class BroadcastsApi:
    def __init__(
        self,
        store: Store,
        adapters: Mapping[str, Adapter],
        bodies: BodyReader,
        groups: GroupsApi,
        on_accepted: Callable[[], None],  # wakes the worker that expands broadcasts
    ) -> None:
        self.store = store
        self.adapters = adapters
        self.bodies = bodies
        self.groups = groups
        self.on_accepted = on_accepted

    async def create(self, request: web.Request) -> web.Response:
        fields = await _body(self.bodies, request, CreateBroadcast, "the broadcast")
        if isinstance(fields, web.Response):
            return fields
        options = fields.options
        templates = options.template if options and options.template else {}
        problems = template_problems(templates, self.adapters)
        problems += _member_problems(fields.members or [], self.adapters)
        if fields.members is not None and not fields.members:
            problems.append(("members", "the audience has no members"))
        if problems:
            return _invalid("the broadcast", problems)
        now = time.time()
        audience_id = new_id("grp")
        if fields.group_id is not None:
            group = await self.groups.visible(request, fields.group_id)
            if group is None:
                return refusal(422, "group_not_found", "group_id", "no group with this id")
            audience_id = group.id
        schedule_at = options.schedule_at.timestamp() if options and options.schedule_at else now
        ttl = options.ttl if options else None
        new = NewBroadcast(
            id=new_id("bc"),
            owner=request[API_KEY_NAME],
            audience_id=audience_id,
            content=fields.content.model_dump_json(exclude_none=True),
            templates=json.dumps({c: t.model_dump(exclude_none=True) for c, t in templates.items()})
            if templates
            else None,
            metadata=json.dumps(fields.metadata) if fields.metadata is not None else None,
            schedule_at=max(schedule_at, now),
            expires_at=max(schedule_at, now) + ttl if ttl else None,
        )
        inline = [member_ref(m) for m in fields.members] if fields.members is not None else None
        try:
            size = await self.store.create_broadcast(new, inline, now)
        except BroadcastConflict as conflict:
            return _conflict(conflict)
        self.on_accepted()
        log.info("broadcast_accepted", broadcast_id=new.id, members=size)
        return model_answer(BroadcastAccepted(id=new.id, audience_size=size), 202)

    async def get(self, request: web.Request) -> web.Response:
        problems: list[tuple[str, str]] = []
        limit = query_limit(request, 100, MAX_PAGE, problems)
        cursor = request.query.get("cursor", "0")
        if not (cursor.isdigit() and len(cursor) <= 18):
            problems.append(("cursor", "must be a next_cursor this endpoint gave"))
        if problems:
            return _invalid("the query", problems)
        found = await self._visible(request)
        if found is None:
            return _no_broadcast()
        return await self._answer(found, int(cursor), limit)

    async def cancel(self, request: web.Request) -> web.Response:
        found = await self._visible(request)
        if found is None:
            return _no_broadcast()
        cancelled = await self.store.cancel_broadcast(found.id, time.time())
        if not cancelled and found.state != "cancelled":  # cancelling again changes nothing
            return refusal(409, "broadcast_finished", "id", "the broadcast has ended")
        log.info("broadcast_cancelled", broadcast_id=found.id)
        self.on_accepted()  # its end is noticed sooner
        again = await self.store.get_broadcast(found.id)
        return await self._answer(again or found, 0, 100)

    async def _visible(self, request: web.Request) -> BroadcastRecord | None:
        found = await self.store.get_broadcast(request.match_info["broadcast_id"])
        return found if found is not None and may_access(request, found.owner) else None

    async def _answer(self, found: BroadcastRecord, after: int, limit: int) -> web.Response:
        page = await self.store.broadcast_outcomes(found.id, after, limit + 1)
        more = len(page) > limit
        page = page[:limit]
        members = [
            BroadcastMemberView(
                user_id=o.user_id,
                identity=IdentityRef.model_construct(channel=o.channel_id, id=o.provider_id)
                if o.channel_id is not None and o.provider_id is not None
                else None,
                state=o.state,
                reason=o.reason,
                message_id=o.message_id,
            )
            for o in page
        ]
        view = BroadcastView(
            id=found.id,
            group_id=None if found.inline else found.audience_id,
            state=found.state,
            audience_size=found.audience_size,
            expanded=found.expanded,
            counts=BroadcastCounts(**found.counts),
            members=members,
            next_cursor=str(page[-1].position) if more else None,
            schedule_at=_when(found.schedule_at),
            expires_at=_when(found.expires_at) if found.expires_at is not None else None,
            created_at=_when(found.created_at),
            finished_at=_when(found.finished_at) if found.finished_at is not None else None,
        )
        return model_answer(view)
