"""The users API: create, read and change users, link and unlink their channel identities,
merge two users, list a user's messages (docs/users.md).

Each API key sees only the users it created (404 for any other: whether an id exists is not
told to a key that may not see it); a key with the `read_all` scope reads every key's users but
changes only its own. The rule lives in `gateway.http.api` (`may_access`, `readable_owner`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping

from aiohttp import web
from pydantic import ValidationError

from adapters import ADAPTERS
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
    CreateUser,
    IdentityRef,
    IdentityView,
    MergeUsers,
    UpdateUser,
    UserMessage,
    UserMessages,
    UserView,
)
from gateway.schema.errors import problems
from gateway.store import NewUser, Store, UserConflict, UserRecord
from gateway.store.records import TargetsFor

log = get_logger("gateway.users")

MAX_MESSAGES = 500


def user_view(user: UserRecord) -> UserView:
    return UserView(
        id=user.id,
        external_id=user.external_id,
        name=user.name,
        locale=user.locale,
        metadata=json.loads(user.metadata) if user.metadata else None,
        country=user.country,
        preferred_channel=user.preferred_channel,
        identities=[
            IdentityView(
                channel=i.channel_id,
                id=i.provider_id,
                phone=i.phone,
                linked_by=i.linked_by,
                linked_at=_when(i.linked_at),
            )
            for i in user.identities
        ],
        merged_ids=user.merged_ids,
        created_at=_when(user.created_at),
        updated_at=_when(user.updated_at),
    )


def _answer(user: UserRecord, status: int = 200) -> web.Response:
    return model_answer(user_view(user), status)


def _no_user() -> web.Response:
    return error(404, "user_not_found", "no user with this id")


def _conflict(conflict: UserConflict) -> web.Response:
    status = 404 if conflict.code == "not_linked" else 409
    return refusal(status, conflict.code, conflict.field, conflict.message)


class UsersApi:
    def __init__(
        self,
        store: Store,
        adapters: Mapping[str, Adapter],
        bodies: BodyReader,
        targets_for: TargetsFor,
        on_event: Callable[[], None],  # an event about a user waits for the backends
    ) -> None:
        self.store = store
        self.adapters = adapters
        self.bodies = bodies
        self.targets_for = targets_for
        self.on_event = on_event

    def _unknown_preference(self, preferred: str | None) -> web.Response | None:
        """A preference names a configured channel instance, or a channel type."""
        if preferred is None or preferred in self.adapters or preferred in ADAPTERS:
            return None
        return _invalid(
            "the user",
            [("preferred_channel", f"{preferred!r} is neither a channel id nor a channel type")],
        )

    async def _visible(self, request: web.Request, user_id: str) -> UserRecord | None:
        """The user (or the one it was merged into), if this request's key may see it."""
        user = await self.store.get_user(user_id)
        return user if user is not None and may_access(request, user.owner) else None

    async def create(self, request: web.Request) -> web.Response:
        fields = await _body(self.bodies, request, CreateUser, "the user")
        if isinstance(fields, web.Response):
            return fields
        if (refused := self._unknown_preference(fields.preferred_channel)) is not None:
            return refused
        new = NewUser(
            id=new_id("usr"),
            owner=request[API_KEY_NAME],
            external_id=fields.external_id,
            name=fields.name,
            locale=fields.locale,
            metadata=json.dumps(fields.metadata) if fields.metadata is not None else None,
            country=fields.country,
            preferred_channel=fields.preferred_channel,
        )
        try:
            user = await self.store.create_user(new, time.time())
        except UserConflict as conflict:
            return _conflict(conflict)
        log.info("user_created", user_id=user.id)
        return _answer(user, 201)

    async def get(self, request: web.Request) -> web.Response:
        user = await self._visible(request, request.match_info["user_id"])
        return _answer(user) if user is not None else _no_user()

    async def update(self, request: web.Request) -> web.Response:
        fields = await _body(self.bodies, request, UpdateUser, "the user")
        if isinstance(fields, web.Response):
            return fields
        if (refused := self._unknown_preference(fields.preferred_channel)) is not None:
            return refused
        user = await self._visible(request, request.match_info["user_id"])
        if user is None:
            return _no_user()
        changes = fields.model_dump(include=fields.model_fields_set)
        try:
            updated = await self.store.update_user(user.id, changes, time.time())
        except UserConflict as conflict:
            return _conflict(conflict)
        return _answer(updated) if updated is not None else _no_user()

    async def link(self, request: web.Request) -> web.Response:
        identity = await _body(self.bodies, request, IdentityRef, "the identity")
        if isinstance(identity, web.Response):
            return identity
        adapter = self.adapters.get(identity.channel)
        if adapter is None:
            return _invalid("the identity", [("channel", f"unknown channel {identity.channel!r}")])
        user = await self._visible(request, request.match_info["user_id"])
        if user is None:
            return _no_user()
        try:
            linked = await self.store.link_identity(
                user.id, identity.channel, adapter.type, identity.id, self.targets_for, time.time()
            )
        except UserConflict as conflict:
            return _conflict(conflict)
        if linked is None:
            return _no_user()
        user, new = linked
        if new:
            self.on_event()
            log.info("identity_linked", user_id=user.id, channel=identity.channel)
        return _answer(user, 201 if new else 200)

    async def unlink(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        try:
            identity = IdentityRef.model_validate(query)
        except ValidationError as exc:
            return _invalid("the identity", problems(exc, query))
        user = await self._visible(request, request.match_info["user_id"])
        if user is None:
            return _no_user()
        try:
            unlinked = await self.store.unlink_identity(
                user.id, identity.channel, identity.id, self.targets_for, time.time()
            )
        except UserConflict as conflict:
            return _conflict(conflict)
        if unlinked is None:
            return _no_user()
        self.on_event()
        log.info("identity_unlinked", user_id=user.id, channel=identity.channel)
        return _answer(unlinked)

    async def merge(self, request: web.Request) -> web.Response:
        other = await _body(self.bodies, request, MergeUsers, "the merge")
        if isinstance(other, web.Response):
            return other
        survivor = await self._visible(request, request.match_info["user_id"])
        if survivor is None:
            return _no_user()
        merged = await self._visible(request, other.user_id)
        if merged is None:
            return error(404, "user_not_found", "no user with the id given as user_id")
        try:
            result = await self.store.merge_users(
                survivor.id, merged.id, self.targets_for, time.time()
            )
        except UserConflict as conflict:
            return _conflict(conflict)
        if result is None:
            return _no_user()
        self.on_event()
        log.info("users_merged", user_id=result.id, merged_id=merged.id)
        return _answer(result)

    async def messages(self, request: web.Request) -> web.Response:
        problems: list[tuple[str, str]] = []
        limit = query_limit(request, 100, MAX_MESSAGES, problems)
        if problems:
            return _invalid("the query", problems)
        user = await self._visible(request, request.match_info["user_id"])
        if user is None:
            return _no_user()
        found = await self.store.user_messages(user.id, readable_owner(request), limit)
        body = UserMessages(
            messages=[
                UserMessage(
                    id=m.id,
                    # As stored: ids the API took, or ids a provider sent (form replies).
                    to=IdentityRef.model_construct(channel=m.channel_id, id=m.recipient_id),
                    state=m.state,
                    created_at=_when(m.created_at),
                )
                for m in found
            ]
        )
        return model_answer(body)
