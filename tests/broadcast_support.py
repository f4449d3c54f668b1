"""Helpers for the broadcast tests: the five-channel gateway, couriers and what each got."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from gateway.ids import conversation_id
from gateway.simulator.backend import BackendRecorder

from .conftest import base_config, config_from, with_backend
from .test_line_e2e import LINE_A
from .test_messenger_e2e import FB
from .test_sms_e2e import sms_channel
from .viber_support import viber_channel

OTHER_KEY = "another-api-key-0123456789"
ROAD_CLOSED = {
    "type": "buttons",
    "text": "Road closed: Oudegracht between Bakkerbrug and Weesbrug until 18:00. Avoid it.",
    "actions": [
        {"type": "reply", "title": "Got it", "payload": "ROAD_OK"},
        {"type": "reply", "title": "Need a route", "payload": "ROAD_ROUTE"},
    ],
}
TEMPLATE = {"name": "road_closure", "language": "nl"}


def couriers() -> dict[str, list[str]]:
    """1,000 couriers' ids by channel, as each provider names them."""
    return {
        "wa-main": [f"3161234{i:04d}" for i in range(250)],
        "fb-main": [f"62914741242{i:05d}" for i in range(150)],
        "sms-main": [f"+3161235{i:04d}" for i in range(250)],
        "line-main": [f"U{i:032x}" for i in range(150)],
        "vb-main": [f"0123456{i:04d}A=" for i in range(200)],
    }


def csv_of(members: dict[str, list[str]]) -> bytes:
    lines = ["channel,id"] + [f"{c},{i}" for c, ids in members.items() for i in ids]
    return ("\n".join(lines) + "\n").encode()


async def seed_window(gw: Any, channel: str, ids: list[str], at: float | None = None) -> None:
    """These people wrote to the channel at `at` (now by default): their window is open."""
    when = time.time() if at is None else at

    def op(tx: Any) -> None:
        for provider_id in ids:
            tx.execute(
                "INSERT INTO contacts (channel_id, user_id, conversation_id, last_inbound_at,"
                " created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (channel_id, user_id)"
                " DO UPDATE SET last_inbound_at = excluded.last_inbound_at",
                (channel, provider_id, conversation_id(channel, provider_id), when, when),
            )

    await gw.store.db.run(op)


async def broadcast_gateway(
    tmp_path: Path,
    start_gateway: Any,
    sims: dict[str, Any],
    backend: BackendRecorder,
    rates: dict[str, float],
) -> Any:
    """The five channels on their simulators, at `rates`, with the road_closure template on
    WhatsApp, and a backend that asks for broadcast.completed too."""
    data = with_backend(base_config(tmp_path, public_url="https://sms.example.com"), backend)
    data["backends"][0]["events"] = ["message", "status", "subscription", "broadcast.completed"]
    data["api_keys"].append({"name": "couriers", "key": OTHER_KEY})
    data["channels"][0]["api_base_url"] = sims["whatsapp"].base_url
    data["channels"][0]["templates"] = ["road_closure"]
    data["channels"] += [
        {"id": "fb-main", "type": "messenger", "api_base_url": sims["messenger"].base_url, **FB},
        sms_channel("sms-main", sims["sms"].base_url),
        {"id": "line-main", "type": "line", "api_base_url": sims["line"].base_url, **LINE_A},
        viber_channel(base_url=sims["viber"].base_url),
    ]
    for channel in data["channels"]:
        channel["rate_limit_per_second"] = rates[channel["id"]]
    gw = await start_gateway(config_from(data))
    sims["whatsapp"].webhook_url = f"{gw.url}/webhooks/wa-main"
    sims["messenger"].webhook_url = f"{gw.url}/webhooks/fb-main"
    sims["sms"].webhook_url = f"{gw.url}/webhooks/sms-main"
    sims["sms"].public_url = "https://sms.example.com/webhooks/sms-main"
    sims["line"].webhook_url = f"{gw.url}/webhooks/line-main"
    sims["viber"].webhook_url = f"{gw.url}/webhooks/vb-main"
    return gw


def received(sims: dict[str, Any]) -> dict[str, list[tuple[str, Any]]]:
    """Every send each simulator accepted, in order, as (recipient, request body)."""
    return {
        "wa-main": [(s["body"]["to"], s["body"]) for s in sims["whatsapp"].sent],
        "fb-main": [(s["body"]["recipient"]["id"], s["body"]) for s in sims["messenger"].sent],
        "sms-main": [(s["params"]["To"][0], s["params"]) for s in sims["sms"].sent],
        "line-main": [(s.to, s.body) for s in sims["line"].sent],
        "vb-main": [(s["body"]["receiver"], s["body"]) for s in sims["viber"].sent],
    }
