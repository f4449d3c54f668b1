"""Twilio sends through the official SDK, its HTTP done by the gateway's one client.

`SmsAdapter.render` produces one form per message (To, From or MessagingServiceSid, Body,
MediaUrl, StatusCallback); this sender turns it into `messages.create_async(...)` and turns
the SDK's exceptions into classified `SendError`s.

The SDK builds every URL from its API domain's `base_url` ("https://api.twilio.com"); setting
that attribute to the channel's `api_base_url` sends the same requests to the simulator (or to
a regional edge) with no URL rewriting and no private API.

The SDK takes any object with its HttpClient's `request` for its I/O; ours does it through
the gateway's httpx client (gateway/outbound/transport.py), so Twilio sends share its connection pool
and the tests' mocking seam (respx, httpx.MockTransport) with every other request.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from contextvars import ContextVar
from urllib.parse import urlencode

import httpx
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.response import Response
from twilio.rest import Client

from adapters.base import ProviderRequest, SendError, retry_after_seconds, unanswered
from adapters.sms import SmsConfig, send_error
from gateway.outbound.http_client import direct, new_client

# Longer than Twilio's own API timeouts: a send that takes this long is retried.
SEND_TIMEOUT_SECONDS = 15.0

# SDK keyword per form field of a rendered request.
_ARGUMENTS = {
    "To": "to",
    "From": "from_",
    "MessagingServiceSid": "messaging_service_sid",
    "Body": "body",
    "MediaUrl": "media_url",
    "StatusCallback": "status_callback",
}

# The headers of the latest Twilio answer in this task: the SDK's exceptions do not carry them.
_last_headers: ContextVar[Mapping[str, str] | None] = ContextVar(
    "twilio_last_headers", default=None
)


def _retry_after() -> float | None:
    headers = _last_headers.get()
    return retry_after_seconds(headers) if headers is not None else None


def _form(data: Mapping[str, object]) -> list[tuple[str, str]]:
    """A form's fields as httpx sends them: a list is one field a value, booleans as JSON's."""
    fields: list[tuple[str, str]] = []
    for name, value in data.items():
        for item in value if isinstance(value, list | tuple) else [value]:
            fields.append((name, _text(item)))
    return fields


def _text(value: object) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return "" if value is None else str(value)


class _HttpClient:
    """The SDK's asynchronous HttpClient over an httpx client, remembering each answer's
    headers (for Retry-After): the SDK's exceptions do not carry them."""

    is_async = True

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the SDK's HttpClient interface
        allow_redirects: bool = False,
    ) -> Response:
        headers = dict(headers or {})
        if auth is not None:
            pair = f"{auth[0]}:{auth[1]}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        _last_headers.set(None)
        fast = direct(self.client)
        if fast is not None and not params:
            # The gateway's own client: straight to its pool (gateway/http_client.py says why),
            # the form encoded as httpx encodes it.
            body = urlencode(_form(data), doseq=True).encode() if data else None
            if body is not None:
                headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
            answer = await fast.exchange(
                method.upper(),
                url,
                headers,
                body,
                self.client.timeout if timeout is None else httpx.Timeout(timeout),
            )
            _last_headers.set(answer.headers)
            return Response(
                answer.status, answer.content.decode("utf-8", "replace"), answer.headers
            )
        response = await self.client.request(
            method.upper(),
            url,
            params=params,  # type: ignore[arg-type]
            data=data,
            headers=headers,
            timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            follow_redirects=allow_redirects,
        )
        _last_headers.set(response.headers)
        return Response(response.status_code, response.text, response.headers)


class TwilioSender:
    def __init__(
        self,
        config: SmsConfig,
        timeout: float = SEND_TIMEOUT_SECONDS,
        *,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        """`client`: the gateway's; without one the sender has (and closes) one of its own."""
        self.timeout = timeout
        self._own_client = client is None
        self.http = _HttpClient(client or new_client())
        twilio = Client(
            config.account_sid, config.auth_token.get_secret_value(), http_client=self.http
        )
        twilio.api.base_url = config.api_base_url.rstrip("/")
        self.messages = twilio.api.account.messages

    async def send(self, request: ProviderRequest) -> str:
        unknown = set(request.form or {}) - set(_ARGUMENTS)
        if unknown:
            raise SendError("permanent", "unsupported_param", f"cannot send {sorted(unknown)}")
        arguments = {_ARGUMENTS[k]: v for k, v in (request.form or {}).items()}
        try:
            async with asyncio.timeout(self.timeout):
                message = await self.messages.create_async(**arguments)
        except TwilioRestException as exc:
            # The SDK prefixes Twilio's own message with its operation ("Unable to create record: ").
            text = str(exc.msg or "").removeprefix("Unable to create record").lstrip(": ")
            raise send_error(int(exc.status), exc.code, text, _retry_after()) from None
        except TwilioServiceException as exc:
            message_text = str(exc.detail or exc.title or "")
            raise send_error(int(exc.status), exc.code, message_text, _retry_after()) from None
        except TimeoutError:
            # Twilio may have accepted it: at-least-once means it may go out twice.
            raise SendError("retry", "timeout", "Twilio did not answer in time") from None
        except httpx.HTTPError as exc:
            raise unanswered(exc, "Twilio") from None
        return str(message.sid)

    async def aclose(self) -> None:
        if self._own_client:
            await self.http.client.aclose()
