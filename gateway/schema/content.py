"""Message content: what a user sent us, or what a backend wants delivered.

One discriminated union (`Content`, keyed on `type`) covers every channel. Rich types
(buttons, list, carousel, form, template) are part of the contract from the start; the
downgrade engine decides how each one reaches a channel that cannot show it natively.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal, TypeGuard, final

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from gateway.schema.limits import (
    MAX_CARD_ACTIONS,
    MAX_CARDS,
    MAX_CHOICES,
    MAX_CODE,
    MAX_CONTACT_ENTRIES,
    MAX_CONTACTS,
    MAX_EMAIL,
    MAX_FILENAME,
    MAX_FORM_FIELDS,
    MAX_LABEL,
    MAX_NAME,
    MAX_PAYLOAD,
    MAX_PHONE,
    MAX_ROWS,
    MAX_SECTIONS,
    MAX_TEMPLATE_COMPONENTS,
    MAX_TEXT,
    MAX_URL,
    Bound,
    JsonBound,
)


class Model(BaseModel):
    """Base for every schema model: unknown fields are errors, not silently dropped.

    Actions and contents are `@final`, so hot paths may test `type(x) is SomeAction`: on
    pydantic models (ABCMeta) an isinstance() that fails costs five times one that succeeds.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


NonEmpty = Annotated[str, Field(min_length=1)]
# Strings by what they hold, each with its bound on API input (gateway/schema/limits.py).
Text = Annotated[str, Field(min_length=1), Bound(MAX_TEXT)]
OptionalText = Annotated[str, Bound(MAX_TEXT)] | None
Label = Annotated[str, Field(min_length=1), Bound(MAX_LABEL)]
OptionalLabel = Annotated[str, Bound(MAX_LABEL)] | None
Payload = Annotated[str, Field(min_length=1), Bound(MAX_PAYLOAD)]
Url = Annotated[str, Field(min_length=1), Bound(MAX_URL)]
OptionalUrl = Annotated[str, Bound(MAX_URL)] | None
Phone = Annotated[str, Field(min_length=1), Bound(MAX_PHONE)]
Name = Annotated[str, Field(min_length=1), Bound(MAX_NAME)]
OptionalName = Annotated[str, Bound(MAX_NAME)] | None
OptionalCode = Annotated[str, Bound(MAX_CODE)] | None
OptionalFilename = Annotated[str, Bound(MAX_FILENAME)] | None
# Free-form JSON a client passes through (form answers, template components, metadata).
JsonObject = Annotated[dict[str, Any], JsonBound()]


# --- actions ---------------------------------------------------------------------------


@final
class ReplyAction(Model):
    """A choice whose tap comes back as a `postback` event carrying `payload`."""

    type: Literal["reply"] = "reply"
    title: Label
    payload: Payload


@final
class PostbackAction(Model):
    """Like `reply`, but the tap is not echoed as user text where the channel can avoid it."""

    type: Literal["postback"] = "postback"
    title: Label
    payload: Payload


@final
class LinkAction(Model):
    type: Literal["link"] = "link"
    title: Label
    url: Url


@final
class CallAction(Model):
    type: Literal["call"] = "call"
    title: Label
    phone: Phone


@final
class LocationRequestAction(Model):
    type: Literal["location_request"] = "location_request"
    title: Label = "Send location"


@final
class BuyAction(Model):
    """A payment link: rendered as a URL button where possible, else the link in text."""

    type: Literal["buy"] = "buy"
    title: Label
    amount: Decimal = Field(gt=0)
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    url: Url
    payload: Annotated[str, Bound(MAX_PAYLOAD)] | None = None


@final
class ShareAction(Model):
    type: Literal["share"] = "share"
    title: Label = "Share"
    url: OptionalUrl = None


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

    url: OptionalUrl = None
    provider_media_id: OptionalName = None
    mime_type: OptionalFilename = None
    filename: OptionalFilename = None
    size: int | None = Field(default=None, ge=0)
    sha256: OptionalCode = None

    @model_validator(mode="after")
    def _needs_a_source(self) -> Media:
        if not self.url and not self.provider_media_id:
            raise ValueError("media needs a url or a provider_media_id")
        return self


class ContactName(Model):
    formatted_name: Label
    first_name: OptionalLabel = None
    last_name: OptionalLabel = None
    middle_name: OptionalLabel = None
    prefix: OptionalLabel = None
    suffix: OptionalLabel = None


class ContactPhone(Model):
    phone: Phone
    type: OptionalLabel = None
    wa_id: OptionalCode = None


