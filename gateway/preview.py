"""Preview: what one message becomes on each channel, without sending anything.

Used by `POST /v1/preview` and `gateway render`. The same engine and the same adapter
rendering as a real send, so a preview is exactly what the provider would receive.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from pydantic import Field, SecretStr

from adapters.base import Adapter, ChannelConfig, SendContext, SendError
from gateway.downgrade import PlanError, plan
from gateway.plaintext import to_text
from gateway.schema.content import Content, Model
from gateway.schema.events import ChannelRef
from gateway.schema.limits import MAX_PREVIEW_CHANNELS, Bound, ContentBound

PREVIEW_RECIPIENT = "preview-recipient"


class PreviewRequest(Model):
    content: Annotated[Content, ContentBound()]
    channels: Annotated[list[Annotated[str, Bound(64)]], Bound(MAX_PREVIEW_CHANNELS)] | None = (
        Field(
            default=None, description="Channel instance ids; all configured channels when absent."
        )
    )
    to: Annotated[str, Bound(256)] | None = Field(
        default=None, description="Recipient id to render for."
    )


class ProviderCall(Model):
    method: str
    path: str
    json_body: dict[str, Any] | None = Field(default=None, alias="json")
    form: dict[str, Any] | None = None
    headers: dict[str, str] = {}


class NumberedChoice(Model):
    number: int
    title: str
    payload: str


class ChannelPreview(Model):
    channel: ChannelRef
    requests: list[ProviderCall] = []
    text: str = Field(default="", description="Plain text of what the recipient will see.")
    downgrades: list[str] = []
    choices: list[NumberedChoice] = []
    error: str | None = None


class PreviewResponse(Model):
    previews: list[ChannelPreview]


def preview(adapter: Adapter, content: Content, recipient: str | None = None) -> ChannelPreview:
    channel = ChannelRef(id=adapter.config.id, type=adapter.type)
    now = time.time()
    context = SendContext(
        message_id="msg_preview",
        recipient_id=recipient or PREVIEW_RECIPIENT,
        now=now,
        last_inbound_at=now,  # a preview assumes the conversation is open
        status_callback_url=None,
    )
    try:
        planned = plan(content, adapter.profile)
        requests = adapter.render_parts(planned.parts, context)
    except (PlanError, SendError) as exc:
        return ChannelPreview(channel=channel, error=str(exc))
    return ChannelPreview(
        channel=channel,
        requests=[
            ProviderCall(
                method=r.method, path=r.path, json_body=r.json, form=r.form, headers=r.headers
            )
            for r in requests
        ],
        text="\n\n".join(to_text(part) for part in planned.parts),
        downgrades=[str(d) for d in planned.downgrades],
        choices=[
            NumberedChoice(number=c.number, title=c.title, payload=c.payload)
            for c in planned.choices
        ],
    )


def placeholder_config(model: type[ChannelConfig], channel_type: str) -> ChannelConfig:
    """A config for rendering without credentials: every required field holds `<name>`."""
    values: dict[str, Any] = {"id": channel_type, "type": channel_type}
    for name, info in model.model_fields.items():
        if name in values or not info.is_required():
            continue
        values[name] = SecretStr(f"<{name}>") if info.annotation is SecretStr else f"<{name}>"
    defaults = {n: i.default for n, i in model.model_fields.items() if not i.is_required()}
    return model.model_construct(**{**defaults, **values})
