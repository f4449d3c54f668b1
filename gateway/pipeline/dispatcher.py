"""Outbox → providers: render each queued message for its channel and send it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from prometheus_client import Counter

from adapters.base import Adapter, ProviderRequest, SendContext, SendError
from gateway.config import ConversationsConfig, DeliveryConfig
from gateway.downgrade import Downgrade, PlanError, plan
from gateway.ids import new_id
from gateway.live import get_or_removed
from gateway.logs import SecretRedactor, get_logger
from gateway.metrics import SENDS
from gateway.outbound.transport import Go, Transport, Withdrawn
from gateway.pipeline.backoff import backoff_seconds, retry_store_write
from gateway.pipeline.lanes import LaneWorker
from gateway.pipeline.plan_recorder import PlanRecorder
from gateway.pipeline.recipient_order import RecipientOrder
from gateway.pipeline.recorder import SentRecorder
from gateway.router.form_questions import intro, question
from gateway.schema import (
    CONTENT_ADAPTER,
    ChannelRef,
    Content,
    Event,
    EventError,
    Party,
    SendOptions,
    Status,
)
from gateway.schema.content import FormContent, TemplateContent, TextContent
from gateway.store import ContactState, MessageRecord, OutboxItem, Store
from gateway.store.bulk_sends import BulkFacts
from gateway.store.plans import Plan
from gateway.store.records import TargetsFor
from gateway.store.sent import SentSend

log = get_logger("gateway.dispatcher")

LEASE_SECONDS = 120.0
# How long recording a send the provider accepted is retried through store errors, well
# within the lease a send has left (it may have waited for its turn, then SEND_DEADLINE).
RECORD_SENT_SECONDS = 30.0
# Rows a channel's lane holds, in sends' worth. `send_concurrency` provider requests go at
# once (the transport's slots); the other rows are rendered, or recorded, meanwhile: a send
# waits for its record's commit and fsync, a few milliseconds, and holds no slot for it. The
# lane claims again once a round of sends has ended, so one claim carries
# `send_concurrency` rows, where it carried the one row whose send had just ended.
CLAIM_AHEAD = 4
# ... but no more than a channel's rate limit lets out in this many seconds: a row claimed
# waits its turn under its lease, and the contact state it is sent with (opt-outs) is read
# just before its turn, so a slow channel keeps one round in hand, as before.
CLAIM_AHEAD_SECONDS = 5.0
# Bulk sends (broadcasts) a lane holds at once, in seconds of its rate limit: enough to keep
# the channel at its rate while each send's store round trips take their time. A reply
# queued mid-broadcast is claimed at the next claim, ahead of the bulk rows not claimed yet,
# and goes ahead of the claimed ones too: bulk sends wait for the tokens others leave
# (transport.RateLimiter). The lane's own room (CLAIM_AHEAD rows a send slot) bounds it too:
# letting a lane hold its whole bulk window made every send's store operations queue longer,
# a reply's included (12 s on PostgreSQL in bench/broadcast.py).
BULK_AHEAD_SECONDS = 2.0


def status_event(
    record: MessageRecord,
    channel_type: str,
    state: str,
    external_id: str | None,
    error: EventError | None = None,
) -> Event:
    return Event(
        id=new_id("evt"),
        type="status",
        channel=ChannelRef(id=record.channel_id, type=channel_type),
        external_id=external_id,
        timestamp=datetime.now(UTC),
        recipient=Party(id=record.recipient_id),
        conversation_id=record.conversation_id,
        status=Status(
            message_id=record.id,
            external_id=external_id,
            state=state,
            error=error,
            participant=record.participant,
        ),
    )


def refuse_unsubscribed(contact: ContactState) -> None:
    """A recipient who opted out is not messaged until they opt in again."""
    if contact.unsubscribed_at is not None:
        since = datetime.fromtimestamp(contact.unsubscribed_at, UTC).isoformat()
        raise SendError(
            "unreachable",
            "unsubscribed",
            f"recipient unsubscribed ({contact.unsubscribe_reason or 'opted out'})"
            f" at {since}; they must opt in again before they can be messaged",
        )


def send_options(record: MessageRecord) -> SendOptions | None:
    """What the message asked of its sending (a template fallback, a messaging tag), if any."""
    return SendOptions.model_validate_json(record.options) if record.options else None


def sent_detail(sent: Sequence[ProviderRequest], external_ids: Sequence[str]) -> str | None:
    """The history's note of a send: how many provider messages it took, when several, and
    the notes of the requests this attempt sent."""
    notes = [request.note for request in sent if request.note]
    if len(external_ids) > 1:
        notes.insert(0, f"{len(external_ids)} provider message(s)")
    return "; ".join(notes) or None


class Dispatcher(LaneWorker):
    """Sends queued messages, in a lane per channel (a rate-limited one delays only itself)."""

    name = "dispatcher"
    kind = "send"
    lease_seconds = LEASE_SECONDS
    first_in_line = True  # a recipient's messages in order, from any number of gateways

    def __init__(
        self,
        store: Store,
        adapters: Mapping[str, Adapter],
        transport: Transport,
        targets_for: TargetsFor,
        policy: DeliveryConfig,
        *,
        public_url: str = "",
        conversations: ConversationsConfig | None = None,
        redactor: SecretRedactor | None = None,
    ) -> None:
        super().__init__(store, list(adapters), policy.poll_interval_seconds)
        # Applied to provider error text before it is logged, stored or sent to backends.
        self.redactor = redactor or SecretRedactor(())
        self.claim_limit = policy.send_concurrency * CLAIM_AHEAD
        self._in_hand = {
            channel: max(
                policy.send_concurrency,
                min(
                    self.claim_limit,
                    int(adapter.config.rate_limit_per_second * CLAIM_AHEAD_SECONDS),
                ),
            )
            for channel, adapter in adapters.items()
        }
        # Claimed broadcast sends' member and contact, read with the claim (store/bulk_sends.py).
        self._bulk: dict[int, BulkFacts] = {}
        # Each recipient's claimed sends, in turn.
        self.turns = RecipientOrder(
            self._send, self._defer, self._ended, lambda: self.transport.closing
        )
        self.public_url = public_url.rstrip("/")
        self.conversations = conversations or ConversationsConfig()
        self.store = store
        self.adapters = adapters
        self.transport = transport
        self.targets_for = targets_for
        self.policy = policy
        # The sends that end together, recorded together (pipeline/recorder.py).
        self.recorder = SentRecorder(store, targets_for, RECORD_SENT_SECONDS)
        # First sends' plans made together, recorded together (pipeline/plan_recorder.py).
        self.plans = PlanRecorder(store)
        # SENDS by (channel, outcome): `labels()` looks a counter up under a lock (~2 µs a send).
        self._sends: dict[tuple[str, str], Counter] = {}

    def _count(self, channel: str, outcome: str) -> None:
        counter = self._sends.get((channel, outcome))
        if counter is None:
            counter = self._sends[channel, outcome] = SENDS.labels(channel, outcome)
        counter.inc()

    def bulk_window(self, target: str) -> int | None:
        adapter = self.adapters.get(target)
        rate = adapter.config.rate_limit_per_second if adapter else 1.0
        return max(1, int(rate * BULK_AHEAD_SECONDS))

    async def _defer(self, ids: list[int], until: float) -> None:
        for outbox_id in ids:
            self._bulk.pop(outbox_id, None)  # read again when it is claimed again
        await retry_store_write(
            lambda: self.store.defer_outbox(ids, until), RECORD_SENT_SECONDS, "send_deferred"
        )

    def capacity(self, target: str) -> int:
        """Room to claim: once a round of sends has ended, or as each ends where the lane
        holds no more than a round (a slow channel)."""
        in_hand = self._in_hand.get(target, self.policy.send_concurrency)
        room = in_hand - self.turns.in_flight(target)
        least = min(self.policy.send_concurrency, max(1, in_hand - self.policy.send_concurrency))
        return room if room >= least else 0

    async def work(self, target: str, items: list[OutboxItem]) -> float:
        """Start sending `items` and return: the lane claims more as each send ends, so a slow
        answer holds up only its own recipient's next messages."""
        try:
            records, bulk = await asyncio.gather(
                self.store.get_messages([i.ref for i in items]),
                self.store.bulk.facts([i.ref for i in items if i.priority > 0]),
            )
        except Exception:
            # The store failed between the claim and the reads (a PostgreSQL restart): back
            # in line once it is back, rather than held for the whole lease.
            ids = [i.id for i in items]
            with contextlib.suppress(Exception):
                await retry_store_write(
                    lambda: self.store.release_outbox(ids), RECORD_SENT_SECONDS, "send_released"
                )
            raise
        for item in items:
            if item.ref in bulk:
                self._bulk[item.id] = bulk[item.ref]
        await self.turns.add(target, [(i, records.get(i.ref)) for i in items])
        return self.transport.paused_for(target)  # the provider's Retry-After, for the channel

    def _ended(self, channel: str) -> None:
        self.wake_listeners()  # its status event waits for the backends
        self.wake(channel)  # there is room for another send

    async def stop(self, grace: float = 0.0) -> None:
        """Claim no more; let the sends under way end, for at most `grace` seconds (cut
        short, one the provider accepted goes twice), and start none: those waiting for a
        rate-limit token or their turn are retried after the restart."""
        await super().stop(grace)
        self.transport.closing = True
        sending = self.turns.tasks
        if sending and grace > 0:
            await asyncio.wait(sending, timeout=grace)
        unsent = self.turns.unsent()
        self._bulk.clear()
        for task in list(sending):
            task.cancel()
        await asyncio.gather(*sending, return_exceptions=True)
        if unsent:
            # Back in line now, for another gateway on the store or this one's restart: held
            # till their leases end, they would hold their recipients' next messages too.
            with contextlib.suppress(Exception):
                await self.store.release_outbox(unsent)

    async def _send(self, item: OutboxItem, record: MessageRecord | None) -> float | None:
        """Send one message; when it must wait for a retry, the time the retry is due."""
        bulk = self._bulk.pop(item.id, None)
        if record is None or record.state != "queued":
            await self.store.complete_outbox([item.id], time.time())
            return None
        # Claimed before a reload removed its channel, it still goes, as it would have.
        adapter = get_or_removed(self.adapters, record.channel_id)
        if adapter is None:
            error = SendError(
                "permanent", "unknown_channel", f"channel {record.channel_id!r} is not configured"
            )
            await self._failed(item, record, "unknown", error)
            return None
        content = CONTENT_ADAPTER.validate_json(record.content)
        contact = await self._contact(record, bulk)
        done = list(record.external_ids)  # parts accepted by an earlier attempt are not resent
        try:
            refuse_unsubscribed(contact)
            options = send_options(record)
            context = self._context(record, contact, options)
            content, replaced = self._outside_window(adapter, content, context, options)
            parts = await self._plan(item, record, adapter, content, replaced)
            requests = adapter.render_parts(parts, context)
            pending = requests[len(done) :]
            for request in pending:
                if request.uses_reply_token and contact.reply_token:
                    # Single use: spent even if the send fails, so a retry goes by push.
                    await self.store.consume_reply_token(
                        record.channel_id, record.recipient_id, contact.reply_token
                    )
                go = self._bulk_check(item, record, bulk) if item.priority and not done else None
                done.append(await self.transport.send(adapter, request, go, bulk=item.priority > 0))
        except Withdrawn:
            log.info("send_withdrawn", message_id=record.id, channel=record.channel_id)
            return None  # its broadcast was cancelled or expired: recorded as such
        except SendError as refused:
            error = refused.redacted(self.redactor.text)
            self._count(record.channel_id, error.category)
            if error.unsubscribed:
                await self.store.set_unsubscribed(
                    record.channel_id,
                    record.recipient_id,
                    f"{error.code}: {error.title}",
                    time.time(),
                )
            if error.retryable:
                return await self._retry(item, record, done, error)
            await self._failed(item, record, adapter.type, error)
            return None
        self._count(record.channel_id, "sent")
        detail = sent_detail(pending, done)
        event = status_event(record, adapter.type, "sent", done[0] if done else None)
        await self.recorder.record(
            SentSend(item.id, record.id, record.channel_id, done, detail, event)
        )
        log.info("message_sent", message_id=record.id, channel=record.channel_id, external_ids=done)
        return None

    async def _contact(self, record: MessageRecord, bulk: BulkFacts | None) -> ContactState:
        """The recipient's state now; a broadcast's send's was read with its claim, a bulk
        window (two seconds) ago at most (store/bulk_sends.py)."""
        if bulk is not None:
            return bulk.contact
        return await self.store.get_contact(record.channel_id, record.recipient_id)

    def _bulk_check(self, item: OutboxItem, record: MessageRecord, bulk: BulkFacts | None) -> Go:
        """Asked as a broadcast's send is let out: whether its broadcast still wants it, from
        memory when its facts came with the claim (store/bulk_sends.py)."""

        async def go() -> bool:
            if bulk is None:
                return await self.store.may_send_bulk(record.id, item.id, time.time())
            now = time.time()
            why = self.store.bulk.why_not(bulk.broadcast_id, now)
            if why is None:
                return True
            await self.store.bulk.withdraw(item.id, bulk, why, now)
            return False

        return go

    async def _plan(
        self,
        item: OutboxItem,
        record: MessageRecord,
        adapter: Adapter,
        content: Content,
        replaced: Downgrade | None = None,
    ) -> list[Content]:
        """The engine's parts for this channel; its downgrades are recorded on the first try,
        after `replaced` (the template that went instead of the content) if there is one.

        A form starts a conversation: its title, then its first field; the answers are taken
        from the user's next messages (see gateway/router/forms.py). A channel that shows forms
        whole (`profile.forms`: the web channel) gets it as it is, and answers it in one go.
        """
        first_try = item.attempts == 0 and not record.external_ids
        lead: list[Content] = []
        try:
            if isinstance(content, FormContent) and not adapter.profile.forms:
                lead = plan(TextContent(text=intro(content)), adapter.profile).parts
                if first_try:
                    await self.store.start_form(
                        record.channel_id,
                        record.recipient_id,
                        record.id,
                        record.content,
                        self.conversations.form_ttl_seconds,
                        time.time(),
                    )
                content = question(content, 0)
            planned = plan(content, adapter.profile)
        except PlanError as exc:
            raise SendError("permanent", "cannot_render", str(exc)) from None
        downgrades = [replaced, *planned.downgrades] if replaced else planned.downgrades
        if not first_try and replaced is not None:
            # The window closed between two tries: the replacement is news, recorded once.
            await self.store.record_plan(
                record.id, record.channel_id, record.recipient_id, [str(replaced)], [], 0.0,
                time.time(), once=True,
            )  # fmt: skip
        if first_try and (downgrades or planned.choices):  # else nothing to record
            for downgrade in downgrades:
                log.info(
                    "downgraded",
                    message_id=record.id,
                    channel=record.channel_id,
                    source=downgrade.source,
                    result=downgrade.result,
                    reason=downgrade.reason,
                )
            expires_at = time.time() + self.conversations.choice_ttl_seconds
            await self.plans.record(
                Plan(record.id, record.channel_id, record.recipient_id,
                     [str(d) for d in downgrades], planned.choices, expires_at)
            )  # fmt: skip
        return lead + planned.parts

    @staticmethod
    def _outside_window(
        adapter: Adapter, content: Content, context: SendContext, options: SendOptions | None
    ) -> tuple[Content, Downgrade | None]:
        """Outside a channel's free-form window, the message's template fallback goes instead;
        with it, the downgrade that says so and why (for the message's history)."""
        hours = adapter.profile.window_hours
        if not (hours and adapter.profile.templates) or content.type == "template":
            return content, None
        last = context.last_inbound_at
        if last is not None and context.now - last < hours * 3600:
            return content, None
        if options is None or options.template is None:
            return content, None  # the adapter refuses it with the window rule
        window = (
            f"{adapter.type} takes free-form messages only {hours:g} hours after the user's last"
        )
        why = (
            f"the recipient has not written yet; {window}"
            if last is None
            else f"the recipient last wrote {(context.now - last) / 3600:.1f} hours ago; {window}"
        )
        result = f"template {options.template.name}"
        return TemplateContent(template=options.template), Downgrade(content.type, result, why)

    def _context(
        self, record: MessageRecord, contact: ContactState, options: SendOptions | None
    ) -> SendContext:
        return SendContext(
            message_id=record.id,
            recipient_id=record.recipient_id,
            now=time.time(),
            last_inbound_at=contact.last_inbound_at,
            reply_token=contact.reply_token,
            reply_token_at=contact.reply_token_at,
            messaging_tag=options.messaging_tag if options else None,
            status_callback_url=f"{self.public_url}/webhooks/{record.channel_id}"
            if self.public_url
            else None,
        )

    async def _retry(
        self, item: OutboxItem, record: MessageRecord, done: list[str], error: SendError
    ) -> float | None:
        """Record the attempt and when the next is due (None: it gave up, the message failed)."""
        now = time.time()
        if now - item.created_at > self.policy.dead_letter_after_seconds:
            expired = SendError(
                "permanent",
                error.code,
                f"gave up after {item.attempts + 1} attempts: {error.title}",
            )
            adapter = get_or_removed(self.adapters, record.channel_id)
            await self._failed(item, record, adapter.type if adapter else "unknown", expired)
            return None
        delay = backoff_seconds(item.attempts, self.policy, error.retry_after)
        log.warning(
            "send_retry",
            message_id=record.id,
            channel=record.channel_id,
            code=error.code,
            error=error.title,
            attempt=item.attempts + 1,
            retry_in=round(delay, 2),
        )
        await self.store.record_send_retry(
            item.id,
            record.id,
            record.channel_id,
            done,
            now + delay,
            f"{error.code}: {error.title}",
            now,
        )
        return now + delay

    async def _failed(
        self, item: OutboxItem, record: MessageRecord, channel_type: str, error: SendError
    ) -> None:
        failure = EventError(code=error.code, title=error.title, retryable=False)
        log.warning(
            "send_failed",
            message_id=record.id,
            channel=record.channel_id,
            code=error.code,
            category=error.category,
            error=error.title,
        )
        event = status_event(record, channel_type, "failed", None, failure)
        next_channel = await self.store.record_send_failed(
            item.id, record.id, failure.model_dump(), event, self.targets_for, time.time()
        )
        if next_channel is not None:  # a message to a user failed over (store/routes.py)
            log.info("failed_over", message_id=record.id, channel=next_channel)
            self.wake(next_channel)
