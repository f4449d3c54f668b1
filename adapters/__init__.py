"""Channel adapters, one module per channel; this registry maps a config `type` to its adapter."""

from __future__ import annotations

from adapters.base import Adapter, ChannelConfig
from adapters.whatsapp import WhatsAppAdapter

ADAPTERS: dict[str, type[Adapter]] = {
    WhatsAppAdapter.type: WhatsAppAdapter,
}

CHANNEL_CONFIGS: tuple[type[ChannelConfig], ...] = tuple(a.config_model for a in ADAPTERS.values())

__all__ = ["ADAPTERS", "CHANNEL_CONFIGS", "Adapter", "ChannelConfig"]
