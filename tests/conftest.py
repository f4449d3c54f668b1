"""Shared test harness: configs, a running gateway on loopback, signing helpers, databases."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from hypothesis import HealthCheck, settings

from gateway.app import Gateway, secrets_of
from gateway.config import GatewayConfig, parse_config
from gateway.logs import configure_logging
from gateway.simulator.backend import BackendRecorder
from gateway.store import Store, postgres_database, sqlite_database
from tests.webhook_receiver import WebhookReceiver

API_KEY = "test-api-key-0123456789"
BACKEND_SECRET = "backend-secret-abcdef"
WA = {
    "phone_number_id": "106540352242922",
    "display_phone_number": "15550783881",
    "access_token": "wa-access-token-xyz123",
    "app_secret": "wa-app-secret-456789",
    "verify_token": "wa-verify-token-42",
}
PG_DSN = os.environ.get("GATEWAY_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")

# Property tests measure correctness, not speed. Hypothesis's defaults measure speed too: an
# example that took over 200 ms (preempted on a loaded machine) fails with DeadlineExceeded,
# or, when its replay is quick, as "Flaky"; slow data generation fails the too_slow health
# check. Neither says anything about the code. The examples stay random; a failure prints the
# blob that replays it (@reproduce_failure).
settings.register_profile(
    "gateway", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("gateway")


# How long a test waits for a process it starts (`gateway serve`, `demo`, `simulate`, a
# flooder) to be up: a second or two, many more on a loaded machine. A process that exits
# ends the wait at once; one that never comes up fails the test past this.
STARTUP_SECONDS = 90.0


def webhook(wamid: str, text: str = "hello", sender: str = "16505551234") -> bytes:
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": WA["display_phone_number"],
                                "phone_number_id": WA["phone_number_id"],
                            },
                            "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": sender}],
                            "messages": [
                                {
                                    "from": sender,
                                    "id": wamid,
                                    "timestamp": "1749416383",
                                    "type": "text",
                                    "text": {"body": text},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    return json.dumps(payload).encode()


def hub_sign(body: bytes, secret: str = WA["app_secret"]) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def post_whatsapp(url: str, body: bytes, channel_id: str = "wa-main") -> httpx.Response:
    """POST `body` to a running gateway's WhatsApp webhook, signed with the test app secret."""
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": hub_sign(body)}
    async with httpx.AsyncClient() as client:
        return await client.post(f"{url}/webhooks/{channel_id}", content=body, headers=headers)


def base_config(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "public_url": "https://gateway.example.com",
        "storage": {"path": str(tmp_path / "gateway.db")},
        "api_keys": [{"name": "orders", "key": API_KEY}],
        "backends": [],
        "channels": [
            {
                "id": "wa-main",
                "type": "whatsapp",
                "api_base_url": "http://127.0.0.1:9/v21.0",
                **{k: v for k, v in WA.items() if k != "display_phone_number"},
            }
        ],
        "delivery": {
            "base_backoff_seconds": 0.05,
            "max_backoff_seconds": 0.2,
            "poll_interval_seconds": 0.1,
        },
        "logging": {"level": "debug"},
        # Fixtures carry the providers' documented sample dates (2016): the acceptance window
        # would refuse them all as replays. tests/test_replays.py sets it.
        "ingress": {"acceptance_window_seconds": None},
    }
    data.update(overrides)
    return data


def postgres_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def require_postgres() -> None:
    """Skip (with the reason printed by -ra) when no server; CI sets GATEWAY_REQUIRE_POSTGRES=1."""
    if postgres_reachable():
        return
    if os.environ.get("GATEWAY_REQUIRE_POSTGRES"):
        pytest.fail(
            "GATEWAY_REQUIRE_POSTGRES is set but PostgreSQL is not reachable on 127.0.0.1:5432"
        )
    pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")


