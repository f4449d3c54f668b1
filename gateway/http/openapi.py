"""The HTTP contract as an OpenAPI 3.1 document, built from the same pydantic models the
handlers validate with, so it cannot drift from them (`gateway openapi`, GET /openapi.json).

It describes the backend API, the provider webhook endpoints (their bodies are the providers'
own formats: providers.md), the operational endpoints, and, under `webhooks`, the signed
POST the gateway makes to every backend. A test checks that its paths are the app's routes.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from gateway.http import openapi_broadcasts
from gateway.pipeline.delivery import DELIVERY_HEADER
from gateway.preview import PreviewRequest, PreviewResponse
from gateway.schema import (
    ControlRequest,
    ConversationMessages,
    ConversationPage,
    ConversationView,
    CreateConversation,
    CreateUser,
    ErrorBody,
    EventBatch,
    IdentityRef,
    MergeUsers,
    MessageAccepted,
    MessageView,
    NewParticipant,
    PostedToConversation,
    PostToConversation,
    SendMessage,
    UpdateConversation,
    UpdateUser,
    UserMessages,
    UserView,
    require_tags,
)
from gateway.schema.communities import (
    CommunityPage,
    CommunitySettings,
    CommunityView,
    HeldMessagePage,
    HeldMessageView,
    MemberPage,
    MemberView,
    ModerationAction,
    ModerationRequest,
    MuteRequest,
    NewMember,
)
from gateway.schema.web import WebActionAccepted, WebActionRequest, WebToken, WebTokenRequest
from gateway.signing import (
    ID_HEADER,
    SIGNATURE_HEADER,
    STANDARD_SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
)

MODELS: tuple[type[BaseModel], ...] = (
    SendMessage,
    MessageAccepted,
    MessageView,
    PreviewRequest,
    PreviewResponse,
    EventBatch,
    ErrorBody,
    CreateUser,
    UpdateUser,
    IdentityRef,
    MergeUsers,
    UserView,
    UserMessages,
    CreateConversation,
    NewParticipant,
    PostToConversation,
    PostedToConversation,
    ConversationView,
    ConversationMessages,
    UpdateConversation,
    ConversationPage,
    ControlRequest,
    CommunitySettings,
    CommunityView,
    CommunityPage,
    NewMember,
    MemberView,
    MemberPage,
    MuteRequest,
    ModerationAction,
    HeldMessageView,
    HeldMessagePage,
    ModerationRequest,
    WebTokenRequest,
    WebToken,
    WebActionRequest,
    WebActionAccepted,
)


def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in MODELS + openapi_broadcasts.MODELS:
        schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    require_tags(schemas)
    return schemas


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json("ErrorBody")}


_UNAUTHORIZED = _error("no `Authorization: Bearer <api key>`, or an unknown key")
_INVALID = _error("the body is not valid: `problems` names each bad field")
_STORE_DOWN = _error("the store is unavailable: nothing was done, retry later")
_NOT_DONE = _error(
    "the store is unavailable, or the gateway is shutting down: nothing was done, retry later"
)
_BUG = _error("a failure of the gateway's own, logged with its traceback")
_TOO_LARGE = _error("the body exceeds server.max_body_bytes")
_SLOW_BODY = _error(
    "the body did not arrive within server.body_timeout_seconds; the connection is closed"
)

_API_PATHS: dict[str, Any] = {
    "/v1/messages": {
        "post": {
            "operationId": "sendMessage",
            "summary": "Queue one message for a recipient on a channel",
            "security": [{"apiKey": []}],
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "the same key and body return the first message (1-255 chars)",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                }
            ],
            "requestBody": {"required": True, "content": _json("SendMessage")},
            "responses": {
                "202": {"description": "queued", "content": _json("MessageAccepted")},
                "200": {
                    "description": "the message this Idempotency-Key already queued",
                    "content": _json("MessageAccepted"),
                },
                "400": _error(
                    "the body is not JSON or cannot be read, or the Idempotency-Key is not valid"
                ),
                "401": _UNAUTHORIZED,
                "409": _error("this Idempotency-Key was used with a different body"),
                "408": _SLOW_BODY,
                "413": _TOO_LARGE,
                "422": _INVALID,
                "500": _BUG,
                "503": _NOT_DONE,
            },
        }
    },
    "/v1/messages/{message_id}": {
        "get": {
            "operationId": "getMessage",
            "summary": "A message's state, provider ids, downgrades and history",
            "security": [{"apiKey": []}],
            "parameters": [
                {"name": "message_id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {"description": "the message", "content": _json("MessageView")},
                "401": _UNAUTHORIZED,
                "404": _error("no such message (or retention removed it)"),
                "500": _BUG,
                "503": _STORE_DOWN,
            },
        }
    },
    "/v1/preview": {
        "post": {
            "operationId": "previewMessage",
            "summary": "What one message becomes on each channel, without sending it",
            "security": [{"apiKey": []}],
            "requestBody": {"required": True, "content": _json("PreviewRequest")},
            "responses": {
                "200": {
                    "description": "one preview per channel",
                    "content": _json("PreviewResponse"),
                },
                "400": _error("the body is not JSON, or cannot be read"),
                "401": _UNAUTHORIZED,
                "408": _SLOW_BODY,
                "413": _TOO_LARGE,
                "422": _INVALID,
                "500": _BUG,
                "503": _error("the gateway is shutting down: retry"),
            },
        }
    },
}

_USER_ID = {"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"}}
_NO_USER = _error(
    "no user with this id that this API key created (a merged-away id answers as its survivor)"
)
_USER = {"description": "the user", "content": _json("UserView")}
_BAD_JSON = _error("the body is not JSON, or cannot be read")


def _user_operation(
    operation_id: str, summary: str, body: str | None, responses: dict[str, Any]
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "security": [{"apiKey": []}],
        "responses": {"401": _UNAUTHORIZED, "500": _BUG, "503": _STORE_DOWN, **responses},
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": _json(body)}
        operation["responses"] |= {"400": _BAD_JSON, "408": _SLOW_BODY, "413": _TOO_LARGE}
    return operation


_USER_PATHS: dict[str, Any] = {
    "/v1/users": {
        "post": _user_operation(
            "createUser",
            "Create a user (docs/users.md)",
            "CreateUser",
            {
                "201": {"description": "created", "content": _json("UserView")},
                "409": _error("another user of this API key has this external_id"),
                "422": _INVALID,
            },
        )
    },
    "/v1/users/{user_id}": {
        "parameters": [_USER_ID],
        "get": _user_operation(
            "getUser", "A user with its identities", None, {"200": _USER, "404": _NO_USER}
        ),
        "patch": _user_operation(
            "updateUser",
            "Change a user: each field given replaces the old value, null clears it",
            "UpdateUser",
            {
                "200": _USER,
                "404": _NO_USER,
                "409": _error("another user of this API key has this external_id"),
                "422": _INVALID,
            },
        ),
    },
    "/v1/users/{user_id}/identities": {
        "parameters": [_USER_ID],
        "post": _user_operation(
            "linkIdentity",
            "Link a channel identity to the user (emits identity.linked)",
            "IdentityRef",
            {
                "201": {"description": "linked", "content": _json("UserView")},
                "200": {"description": "the user had it already", "content": _json("UserView")},
                "404": _NO_USER,
                "409": _error("the identity is linked to another user"),
                "422": _error("the body is not valid, or names an unknown channel"),
            },
        ),
        "delete": _user_operation(
            "unlinkIdentity",
            "Unlink a channel identity from the user (emits identity.unlinked)",
            None,
            {
                "200": _USER,
                "404": _error("no such user, or the identity is not linked to it"),
                "422": _INVALID,
            },
        )
        | {
            "parameters": [
                {"name": "channel", "in": "query", "required": True, "schema": {"type": "string"}},
                {"name": "id", "in": "query", "required": True, "schema": {"type": "string"}},
            ]
        },
    },
    "/v1/users/{user_id}/merge": {
        "parameters": [_USER_ID],
        "post": _user_operation(
            "mergeUsers",
            "Merge the user given in the body into this one, which survives (emits user.merged)",
            "MergeUsers",
            {
                "200": {"description": "the surviving user", "content": _json("UserView")},
                "404": _error("no such user (either one)"),
                "409": _error("both ids name the same user"),
                "422": _INVALID,
            },
        ),
    },
    "/v1/users/{user_id}/messages": {
        "parameters": [_USER_ID],
        "get": _user_operation(
            "listUserMessages",
            "Messages this API key sent to any of the user's identities, newest first",
            None,
            {
                "200": {"description": "the messages", "content": _json("UserMessages")},
                "404": _NO_USER,
                "422": _error("limit is not a whole number from 1 to 500"),
            },
        )
        | {
            "parameters": [
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100},
                }
            ]
        },
    },
}

_CONVERSATION_ID = {
    "name": "conversation_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
}
_NO_CONVERSATION = _error("no conversation with this id that this API key created")
_CONVERSATION = {"description": "the conversation", "content": _json("ConversationView")}
_CLOSED = _error("the conversation is closed")


def _page_parameters(what: str) -> list[dict[str, Any]]:
    """`limit` and `cursor` of a conversations endpoint that answers in pages of `what`."""
    return [
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
        },
        {
            "name": "cursor",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": f"a page's next_cursor: the page of older {what}",
        },
    ]


_CONVERSATION_PATHS: dict[str, Any] = {
    "/v1/conversations": {
        "post": _user_operation(
            "createConversation",
            "Create a group conversation (docs/conversations.md; emits conversation.created)",
            "CreateConversation",
            {
                "201": {"description": "created", "content": _json("ConversationView")},
                "409": _error("an identity is given twice"),
                "422": _error(
                    "the body is not valid, or names an unknown channel, a user this key does"
                    " not have, or an identity that is not the user's"
                ),
            },
        ),
        "get": _user_operation(
            "listConversations",
            "This key's conversations, newest first, narrowed by each filter given",
            None,
            {
                "200": {"description": "a page", "content": _json("ConversationPage")},
                "422": _error("a parameter is not valid, or is unknown: `problems` names it"),
            },
        )
        | {
            "parameters": [
                {
                    "name": "state",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": ["open", "closed"]},
                },
                {
                    "name": "user_id",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 256},
                    "description": "conversations this user is or was a participant of",
                },
                {
                    "name": "metadata",
                    "in": "query",
                    "required": False,
                    "style": "deepObject",
                    "explode": True,
                    "schema": {
                        "type": "object",
                        "propertyNames": {"pattern": "^[A-Za-z0-9_-]{1,64}$"},
                        "additionalProperties": {"type": "string", "maxLength": 256},
                    },
                    "description": (
                        "`metadata[order_id]=1234`: conversations whose metadata has this"
                        " top-level value (a string, or a number as written)"
                    ),
                },
                *_page_parameters("conversations"),
            ]
        },
    },
    "/v1/conversations/{conversation_id}": {
        "parameters": [_CONVERSATION_ID],
        "get": _user_operation(
            "getConversation",
            "A conversation with its participants",
            None,
            {"200": _CONVERSATION, "404": _NO_CONVERSATION},
        ),
        "patch": _user_operation(
            "updateConversation",
            "Change a conversation, open or closed: metadata given replaces the old, null"
            " clears it",
            "UpdateConversation",
            {"200": _CONVERSATION, "404": _NO_CONVERSATION, "422": _INVALID},
        ),
    },
    "/v1/conversations/{conversation_id}/participants": {
        "parameters": [_CONVERSATION_ID],
        "post": _user_operation(
            "addParticipant",
            "Add a participant (emits participant.joined)",
            "NewParticipant",
            {
                "201": {"description": "added", "content": _json("ConversationView")},
                "404": _NO_CONVERSATION,
                "409": _error("the conversation is closed, or the identity is in it already"),
                "422": _error(
                    "the body is not valid, or names an unknown channel or user, or an"
                    " identity that is not the user's"
                ),
            },
        ),
    },
    "/v1/conversations/{conversation_id}/participants/{participant_id}": {
        "parameters": [
            _CONVERSATION_ID,
            {
                "name": "participant_id",
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
            },
        ],
        "delete": _user_operation(
            "removeParticipant",
            "The participant leaves: nothing more is relayed to them (emits participant.left)",
            None,
            {
                "200": _CONVERSATION,
                "404": _error("no such conversation, or no such participant present in it"),
            },
        ),
    },
    "/v1/conversations/{conversation_id}/close": {
        "parameters": [_CONVERSATION_ID],
        "post": _user_operation(
            "closeConversation",
            "Close the conversation (emits conversation.closed; closing again changes nothing)",
            None,
            {"200": _CONVERSATION, "404": _NO_CONVERSATION},
        ),
    },
    "/v1/conversations/{conversation_id}/control": {
        "parameters": [_CONVERSATION_ID],
        "post": _user_operation(
            "changeControl",
            "Pass, take or release control of the conversation (Messenger's handover protocol;"
            " emits control.passed when it moves)",
            "ControlRequest",
            {
                "200": _CONVERSATION,
                "404": _NO_CONVERSATION,
                "409": _error(
                    "the conversation is closed, or the backend releasing control does not hold it"
                ),
                "422": _error(
                    "the body is not valid, or names a backend that is not configured, or none"
                    " where one is needed"
                ),
            },
        ),
    },
    "/v1/conversations/{conversation_id}/messages": {
        "parameters": [_CONVERSATION_ID],
        "post": _user_operation(
            "postToConversation",
            "Say something in the conversation: a copy to each participant present",
            "PostToConversation",
            {
                "202": {"description": "queued", "content": _json("PostedToConversation")},
                "404": _NO_CONVERSATION,
                "409": _CLOSED,
                "422": _error("the body is not valid, or its author or a recipient is not present"),
            },
        ),
        "get": _user_operation(
            "listConversationMessages",
            "The conversation's messages, newest first, each copy's delivery state",
            None,
            {
                "200": {"description": "a page", "content": _json("ConversationMessages")},
                "404": _NO_CONVERSATION,
                "422": _error("limit or cursor is not valid"),
            },
        )
        | {
            "parameters": [
                *_page_parameters("messages"),
            ]
        },
    },
}

_PROVIDER_BODY = {
    "description": "the provider's own webhook format, signed as the provider signs it",
    "required": True,
    "content": {
        "application/json": {"schema": {}},
        "application/x-www-form-urlencoded": {"schema": {}},
    },
}
_CHANNEL_ID = {"name": "channel_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _path_ids(*names: str) -> list[dict[str, Any]]:
    return [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names
    ]


_NO_COMMUNITY = _error("no community with this id that this API key owns")
_NO_MEMBER = _error("no such community, or no such member present in it")
_COMMUNITY = {"description": "the community", "content": _json("CommunityView")}
_DONE = {"description": "done: `{id, action}`"}


def _member_action(operation_id: str, summary: str, body: str | None) -> dict[str, Any]:
    return {
        "parameters": _path_ids("community_id", "member_id"),
        ("post" if body else "delete"): _user_operation(
            operation_id, summary, body, {"200": _DONE, "404": _NO_MEMBER, "422": _INVALID}
        ),
    }


def _held_action(operation_id: str, summary: str) -> dict[str, Any]:
    return {
        "parameters": _path_ids("community_id", "message_id"),
        "post": _user_operation(
            operation_id,
            summary,
            "ModerationAction",
            {
                "200": {"description": "decided", "content": _json("HeldMessageView")},
                "404": _error("no such community, or no message of it awaiting moderation"),
                "422": _INVALID,
            },
        ),
    }


_COMMUNITY_PATHS: dict[str, Any] = {
    "/v1/communities": {
        "post": _user_operation(
            "createCommunity",
            "Create a community (docs/communities.md)",
            "CommunitySettings",
            {
                "201": {"description": "created", "content": _json("CommunityView")},
                "409": _error("a keyword is another community's"),
                "422": _INVALID,
            },
        ),
        "get": _user_operation(
            "listCommunities",
            "This key's communities, by id",
            None,
            {"200": {"description": "a page", "content": _json("CommunityPage")}},
        ),
    },
    "/v1/communities/{community_id}": {
        "parameters": _path_ids("community_id"),
        "get": _user_operation(
            "getCommunity", "A community", None, {"200": _COMMUNITY, "404": _NO_COMMUNITY}
        ),
        "patch": _user_operation(
            "updateCommunity",
            "Replace a community's settings (not one the config file makes)",
            "CommunitySettings",
            {
                "200": _COMMUNITY,
                "404": _NO_COMMUNITY,
                "409": _error("a keyword is another community's, or the config file makes it"),
                "422": _INVALID,
            },
        ),
    },
    "/v1/communities/{community_id}/members": {
        "parameters": _path_ids("community_id"),
        "post": _user_operation(
            "joinCommunity",
            "Add a member; they get the welcome and the rules",
            "NewMember",
            {
                "201": {"description": "joined", "content": _json("MemberView")},
                "404": _NO_COMMUNITY,
                "409": _error("banned, a member already, or the display name is taken"),
                "422": _INVALID,
            },
        ),
        "get": _user_operation(
            "listMembers",
            "Members present",
            None,
            {
                "200": {"description": "members", "content": _json("MemberPage")},
                "404": _NO_COMMUNITY,
            },
        ),
    },
    "/v1/communities/{community_id}/members/{member_id}": _member_action(
        "removeMember", "Remove a member (they may join again)", None
    ),
    "/v1/communities/{community_id}/members/{member_id}/ban": _member_action(
        "banMember", "Remove a member for good", "ModerationAction"
    ),
    "/v1/communities/{community_id}/members/{member_id}/mute": _member_action(
        "muteMember", "Relay nothing of theirs for a time", "MuteRequest"
    ),
    "/v1/communities/{community_id}/held": {
        "parameters": _path_ids("community_id"),
        "get": _user_operation(
            "listHeld",
            "Messages held by moderation (`state`)",
            None,
            {
                "200": {"description": "messages", "content": _json("HeldMessagePage")},
                "404": _NO_COMMUNITY,
            },
        ),
    },
    "/v1/communities/{community_id}/held/{message_id}/release": _held_action(
        "releaseHeld", "Relay a held message"
    ),
    "/v1/communities/{community_id}/held/{message_id}/reject": _held_action(
        "rejectHeld", "Drop a held message; its author is told"
    ),
}


_WEBHOOK_PATHS: dict[str, Any] = {
    "/webhooks/{channel_id}": {
        "parameters": [_CHANNEL_ID],
        "post": {
            "operationId": "receiveWebhook",
            "summary": "A provider's webhook: verified, stored durably, then acknowledged",
            "requestBody": _PROVIDER_BODY,
            "responses": {
                "200": {"description": "stored (or a redelivery of a stored one)"},
                "400": _error(
                    "the body is not a webhook of this channel's provider, or cannot be read"
                ),
                "401": _error("the provider's signature header is missing"),
                "403": _error("the signature does not match the body"),
                "404": _error("no channel is configured at this path"),
                "408": _SLOW_BODY,
                "413": _TOO_LARGE,
                "415": _error("not the provider's content type"),
                "503": _error(
                    "not stored (the store is unavailable or behind, or the gateway is shutting"
                    " down): the provider should retry"
                ),
            },
        },
        "get": {
            "operationId": "verifyWebhook",
            "summary": "Meta's subscription handshake (hub.mode, hub.verify_token, hub.challenge)",
            "responses": {
                "200": {"description": "the challenge, echoed", "content": {"text/plain": {}}},
                "403": {"description": "the verify token does not match"},
                "404": _error("no channel is configured at this path"),
                "405": _error("this channel's webhooks are POST only"),
            },
        },
    }
}


def _web_operation(
    operation_id: str, summary: str, body: str, answer: tuple[str, str, str]
) -> dict[str, Any]:
    status, description, model = answer
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "security": [{"apiKey": []}],
            "requestBody": {"required": True, "content": _json(body)},
            "responses": {
                status: {"description": description, "content": _json(model)},
                "400": _BAD_JSON,
                "401": _UNAUTHORIZED,
                "408": _SLOW_BODY,
                "413": _TOO_LARGE,
                "422": _INVALID,
                "500": _BUG,
            },
        }
    }


# The web channel (docs/web-channel.md): the socket itself is a WebSocket, not HTTP; its
# frames are described there.
_WEB_PATHS: dict[str, Any] = {
    "/v1/web/tokens": _web_operation(
        "mintWebToken",
        "A short-lived token for one user's app to open the web channel's socket",
        "WebTokenRequest",
        ("201", "the token", "WebToken"),
    ),
    "/v1/web/actions": _web_operation(
        "webAction",
        "Show a web user that an agent is typing, or has read their messages",
        "WebActionRequest",
        ("202", "pushed to the user's connected devices", "WebActionAccepted"),
    ),
    "/web/example": {
        "get": {
            "operationId": "webExample",
            "summary": "The web channel's example page (HTML and JavaScript)",
            "responses": {"200": {"description": "the page", "content": {"text/html": {}}}},
        }
    },
    "/web/{channel_id}/socket": {
        "parameters": [_CHANNEL_ID],
        "get": {
            "operationId": "webSocket",
            "summary": "The web channel's WebSocket (upgrade); frames: docs/web-channel.md",
            "responses": {
                "101": {"description": "switched to the WebSocket protocol"},
                "400": {"description": "not a WebSocket upgrade request"},
                "404": _error("no web channel is configured at this path"),
            },
        },
    },
}

_OPERATIONS: dict[str, Any] = {
    "/healthz": {"get": {"operationId": "health", "responses": {"200": {"description": "alive"}}}},
    "/readyz": {
        "get": {
            "operationId": "ready",
            "responses": {
                "200": {"description": "the store answers"},
                "503": {"description": "the store does not answer"},
            },
        }
    },
    "/metrics": {
        "get": {
            "operationId": "metrics",
            "responses": {"200": {"description": "Prometheus text format"}},
        }
    },
    "/schema.json": {
        "get": {
            "operationId": "schema",
            "responses": {"200": {"description": "the normalised schema as JSON Schema"}},
        }
    },
    "/openapi.json": {
        "get": {"operationId": "openapi", "responses": {"200": {"description": "this document"}}}
    },
}

_BACKEND_WEBHOOK = {
    "post": {
        "summary": "Normalised events, posted to each subscribed backend (at least once)",
        "parameters": [
            {
                "name": SIGNATURE_HEADER,
                "in": "header",
                "required": True,
                "description": "sha256=<hex HMAC-SHA256(backend secret, raw body)>",
                "schema": {"type": "string", "pattern": "^sha256=[0-9a-f]{64}$"},
            },
            {
                "name": ID_HEADER,
                "in": "header",
                "required": True,
                "description": "Standard Webhooks message id: the same when the same batch is "
                "posted again (docs/webhooks.md)",
                "schema": {"type": "string", "pattern": "^msg_[0-9a-f]{32}$"},
            },
            {
                "name": TIMESTAMP_HEADER,
                "in": "header",
                "required": True,
                "description": "when this post was signed, in Unix seconds (signed: refuse "
                "one outside your tolerance as a replay)",
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            },
            {
                "name": STANDARD_SIGNATURE_HEADER,
                "in": "header",
                "required": True,
                "description": "v1,<base64 HMAC-SHA256(key, webhook-id.webhook-timestamp.body)>;"
                " verify with a Standard Webhooks library (docs/webhooks.md)",
                "schema": {"type": "string", "pattern": "^v1,[A-Za-z0-9+/]{43}=$"},
            },
            {
                "name": DELIVERY_HEADER,
                "in": "header",
                "required": True,
                "description": "the same id on every retry of one delivery",
                "schema": {"type": "string"},
            },
        ],
        "requestBody": {"required": True, "content": _json("EventBatch")},
        "responses": {
            "2XX": {"description": "received: deduplicate on each event's `id`"},
            "default": {"description": "anything else is retried with backoff"},
        },
    }
}


def openapi() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Omnichannel messaging gateway",
            "version": "1",
            "description": "Backend API, provider webhooks, and the events posted to backends.",
        },
        "paths": {
            **_API_PATHS,
            **_USER_PATHS,
            **_CONVERSATION_PATHS,
            **_COMMUNITY_PATHS,
            **openapi_broadcasts.paths(_user_operation, _json, _error),
            **_WEBHOOK_PATHS,
            **_WEB_PATHS,
            **_OPERATIONS,
        },
        "webhooks": {"events": _BACKEND_WEBHOOK},
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
    }


def openapi_text() -> str:
    return json.dumps(openapi(), indent=2, sort_keys=True)
