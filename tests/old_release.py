"""A store as release 8758e22 (the last before versioned migrations) left it: its DDL, from
tests/fixtures/store/release-8758e22.sql, and a few rows of each kind it wrote.

The rows are finished work (requests processed, messages delivered, deliveries done) on a
channel of their own, so the contract tests run beside them without claiming them.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from gateway.store.schema import statements

FIXTURES = Path(__file__).parent / "fixtures" / "store"
RELEASE = "8758e22"
CHANNEL = "old-wa"
MESSAGE_ID = "msg_old_release_1"
CONTACT = "16505550000"
AT = 1_765_000_000.0  # a time the old release ran at

# Table → rows, each a dict of the old release's columns.
ROWS: dict[str, list[dict[str, Any]]] = {
    "inbox": [
        {
            "channel_id": CHANNEL,
            "dedupe_key": "wamid.OLD1",
            "received_at": AT,
            "url": "https://gateway.example.com/webhooks/old-wa",
            "headers": "{}",
            "body": b'{"object":"whatsapp_business_account","entry":[]}',
            "status": "done",
            "attempts": 1,
            "processed_at": AT + 1,
        }
    ],
    "events": [
        {
            "id": "evt_old_release_1",
            "channel_id": CHANNEL,
            "dedupe_key": "wamid.OLD1",
            "type": "message",
            "external_id": "wamid.OLD1",
            "raw_id": 1,
            "created_at": AT,
            "body": json.dumps(
                {
                    "id": "evt_old_release_1",
                    "type": "message",
                    "channel": {"id": CHANNEL, "type": "whatsapp"},
                    "external_id": "wamid.OLD1",
                    "timestamp": "2025-12-06T05:46:40Z",
                    "raw_id": 1,
                    "sender": {"id": CONTACT, "name": "Old Contact"},
                    "message": {"content": {"type": "text", "text": "hello"}},
                }
            ),
        }
    ],
    "contacts": [
        {
            "channel_id": CHANNEL,
            "user_id": CONTACT,
            "name": "Old Contact",
            "phone": CONTACT,
            "conversation_id": "conv_old_1",
            "last_inbound_at": AT,
            "unsubscribed_at": AT + 5,
            "unsubscribe_reason": "STOP",
            "created_at": AT,
        }
    ],
    "messages": [
        {
            "id": MESSAGE_ID,
            "channel_id": CHANNEL,
            "recipient_id": CONTACT,
            "conversation_id": "conv_old_1",
            "content": '{"type":"text","text":"hello"}',
            "options": None,
            "state": "delivered",
            "api_key": "orders",
            "idempotency_key": "old-1",
            "request_hash": "0" * 64,
            "created_at": AT,
            "updated_at": AT + 2,
        }
    ],
    "message_parts": [
        {
            "channel_id": CHANNEL,
            "external_id": "wamid.SENT1",
            "message_id": MESSAGE_ID,
            "position": 0,
        }
    ],
    "message_history": [
        {"message_id": MESSAGE_ID, "at": AT, "state": "queued"},
        {"message_id": MESSAGE_ID, "at": AT + 2, "state": "delivered"},
    ],
    "reply_choices": [
        {
            "channel_id": CHANNEL,
            "user_id": CONTACT,
            "message_id": MESSAGE_ID,
            "choices": '[["yes","Yes"]]',
            "expires_at": AT + 3600,
        }
    ],
    "form_sessions": [
        {
            "channel_id": CHANNEL,
            "user_id": CONTACT,
            "message_id": MESSAGE_ID,
            "form": '{"fields":[]}',
            "position": 0,
            "answers": "{}",
            "ttl": 600.0,
            "expires_at": AT + 600,
        }
    ],
    "outbox": [
        {
            "kind": "send",
            "target": CHANNEL,
            "ref": MESSAGE_ID,
            "status": "done",
            "attempts": 1,
            "next_attempt_at": AT,
            "created_at": AT,
            "done_at": AT + 1,
            "recipient": CONTACT,
        }
    ],
}


# What the old release filled its DDL templates with (its SQLITE_DDL, POSTGRES_DDL and
# *_LATE_DDL).
OLD_TYPES = {
    "sqlite": {
        "serial": "INTEGER",
        "real": "REAL",
        "blob": "BLOB",
        "line_columns": "kind, status, ",
    },
    "postgres": {
        "serial": "BIGSERIAL",
        "real": "DOUBLE PRECISION",
        "blob": "BYTEA",
        "line_columns": "",
    },
}


def old_statements(dialect: str) -> list[str]:
    template = (FIXTURES / f"release-{RELEASE}.sql").read_text()
    # Comments out: the header names the placeholders, which format() would try to fill.
    body = "\n".join(line for line in template.splitlines() if not line.startswith("--"))
    return statements(body.format(**OLD_TYPES[dialect]))


def _inserts(mark: str) -> list[tuple[str, tuple[Any, ...]]]:
    return [
        (
            f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join([mark] * len(row))})",
            tuple(row.values()),
        )
        for table, rows in ROWS.items()
        for row in rows
    ]


def build_sqlite(path: Path) -> None:
    """An SQLite file as the old release created and used it."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        for statement in old_statements("sqlite"):
            conn.execute(statement)
        for sql, params in _inserts("?"):
            conn.execute(sql, params)
    finally:
        conn.close()


def build_postgres(dsn: str) -> None:
    """The old release's tables and rows in the database (and schema) `dsn` names."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in old_statements("postgres"):
            conn.execute(statement)
        for sql, params in _inserts("%s"):
            conn.execute(sql, params)
