"""The groups and broadcasts part of the OpenAPI document (gateway/openapi.py assembles it)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from gateway.schema.broadcasts import (
    AddMembers,
    BroadcastAccepted,
    BroadcastView,
    CreateBroadcast,
    CreateGroup,
    GroupView,
    ImportResult,
    MemberPage,
    MembersAdded,
)

MODELS: tuple[type[BaseModel], ...] = (
    CreateGroup,
    GroupView,
    AddMembers,
    MembersAdded,
    MemberPage,
    ImportResult,
    CreateBroadcast,
    BroadcastAccepted,
    BroadcastView,
)


def paths(operation: Any, json: Any, error: Any) -> dict[str, Any]:
    """The paths, made with gateway/openapi.py's own helpers (`_user_operation`, `_json`,
    `_error`), so that every API operation reads alike."""
    no_group = error("no group with this id that this API key created")
    no_broadcast = error("no broadcast with this id that this API key created")
    invalid = error("the body is not valid: `problems` names each bad field")
    group_id = {"name": "group_id", "in": "path", "required": True, "schema": {"type": "string"}}
    broadcast_id = {
        "name": "broadcast_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    page = [
        {"name": "limit", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
        {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "a page's next_cursor: the next page"},
    ]  # fmt: skip
    group = {"description": "the group", "content": json("GroupView")}
    broadcast = {"description": "the broadcast", "content": json("BroadcastView")}
    return {
        "/v1/groups": {
            "post": operation(
                "createGroup",
                "Create a group, with members if given (docs/broadcasts.md)",
                "CreateGroup",
                {"201": {"description": "created", "content": json("GroupView")}, "422": invalid},
            )
        },
        "/v1/groups/{group_id}": {
            "parameters": [group_id],
            "get": operation("getGroup", "A group and its size", None, {"200": group, "404": no_group}),
        },
        "/v1/groups/{group_id}/members": {
            "parameters": [group_id],
            "post": operation(
                "addGroupMembers",
                "Add users or bare identities (those the group has already are counted, not added)",
                "AddMembers",
                {"200": {"description": "added", "content": json("MembersAdded")},
                 "404": no_group, "422": invalid},
            ),
            "get": operation(
                "listGroupMembers",
                "The members, in the order added",
                None,
                {"200": {"description": "a page", "content": json("MemberPage")},
                 "404": no_group, "422": error("limit or cursor is not valid")},
            )
            | {"parameters": page},
            "delete": operation(
                "removeGroupMember",
                "Remove one member: ?user_id=, or ?channel=&id=",
                None,
                {"200": group, "404": error("no such group, or not a member"), "422": invalid},
            ),
        },
        "/v1/groups/{group_id}/members/import": {
            "parameters": [group_id],
            "post": operation(
                "importGroupMembers",
                "Import up to 100,000 members from CSV (text/csv) or JSON lines"
                " (application/x-ndjson), streamed; bad rows are named by line, good ones kept",
                None,
                {"200": {"description": "imported", "content": json("ImportResult")},
                 "404": no_group, "415": error("neither text/csv nor application/x-ndjson"),
                 "422": error("the CSV header names no known column")},
            )
            | {"requestBody": {"required": True, "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}}}}},
        },
        "/v1/broadcasts": {
            "post": operation(
                "createBroadcast",
                "Send one message to every member of a group or an inline list: accepted at"
                " once, expanded in the background",
                "CreateBroadcast",
                {"202": {"description": "accepted", "content": json("BroadcastAccepted")},
                 "422": error("not valid: an empty audience, an unknown group, a template not"
                              " configured for its channel...")},
            )
        },
        "/v1/broadcasts/{broadcast_id}": {
            "parameters": [broadcast_id],
            "get": operation(
                "getBroadcast",
                "Counts by state and a page of per-member outcomes",
                None,
                {"200": broadcast, "404": no_broadcast, "422": error("limit or cursor is not valid")},
            )
            | {"parameters": page},
        },
        "/v1/broadcasts/{broadcast_id}/cancel": {
            "parameters": [broadcast_id],
            "post": operation(
                "cancelBroadcast",
                "Stop what has not left; the counts say what had",
                None,
                {"200": broadcast, "404": no_broadcast, "409": error("the broadcast has ended")},
            ),
        },
    }  # fmt: skip
