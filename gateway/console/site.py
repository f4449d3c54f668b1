"""The console's frame: login and logout, the session and role check every page goes through,
the CSRF check every change goes through, and page rendering (docs/console.md)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from gateway.config import ConsoleAccount, ConsoleConfig
from gateway.console.auth import LoginThrottle, Session, Sessions, password_matches
from gateway.logs import get_logger
from gateway.store import is_store_error

log = get_logger("gateway.console")

COOKIE = "gateway_console"
SESSION = web.RequestKey("console_session", Session)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HERE = Path(__file__).parent

TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,  # every value from the store or a provider is escaped
    undefined=jinja2.Undefined,  # absent optional fields (exclude_none) draw as nothing
)
TEMPLATES.filters["when"] = lambda ts: (
    time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + " UTC" if ts else "never"
)


def render(request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
    session = request.get(SESSION)
    text = TEMPLATES.get_template(template).render(session=session, path=request.path, **values)
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def refused(request: web.Request, status: int, message: str) -> web.Response:
    if _wants_json(request):
        return web.json_response({"error": "refused", "message": message}, status=status)
    return render(request, "refused.html", status, message=message)


def _wants_json(request: web.Request) -> bool:
    return "/api/" in request.path or "application/json" in request.headers.get("Accept", "")


class Site:
    """Accounts, sessions and the guard around every console handler."""

    def __init__(self, config: ConsoleConfig) -> None:
        self.config = config
        self.accounts = {a.name: a for a in config.accounts}
        self.sessions = Sessions(config.session_minutes * 60)
        self.throttle = LoginThrottle()

    def set_accounts(self, config: ConsoleConfig) -> None:
        """A reload's accounts: sessions of accounts removed or changed end now."""
        new = {a.name: a for a in config.accounts}
        self.sessions.end_for({n for n, a in self.accounts.items() if new.get(n) != a})
        self.accounts = new
        self.config = config

    def guard(self, handler: Handler, role: str | None = None) -> Handler:
        """`handler` for a logged-in session (of `role`, when given), changes with its CSRF
        token."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            session = self.sessions.get(request.cookies.get(COOKIE))
            if session is None:
                if request.method == "GET" and not _wants_json(request):
                    raise web.HTTPSeeOther("/console/login")
                return refused(request, 401, "log in first")
            request[SESSION] = session
            if role is not None and session.role != role:
                return refused(request, 403, f"this page is for the {role} role")
            if request.method not in ("GET", "HEAD"):
                sent = request.headers.get("X-CSRF-Token")
                if sent is None and request.content_type in (
                    "application/x-www-form-urlencoded",
                    "multipart/form-data",
                ):
                    field = (await request.post()).get("csrf")
                    sent = field if isinstance(field, str) else None
                if not session.csrf_matches(sent):
                    log.warning("console_csrf_refused", account=session.account, path=request.path)
                    return refused(request, 403, "the form's CSRF token is missing or wrong")
            try:
                return await handler(request)
            except web.HTTPException:
                raise
            except Exception as exc:
                if is_store_error(exc):
                    log.error("console_store_failed", path=request.path, error=type(exc).__name__)
                    return refused(request, 503, "the store did not answer; try again shortly")
                log.exception("console_failed", path=request.path)
                return refused(request, 500, "the console failed on this request")

        return guarded

    async def login_page(self, request: web.Request) -> web.Response:
        return render(request, "login.html", error=None)

    async def login(self, request: web.Request) -> web.Response:
        # Login CSRF: a browser names the page a form came from; another site's is refused.
        origin = request.headers.get("Origin")
        if origin is not None and origin.split("://", 1)[-1] != request.host:
            log.warning("console_login_foreign_origin", remote=request.remote)
            return refused(request, 403, "log in from the console's own page")
        form = await request.post()
        name, password = str(form.get("name", "")), str(form.get("password", ""))
        keys = (f"account:{name}", f"address:{request.remote}")
        wait = self.throttle.delay(*keys)
        if wait:
            await asyncio.sleep(wait)
        account: ConsoleAccount | None = self.accounts.get(name)
        # argon2 takes tens of milliseconds of CPU: off the event loop, webhooks keep flowing.
        if not await asyncio.to_thread(password_matches, account, password):
            failures = self.throttle.failed(*keys)
            log.warning(
                "console_login_failed",
                account=name[:64],
                known_account=account is not None,
                remote=request.remote,
                failures=failures,
            )
            return render(request, "login.html", 401, error="wrong name or password")
        assert account is not None
        self.throttle.succeeded(*keys)
        session = self.sessions.open(account)
        log.info("console_login", account=account.name, role=account.role)
        response = web.HTTPSeeOther("/console")
        response.set_cookie(
            COOKIE,
            session.id,
            path="/console",
            httponly=True,
            samesite="Strict",
            secure=request.secure or self.config.secure_cookies,
            max_age=int(self.sessions.lifetime),
        )
        raise response

    async def logout(self, request: web.Request) -> web.Response:
        self.sessions.close(request[SESSION].id)
        response = web.HTTPSeeOther("/console/login")
        response.del_cookie(COOKIE, path="/console")
        raise response

    async def home(self, request: web.Request) -> web.Response:
        operator = request[SESSION].role == "operator"
        raise web.HTTPSeeOther("/console/channels" if operator else "/console/conversations")