class ContactEmail(Model):
    email: Annotated[str, Field(min_length=1), Bound(MAX_EMAIL)]
    type: OptionalLabel = None


class ContactAddress(Model):
    street: OptionalLabel = None
    city: OptionalLabel = None
    state: OptionalLabel = None
    zip: OptionalCode = None
    country: OptionalLabel = None
    country_code: OptionalCode = None
    type: OptionalLabel = None


class ContactOrg(Model):
    company: OptionalLabel = None
    department: OptionalLabel = None
    title: OptionalLabel = None


class ContactUrl(Model):
    url: Url
    type: OptionalLabel = None


class Contact(Model):
    name: ContactName
    phones: Annotated[list[ContactPhone], Bound(MAX_CONTACT_ENTRIES)] = []
    emails: Annotated[list[ContactEmail], Bound(MAX_CONTACT_ENTRIES)] = []
    addresses: Annotated[list[ContactAddress], Bound(MAX_CONTACT_ENTRIES)] = []
    urls: Annotated[list[ContactUrl], Bound(MAX_CONTACT_ENTRIES)] = []
    org: ContactOrg | None = None
    birthday: OptionalCode = None


class ListItem(Model):
    title: Label
    payload: Payload
    description: OptionalLabel = None


class ListSection(Model):
    title: OptionalLabel = None
    items: Annotated[list[ListItem], Bound(MAX_ROWS)] = Field(min_length=1)


@final
class CarouselItem(Model):
    title: Label
    description: OptionalLabel = None
    media: Media | None = None
    actions: Annotated[list[Action], Bound(MAX_CARD_ACTIONS)] = []
    default_url: OptionalUrl = None


class FormOption(Model):
    value: Payload
    title: Label


class FormField(Model):
    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$"), Bound(MAX_CODE)]
    label: Label
    type: Literal["text", "email", "number", "select"] = "text"
    required: StrictBool = True  # 0 and 1 are not answers to 'is it required?'
    options: Annotated[list[FormOption], Bound(MAX_CHOICES)] = []

    @model_validator(mode="after")
    def _select_has_options(self) -> FormField:
        if self.type == "select" and not self.options:
            raise ValueError("a select field needs at least one option")
        return self


class TemplateRef(Model):
    """A provider-approved template (WhatsApp): name, language and components as Meta defines them."""

    name: Name
    language: Annotated[str, Field(min_length=1), Bound(MAX_CODE)]
    components: Annotated[list[JsonObject], Bound(MAX_TEMPLATE_COMPONENTS)] = []


# --- content types ---------------------------------------------------------------------


class _Content(Model):
    # A factory, not `= []`: pydantic deep-copies a mutable default for every content built
    # (copy.deepcopy in Python, a few percent of a webhook's parse); the schema still says [].
    quick_replies: Annotated[list[Action], Bound(MAX_CHOICES)] = Field(
        default_factory=list, json_schema_extra={"default": []}
    )


@final
class TextContent(_Content):
    type: Literal["text"] = "text"
    text: Text


class _MediaContent(_Content):
    media: Media
    caption: OptionalText = None


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
    name: OptionalLabel = None
    address: OptionalLabel = None
    url: OptionalUrl = None


@final
class ContactsContent(_Content):
    type: Literal["contacts"] = "contacts"
    contacts: Annotated[list[Contact], Bound(MAX_CONTACTS)] = Field(min_length=1)


@final
class ButtonsContent(_Content):
    type: Literal["buttons"] = "buttons"
    text: Text
    actions: Annotated[list[Action], Bound(MAX_CHOICES)] = Field(min_length=1)
    header: OptionalLabel = None
    footer: OptionalLabel = None
    media: Media | None = None


@final
class ListContent(_Content):
    type: Literal["list"] = "list"
    text: Text
    button: Annotated[str, Bound(MAX_LABEL)] = "Options"
    sections: Annotated[list[ListSection], Bound(MAX_SECTIONS)] = Field(min_length=1)
    header: OptionalLabel = None
    footer: OptionalLabel = None


@final
class CarouselContent(_Content):
    type: Literal["carousel"] = "carousel"
    text: OptionalText = None
    items: Annotated[list[CarouselItem], Bound(MAX_CARDS)] = Field(min_length=1)


@final
class FormContent(_Content):
    type: Literal["form"] = "form"
    title: Label
    text: OptionalText = None
    fields: Annotated[list[FormField], Bound(MAX_FORM_FIELDS)] = Field(min_length=1)


@final
class FormResponseContent(_Content):
    type: Literal["form_response"] = "form_response"
    form_id: Name
    values: JsonObject


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
