"""The public contract: every inbound event and every outbound message."""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter

from gateway.schema.api import (
    ErrorBody,
    FieldProblem,
    HistoryEntry,
    MessageAccepted,
    MessageView,
    Recipient,
    SendMessage,
    SendOptions,
)
from gateway.schema.content import Action, Content, Media
from gateway.schema.conversations import (
    CONVERSATION_EVENT_TYPES,
    ControlChange,
    ControlRequest,
    ConversationEvent,
    ConversationMessage,
    ConversationMessages,
    ConversationPage,
    ConversationView,
    CopyView,
    CreateConversation,
    NewParticipant,
    ParticipantRef,
    ParticipantView,
    PostedToConversation,
    PostToConversation,
    UpdateConversation,
)
from gateway.schema.events import (
    STATE_RANK,
    ChannelRef,
    Event,
    EventBatch,
    EventDraft,
    EventError,
    MessageBody,
    Party,
    Postback,
    Reaction,
    Referral,
    Status,
    Subscription,
    System,
    Unsupported,
)
from gateway.schema.users import (
    USER_EVENT_TYPES,
    CreateUser,
    Failover,
    IdentityChange,
    IdentityRef,
    IdentityView,
    MergeUsers,
    UpdateUser,
    UserEvent,
    UserEventType,
    UserMerge,
    UserMessage,
    UserMessages,
    UserView,
)

CONTENT_ADAPTER: TypeAdapter[Content] = TypeAdapter(Content)

__all__ = [
    "CONTENT_ADAPTER",
    "CONVERSATION_EVENT_TYPES",
    "STATE_RANK",
    "USER_EVENT_TYPES",
    "Action",
    "ChannelRef",
    "Content",
    "ControlChange",
    "ControlRequest",
    "ConversationEvent",
    "ConversationMessage",
    "ConversationMessages",
    "ConversationPage",
    "ConversationView",
    "CopyView",
    "CreateConversation",
    "CreateUser",
    "ErrorBody",
    "Event",
    "EventBatch",
    "EventDraft",
    "EventError",
    "Failover",
    "FieldProblem",
    "HistoryEntry",
    "IdentityChange",
    "IdentityRef",
    "IdentityView",
    "Media",
    "MergeUsers",
    "MessageAccepted",
    "MessageBody",
    "MessageView",
    "NewParticipant",
    "ParticipantRef",
    "ParticipantView",
    "Party",
    "PostToConversation",
    "Postback",
    "PostedToConversation",
    "Reaction",
    "Recipient",
    "Referral",
    "SendMessage",
    "SendOptions",
    "Status",
    "Subscription",
    "System",
    "Unsupported",
    "UpdateConversation",
    "UpdateUser",
    "UserEvent",
    "UserEventType",
    "UserMerge",
    "UserMessage",
    "UserMessages",
    "UserView",
    "json_schema",
    "require_tags",
]


def json_schema() -> dict[str, Any]:
    """The whole contract as one JSON Schema document (what `gateway schema` prints)."""
    defs: dict[str, Any] = {}
    roots = {
        "Event": EventBatch.model_json_schema(ref_template="#/$defs/{model}"),
        "SendMessage": SendMessage.model_json_schema(ref_template="#/$defs/{model}"),
        "MessageView": MessageView.model_json_schema(ref_template="#/$defs/{model}"),
        "MessageAccepted": MessageAccepted.model_json_schema(ref_template="#/$defs/{model}"),
        "ErrorBody": ErrorBody.model_json_schema(ref_template="#/$defs/{model}"),
        "UserView": UserView.model_json_schema(ref_template="#/$defs/{model}"),
        "ConversationView": ConversationView.model_json_schema(ref_template="#/$defs/{model}"),
    }
    for name, schema in roots.items():
        defs.update(schema.pop("$defs", {}))
        defs[name if name != "Event" else "EventBatch"] = schema
    require_tags(defs)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Omnichannel gateway schema",
        "$defs": defs,
    }


def require_tags(schemas: dict[str, Any]) -> None:
    """Mark each union member's `type` tag required. It has a default, so pydantic leaves it
    out of `required`; but a union needs it to pick its member, and refuses a body without it
    (found by schemathesis: the schema allowed what the API refused)."""
    for schema in schemas.values():
        if "const" in schema.get("properties", {}).get("type", {}):
            required = schema.setdefault("required", [])
            if "type" not in required:
                required.insert(0, "type")


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True)
