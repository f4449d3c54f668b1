"""The web channel's API bodies (docs/web-channel.md): tokens and actions for backends."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, model_validator

from gateway.schema.content import Model

WebUserId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@-]+$")]


class WebTokenRequest(Model):
    channel: str = Field(description="A configured channel of type `web`.")
    user: WebUserId = Field(description="The platform's id of the user the app is logged in as.")
    ttl_seconds: int | None = Field(
        default=None,
        ge=30,
        le=86400,
        description="The token's lifetime; the channel's `token_ttl_seconds` when unset.",
    )


class WebToken(Model):
    token: str = Field(description="For the socket's `auth` frame. A credential: never log it.")
    expires_at: datetime
    socket_path: str = Field(description="Where the app connects: `/web/{channel}/socket`.")


class WebActionRequest(Model):
    channel: str
    user: WebUserId
    action: Literal["typing_on", "typing_off", "read"]
    external_id: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        default=None,
        description="For `read`: the user's message read up to (its event's `external_id`).",
    )

    @model_validator(mode="after")
    def _read_names_a_message(self) -> WebActionRequest:
        if self.action == "read" and self.external_id is None:
            raise ValueError("external_id is required for a read action")
        return self


class WebActionAccepted(Model):
    devices: int = Field(description="The user's connected devices it was pushed to.")
