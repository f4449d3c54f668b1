"""`gateway` command line: serve, check-config, normalize, render, replay, discard, prune,
channels, schema, openapi, simulate, broadcast, demo, console-hash-password."""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapters import ADAPTERS
from adapters.failures import adapter_error, unreadable
from gateway.config import ConfigError, GatewayConfig, load_config
from gateway.logs import REDACTOR
from gateway.store import Store, StoreUnavailable, failed_parts

if TYPE_CHECKING:  # serve's imports wait until it runs: other commands start faster without
    from aiohttp import web

    from gateway.app import Gateway

# Binding failures are the operator's to fix (another process on the port, a privileged port,
# an address this host does not have): a message, not a traceback.
_CANNOT_LISTEN = {errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL}


def _load(path: str) -> GatewayConfig:
    try:
        config = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}", file=sys.stderr)
        raise SystemExit(2) from None
    REDACTOR.update(config.secrets())  # for what this command prints or logs
    return config


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from gateway.app import Gateway, secrets_of
    from gateway.logs import configure_logging
    from gateway.pipeline.cpu_pacing import new_event_loop

    config = _load(args.config)
    loop, idle_seconds = new_event_loop()
    gateway = Gateway(config, idle_seconds=idle_seconds)
    configure_logging(
        config.logging.level, config.logging.format, secrets_of(config, gateway.adapters)
    )
    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    app = gateway.application()
    reload_on(app, gateway, args.config, watch=args.watch)
    _freeze_startup_objects()
    try:
        web.run_app(
            app,
            host=host,
            port=port,
            print=_log_listening,
            access_log=None,
            loop=loop,
        )
    except OSError as exc:
        if exc.errno not in _CANNOT_LISTEN:
            raise
        print(f"{args.config}: server: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    return 0


def reload_on(app: web.Application, gateway: Gateway, path: str, *, watch: bool) -> None:
    """Reload `path` into the running gateway on SIGHUP and, with `watch`, on its changes."""
    from gateway.reload import ReloadTriggers

    triggers = ReloadTriggers(lambda: gateway.reload_file(path), Path(path) if watch else None)

    async def start(_app: web.Application) -> None:
        triggers.start()

    async def stop(_app: web.Application) -> None:
        await triggers.stop()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)


def _log_listening(banner: str) -> None:
    """aiohttp's "Running on http://HOST:PORT" banner, once listening, as a log line: the
    address actually bound (also when --port 0 picked one)."""
    from gateway.logs import get_logger

    for url in re.findall(r"https?://[^\s,]+", banner):
        get_logger("gateway.serve").info("listening", url=url)


def _freeze_startup_objects() -> None:
    """Keep what startup built (modules, models, schemas, adapters: ~75,000 objects, all
    living as long as the process) out of the cyclic collector's full passes. Under a burst of
    webhooks those passes come every second or two, and each walked all of it: 40-60 ms on a
    2-vCPU VM, a pause every acknowledgement in flight waited for (bench/ingress.py: 6-7 per
    10 s burst; frozen, they take 1-2 ms). https://docs.python.org/3/library/gc.html#gc.freeze
    """
    gc.collect()  # nothing to collect later stays behind in the frozen set
    gc.freeze()


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}", file=sys.stderr)
        print(f"{exc.source}: {len(exc.problems)} problem(s)", file=sys.stderr)
        return 1
    print(
        f"{args.file}: OK ({len(config.channels)} channel(s), {len(config.backends)} backend(s), "
        f"{len(config.api_keys)} API key(s), {config.storage.backend} store)"
    )
    return 0


