"""`gateway simulate`: the provider simulators of a config's channels, on loopback, for anyone.

Each channel instance gets a simulator holding that channel's credentials (from the config
and the environment, exactly as `gateway serve` reads them), so the webhooks it posts to the
gateway are signed with the secrets the gateway checks, and the sends it takes are
authenticated with the tokens the gateway sends. Without a config, one simulator per channel
type is started with SAMPLE credentials, which it prints as config lines.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr

from adapters import ADAPTERS
from adapters.base import ChannelConfig
from gateway.config import env_variables_of
from gateway.simulator.line import LineSimulator
from gateway.simulator.messenger import MessengerSimulator
from gateway.simulator.server import SimulatorServer
from gateway.simulator.sms import TwilioSimulator
from gateway.simulator.viber import ViberSimulator
from gateway.simulator.wechat import WeChatSimulator
from gateway.simulator.whatsapp import WhatsAppSimulator

# What each simulator takes, as the gateway would send it. Fixed values, not secrets: a
# simulator is a toy on loopback, and the same lines work every time it starts.
SAMPLE: dict[str, dict[str, Any]] = {
    "whatsapp": {
        "phone_number_id": "106540352242922",
        "access_token": "simulated-whatsapp-access-token",
        "app_secret": "simulated-whatsapp-app-secret",
        "verify_token": "simulated-whatsapp-verify-token",
    },
    "messenger": {
        "page_id": "105623447512391",
        "page_access_token": "simulated-messenger-page-token",
        "app_secret": "simulated-messenger-app-secret",
        "verify_token": "simulated-messenger-verify-token",
    },
    "sms": {
        "account_sid": "AC" + "5" * 32,
        "auth_token": "simulated-twilio-auth-token",
        "from_number": "+14155550199",
    },
    "line": {
        "channel_secret": "simulated-line-channel-secret",
        "channel_access_token": "simulated-line-channel-token",
    },
    "viber": {"auth_token": "simulated-viber-auth-token", "sender_name": "Simulated bot"},
    "wechat": {
        "app_id": "wx5e1c6b3a9d2f4e70",
        "app_secret": "simulated-wechat-app-secret",
        "token": "simulated-wechat-token",
        # Safe mode: the pushes are encrypted (43 letters and digits, as WeChat's console makes).
        "encoding_aes_key": "SimulatedWeChatEncodingAESKey0123456789abcd",
    },
}

# How a simulated user writes (POST <control>/_sim/inbound), per channel type.
INBOUND_EXAMPLE = {
    "whatsapp": '{"from": "15551234567", "text": "hello", "name": "Alex"}',
    "messenger": '{"from": "6543210987654321", "text": "hello"}',
    "sms": '{"from": "+15551234567", "body": "hello"}',
    "line": '{"from": "U4af4980629a0b1c2d3e4f5a6b7c8d9e0", "text": "hello"}',
    "viber": '{"from": "01234567890A=", "text": "hello", "name": "Alex"}',
    "wechat": '{"from": "oLVPpjqs9BhvzwPj5A-vTYAX3GLc", "text": "hello"}',
}


def _secret(value: Any) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


def _whatsapp(config: Any, webhook_url: str, _public_url: str) -> SimulatorServer:
    return WhatsAppSimulator(
        phone_number_id=config.phone_number_id,
        display_phone_number="15550783881",
        access_token=_secret(config.access_token),
        app_secret=_secret(config.app_secret),
        webhook_url=webhook_url,
    )


def _messenger(config: Any, webhook_url: str, _public_url: str) -> SimulatorServer:
    return MessengerSimulator(
        page_id=config.page_id,
        page_access_token=_secret(config.page_access_token),
        app_secret=_secret(config.app_secret),
        webhook_url=webhook_url,
    )


def _sms(config: Any, webhook_url: str, public_url: str) -> SimulatorServer:
    # Twilio signs the URL it was told to call (the public one), and the gateway checks that.
    return TwilioSimulator(
        account_sid=config.account_sid,
        auth_token=_secret(config.auth_token),
        phone_number=config.from_number or "+14155550199",
        messaging_service_sid=config.messaging_service_sid,
        webhook_url=webhook_url,
        public_url=public_url,
    )


def _line(config: Any, webhook_url: str, _public_url: str) -> SimulatorServer:
    return LineSimulator(
        channel_secret=_secret(config.channel_secret),
        channel_access_token=_secret(config.channel_access_token),
        webhook_url=webhook_url,
    )


def _viber(config: Any, webhook_url: str, _public_url: str) -> SimulatorServer:
    return ViberSimulator(auth_token=_secret(config.auth_token), webhook_url=webhook_url)


def _wechat(config: Any, webhook_url: str, _public_url: str) -> SimulatorServer:
    key = config.encoding_aes_key
    return WeChatSimulator(
        app_id=config.app_id,
        app_secret=_secret(config.app_secret),
        token=_secret(config.token),
        encoding_aes_key=_secret(key) if key is not None else None,
        webhook_url=webhook_url,
    )


BUILDERS: dict[str, Callable[[Any, str, str], SimulatorServer]] = {
    "whatsapp": _whatsapp,
    "messenger": _messenger,
    "sms": _sms,
    "line": _line,
    "viber": _viber,
    "wechat": _wechat,
}


def sample_channels() -> list[ChannelConfig]:
    """One channel of each type, named after it, with the SAMPLE credentials."""
    return [
        ADAPTERS[kind].config_model.model_validate({"id": kind, "type": kind, **values})
        for kind, values in SAMPLE.items()
    ]


@dataclass
class Running:
    """One started simulator and what a person needs to use it."""

    channel: ChannelConfig
    simulator: SimulatorServer
    webhook_url: str
    env_name: str | None  # the variable the config reads api_base_url from, if any

    def describe(self, *, sample: bool) -> list[str]:
        base = self.simulator.base_url
        kind, control = self.channel.type, self.simulator.origin
        lines = [
            f"{self.channel.id} ({kind}) simulator: api_base_url {base}",
            f"  webhooks to  {self.webhook_url}",
            f"  a user writes:    curl -X POST {control}/_sim/inbound -d '{INBOUND_EXAMPLE[kind]}'",
            f"  what was sent:    curl {control}/_sim/sent",
        ]
        if self.env_name:
            lines.append(f"  export {self.env_name}={base}")
        if sample:
            lines.append("  config:")
            lines += [f"    {key}: {value!r}" for key, value in SAMPLE[kind].items()]
            lines.append(f"    api_base_url: {base}")
        return lines


def start_port(base: int, index: int) -> int:
    """Simulator `index`'s port: base + index, or any free port when base is 0."""
    return base + index if base else 0


