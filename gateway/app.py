"""The gateway process: config → adapters, store, workers and the aiohttp application."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import httpx
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from adapters import ADAPTERS, Adapter
from gateway.config import GatewayConfig, StorageConfig
from gateway.http.api import Api
from gateway.http.broadcasts_api import BroadcastsApi
from gateway.http.communities_api import CommunitiesApi
from gateway.http.conversations_api import ConversationsApi
from gateway.http.groups_api import GroupsApi
from gateway.http.header_deadline import bound_header_time
from gateway.http.ingress import Ingress
from gateway.http.openapi import openapi
from gateway.http.request_body import BodyReader
from gateway.http.users_api import UsersApi
from gateway.http.web_api import WebApi
from gateway.http.websocket import WebSockets
from gateway.live import LiveMap
from gateway.logs import REDACTOR, SecretRedactor, get_logger
from gateway.metrics import BACKLOG, LANE_PENDING, STORE_UP
from gateway.outbound.http_client import new_client
from gateway.outbound.transport import Transport
from gateway.pipeline.broadcasts import BroadcastWorker
from gateway.pipeline.delivery import WebhookDelivery
from gateway.pipeline.delivery_deadlines import DeliveryDeadlines
from gateway.pipeline.dispatcher import Dispatcher
from gateway.pipeline.held import HeldStatuses
from gateway.pipeline.lanes import LaneWorker
from gateway.pipeline.moderation import ModerationWorker
from gateway.pipeline.normaliser import Normaliser
from gateway.pipeline.retention import Retention
from gateway.pipeline.route_questions import UnansweredQuestions
from gateway.pipeline.worker import Background
from gateway.reload import load_for_reload, restart_only_changes, with_running_settings
from gateway.router.conversations import Announcements
from gateway.schema import json_schema
from gateway.schema.communities import CommunitySettings
from gateway.store import ConversationConflict, Store, StoreUnavailable, open_store

log = get_logger("gateway.app")


def build_adapters(config: GatewayConfig) -> dict[str, Adapter]:
    adapters = {c.id: ADAPTERS[c.type](c) for c in config.channels}
    for adapter in adapters.values():
        adapter.link_siblings(list(adapters.values()))
    return adapters


def open_configured_store(storage: StorageConfig) -> Store:
    return open_store(
        storage.backend,
        path=storage.path,
        synchronous=storage.synchronous,
        dsn=storage.dsn.get_secret_value() if storage.dsn else None,
        connections=storage.connections,
    )


def targets_of(config: GatewayConfig) -> dict[str, list[str]]:
    """Which backends each event type goes to."""
    return {
        event_type: [b.id for b in config.backends if event_type in b.events]
        for event_type in {t for b in config.backends for t in b.events}
    }


def secrets_of(config: GatewayConfig, adapters: Mapping[str, Adapter]) -> list[str]:
    return config.secrets() + [s for a in adapters.values() for s in a.secrets()]


class Gateway:
    def __init__(
        self,
        config: GatewayConfig,
        *,
        http_client: httpx.AsyncClient | None = None,
        idle_seconds: Callable[[], float] | None = None,
    ) -> None:
        """`idle_seconds`: the serving loop's idle time so far (gateway/pipeline/cpu_pacing.py), by which the
        normaliser and retention pace themselves while webhooks pour in."""
        self.config = config
        # Swapped whole by a config reload (gateway/live.py); every reader shares this one map.
        self.adapters = LiveMap(build_adapters(config))
        self.reloading = asyncio.Lock()
        # The log redaction rules, for provider error text the gateway stores and serves too.
        self.redactor = SecretRedactor(secrets_of(config, self.adapters))
        self.store = open_configured_store(config.storage)
        said = config.conversations.announcements
        self.store.announcements = Announcements(joined=said.joined, left=said.left)
        self._own_client = http_client is None
        self.http = http_client or new_client()
        self._targets = targets_of(config)
        self.api: Api | None = None  # made with the application
        policy = config.delivery
        self.delivery = WebhookDelivery(self.store, config.backends, self.http, policy)
        self.bodies = BodyReader(config.server.body_timeout_seconds)
        # Spare capacity needs the loop and, where it writes on a thread of its own, the store.
        idle_clocks = [idle_seconds, *self.store.db.idle_clocks()] if idle_seconds else []
        self.ingress = Ingress(
            self.store,
            self.adapters,
            config.public_url,
            config.server.max_body_bytes,
            self._stored,
            self.bodies,
            busy_rate=config.server.busy_webhooks_per_second,
            max_bytes_awaiting_store=config.server.max_bytes_awaiting_store,
            acceptance_window=config.ingress.acceptance_window_seconds,
        )
        self.normaliser = Normaliser(
            self.store,
            self.adapters,
            self.targets_for,
            policy.poll_interval_seconds,
            ingress_busy=self.ingress.busy,
            during_bursts=config.server.normalise_during_bursts,
            idle_clocks=idle_clocks,
            link_by_phone=config.identities.link_by_phone,
            routing=config.inbound_routing(),
        )
        self.transport = Transport(self.http, policy.send_concurrency)
        self.dispatcher = Dispatcher(
            self.store,
            self.adapters,
            self.transport,
            self.targets_for,
            policy,
            public_url=config.public_url,
            conversations=config.conversations,
            redactor=self.redactor,
        )
        self.normaliser.listeners.append(self.delivery)
        self.normaliser.on_sends_queued = self.dispatcher.wake  # replies the router queued
        self.dispatcher.listeners.append(self.delivery)
        self.held_statuses = HeldStatuses(self.store, self.targets_for, policy.status_hold_seconds)
        self.held_statuses.listeners.append(self.delivery)
        self.held_statuses.listeners.append(self.dispatcher)  # a failover queued a send
        self.deadlines = DeliveryDeadlines(
            self.store,
            self.adapters,
            self.targets_for,
            config.routing.delivery_timeout_seconds,
            self.dispatcher.wake,
        )
        self.deadlines.listeners.append(self.delivery)
        self.route_questions = UnansweredQuestions(self.store, self.targets_for)
        self.route_questions.listeners += [self.delivery, self.dispatcher]
        self.moderation = ModerationWorker(
            self.store, self.http, policy.poll_interval_seconds, on_secret=self.redact_too
        )
        self.moderation.listeners += [self.delivery, self.dispatcher]
        self.retention = Retention(
            self.store,
            config.storage.retention,
            keep_keys_seconds=config.ingress.acceptance_window_seconds,
            busy=self.ingress.busy_meter(),
            idle_clocks=idle_clocks,
        )
        # The web channels' sockets and log: their sends end there, not at a provider.
        self.web = WebSockets(self.store, self.adapters, self._stored)
        self.web.attach(self.adapters)
        self.broadcasts = BroadcastWorker(
            self.store, self.adapters, self.targets_for, self.dispatcher.wake
        )
        self.broadcasts.listeners.append(self.delivery)  # broadcast.completed
        self._lane_workers = {w.kind: w for w in (self.dispatcher, self.delivery)}
        self.workers: list[Background] = [
            self.normaliser,
            self.dispatcher,
            self.delivery,
            self.held_statuses,
            self.route_questions,
            self.moderation,
            self.deadlines,
            self.retention,
            self.web.sweeper,
            self.broadcasts,
        ]

    async def reload_file(self, path: str | Path) -> bool:
        """Reload from the config file as it is now; False when it was refused."""
        log.info("reload_requested", path=str(path))
        new = load_for_reload(path)
        return new is not None and await self.reload(new)

    async def reload(self, new: GatewayConfig) -> bool:
        """Apply `new`'s channels, backends and API keys without a restart; False when refused
        (the running config stays). Built whole first, then swapped in one synchronous step:
        a request in flight finishes with the channel it looked up, and work claimed for a
        removed channel or backend ends as it began (gateway/live.py). What a removed target
        had queued stays queued, and goes if it comes back."""
        async with self.reloading:
            fixed = restart_only_changes(self.config, new)
            if fixed:
                log.warning(
                    "reload_needs_restart",
                    settings=fixed,
                    kept="the running values; restart the gateway to change these",
                )
            config = with_running_settings(self.config, new)
            try:
                adapters = build_adapters(config)
                self.web.attach(adapters)
            except Exception as exc:
                log.error("reload_refused", problems=[f"{type(exc).__name__}: {exc}"])
                return False
            old_adapters = dict(self.adapters)
            changed = [
                i
                for i, a in old_adapters.items()
                if i not in adapters or a.config != adapters[i].config
            ]
            # The swap: no await from here to its end, so no coroutine sees half of it.
            for redactor in (self.redactor, REDACTOR):  # the old ones may still be quoted
                redactor.add(secrets_of(config, adapters))
            self.config = config
            self.adapters.replace(adapters)
            self._targets = targets_of(config)
            if self.api is not None:
                self.api.set_keys(config.api_keys)
            self.transport.forget(changed)
            gone = self.dispatcher.retarget(list(adapters)) + self.delivery.reconfigure(
                config.backends
            )
            log.info(
                "config_reloaded",
                channels=sorted(adapters),
                backends=[b.id for b in config.backends],
                api_keys=[k.name for k in config.api_keys],
                added=sorted(adapters.keys() - old_adapters.keys()),
                removed=sorted(old_adapters.keys() - adapters.keys()),
            )
            await LaneWorker.stop_lanes(gone, config.server.shutdown_grace_seconds)
            return True

    def redact_too(self, secrets: Iterable[str]) -> None:
        """Secrets given at run time (a community's moderation secret, through the API or by
        another process on the same store): out of the logs and of what the gateway serves,
        like the config's."""
        given = list(secrets)
        for redactor in (self.redactor, REDACTOR):
            redactor.add(given)

    async def _redact_stored_secrets(self) -> None:
        """The moderation secrets of the communities the API made before this start."""
        after: str | None = None
        while found := await self.store.communities.page(None, 500, after):
            moderated = [c.settings.moderation for c in found if c.settings.moderation]
            self.redact_too(m.secret.get_secret_value() for m in moderated)
            after = found[-1].id

    def _stored(self) -> None:
        self.normaliser.wake()

    def targets_for(self, event_type: str) -> list[str]:
        return self._targets.get(event_type, [])

    def application(self) -> web.Application:
        ingress = self.ingress
        api = self.api = Api(
            self.store,
            self.adapters,
            self.config.api_keys,
            self.dispatcher.wake,
            self.bodies,
            self.redactor,
            self.config.routing,
        )
        app = web.Application(client_max_size=self.config.server.max_body_bytes)
        bound_header_time(app, self.config.server.header_timeout_seconds)
        app.router.add_get("/webhooks/{channel_id}", ingress.handshake)
        app.router.add_post("/webhooks/{channel_id}", ingress.receive)
        # The API's authentication wraps only the API: webhooks carry provider signatures instead.
        app.router.add_post("/v1/messages", api.authenticated(api.send))
        app.router.add_get("/v1/messages/{message_id}", api.authenticated(api.get))
        app.router.add_post("/v1/preview", api.authenticated(api.preview))
        users = UsersApi(
            self.store, self.adapters, self.bodies, self.targets_for, self.delivery.wake
        )
        app.router.add_post("/v1/users", api.authenticated(users.create))
        app.router.add_get("/v1/users/{user_id}", api.authenticated(users.get))
        app.router.add_patch("/v1/users/{user_id}", api.authenticated(users.update))
        app.router.add_post("/v1/users/{user_id}/identities", api.authenticated(users.link))
        app.router.add_delete("/v1/users/{user_id}/identities", api.authenticated(users.unlink))
        app.router.add_post("/v1/users/{user_id}/merge", api.authenticated(users.merge))
        app.router.add_get("/v1/users/{user_id}/messages", api.authenticated(users.messages))
        self._conversation_routes(app, api)
        self._community_routes(app, api)
        if self.config.console.enabled:
            from gateway.console import Console  # its templates load only when it is on

            Console(self).mount(app)
        web_api = WebApi(self.web, self.bodies)
        app.router.add_post("/v1/web/tokens", api.authenticated(web_api.tokens))
        app.router.add_post("/v1/web/actions", api.authenticated(web_api.actions))
        app.router.add_get("/web/example", web_api.example)
        app.router.add_get("/web/{channel_id}/socket", self.web.handle)
        self._broadcast_routes(app, api)
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/readyz", self._ready)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/schema.json", self._schema)
        app.router.add_get("/openapi.json", self._openapi)
        app.on_startup.append(self._startup)
        app.on_shutdown.append(self._shutdown)
        app.on_cleanup.append(self._cleanup)
        return app

    def _conversation_routes(self, app: web.Application, api: Api) -> None:
        talks = ConversationsApi(
            self.store,
            self.adapters,
            self.bodies,
            self.targets_for,
            self.delivery.wake,
            self.dispatcher.wake,
            default_controller=self.config.conversations.default_controller,
            backends=[b.id for b in self.config.backends],
        )
        one = "/v1/conversations/{conversation_id}"
        app.router.add_post("/v1/conversations", api.authenticated(talks.create))
        app.router.add_get("/v1/conversations", api.authenticated(talks.page))
        app.router.add_get(one, api.authenticated(talks.get))
        app.router.add_patch(one, api.authenticated(talks.update))
        app.router.add_post(f"{one}/participants", api.authenticated(talks.add_participant))
        app.router.add_delete(
            f"{one}/participants/{{participant_id}}", api.authenticated(talks.remove_participant)
        )
        app.router.add_post(f"{one}/close", api.authenticated(talks.close))
        app.router.add_post(f"{one}/control", api.authenticated(talks.control))
        app.router.add_post(f"{one}/messages", api.authenticated(talks.post))
        app.router.add_get(f"{one}/messages", api.authenticated(talks.messages))

    def _community_routes(self, app: web.Application, api: Api) -> None:
        groups = CommunitiesApi(
            self.store,
            self.adapters,
            self.bodies,
            self.targets_for,
            self.delivery.wake,
            self.dispatcher.wake,
            self.redact_too,
        )
        one = "/v1/communities/{community_id}"
        member = f"{one}/members/{{member_id}}"
        held = f"{one}/held/{{message_id}}"
        for method, path, handler in (
            ("POST", "/v1/communities", groups.create),
            ("GET", "/v1/communities", groups.page),
            ("GET", one, groups.get),
            ("PATCH", one, groups.update),
            ("POST", f"{one}/members", groups.join),
            ("GET", f"{one}/members", groups.members),
            ("DELETE", member, groups.remove),
            ("POST", f"{member}/ban", groups.ban),
            ("POST", f"{member}/mute", groups.mute),
            ("GET", f"{one}/held", groups.held),
            ("POST", f"{held}/release", groups.release),
            ("POST", f"{held}/reject", groups.reject),
        ):
            app.router.add_route(method, path, api.authenticated(handler))

    async def _configured_communities(self) -> None:
        """The config file's communities, made or brought up to date in the store. A keyword
        an API-made community holds stops the start, naming both."""
        for index, community in enumerate(self.config.communities):
            settings = CommunitySettings.model_validate(
                community.model_dump(exclude={"id", "owner"}) | {"moderation": community.moderation}
            )
            try:
                await self.store.communities.save(
                    community.id,
                    self.config.community_owner(community),
                    settings,
                    self.targets_for,
                    time.time(),
                    configured=True,
                )
            except ConversationConflict as conflict:
                raise StoreUnavailable(
                    f"communities[{index}].{conflict.field}: {conflict.message}"
                ) from None

    def _broadcast_routes(self, app: web.Application, api: Api) -> None:
        groups = GroupsApi(self.store, self.adapters, self.bodies)
        sends = BroadcastsApi(self.store, self.adapters, self.bodies, groups, self.broadcasts.wake)
        group = "/v1/groups/{group_id}"
        app.router.add_post("/v1/groups", api.authenticated(groups.create))
        app.router.add_get(group, api.authenticated(groups.get))
        app.router.add_post(f"{group}/members", api.authenticated(groups.add))
        app.router.add_get(f"{group}/members", api.authenticated(groups.members))
        app.router.add_delete(f"{group}/members", api.authenticated(groups.remove))
        app.router.add_post(f"{group}/members/import", api.authenticated(groups.import_members))
        one = "/v1/broadcasts/{broadcast_id}"
        app.router.add_post("/v1/broadcasts", api.authenticated(sends.create))
        app.router.add_get(one, api.authenticated(sends.get))
        app.router.add_post(f"{one}/cancel", api.authenticated(sends.cancel))

    async def start(self) -> None:
        try:
            self.store.start()
        except StoreUnavailable as exc:
            log.error("store_unavailable", backend=self.config.storage.backend, error=str(exc))
            raise
        if self.config.storage.backend == "sqlite":
            await self.store.release_claims()  # one process owns an SQLite file
        await self._configured_communities()
        await self._redact_stored_secrets()
        for worker in self.workers:
            worker.start()
        log.info(
            "gateway_started",
            channels=sorted(self.adapters),
            backends=[b.id for b in self.config.backends],
            store=self.config.storage.backend,
        )

    async def stop(self) -> None:
        grace = self.config.server.shutdown_grace_seconds
        await asyncio.gather(*(worker.stop(grace) for worker in self.workers))
        await self.transport.aclose()
        if self._own_client:
            await self.http.aclose()
        self.store.close()

    async def _startup(self, _app: web.Application) -> None:
        await self.start()

    async def _shutdown(self, _app: web.Application) -> None:
        # Connections stopped reading when the shutdown began: a body still arriving never will.
        await self.web.close_all()  # devices reconnect to another gateway, or after the restart
        abandoned = self.bodies.abandon()
        if abandoned:
            log.info("shutdown_abandoned_reads", requests=abandoned)

    async def _cleanup(self, _app: web.Application) -> None:
        await self.stop()

    async def _health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _ready(self, _request: web.Request) -> web.Response:
        # A probe every few seconds: one trivial query, nothing that grows with the tables.
        try:
            await self.store.ping()
        except Exception as exc:
            log.warning("store_unavailable", error=type(exc).__name__)
            return web.json_response(
                {"status": "unavailable", "reason": type(exc).__name__}, status=503
            )
        return web.json_response({"status": "ready"})

    async def _metrics(self, _request: web.Request) -> web.Response:
        try:
            backlog = await self.store.backlog()
            by_target = await self.store.pending_by_target(
                {kind: list(worker.lanes) for kind, worker in self._lane_workers.items()}
            )
        except Exception as exc:
            log.warning("store_unavailable", error=type(exc).__name__)
            STORE_UP.set(0)
        else:
            STORE_UP.set(1)
            for queue, counts in backlog.items():
                for status, rows in counts.items():
                    BACKLOG.labels(queue, status).set(rows)
            for (queue, target), rows in by_target.items():
                LANE_PENDING.labels(queue, target).set(rows)
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _openapi(self, _request: web.Request) -> web.Response:
        return web.json_response(openapi())

    async def _schema(self, _request: web.Request) -> web.Response:
        return web.json_response(json_schema())
