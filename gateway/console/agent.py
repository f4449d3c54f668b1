"""Conversations for agents and operators: the list with its filters, one conversation's
history, and joining, speaking, handing back to the bot and leaving: the store operations
the conversations API uses (gateway/conversations_api.py), as the logged-in account."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.console.site import SESSION, TEMPLATES, log, refused, render
from gateway.router.conversations import Seat
from gateway.schema.content import TextContent
from gateway.store import ConversationConflict, ConversationQuery, ConversationRecord, SeatRequest

if TYPE_CHECKING:
    from gateway.app import Gateway

MAX_LISTED = 100
MAX_SHOWN_MESSAGES = 200
MAX_SPOKEN = 4096
AGENT_ROLE = "agent"


def filters_of(query: Any) -> dict[str, str]:
    """The list's filters from the query string (the empty ones left out)."""
    wanted = {
        k: str(query.get(k, "")).strip()[:256] for k in ("channel", "role", "state", "key", "value")
    }
    return {k: v for k, v in wanted.items() if v}


def _matches(conversation: ConversationRecord, wanted: dict[str, str]) -> bool:
    seats = conversation.seats()
    if "channel" in wanted and all(s.channel_id != wanted["channel"] for s in seats):
        return False
    return not ("role" in wanted and all(s.role != wanted["role"] for s in seats))


class AgentPages:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def listed(self, wanted: dict[str, str]) -> list[ConversationRecord]:
        metadata = ((wanted["key"], wanted.get("value", "")),) if "key" in wanted else ()
        state = wanted.get("state") if wanted.get("state") in ("open", "closed") else None
        query = ConversationQuery(owner=None, state=state, metadata=metadata)
        found = await self.gateway.store.list_conversations(query, MAX_LISTED)
        return [c for c in found if _matches(c, wanted)]

    async def conversations(self, request: web.Request) -> web.Response:
        wanted = filters_of(request.query)
        return render(
            request,
            "conversations.html",
            wanted=wanted,
            channels=list(self.gateway.adapters),
            listing=self.list_fragment(await self.listed(wanted)),
        )

    def list_fragment(self, found: list[ConversationRecord]) -> str:
        rows = [(c, json.loads(c.metadata) if c.metadata else {}) for c in found]
        return TEMPLATES.get_template("conversation_list.html").render(rows=rows)

    async def conversation(self, request: web.Request) -> web.Response:
        found = await self.gateway.store.get_conversation(request.match_info["conversation_id"])
        if found is None:
            return refused(request, 404, "no conversation with this id")
        mine = _my_seat(found, request[SESSION].account)
        return render(
            request,
            "conversation.html",
            conversation=found,
            metadata=json.loads(found.metadata) if found.metadata else {},
            mine=mine,
            history=await self.history_fragment(found),
        )

    async def history_fragment(self, conversation: ConversationRecord) -> str:
        page = await self.gateway.store.conversation_messages(
            conversation.id, None, MAX_SHOWN_MESSAGES
        )
        channels = {p.seat.id: p.seat.channel_id or "API" for p in conversation.participants}
        names = {p.seat.id: p.seat.display_name for p in conversation.participants}
        shown = []
        for record in reversed(page):  # oldest first, as a chat reads
            content = json.loads(record.content)
            author = record.author
            shown.append(
                {
                    "id": record.id,
                    "author": author.display_name if author else "the business",
                    "role": author.role if author else "",
                    "channel": channels.get(author.id, "api") if author else "api",
                    "text": _text_of(content),
                    "at": record.created_at,
                    "copies": [
                        (
                            names.get(c.participant.id, c.participant.display_name),
                            c.channel_id,
                            c.state,
                        )
                        for c in record.copies
                    ],
                }
            )
        return TEMPLATES.get_template("history.html").render(messages=shown)

    async def act(self, request: web.Request) -> web.StreamResponse:
        """join (silently or visibly), speak, hand back to the bot, leave."""
        store, now = self.gateway.store, time.time()
        found = await store.get_conversation(request.match_info["conversation_id"])
        if found is None:
            return refused(request, 404, "no conversation with this id")
        account = request[SESSION].account
        action = request.match_info["action"]
        mine = _my_seat(found, account)
        form = await request.post()
        try:
            result = await self._carry_out(action, found, mine, account, form, now)
        except ConversationConflict as conflict:
            return refused(request, conflict.status, f"{conflict.field}: {conflict.message}")
        if isinstance(result, str):
            return refused(request, 422, result)
        log.info("console_conversation", account=account, action=action, conversation_id=found.id)
        raise web.HTTPSeeOther(f"/console/conversations/{found.id}")

    async def _carry_out(
        self,
        action: str,
        found: ConversationRecord,
        mine: Seat | None,
        account: str,
        form: Any,
        now: float,
    ) -> str | None:
        """The change, or what is wrong with the request."""
        gateway, store, targets = self.gateway, self.gateway.store, self.gateway.targets_for
        if action in ("join-silently", "join-visibly"):
            if mine is not None:
                return "you are in this conversation already"
            seat = SeatRequest(
                field="",
                role=AGENT_ROLE,
                display_name=account,
                api_only=True,
                observer=action == "join-silently",
            )
            changed = await store.add_participant(found.id, seat, targets, now)
        elif action == "leave":
            if mine is None:
                return "you are not in this conversation"
            changed = await store.remove_participant(found.id, mine.id, targets, now)
        elif action == "hand-back":
            config = gateway.config.conversations
            backends = [b.id for b in gateway.config.backends]
            changed = await store.change_control(
                found.id, "release", None, config.default_controller, backends, targets, now
            )
        elif action == "speak":
            return await self._speak(found, mine, str(form.get("text", "")), now)
        else:
            return f"unknown action {action!r}"
        if changed is not None:
            self._wake(changed)
        return None

    async def _speak(
        self, found: ConversationRecord, mine: Seat | None, text: str, now: float
    ) -> str | None:
        if mine is None:
            return "join the conversation before you speak"
        if not text.strip() or len(text) > MAX_SPOKEN:
            return f"text: write 1 to {MAX_SPOKEN} characters"
        posted = await self.gateway.store.post_to_conversation(
            found.id, TextContent(text=text), mine.id, None, now
        )
        if posted is not None:
            for channel in set(posted[1]):
                self.gateway.dispatcher.wake(channel)
        self.gateway.delivery.wake()
        return None

    def _wake(self, conversation: ConversationRecord) -> None:
        """As the conversations API does: the backends' delivery, and the channels of
        everyone present (an announcement may wait on any of them)."""
        self.gateway.delivery.wake()
        for seat in conversation.seats():
            if seat.present and seat.channel_id in self.gateway.adapters:
                self.gateway.dispatcher.wake(seat.channel_id)


def _my_seat(conversation: ConversationRecord, account: str) -> Seat | None:
    for seat in conversation.seats():
        if (
            seat.present
            and seat.api_only
            and seat.role == AGENT_ROLE
            and seat.display_name == account
        ):
            return seat
    return None


def _text_of(content: dict[str, Any]) -> str:
    """What a history line shows of a message: its text, or its kind and titles."""
    text = content.get("text") or content.get("title") or ""
    if content.get("type") == "carousel":
        titles = ", ".join(str(i.get("title", "")) for i in content.get("items", []))
        return f"{text} [carousel: {titles}]".strip()
    if content.get("type") not in (None, "text") and not text:
        return f"[{content.get('type')}]"
    return str(text)
