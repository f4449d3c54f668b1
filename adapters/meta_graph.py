"""What WhatsApp Cloud API and Messenger share: Graph webhooks' handshake, their signature,
and one app callback for every number or Page the app serves.

https://developers.facebook.com/docs/graph-api/webhooks/getting-started
"""

from __future__ import annotations

import abc
import functools
import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import SecretStr

from adapters.base import (
    Adapter,
    ChannelConfig,
    InboundRequest,
    PayloadError,
    Reply,
    epoch_millis,
    epoch_seconds,
    signatures_match,
)
from gateway.schema import ChannelRef

SIGNATURE_HEADER = "X-Hub-Signature-256"

# Meta's webhooks give Unix times in milliseconds (messaging_referrals, message_reads'
# `watermark`: https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events/messaging_referrals)
# but also in seconds, often as a string (messaging_postbacks' example "1527459824":
# .../webhook-events/messaging_postbacks; referrals in seconds were seen in production).
# 10**11 tells them apart: in seconds it is the year 5138, in milliseconds March 1973, long
# before Meta sent any webhook, so no real time reads as both.
MILLIS_FROM = 10**11


def meta_time(value: Any) -> datetime:
    """A Meta webhook time given in seconds or milliseconds, as a number or a string of one."""
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise PayloadError(f"bad timestamp {value!r}") from exc
    return epoch_millis(number) if abs(number) >= MILLIS_FROM else epoch_seconds(number)


def meta_seconds(number: float) -> float:
    """A Meta time in seconds or milliseconds (told apart as `meta_time` does), in seconds."""
    return number / 1000 if abs(number) >= MILLIS_FROM else number


def hub_handshake(query: Mapping[str, str], verify_token: str) -> Reply:
    """Echo `hub.challenge` when Meta subscribes with our verify token; 403 otherwise."""
    token = query.get("hub.verify_token", "")
    if query.get("hub.mode") == "subscribe" and hmac.compare_digest(
        token.encode(), verify_token.encode()
    ):
        return Reply(200, query.get("hub.challenge", ""))
    return Reply(403, "verify token mismatch")


def hub_signature(app_secret: str, body: bytes) -> str:
    """`X-Hub-Signature-256` of `body`: HMAC-SHA256 with the app secret, as `sha256=<hex>`."""
    return HubSigner(app_secret).signature(body)


class HubSigner:
    """HMAC-SHA256 keyed once: copying a keyed HMAC skips hashing the key again, which is a
    third of what a webhook's signature costs (2.6 against 1.7 µs here)."""

    def __init__(self, app_secret: str) -> None:
        self._keyed = hmac.new(app_secret.encode(), digestmod=hashlib.sha256)

    def signature(self, body: bytes) -> str:
        mac = self._keyed.copy()
        mac.update(body)
        return "sha256=" + mac.hexdigest()


def verify_hub_signature(headers: Mapping[str, str], body: bytes, signer: HubSigner) -> bool:
    provided = headers.get(SIGNATURE_HEADER, "")
    # Meta sends lowercase hex; compare case-insensitively but in constant time.
    return signatures_match(provided.lower(), signer.signature(body))


def graph_error(payload: object) -> tuple[int, str, str]:
    """(code, title, details) from a Graph API error body; code 0 when there is none."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return 0, "unknown error", ""
    code = error.get("code")
    data = error.get("error_data")
    details = data.get("details", "") if isinstance(data, dict) else ""
    return (
        code if isinstance(code, int) else 0,
        str(error.get("message") or error.get("title") or "unknown error"),
        str(details),
    )


class GraphConfig(ChannelConfig):
    app_secret: SecretStr
    verify_token: SecretStr


class GraphAdapter(Adapter):
    """A channel fed by Graph webhooks (the handshake, X-Hub-Signature-256).

    One Meta app posts the events of every number or Page it serves to one callback URL:
    instances sharing an app secret route each other's events by `routing_id`.
    """

    signature_header = SIGNATURE_HEADER
    # Graph batches several entries and changes into one request; payloads "up to ~3 MB"
    # (providers.md §1.1, from hookdeck.com: Meta publishes no figure). server.max_body_bytes
    # (1 MB by default) caps it further: raise it if Meta's batches get 413.
    max_body_bytes = 3 * 1024 * 1024
    config: GraphConfig

    def __init__(self, config: ChannelConfig) -> None:
        super().__init__(config)
        self.siblings: dict[str, str] = {}
        self._channels: dict[str, ChannelRef] = {}

    @abc.abstractmethod
    def routing_id(self) -> str:
        """The id Meta's payloads name this instance by (phone number id, Page id)."""

    def link_siblings(self, adapters: list[Adapter]) -> None:
        secret = self.config.app_secret.get_secret_value()
        self.siblings = {
            a.routing_id(): a.config.id
            for a in adapters
            if isinstance(a, type(self)) and a.config.app_secret.get_secret_value() == secret
        }

    def routed_channel_id(self, routing_id: str | None) -> str:
        return self.siblings.get(routing_id or "", self.config.id)

    def channel_for(self, routing_id: str | None) -> ChannelRef:
        """The channel instance an event for `routing_id` is of. Built once a channel, not
        once an event: a ChannelRef costs 10k instructions, a sixth of reading a message."""
        channel_id = self.routed_channel_id(routing_id)
        channel = self._channels.get(channel_id)
        if channel is None:
            channel = self._channels[channel_id] = ChannelRef(id=channel_id, type=self.type)
        return channel

    def handshake(self, query: Mapping[str, str]) -> Reply:
        return hub_handshake(query, self.config.verify_token.get_secret_value())

    @functools.cached_property
    def _signer(self) -> HubSigner:  # on first use: `gateway normalize` has no app secret
        return HubSigner(self.config.app_secret.get_secret_value())

    def verify(self, request: InboundRequest) -> bool:
        return verify_hub_signature(request.headers, request.body, self._signer)
