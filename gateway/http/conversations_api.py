"""The conversations API: create a group conversation, add and remove participants, close
it, post into it, read its history (docs/conversations.md).

Each API key sees only the conversations it created (404 for any other), the rule users follow
(`may_access`). Every decision on who gets a copy is the router's (gateway/router/).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence

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
from gateway.http.ingress import error
from gateway.http.request_body import BodyReader
from gateway.ids import new_id
from gateway.logs import get_logger
from gateway.schema import (
    CONTENT_ADAPTER,
    ControlRequest,
    ConversationMessage,
    ConversationMessages,
    ConversationPage,
    ConversationView,
    CopyView,
    CreateConversation,
    IdentityRef,
    NewParticipant,
    ParticipantView,
    PostedToConversation,
    PostToConversation,
    UpdateConversation,
)
from gateway.store import (
    ConversationConflict,
    ConversationMessageRecord,
    ConversationQuery,
    ConversationRecord,
    SeatRequest,
    Store,
)
from gateway.store.records import TargetsFor

log = get_logger("gateway.conversations")

MAX_MESSAGES = 200
MAX_CONVERSATIONS = 200
# A page's next_cursor: where it ended, `<created_at>_<conversation id>`.
_CURSOR = re.compile(r"([0-9]{1,12}\.?[0-9]{0,9})_(conv_[0-9A-Z]{26})")
# `metadata[order_id]=1234`: OpenAPI's deepObject style, one parameter per key.
_METADATA_FILTER = re.compile(r"metadata\[(.*)\]", re.DOTALL)
_METADATA_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_FILTER_TEXT = 256


def conversation_view(conversation: ConversationRecord) -> ConversationView:
    return ConversationView(
        id=conversation.id,
        mode=conversation.mode,
        state=conversation.state,
        metadata=json.loads(conversation.metadata) if conversation.metadata else None,
        participants=[
            ParticipantView(
                id=p.seat.id,
                role=p.seat.role,
                display_name=p.seat.display_name,
                user_id=p.seat.user_id,
                observer=True if p.seat.observer else None,
                identity=None
                if p.seat.api_only
                else IdentityRef.model_construct(channel=p.seat.channel_id, id=p.seat.provider_id),
                api_only=p.seat.api_only,
                joined_at=_when(p.joined_at),
                left_at=_when(p.left_at) if p.left_at is not None else None,
            )
            for p in conversation.participants
        ],
        controller=conversation.controller,
        created_at=_when(conversation.created_at),
        closed_at=_when(conversation.closed_at) if conversation.closed_at is not None else None,
    )


def message_view(record: ConversationMessageRecord) -> ConversationMessage:
    return ConversationMessage(
        id=record.id,
        author=record.author,
        content=CONTENT_ADAPTER.validate_json(record.content),
        event_id=record.event_id,
        created_at=_when(record.created_at),
        copies=[
            CopyView(message_id=c.message_id, participant=c.participant, state=c.state)
            for c in record.copies
        ],
    )


def _answer(conversation: ConversationRecord, status: int = 200) -> web.Response:
    return model_answer(conversation_view(conversation), status)


def _no_conversation() -> web.Response:
    return error(404, "conversation_not_found", "no conversation with this id")


def conversation_conflict(conflict: ConversationConflict) -> web.Response:
    """The API's answer to a change a conversation (or a community, one kind of it) refuses."""
    return refusal(conflict.status, conflict.code, conflict.field, conflict.message)


