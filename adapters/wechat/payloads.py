"""WeChat's webhook pushes as typed models, read from XML without entity expansion.

Messages: https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Receiving_standard_messages.html
Events:   https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Receiving_event_pushes.html
Menu replies (`bizmsgmenuid`): https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Service_Center_messages.html

Every push is one flat `<xml>` element of text children (a few events nest one level more).
It is read with defusedxml (no DTD, no entities, no external references: a "billion laughs"
body is refused, not expanded) into a dict, then validated by the model of its `MsgType` (and,
for events, its `Event`): the same pydantic models the schema uses, so a wrong field is named
in the error. Unknown fields are kept (`model_extra`); unknown types are the adapter's
`unsupported` events. pydantic-xml would bind the XML directly, but WeChat's XML is flat text
nodes, so element -> dict -> model needs no second modelling library.
"""

from __future__ import annotations

from typing import Any, TypeVar
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.base import PayloadError
from adapters.payload_errors import describe

# The deepest documented push nests four levels (event > SendPicsInfo > PicList > item);
# anything deeper is not WeChat's.
MAX_XML_DEPTH = 6


class Push(BaseModel):
    """What every push carries. `ToUserName` is the account's original id (gh_...),
    `FromUserName` the user's OpenID, `CreateTime` epoch seconds."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, frozen=True)

    ToUserName: str
    FromUserName: str = Field(min_length=1)
    CreateTime: int = Field(ge=0)
    MsgType: str


class _Message(Push):
    MsgId: str = Field(min_length=1, pattern=r"^\d+$")  # "64-bit integer", sent as digits


class Text(_Message):
    Content: str = Field(min_length=1)
    bizmsgmenuid: str | None = None  # a tapped `msgmenu` item: its id


class Image(_Message):
    PicUrl: str
    MediaId: str


class Voice(_Message):
    MediaId: str
    Format: str
    Recognition: str | None = None  # speech recognition, when the account enabled it


class Video(_Message):  # MsgType video and shortvideo
    MediaId: str
    ThumbMediaId: str


class Location(_Message):
    Location_X: float = Field(ge=-90, le=90)  # latitude
    Location_Y: float = Field(ge=-180, le=180)  # longitude
    Scale: int | None = None
    Label: str | None = None


class Link(_Message):
    Title: str
    Description: str | None = None
    Url: str


class Event(Push):
    Event: str
    EventKey: str | None = None  # CLICK: the menu key; subscribe by QR code: qrscene_...
    Ticket: str | None = None  # subscribe or SCAN by QR code


class Click(Event):
    EventKey: str = Field(min_length=1)


class ReportedLocation(Event):  # Event LOCATION: the user shares where they are
    Latitude: float = Field(ge=-90, le=90)
    Longitude: float = Field(ge=-180, le=180)
    Precision: float | None = None


class TemplateSent(Event):  # Event TEMPLATESENDJOBFINISH: a template message's fate
    MsgID: str = Field(min_length=1)
    Status: str


MESSAGES: dict[str, type[Push]] = {
    "text": Text,
    "image": Image,
    "voice": Voice,
    "video": Video,
    "shortvideo": Video,
    "location": Location,
    "link": Link,
}
EVENTS: dict[str, type[Event]] = {
    "CLICK": Click,
    "LOCATION": ReportedLocation,
    "TEMPLATESENDJOBFINISH": TemplateSent,
}


_REFUSED = {
    "DTDForbidden": "a DTD",
    "EntitiesForbidden": "an entity",
    "ExternalReferenceForbidden": "an external reference",
}


def read_xml(body: bytes) -> dict[str, Any]:
    """The `<xml>` root of a push as a dict of its children (text, or dicts one level down);
    PayloadError when the body is not such XML, or declares a DTD or an entity."""
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        what = _REFUSED.get(type(exc).__name__, "a construct WeChat never sends")
        raise PayloadError(f"XML refused: it declares {what}") from None
    except ParseError as exc:
        raise PayloadError(f"malformed XML: {exc}") from None
    if root.tag != "xml":
        raise PayloadError(f"not a WeChat push: the root element is <{root.tag}>, not <xml>")
    fields = _children(root, 1)
    if not isinstance(fields, dict):
        raise PayloadError("not a WeChat push: <xml> has no fields")
    return fields


def _children(node: Element, depth: int) -> str | dict[str, Any]:
    children = list(node)
    if not children:
        return node.text or ""
    if depth >= MAX_XML_DEPTH:
        raise PayloadError(f"XML nests deeper than {MAX_XML_DEPTH} levels")
    fields: dict[str, Any] = {}
    for child in children:
        value = _children(child, depth + 1)
        if child.tag not in fields:
            fields[child.tag] = value
        elif isinstance(fields[child.tag], list):
            fields[child.tag].append(value)
        else:
            fields[child.tag] = [fields[child.tag], value]
    return fields


def model_of(fields: dict[str, Any]) -> type[Push] | None:
    """The model for a push's type; None for a type this gateway does not read."""
    kind = fields.get("MsgType")
    if not isinstance(kind, str) or not kind:
        raise PayloadError("MsgType: missing or not text")
    if kind != "event":
        return MESSAGES.get(kind)
    event = fields.get("Event")
    if not isinstance(event, str) or not event:
        raise PayloadError("Event: missing or not text")
    return EVENTS.get(event, Event)


P = TypeVar("P", bound=Push)


def validated(model: type[P], fields: dict[str, Any]) -> P:
    """`fields` as `model`; PayloadError naming the first wrong field otherwise."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise PayloadError(f"invalid payload: {describe(exc)}") from None
