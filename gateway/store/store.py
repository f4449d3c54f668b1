"""The store contract: every durable step of the gateway, one transaction each.

The same SQL runs on SQLite and PostgreSQL; `Database` supplies the connection, the
placeholder style and the claim locking. Operations are plain functions run on the writer
thread, so multi-statement logic (dedupe, state machines, the outbox) stays atomic. Steps that
several operations share are in `writes.py`; what goes in and comes out, in `records.py`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal, cast

from gateway.downgrade.choices import Choice
from gateway.router.broadcasts import ChannelRules
from gateway.router.conversations import DEFAULT_ANNOUNCEMENTS, DEFAULT_ROUTING, RoutingPolicy
from gateway.schema import Content, Event
from gateway.store import (
    accepts,
    broadcasts,
    contacts,
    control,
    conversations,
    failed_parts,
    form_sessions,
    held,
    moderation,
    pruning,
    questions,
    relay,
    routes,
    sent,
    users,
    writes,
)
from gateway.store import plans as store_plans
from gateway.store.bulk_sends import BulkSends
from gateway.store.community_store import CommunityStore
from gateway.store.database import Database, Tx
from gateway.store.records import (
    ContactState,
    FailedPartRecord,
    InboundRecorded,
    InboxRow,
    MessageRecord,
    NewMessage,
    OutboxItem,
    PreparedEvent,
    StoreUnavailable,
    TargetsFor,
    prepare,
)

# Backlog counts stop here (see `backlog`); alerts belong well below it.
BACKLOG_CAP = 100_000


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db
        # What group conversations' participants are told when someone visible joins or
        # leaves (config conversations.announcements; the app sets it).
        self.announcements = DEFAULT_ANNOUNCEMENTS
        self.communities = CommunityStore(self)  # docs/communities.md
        self.bulk = BulkSends(self)  # what broadcast sends read, a claim at a time

    def start(self) -> None:
        try:
            self.db.start()
        except StoreUnavailable:  # already says what is wrong (a store newer than the code)
            raise
        except Exception as exc:  # what failed is the driver's business; that it did, ours
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise StoreUnavailable(f"cannot open the store: {reason}") from exc

    def close(self) -> None:
        self.db.close()

    async def release_claims(self) -> None:
        """Forget leases held by a process that died (only safe when one process owns the store)."""

        def op(tx: Tx) -> None:
            tx.execute("UPDATE inbox SET claimed_until = NULL WHERE status = 'pending'")
            tx.execute("UPDATE outbox SET claimed_until = NULL WHERE status = 'pending'")
            moderation.release_claims(tx)

        await self.db.run(op)

    # --- inbox -----------------------------------------------------------------------
    async def append_inbox(
        self, channel_id: str, dedupe_key: str, url: str, headers: str, body: bytes, now: float
    ) -> int | None:
        """Store a raw request; None when it is a redelivery of one already stored."""

        def op(tx: Tx) -> int | None:
            return tx.insert(
                "INSERT INTO inbox (channel_id, dedupe_key, received_at, url, headers, body, status)"
                " VALUES (?, ?, ?, ?, ?, ?, 'pending')"
                " ON CONFLICT (channel_id, dedupe_key) DO NOTHING",
                (channel_id, dedupe_key, now, url, headers, body),
            )

        return await self.db.run(op, single_statement=True)

    async def claim_inbox(self, limit: int, now: float, lease: float) -> list[InboxRow]:
        skip = self.db.dialect.skip_locked

        def op(tx: Tx) -> list[InboxRow]:
            rows = tx.all(
                "UPDATE inbox SET claimed_until = ?, attempts = attempts + 1 WHERE id IN ("
                " SELECT id FROM inbox WHERE status = 'pending'"
                " AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY id LIMIT ?" + skip + ")"
                " RETURNING id, channel_id, body, received_at, attempts",
                (now + lease, now, limit),
            )
            claimed = sorted(
                (InboxRow(int(r[0]), r[1], bytes(r[2]), float(r[3]), int(r[4])) for r in rows),
                key=lambda r: r.id,
            )
            # Only a row claimed before can have failed parts (a replay): a first claim costs
            # no look-up.
            again = [row.id for row in claimed if row.attempts > 1]
            parts = failed_parts.paths(tx, again) if again else {}
            if not parts:
                return claimed
            return [replace(row, failed_parts=parts.get(row.id, frozenset())) for row in claimed]

        return await self.db.run(op, durable=False)  # a lost lease is claimed again

    async def unclaim(self, table: Literal["inbox", "outbox"], until: float) -> None:
        """Undo a claim that failed with a store error, leased till `until`: its commit may
        have happened with the answer lost (a connection cut at that moment), and then its rows,
        unknown to anyone, would wait out their lease. A claim's `until` (its `now` + lease, to
        the microsecond) marks its rows alone."""
        await self.db.run(
            lambda tx: tx.execute(
                f"UPDATE {table} SET claimed_until = NULL"
                " WHERE status = 'pending' AND claimed_until = ?",
                (until,),
            )
        )

    async def release_inbox(self, ids: Sequence[int]) -> None:
        """Claimed rows back in line now, those still pending (a failed batch's)."""
        await self.db.run(
            lambda tx: tx.execute(
                "UPDATE inbox SET claimed_until = NULL WHERE status = 'pending' AND id IN "
                + writes.in_list(ids),
                tuple(ids),
            )
        )

    async def fail_inbox(self, row_id: int, error: str, now: float) -> None:
        await self.db.run(
            lambda tx: tx.execute(
                "UPDATE inbox SET status = 'failed', error = ?, processed_at = ?,"
                " claimed_until = NULL WHERE id = ?",
                (error, now, row_id),
            )
        )

    async def replay_inbox(
        self,
        channel_id: str | None = None,
        row_ids: Sequence[int] = (),
        *,
        unsupported: bool = False,
    ) -> int:
        """Queue rows for normalising again: those that failed to parse, or (`unsupported`)
        those whose payloads became `unsupported` events, after an adapter learnt them (what
        is new then supersedes the `unsupported` event)."""

        def op(tx: Tx) -> int:
            sql = "UPDATE inbox SET status = 'pending', claimed_until = NULL, error = NULL"
            if unsupported:
                sql += (
                    " WHERE status = 'done' AND id IN (SELECT raw_id FROM events"
                    " WHERE type = 'unsupported' AND raw_id IS NOT NULL)"
                )
            else:
                sql += " WHERE status = 'failed'"
            params: list[Any] = []
            if channel_id:
                sql += " AND channel_id = ?"
                params.append(channel_id)
            if row_ids:
                sql += " AND id IN " + writes.in_list(row_ids)
                params += list(row_ids)
            return tx.execute(sql, params)

        return await self.db.run(op)

    async def discard_inbox(self, row_ids: Sequence[int], now: float) -> int:
        """Give up on failed rows (the console's Discard): kept as `discarded`, with their
        reason, until retention deletes them like rows normalised; how many."""
        if not row_ids:
            return 0
        return await self.db.run(
            lambda tx: tx.execute(
                "UPDATE inbox SET status = 'discarded', processed_at = ?, claimed_until = NULL"
                " WHERE status = 'failed' AND id IN " + writes.in_list(row_ids),
                (now, *row_ids),
            )
        )

    async def unsupported_rows(self, limit: int = 100) -> list[tuple[int, str, str | None]]:
        """(inbox row, channel, reason) of payloads kept as `unsupported` events."""
        rows = await self.db.run(
            lambda tx: tx.all(
                "SELECT raw_id, channel_id, body FROM events WHERE type = 'unsupported'"
                " AND raw_id IS NOT NULL ORDER BY raw_id LIMIT ?",
                (limit,),
            )
        )
        return [(int(r[0]), r[1], _unsupported_reason(r[2])) for r in rows]

    async def inbox_rows(self, status: str, limit: int = 100) -> list[tuple[int, str, str | None]]:
        return await self.db.run(
            lambda tx: [
                (int(r[0]), r[1], r[2])
                for r in tx.all(
                    "SELECT id, channel_id, error FROM inbox WHERE status = ? ORDER BY id LIMIT ?",
                    (status, limit),
                )
            ]
        )

    async def failed_parts_of(self, row_ids: Sequence[int]) -> Mapping[int, list[tuple[str, str]]]:
        """(path, reason) of the failed parts of these inbox rows, by row."""
        return await self.db.run(lambda tx: failed_parts.listed(tx, row_ids))

    async def record_inbound(
        self,
        raw_id: int,
        events: Sequence[tuple[Event, str]],
        targets_for: TargetsFor,
        now: float,
        *,
        routing: RoutingPolicy = DEFAULT_ROUTING,
    ) -> list[Event]:
        batch = [(raw_id, [prepare(e, key) for e, key in events])]
        recorded = await self.record_inbound_batch(batch, targets_for, now, routing=routing)
        return recorded.events[raw_id]

    async def record_inbound_batch(
        self,
        rows: Sequence[tuple[int, Sequence[PreparedEvent]]],
        targets_for: TargetsFor,
        now: float,
        *,
        link_by_phone: bool = False,
        routing: RoutingPolicy = DEFAULT_ROUTING,
        failed: Mapping[int, Sequence[FailedPartRecord]] | None = None,
    ) -> InboundRecorded:
        """Per inbox row: dedupe its events, attach contacts and messages, queue webhooks, close it.
        A row with `failed` parts is closed as failed, its parts kept for a replay
        (store/failed_parts.py).
        With `link_by_phone` (config identities.link_by_phone), a new sender joins the user whose
        WhatsApp or SMS identity has its phone, in the same transaction (store/users.py).

        The batch is one savepoint; if anything in it fails, it is redone row by row so that
        only the failing row is marked failed and the others still commit.
        """

        if not rows:  # every row of the batch failed to parse: nothing to record
            return InboundRecorded({}, [])

        def linked(tx: Tx, event: Event) -> None:
            users.link_by_phone(tx, event, targets_for, now)

        on_new_inbound = linked if link_by_phone else None

        def op(tx: Tx) -> InboundRecorded:
            mark = writes.outbox_mark(tx)
            tx.execute("SAVEPOINT inbound_batch")
            try:
                stored = writes.store_rows(
                    tx, rows, targets_for, now, on_new_inbound, self.announcements, routing, failed
                )
                tx.confirm()  # its statements' errors raised here, not after the savepoint
            except Exception:
                tx.execute("ROLLBACK TO SAVEPOINT inbound_batch")
                stored = {}
                for row in rows:
                    tx.execute("SAVEPOINT inbox_row")
                    try:
                        stored |= writes.store_rows(
                            tx,
                            [row],
                            targets_for,
                            now,
                            on_new_inbound,
                            self.announcements,
                            routing,
                            failed,
                        )
                        tx.confirm()
                    except Exception as exc:
                        tx.execute("ROLLBACK TO SAVEPOINT inbox_row")
                        tx.execute(
                            "UPDATE inbox SET status = 'failed', error = ?, processed_at = ?,"
                            " claimed_until = NULL WHERE id = ?",
                            (f"store error: {type(exc).__name__}: {exc}", now, row[0]),
                        )
                        stored[row[0]] = []
                    tx.execute("RELEASE SAVEPOINT inbox_row")
            tx.execute("RELEASE SAVEPOINT inbound_batch")
            return InboundRecorded(stored, writes.sends_queued_since(tx, mark))

        return await self.db.run(op)

    # --- users and identities (docs/users.md) ----------------------------------------
    async def create_user(self, user: users.NewUser, now: float) -> users.UserRecord:
        """Raises UserConflict when the owner has a user with this external_id."""
        return await self.db.run(lambda tx: users.create(tx, user, now))

    async def get_user(self, user_id: str) -> users.UserRecord | None:
        """The user, or the user it was merged into."""
        return await self.db.run(lambda tx: users.load(tx, user_id))

    async def update_user(
        self, user_id: str, changes: dict[str, Any], now: float
    ) -> users.UserRecord | None:
        """Set the fields in `changes` (None clears one); None when there is no such user."""

        def op(tx: Tx) -> users.UserRecord | None:
            user = users.load(tx, user_id)
            return users.update(tx, user, changes, now) if user is not None else None

        return await self.db.run(op)

    async def link_identity(
        self,
        user_id: str,
        channel_id: str,
        channel_type: str,
        provider_id: str,
        targets_for: TargetsFor,
        now: float,
    ) -> tuple[users.UserRecord, bool] | None:
        """(the user, whether the link is new); None when there is no such user. Raises
        UserConflict when another user holds the identity. Emits `identity.linked`."""

        def op(tx: Tx) -> tuple[users.UserRecord, bool] | None:
            user = users.load(tx, user_id)
            if user is None:
                return None
            new = users.link(
                tx, user, channel_id, channel_type, provider_id, "api", targets_for, now
            )
            if new:
                tx.execute("UPDATE users SET updated_at = ? WHERE id = ?", (now, user.id))
            linked = users.load(tx, user.id)
            assert linked is not None
            return linked, new

        return await self.db.run(op)

    async def unlink_identity(
        self, user_id: str, channel_id: str, provider_id: str, targets_for: TargetsFor, now: float
    ) -> users.UserRecord | None:
        """None when there is no such user; raises UserConflict when the identity is not
        theirs. Emits `identity.unlinked`."""

        def op(tx: Tx) -> users.UserRecord | None:
            user = users.load(tx, user_id)
            if user is None:
                return None
            users.unlink(tx, user, channel_id, provider_id, targets_for, now)
            return users.load(tx, user.id)

        return await self.db.run(op)

    async def merge_users(
        self, survivor_id: str, merged_id: str, targets_for: TargetsFor, now: float
    ) -> users.UserRecord | None:
        """Merge `merged_id` into `survivor_id` (see store/users.merge); None when either is
        unknown. Emits `user.merged`."""

        def op(tx: Tx) -> users.UserRecord | None:
            survivor, merged = users.load(tx, survivor_id), users.load(tx, merged_id)
            if survivor is None or merged is None:
                return None
            return users.merge(tx, survivor, merged, targets_for, now)

        return await self.db.run(op)

    async def user_messages(
        self, user_id: str, api_key: str | None, limit: int
    ) -> list[users.UserMessageRecord]:
        return await self.db.run(lambda tx: users.messages(tx, user_id, api_key, limit))

    # --- group conversations (docs/conversations.md) ----------------------------------
    async def create_conversation(
        self,
        conversation_id: str,
        owner: str,
        mode: str,
        metadata: str | None,
        participants: Sequence[conversations.SeatRequest],
        targets_for: TargetsFor,
        now: float,
        controller: str | None = None,
    ) -> conversations.ConversationRecord:
        """Raises ConversationConflict for a participant that cannot join (nothing is kept).
        Emits `conversation.created`. `controller`: the backend in control from the start."""
        return await self.db.run(
            lambda tx: conversations.create(
                tx,
                conversation_id,
                owner,
                mode,
                metadata,
                participants,
                targets_for,
                now,
                controller,
            )
        )

    async def get_conversation(
        self, conversation_id: str
    ) -> conversations.ConversationRecord | None:
        return await self.db.run(lambda tx: conversations.load(tx, conversation_id))

    async def _change_conversation(
        self,
        conversation_id: str,
        change: Callable[[Tx, conversations.ConversationRecord], object],
    ) -> conversations.ConversationRecord | None:
        """Apply `change` to the conversation and answer it as it is then; None when there is
        no such conversation."""

        def op(tx: Tx) -> conversations.ConversationRecord | None:
            found = conversations.load(tx, conversation_id, lock=True)
            if found is None:
                return None
            change(tx, found)
            return conversations.load(tx, conversation_id)

        return await self.db.run(op)

    async def add_participant(
        self,
        conversation_id: str,
        participant: conversations.SeatRequest,
        targets_for: TargetsFor,
        now: float,
    ) -> conversations.ConversationRecord | None:
        """The conversation with them; None when there is no such conversation. Raises
        ConversationConflict (closed, identity present already, unknown user). Emits
        `participant.joined`; a visible participant is announced to the others."""
        return await self._change_conversation(
            conversation_id,
            lambda tx, c: relay.join(tx, c, participant, targets_for, self.announcements, now),
        )

    async def remove_participant(
        self, conversation_id: str, participant_id: str, targets_for: TargetsFor, now: float
    ) -> conversations.ConversationRecord | None:
        """They receive nothing more from it. Emits `participant.left`; a visible participant's
        leaving is announced to the others."""
        return await self._change_conversation(
            conversation_id,
            lambda tx, c: relay.leave(tx, c, participant_id, targets_for, self.announcements, now),
        )

    async def change_control(
        self,
        conversation_id: str,
        action: str,
        backend: str | None,
        default: str | None,
        backends: Sequence[str],
        targets_for: TargetsFor,
        now: float,
    ) -> conversations.ConversationRecord | None:
        """`pass`, `take` or `release` control (docs/conversations.md); emits control.passed
        when it moves. None when there is no such conversation. Raises ConversationConflict."""
        return await self._change_conversation(
            conversation_id,
            lambda tx, c: control.change(
                tx, c, action, backend, default, backends, targets_for, now
            ),
        )

    async def close_conversation(
        self, conversation_id: str, targets_for: TargetsFor, now: float
    ) -> conversations.ConversationRecord | None:
        """Emits `conversation.closed` (once: closing it again changes nothing)."""
        return await self._change_conversation(
            conversation_id, lambda tx, c: conversations.close(tx, c, targets_for, now)
        )

    async def set_conversation_metadata(
        self, conversation_id: str, metadata: str | None
    ) -> conversations.ConversationRecord | None:
        """Replace its metadata (None clears it); None when there is no such conversation."""
        return await self._change_conversation(
            conversation_id, lambda tx, c: conversations.set_metadata(tx, c, metadata)
        )

    async def list_conversations(
        self, query: conversations.ConversationQuery, limit: int
    ) -> list[conversations.ConversationRecord]:
        """Newest first; see ConversationQuery for the filters."""
        return await self.db.run(lambda tx: conversations.page(tx, query, limit))

    async def post_to_conversation(
        self,
        conversation_id: str,
        content: Content,
        author_id: str | None,
        only: Sequence[str] | None,
        now: float,
    ) -> tuple[relay.ConversationMessageRecord, list[str]] | None:
        """(the conversation message with its copies, the channels they wait on); None when
        there is no such conversation. Raises ConversationConflict (closed, unknown
        participant, author or recipient not present)."""

        def op(tx: Tx) -> tuple[relay.ConversationMessageRecord, list[str]] | None:
            found = conversations.load(tx, conversation_id, lock=True)
            if found is None:
                return None
            return relay.post(tx, found, content, author_id, only, now, self.announcements)

        return await self.db.run(op)

    async def conversation_messages(
        self, conversation_id: str, before: int | None, limit: int
    ) -> list[relay.ConversationMessageRecord]:
        """Newest first, from before the message whose `seq` is `before` when given."""
        return await self.db.run(lambda tx: relay.history(tx, conversation_id, before, limit))

    # --- audiences and broadcasts (docs/broadcasts.md) --------------------------------
    async def create_audience(
        self,
        audience_id: str,
        owner: str,
        name: str | None,
        members: Sequence[broadcasts.MemberRef],
        now: float,
    ) -> broadcasts.Added:
        """Raises BroadcastConflict, creating nothing, for a user `owner` has not."""

        def op(tx: Tx) -> broadcasts.Added:
            broadcasts.create_audience(tx, audience_id, owner, name, False, now)
            return broadcasts.strictly(broadcasts.add_members(tx, audience_id, owner, members, now))

        return await self.db.run(op)

    async def get_audience(self, audience_id: str) -> broadcasts.AudienceRecord | None:
        return await self.db.run(lambda tx: broadcasts.get_audience(tx, audience_id))

    async def add_audience_members(
        self,
        audience_id: str,
        owner: str,
        members: Sequence[broadcasts.MemberRef],
        now: float,
        *,
        strict: bool = True,
    ) -> broadcasts.Added:
        """Members new to the audience are added, users only if `owner` created them: with
        `strict`, one that is not makes it add none (BroadcastConflict); else it is left out,
        and named in the answer (an import's rows)."""

        def op(tx: Tx) -> broadcasts.Added:
            added = broadcasts.add_members(tx, audience_id, owner, members, now)
            return broadcasts.strictly(added) if strict else added

        return await self.db.run(op)

    async def remove_audience_member(self, audience_id: str, member: broadcasts.MemberRef) -> bool:
        return await self.db.run(lambda tx: broadcasts.remove_member(tx, audience_id, member))

    async def audience_members(
        self, audience_id: str, after: int, limit: int
    ) -> list[broadcasts.AudienceMember]:
        """Members in the order added, after the one whose `seq` is `after`."""
        return await self.db.run(lambda tx: broadcasts.members(tx, audience_id, after, limit))

    async def create_broadcast(
        self,
        new: broadcasts.NewBroadcast,
        inline: Sequence[broadcasts.MemberRef] | None,
        now: float,
    ) -> int:
        """Accept a broadcast to `new.audience_id`, or to the `inline` members (kept as an
        audience of their own); the audience's size. Raises BroadcastConflict for an empty
        audience, or inline users the owner has not (field `members[i].user_id`)."""

        def op(tx: Tx) -> int:
            if inline is not None:
                broadcasts.create_audience(tx, new.audience_id, new.owner, None, True, now)
                broadcasts.strictly(
                    broadcasts.add_members(tx, new.audience_id, new.owner, inline, now)
                )
            return broadcasts.create_broadcast(tx, new, now)

        return await self.db.run(op)

    async def get_broadcast(self, broadcast_id: str) -> broadcasts.BroadcastRecord | None:
        return await self.db.run(lambda tx: broadcasts.get_broadcast(tx, broadcast_id))

    async def broadcast_outcomes(
        self, broadcast_id: str, after: int, limit: int
    ) -> list[broadcasts.MemberOutcome]:
        return await self.db.run(lambda tx: broadcasts.outcomes(tx, broadcast_id, after, limit))

    async def expand_broadcast(
        self, now: float, batch_size: int, channels: Mapping[str, ChannelRules]
    ) -> broadcasts.Expanded | None:
        """Queue the next batch of members of the oldest broadcast due (None: none is due)."""
        return await self.db.run(lambda tx: broadcasts.expand(tx, now, batch_size, channels))

    async def cancel_broadcast(self, broadcast_id: str, now: float) -> bool:
        cancelled = await self.db.run(lambda tx: broadcasts.cancel(tx, broadcast_id, now))
        if cancelled:
            self.bulk.cancelled(broadcast_id)  # its sends claimed here stop now too
        return cancelled

    async def may_send_bulk(self, message_id: str, outbox_id: int, now: float) -> bool:
        """Whether a claimed broadcast send may go now (not cancelled, not past its ttl)."""
        why = await self.db.run(
            lambda tx: broadcasts.why_not_send(tx, message_id, now), single_statement=True
        )
        if why is None:
            return True
        await self.db.run(lambda tx: broadcasts.withdraw(tx, outbox_id, why, now))
        return False

    async def finish_broadcasts(self, targets_for: TargetsFor, now: float) -> list[str]:
        return await self.db.run(lambda tx: broadcasts.finish(tx, targets_for, now))

    # --- outbound messages -----------------------------------------------------------
    async def create_message(
        self, message: NewMessage, now: float, route: routes.NewRoute | None = None
    ) -> tuple[str, str, bool]:
        """(id, state, created); an earlier message when the idempotency key was seen. A
        message to a user comes with its `route` (store/routes.py). Messages without one that
        meet in a group commit are stored together (store/accepts.py)."""
        if route is None:
            return await self.db.run(accepts.accept(message, now))

        def op(tx: Tx) -> tuple[str, str, bool]:
            accepted = accepts.ACCEPTING.one(tx, accepts.Accept(message, now))
            if accepted[2]:  # created, not an earlier message of the same key
                routes.record_choice(tx, message.id, route, now)
            return accepted

        return await self.db.run(op)

    async def get_message(
        self, message_id: str, *, created_by: str | None = None
    ) -> MessageRecord | None:
        """The message with this id; with `created_by`, only if that API key created it (a
        message of another client's is then as absent as one that never was)."""

        def op(tx: Tx) -> MessageRecord | None:
            return writes.messages(tx, [message_id], created_by).get(message_id)

        return await self.db.read(op)

    async def get_messages(self, message_ids: Sequence[str]) -> dict[str, MessageRecord]:
        """The messages with these ids (those that exist), in one operation: the dispatcher
        reads a whole claim's with three statements, not three a message."""
        if not message_ids:
            return {}
        return await self.db.read(lambda tx: writes.messages(tx, message_ids))

    async def record_sent(
        self,
        outbox_id: int,
        message_id: str,
        channel_id: str,
        external_ids: Sequence[str],
        detail: str | None,
        status_event: Event,
        targets_for: TargetsFor,
        now: float,
    ) -> list[Event]:
        """Mark a message sent; deliver the statuses held for it (store/held.py), which raced
        ahead of this commit. Returns the events queued for the backends."""

        def op(tx: Tx) -> list[Event]:
            writes.record_parts(tx, channel_id, message_id, external_ids)
            writes.finish_outbox(tx, [outbox_id], "done", now)
            emitted = []
            if writes.advance(tx, message_id, "sent", None, detail, now):
                writes.insert_event(tx, status_event, f"gw:{message_id}:sent", now)
                writes.enqueue_webhooks(tx, status_event, targets_for, now)
                emitted.append(status_event)
            emitted += held.resolve(tx, channel_id, external_ids, targets_for, now)
            return emitted

        return await self.db.run(op)

    async def record_sent_together(
        self, sends: Sequence[sent.SentSend], targets_for: TargetsFor, now: float
    ) -> list[Event]:
        """`record_sent` for several sends in one operation of a few statements (store/sent.py);
        all or none are recorded."""
        return await self.db.run(lambda tx: sent.record(tx, sends, targets_for, now))

    async def settle_held_statuses(
        self, cutoff: float, limit: int, targets_for: TargetsFor, now: float
    ) -> held.Settled:
        """Deliver held statuses whose message is recorded now, and those held since before
        `cutoff` that match no message of ours (without a message id). See store/held.py."""
        return await self.db.run(lambda tx: held.sweep(tx, cutoff, limit, targets_for, now))

    async def expire_route_questions(
        self, targets_for: TargetsFor, now: float, limit: int = 100
    ) -> int:
        """Route the messages held for questions unanswered in time (store/questions.py)."""
        return await self.db.run(
            lambda tx: questions.expire(tx, targets_for, now, limit, self.announcements)
        )

    async def record_send_failed(
        self,
        outbox_id: int,
        message_id: str,
        error: dict[str, Any],
        status_event: Event,
        targets_for: TargetsFor,
        now: float,
    ) -> str | None:
        """Mark a message failed; a message to a user fails over (store/routes.py): the
        channel its next send is queued on, if any."""

        def op(tx: Tx) -> str | None:
            writes.finish_outbox(tx, [outbox_id], "failed", now)
            if not writes.advance(
                tx, message_id, "failed", error, f"{error['code']}: {error['title']}", now
            ):
                return None
            writes.insert_event(tx, status_event, f"gw:{message_id}:failed", now)
            writes.enqueue_webhooks(tx, status_event, targets_for, now)
            return routes.after_status(tx, status_event, targets_for, now)

        return await self.db.run(op)

    # --- messages to users: delivery timeouts (store/routes.py) ------------------------
    async def overdue_deliveries(
        self, now: float, limit: int
    ) -> list[tuple[str, str, str, str, float]]:
        """Messages to users with no `delivered` by their due time:
        (id, state, channel, recipient, timeout seconds), the most overdue first."""
        return await self.db.run(lambda tx: routes.overdue(tx, now, limit), single_statement=True)

    async def next_delivery_due(self) -> float | None:
        """When the next `delivered` is due (None: none awaited)."""
        return await self.db.run(routes.next_due, single_statement=True)

    async def time_out_delivery(
        self,
        message_id: str,
        failed_event: Event,
        targets_for: TargetsFor,
        now: float,
    ) -> str | None:
        """Fail over a message to a user whose `delivered` is overdue; one still queued (a
        send the provider keeps refusing for a retry) fails with `failed_event` first, unless
        it is being sent right now (then it is looked at again later). The channel the next
        send is queued on, if any."""

        def op(tx: Tx) -> str | None:
            return routes.time_out(tx, message_id, failed_event, targets_for, now)

        return await self.db.run(op)

    async def record_send_retry(
        self,
        outbox_id: int,
        message_id: str,
        channel_id: str,
        accepted: Sequence[str],
        next_attempt_at: float,
        error: str,
        now: float,
    ) -> None:
        """Keep the parts the provider already accepted, and try the rest later. The
        recipient's later messages wait with it, so that none overtakes it, unless it is due
        more than KEEP_ORDER_SECONDS away (gateway/pipeline/recipient_order.py): in the same
        transaction, so no process sends one between."""

        def op(tx: Tx) -> None:
            writes.record_parts(tx, channel_id, message_id, accepted)
            tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?,"
                " claimed_until = NULL WHERE id = ?",
                (next_attempt_at, error, outbox_id),
            )
            if next_attempt_at <= now + writes.KEEP_ORDER_SECONDS:
                # Not rows claimed right now: their lease stands (else a second claim could
                # send one twice); the claimer's own hold puts them back (pipeline/recipient_order.py).
                tx.execute(
                    "UPDATE outbox SET next_attempt_at = ?"
                    " WHERE status = 'pending' AND id > ? AND next_attempt_at < ?"
                    " AND (claimed_until IS NULL OR claimed_until < ?) AND ref IN ("
                    " SELECT later.id FROM messages AS later JOIN messages AS this ON"
                    " later.channel_id = this.channel_id AND later.recipient_id = this.recipient_id"
                    " WHERE this.id = ? AND later.state = 'queued')",
                    (next_attempt_at, outbox_id, next_attempt_at, now, message_id),
                )
            writes.history(tx, message_id, now, "retrying", error)

        await self.db.run(op)

    # --- outbox ----------------------------------------------------------------------
    async def claim_outbox(
        self,
        kind: str,
        limit: int,
        now: float,
        lease: float,
        *,
        target: str | None = None,
        besides: Sequence[str] | None = None,
        one_at_a_time: bool = False,
        first_in_line: bool = False,
        bulk_window: int | None = None,
    ) -> list[OutboxItem]:
        """Due rows of `kind`, oldest first, leased for `lease` seconds: only `target`'s when
        given, only those of none of `besides` when given (targets no lane serves). With
        `one_at_a_time`, none while a claim of `target`'s is under way, in any process. With
        `first_in_line`, only the first row of each recipient's line (writes.FIRST_IN_LINE): the
        rest wait until it is done, whichever process claimed it. With `bulk_window` (a
        target's sends), normal rows come first and bulk rows fill what room is left, so that
        at most `bulk_window` of the target's bulk rows are claimed at once, by any process: a
        reply queued during a broadcast waits behind that many at most."""
        skip = self.db.dialect.skip_locked
        where, params = "", list[Any]([kind])
        if target is not None:
            where, params = " AND target = ?", [*params, target]
        if besides:
            where += " AND target NOT IN " + writes.in_list(besides)
            params += besides
        if first_in_line:
            where, params = where + writes.FIRST_IN_LINE, [*params, now + writes.KEEP_ORDER_SECONDS]

        def op(tx: Tx) -> list[OutboxItem]:
            if (
                one_at_a_time
                and target is not None
                and not writes.target_is_free(tx, kind, target, now)
            ):
                return []
            if bulk_window is None or target is None:
                rows = tx.all(
                    writes.claim_outbox_sql(where, skip), (*params, now, now, limit, now + lease)
                )
            else:
                normal = where + " AND o.priority = 0"
                rows = tx.all(
                    writes.claim_outbox_sql(normal, skip), (*params, now, now, limit, now + lease)
                )
                room = min(limit - len(rows), bulk_window - writes.bulk_in_hand(tx, target, now))
                if room > 0:
                    bulk = where + " AND o.priority > 0"
                    rows += tx.all(
                        writes.claim_outbox_sql(bulk, skip), (*params, now, now, room, now + lease)
                    )
            items = [
                OutboxItem(int(r[0]), r[1], r[2], r[3], int(r[4]), float(r[5]), None, int(r[6]))
                for r in rows
            ]
            if kind == "webhook" and items:
                refs = [i.ref for i in items]
                bodies = dict(
                    tx.all("SELECT id, body FROM events WHERE id IN " + writes.in_list(refs), refs)
                )
                items = [
                    OutboxItem(
                        i.id,
                        i.kind,
                        i.target,
                        i.ref,
                        i.attempts,
                        i.created_at,
                        bodies.get(i.ref),
                        i.priority,
                    )
                    for i in items
                ]
            # Bulk last: the rate limiter serves sends in the order they ask for a token.
            return sorted(items, key=lambda i: (i.priority, i.id))

        return await self.db.run(op, durable=False)  # a lost lease is claimed again

    async def defer_outbox(self, ids: Sequence[int], next_attempt_at: float) -> None:
        """Put claimed rows back until `next_attempt_at`, without counting an attempt."""
        await self.db.run(
            lambda tx: tx.execute(
                "UPDATE outbox SET next_attempt_at = ?, claimed_until = NULL"
                " WHERE status = 'pending' AND id IN " + writes.in_list(ids),
                (next_attempt_at, *ids),
            )
        )

    async def extend_outbox_lease(self, ids: Sequence[int], until: float) -> None:
        """Keep claimed rows, still being worked, claimed until `until`."""
        await self.db.run(lambda tx: writes.set_lease(tx, ids, until))

    async def release_outbox(self, ids: Sequence[int]) -> None:
        """Put claimed rows not yet done back in line, where they were, for the next claim."""
        await self.db.run(lambda tx: writes.set_lease(tx, ids, None))

    async def complete_outbox(self, ids: Sequence[int], now: float) -> None:
        await self.db.run(lambda tx: writes.finish_outbox(tx, ids, "done", now))

    async def hold_outbox(self, ids: Sequence[int], until: float, error: str) -> None:
        """Count a failed attempt of claimed rows whose target waits as a whole: they keep their
        place in line (ahead of the rows queued meanwhile) and stay claimed until `until`, so
        that no claim of their target starts before then, in this process or another."""
        await self.db.run(
            lambda tx: tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, claimed_until = ?"
                " WHERE status = 'pending' AND id IN " + writes.in_list(ids),
                (error, until, *ids),
            )
        )

    async def retry_outbox(
        self, ids: Sequence[int], next_attempt_at: float, error: str, dead: bool, now: float
    ) -> None:
        def op(tx: Tx) -> None:
            tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?,"
                " claimed_until = NULL, status = ?, done_at = ? WHERE id IN " + writes.in_list(ids),
                (
                    next_attempt_at,
                    error,
                    "dead" if dead else "pending",
                    now if dead else None,
                    *ids,
                ),
            )

        await self.db.run(op)

    async def dead_letters(
        self, target: str | None = None, limit: int = 100
    ) -> list[tuple[int, str, str, str | None]]:
        """Dead-lettered deliveries, oldest first: (outbox id, backend, event id, last error)."""
        where, params = ("", ()) if target is None else (" AND target = ?", (target,))
        return await self.db.run(
            lambda tx: [
                (int(r[0]), r[1], r[2], r[3])
                for r in tx.all(
                    "SELECT id, target, ref, last_error FROM outbox WHERE status = 'dead'"
                    + where
                    + " ORDER BY id LIMIT ?",
                    (*params, limit),
                )
            ]
        )

    async def replay_dead(
        self, now: float, target: str | None = None, ids: Sequence[int] = ()
    ) -> int:
        """Queue dead-lettered deliveries again (only `target`'s, or those `ids`, when given);
        how many."""
        where, params = _dead_filter(target, ids)
        return await self.db.run(
            lambda tx: tx.execute(
                "UPDATE outbox SET status = 'pending', next_attempt_at = ?, created_at = ?,"
                " claimed_until = NULL, done_at = NULL WHERE status = 'dead'" + where,
                (now, now, *params),
            )
        )

    async def discard_dead(self, ids: Sequence[int], now: float) -> int:
        """Give up on dead-lettered deliveries (the console's Discard): `discarded`, deleted by
        retention like finished ones; how many."""
        if not ids:
            return 0
        where, params = _dead_filter(None, ids)
        return await self.db.run(
            lambda tx: tx.execute(
                "UPDATE outbox SET status = 'discarded', done_at = ?, claimed_until = NULL"
                " WHERE status = 'dead'" + where,
                (now, *params),
            )
        )

    async def channel_facts(
        self, channel_ids: Sequence[str], since: float
    ) -> dict[str, tuple[float | None, str | None, float | None]]:
        """Per channel, for the console: when its provider last reached us (any webhook), and
        its last send error since `since` with when it was recorded."""

        def op(tx: Tx) -> dict[str, tuple[float | None, str | None, float | None]]:
            found: dict[str, tuple[float | None, str | None, float | None]] = {}
            for channel in channel_ids:
                inbound = tx.one(
                    "SELECT received_at FROM inbox WHERE channel_id = ? ORDER BY id DESC LIMIT 1",
                    (channel,),
                )
                failed = tx.one(
                    "SELECT error, updated_at FROM messages WHERE created_at > ?"
                    " AND channel_id = ? AND error IS NOT NULL ORDER BY updated_at DESC LIMIT 1",
                    (since, channel),
                )
                found[channel] = (
                    float(inbound[0]) if inbound else None,
                    failed[0] if failed else None,
                    float(failed[1]) if failed else None,
                )
            return found

        return await self.db.run(op)

    async def ping(self) -> None:
        """Raise unless the store answers a query."""
        await self.db.run(lambda tx: tx.one("SELECT 1"), single_statement=True)

    async def backlog(self, cap: int = BACKLOG_CAP) -> dict[str, dict[str, int]]:
        """Rows still waiting per queue (inbox, send, webhook) and status (pending; failed or
        dead), each counted through an index and up to `cap`: a scrape during a backlog of
        millions must not hold the store for the time it takes to count them."""

        def op(tx: Tx) -> dict[str, dict[str, int]]:
            inbox = "SELECT 1 FROM inbox WHERE status = ?"
            outbox = "SELECT 1 FROM outbox WHERE kind = ? AND status = ?"
            return {
                "inbox": {s: _count(tx, inbox, (s,), cap) for s in ("pending", "failed")},
                **{
                    kind: {s: _count(tx, outbox, (kind, s), cap) for s in ("pending", "dead")}
                    for kind in ("send", "webhook")
                },
            }

        return await self.db.run(op)

    async def pending_by_target(
        self, targets: Mapping[str, Sequence[str]], cap: int = BACKLOG_CAP
    ) -> dict[tuple[str, str], int]:
        """Pending outbox rows per (kind, target) of `targets` (kind → targets), each counted
        through an index and up to `cap`, like `backlog`: which lane is falling behind."""
        outbox = "SELECT 1 FROM outbox WHERE kind = ? AND status = 'pending' AND target = ?"

        def op(tx: Tx) -> dict[tuple[str, str], int]:
            return {
                (kind, target): _count(tx, outbox, (kind, target), cap)
                for kind, names in targets.items()
                for target in names
            }

        return await self.db.run(op)

    # --- retention -------------------------------------------------------------------
    async def prune(self, table: str, cutoff: float, limit: int) -> int:
        """Delete up to `limit` of `table`'s rows that retention lets go of from before
        `cutoff` (see store/pruning.py), oldest first; how many went."""
        prune = pruning.PRUNERS[table]
        return await self.db.run(lambda tx: prune(tx, cutoff, limit))

    async def record_plans_together(self, plans: Sequence[store_plans.Plan], now: float) -> None:
        """`record_plan` for several first sends in one operation (store/plans.py)."""
        await self.db.run(lambda tx: store_plans.record(tx, plans, now))

    async def record_plan(
        self,
        message_id: str,
        channel_id: str,
        recipient_id: str,
        downgrades: Sequence[str],
        choices: Sequence[Choice],
        expires_at: float,
        now: float,
        *,
        once: bool = False,
    ) -> None:
        """Write what the engine changed into the history; remember numbered choices. With
        `once`, a downgrade the history holds already is not written again."""

        def op(tx: Tx) -> None:
            known: set[str] = set()
            if once:
                rows = tx.all(
                    "SELECT detail FROM message_history WHERE message_id = ?"
                    " AND state = 'downgraded'",
                    (message_id,),
                )
                known = {row[0] for row in rows}
            for downgrade in downgrades:
                if downgrade not in known:
                    writes.history(tx, message_id, now, "downgraded", downgrade)
            if choices:
                data = json.dumps([c._asdict() for c in choices])
                tx.execute(
                    "INSERT INTO reply_choices (channel_id, user_id, message_id, choices, expires_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (channel_id, user_id) DO UPDATE SET"
                    " message_id = excluded.message_id, choices = excluded.choices,"
                    " expires_at = excluded.expires_at",
                    (channel_id, recipient_id, message_id, data, expires_at),
                )

        await self.db.run(op)

    async def start_form(
        self,
        channel_id: str,
        user_id: str,
        message_id: str,
        form_json: str,
        ttl: float,
        now: float,
    ) -> None:
        await self.db.run(
            lambda tx: form_sessions.start_session(
                tx, channel_id, user_id, message_id, form_json, ttl, now
            )
        )

    async def get_contact(self, channel_id: str, user_id: str) -> ContactState:
        """The recipient's state; reads that meet in a group commit share a statement."""
        return await self.db.read(contacts.read(channel_id, user_id))

    async def consume_reply_token(self, channel_id: str, user_id: str, token: str) -> None:
        """Reply tokens are single-use: forget this one before it is spent."""
        await self.db.run(
            lambda tx: tx.execute(
                "UPDATE contacts SET reply_token = NULL, reply_token_at = NULL"
                " WHERE channel_id = ? AND user_id = ? AND reply_token = ?",
                (channel_id, user_id, token),
            )
        )

    async def set_unsubscribed(
        self, channel_id: str, user_id: str, reason: str | None, now: float
    ) -> None:
        """Remember that a recipient opted out (reason) or back in (None)."""
        await self.db.run(lambda tx: writes.set_subscription(tx, channel_id, user_id, reason, now))


def _unsupported_reason(body: str) -> str | None:
    """'<provider type>: <reason>' of a stored `unsupported` event."""
    found = json.loads(body).get("unsupported") or {}
    kind, reason = found.get("provider_type"), found.get("reason")
    return f"{kind}: {reason}" if kind else reason


def _count(tx: Tx, sql: str, params: tuple[str, ...], cap: int) -> int:
    """How many rows `sql` selects, up to `cap`."""
    capped = f"SELECT COUNT(*) FROM ({sql} LIMIT ?) AS capped"
    return int(tx.one(capped, (*params, cap))[0])


def _dead_filter(target: str | None, ids: Sequence[int]) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause's end (and its parameters) picking dead letters by target and ids."""
    where, params = "", cast(tuple[Any, ...], ())
    if target is not None:
        where, params = " AND target = ?", (target,)
    if ids:
        where += " AND id IN " + writes.in_list(ids)
        params = (*params, *ids)
    return where, params
