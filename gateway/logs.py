"""structlog JSON logs; every configured secret is redacted before a line is written."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "[redacted]"


class SecretRedactor:
    """A structlog processor replacing any known secret value, wherever it appears in a line.

    The same rules keep secrets out of what the gateway stores and serves: a provider's error
    text may echo the request it refused, credentials included (gateway/pipeline/dispatcher.py
    redacts it before storing it, the API again when serving rows older releases stored).
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        self.update(secrets)

    def update(self, secrets: Iterable[str]) -> None:
        # Very short values would redact ordinary words; config validation keeps secrets long.
        self.values = frozenset(s for s in secrets if len(s) >= 6)
        values = sorted(self.values, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, values))) if values else None

    def add(self, secrets: Iterable[str]) -> None:
        """Redact `secrets` too (a reloaded config's), still redacting those known before."""
        given = list(secrets)
        if {s for s in given if len(s) >= 6} <= self.values:  # known: keep the compiled rules
            return
        self.update([*self.values, *given])

    def text(self, value: str) -> str:
        """`value` with every known secret replaced."""
        return self._pattern.sub(REDACTED, value) if self._pattern is not None else value

    def scrub(self, value: Any) -> Any:
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self._pattern.sub(REDACTED, value)
        if isinstance(value, dict):
            return {k: self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        if isinstance(value, bytes | int | float | bool) or value is None:
            return value
        return self._pattern.sub(REDACTED, str(value))

    def __call__(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> dict[str, Any]:
        return {k: self.scrub(v) for k, v in event_dict.items()}


REDACTOR = SecretRedactor(())
# The configured level: calls below it return before structlog builds a logger for them (a
# filtered call through structlog's proxy still cost ~10 µs, three times a message sent).
_level = logging.DEBUG


def configure_logging(
    level: str = "info",
    fmt: str = "json",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    global _level
    REDACTOR.update(secrets)
    _level = logging.getLevelNamesMapping()[level.upper()]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            REDACTOR,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_level),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


class Logger:
    """structlog's logger, its calls below the configured level skipped before any work."""

    __slots__ = ("_log",)

    def __init__(self, name: str) -> None:
        self._log = structlog.get_logger(name)

    def debug(self, event: str, **fields: Any) -> None:
        if _level <= logging.DEBUG:
            self._log.debug(event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        if _level <= logging.INFO:
            self._log.info(event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        if _level <= logging.WARNING:
            self._log.warning(event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        if _level <= logging.ERROR:
            self._log.error(event, **fields)

    def exception(self, event: str, **fields: Any) -> None:
        if _level <= logging.ERROR:
            self._log.exception(event, **fields)


def get_logger(name: str) -> Logger:
    return Logger(name)
