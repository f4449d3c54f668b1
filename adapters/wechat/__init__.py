"""WeChat Official Accounts.

Webhooks:   https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Receiving_standard_messages.html
            https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Receiving_event_pushes.html
Signature:  https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/Access_Overview.html
Safe mode:  https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Message_encryption_and_decryption_instructions.html
Send API:   https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Service_Center_messages.html
Templates:  https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Template_Message_Interface.html
Errors:     https://developers.weixin.qq.com/doc/offiaccount/Getting_Started/Global_Return_Code.html

One XML push per POST, signed in the query string (`signature` over token, timestamp and
nonce; in safe mode `msg_signature` also covers the encrypted body). The gateway answers
"success" at once and sends through the customer-service API, never a passive reply.

Choices where WeChat and the schema differ:
- Sends need an access token fetched with the AppSecret: `adapters.wechat.sender` fetches,
  shares and refreshes it; `render` stays pure and names only the path.
- An image by URL goes as a one-article news card showing the picture (custom-send images
  need a media_id from the upload API, which would make the gateway a media proxy); an image
  with a `provider_media_id` goes as a native image.
- Choices go as a `msgmenu`; a tap comes back as a text message with `bizmsgmenuid`, read as a
  postback of that id. A menu CLICK event is a postback of its EventKey too.
- Outside the 48-hour window only templates are sent: TemplateContent's `name` is the
  template_id and its components' objects are merged into `data`; `language` is unused.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import SecretStr, ValidationError, field_validator

from adapters.base import (
    Adapter,
    AddressForm,
    Admission,
    ChannelConfig,
    InboundRequest,
    ParsedEvent,
    PayloadError,
    ProviderRequest,
    Reply,
    SendContext,
    Sender,
    SendError,
    answer_json,
    epoch_seconds,
    provider_id,
    signatures_match,
)
from adapters.payload_errors import describe
from adapters.wechat import payloads
from adapters.wechat.crypto import DecryptError, aes_key, decrypt, signature
from gateway.downgrade.plain_text import to_text
from gateway.downgrade.profile import ButtonsProfile, CarouselProfile, Profile
from gateway.downgrade.split_text import split_text
from gateway.schema import (
    ChannelRef,
    EventDraft,
    MessageBody,
    Party,
    Postback,
    Status,
    Subscription,
    System,
    Unsupported,
)
from gateway.schema.content import (
    AudioContent,
    ButtonsContent,
    CarouselContent,
    CarouselItem,
    ImageContent,
    LinkAction,
    LocationContent,
    Media,
    TemplateContent,
    TextContent,
    VideoContent,
    is_choice,
)
from gateway.schema.content import Content as AnyContent

if TYPE_CHECKING:
    import httpx

CUSTOM_SEND_PATH = "/cgi-bin/message/custom/send"
TEMPLATE_SEND_PATH = "/cgi-bin/message/template/send"
TOKEN_PATH = "/cgi-bin/stable_token"

# Custom-send messages only within 48 hours of the user's last interaction ("目前为48小时"):
# https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Service_Center_messages.html
WINDOW_SECONDS = 48 * 3600
# Text content: the Official Account doc states no limit; the same API in WeChat Customer
# Service documents 2,048 bytes, and longer texts are cut by WeChat:
# https://developer.work.weixin.qq.com/document/path/94677
MAX_TEXT_BYTES = 2048
# msgmenu: at most 10 items (errcode 45098 "msgmenu list size is out of limit"), an item's id
# 1-64 bytes and its text 1-128 bytes, head and tail 1,024 bytes each:
# https://developer.work.weixin.qq.com/document/path/94677 (the menu message of the same API)
MAX_MENU_ITEMS = 10
MAX_MENU_ID_BYTES = 64
MAX_MENU_LABEL_BYTES = 128
MAX_MENU_TEXT_BYTES = 1024
# News (a link card): one article per message, more is errcode 45008:
# https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Service_Center_messages.html
MAX_ARTICLES = 1
# Article title and description: no documented limit; kept short enough to show whole.
MAX_ARTICLE_TITLE = 64
MAX_ARTICLE_DESCRIPTION = 120
# Profile limits count characters and WeChat counts UTF-8 bytes: a character is at most 4.
UTF8_MAX = 4

# Token errors: invalid credential (40001), invalid access_token (40014), expired (42001):
# the sender fetches a new token and tries once more.
TOKEN_ERRORS = frozenset({40001, 40014, 42001})
_RETRY = frozenset({-1, 45009, 45011})  # system busy; API call quota; too frequent
_UNREACHABLE = frozenset({40003})  # invalid openid
_UNSUBSCRIBED = frozenset({43004})  # "require subscribe": the user unfollowed

CAPABILITIES = Profile(
    channel="wechat",
    text_max=MAX_TEXT_BYTES,  # split again by UTF-8 bytes when rendered
    payload_max=MAX_MENU_ID_BYTES,  # a choice's payload is its msgmenu id (bytes checked)
    caption_max=MAX_ARTICLE_TITLE,  # an image by URL: the card's title
    media=frozenset({"image"}),  # by media_id natively, by URL as a picture card
    location=False,  # no location message in custom send: the engine sends a map link
    buttons=ButtonsProfile(
        max_actions=MAX_MENU_ITEMS,
        label_max=MAX_MENU_LABEL_BYTES // UTF8_MAX,
        text_max=MAX_MENU_TEXT_BYTES // UTF8_MAX,
        kinds=frozenset({"reply", "postback"}),
        footer_max=MAX_MENU_TEXT_BYTES // UTF8_MAX,  # tail_content
        media=True,  # a picture card (news) goes first, the menu after it
    ),
    # A news card: one article (title, description, picture, tap link), no buttons; one
    # link action becomes its tap link (its label is not shown). Cards with choices go as a
    # picture card and a msgmenu each (the engine's "cards" form).
    carousel=CarouselProfile(
        max_cards=MAX_ARTICLES,
        title_max=MAX_ARTICLE_TITLE,
        description_max=MAX_ARTICLE_DESCRIPTION,
        max_actions=1,
        label_max=MAX_ARTICLE_TITLE,
        kinds=frozenset({"link"}),
    ),
    templates=True,
    window_hours=WINDOW_SECONDS / 3600,
    notes={
        "image": "by URL: a one-article news card showing the picture",
        "window": "custom-send only within 48 h of the user's last message; templates any time",
    },
)


class WeChatConfig(ChannelConfig):
    type: Literal["wechat"]
    api_base_url: str = "https://api.weixin.qq.com"
    # WeChat limits calls per day per API, not per second; this only smooths bursts.
    rate_limit_per_second: float = 20.0
    app_id: str
    app_secret: SecretStr
    token: SecretStr  # the webhook Token set in the console
    # Set for safe mode (or compatible mode): bodies arrive encrypted with it.
    encoding_aes_key: SecretStr | None = None

    @field_validator("encoding_aes_key")
    @classmethod
    def _is_an_encoding_aes_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            aes_key(value.get_secret_value())  # ValueError names the expected form
        return value


class WeChatAdapter(Adapter):
    type = "wechat"
    config_model = WeChatConfig
    content_types = ("text/xml", "application/xml")
    signature_query = "signature"
    # A push is one message: a 2,048-byte text is under 8 kB even encrypted; 64 kB is margin.
    max_body_bytes = 64 * 1024
    capabilities = CAPABILITIES
    # Only template sends are reported (TEMPLATESENDJOBFINISH); customer-service messages,
    # most of what the gateway sends, never are: no `delivered` to wait for.
    # https://developers.weixin.qq.com/doc/offiaccount/en/Message_Management/Template_Message_Interface.html
    reports_delivery = False
    # An OpenID: 28 characters of base64url in practice; WeChat documents no form beyond that.
    address = AddressForm(
        r"[A-Za-z0-9_-]{16,64}",
        "an OpenID such as oLVPpjqs9BhvzwPj5A-vTYAX3GLc",
        "https://developers.weixin.qq.com/doc/offiaccount/User_Management/Get_users_basic_information_UnionID.html",
    )
    config: WeChatConfig

    def __init__(self, config: ChannelConfig) -> None:
        super().__init__(config)
        key = getattr(self.config, "encoding_aes_key", None)
        try:
            self._aes_key = aes_key(key.get_secret_value()) if key is not None else None
        except ValueError:  # a placeholder config (previews, fuzzing): plain mode
            self._aes_key = None

    # --- inbound -------------------------------------------------------------------
    def _signed(self, query: Mapping[str, Any], *extra: str) -> str:
        return signature(
            self.config.token.get_secret_value(),
            str(query.get("timestamp", "")),
            str(query.get("nonce", "")),
            *extra,
        )

    def handshake(self, query: Mapping[str, str]) -> Reply | None:
        """The console's URL check: echo `echostr` when `signature` is right."""
        given = query.get("signature", "")
        if given and signatures_match(given, self._signed(query)):
            return Reply(200, query.get("echostr", ""))
        return Reply(403, "signature does not match")

    def verify(self, request: InboundRequest) -> bool:
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.public_url).query).items()}
        if self._aes_key is None:
            given = query.get("signature", "")
            return bool(given) and signatures_match(given, self._signed(query))
        given = query.get("msg_signature", "")
        try:
            encrypted = payloads.read_xml(request.body).get("Encrypt")
        except PayloadError:
            return False
        if not given or not isinstance(encrypted, str):
            return False
        return signatures_match(given, self._signed(query, encrypted))

    def _fields(self, body: bytes) -> dict[str, Any]:
        """The push's fields, decrypted first in safe mode."""
        fields = payloads.read_xml(body)
        encrypted = fields.get("Encrypt")
        if encrypted is None:
            return fields
        if self._aes_key is None:
            raise PayloadError("an encrypted push, and no encoding_aes_key is configured")
        if not isinstance(encrypted, str):
            raise PayloadError("Encrypt: not text")
        try:
            xml, app_id = decrypt(self._aes_key, encrypted)
        except DecryptError as exc:
            raise PayloadError(str(exc)) from None
        if app_id != self.config.app_id:
            raise PayloadError(f"encrypted for AppID {app_id!r}, not this channel's")
        return payloads.read_xml(xml)

    def dedupe_key(self, body: bytes) -> str:
        return self.admission(body).key

    def admission(self, body: bytes) -> Admission:
        fields = self._fields(body)
        created = fields.get("CreateTime")
        dated = int(created) if isinstance(created, str) and created.isdigit() else None
        return Admission(_dedupe_key(fields), dated)

    def parse(self, body: bytes) -> list[ParsedEvent]:
        fields = self._fields(body)
        key = _dedupe_key(fields)
        model = payloads.model_of(fields)
        try:
            if model is None:
                return [ParsedEvent(self._unsupported(fields), key)]
            push = payloads.validated(model, fields)
            return [ParsedEvent(self._event(push, fields), key)]
        except ValidationError as exc:  # a value our schema refuses (an empty text, say)
            raise PayloadError(f"invalid payload: {describe(exc)}") from None

    def _common(self, push: payloads.Push, **data: Any) -> dict[str, Any]:
        extra = {k: v for k, v in (push.model_extra or {}).items() if k != "Encrypt"}
        channel_data = {**extra, **{k: v for k, v in data.items() if v is not None}}
        return {
            "channel": ChannelRef(id=self.config.id, type=self.type),
            "external_id": getattr(push, "MsgId", None),
            "timestamp": epoch_seconds(push.CreateTime),
            "sender": Party(id=push.FromUserName),
            "recipient": Party(id=push.ToUserName) if push.ToUserName else None,
            "channel_data": channel_data or None,
        }

    def _event(self, push: payloads.Push, fields: dict[str, Any]) -> EventDraft:
        if isinstance(push, payloads.Event):
            return self._wechat_event(push, fields)
        if isinstance(push, payloads.Text):
            if push.bizmsgmenuid is not None:  # a tapped msgmenu item
                postback = Postback(payload=push.bizmsgmenuid, title=push.Content or None)
                return EventDraft(type="postback", postback=postback, **self._common(push))
            return self._message(TextContent(text=push.Content), push)
        if isinstance(push, payloads.Image):
            url = push.PicUrl if push.PicUrl.startswith(("https://", "http://")) else None
            media = Media(url=url, provider_media_id=push.MediaId)
            return self._message(ImageContent(media=media), push)
        if isinstance(push, payloads.Voice):
            media = Media(provider_media_id=push.MediaId)
            data = {"format": push.Format, "recognition": push.Recognition}
            return self._message(AudioContent(media=media, voice=True), push, **data)
        if isinstance(push, payloads.Video):
            media = Media(provider_media_id=push.MediaId)
            data = {"thumb_media_id": push.ThumbMediaId, "msg_type": push.MsgType}
            return self._message(VideoContent(media=media), push, **data)
        if isinstance(push, payloads.Location):
            content = LocationContent(
                latitude=push.Location_X, longitude=push.Location_Y, address=push.Label or None
            )
            return self._message(content, push, scale=push.Scale)
        assert isinstance(push, payloads.Link)
        lines = [push.Title, push.Description, push.Url]
        text = TextContent(text="\n".join(line for line in lines if line))
        link = {"title": push.Title, "description": push.Description, "url": push.Url}
        return self._message(text, push, link=link)

    def _message(self, content: AnyContent, push: payloads.Push, **data: Any) -> EventDraft:
        body = MessageBody(content=content)
        return EventDraft(type="message", message=body, **self._common(push, **data))

    def _wechat_event(self, push: payloads.Event, fields: dict[str, Any]) -> EventDraft:
        data = {"event_key": push.EventKey or None, "ticket": push.Ticket}
        if push.Event in ("subscribe", "unsubscribe"):
            state: Literal["subscribed", "unsubscribed"] = (
                "subscribed" if push.Event == "subscribe" else "unsubscribed"
            )
            subscription = Subscription(state=state, keyword=push.Event)
            common = self._common(push, **data)
            return EventDraft(type="subscription", subscription=subscription, **common)
        if isinstance(push, payloads.Click):  # a custom-menu button of type "click"
            postback = Postback(payload=push.EventKey)
            return EventDraft(type="postback", postback=postback, **self._common(push))
        if isinstance(push, payloads.TemplateSent):
            state_ = "delivered" if push.Status == "success" else "failed"
            status = Status(external_id=push.MsgID, state=state_)
            common = self._common(push, template_status=push.Status)
            return EventDraft(type="status", status=status, **common)
        if isinstance(push, payloads.ReportedLocation):
            where = {"latitude": push.Latitude, "longitude": push.Longitude}
            common = self._common(push, **where, precision=push.Precision)
            return EventDraft(type="system", system=System(kind="location_report"), **common)
        if push.Event in ("VIEW", "SCAN"):
            kind = "menu_view" if push.Event == "VIEW" else "qr_scan"
            system = System(kind=kind, text=push.EventKey or None)
            return EventDraft(type="system", system=system, **self._common(push, **data))
        return self._unsupported(fields)

    def _unsupported(self, fields: dict[str, Any]) -> EventDraft:
        push = payloads.validated(payloads.Push, fields)
        kind = str(fields.get("Event") if push.MsgType == "event" else push.MsgType)
        where = "event" if push.MsgType == "event" else "message"
        unsupported = Unsupported(
            provider_type=f"{where}:{kind}", reason=f"{where} type {kind!r} is not supported"
        )
        common = {**self._common(push), "channel_data": {"push": fields}}
        return EventDraft(type="unsupported", unsupported=unsupported, **common)

    def acknowledge(self, body: bytes) -> Reply:
        return _SUCCESS

    # --- outbound ------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        return {}  # the access token goes in the query string, added by the sender

    def make_sender(self, client: httpx.AsyncClient) -> Sender:
        from adapters.wechat.sender import WeChatSender

        return WeChatSender(self, client)

    def render(self, content: AnyContent, context: SendContext) -> list[ProviderRequest]:
        to = context.recipient_id
        if isinstance(content, TemplateContent):
            data: dict[str, Any] = {}
            for component in content.template.components:
                if "type" in component:  # Meta's form ({"type": "body", "parameters": ...})
                    raise SendError(
                        "permanent",
                        "template_components",
                        'WeChat template components are its data objects, such as {"keyword1":'
                        ' {"value": "A-1042"}}; this one has a "type" (Meta\'s form)',
                    )
                data.update(component)
            body = {"touser": to, "template_id": content.template.name, "data": data}
            return [ProviderRequest("POST", TEMPLATE_SEND_PATH, json=body)]
        if not window_open(context):
            raise SendError(
                "permanent",
                "window_closed",
                "WeChat takes customer-service messages only within 48 hours of the user's last"
                " message; send a template (content type 'template', or options.template)",
            )
        return [
            ProviderRequest("POST", CUSTOM_SEND_PATH, json={"touser": to, **message})
            for message in self.messages(content)
        ]

    def messages(self, content: AnyContent) -> list[dict[str, Any]]:
        """The custom-send bodies for `content`, without `touser`, in order."""
        if type(content) is TextContent and not content.quick_replies:
            return _texts(content.text)
        if isinstance(content, ImageContent) and not content.quick_replies:
            return _image(content) or _texts(to_text(content))
        if isinstance(content, ButtonsContent) and all(is_choice(a) for a in content.actions):
            return _choices(content)
        if isinstance(content, CarouselContent) and len(content.items) == MAX_ARTICLES:
            return [*_texts(content.text), _card(content.items[0])]
        return _texts(to_text(content))

    def read_send_response(self, status: int, body: bytes, headers: Mapping[str, str]) -> str:
        payload = answer_json(body)
        code = payload.get("errcode", 0 if 200 <= status < 300 and payload else None)
        message = str(payload.get("errmsg") or f"HTTP {status}")
        if status >= 500 or code is None:
            raise SendError("retry", str(status), message)
        if code == 0:
            # Template sends answer a msgid (its TEMPLATESENDJOBFINISH event names it);
            # custom sends answer none, so each accepted part gets an id of its own.
            return provider_id(payload.get("msgid")) or f"custom-{uuid.uuid4().hex}"
        raise send_error(code, message)

    def secrets(self) -> list[str]:
        key = self.config.encoding_aes_key
        return [
            self.config.app_secret.get_secret_value(),
            self.config.token.get_secret_value(),
            *([key.get_secret_value()] if key is not None else []),
        ]


