"""Message content: what a user sent us, or what a backend wants delivered.

One discriminated union (`Content`, keyed on `type`) covers every channel. Rich types
(buttons, list, carousel, form, template) are part of the contract from the start; the
downgrade engine decides how each one reaches a channel that cannot show it natively.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal, TypeGuard, final

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator


class Model(BaseModel):
    """Base for every schema model: unknown fields are errors, not silently dropped.

    Actions and contents are `@final`, so hot paths may test `type(x) is SomeAction`: on
    pydantic models (ABCMeta) an isinstance() that fails costs five times one that succeeds.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


NonEmpty = Annotated[str, Field(min_length=1)]


# --- actions ---------------------------------------------------------------------------


@final
class ReplyAction(Model):
    """A choice whose tap comes back as a `postback` event carrying `payload`."""

    type: Literal["reply"] = "reply"
    title: NonEmpty
    payload: NonEmpty


@final
class PostbackAction(Model):
    """Like `reply`, but the tap is not echoed as user text where the channel can avoid it."""

    type: Literal["postback"] = "postback"
    title: NonEmpty
    payload: NonEmpty


@final
class LinkAction(Model):
    type: Literal["link"] = "link"
    title: NonEmpty
    url: NonEmpty


@final
class CallAction(Model):
    type: Literal["call"] = "call"
    title: NonEmpty
    phone: NonEmpty


@final
class LocationRequestAction(Model):
    type: Literal["location_request"] = "location_request"
    title: NonEmpty = "Send location"


@final
class BuyAction(Model):
    """A payment link: rendered as a URL button where possible, else the link in text."""

    type: Literal["buy"] = "buy"
    title: NonEmpty
    amount: Decimal = Field(gt=0)
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    url: NonEmpty
    payload: str | None = None


@final
class ShareAction(Model):
    type: Literal["share"] = "share"
    title: NonEmpty = "Share"
    url: str | None = None


Action = Annotated[
    ReplyAction
    | PostbackAction
    | LinkAction
    | CallAction
    | LocationRequestAction
    | BuyAction
    | ShareAction,
    Field(discriminator="type"),
]


# --- building blocks -------------------------------------------------------------------


class Media(Model):
    """A media object: by public URL, by the provider's media id, or both."""

    # The rule below, in the published schemas too (a client's validator then agrees with us).
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": [source], "properties": {source: {"type": "string", "minLength": 1}}}
                for source in ("url", "provider_media_id")
            ]
        }
    )

    url: str | None = None
    provider_media_id: str | None = None
    mime_type: str | None = None
    filename: str | None = None
    size: int | None = Field(default=None, ge=0)
    sha256: str | None = None

    @model_validator(mode="after")
    def _needs_a_source(self) -> Media:
        if not self.url and not self.provider_media_id:
            raise ValueError("media needs a url or a provider_media_id")
        return self


class ContactName(Model):
    formatted_name: NonEmpty
    first_name: str | None = None
    last_name: str | None = None
    middle_name: str | None = None
    prefix: str | None = None
    suffix: str | None = None


class ContactPhone(Model):
    phone: NonEmpty
    type: str | None = None
    wa_id: str | None = None


class ContactEmail(Model):
    email: NonEmpty
    type: str | None = None


class ContactAddress(Model):
    street: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    country: str | None = None
    country_code: str | None = None
    type: str | None = None


class ContactOrg(Model):
    company: str | None = None
    department: str | None = None
    title: str | None = None


class ContactUrl(Model):
    url: NonEmpty
    type: str | None = None


class Contact(Model):
    name: ContactName
    phones: list[ContactPhone] = []
    emails: list[ContactEmail] = []
    addresses: list[ContactAddress] = []
    urls: list[ContactUrl] = []
    org: ContactOrg | None = None
    birthday: str | None = None


class ListItem(Model):
    title: NonEmpty
    payload: NonEmpty
    description: str | None = None


class ListSection(Model):
    title: str | None = None
    items: list[ListItem] = Field(min_length=1)


@final
class CarouselItem(Model):
    title: NonEmpty
    description: str | None = None
    media: Media | None = None
    actions: list[Action] = []
    default_url: str | None = None


class FormOption(Model):
    value: NonEmpty
    title: NonEmpty


class FormField(Model):
    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    label: NonEmpty
    type: Literal["text", "email", "number", "select"] = "text"
    required: StrictBool = True  # 0 and 1 are not answers to 'is it required?'
    options: list[FormOption] = []

    @model_validator(mode="after")
    def _select_has_options(self) -> FormField:
        if self.type == "select" and not self.options:
            raise ValueError("a select field needs at least one option")
        return self


