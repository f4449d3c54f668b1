"""The backend API: `POST /v1/messages` queues a message durably, `GET` shows its history."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from adapters.base import Adapter
from gateway import json_codec
from gateway.config import ApiKey, SendRoutingConfig
from gateway.http.ingress import error
from gateway.http.request_body import BodyReader, UnreadableBody
from gateway.ids import new_id
from gateway.logs import SecretRedactor, get_logger
from gateway.preview import PreviewRequest, PreviewResponse, preview, strict_refusals
from gateway.schema import (
    CONTENT_ADAPTER,
    EventError,
    HistoryEntry,
    MessageAccepted,
    MessageView,
    Recipient,
    SendMessage,
    SendOptions,
)
from gateway.schema.api import UserRecipient
from gateway.schema.errors import problems
from gateway.schema.limits import API_INPUT
from gateway.send_to_user import NoIdentity, plan_route
from gateway.store import IdempotencyConflict, NewMessage, Store, is_store_error
from gateway.store.routes import NewRoute

log = get_logger("gateway.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

API_KEY_NAME = web.RequestKey("api_key_name", str)
READS_ALL = web.RequestKey("reads_all", bool)  # the key may read other keys' messages


def readable_owner(request: web.Request) -> str | None:
    """Whose records this request may read: its key's own, or every key's (None) for a key
    with the `read_all` scope. Every read in the API goes through this one rule."""
    return None if request[READS_ALL] else request[API_KEY_NAME]


def may_change(request: web.Request, owner: str) -> bool:
    """Changes stay with the key that created a record; `read_all` only reads."""
    return request[API_KEY_NAME] == owner


def may_access(request: web.Request, owner: str) -> bool:
    """Whether this request may act on a record `owner` created: read it (GET), or change it."""
    if request.method in ("GET", "HEAD"):
        wanted = readable_owner(request)
        return wanted is None or wanted == owner
    return may_change(request, owner)


_Body = TypeVar("_Body", bound=BaseModel)


async def _body(
    bodies: BodyReader, request: web.Request, model: type[_Body], what: str
) -> _Body | web.Response:
    """The request's JSON as `model`, or the 400/413/422/503 answer naming what is wrong."""
    try:
        raw = await bodies.read(request)
    except UnreadableBody as refused:
        return refused.finish(error(refused.status, refused.code, refused.message))
    try:
        data = json_codec.loads(raw)
    except ValueError:  # UnicodeDecodeError and JSON nested too deeply included
        return error(400, "malformed_json", "the request body is not valid JSON")
    try:
        return model.model_validate(data, context=API_INPUT)  # with the bounds on API input
    except ValidationError as exc:
        return _invalid(what, problems(exc, data))


def _valid_idempotency_key(key: str) -> bool:
    if not 0 < len(key) <= 255:
        return False
    try:  # bytes that are not UTF-8 arrive surrogate-escaped, and no store can keep them
        key.encode()
    except UnicodeEncodeError:
        return False
    return True


def _invalid(what: str, found: list[tuple[str, str]]) -> web.Response:
    return web.json_response(
        {
            "error": "invalid_request",
            "message": f"{what} is not valid",
            "problems": [{"field": f, "message": m} for f, m in found],
        },
        status=422,
    )


def refusal(status: int, code: str, field: str, message: str) -> web.Response:
    """A refusal in the API's error shape, naming the one field it concerns."""
    return web.json_response(
        {"error": code, "message": message, "problems": [{"field": field, "message": message}]},
        status=status,
    )


def query_limit(
    request: web.Request, default: int, most: int, problems: list[tuple[str, str]]
) -> int:
    """The `limit` query parameter (a page size from 1 to `most`); a bad one is added to
    `problems` (and `default` returned, so the caller can list every problem at once)."""
    text = request.query.get("limit", str(default))
    if not text.isdigit() or not 1 <= int(text) <= most:
        problems.append(("limit", f"must be a whole number from 1 to {most}"))
        return default
    return int(text)


def model_answer(body: BaseModel, status: int = 200) -> web.Response:
    """`body` as the answer's JSON, without the fields that are not set."""
    return web.Response(
        text=body.model_dump_json(exclude_none=True), status=status, content_type="application/json"
    )