_SUCCESS = Reply(200, "success")


def send_error(code: Any, message: str) -> SendError:
    """A WeChat errcode, classified (the global return codes)."""
    text = f"{code}"
    if code in TOKEN_ERRORS or code in _RETRY:
        return SendError("retry", text, message)
    if code in _UNREACHABLE:
        return SendError("unreachable", text, message)
    if code in _UNSUBSCRIBED:
        return SendError("permanent", text, message, unsubscribed=True)
    if code == 45015:  # "response out of time limit": the 48-hour window closed
        return SendError("permanent", "window_closed", message)
    return SendError("permanent", text, message)


def window_open(context: SendContext) -> bool:
    last = context.last_inbound_at
    return last is not None and context.now - last < WINDOW_SECONDS


def _dedupe_key(fields: dict[str, Any]) -> str:
    """`MsgId` for messages (WeChat's own advice for retries); events have none, so the
    sender, the time and the event name tell a retry from a new one."""
    msg_id = fields.get("MsgId")
    if isinstance(msg_id, str) and msg_id:
        return f"msg:{msg_id}"
    sender, created, event = (
        fields.get("FromUserName"),
        fields.get("CreateTime"),
        fields.get("Event"),
    )
    if not isinstance(sender, str) or not sender or not isinstance(created, str) or not created:
        raise PayloadError("FromUserName and CreateTime are needed to recognise a retry")
    return f"evt:{sender}:{created}:{event if isinstance(event, str) else ''}"