async def start_simulators(
    channels: list[ChannelConfig],
    *,
    gateway_url: str,
    public_url: str,
    env_names: dict[str, str],
    host: str = "127.0.0.1",
    port: int = 0,
) -> list[Running]:
    """Start a simulator for each channel, posting its webhooks to the gateway at
    `gateway_url` (signed, for Twilio, for `public_url`), listening on `port` + its index."""
    running: list[Running] = []
    try:
        for index, channel in enumerate(channels):
            path = f"/webhooks/{channel.id}"
            simulator = BUILDERS[channel.type](channel, gateway_url + path, public_url + path)
            await simulator.start(host, start_port(port, index))
            running.append(
                Running(channel, simulator, gateway_url + path, env_names.get(channel.id))
            )
    except BaseException:
        for started in running:
            await started.simulator.stop()
        raise
    return running


def api_base_url_variables(config_path: str | Path) -> dict[str, str]:
    """Channel id → the environment variable its `api_base_url` reads, where it reads one
    (`api_base_url: ${WA_API_BASE_URL:-https://graph.facebook.com/v21.0}`)."""
    data = yaml.safe_load(Path(config_path).read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for channel in (data or {}).get("channels") or []:
        value = channel.get("api_base_url") if isinstance(channel, dict) else None
        names = env_variables_of(value) if isinstance(value, str) else []
        if names:
            found[str(channel.get("id"))] = names[0]
    return found


async def run_simulators(
    channels: list[ChannelConfig],
    *,
    gateway_url: str,
    public_url: str,
    env_names: dict[str, str],
    host: str,
    port: int,
    sample: bool,
) -> int:
    """Start the simulators, say how to use them, and run until SIGINT or SIGTERM."""
    running = await start_simulators(
        channels,
        gateway_url=gateway_url,
        public_url=public_url,
        env_names=env_names,
        host=host,
        port=port,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        if sample:
            print(
                f"Sample channels; in the gateway's config set public_url: {gateway_url}"
                " (Twilio's webhooks are signed for the URL under it)"
            )
        for started in running:
            print("\n".join(started.describe(sample=sample)), flush=True)
        exports = [s for s in running if s.env_name]
        if exports:
            print("\nFor `gateway serve` in another shell, with the config's other variables:")
            print("\n".join(f"export {s.env_name}={s.simulator.base_url}" for s in exports))
        print(f"\n{len(running)} simulator(s) running; Ctrl-C stops them", flush=True)
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        for started in running:
            await started.simulator.stop()
    return 0