class TemplateRef(Model):
    """A provider-approved template (WhatsApp): name, language and components as Meta defines them."""

    name: NonEmpty
    language: NonEmpty
    components: list[dict[str, Any]] = []


# --- content types ---------------------------------------------------------------------


class _Content(Model):
    quick_replies: list[Action] = []


@final
class TextContent(_Content):
    type: Literal["text"] = "text"
    text: NonEmpty


class _MediaContent(_Content):
    media: Media
    caption: str | None = None


@final
class ImageContent(_MediaContent):
    type: Literal["image"] = "image"


@final
class VideoContent(_MediaContent):
    type: Literal["video"] = "video"


@final
class AudioContent(_MediaContent):
    type: Literal["audio"] = "audio"
    voice: StrictBool = False


@final
class FileContent(_MediaContent):
    type: Literal["file"] = "file"


@final
class StickerContent(_MediaContent):
    type: Literal["sticker"] = "sticker"
    animated: StrictBool = False


@final
class LocationContent(_Content):
    type: Literal["location"] = "location"
    latitude: float = Field(ge=-90, le=90, strict=True)  # strict: `false` is no latitude
    longitude: float = Field(ge=-180, le=180, strict=True)
    name: str | None = None
    address: str | None = None
    url: str | None = None


@final
class ContactsContent(_Content):
    type: Literal["contacts"] = "contacts"
    contacts: list[Contact] = Field(min_length=1)


@final
class ButtonsContent(_Content):
    type: Literal["buttons"] = "buttons"
    text: NonEmpty
    actions: list[Action] = Field(min_length=1)
    header: str | None = None
    footer: str | None = None
    media: Media | None = None


@final
class ListContent(_Content):
    type: Literal["list"] = "list"
    text: NonEmpty
    button: str = "Options"
    sections: list[ListSection] = Field(min_length=1)
    header: str | None = None
    footer: str | None = None


@final
class CarouselContent(_Content):
    type: Literal["carousel"] = "carousel"
    text: str | None = None
    items: list[CarouselItem] = Field(min_length=1)


@final
class FormContent(_Content):
    type: Literal["form"] = "form"
    title: NonEmpty
    text: str | None = None
    fields: list[FormField] = Field(min_length=1)


@final
class FormResponseContent(_Content):
    type: Literal["form_response"] = "form_response"
    form_id: NonEmpty
    values: dict[str, Any]


@final
class TemplateContent(_Content):
    type: Literal["template"] = "template"
    template: TemplateRef
    fallback: FallbackContent | None = None


FallbackContent = Annotated[
    TextContent
    | ImageContent
    | VideoContent
    | AudioContent
    | FileContent
    | StickerContent
    | LocationContent
    | ContactsContent
    | ButtonsContent
    | ListContent
    | CarouselContent
    | FormContent,
    Field(discriminator="type"),
]

Content = Annotated[
    TextContent
    | ImageContent
    | VideoContent
    | AudioContent
    | FileContent
    | StickerContent
    | LocationContent
    | ContactsContent
    | ButtonsContent
    | ListContent
    | CarouselContent
    | FormContent
    | FormResponseContent
    | TemplateContent,
    Field(discriminator="type"),
]

TemplateContent.model_rebuild()

# Actions whose tap comes back as a postback.
CHOICE_TYPES = ("reply", "postback")
MEDIA_CONTENT_TYPES = ("image", "video", "audio", "file", "sticker")
MediaContent = ImageContent | VideoContent | AudioContent | FileContent | StickerContent
_MEDIA_CONTENT_TYPES = frozenset(MEDIA_CONTENT_TYPES)


def is_media(content: Content) -> TypeGuard[MediaContent]:
    """Whether `content` is a media message. Read from its type tag: on pydantic models an
    isinstance against the five media classes costs ten times this when it fails."""
    return content.type in _MEDIA_CONTENT_TYPES


def is_choice(action: Action) -> TypeGuard[ReplyAction | PostbackAction]:
    """Whether a tap on `action` comes back as a postback (CHOICE_TYPES). Exact type tests:
    the classes are final, and a failing isinstance on a model is slow."""
    return type(action) is ReplyAction or type(action) is PostbackAction


def payload_of(action: Action) -> str | None:
    """The payload a tap on `action` reports: a choice's, or a payment button's if it has one.
    Not getattr(action, "payload", None): on a model a missing attribute raises inside
    __getattr__ first, which costs more than the rest of a card."""
    if is_choice(action) or type(action) is BuyAction:
        return action.payload
    return None
