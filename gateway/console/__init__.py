"""The web console at /console: operators see channels, trouble, a composer and charts;
agents (and operators) see conversations and step in (docs/console.md).

Mounted only when `console.enabled` is set. Every page and API goes through the session
check (`Site.guard`); operator pages also through the role check. Static files (the
console's own CSS and JavaScript, no data) are served to anyone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.console.agent import AgentPages, filters_of
from gateway.console.charts import LastHour
from gateway.console.live import LiveSocket
from gateway.console.operator import OperatorPages
from gateway.console.site import HERE, Site

if TYPE_CHECKING:
    from gateway.app import Gateway

OPERATOR = "operator"


class Console:
    def __init__(self, gateway: Gateway, *, live_interval: float = 1.0) -> None:
        self.gateway = gateway
        self.site = Site(gateway.config.console)
        self.last_hour = LastHour(self._backlog)
        self.operator = OperatorPages(gateway, self.last_hour)
        self.agent = AgentPages(gateway)
        self.live = LiveSocket(
            {
                "channels": (OPERATOR, self._channels),
                "conversations": (None, self._conversations),
                "conversation": (None, self._conversation),
            },
            live_interval,
            self.site.sessions,
        )

    async def _backlog(self) -> int:
        counts = await self.gateway.store.backlog()
        return sum(c.get("pending", 0) for c in counts.values())

    async def _channels(self, _wanted: dict[str, Any]) -> str:
        return await self.operator.channels_fragment()

    async def _conversations(self, wanted: dict[str, Any]) -> str:
        return self.agent.list_fragment(await self.agent.listed(filters_of(wanted)))

    async def _conversation(self, wanted: dict[str, Any]) -> str | None:
        found = await self.gateway.store.get_conversation(str(wanted.get("id", "")))
        return await self.agent.history_fragment(found) if found is not None else None

    def mount(self, app: web.Application) -> None:
        site, ops, agent, guard = self.site, self.operator, self.agent, self.site.guard
        add_get, add_post = app.router.add_get, app.router.add_post
        add_get("/console/login", site.login_page)
        add_post("/console/login", site.login)
        add_post("/console/logout", guard(site.logout))
        add_get("/console", guard(site.home))
        add_get("/console/channels", guard(ops.channels, OPERATOR))
        add_get("/console/trouble", guard(ops.trouble, OPERATOR))
        add_post(
            "/console/trouble/{kind:inbox|dead}/{row_id}/{action:replay|discard}",
            guard(ops.trouble_action, OPERATOR),
        )
        add_get("/console/composer", guard(ops.composer, OPERATOR))
        add_post("/console/api/preview", guard(ops.previews, OPERATOR))
        add_post("/console/api/send", guard(ops.send, OPERATOR))
        add_get("/console/api/messages/{message_id}", guard(ops.message_state, OPERATOR))
        add_get("/console/charts", guard(ops.charts, OPERATOR))
        add_get("/console/conversations", guard(agent.conversations))
        add_get("/console/conversations/{conversation_id}", guard(agent.conversation))
        add_post("/console/conversations/{conversation_id}/{action}", guard(agent.act))
        add_get("/console/live", guard(self.live.handle))
        app.router.add_static("/console/static", HERE / "static")
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)

    async def _start(self, _app: web.Application) -> None:
        self.last_hour.start()

    async def _stop(self, _app: web.Application) -> None:
        await self.last_hour.stop()
