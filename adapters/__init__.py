"""Channel adapters, a package per channel; this registry maps a config `type` to its adapter.

Each channel names its adapter class `ADAPTER`; adding a channel is adding a package.
Shared helpers (`base`, `meta_graph`, …) have no `ADAPTER` and are not channels.
"""

from __future__ import annotations

import importlib
import pkgutil

from adapters.base import Adapter, ChannelConfig


def _discover() -> dict[str, type[Adapter]]:
    found: dict[str, type[Adapter]] = {}
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        adapter = getattr(module, "ADAPTER", None)
        if adapter is not None:
            found[adapter.type] = adapter
    return found


ADAPTERS: dict[str, type[Adapter]] = _discover()

CHANNEL_CONFIGS: tuple[type[ChannelConfig], ...] = tuple(a.config_model for a in ADAPTERS.values())

__all__ = ["ADAPTERS", "CHANNEL_CONFIGS", "Adapter", "ChannelConfig"]
