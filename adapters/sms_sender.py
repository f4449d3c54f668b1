"""Twilio sends through the official SDK's asyncio client.

`SmsAdapter.render` produces one form per message (To, From or MessagingServiceSid, Body,
MediaUrl, StatusCallback); this sender turns it into `messages.create_async(...)` and turns
the SDK's exceptions into classified `SendError`s.

The SDK builds every URL from its API domain's `base_url` ("https://api.twilio.com"); setting
that attribute to the channel's `api_base_url` sends the same requests to the simulator (or to
a regional edge) with no URL rewriting and no private API.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from adapters.base import ProviderRequest, SendError, retry_after_seconds
from adapters.sms import SmsConfig, send_error

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


class _HttpClient:
    """The SDK's AsyncTwilioHttpClient, remembering each answer's headers (for Retry-After).

    Credentials go as an Authorization header rather than aiohttp's deprecated BasicAuth.
    """

    is_async = True

    def __init__(self) -> None:
        self.inner = AsyncTwilioHttpClient()

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
    ) -> Any:
        headers = dict(headers or {})
        if auth is not None:
            pair = f"{auth[0]}:{auth[1]}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        _last_headers.set(None)
        response = await self.inner.request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )
        _last_headers.set(response.headers or {})
        return response

    async def close(self) -> None:
        await self.inner.close()


class TwilioSender:
    def __init__(self, config: SmsConfig, timeout: float = SEND_TIMEOUT_SECONDS) -> None:
        self.timeout = timeout
        self.http = _HttpClient()
        client = Client(
            config.account_sid, config.auth_token.get_secret_value(), http_client=self.http
        )
        client.api.base_url = config.api_base_url.rstrip("/")
        self.messages = client.api.account.messages

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
        except aiohttp.ClientError as exc:
            raise SendError(
                "retry", "connect_error", f"cannot reach Twilio ({type(exc).__name__})"
            ) from None
        return str(message.sid)

    async def aclose(self) -> None:
        await self.http.close()
