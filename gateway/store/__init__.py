"""Durable state behind one contract (`Store`), on SQLite (default) or PostgreSQL."""

from __future__ import annotations

from gateway.store.broadcasts import (
    AudienceMember,
    AudienceRecord,
    BroadcastConflict,
    BroadcastRecord,
    MemberOutcome,
    MemberRef,
    NewBroadcast,
)
from gateway.store.conversations import (
    ConversationConflict,
    ConversationQuery,
    ConversationRecord,
    ParticipantRecord,
    SeatRequest,
)
from gateway.store.database import Database, ThreadedDatabase
from gateway.store.postgres import CONNECTIONS, postgres_database
from gateway.store.records import (
    ContactState,
    IdempotencyConflict,
    InboxRow,
    MessageRecord,
    NewMessage,
    OutboxItem,
    StoreUnavailable,
    is_store_error,
)
from gateway.store.relay import ConversationMessageRecord
from gateway.store.sqlite import sqlite_database
from gateway.store.store import Store
from gateway.store.users import (
    IdentityRecord,
    NewUser,
    UserConflict,
    UserMessageRecord,
    UserRecord,
)

__all__ = [
    "AudienceMember",
    "AudienceRecord",
    "BroadcastConflict",
    "BroadcastRecord",
    "ContactState",
    "ConversationConflict",
    "ConversationMessageRecord",
    "ConversationQuery",
    "ConversationRecord",
    "Database",
    "IdempotencyConflict",
    "IdentityRecord",
    "InboxRow",
    "MemberOutcome",
    "MemberRef",
    "MessageRecord",
    "NewBroadcast",
    "NewMessage",
    "NewUser",
    "OutboxItem",
    "ParticipantRecord",
    "SeatRequest",
    "Store",
    "StoreUnavailable",
    "ThreadedDatabase",
    "UserConflict",
    "UserMessageRecord",
    "UserRecord",
    "is_store_error",
    "open_store",
    "postgres_database",
    "sqlite_database",
]


def open_store(
    backend: str,
    *,
    path: str = "gateway.db",
    dsn: str | None = None,
    synchronous: str = "full",
    connections: int = CONNECTIONS,
) -> Store:
    if backend == "postgres":
        if not dsn:
            raise ValueError("postgres store needs a dsn")
        return Store(postgres_database(dsn, connections))
    return Store(sqlite_database(path, "normal" if synchronous == "normal" else "full"))
