"""A TCP proxy a test controls, between the gateway and a server: `cut()` is the server going
away (open connections closed, new ones refused, as during a PostgreSQL restart), `restore()`
its return. Restarting the shared server itself would disturb every other test run on it.

It runs on a thread of its own, with its own event loop: the gateway connects to its store
from the loop's thread and blocks it meanwhile (Store.start), which a proxy sharing that loop
would never answer."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any


class _Proxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Close every connection and stop listening: connects are refused until `restore`."""
        self.cuts += 1
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()  # a reset, as when the server's process ends
        self._writers.clear()

    async def restore(self) -> None:
        await self.start()  # on the same port

    async def stop(self) -> None:
        await self.cut()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()  # one side ended: so does the other
        self._writers.discard(writer)


class TcpProxy:
    """`_Proxy` on a thread of its own; each call returns once done there."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._proxy = _Proxy(upstream_host, upstream_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._proxy.port

    def _call(self, work: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout=10)

    def start(self) -> None:
        self._thread.start()
        self._call(self._proxy.start())

    def cut(self) -> None:
        self._call(self._proxy.cut())

    def restore(self) -> None:
        self._call(self._proxy.restore())

    def stop(self) -> None:
        self._call(self._proxy.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