def cmd_normalize(args: argparse.Namespace) -> int:
    adapter_class = ADAPTERS.get(args.channel)
    if adapter_class is None:
        print(
            f"unknown channel type {args.channel!r} (known: {', '.join(sorted(ADAPTERS))})",
            file=sys.stderr,
        )
        return 2
    try:
        body = Path(args.file).read_bytes()
    except OSError as exc:
        print(f"{args.file}: cannot read file: {exc.strerror}", file=sys.stderr)
        return 2
    # Parsing needs no credentials: an unvalidated config with just the id and type will do.
    config_model: Any = adapter_class.config_model
    adapter = adapter_class(
        config_model.model_construct(id=args.channel_id or args.channel, type=args.channel)
    )
    try:  # a body unreadable as a whole prints one line and no events
        reading = adapter.read(body, None)
        lines = [parsed.draft.model_dump_json(exclude_none=True) for parsed in reading.events]
    except Exception as exc:  # the reason a failed inbox row would keep
        reason = unreadable(exc) or adapter_error(exc)
        print(f"{args.file}: cannot parse as {args.channel}: {reason}", file=sys.stderr)
        return 1
    for line in lines:  # the readable parts' events, as the normaliser stores them
        print(line)
    if reading.failed:  # and the reason the row would keep for the parts that fail alone
        reason = failed_parts.summary([part.reason for part in reading.failed])
        print(f"{args.file}: cannot parse as {args.channel}: {reason}", file=sys.stderr)
        return 1
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    import json

    from pydantic import ValidationError

    from gateway.app import build_adapters
    from gateway.preview import placeholder_config, preview
    from gateway.schema import CONTENT_ADAPTER
    from gateway.schema.errors import problems

    try:
        data = json.loads(Path(args.message).read_text(encoding="utf-8"))
    except OSError as exc:
        print(f"{args.message}: cannot read file: {exc.strerror}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"{args.message}: not valid JSON: {exc}", file=sys.stderr)
        return 2
    if isinstance(data, dict) and "content" in data and "type" not in data:
        data = data["content"]  # a whole POST /v1/messages body is fine too
    try:
        content = CONTENT_ADAPTER.validate_python(data)
    except ValidationError as exc:
        for where, message in problems(exc, data):
            print(f"{args.message}: {where}: {message}", file=sys.stderr)
        return 2
    if args.config:
        adapters = build_adapters(_load(args.config))
        chosen = [a for a in adapters.values() if args.channel in (a.config.id, a.type)]
    else:
        adapter_class = ADAPTERS.get(args.channel)
        chosen = (
            [adapter_class(placeholder_config(adapter_class.config_model, args.channel))]
            if adapter_class
            else []
        )
    if not chosen:
        print(
            f"unknown channel {args.channel!r} (types: {', '.join(sorted(ADAPTERS))})",
            file=sys.stderr,
        )
        return 2
    failed = False
    for adapter in chosen:
        result = preview(adapter, content, args.to)
        print(result.model_dump_json(by_alias=True, exclude_none=True, indent=2))
        failed = failed or result.error is not None
    return 1 if failed else 0


def cmd_replay(args: argparse.Namespace) -> int:
    from gateway.app import open_configured_store

    if args.dead_letters and (args.channel or args.id or args.unsupported):
        print("replay: --dead-letters takes --backend and --list only", file=sys.stderr)
        return 2
    if args.backend and not args.dead_letters:
        print("replay: --backend goes with --dead-letters", file=sys.stderr)
        return 2
    store = open_configured_store(_load(args.config).storage)

    async def run() -> int:
        store.start()
        try:
            kind = "unsupported" if args.unsupported else "failed"
            if args.dead_letters:
                return await dead_letters(store, args.backend, listing=args.list)
            if args.list:
                rows = await (
                    store.unsupported_rows() if args.unsupported else store.inbox_rows("failed")
                )
                parts = (
                    {} if args.unsupported else await store.failed_parts_of([r[0] for r in rows])
                )
                for row_id, channel_id, reason in rows:
                    print(f"{row_id}\t{channel_id}\t{reason}")
                    for path, why in parts.get(row_id, []):  # the parts that failed alone
                        print(f"{row_id}\t{channel_id}\t  {path}: {why}")
                print(f"{len(rows)} {kind} inbox row(s)")
                return 0
            count = await store.replay_inbox(
                args.channel, args.id or (), unsupported=args.unsupported
            )
            print(f"{count} {kind} inbox row(s) queued for normalising again")
            return 0
        finally:
            store.close()

    return asyncio.run(run())


async def dead_letters(store: Store, backend: str | None, *, listing: bool) -> int:
    """List, or queue again, the deliveries a backend never took (of one backend, if given)."""
    if listing:
        rows = await store.dead_letters(backend)
        for outbox_id, target, event_id, error in rows:
            print(f"{outbox_id}\t{target}\t{event_id}\t{error}")
        print(f"{len(rows)} dead-lettered deliver{'y' if len(rows) == 1 else 'ies'}")
        return 0
    count = await store.replay_dead(time.time(), backend)
    print(f"{count} dead-lettered deliver{'y' if count == 1 else 'ies'} queued again")
    return 0


def cmd_discard(args: argparse.Namespace) -> int:
    """Give up on failed inbox rows or dead letters by id: the console's Discard."""
    from gateway.app import open_configured_store

    if not args.id and not args.dead_letter:
        print("discard: give --id (inbox rows) or --dead-letter (deliveries)", file=sys.stderr)
        return 2
    store = open_configured_store(_load(args.config).storage)

    async def run() -> int:
        store.start()
        try:
            now = time.time()
            rows = await store.discard_inbox(args.id or (), now)
            dead = await store.discard_dead(args.dead_letter or (), now)
        finally:
            store.close()
        print(f"{rows} failed inbox row(s) and {dead} dead-lettered delivery(ies) discarded")
        return 0

    return asyncio.run(run())


def cmd_prune(args: argparse.Namespace) -> int:
    from gateway.app import open_configured_store
    from gateway.pipeline.retention import Retention

    config = _load(args.config)
    store = open_configured_store(config.storage)

    async def run() -> int:
        store.start()
        try:
            deleted = await Retention(store, config.storage.retention).prune()
        finally:
            store.close()
        for table, count in deleted.items():
            print(f"{table}\t{count}")
        kept = [
            name
            for name, days in (
                ("days", config.storage.retention.days),
                ("message_days", config.storage.retention.message_days),
            )
            if days is None
        ]
        if kept:
            print(f"kept for ever (storage.retention.{' and '.join(kept)}: null)")
        return 0

    return asyncio.run(run())


def cmd_channels_register(args: argparse.Namespace) -> int:
    import httpx

    from adapters.base import SendError
    from gateway.app import build_adapters

    config = _load(args.config)
    adapter = build_adapters(config).get(args.channel_id)
    if adapter is None:
        known = ", ".join(c.id for c in config.channels) or "none"
        print(
            f"{args.config}: no channel with id {args.channel_id!r} (configured: {known})",
            file=sys.stderr,
        )
        return 2
    url = f"{config.public_url.rstrip('/')}/webhooks/{adapter.config.id}"
    request = adapter.webhook_registration(url)
    if request is None:
        print(
            f"{adapter.config.id}: {adapter.type} webhooks are set in the provider's console,"
            f" not by API; point them at {url}",
            file=sys.stderr,
        )
        return 1

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=5.0)) as client:
            return await client.request(
                request.method,
                adapter.config.api_base_url.rstrip("/") + request.path,
                json=request.json,
                data=request.form,
                headers={**adapter.auth_headers(), **request.headers},
            )

    try:
        response = asyncio.run(call())
        answer = adapter.read_registration_response(response.status_code, response.content)
    except httpx.HTTPError as exc:
        print(
            f"{adapter.config.id}: cannot reach {adapter.type} ({type(exc).__name__})",
            file=sys.stderr,
        )
        return 1
    except SendError as exc:
        print(
            f"{adapter.config.id}: {adapter.type} refused the webhook {url}: {exc}", file=sys.stderr
        )
        return 1
    print(f"{adapter.config.id}: webhook set to {url} ({answer})")
    return 0


