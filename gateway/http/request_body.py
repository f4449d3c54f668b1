"""Request bodies a graceful shutdown would leave half-read.

When aiohttp begins a graceful shutdown it marks every connection as closing, and from then
on drops the bytes those connections receive (`RequestHandler.data_received` returns early;
aio-libs/aiohttp#2298). A handler still waiting for the rest of a body then waits until the
client gives up (a provider's webhook timeout), and the shutdown waits for that handler.
Reads that go through a `BodyReader` fail at once instead, answered 503: providers and
backends retry, and the restart takes milliseconds. The reader also turns aiohttp's other
reasons a body cannot be read into one `UnreadableBody`, so ingress and the API answer alike.

It also bounds how long a body may take to arrive. aiohttp closes a connection whose headers
never finish (at `keepalive_timeout` after it opened), but nothing ends a handler waiting for a
body that stalls: each such request held a connection and a handler for ever (a flaky proxy's,
or a slow-drip client's, by the thousand). Past `server.body_timeout_seconds` it is answered 408
and the connection closed. A deadline for the whole body, not between reads, so dripping a
byte at a time cannot stretch it.
"""

from __future__ import annotations

import asyncio

from aiohttp import web


class ShuttingDown(ConnectionError):
    """The rest of this request's body will never be read: the server is shutting down."""


class UnreadableBody(Exception):
    """Why a body could not be read, as the answer to give: status, error code, message."""

    def __init__(self, status: int, code: str, message: str, *, closes: bool = False) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.closes = closes  # the rest of the body may still come: the connection cannot go on

    def finish(self, answer: web.Response) -> web.Response:
        """`answer`, marked to close the connection when the request's bytes are not all read."""
        if self.closes:
            answer.force_close()
        return answer


TOO_LARGE = "the body exceeds server.max_body_bytes"


def too_large(limit: int) -> str:
    return f"the body exceeds {limit} bytes"


async def _read_at_most(request: web.BaseRequest, limit: int) -> bytes:
    body = bytearray()
    while chunk := await request.content.readany():
        body += chunk
        if len(body) > limit:
            raise UnreadableBody(413, "body_too_large", too_large(limit), closes=True)
    return bytes(body)


class BodyReader:
    def __init__(self, timeout_seconds: float = 30.0) -> None:
        self.timeout_seconds = timeout_seconds
        self._waiting: dict[int, web.BaseRequest] = {}  # by id(): requests are unhashable

    async def read(self, request: web.BaseRequest, limit: int | None = None) -> bytes:
        """The whole body; past `limit` bytes (decoded), UnreadableBody 413 as soon as they
        arrive. The caller has refused a larger Content-Length already: only a chunked or
        compressed body can still grow past it."""
        key = id(request)
        self._waiting[key] = request
        try:
            if limit is not None and (
                request.content_length is None or "Content-Encoding" in request.headers
            ):
                async with asyncio.timeout(self.timeout_seconds):
                    return await _read_at_most(request, limit)
            if request.content.is_eof():  # all of it is here, the usual case: no timer to arm
                return await request.read()
            async with asyncio.timeout(self.timeout_seconds):
                return await request.read()
        except TimeoutError:
            raise UnreadableBody(
                408,
                "body_timeout",
                f"the body did not arrive within {self.timeout_seconds:g} s",
                closes=True,
            ) from None
        except ShuttingDown:
            raise UnreadableBody(
                503, "shutting_down", "the gateway is shutting down; retry"
            ) from None
        except web.HTTPRequestEntityTooLarge:  # aiohttp's own answer would be plain text
            raise UnreadableBody(413, "body_too_large", TOO_LARGE) from None
        except web.RequestPayloadError:  # aiohttp decodes Content-Encoding and chunked framing
            raise UnreadableBody(
                400,
                "unreadable_body",
                "the body could not be read: its Content-Encoding or chunked framing is broken",
            ) from None
        finally:
            del self._waiting[key]

    def abandon(self) -> int:
        """Fail the reads whose body has not fully arrived; how many there were."""
        abandoned = 0
        for request in list(self._waiting.values()):
            if not request.content.is_eof():  # a complete body still reads normally
                request.content.set_exception(ShuttingDown())
                abandoned += 1
        return abandoned