class ConversationsApi:
    def __init__(
        self,
        store: Store,
        adapters: Mapping[str, Adapter],
        bodies: BodyReader,
        targets_for: TargetsFor,
        on_event: Callable[[], None],  # an event about a conversation waits for the backends
        on_queued: Callable[[str], None],  # a relayed copy waits on this channel
        *,
        default_controller: str | None = None,  # conversations.default_controller
        backends: Sequence[str] = (),  # the configured backends' ids
    ) -> None:
        self.store = store
        self.adapters = adapters
        self.bodies = bodies
        self.targets_for = targets_for
        self.on_event = on_event
        self.on_queued = on_queued
        self.default_controller = default_controller
        self.backends = list(backends)

    def _changed(self, conversation: ConversationRecord) -> None:
        """Wake the backends' delivery, and the channels of everyone present: an
        announcement may wait on any of them."""
        self.on_event()
        for channel in {p.seat.channel_id for p in conversation.participants if p.seat.present}:
            if channel in self.adapters:
                self.on_queued(channel)

    async def _visible(self, request: web.Request) -> ConversationRecord | None:
        found = await self.store.get_conversation(request.match_info["conversation_id"])
        if found is None or not may_access(request, found.owner):
            return None
        return found

    def _seat(self, participant: NewParticipant, field: str) -> SeatRequest | web.Response:
        """What the store needs to seat them, or the 422 naming what is wrong."""
        identity = participant.identity
        at = f"{field}." if field else ""
        if participant.api_only and identity is not None:
            return _invalid(
                "the participant",
                [(f"{at}identity", "a participant reached through the API only has none")],
            )
        if identity is None and participant.user_id is None and not participant.api_only:
            return _invalid(
                "the participant",
                [(f"{at}identity", "give a user_id, an identity, or api_only")],
            )
        if identity is not None and identity.channel not in self.adapters:
            return _invalid(
                "the participant",
                [(f"{at}identity.channel", f"unknown channel {identity.channel!r}")],
            )
        return SeatRequest(
            field=field,
            role=participant.role,
            display_name=participant.display_name,
            user_id=participant.user_id,
            channel_id=identity.channel if identity else None,
            provider_id=identity.id if identity else None,
            observer=participant.observer,
            api_only=participant.api_only,
        )

    async def create(self, request: web.Request) -> web.Response:
        fields = await _body(self.bodies, request, CreateConversation, "the conversation")
        if isinstance(fields, web.Response):
            return fields
        seats = []
        for index, participant in enumerate(fields.participants):
            seat = self._seat(participant, f"participants[{index}]")
            if isinstance(seat, web.Response):
                return seat
            seats.append(seat)
        try:
            created = await self.store.create_conversation(
                new_id("conv"),
                request[API_KEY_NAME],
                fields.mode,
                json.dumps(fields.metadata) if fields.metadata is not None else None,
                seats,
                self.targets_for,
                time.time(),
                self.default_controller,
            )
        except ConversationConflict as conflict:
            return conversation_conflict(conflict)
        self.on_event()
        log.info("conversation_created", conversation_id=created.id, mode=created.mode)
        return _answer(created, 201)

    async def get(self, request: web.Request) -> web.Response:
        found = await self._visible(request)
        return _answer(found) if found is not None else _no_conversation()

    async def update(self, request: web.Request) -> web.Response:
        fields = await _body(self.bodies, request, UpdateConversation, "the conversation")
        if isinstance(fields, web.Response):
            return fields
        found = await self._visible(request)
        if found is None:
            return _no_conversation()
        if "metadata" not in fields.model_fields_set:  # nothing to change
            return _answer(found)
        metadata = json.dumps(fields.metadata) if fields.metadata is not None else None
        updated = await self.store.set_conversation_metadata(found.id, metadata)
        return _answer(updated) if updated is not None else _no_conversation()

    async def page(self, request: web.Request) -> web.Response:
        query = _filters(request)
        if isinstance(query, web.Response):
            return query
        filters, limit = query
        page = await self.store.list_conversations(filters, limit + 1)
        more = len(page) > limit
        page = page[:limit]
        body = ConversationPage(
            conversations=[conversation_view(c) for c in page],
            next_cursor=f"{page[-1].created_at!r}_{page[-1].id}" if more else None,
        )
        return model_answer(body)

    async def add_participant(self, request: web.Request) -> web.Response:
        participant = await _body(self.bodies, request, NewParticipant, "the participant")
        if isinstance(participant, web.Response):
            return participant
        seat = self._seat(participant, "")
        if isinstance(seat, web.Response):
            return seat
        found = await self._visible(request)
        if found is None:
            return _no_conversation()
        try:
            updated = await self.store.add_participant(
                found.id, seat, self.targets_for, time.time()
            )
        except ConversationConflict as conflict:
            return conversation_conflict(conflict)
        if updated is None:
            return _no_conversation()
        self._changed(updated)
        return _answer(updated, 201)

    async def remove_participant(self, request: web.Request) -> web.Response:
        found = await self._visible(request)
        if found is None:
            return _no_conversation()
        try:
            updated = await self.store.remove_participant(
                found.id, request.match_info["participant_id"], self.targets_for, time.time()
            )
        except ConversationConflict as conflict:
            return conversation_conflict(conflict)
        if updated is None:
            return _no_conversation()
        self._changed(updated)
        return _answer(updated)

    async def close(self, request: web.Request) -> web.Response:
        found = await self._visible(request)
        if found is None:
            return _no_conversation()
        closed = await self.store.close_conversation(found.id, self.targets_for, time.time())
        if closed is None:
            return _no_conversation()
        self.on_event()
        log.info("conversation_closed", conversation_id=closed.id)
        return _answer(closed)

    async def control(self, request: web.Request) -> web.Response:
        """Pass, take or release control (docs/conversations.md, "Control"): any key that may
        change the conversation may, as for its participants."""
        change = await _body(self.bodies, request, ControlRequest, "the control change")
        if isinstance(change, web.Response):
            return change
        found = await self._visible(request)
        if found is None:
            return _no_conversation()
        try:
            updated = await self.store.change_control(
                found.id,
                change.action,
                change.backend,
                self.default_controller,
                self.backends,
                self.targets_for,
                time.time(),
            )
        except ConversationConflict as conflict:
            return conversation_conflict(conflict)
        if updated is None:
            return _no_conversation()
        self.on_event()
        log.info(
            "conversation_control",
            conversation_id=found.id,
            action=change.action,
            previous=found.controller,
            controller=updated.controller,
        )
        return _answer(updated)

    async def post(self, request: web.Request) -> web.Response:
        message = await _body(self.bodies, request, PostToConversation, "the message")
        if isinstance(message, web.Response):
            return message
        found = await self._visible(request)
        if found is None:
            return _no_conversation()
        try:
            posted = await self.store.post_to_conversation(
                found.id, message.content, message.author, message.to, time.time()
            )
        except ConversationConflict as conflict:
            return conversation_conflict(conflict)
        if posted is None:
            return _no_conversation()
        record, channels = posted
        for channel in set(channels):
            self.on_queued(channel)
        log.info("conversation_posted", conversation_id=found.id, copies=len(channels))
        body = PostedToConversation(id=record.id, copies=message_view(record).copies)
        return model_answer(body, 202)

    async def messages(self, request: web.Request) -> web.Response:
        cursor = request.query.get("cursor")
        problems: list[tuple[str, str]] = []
        limit = query_limit(request, 50, MAX_MESSAGES, problems)
        if cursor is not None and not (cursor.isdigit() and len(cursor) <= 18):
            problems.append(("cursor", "must be a next_cursor this endpoint gave"))
        if problems:
            return _invalid("the query", problems)
        found = await self._visible(request)
        if found is None:
            return _no_conversation()
        page = await self.store.conversation_messages(
            found.id, int(cursor) if cursor is not None else None, limit + 1
        )
        more = len(page) > limit
        page = page[:limit]
        body = ConversationMessages(
            messages=[message_view(r) for r in page],
            next_cursor=str(page[-1].seq) if more else None,
        )
        return model_answer(body)