def _when(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class Api:
    def __init__(
        self,
        store: Store,
        adapters: Mapping[str, Adapter],
        api_keys: list[ApiKey],
        on_queued: Callable[[str], None],  # a message waits on this channel
        bodies: BodyReader,
        redactor: SecretRedactor | None = None,
        routing: SendRoutingConfig | None = None,
    ) -> None:
        self.bodies = bodies
        self.routing = routing or SendRoutingConfig()
        # Rows stored by releases that kept provider error text as it came, secrets and all.
        self.redactor = redactor or SecretRedactor(())
        self.store = store
        self.adapters = adapters
        self.set_keys(api_keys)
        self.on_queued = on_queued

    def set_keys(self, api_keys: list[ApiKey]) -> None:
        """The keys accepted from now on (at start, and at each config reload)."""
        # One tuple, assigned at once: a request checks its key and scope against one config.
        self._keys = (
            [(k.name, k.key.get_secret_value().encode()) for k in api_keys],
            frozenset(k.name for k in api_keys if "read_all" in k.scopes),
        )

    def authenticated(self, handler: Handler) -> Handler:
        """`handler` behind the bearer-key check.

        A wrapper rather than a middleware: any middleware in the application tree puts every
        request, webhooks included, through aiohttp's middleware chain.
        """

        async def guarded(request: web.Request) -> web.StreamResponse:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token:
                return error(401, "unauthorized", "Authorization: Bearer <api key> is required")
            # Header bytes that are not UTF-8 arrive surrogate-escaped: compare the bytes sent.
            keys, reads_all = self._keys
            name = self._key_name(keys, token.encode("utf-8", "surrogateescape"))
            if name is None:
                return error(401, "unauthorized", "unknown API key")
            request[API_KEY_NAME] = name
            request[READS_ALL] = name in reads_all
            try:
                return await handler(request)
            except web.HTTPException:
                raise
            except Exception as exc:
                if is_store_error(exc):  # nothing was half-done: a transaction is all or nothing
                    reason = f"{type(exc).__name__}: {exc}"
                    log.error("api_store_failed", path=request.path, error=reason)
                    return error(
                        503, "store_unavailable", "the request was not carried out; retry later"
                    )
                log.exception("api_failed", path=request.path)  # a bug of ours: the traceback
                return error(500, "internal_error", "the gateway failed on this request")

        return guarded

    @staticmethod
    def _key_name(keys: list[tuple[str, bytes]], token: bytes) -> str | None:
        found = None
        for name, key in keys:  # compare against every key: no early exit to time
            if hmac.compare_digest(token, key):
                found = name
        return found

    async def send(self, request: web.Request) -> web.Response:
        message = await _body(self.bodies, request, SendMessage, "the message")
        if isinstance(message, web.Response):
            return message
        if isinstance(message.to, UserRecipient):
            routed = await self._route_to_user(request, message, message.to)
            if isinstance(routed, web.Response):
                return routed
            channel_id, recipient_id = routed.chosen.channel, routed.chosen.id
        else:
            refused = self._check_identity(message, message.to)
            if refused is not None:
                return refused
            channel_id, recipient_id, routed = message.to.channel, message.to.id, None
        idempotency_key = request.headers.get("Idempotency-Key")
        if idempotency_key is not None and not _valid_idempotency_key(idempotency_key):
            return error(
                400,
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 characters of UTF-8",
            )
        canonical = message.model_dump_json(exclude_none=True)
        record = NewMessage(
            id=new_id("msg"),
            channel_id=channel_id,
            recipient_id=recipient_id,
            content=message.content.model_dump_json(exclude_none=True),
            metadata=json.dumps(message.metadata) if message.metadata is not None else None,
            options=message.options.model_dump_json(exclude_none=True) if message.options else None,
            api_key=request[API_KEY_NAME],
            idempotency_key=idempotency_key,
            request_hash=hashlib.sha256(canonical.encode()).hexdigest(),
        )
        try:
            message_id, state, created = await self.store.create_message(
                record, time.time(), routed
            )
        except IdempotencyConflict:
            return error(
                409, "idempotency_conflict", "this Idempotency-Key was used with a different body"
            )
        if created:
            self.on_queued(channel_id)
            log.info("message_queued", message_id=message_id, channel=channel_id)
        body = MessageAccepted(id=message_id, status=state)
        return web.json_response(body.model_dump(), status=202 if created else 200)

    def _check_identity(self, message: SendMessage, to: Recipient) -> web.Response | None:
        """A send to one identity: a configured channel, an id of its form, and with strict
        adaptation, content the channel shows without a downgrade."""
        if to.channel not in self.adapters:
            return _invalid("the message", [("to.channel", f"unknown channel {to.channel!r}")])
        adapter = self.adapters[to.channel]
        form = adapter.address
        if form is not None and not form.accepts(to.id):
            return _invalid("the message", [("to.id", f"expected {form.expected}")])
        if message.options is None or message.options.adaptation != "strict":
            return None
        refusals = strict_refusals(adapter, message.content)
        if not refusals:
            return None
        return web.json_response(
            {
                "error": "strict_adaptation",
                "message": f"{to.channel} cannot show this content without a downgrade, and"
                " options.adaptation is strict",
                "problems": [{"field": "content", "message": r} for r in refusals],
            },
            status=422,
        )

    async def _route_to_user(
        self, request: web.Request, message: SendMessage, to: UserRecipient
    ) -> NewRoute | web.Response:
        """The user's identities in the order to try (send_to_user.py), or the refusal."""
        user = await self.store.get_user(to.user)
        if user is None or not may_change(request, user.owner):
            return refusal(404, "user_not_found", "to.user", "no user with this id")
        try:
            return await plan_route(
                self.store, self.adapters, self.routing, user, message.content, message.options
            )
        except NoIdentity as none:
            return web.json_response(
                {
                    "error": "no_usable_identity",
                    "message": "no identity of this user can take the message",
                    "problems": [{"field": "to.user", "message": r} for r in none.reasons],
                },
                status=422,
            )

    async def preview(self, request: web.Request) -> web.Response:
        wanted = await _body(self.bodies, request, PreviewRequest, "the preview request")
        if isinstance(wanted, web.Response):
            return wanted
        ids = wanted.channels if wanted.channels is not None else list(self.adapters)
        unknown = [i for i in ids if i not in self.adapters]
        if unknown:
            return _invalid(
                "the preview request", [("channels", f"unknown channel {i!r}") for i in unknown]
            )
        body = PreviewResponse(
            previews=[preview(self.adapters[i], wanted.content, wanted.to) for i in ids]
        )
        return web.Response(
            text=body.model_dump_json(by_alias=True, exclude_none=True),
            content_type="application/json",
        )

    async def get(self, request: web.Request) -> web.Response:
        # Another client's message is answered like a missing one: its existence is not told.
        owner = readable_owner(request)
        record = await self.store.get_message(request.match_info["message_id"], created_by=owner)
        if record is None:
            return error(404, "not_found", "no message with this id")
        view = MessageView(
            id=record.id,
            to=Recipient(channel=record.channel_id, id=record.recipient_id),
            content=CONTENT_ADAPTER.validate_json(record.content),
            state=record.state,
            external_ids=record.external_ids,
            error=self._error(record.error),
            conversation_id=record.conversation_id,
            options=SendOptions.model_validate_json(record.options) if record.options else None,
            metadata=json.loads(record.metadata) if record.metadata else None,
            created_at=_when(record.created_at),
            history=[
                HistoryEntry(at=_when(at), state=s, detail=self.redactor.text(d) if d else d)
                for at, s, d in record.history
            ],
        )
        return web.Response(
            text=view.model_dump_json(exclude_none=True), content_type="application/json"
        )

    def _error(self, stored: str | None) -> EventError | None:
        if not stored:
            return None
        error = EventError.model_validate_json(stored)
        texts = {"code": error.code, "title": error.title, "detail": error.detail}
        return error.model_copy(
            update={k: self.redactor.text(v) for k, v in texts.items() if v is not None}
        )
