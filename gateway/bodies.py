"""Request bodies a graceful shutdown would leave half-read.

When aiohttp begins a graceful shutdown it marks every connection as closing, and from then
on drops the bytes those connections receive (`RequestHandler.data_received` returns early;
aio-libs/aiohttp#2298). A handler still waiting for the rest of a body then waits until the
client gives up (a provider's webhook timeout), and the shutdown waits for that handler.
Reads that go through a `BodyReader` fail at once instead, with `ShuttingDown`, which the
handlers answer 503: providers and backends retry, and the restart takes milliseconds.
"""

from __future__ import annotations

from aiohttp import web


class ShuttingDown(ConnectionError):
    """The rest of this request's body will never be read: the server is shutting down."""


SHUTTING_DOWN = "the gateway is shutting down; retry"


class BodyReader:
    def __init__(self) -> None:
        self._waiting: dict[int, web.BaseRequest] = {}  # by id(): requests are unhashable

    async def read(self, request: web.BaseRequest) -> bytes:
        key = id(request)
        self._waiting[key] = request
        try:
            return await request.read()
        finally:
            del self._waiting[key]

    def abandon(self) -> int:
        """Fail the reads whose body has not fully arrived; how many there were."""
        abandoned = 0
        for request in list(self._waiting.values()):
            if not request.content.is_eof():  # a complete body still reads normally
                request.content.set_exception(ShuttingDown(SHUTTING_DOWN))
                abandoned += 1
        return abandoned