def _utf8(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _texts(text: str | None) -> list[dict[str, Any]]:
    if not text:
        return []
    return [
        {"msgtype": "text", "text": {"content": chunk}}
        for chunk in split_text(text, MAX_TEXT_BYTES, _utf8)
    ]


def _news(
    title: str, description: str | None, url: str | None, picture: str | None
) -> dict[str, Any]:
    article = {"title": title, "description": description, "url": url, "picurl": picture}
    return {"msgtype": "news", "news": {"articles": [{k: v for k, v in article.items() if v}]}}


def _image(content: ImageContent) -> list[dict[str, Any]]:
    """A native image by media_id (its caption after it), or a picture card by URL."""
    media = content.media
    if media.provider_media_id:
        image = {"msgtype": "image", "image": {"media_id": media.provider_media_id}}
        return [image, *_texts(content.caption)]
    if media.url:
        title = content.caption or media.filename or "Image"
        return [_news(title, None, media.url, media.url)]
    return []


def _choices(content: ButtonsContent) -> list[dict[str, Any]]:
    """A msgmenu, after a picture card when the choices come with a picture (a card)."""
    picture = content.media.url if content.media else None
    if picture:
        title, _, rest = content.text.partition("\n")
        return [_news(title, rest or None, picture, picture), _menu(content)]
    return [_menu(content)]


def _card(item: CarouselItem) -> dict[str, Any]:
    """One carousel card as a news article; its one link (or picture) is where a tap goes."""
    picture = item.media.url if item.media else None
    link = next((a.url for a in item.actions if isinstance(a, LinkAction)), None)
    return _news(item.title, item.description, item.default_url or link or picture, picture)


def _menu(content: ButtonsContent) -> dict[str, Any]:
    items = []
    for action in content.actions:
        assert is_choice(action)
        if _utf8(action.payload) > MAX_MENU_ID_BYTES:
            raise SendError(
                "permanent",
                "payload_too_long",
                f"a msgmenu id holds {MAX_MENU_ID_BYTES} bytes; payload {action.payload[:20]!r}…"
                f" is {_utf8(action.payload)}",
            )
        items.append({"id": action.payload, "content": action.title})
    menu = {"head_content": content.text, "list": items, "tail_content": content.footer or ""}
    return {"msgtype": "msgmenu", "msgmenu": menu}


ADAPTER = WeChatAdapter
