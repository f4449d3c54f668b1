"""The communities API: make and change communities, their members (join, remove, ban, mute)
and the messages their moderation holds (docs/communities.md).

A key sees and moderates only the communities it owns (404 `community_not_found` for any
other, whether or not it exists): the rule conversations and users follow (`may_access`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from aiohttp import web

from adapters.base import Adapter
from gateway.http.api import (
    API_KEY_NAME,
    _body,
    _invalid,
    _when,
    may_access,
    model_answer,
    query_limit,
    readable_owner,
    refusal,
)
from gateway.http.conversations_api import conversation_conflict
from gateway.http.ingress import error
from gateway.http.request_body import BodyReader
from gateway.ids import new_id
from gateway.logs import get_logger
from gateway.schema.communities import (
    CommunityPage,
    CommunitySettings,
    CommunityView,
    HeldMessagePage,
    HeldMessageView,
    MemberPage,
    MemberView,
    ModerationAction,
    ModerationView,
    MuteRequest,
    NewMember,
)
from gateway.schema.users import IdentityRef
from gateway.store import ConversationConflict, Store
from gateway.store.communities import CommunityRecord, Joining
from gateway.store.community_store import MemberRecord
from gateway.store.moderation import HeldRecord
from gateway.store.records import TargetsFor

log = get_logger("gateway.communities")

MAX_PAGE = 500
HELD_STATES = ("pending", "allowed", "held", "relayed", "rejected")


def community_view(record: CommunityRecord) -> CommunityView:
    settings = record.settings
    moderation = settings.moderation
    return CommunityView(
        id=record.id,
        name=settings.name,
        conversation_id=record.conversation_id,
        keywords=settings.keywords,
        welcome=settings.welcome,
        rules=settings.rules,
        rate_limit_per_minute=settings.rate_limit_per_minute,
        moderation=ModerationView(
            url=moderation.url,
            timeout_seconds=moderation.timeout_seconds,
            on_timeout=moderation.on_timeout,
        )
        if moderation is not None
        else None,
        configured=record.configured,
        members=record.members,
        created_at=_when(record.created_at),
        updated_at=_when(record.updated_at),
    )


def member_view(member: MemberRecord) -> MemberView:
    seat = member.seat
    return MemberView(
        id=seat.id,
        display_name=seat.display_name,
        identity=IdentityRef.model_construct(channel=seat.channel_id, id=seat.provider_id),
        user_id=seat.user_id,
        language=member.language,
        joined_at=_when(member.joined_at),
        left_at=_when(member.left_at) if member.left_at is not None else None,
        muted_until=_when(member.muted_until) if member.muted_until is not None else None,
    )


def held_view(record: HeldRecord) -> HeldMessageView:
    return HeldMessageView(
        id=record.id,
        author=record.author,
        content=record.content,
        state=record.state,
        reason=record.reason,
        decided_by=record.decided_by,
        created_at=_when(record.created_at),
        decided_at=_when(record.decided_at) if record.decided_at is not None else None,
    )


def _no_community() -> web.Response:
    return error(404, "community_not_found", "no community with this id")


def _no_member() -> web.Response:
    return refusal(
        404, "member_not_found", "member_id", "no member with this id present in the community"
    )


class CommunitiesApi:
    def __init__(
        self,
        store: Store,
        adapters: Mapping[str, Adapter],
        bodies: BodyReader,
        targets_for: TargetsFor,
        on_event: Callable[[], None],  # an event waits for the backends
        on_queued: Callable[[], None],  # notices or copies wait on channels
        # A moderation secret given here is redacted from the logs like the config's.
        on_secret: Callable[[Iterable[str]], None] = lambda _secrets: None,
    ) -> None:
        self.on_secret = on_secret
        self.store = store
        self.adapters = adapters
        self.bodies = bodies
        self.targets_for = targets_for
        self.on_event = on_event
        self.on_queued = on_queued

    def _changed(self) -> None:
        self.on_event()
        self.on_queued()

    async def _visible(self, request: web.Request) -> CommunityRecord | None:
        found = await self.store.communities.get(request.match_info["community_id"])
        if found is None or not may_access(request, found.owner):
            return None
        return found

    async def _settings(self, request: web.Request) -> CommunitySettings | web.Response:
        """The body's settings; their moderation secret redacted from now on, saved or not."""
        settings = await _body(self.bodies, request, CommunitySettings, "the community")
        if not isinstance(settings, web.Response) and settings.moderation is not None:
            self.on_secret([settings.moderation.secret.get_secret_value()])
        return settings

    async def create(self, request: web.Request) -> web.Response:
        settings = await self._settings(request)
        if isinstance(settings, web.Response):
            return settings
        try:
            made = await self.store.communities.save(
                new_id("cmty"), request[API_KEY_NAME], settings, self.targets_for, time.time()
            )
        except ConversationConflict as conflict:
            return conversation_conflict(conflict)
        self.on_event()
        log.info("community_created", community_id=made.id)
        return model_answer(community_view(made), 201)

    async def update(self, request: web.Request) -> web.Response:
        """Replace the settings whole (as PUT would): the keywords given are the keywords."""
        settings = await self._settings(request)
        if isinstance(settings, web.Response):
            return settings
        found = await self._visible(request)
        if found is None:
            return _no_community()
        if found.configured:
            return refusal(
                409,
                "configured_in_file",
                "community_id",
                "this community is made by the config file: change it there",
            )
        try:
            saved = await self.store.communities.save(
                found.id, found.owner, settings, self.targets_for, time.time()
            )
        except ConversationConflict as conflict:
            return conversation_conflict(conflict)
        return model_answer(community_view(saved))

    async def get(self, request: web.Request) -> web.Response:
        found = await self._visible(request)
        return model_answer(community_view(found)) if found is not None else _no_community()

    async def page(self, request: web.Request) -> web.Response:
        problems: list[tuple[str, str]] = []
        limit = query_limit(request, 100, MAX_PAGE, problems)
        if problems:
            return _invalid("the query", problems)
        found = await self.store.communities.page(
            readable_owner(request), limit, request.query.get("after")
        )
        return model_answer(CommunityPage(communities=[community_view(c) for c in found]))

    async def join(self, request: web.Request) -> web.Response:
        wanted = await _body(self.bodies, request, NewMember, "the member")
        if isinstance(wanted, web.Response):
            return wanted
        identity = wanted.identity
        if (identity is None) == (wanted.user_id is None):
            return _invalid("the member", [("identity", "give an identity or a user_id")])
        if identity is not None and identity.channel not in self.adapters:
            return _invalid(
                "the member", [("identity.channel", f"unknown channel {identity.channel!r}")]
            )
        found = await self._visible(request)
        if found is None:
            return _no_community()
        joining = Joining(
            identity.channel if identity else None,
            identity.id if identity else None,
            wanted.user_id,
            wanted.display_name,
            wanted.language,
        )
        try:
            seat = await self.store.communities.join(
                found.id, joining, self.targets_for, time.time()
            )
        except ConversationConflict as conflict:
            return conversation_conflict(conflict)
        if seat is None:
            return _no_community()
        self._changed()
        members = await self.store.communities.members(found.id, 100_000)
        joined = next(m for m in members if m.seat.id == seat.id)
        return model_answer(member_view(joined), 201)

    async def members(self, request: web.Request) -> web.Response:
        problems: list[tuple[str, str]] = []
        limit = query_limit(request, 100, MAX_PAGE, problems)
        if problems:
            return _invalid("the query", problems)
        found = await self._visible(request)
        if found is None:
            return _no_community()
        members = await self.store.communities.members(found.id, limit)
        return model_answer(MemberPage(members=[member_view(m) for m in members]))

    async def remove(self, request: web.Request) -> web.Response:
        return await self._act(request, "remove", None)

    async def ban(self, request: web.Request) -> web.Response:
        return await self._act(request, "ban", ModerationAction)

    async def mute(self, request: web.Request) -> web.Response:
        return await self._act(request, "mute", MuteRequest)

    async def _act(
        self,
        request: web.Request,
        action: str,
        model: type[ModerationAction] | type[MuteRequest] | None,
    ) -> web.Response:
        reason, until = None, None
        if model is not None:
            body = await _body(self.bodies, request, model, f"the {action}")
            if isinstance(body, web.Response):
                return body
            reason = body.reason
            if isinstance(body, MuteRequest):
                until = time.time() + body.seconds
        found = await self._visible(request)
        if found is None:
            return _no_community()
        done = await self.store.communities.act_on_member(
            found.id,
            request.match_info["member_id"],
            action,
            self.targets_for,
            time.time(),
            reason=reason,
            until=until,
        )
        if done is None:
            return _no_community()
        if not done:
            return _no_member()
        self._changed()
        log.info("community_member_" + action, community_id=found.id)
        return web.json_response({"id": request.match_info["member_id"], "action": action})

    async def held(self, request: web.Request) -> web.Response:
        problems: list[tuple[str, str]] = []
        limit = query_limit(request, 100, MAX_PAGE, problems)
        state = request.query.get("state", "held")
        if state not in HELD_STATES:
            problems.append(("state", "must be one of " + ", ".join(HELD_STATES)))
        if problems:
            return _invalid("the query", problems)
        found = await self._visible(request)
        if found is None:
            return _no_community()
        page = await self.store.communities.held(found.id, state, limit)
        return model_answer(HeldMessagePage(messages=[held_view(r) for r in page]))

    async def release(self, request: web.Request) -> web.Response:
        return await self._decide(request, "allow")

    async def reject(self, request: web.Request) -> web.Response:
        return await self._decide(request, "reject")

    async def _decide(self, request: web.Request, verdict: str) -> web.Response:
        body = await _body(self.bodies, request, ModerationAction, "the decision")
        if isinstance(body, web.Response):
            return body
        found = await self._visible(request)
        if found is None:
            return _no_community()
        decided = await self.store.communities.decide(
            request.match_info["message_id"],
            "allow" if verdict == "allow" else "reject",
            "api",
            body.reason,
            time.time(),
            community_id=found.id,
            from_states=("pending", "held"),
        )
        if decided is None:
            return refusal(
                404,
                "held_message_not_found",
                "message_id",
                "no message awaiting moderation with this id in the community",
            )
        self._changed()
        return model_answer(held_view(decided))
