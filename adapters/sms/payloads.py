"""Twilio Messaging webhooks (form-encoded), as Twilio documents them.

Inbound message: https://www.twilio.com/docs/messaging/guides/webhook-request
Status callback: https://www.twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks

    MessageSid=SM1f0e…&AccountSid=AC3f…&From=%2B14155550100&To=%2B14155550199
    &Body=Hello&NumMedia=1&MediaUrl0=https%3A%2F%2Fapi.twilio.com%2F…&MediaContentType0=image%2Fpng

Every value of a form is text; a parameter Twilio sends once that comes twice is read as a
list, and refused by the model with its name (`From: expected a string, got a list`).
Parameters the models do not name are ignored by them (Twilio adds some for WhatsApp,
geographic data and more): the inbox keeps the raw form, so nothing is lost by not copying them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

# An MMS carries at most 10 media: https://www.twilio.com/docs/messaging/guides/webhook-request
MAX_MEDIA = 10


class Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class Webhook(Payload):
    """What both kinds of webhook carry. `SmsSid` is the older name of `MessageSid`."""

    MessageSid: str | None = None
    SmsSid: str | None = None
    AccountSid: str | None = None
    MessagingServiceSid: str | None = None
    # Always sent by Twilio; a hand-made request without one is read as before, with an
    # empty party, rather than refused.
    From: str = ""
    To: str = ""

    @property
    def sid(self) -> str:
        return self.MessageSid or self.SmsSid or ""


# MediaUrl0..9 and MediaContentType0..9, named field by field so each is checked as text.
_NUMBERED: dict[str, Any] = {
    f"{name}{index}": (str | None, None)
    for index in range(MAX_MEDIA)
    for name in ("MediaUrl", "MediaContentType")
}
_MediaFields = create_model("_MediaFields", __base__=Payload, **_NUMBERED)


class InboundMessage(Webhook, _MediaFields):
    """An SMS or MMS a user sent: https://www.twilio.com/docs/messaging/guides/webhook-request"""

    Body: str = ""
    # Lax: a form's number is text ("2"); anything else names the field.
    NumMedia: int = Field(default=0, ge=0, le=MAX_MEDIA, strict=False)
    OptOutType: str = ""  # STOP, START or HELP with Advanced Opt-Out
    FromCity: str | None = None
    FromState: str | None = None
    FromZip: str | None = None
    FromCountry: str | None = None
    NumSegments: str | None = None

    def media(self) -> list[tuple[int, str | None, str | None]]:
        """(index, MediaUrl{index}, MediaContentType{index}) of each of NumMedia media."""
        return [
            (i, getattr(self, f"MediaUrl{i}"), getattr(self, f"MediaContentType{i}"))
            for i in range(self.NumMedia)
        ]


class StatusCallback(Webhook):
    """The fate of a message we sent:
    https://www.twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks"""

    MessageStatus: str
    ErrorCode: str | None = None  # https://www.twilio.com/docs/api/errors
    ErrorMessage: str | None = None


def fields(params: dict[str, list[str]]) -> dict[str, str | list[str]]:
    """A parsed form as a model reads it: one value as text, a repeated parameter as a list."""
    return {k: v[0] if len(v) == 1 else v for k, v in params.items()}