def cmd_schema(_args: argparse.Namespace) -> int:
    from gateway.schema import json_schema_text

    print(json_schema_text())
    return 0


def cmd_openapi(_args: argparse.Namespace) -> int:
    from gateway.http.openapi import openapi_text

    print(openapi_text())
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from gateway.config_problems import did_you_mean
    from gateway.logs import configure_logging
    from gateway.simulator.launch import api_base_url_variables, run_simulators, sample_channels

    if args.config:
        config = _load(args.config)
        channels, env_names = list(config.channels), api_base_url_variables(args.config)
        server_host, server_port = config.server.host, config.server.port
        public_url: str | None = config.public_url.rstrip("/")
    else:
        channels, env_names = sample_channels(), {}
        server_host, server_port, public_url = "127.0.0.1", 8080, None
    if args.channels:
        wanted = [name.strip() for name in args.channels.split(",") if name.strip()]
        names = [c.id for c in channels] + sorted({c.type for c in channels})
        unknown = [name for name in wanted if name not in names]
        if unknown:
            for name in unknown:
                print(
                    f"simulate: no channel {name!r}{did_you_mean(name, names)}"
                    f" (ids and types: {', '.join(names)})",
                    file=sys.stderr,
                )
            return 2
        channels = [c for c in channels if c.id in wanted or c.type in wanted]
    if not channels:
        print(f"simulate: {args.config} configures no channels", file=sys.stderr)
        return 2
    # Where the gateway listens, seen from this host: 0.0.0.0 and :: are every interface.
    host = "127.0.0.1" if server_host in ("0.0.0.0", "::", "") else server_host
    gateway_url = (args.gateway or f"http://{host}:{server_port}").rstrip("/")
    configure_logging("warning", "console")
    try:
        return asyncio.run(
            run_simulators(
                channels,
                gateway_url=gateway_url,
                public_url=public_url or gateway_url,
                env_names=env_names,
                host=args.host,
                port=args.port,
                sample=not args.config,
            )
        )
    except OSError as exc:
        if exc.errno not in _CANNOT_LISTEN:
            raise
        print(
            f"simulate: cannot listen on {args.host}: {exc.strerror}; try --port 0",
            file=sys.stderr,
        )
        return 1


