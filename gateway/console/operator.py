"""Operator pages: channels, trouble (replay and discard), the composer, charts."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import ValidationError

from adapters.sms.segments import segments
from gateway.console.charts import SERIES, LastHour, lane_paused, svg_chart
from gateway.console.site import SESSION, log, refused, render
from gateway.downgrade import PlanError, plan
from gateway.ids import new_id
from gateway.preview import preview
from gateway.schema import CONTENT_ADAPTER, EventError
from gateway.schema.errors import problems
from gateway.schema.limits import API_INPUT
from gateway.store import ConversationConflict, NewMessage

if TYPE_CHECKING:
    from gateway.app import Gateway

EXAMPLES = {
    path.stem: path.read_text(encoding="utf-8")
    for path in sorted((Path(__file__).parent / "examples").glob("*.json"))
}
# How far back the channels page looks in the store for a channel's last failed send: each
# open page reads it every second (gateway/console/live.py), so an hour of messages at most.
FAILED_SENDS_LOOKBACK = 3600.0
ROWS_FRESH_SECONDS = 1.0
# What the composer's sends are recorded under, as an API key's name is for the API's.
CONSOLE_OWNER = "console"


@dataclass
class ChannelRow:
    id: str
    type: str
    paused: bool
    paused_seconds: float
    backlog: int
    sends: int
    failures: int
    webhooks: int
    webhook_url: str
    last_inbound_at: float | None
    last_error: str | None
    last_error_at: float | None


class OperatorPages:
    def __init__(self, gateway: Gateway, last_hour: LastHour) -> None:
        self.gateway = gateway
        self.last_hour = last_hour
        self._rows: tuple[float, list[ChannelRow]] | None = None

    async def channel_rows(self) -> list[ChannelRow]:
        """Each channel's row, read at most once a second however many pages are open."""
        now = time.monotonic()
        if self._rows is not None and now - self._rows[0] < ROWS_FRESH_SECONDS:
            return self._rows[1]
        rows = await self._read_rows()
        self._rows = (now, rows)
        return rows

    async def _read_rows(self) -> list[ChannelRow]:
        gateway = self.gateway
        ids = list(gateway.adapters)
        # The store's last failed send, for errors from before this process started.
        facts = await gateway.store.channel_facts(ids, time.time() - FAILED_SENDS_LOOKBACK)
        pending = await gateway.store.pending_by_target({"send": ids})
        base = gateway.config.public_url.rstrip("/")
        rows = []
        for channel_id, adapter in gateway.adapters.items():
            inbound, stored, stored_at = facts[channel_id]
            error, error_at = self._error_text(stored), stored_at
            # What the transport saw in this process, retries included, is newer and fuller.
            seen = gateway.transport.last_errors.get(channel_id)
            if seen is not None and (error_at is None or seen[0] >= error_at):
                error_at, error = seen[0], gateway.redactor.text(seen[1])
            rows.append(
                ChannelRow(
                    id=channel_id,
                    type=adapter.type,
                    # Its lane waits out a failure, or the provider's Retry-After (which the
                    # transport keeps for the whole channel).
                    paused=lane_paused("send", channel_id)
                    or gateway.transport.paused_for(channel_id) > 0,
                    paused_seconds=gateway.transport.paused_for(channel_id),
                    backlog=pending.get(("send", channel_id), 0),
                    sends=self.last_hour.sum("sends", channel_id),
                    failures=self.last_hour.sum("failures", channel_id),
                    webhooks=self.last_hour.sum("webhooks", channel_id),
                    webhook_url=f"{base}/webhooks/{channel_id}",
                    last_inbound_at=inbound,
                    last_error=error,
                    last_error_at=error_at,
                )
            )
        return rows

    def _error_text(self, stored: str | None) -> str | None:
        """A stored send error in words, with any secret a provider quoted masked."""
        if not stored:
            return None
        try:
            error = EventError.model_validate_json(stored)
            text = " · ".join(t for t in (error.code, error.title, error.detail) if t)
        except ValidationError:
            text = stored
        return self.gateway.redactor.text(text)

    async def channels(self, request: web.Request) -> web.Response:
        return render(request, "channels.html", rows=await self.channel_rows(), now=time.time())

    async def channels_fragment(self) -> str:
        from gateway.console.site import TEMPLATES

        template = TEMPLATES.get_template("channels_table.html")
        return template.render(rows=await self.channel_rows(), now=time.time())

    # --- trouble ------------------------------------------------------------------
    async def trouble(self, request: web.Request) -> web.Response:
        store = self.gateway.store
        failed = await store.inbox_rows("failed")
        dead = await store.dead_letters()
        text = self.gateway.redactor.text
        return render(
            request,
            "trouble.html",
            failed=[(i, c, text(r) if r else "") for i, c, r in failed],
            dead=[(i, b, e, text(r) if r else "") for i, b, e, r in dead],
        )

    async def trouble_action(self, request: web.Request) -> web.Response:
        """Replay or discard one failed inbox row or one dead-lettered delivery: the store
        operations `gateway replay` uses."""
        kind, action = request.match_info["kind"], request.match_info["action"]
        text = request.match_info["row_id"]
        if not text.isdigit() or len(text) > 18:
            return refused(request, 400, "row_id must be a row number")
        row = int(text)
        store, now = self.gateway.store, time.time()
        if kind == "inbox" and action == "replay":
            count = await store.replay_inbox(row_ids=[row])
            self.gateway.normaliser.wake()
        elif kind == "inbox":
            count = await store.discard_inbox([row], now)
        elif action == "replay":
            count = await store.replay_dead(now, ids=[row])
            self.gateway.delivery.wake()
        else:
            count = await store.discard_dead([row], now)
        log.info(
            "console_trouble",
            account=request[SESSION].account,
            kind=kind,
            action=action,
            row=row,
            changed=count,
        )
        if count == 0:
            return refused(request, 404, f"no {kind} row {row} waiting for replay or discard")
        raise web.HTTPSeeOther("/console/trouble")

    # --- composer -----------------------------------------------------------------
    async def composer(self, request: web.Request) -> web.Response:
        return render(
            request,
            "composer.html",
            examples=EXAMPLES,
            channels=list(self.gateway.adapters),
        )

    async def previews(self, request: web.Request) -> web.Response:
        content = await _content(request)
        if isinstance(content, web.Response):
            return content
        drawn = [self._drawn(adapter, content) for adapter in self.gateway.adapters.values()]
        from gateway.console.site import TEMPLATES

        html = TEMPLATES.get_template("previews.html").render(previews=drawn)
        return web.json_response({"html": html})

    @staticmethod
    def _drawn(adapter: Any, content: Any) -> dict[str, Any]:
        shown = preview(adapter, content)
        try:
            parts = plan(content, adapter.profile).parts
        except PlanError:
            parts = []
        sms = segments(shown.text) if adapter.type == "sms" and shown.text else None
        return {
            "channel": adapter.config.id,
            "type": adapter.type,
            "parts": [p.model_dump(mode="json", exclude_none=True) for p in parts],
            "text": shown.text,
            "downgrades": shown.downgrades,
            "error": shown.error,
            "strict": shown.error is None and not shown.downgrades,
            "segments": sms.count if sms else None,
            "encoding": sms.encoding if sms else None,
        }

    async def send(self, request: web.Request) -> web.Response:
        body = await _json(request)
        if isinstance(body, web.Response):
            return body
        if "conversation" in body:
            return await self._post_to_group(request, body)
        channel, recipient = body.get("channel"), body.get("to")
        if not isinstance(channel, str) or channel not in self.gateway.adapters:
            return _field(422, "channel", f"unknown channel {channel!r}")
        address = self.gateway.adapters[channel].address
        if not isinstance(recipient, str) or not recipient:
            return _field(422, "to", "the recipient's id on that channel is required")
        if address is not None and not address.accepts(recipient):
            return _field(422, "to", f"expected {address.expected}")
        content = _valid_content(body.get("content"))
        if isinstance(content, web.Response):
            return content
        text = content.model_dump_json(exclude_none=True)
        record = NewMessage(
            id=new_id("msg"),
            channel_id=channel,
            recipient_id=recipient,
            content=text,
            metadata=None,
            api_key=CONSOLE_OWNER,
            idempotency_key=None,
            request_hash=hashlib.sha256(f"{channel}\n{recipient}\n{text}".encode()).hexdigest(),
        )
        message_id, state, _created = await self.gateway.store.create_message(record, time.time())
        self.gateway.dispatcher.wake(channel)
        log.info("console_sent", account=request[SESSION].account, message_id=message_id)
        return web.json_response({"id": message_id, "state": state}, status=202)

    async def _post_to_group(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        """The business speaks in a group conversation: everyone present gets a copy, each in
        their channel's richest form (POST /v1/conversations/{id}/messages without author)."""
        conversation = body.get("conversation")
        if not isinstance(conversation, str) or not conversation:
            return _field(422, "conversation", "a conversation id (conv_…) is required")
        content = _valid_content(body.get("content"))
        if isinstance(content, web.Response):
            return content
        try:
            posted = await self.gateway.store.post_to_conversation(
                conversation, content, None, None, time.time()
            )
        except ConversationConflict as conflict:
            return _field(conflict.status, conflict.field, conflict.message)
        if posted is None:
            return _field(404, "conversation", "no conversation with this id")
        record, channels = posted
        for channel in set(channels):
            self.gateway.dispatcher.wake(channel)
        self.gateway.delivery.wake()
        log.info("console_posted", account=request[SESSION].account, conversation_id=conversation)
        copies = [{"message_id": c.message_id, "state": c.state} for c in record.copies]
        return web.json_response({"id": record.id, "copies": copies}, status=202)

    async def message_state(self, request: web.Request) -> web.Response:
        record = await self.gateway.store.get_message(request.match_info["message_id"])
        if record is None:
            return _field(404, "message_id", "no message with this id")
        return web.json_response(
            {"id": record.id, "state": record.state, "history": [s for _, s, _ in record.history]}
        )

    # --- charts -------------------------------------------------------------------
    async def charts(self, request: web.Request) -> web.Response:
        minutes = self.last_hour.minutes()
        rows = []
        for channel in self.gateway.adapters:
            charts = []
            for series in SERIES:
                values = [m.added.get((series, channel), 0.0) for m in minutes]
                title = f"{series} · {channel}"
                charts.append((title, svg_chart(values, title), int(sum(values))))
            rows.append((channel, charts))
        backlog = svg_chart([float(m.backlog) for m in minutes], "backlog")
        return render(request, "charts.html", rows=rows, backlog=backlog)


def _field(status: int, field: str, message: str) -> web.Response:
    return web.json_response(
        {
            "error": "invalid_request",
            "message": message,
            "problems": [{"field": field, "message": message}],
        },
        status=status,
    )


async def _json(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = json.loads(await request.text())
    except ValueError:
        return _field(400, "body", "the request body is not valid JSON")
    if not isinstance(body, dict):
        return _field(422, "body", "expected a JSON object")
    return body


def _valid_content(data: Any) -> Any:
    try:
        return CONTENT_ADAPTER.validate_python(data, context=API_INPUT)
    except ValidationError as exc:
        found = problems(exc, data)
        return web.json_response(
            {
                "error": "invalid_request",
                "message": "the content is not valid",
                "problems": [
                    {"field": "content" if f == "(body)" else f"content.{f}", "message": m}
                    for f, m in found
                ],
            },
            status=422,
        )


async def _content(request: web.Request) -> Any:
    body = await _json(request)
    if isinstance(body, web.Response):
        return body
    return _valid_content(body.get("content"))