def _filters(request: web.Request) -> tuple[ConversationQuery, int] | web.Response:
    """GET /v1/conversations's filters and page size, or the 422 naming each bad parameter."""
    problems: list[tuple[str, str]] = []
    metadata: list[tuple[str, str]] = []
    for name, value in request.query.items():
        if (filtered := _METADATA_FILTER.fullmatch(name)) is not None:
            key = filtered.group(1)
            if not _METADATA_KEY.fullmatch(key):
                problems.append((name, "a metadata key is 1 to 64 letters, digits, _ or -"))
            elif len(value) > MAX_FILTER_TEXT:
                problems.append((name, f"at most {MAX_FILTER_TEXT} characters"))
            else:
                metadata.append((key, value))
        elif name not in ("state", "user_id", "limit", "cursor"):
            problems.append(
                (name, "unknown parameter: state, user_id, metadata[<key>], limit or cursor")
            )
    limit = query_limit(request, 50, MAX_CONVERSATIONS, problems)
    state = request.query.get("state")
    if state is not None and state not in ("open", "closed"):
        problems.append(("state", "must be open or closed"))
    user_id = request.query.get("user_id")
    if user_id is not None and not 1 <= len(user_id) <= MAX_FILTER_TEXT:
        problems.append(("user_id", f"must be 1 to {MAX_FILTER_TEXT} characters"))
    cursor = request.query.get("cursor")
    after = _CURSOR.fullmatch(cursor) if cursor is not None else None
    if cursor is not None and after is None:
        problems.append(("cursor", "must be a next_cursor this endpoint gave"))
    if problems:
        return _invalid("the query", problems)
    filters = ConversationQuery(
        owner=readable_owner(request),
        state=state,
        metadata=tuple(metadata),
        user_id=user_id,
        before=(float(after.group(1)), after.group(2)) if after is not None else None,
    )
    return filters, limit
