"""The baseline: a bare aiohttp handler that only reads the body and answers 200."""

from __future__ import annotations

import sys

from aiohttp import web


async def handle(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(text="OK")


def main() -> None:
    app = web.Application()
    app.router.add_post("/webhooks/{channel_id}", handle)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
