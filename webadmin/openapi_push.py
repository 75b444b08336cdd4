"""The OpenAPI description of the paced-push routes (webadmin/api_push.py), joined into
the document by :func:`webadmin.openapi.openapi_document`."""

from __future__ import annotations

from typing import Any

from webadmin.openapi import (
    NULLABLE_INT,
    NULLABLE_S,
    S,
    _body,
    _errors,
    _id_param,
    _json,
    _obj,
    _ref,
)

_COUNT = {"type": "integer", "minimum": 0}
_ID = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}


def push_campaign_schema() -> dict[str, Any]:
    return _obj({
        "id": {"type": "integer"}, "tenant_id": NULLABLE_INT,
        "scope": {"enum": ["all", "tenant", "selected"]}, "actor": {"type": S},
        "state": {"enum": ["running", "cancelled", "done"]}, "rate": {"type": "number"},
        **{name: _COUNT for name in ("total", "waiting", "queued", "sent", "confirmed",
                                     "failed", "cancelled", "skipped", "done",
                                     "seconds_left")},
        "percent": {"type": "integer", "minimum": 0, "maximum": 100},
        "created_at": {"type": S}, "finished_at": NULLABLE_S,
    }, required=["id", "state", "total", "done", "percent"])


def push_paths() -> dict[str, Any]:
    one = {"type": "object", "properties": {"campaign": _ref("PushCampaign")},
           "required": ["campaign"]}
    return {
        "/push-campaigns": {
            "get": {"summary": "Running and recent paced pushes", "operationId": "listPushes",
                    "responses": {"200": _json({"type": "object", "properties": {
                        "campaigns": {"type": "array", "items": _ref("PushCampaign")}}},
                        "Pushes"), **_errors(401)}},
            "post": {"summary": "Start a paced check-sync push ([notify] push_rate phones per "
                                "second): every phone in your tenants, one tenant, or chosen "
                                "phones (ids and/or MACs or extensions)",
                     "operationId": "startPush",
                     "requestBody": _body(_obj({
                         "scope": {"enum": ["all", "tenant", "selected"]}, "tenant_id": _ID,
                         "phone_ids": {"type": "array", "items": _ID},
                         "phones": {"type": "array", "items": {"type": S}},
                         "rate": {"type": "number", "exclusiveMinimum": 0}}, ["scope"])),
                     "responses": {"202": _json(one, "Started"), **_errors(400, 401, 404)}},
        },
        "/push-campaigns/{campaign_id}": {
            "parameters": [_id_param("campaign_id")],
            "get": {"summary": "One push with its counts", "operationId": "getPush",
                    "responses": {"200": _json(one, "The push"), **_errors(401, 404)}},
        },
        "/push-campaigns/{campaign_id}/cancel": {
            "parameters": [_id_param("campaign_id")],
            "post": {"summary": "Cancel a push: phones not released yet are not pushed",
                     "operationId": "cancelPush",
                     "responses": {"200": _json(one, "Cancelled"), **_errors(401, 404, 409)}},
        },
    }
