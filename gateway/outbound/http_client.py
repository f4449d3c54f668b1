"""The process's one outbound HTTP client: httpx's API over aiohttp's connection pool.

Provider sends (Twilio's SDK included) and backend deliveries all go through `new_client()`.
httpx stays the API every outbound request is written against, and the seam the tests mock
(respx, `httpx.MockTransport`); only the bytes on the wire go through aiohttp. httpx's own
transport cost about 1,500 µs of CPU a request here (1,200 µs with sniffio installed), against
under 300 µs through aiohttp's and about 90 µs for aiohttp alone (16 in flight to a loopback
server; bench/send.py measures the whole send).

Header names go out as written (`X-Line-Retry-Key`, not httpx's lowercased form), and aiohttp's
errors come back as the httpx errors they are: a refused or timed-out connect, a read that
timed out, a connection the server dropped.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import NamedTuple

import aiohttp
import httpx
from multidict import CIMultiDict
from yarl import URL

# Connections open at once, in all and to one host: bounded, so a burst of sends cannot open
# sockets without limit, and one slow backend cannot hold every connection.
MAX_CONNECTIONS = 200
MAX_CONNECTIONS_PER_HOST = 100
# An idle pooled connection is closed after this long (under the 60 s or more most servers
# and load balancers keep one).
KEEPALIVE_SECONDS = 30.0
# Connect within 5 s; each read within 15 s (a whole send: transport.SEND_DEADLINE_SECONDS).
TIMEOUT = httpx.Timeout(15.0, connect=5.0)


def _session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=MAX_CONNECTIONS,
        limit_per_host=MAX_CONNECTIONS_PER_HOST,
        keepalive_timeout=KEEPALIVE_SECONDS,
    )
    # Cookies are httpx's business (its client keeps them); aiohttp keeps none of its own.
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())


def new_client() -> httpx.AsyncClient:
    """The process's outbound HTTP client: httpx's API over aiohttp's pool (module doc).

    The aiohttp session is made at the first request, inside the running loop."""
    return httpx.AsyncClient(transport=AiohttpTransport(_session), timeout=TIMEOUT)


class Answer(NamedTuple):
    """A provider's answer, as the direct path (`AiohttpTransport.exchange`) returns it."""

    status: int
    headers: Mapping[str, str]  # case-insensitive
    content: bytes


def direct(client: httpx.AsyncClient) -> AiohttpTransport | None:
    """The gateway's own transport under `client`, for sends that skip httpx's request
    building (`AiohttpTransport.exchange`); None for any other client (respx's mocks, an
    `httpx.MockTransport`, httpx's own transport), whose requests go through httpx as written."""
    transport = getattr(client, "_transport", None)  # httpx keeps its transport there
    return transport if isinstance(transport, AiohttpTransport) else None


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests through the aiohttp session `session()` makes, at the first
    request (inside the running loop, as aiohttp requires).

    `exchange` is the direct path for the gateway's own provider sends: bytes and headers in,
    status, headers and bytes out. httpx's request and response objects, its URL and header
    normalisation and its cookie jar cost about as much CPU as aiohttp's whole exchange
    (bench/send.py: ~15% of the loop's time), for requests the gateway builds itself."""

    def __init__(self, session: Callable[[], aiohttp.ClientSession]) -> None:
        self._make_session = session
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}

    def _session_now(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            session = self._session = self._make_session()
        return session

    def _timeout(
        self, connect: float | None, read: float | None, pool: float | None
    ) -> aiohttp.ClientTimeout:
        key = (connect, read, pool)
        made = self._timeouts.get(key)
        if made is None:
            made = self._timeouts[key] = aiohttp.ClientTimeout(
                sock_connect=connect, sock_read=read, connect=pool
            )
        return made

    async def exchange(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: httpx.Timeout,  # noqa: ASYNC109 - httpx's, applied by aiohttp per phase
    ) -> Answer:
        """One request, without httpx's objects; aiohttp's errors raised as the httpx errors
        they are (`unanswered` reads them)."""
        # Errors mapped by hand, not by `_httpx_errors`: its generator costs ~3 µs a send.
        try:
            async with self._session_now().request(
                method,
                url,
                headers=headers,
                data=body,
                allow_redirects=False,
                timeout=self._timeout(timeout.connect, timeout.read, timeout.pool),
            ) as response:
                return Answer(response.status, response.headers, await response.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _as_httpx(exc, None) from exc

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        headers = CIMultiDict(
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw
        )
        body = await request.aread()
        async with (
            _httpx_errors(request),
            self._session_now().request(
                request.method,
                URL(str(request.url), encoded=True),
                headers=headers,
                data=body or None,
                allow_redirects=False,  # httpx follows them, when asked to
                auto_decompress=False,  # httpx decodes by the answer's Content-Encoding
                timeout=self._timeout(
                    timeouts.get("connect"), timeouts.get("read"), timeouts.get("pool")
                ),
            ) as response,
        ):
            content = await response.read()
        extensions = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            content=content,
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


@contextlib.asynccontextmanager
async def _httpx_errors(request: httpx.Request | None) -> AsyncIterator[None]:
    """aiohttp's errors raised as httpx's (`_as_httpx`)."""
    try:
        yield
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise _as_httpx(exc, request) from exc


def _as_httpx(exc: aiohttp.ClientError | TimeoutError, request: httpx.Request | None) -> Exception:
    """aiohttp's error as httpx's: a refused or timed-out connect, a read that timed out, a
    connection the server dropped."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(str(exc), request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(str(exc), request=request)
    if isinstance(exc, aiohttp.ServerTimeoutError | TimeoutError):
        return httpx.ReadTimeout(str(exc) or "read timed out", request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(str(exc), request=request)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return httpx.ReadError(str(exc), request=request)
    return httpx.NetworkError(str(exc) or type(exc).__name__, request=request)