# --- stores: every test that takes `store` runs on SQLite and on PostgreSQL -------------
@pytest.fixture
def pg_schema() -> Iterator[str]:
    require_postgres()
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"{PG_DSN}?options=-csearch_path%3D{schema}"
    # A gateway on this schema may still be running: fixtures end in reverse order, so a schema
    # a test asks for in its body (request.getfixturevalue) is dropped before the gateways it
    # started earlier stop. The DROP then can deadlock with their writes (seen in the server's
    # log: DROP SCHEMA against an INSERT INTO events), and PostgreSQL aborts one of the two;
    # when it is the DROP, trying again is safe.
    for attempt in range(10):
        try:
            with psycopg.connect(PG_DSN, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")
            return
        except psycopg.errors.DeadlockDetected:
            if attempt == 9:
                raise


STORES = ["sqlite", "postgres"]
# The store contract (tests/test_store_contract*.py) also runs on a store the previous release
# made, then upgraded (tests/old_release.py): what an operator's upgrade leaves must pass it.
UPGRADED_TOO = [*STORES, "sqlite-upgraded", "postgres-upgraded"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The upgraded stores only for the store contract: elsewhere they would add time, not news."""
    elsewhere = [
        item
        for item in items
        if getattr(item, "callspec", None) is not None
        and item.callspec.params.get("make_store", "").endswith("-upgraded")  # type: ignore[attr-defined]
        and not item.path.name.startswith("test_store_contract")
    ]
    if elsewhere:
        config.hook.pytest_deselected(items=elsewhere)
        dropped = set(map(id, elsewhere))
        items[:] = [item for item in items if id(item) not in dropped]


@pytest.fixture(params=UPGRADED_TOO)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    from tests import old_release

    made: list[Store] = []
    kind: str = request.param
    dsn = request.getfixturevalue("pg_schema") if kind.startswith("postgres") else None
    if kind == "sqlite-upgraded":
        old_release.build_sqlite(tmp_path / "store.db")
    elif kind == "postgres-upgraded":
        assert dsn is not None
        old_release.build_postgres(dsn)

    def make() -> Store:
        db = postgres_database(dsn) if dsn else sqlite_database(tmp_path / "store.db")
        store = Store(db)
        store.start()
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
async def store(make_store: Callable[[], Store]) -> AsyncIterator[Store]:
    yield make_store()


@pytest.fixture
def log_stream() -> io.StringIO:
    return io.StringIO()


class RunningGateway:
    def __init__(self, gateway: Gateway, url: str, logs: io.StringIO) -> None:
        self.gateway = gateway
        self.url = url
        self.logs = logs

    @property
    def store(self) -> Any:
        return self.gateway.store

    def secrets(self) -> list[str]:
        return secrets_of(self.gateway.config, self.gateway.adapters)


@pytest.fixture
async def start_gateway(log_stream: io.StringIO) -> AsyncIterator[Callable[[GatewayConfig], Any]]:
    runners: list[web.AppRunner] = []

    async def start(config: GatewayConfig, **options: Any) -> RunningGateway:
        gateway = Gateway(config, **options)
        configure_logging("debug", "json", secrets_of(config, gateway.adapters), stream=log_stream)
        runner = web.AppRunner(gateway.application(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return RunningGateway(gateway, f"http://127.0.0.1:{runner.addresses[0][1]}", log_stream)

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def backend() -> AsyncIterator[BackendRecorder]:
    recorder = BackendRecorder(BACKEND_SECRET)
    await recorder.start()
    yield recorder
    await recorder.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    """The webhook endpoint a provider simulator under test posts to."""
    endpoint = WebhookReceiver()
    await endpoint.start()
    yield endpoint
    await endpoint.stop()


def with_backend(data: dict[str, Any], backend: BackendRecorder) -> dict[str, Any]:
    data["backends"] = [{"id": "orders", "url": backend.url, "secret": BACKEND_SECRET}]
    return data


def config_from(data: dict[str, Any]) -> GatewayConfig:
    return parse_config(data, "test")


def assert_no_secrets(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text, "a secret reached the logs"


async def eventually(condition: Callable[[], object], timeout: float = 30.0) -> None:
    """Wait until `condition()` is true: returns as soon as it is, so the timeout only bounds
    a test that would fail anyway, and can be generous enough for a loaded CI machine."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def inbox_settled(gateway: RunningGateway, timeout: float = 10.0) -> None:
    """Wait until the normaliser has handled every stored request."""
    async with asyncio.timeout(timeout):
        while True:
            row = await gateway.store.db.run(
                lambda tx: tx.one("SELECT COUNT(*) FROM inbox WHERE status = 'pending'")
            )
            if row[0] == 0:
                return
            await asyncio.sleep(0.02)