def cmd_console_hash_password(_args: argparse.Namespace) -> int:
    """Read a password from standard input (its first line), print its argon2 hash for
    `console.accounts[].password_hash`."""
    from gateway.console.auth import hash_password

    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("console-hash-password: give the password on standard input", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    return asyncio.run(run_demo(port=args.port, once=args.once))


def cmd_broadcast(args: argparse.Namespace) -> int:
    from gateway.broadcast_cli import follow, read_body

    config = _load(args.config)
    try:
        return asyncio.run(follow(config, args, read_body(args)))
    except (OSError, ValueError) as exc:  # an unreadable file, a gateway not answering
        print(f"broadcast: {exc}", file=sys.stderr)
        return 1


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="gateway", description="Omnichannel messaging gateway")
    commands = root.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", required=True, help="YAML config file")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--watch",
        action="store_true",
        help="reload the config when its file changes (SIGHUP always reloads it)",
    )
    serve.set_defaults(func=cmd_serve)

    check = commands.add_parser(
        "check-config", help="validate a config file and list every problem"
    )
    check.add_argument("file")
    check.set_defaults(func=cmd_check_config)

    normalize = commands.add_parser("normalize", help="print the events of one raw webhook body")
    normalize.add_argument(
        "--channel", required=True, help=f"channel type ({', '.join(sorted(ADAPTERS))})"
    )
    normalize.add_argument("--channel-id", help="channel instance id to stamp on events")
    normalize.add_argument("file")
    normalize.set_defaults(func=cmd_normalize)

    render = commands.add_parser(
        "render", help="show the provider requests and downgrades for one message on a channel"
    )
    render.add_argument(
        "--channel", required=True, help="channel type, or a channel id with --config"
    )
    render.add_argument("--config", help="render with this config's channel instances")
    render.add_argument("--to", help="recipient id to render for")
    render.add_argument("message", help="JSON file: a content object or a POST /v1/messages body")
    render.set_defaults(func=cmd_render)

    replay = commands.add_parser(
        "replay", help="re-run failed inbox rows or dead-lettered deliveries"
    )
    replay.add_argument("--config", required=True)
    replay.add_argument("--channel", help="only rows of this channel instance")
    replay.add_argument("--id", type=int, action="append", help="only this inbox row (repeatable)")
    replay.add_argument("--backend", help="with --dead-letters: only this backend's deliveries")
    replay.add_argument(
        "--dead-letters",
        action="store_true",
        help="re-queue deliveries dead-lettered by their backend (--list: list them)",
    )
    replay.add_argument(
        "--unsupported",
        action="store_true",
        help="rows whose payloads became `unsupported` events (after the adapter learnt them)",
    )
    replay.add_argument(
        "--list",
        action="store_true",
        help="list failed (or unsupported, or dead-lettered) rows and their reasons",
    )
    replay.set_defaults(func=cmd_replay)

    discard = commands.add_parser(
        "discard", help="give up on failed inbox rows or dead-lettered deliveries, by id"
    )
    discard.add_argument("--config", required=True)
    discard.add_argument("--id", type=int, action="append", help="a failed inbox row (repeatable)")
    discard.add_argument(
        "--dead-letter", type=int, action="append", help="a dead-lettered delivery (repeatable)"
    )
    discard.set_defaults(func=cmd_discard)

    prune = commands.add_parser(
        "prune", help="delete what storage.retention lets go of now (the gateway also does this)"
    )
    prune.add_argument("--config", required=True)
    prune.set_defaults(func=cmd_prune)

    channels = commands.add_parser("channels", help="manage channel instances at their provider")
    channel_commands = channels.add_subparsers(dest="channels_command", required=True)
    register = channel_commands.add_parser(
        "register", help="point the provider's webhook at this gateway's public URL (LINE, Viber)"
    )
    register.add_argument("channel_id", help="channel instance id from the config")
    register.add_argument("--config", required=True)
    register.set_defaults(func=cmd_channels_register)

    schema = commands.add_parser("schema", help="print the normalised schema as JSON Schema")
    schema.set_defaults(func=cmd_schema)

    openapi = commands.add_parser(
        "openapi", help="print the HTTP API (and the backend webhook) as OpenAPI 3.1"
    )
    openapi.set_defaults(func=cmd_openapi)

    simulate = commands.add_parser(
        "simulate", help="run the provider simulators of a config's channels on loopback"
    )
    simulate.add_argument(
        "--config",
        help="take the channels and their credentials from this config (and the environment"
        " it names); without it, one channel of each type with sample credentials",
    )
    simulate.add_argument("--channels", help="only these channel ids or types (comma-separated)")
    simulate.add_argument(
        "--gateway",
        help="the gateway's URL to post webhooks to (default: from the config's server section,"
        " else http://127.0.0.1:8080)",
    )
    simulate.add_argument("--host", default="127.0.0.1", help="address the simulators listen on")
    simulate.add_argument(
        "--port",
        type=int,
        default=9101,
        help="the first simulator's port; the next ones count up from it (0: free ports)",
    )
    simulate.set_defaults(func=cmd_simulate)

    from gateway.broadcast_cli import add_parser as add_broadcast

    add_broadcast(commands, cmd_broadcast)

    demo = commands.add_parser(
        "demo", help="gateway + WhatsApp simulator + a backend, no credentials"
    )
    demo.add_argument("--port", type=int, default=8080, help="gateway port (0 picks a free one)")
    demo.add_argument("--once", action="store_true", help="exit after one round trip")
    demo.set_defaults(func=cmd_demo)
    hashing = commands.add_parser(
        "console-hash-password",
        help="print the argon2 hash of the password on standard input (docs/console.md)",
    )
    hashing.set_defaults(func=cmd_console_hash_password)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except StoreUnavailable as exc:  # a clear line, not a traceback; secrets redacted
        print(f"{args.config}: storage: {REDACTOR.scrub(str(exc))}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `gateway schema | head`: the reader left, which is no error
        # Python flushes stdout again at exit: point it at /dev/null so that cannot fail
        # (https://docs.python.org/3/library/signal.html#note-on-sigpipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return result


if __name__ == "__main__":
    raise SystemExit(main())
