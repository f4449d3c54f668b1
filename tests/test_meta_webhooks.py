"""WhatsApp and Messenger share Graph's webhook front door (adapters/meta_graph.py): each runs the
same signature and handshake tables (tests/meta_cases.py) against its own adapter, app secret
and verify token, over its own fixture."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from adapters.base import InboundRequest
from adapters.meta_graph import GraphAdapter
from tests import test_messenger_cases as messenger
from tests import test_whatsapp_cases as whatsapp
from tests.meta_cases import CHALLENGE, handshake_cases, signature_cases

FIXTURES = Path(__file__).parent / "fixtures"
# channel: (adapter factory, app secret, verify token, a signed webhook body)
CHANNELS: dict[str, tuple[Callable[[], GraphAdapter], str, str, bytes]] = {
    "whatsapp": (
        whatsapp.make_adapter,
        whatsapp.APP_SECRET,
        whatsapp.VERIFY_TOKEN,
        (FIXTURES / "whatsapp" / "text.json").read_bytes(),
    ),
    "messenger": (
        messenger.make_adapter,
        messenger.APP_SECRET,
        messenger.VERIFY_TOKEN,
        (FIXTURES / "messenger" / "text.json").read_bytes(),
    ),
}
SIGNATURES = {
    f"{channel}-{case}": (channel, headers, valid)
    for channel, (_make, secret, _token, raw) in CHANNELS.items()
    for case, (headers, valid) in signature_cases(secret, raw).items()
}
HANDSHAKES = {
    f"{channel}-{case}": (channel, query, status)
    for channel, (_make, _secret, token, _raw) in CHANNELS.items()
    for case, (query, status) in handshake_cases(token).items()
}


@pytest.mark.parametrize(("channel", "headers", "valid"), SIGNATURES.values(), ids=SIGNATURES)
def test_verify(channel: str, headers: dict[str, str], valid: bool) -> None:
    make_adapter, _secret, _token, raw = CHANNELS[channel]
    url = f"https://gw.example/webhooks/{channel}"
    assert make_adapter().verify(InboundRequest("POST", url, headers, raw)) is valid


@pytest.mark.parametrize(("channel", "query", "status"), HANDSHAKES.values(), ids=HANDSHAKES)
def test_handshake(channel: str, query: dict[str, str], status: int) -> None:
    reply = CHANNELS[channel][0]().handshake(query)
    assert reply.status == status
    if status == 200:
        assert reply.body == CHALLENGE  # the bare challenge, echoed
