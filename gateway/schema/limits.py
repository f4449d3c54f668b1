"""Bounds on what a client may send the API: every text, list and free-form JSON value.

Without them a million-character text was planned as 625 SMS, a preview of it held the event
loop for a second, and metadata nested 256 deep failed with a 500. Each bound is far above
what any channel shows in one message (the downgrade engine splits, shortens and numbers what
does not fit), and far below what costs the gateway noticeable time.

The bounds apply to API input only (`API_INPUT` as the validation context): content the
gateway builds itself (downgrade parts, parsed webhooks) and rows stored by older releases
validate as before. They show in the published schemas as maxLength / maxItems.

Provider figures: ../shared/reference/providers.md (sections below) and capabilities.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, ValidationInfo
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

# Validation context under which the bounds are enforced (SendMessage, PreviewRequest).
API_INPUT: dict[str, Any] = {"api_input": True}

# --- text --------------------------------------------------------------------------------
# The longest text one provider request carries: LINE's five text messages of 5,000 characters
# (§4.3; Viber ~7,000 §5.3, WhatsApp 4,096 §1.3, Messenger 2,000 §2.3, Twilio 1,600 §3.3).
LONGEST_REQUEST_TEXT = 5 * 5_000
# A message's text (text, buttons, list, carousel and form bodies, captions): twice that, so
# channels with shorter limits get it in parts (SMS: 32 requests), never in hundreds.
MAX_TEXT = 2 * LONGEST_REQUEST_TEXT
# Titles, labels, headers, footers, descriptions, names: the longest any channel shows is 80
# (Messenger card title and subtitle, §2.3); the engine shortens longer ones and keeps them
# whole in numbered text, where a few lines still read.
MAX_LABEL = 1_000
# A tap's payload: Messenger's postback payload, the longest any channel echoes back (§2.3).
MAX_PAYLOAD = 1_000
# URLs: pre-signed media URLs with a session token run past 1,500 characters.
MAX_URL = 4_096
# Phone numbers (E.164 is 15 digits; formatted ones carry spaces and an extension).
MAX_PHONE = 32
# Ids and names of things: provider media ids, template names (Meta: 512), form ids.
MAX_NAME = 512
# File names and MIME types (the common file system and RFC 6838 limits).
MAX_FILENAME = 255
# An e-mail address (RFC 5321 path limit).
MAX_EMAIL = 320
# Short codes: a language tag, a currency, a birthday, a digest.
MAX_CODE = 128

# --- lists -------------------------------------------------------------------------------
# Choices in one message (actions, quick replies, a select field's options): the most any
# channel shows natively is 13 quick replies (§2.3, §4.3); past that they become numbered
# text, which stays answerable for a few dozen.
MAX_CHOICES = 50
# A list's sections and rows: WhatsApp shows 10 sections of 10 rows in all (§1.3).
MAX_SECTIONS = 20
MAX_ROWS = 100
# Carousel cards: the most shown natively is LINE's 12 flex bubbles (capabilities.md).
MAX_CARDS = 30
# Contacts in one message, and phones, e-mails, addresses or URLs in one contact.
MAX_CONTACTS = 20
MAX_CONTACT_ENTRIES = 20
# Form fields: each one is a question and an answer in the conversation the form becomes.
MAX_FORM_FIELDS = 50
# Actions on one carousel card: three is the most any channel shows on one (§2.3, §4.3).
MAX_CARD_ACTIONS = 10
# Template components: header, body, footer and at most 10 buttons (§1.3).
MAX_TEMPLATE_COMPONENTS = 20
# Channel ids in one preview request.
MAX_PREVIEW_CHANNELS = 100

# --- a whole message ---------------------------------------------------------------------
# The content as JSON, every field together: a text at its longest with room for its choices,
# or a carousel's cards. Planning and rendering cost grows with it: at this size a preview for
# all five channels takes tens of milliseconds, where 30 cards of 50 choices took seconds.
MAX_CONTENT_CHARACTERS = 64 * 1024

# --- free-form JSON (metadata, form answers, template components) -------------------------
# Deep enough for any structured tag a backend keeps; JSON deeper than this is an attack or a
# bug (256 levels once failed the API with a 500).
MAX_JSON_DEPTH = 16
# Metadata is stored and echoed with the message, not sent to a provider: 16 KiB holds any
# correlation data, and keeps a message row small.
MAX_JSON_BYTES = 16 * 1024


def _enforced(info: ValidationInfo) -> bool:
    context = info.context
    return isinstance(context, dict) and bool(context.get("api_input"))


class _InputCheck:
    """An annotation whose `_check` validates API input after the type's own validation."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.with_info_after_validator_function(self._check, handler(source))

    def _check(self, value: Any, info: ValidationInfo) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Bound(_InputCheck):
    """`Annotated[str | list, Bound(n)]`: at most n characters or items in API input, and
    maxLength / maxItems in the published schemas."""

    limit: int

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["maxItems" if json_schema.get("type") == "array" else "maxLength"] = self.limit
        return json_schema

    def _check(self, value: Any, info: ValidationInfo) -> Any:
        if _enforced(info) and len(value) > self.limit:
            unit = "characters" if isinstance(value, str) else "items"
            raise ValueError(f"at most {self.limit:,} {unit} are accepted, not {len(value):,}")
        return value


def _depth_over(value: Any, limit: int) -> bool:
    """Whether `value` nests containers deeper than `limit`; a walk with its own stack, so no
    depth the JSON parser accepts can exhaust Python's."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children: Any = node.values() if isinstance(node, dict) else node
        if isinstance(node, dict | list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in children)
    return False


@dataclass(frozen=True)
class JsonBound(_InputCheck):
    """Free-form JSON no deeper than MAX_JSON_DEPTH and no larger than MAX_JSON_BYTES."""

    depth: int = MAX_JSON_DEPTH
    size: int = MAX_JSON_BYTES

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        limits = f"At most {self.depth} levels deep and {self.size:,} bytes as JSON."
        described = json_schema.get("description")
        json_schema["description"] = f"{described} {limits}" if described else limits
        return json_schema

    def _check(self, value: Any, info: ValidationInfo) -> Any:
        if not _enforced(info):
            return value
        if _depth_over(value, self.depth):
            raise ValueError(f"nested deeper than {self.depth} levels")
        # The standard encoder: the API reads lone surrogates (json_codec.loads), which orjson refuses.
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        if (size := len(text.encode("utf-8", "surrogatepass"))) > self.size:
            raise ValueError(f"at most {self.size:,} bytes of JSON are accepted, not {size:,}")
        return value


@dataclass(frozen=True)
class ContentBound(_InputCheck):
    """A whole message's content no longer than `limit` characters as JSON."""

    limit: int = MAX_CONTENT_CHARACTERS

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["description"] = f"At most {self.limit:,} characters as JSON, all together."
        return json_schema

    def _check(self, value: Any, info: ValidationInfo) -> Any:
        if _enforced(info) and (size := len(value.model_dump_json())) > self.limit:
            raise ValueError(f"at most {self.limit:,} characters of JSON in all, not {size:,}")
        return value
