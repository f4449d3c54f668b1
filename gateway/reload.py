"""Config reload without a restart: on SIGHUP, and on each change of the file with `--watch`.

What changes live: `channels`, `backends` and `api_keys` (added, changed, removed). Everything
else (the server's address and limits, the store, delivery, logging...) is read once at start:
a reload that changes it says so in the log, keeps the running value, and applies the rest.
A config that does not load (bad YAML, a failed check, a missing environment variable) is
refused whole, its problems logged, and the running one kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gateway.config import ConfigError, GatewayConfig, load_config
from gateway.logs import get_logger

log = get_logger("gateway.reload")

LIVE_SECTIONS = frozenset({"channels", "backends", "api_keys"})


def restart_only_changes(running: GatewayConfig, new: GatewayConfig) -> list[str]:
    """The settings outside `LIVE_SECTIONS` that `new` changes, as dotted paths
    (`server.port`, `storage.path`): a reload keeps their running values."""
    changed: list[str] = []
    _differences(
        running.model_dump(exclude=set(LIVE_SECTIONS)),
        new.model_dump(exclude=set(LIVE_SECTIONS)),
        "",
        changed,
    )
    return changed


def _differences(old: Any, new: Any, path: str, found: list[str]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            _differences(old.get(key), new.get(key), f"{path}.{key}" if path else key, found)
    elif old != new:  # SecretStr compares its values
        found.append(path)


def with_running_settings(running: GatewayConfig, new: GatewayConfig) -> GatewayConfig:
    """`new`'s live sections on the running config's everything else."""
    return running.model_copy(update={name: getattr(new, name) for name in LIVE_SECTIONS})


def load_for_reload(path: str | Path) -> GatewayConfig | None:
    """The config file as it is now, or None (its problems logged) when it cannot be used."""
    try:
        return load_config(path)
    except ConfigError as exc:
        log.error("reload_refused", source=exc.source, problems=exc.problems)
        return None


Reload = Callable[[], Awaitable[object]]


class ReloadTriggers:
    """Calls `reload` on SIGHUP and, when `watch` is given, when that file changes; one
    reload at a time, and one more after it when a trigger came meanwhile."""

    def __init__(self, reload: Reload, watch: Path | None = None) -> None:
        self._reload = reload
        self._watch = watch.absolute() if watch is not None else None
        self._wanted = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._wanted.set)
        self._tasks.append(asyncio.create_task(self._run(), name="config-reload"))
        if self._watch is not None:
            self._tasks.append(asyncio.create_task(self._watch_file(self._watch), name="watch"))

    async def stop(self) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _run(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            try:
                await self._reload()
            except Exception:  # a bug of ours must not end reloading: the running config stays
                log.exception("reload_failed")

    async def _watch_file(self, path: Path) -> None:
        from watchfiles import awatch

        # The directory, not the file: editors and config management replace the file by a
        # rename (Kubernetes swaps a `..data` symlink), which ends a watch on the file itself.
        async for changes in awatch(path.parent, debounce=200):
            names = {Path(changed).name for _change, changed in changes}
            if path.name in names or any(name.startswith("..") for name in names):
                log.info("config_file_changed", path=str(path))
                self._wanted.set()
