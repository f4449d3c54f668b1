"""Backend webhooks signed the Standard Webhooks way: a receiver verifies them with the spec's own
library (`standardwebhooks`) and the key docs/webhooks.md tells it to pass, and refuses a
delivery replayed outside the library's 5-minute tolerance."""

from __future__ import annotations

import base64
import re
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import standardwebhooks.webhooks as standard
from pydantic import ValidationError
from standardwebhooks import Webhook, WebhookVerificationError

from gateway.config import BackendConfig, DeliveryConfig
from gateway.outbound.http_client import new_client
from gateway.pipeline.delivery import Failure, WebhookDelivery
from gateway.signing import receiver_secret, sign
from gateway.simulator.backend import BackendRecorder
from gateway.store import OutboxItem

BACKEND_URL = "http://backend.test/events"
PLAIN = "orders-backend-secret-0123"
SPEC = "whsec_" + base64.b64encode(b"\x00\x01 spec-style key bytes \xfe\xff").decode()


class _Store:
    async def complete_outbox(self, ids: list[int], now: float) -> None:
        pass


async def deliver(secret: str) -> httpx.Request:
    """One batch of two events posted by the gateway's delivery worker; the request it made."""
    route = respx.post(BACKEND_URL).mock(return_value=httpx.Response(200))
    backend = BackendConfig(id="orders", url=BACKEND_URL, secret=secret)  # type: ignore[arg-type]
    items = [
        OutboxItem(n, "webhook", "orders", f"evt_{n}", 0, time.time(), f'{{"id":"evt_{n}"}}')
        for n in (1, 2)
    ]
    async with httpx.AsyncClient() as client:
        worker = WebhookDelivery(_Store(), [backend], client, DeliveryConfig())  # type: ignore[arg-type]
        assert await worker.work("orders", items) == 0.0
    return route.calls.last.request


def later(monkeypatch: pytest.MonkeyPatch, minutes: float) -> None:
    """The receiver's clock, `minutes` on from now (the library reads datetime.now)."""
    shift = timedelta(minutes=minutes)

    class Shifted(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return datetime.now(tz) + shift

    monkeypatch.setattr(standard, "datetime", Shifted)


@pytest.mark.parametrize("secret", [PLAIN, SPEC], ids=["plain_secret", "whsec_secret"])
@respx.mock
async def test_the_standard_webhooks_library_verifies_a_delivery(secret: str) -> None:
    request = await deliver(secret)
    payload = Webhook(receiver_secret(secret)).verify(request.content, dict(request.headers))
    assert [e["id"] for e in payload["events"]] == ["evt_1", "evt_2"]
    # The first scheme is still there, unchanged, for receivers written against it.
    assert request.headers["X-Gateway-Signature"] == sign(secret, request.content)


@respx.mock
async def test_a_plain_secret_is_the_key_as_utf8_bytes_and_whsec_is_passed_as_is() -> None:
    request = await deliver(PLAIN)
    Webhook(PLAIN.encode()).verify(request.content, dict(request.headers))
    assert receiver_secret(SPEC) == SPEC
    with pytest.raises(WebhookVerificationError):  # the secret itself is not base64 of the key
        Webhook("whsec_" + base64.b64encode(b"another key").decode()).verify(
            request.content, dict(request.headers)
        )


@respx.mock
async def test_a_delivery_replayed_outside_the_tolerance_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    request = await deliver(PLAIN)
    receiver = Webhook(receiver_secret(PLAIN))
    headers = dict(request.headers)
    later(monkeypatch, 4)  # late but inside 5 minutes: a slow network, still taken
    receiver.verify(request.content, headers)
    later(monkeypatch, 6)  # the same bytes and headers, six minutes on: a replay
    with pytest.raises(WebhookVerificationError, match="too old"):
        receiver.verify(request.content, headers)
    # Nor can the replayer stamp it afresh: the timestamp is signed.
    fresh = {**headers, "webhook-timestamp": str(int(time.time()) + 360)}
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        receiver.verify(request.content, fresh)


@respx.mock
async def test_the_same_batch_posted_again_keeps_its_webhook_id() -> None:
    first, again = await deliver(PLAIN), await deliver(PLAIN)
    assert first.headers["webhook-id"] == again.headers["webhook-id"]
    assert first.headers["X-Gateway-Delivery"] != again.headers["X-Gateway-Delivery"]


@respx.mock
async def test_the_simulated_backend_refuses_a_replay_outside_the_tolerance() -> None:
    request = await deliver(PLAIN)
    recorder = BackendRecorder(PLAIN)
    assert recorder.signed(request.headers, request.content)
    stale = {**request.headers, "webhook-timestamp": str(int(time.time()) - 301)}
    assert not recorder.signed(stale, request.content)


async def test_the_gateways_own_client_posts_signed_batches_past_httpxs_objects() -> None:
    """Through `new_client()` a delivery takes the direct path (http_client.py): a real backend
    gets the batch with both signatures and the delivery id; a 503 and a refused connection
    are failures, as through httpx."""
    recorder = BackendRecorder(PLAIN)
    await recorder.start()
    client = new_client()
    try:
        backend = BackendConfig(id="orders", url=recorder.url, secret=PLAIN)  # type: ignore[arg-type]
        worker = WebhookDelivery(_Store(), [backend], client, DeliveryConfig())  # type: ignore[arg-type]
        assert worker._direct is not None
        items = [
            OutboxItem(n, "webhook", "orders", f"evt_{n}", 0, time.time(), f'{{"id":"evt_{n}"}}')
            for n in (1, 2)
        ]
        assert await worker._post(backend, items) is None
        assert [e["id"] for e in recorder.events] == ["evt_1", "evt_2"]
        assert recorder.deliveries[0].startswith("dlv_") and recorder.rejected == 0
        recorder.available = False
        assert await worker._post(backend, items) == Failure("HTTP 503", None, 503)
        refused = BackendConfig(id="orders", url="http://127.0.0.1:9/events", secret=PLAIN)  # type: ignore[arg-type]
        failure = await worker._post(refused, items)
        assert failure is not None and failure.error.startswith("ConnectError")
    finally:
        await recorder.stop()
        await client.aclose()


def test_a_whsec_secret_that_is_not_base64_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match="whsec_ must go on in base64"):
        BackendConfig(id="orders", url=BACKEND_URL, secret="whsec_not*base64!")  # type: ignore[arg-type]


def doc_example() -> dict[str, Any]:
    """The Python example of docs/webhooks.md, run as a backend would run it."""
    text = (Path(__file__).parent.parent / "docs" / "webhooks.md").read_text()
    [block] = re.findall(r"```python\n(.*?)```", text, re.S)
    namespace: dict[str, Any] = {}
    exec(compile(block, "docs/webhooks.md", "exec"), namespace)
    return namespace


@pytest.mark.parametrize("secret", [PLAIN, SPEC], ids=["plain_secret", "whsec_secret"])
@respx.mock
async def test_the_documented_example_verifies_and_refuses_a_replay(
    secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERS_WEBHOOK_SECRET", secret)
    example = doc_example()
    request = await deliver(secret)
    events = example["events_of"](request.content, dict(request.headers))
    assert [e["id"] for e in events] == ["evt_1", "evt_2"]
    later(monkeypatch, 6)
    with pytest.raises(WebhookVerificationError):
        example["events_of"](request.content, dict(request.headers))
