"""How a relayed copy reads: the author's content, attributed where the channel cannot show
another sender, which is every channel here (each copy leaves from the business's own
identity: docs/conversations.md, "Privacy"). Pure: the downgrade engine then renders each
copy in the richest form the recipient's channel supports.
"""

from __future__ import annotations

from gateway.schema import Content, ParticipantRef
from gateway.schema.content import (
    ButtonsContent,
    CarouselContent,
    ContactsContent,
    FormContent,
    ListContent,
    LocationContent,
    TextContent,
    is_media,
)


def label(author: ParticipantRef) -> str:
    """`Jasper (courier)`: who speaks, and in which role."""
    return f"{author.display_name} ({author.role})"


def _prefixed(text: str | None, author: ParticipantRef) -> str:
    return f"{label(author)}: {text}" if text else label(author)


def _reachable(content: Content, source_channel: str | None, channel_id: str) -> bool:
    """Whether the recipient's channel can fetch the media: by URL, or by the provider's
    media id on the very channel it came in on (ids of one provider account mean nothing to
    another)."""
    if not is_media(content) or source_channel is None:
        return True  # not media, or the backend's own: what it names is its business
    return bool(content.media.url) or source_channel == channel_id


def relayed(
    content: Content,
    author: ParticipantRef | None,
    channel_id: str,
    source_channel: str | None = None,
) -> list[Content]:
    """The copies to send one recipient on `channel_id`, in order: usually one; two where the
    content has no text to carry the attribution (a sticker, voice note or contact card gets
    a `Jasper (courier):` line first). No author (the business speaks): the content as is.
    Media from another provider that sent only its own media id becomes a line saying what
    was sent: that id cannot be fetched elsewhere."""
    if not _reachable(content, source_channel, channel_id):
        kind = content.type
        text = f"sent {'a' if kind != 'image' else 'an'} {kind}"
        return [TextContent(text=_prefixed(text, author) if author else text)]
    if is_media(content) and source_channel not in (None, channel_id):
        # Fetched by its URL: the provider's own media id (a Twilio ME… sid) would be taken
        # for one of the recipient's provider, which prefers an id to a link.
        media = content.media.model_copy(update={"provider_media_id": None})
        content = content.model_copy(update={"media": media})
    if author is None:
        return [content]
    update: dict[str, object]
    match content:
        case TextContent() | ButtonsContent() | ListContent():
            update = {"text": _prefixed(content.text, author)}
        case CarouselContent():
            # The carousel's lead line (a header above the cards, or the text before the
            # numbered list on SMS) says who offers it; the cards stay as they were.
            update = {"text": _prefixed(content.text, author)}
        case FormContent():
            update = {"text": _prefixed(content.text, author)}
        case LocationContent():
            update = {"name": _prefixed(content.name, author)}
        case ContactsContent():
            return [TextContent(text=f"{label(author)}:"), content]
        case _ if is_media(content) and content.type not in ("sticker", "audio"):
            update = {"caption": _prefixed(content.caption, author)}
        case _:  # stickers and voice notes show no caption on most channels
            return [TextContent(text=f"{label(author)}:"), content]
    return [content.model_copy(update=update)]
