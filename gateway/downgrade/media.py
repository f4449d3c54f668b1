"""What kind of media a Media object is, from its MIME type, else its URL and filename.

Shared by the engine (a carousel whose cards must all carry images, or all videos) and the
adapters that pick a header or message type by it.
"""

from __future__ import annotations

from typing import Literal

from gateway.schema.content import Media

MediaKind = Literal["image", "video", "document"]

_VIDEO_SUFFIXES = (".mp4", ".3gp", ".3gpp")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def media_kind(media: Media) -> MediaKind:
    mime = media.mime_type
    if mime:
        mime = mime.lower()
        if mime.startswith("video/"):
            return "video"
        return "image" if mime.startswith("image/") else "document"
    path = media.url or ""
    if "?" in path:
        path = path.split("?", 1)[0]
    path = path.lower()
    if path.endswith(_VIDEO_SUFFIXES):
        return "video"
    if path.endswith(_IMAGE_SUFFIXES) or not media.filename:
        return "image"
    return "document"
