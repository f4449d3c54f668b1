"""The web channel (in-app chat over a WebSocket): docs/web-channel.md."""

from adapters.web.adapter import WebAdapter, WebConfig

ADAPTER = WebAdapter

__all__ = ["ADAPTER", "WebAdapter", "WebConfig"]
