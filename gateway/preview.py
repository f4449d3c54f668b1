"""Preview: what one message becomes on each channel, without sending anything.

Used by `POST /v1/preview` and `gateway render`. The same engine and the same adapter
rendering as a real send, so a preview is exactly what the provider would receive.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr

from adapters.base import Adapter, ChannelConfig, SendContext, SendError
from gateway.downgrade import PlanError, plan
from gateway.downgrade.plain_text import to_text
from gateway.router.form_questions import CANCEL_WORDS, SKIP_WORDS, accepts, steps
from gateway.schema.content import Content, FormContent, FormField, FormOption, Model
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


class Rendered(Model):
    requests: list[ProviderCall] = []
    text: str = Field(default="", description="Plain text of what the recipient will see.")
    downgrades: list[str] = []
    choices: list[NumberedChoice] = []


class FieldChecks(Model):
    """How an answer to a form's question is checked (gateway/router/form_questions.py `check`)."""

    name: str = Field(description="The answer's key in the form_response values.")
    type: Literal["text", "email", "number", "select"]
    required: bool = Field(description=f"When false, the user may reply {sorted(SKIP_WORDS)}.")
    options: list[FormOption] = Field(
        default=[], description="A select's choices: tapped, typed by title, or by number."
    )
    accepts: str = Field(description="In words, the answers taken; any other is asked again.")


class FormStep(Rendered):
    field: FieldChecks | None = Field(
        default=None, description="The question's field and checks; absent for the introduction."
    )


class ChannelPreview(Rendered):
    """What goes at once (for a form: its introduction and first question), and for a form
    every step in turn (`form`)."""

    channel: ChannelRef
    form: list[FormStep] | None = Field(
        default=None,
        description="A form: the introduction, then each question as the user will see it,"
        f" one after each answer; {sorted(CANCEL_WORDS)} cancels.",
    )
    error: str | None = None
    strict_ok: bool = Field(
        default=False,
        description="Whether a send with `options.adaptation: strict` would pass on this"
        " channel: nothing downgraded (`downgrades` says what would be) and no error.",
    )


class PreviewResponse(Model):
    previews: list[ChannelPreview]


def preview(adapter: Adapter, content: Content, recipient: str | None = None) -> ChannelPreview:
    shown = _preview(adapter, content, recipient)
    return shown.model_copy(update={"strict_ok": not shown.downgrades and shown.error is None})


def strict_refusals(adapter: Adapter, content: Content) -> list[str]:
    """Why a strict send of `content` on the adapter's channel is refused: every downgrade
    the engine would make, or the error that keeps it from being sent at all."""
    shown = _preview(adapter, content, None)
    return [*shown.downgrades, *([shown.error] if shown.error else [])]


def _preview(adapter: Adapter, content: Content, recipient: str | None) -> ChannelPreview:
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
        if isinstance(content, FormContent) and not adapter.profile.forms:
            return _form(channel, adapter, content, context)
        return ChannelPreview(channel=channel, **_rendered(adapter, content, context))
    except (PlanError, SendError) as exc:
        return ChannelPreview(channel=channel, error=str(exc))


def _rendered(adapter: Adapter, content: Content, context: SendContext) -> dict[str, Any]:
    """The fields of a `Rendered`: what one content becomes on the adapter's channel."""
    planned = plan(content, adapter.profile)
    requests = adapter.render_parts(planned.parts, context)
    return {
        "requests": [
            ProviderCall(
                method=r.method, path=r.path, json_body=r.json, form=r.form, headers=r.headers
            )
            for r in requests
        ],
        "text": "\n\n".join(to_text(part) for part in planned.parts),
        "downgrades": [str(d) for d in planned.downgrades],
        "choices": [
            NumberedChoice(number=c.number, title=c.title, payload=c.payload)
            for c in planned.choices
        ],
    }


def _form(
    channel: ChannelRef, adapter: Adapter, form: FormContent, context: SendContext
) -> ChannelPreview:
    """A form is a conversation: at once its introduction and first question (as the dispatcher
    sends them), then each later question after the user's answer. (On a channel that shows
    forms whole, the web channel, it is one message like any other.)"""
    shown = [
        FormStep(field=_checks(field), **_rendered(adapter, content, context))
        for field, content in steps(form)
    ]
    intro, first = shown[0], shown[1]
    return ChannelPreview(
        channel=channel,
        requests=intro.requests + first.requests,
        text=f"{intro.text}\n\n{first.text}",
        downgrades=intro.downgrades + first.downgrades,
        choices=first.choices,
        form=shown,
    )


def _checks(field: FormField | None) -> FieldChecks | None:
    if field is None:
        return None
    return FieldChecks(
        name=field.name,
        type=field.type,
        required=field.required,
        options=field.options,
        accepts=accepts(field),
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
