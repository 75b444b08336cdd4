"""The OpenAPI 3 description of /api/v1, written by hand next to the routes it describes;
tests check the API against it with schemathesis."""

from __future__ import annotations

from typing import Any

from hotdesk.admin.listing import MAX_PAGE
from hotdesk.admin.lists import AUDIT_SORTS, PHONE_SORTS, SESSION_SORTS, USER_SORTS, by_id
from webadmin.paging import API_PER_PAGE, MAX_PER_PAGE

S = "string"
NULLABLE_S = {"type": [S, "null"]}


def _obj(props: dict[str, Any], required: list[str] | None = None,
         extra: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props,
                           "additionalProperties": extra}
    if required:
        out["required"] = required
    return out


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERR = _ref("Error")


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Invalid input", 401: "Missing or invalid bearer token",
            404: "No such object in your tenants", 409: "Conflicts with an existing object"}
    return {str(c): _json(ERR, text[c]) for c in codes}


def _id_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


NULLABLE_INT = {"type": ["integer", "null"]}
REGISTRATION = _obj({
    "state": {"enum": ["registered", "mismatch", "rejected", "unregistered"]},
    "label": {"type": S}, "ok": {"type": "boolean"},
    "expected_account": {"type": S, "description": "the logged-in user's account, or idle"},
    "account": NULLABLE_S, "address": NULLABLE_S, "since": NULLABLE_S,
    "expires_at": NULLABLE_S, "age_seconds": NULLABLE_INT, "failure_reason": NULLABLE_S,
    "failure_at": NULLABLE_S,
}, required=["state", "ok", "expected_account"])

PHONE = _obj({
    "id": {"type": "integer"}, "tenant_id": {"type": "integer"},
    "mac": {"type": S, "pattern": "^[0-9a-f]{12}$"}, "vendor": {"type": S},
    "model": {"type": S}, "name": {"type": S}, "extension": {"type": S},
    "method": {"enum": ["pnp", "rps"]}, "network": {"enum": ["lan", "sbc"]},
    "sbc": {"type": S}, "rps": {"type": "boolean"}, "provisioning_url": {"type": S},
    "transport": {"enum": ["", "udp", "tcp", "tls"]},
    "config_version": {"type": "integer"}, "fetched_version": {"type": "integer"},
    "config_state": {"enum": ["fetched", "pending"]}, "last_address": {"type": S},
    "state": {"enum": ["in_use", "idle", "offline"]}, "last_seen": NULLABLE_S,
    "user": NULLABLE_S, "registration": REGISTRATION,
}, required=["id", "mac", "extension", "state", "config_state", "provisioning_url"])

PHONE_INPUT = _obj({
    "mac": {"type": S, "description": "any common spelling; stored as 12 hex digits"},
    "extension": {"type": S, "description": "the phone's own idle extension"},
    "sip_password": {"type": S, "description": "SIP password of an idle account that exists "
                     "on the switch; omit it and hotdesk creates the account ([switch] "
                     "accounts_file / directory_password)"},
    "vendor": {"type": S}, "model": {"type": S}, "name": {"type": S},
    "method": {"enum": ["pnp", "rps"]}, "network": {"enum": ["lan", "sbc"]},
    "sbc": {"type": S, "description": "SBC HOST[:PORT], required with network sbc"},
    "rps": {"type": "boolean", "description": "also write the URL to the vendor's RPS"},
    "transport": {"enum": ["", "udp", "tcp", "tls"],
                  "description": "SIP transport of this phone; empty = [provisioning] transport"},
    "tenant_id": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1,
                  "description": "system administrators only"},
}, extra=True)

USER = _obj({
    "id": {"type": "integer"}, "tenant_id": {"type": "integer"}, "extension": {"type": S},
    "name": {"type": S}, "sip_username": {"type": S}, "hotdesk": {"type": "boolean"},
    "pin_set": {"type": "boolean"}, "language": {"type": S}, "timezone": {"type": S},
    "logged_in_on": {"type": "array", "items": {"type": "integer"}},
    "locked_until": {**NULLABLE_S, "description": "end of a PIN lockout (UTC), else null"},
}, required=["id", "extension", "hotdesk", "pin_set", "logged_in_on", "locked_until"])
REPROVISIONED = {"type": "array", "items": {"type": "integer"},
                 "description": "phones the change re-provisioned (new config or logged out)"}

USER_INPUT = _obj({
    "extension": {"type": S}, "name": {"type": S},
    "pin": {"type": S, "description": "4 to 8 digits; stored hashed"},
    "sip_password": {"type": S}, "hotdesk": {"type": "boolean"}, "language": {"type": S},
    "timezone": {"type": S, "description": "IANA zone while logged in; empty = the tenant's"},
    "tenant_id": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
}, extra=True)

SESSION = _obj({
    "id": {"type": "integer"}, "tenant_id": {"type": "integer"},
    "phone_id": {"type": "integer"}, "user_id": {"type": "integer"},
    "extension": {"type": S}, "since": {"type": S}, "expires": NULLABLE_S,
}, required=["id", "phone_id", "user_id", "since"])

NOTIFY = _obj({
    "id": {"type": "integer"}, "device_id": {"type": ["integer", "null"]},
    "phone": {"type": S}, "mac": {"type": S}, "endpoint": {"type": S},
    "status": {"enum": ["pending", "sent", "failed", "superseded"]},
    "result": {"enum": ["queued", "sent", "failed", "superseded"]},
    "detail": {"type": S}, "attempts": {"type": "integer"}, "sent_at": NULLABLE_S,
}, required=["id", "status", "result"])

DISCOVERED = _obj({
    "id": {"type": "integer"}, "mac": {"type": S}, "vendor": {"type": S},
    "model": {"type": S}, "firmware": {"type": S}, "address": {"type": S},
    "first_seen": NULLABLE_S, "last_seen": NULLABLE_S, "adopted": {"type": "boolean"},
})

AUDIT = _obj({
    "id": {"type": "integer"}, "at": {"type": S}, "tenant_id": {"type": ["integer", "null"]},
    "actor": {"type": S}, "action": {"type": S}, "phone_id": {"type": ["integer", "null"]},
    "user_id": {"type": ["integer", "null"]}, "call_id": {"type": S},
    "detail": {"type": "object"},
}, required=["id", "at", "action", "actor"])

STEPS = {"type": "array", "items": _obj({"step": {"type": S},
                                          "ok": {"type": ["boolean", "null"]},
                                          "message": {"type": S}})}


def _wrap(key: str, schema: dict[str, Any], **more: Any) -> dict[str, Any]:
    return _obj({key: schema, **more}, required=[key])


PAGE_FIELDS = {
    "page": {"type": "integer"}, "per_page": {"type": "integer"},
    "total": {"type": "integer", "description": "rows matching the filters, all pages"},
    "pages": {"type": "integer"},
    "next": {**NULLABLE_S, "description": "URL of the next page; null on the last"},
    "previous": {**NULLABLE_S, "description": "URL of the previous page; null on the first"},
}


def _paged(key: str, item: str) -> dict[str, Any]:
    """A page of a list: the rows under ``key`` and the paging fields (also sent as an
    RFC 8288 ``Link`` header with rel next/prev/first/last)."""
    return _obj({key: {"type": "array", "items": _ref(item)}, **PAGE_FIELDS},
                required=[key, "page", "per_page", "total", "pages"])


def _list_get(summary: str, operation: str, key: str, item: str,
              parameters: list[dict[str, Any]]) -> dict[str, Any]:
    return {"summary": summary, "operationId": operation, "parameters": parameters,
            "responses": {"200": _json(_paged(key, item), summary.split(",")[0]),
                          **_errors(400, 401)}}


def _list_params(sorts: Any, search: str = "") -> list[dict[str, Any]]:
    """page, per_page, sort (a column, ``-column`` for descending; ties by id) and q."""
    names = sorted(sorts.columns)
    out: list[dict[str, Any]] = [
        {"name": "page", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}},
        {"name": "per_page", "in": "query", "required": False,
         "description": f"rows per page, default {API_PER_PAGE}",
         "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE}},
        {"name": "sort", "in": "query", "required": False,
         "description": f"default {'-' if sorts.default_descending else ''}{sorts.default}",
         "schema": {"enum": names + ["-" + n for n in names]}}]
    if search:
        out.append({"name": "q", "in": "query", "required": False, "description": search,
                    "schema": {"type": S, "maxLength": 64}})
    return out


_COUNT = {"type": "integer", "minimum": 0}
PUSH_CAMPAIGN = _obj({
    "id": {"type": "integer"}, "tenant_id": NULLABLE_INT,
    "scope": {"enum": ["all", "tenant", "selected"]}, "actor": {"type": S},
    "state": {"enum": ["running", "cancelled", "done"]}, "rate": {"type": "number"},
    **{name: _COUNT for name in ("total", "waiting", "queued", "sent", "confirmed", "failed",
                                 "cancelled", "skipped", "done", "seconds_left")},
    "percent": {"type": "integer", "minimum": 0, "maximum": 100},
    "created_at": {"type": S}, "finished_at": NULLABLE_S,
}, required=["id", "state", "total", "done", "percent"])
_PUSH_ONE = {"type": "object", "properties": {"campaign": _ref("PushCampaign")},
             "required": ["campaign"]}
PUSH_PATHS: dict[str, Any] = {
    "/push-campaigns": {
        "get": {"summary": "Running and recent paced pushes", "operationId": "listPushes",
                "responses": {"200": _json({"type": "object", "properties": {"campaigns": {
                    "type": "array", "items": _ref("PushCampaign")}}}, "Pushes"),
                    **_errors(401)}},
        "post": {"summary": "Start a paced check-sync push ([notify] push_rate phones per "
                           "second): every phone in your tenants, one tenant, or chosen "
                           "phones (ids and/or MACs or extensions)",
                 "operationId": "startPush",
                 "requestBody": _body(_obj({
                     "scope": {"enum": ["all", "tenant", "selected"]},
                     "tenant_id": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
                     "phone_ids": {"type": "array", "items": {
                         "type": "integer", "minimum": 1, "maximum": 2**31 - 1}},
                     "phones": {"type": "array", "items": {"type": S}},
                     "rate": {"type": "number", "exclusiveMinimum": 0}}, ["scope"])),
                 "responses": {"202": _json(_PUSH_ONE, "Started"), **_errors(400, 401, 404)}},
    },
    "/push-campaigns/{campaign_id}": {
        "parameters": [_id_param("campaign_id")],
        "get": {"summary": "One push with its counts", "operationId": "getPush",
                "responses": {"200": _json(_PUSH_ONE, "The push"), **_errors(401, 404)}},
    },
    "/push-campaigns/{campaign_id}/cancel": {
        "parameters": [_id_param("campaign_id")],
        "post": {"summary": "Cancel a push: phones not released yet are not pushed",
                 "operationId": "cancelPush",
                 "responses": {"200": _json(_PUSH_ONE, "Cancelled"),
                               **_errors(401, 404, 409)}},
    },
}


def openapi_document() -> dict[str, Any]:
    phone_id, user_id, session_id = (_id_param("phone_id"), _id_param("user_id"),
                                     _id_param("session_id"))
    q = {"in": "query", "required": False, "schema": {"type": S}}
    paths: dict[str, Any] = {
        "/phones": {
            "get": _list_get("List hot-desking phones, a page at a time", "listPhones",
                             "phones", "Phone", _list_params(
                                 by_id(PHONE_SORTS), "part of the name, MAC (any spelling), "
                                 "idle extension, vendor or model")),
            "post": {"summary": "Add a phone; generates its config and queues a check-sync",
                     "operationId": "createPhone", "requestBody": _body(_ref("PhoneInput")),
                     "responses": {"201": _json(_wrap("phone", _ref("Phone"), steps=STEPS),
                                                "Created"), **_errors(400, 401, 404, 409)}},
        },
        "/phones/{phone_id}": {
            "parameters": [phone_id],
            "get": {"summary": "One phone", "operationId": "getPhone",
                    "responses": {"200": _json(_wrap("phone", _ref("Phone")), "The phone"),
                                  **_errors(401, 404)}},
            "put": {"summary": "Change a phone (fields left out keep their value)",
                    "operationId": "updatePhone", "requestBody": _body(_ref("PhoneInput")),
                    "responses": {"200": _json(_wrap("phone", _ref("Phone"), steps=STEPS),
                                               "Saved"), **_errors(400, 401, 404, 409)}},
            "delete": {"summary": "Delete a phone (a logged-in user is logged out first)",
                       "operationId": "deletePhone",
                       "responses": {"200": _json(_obj({"deleted": {"type": "integer"},
                                                        "steps": STEPS}),
                                                  "Deleted"), **_errors(401, 404)}},
        },
        "/phones/{phone_id}/notify": {
            "parameters": [phone_id],
            "post": {"summary": "Queue a check-sync NOTIFY for one phone",
                     "operationId": "notifyPhone",
                     "responses": {"202": _json(_wrap("notifies", {"type": "array",
                                                                   "items": _ref("Notify")}),
                                                "Queued"), **_errors(401, 404)}},
        },
        "/users": {
            "get": _list_get("List users, a page at a time", "listUsers", "users", "User",
                             _list_params(by_id(USER_SORTS), "part of the extension or name")),
            "post": {"summary": "Add a user", "operationId": "createUser",
                     "requestBody": _body(_ref("UserInput")),
                     "responses": {"201": _json(_wrap("user", _ref("User")), "Created"),
                                   **_errors(400, 401, 404, 409)}},
        },
        "/users/{user_id}": {
            "parameters": [user_id],
            "get": {"summary": "One user", "operationId": "getUser",
                    "responses": {"200": _json(_wrap("user", _ref("User")), "The user"),
                                  **_errors(401, 404)}},
            "put": {"summary": "Change a user (fields left out keep their value); a new SIP "
                               "password reaches their phones, disabling logs them out",
                    "operationId": "updateUser", "requestBody": _body(_ref("UserInput")),
                    "responses": {"200": _json(_wrap("user", _ref("User"),
                                                     reprovisioned=REPROVISIONED), "Saved"),
                                  **_errors(400, 401, 404)}},
            "delete": {"summary": "Delete a user (logged out of any phone first)",
                       "operationId": "deleteUser",
                       "responses": {"200": _json(_obj({"deleted": {"type": "integer"}}),
                                                  "Deleted"), **_errors(401, 404)}},
        },
        "/users/{user_id}/pin": {
            "parameters": [user_id],
            "put": {"summary": "Set the user's PIN", "operationId": "setUserPin",
                    "requestBody": _body(_obj({"pin": {"type": S}}, ["pin"], extra=True)),
                    "responses": {"200": _json(_wrap("user", _ref("User")), "Saved"),
                                  **_errors(400, 401, 404)}},
        },
        "/users/{user_id}/hotdesk": {
            "parameters": [user_id],
            "put": {"summary": "Enable or disable hot desking for the user",
                    "operationId": "setUserHotdesk",
                    "requestBody": _body(_obj({"enabled": {"type": "boolean"}}, ["enabled"],
                                              extra=True)),
                    "responses": {"200": _json(_wrap("user", _ref("User"),
                                                     reprovisioned=REPROVISIONED), "Saved"),
                                  **_errors(400, 401, 404)}},
        },
        "/users/{user_id}/unlock": {
            "parameters": [user_id],
            "post": {"summary": "Lift the user's PIN lockout", "operationId": "unlockUser",
                     "responses": {"200": _json(_wrap("user", _ref("User")), "Unlocked"),
                                   **_errors(401, 404)}},
        },
        "/sessions": {
            "get": _list_get("Active hot-desk sessions, a page at a time", "listSessions",
                             "sessions", "Session", _list_params(
                                 by_id(SESSION_SORTS), "part of the user's extension or "
                                 "name, or of the phone's name, idle extension or MAC")),
        },
        "/sessions/{session_id}": {
            "parameters": [session_id],
            "delete": {"summary": "Force logout: the phone returns to its idle profile",
                       "operationId": "forceLogout",
                       "responses": {"200": _json(_obj({"result": {"type": S}}), "Done"),
                                     **_errors(401, 404, 409)}},
        },
        "/discovered": {
            "get": {"summary": "Phones seen by PnP", "operationId": "listDiscovered",
                    "responses": {"200": _json(_wrap("discovered", {
                        "type": "array", "items": _ref("Discovered")}), "Phones"),
                        **_errors(401)}},
        },
        "/notify": {
            "get": {"summary": "Results of queued check-syncs", "operationId": "notifyStatus",
                    "parameters": [{"name": "ids", **q,
                                    "description": "comma-separated notify ids"}],
                    "responses": {"200": _json(_wrap("notifies", {"type": "array",
                                                                  "items": _ref("Notify")}),
                                               "Results"), **_errors(401)}},
            "post": {"summary": "Push check-sync to a selection or a whole tenant; more "
                                "phones than [notify] push_rate become a paced push, "
                                "answered with its campaign and no notifies",
                     "operationId": "pushNotify",
                     "requestBody": _body(_obj({
                         "phone_ids": {"type": "array", "items": {
                             "type": "integer", "minimum": 1, "maximum": 2**31 - 1}},
                         "tenant_id": {"type": "integer", "minimum": 1,
                                       "maximum": 2**31 - 1}}, extra=True)),
                     "responses": {"202": _json({"type": "object", "properties": {
                         "notifies": {"type": "array", "items": _ref("Notify")},
                         "campaign": _ref("PushCampaign")}, "required": ["notifies"]},
                         "Queued now, or paced"), **_errors(400, 401, 404)}},
        },
        **PUSH_PATHS,
        "/audit": {
            "get": _list_get("Audit log, newest first, 100 per page", "listAudit", "events",
                             "AuditEvent", [{"name": n, **q} for n in
                                            ("user", "phone", "action", "since", "until")]
                             + _list_params(AUDIT_SORTS)),
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "hotdesk admin API", "version": "1",
                 "description": "Hot desking administration. Authenticate with "
                                "'Authorization: Bearer <token>' (hotdesk admin token). "
                                "A tenant administrator's token only sees its tenant."},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": _obj({"error": {"type": S}, "kind": {
                            "enum": ["invalid", "not_found", "conflict"],
                            "description": "what kind of refusal (present on refused "
                                           "changes)"}}, ["error"]),
                        "Phone": PHONE, "PhoneInput": PHONE_INPUT, "User": USER,
                        "UserInput": USER_INPUT, "Session": SESSION, "Notify": NOTIFY,
                        "Discovered": DISCOVERED, "AuditEvent": AUDIT,
                        "PushCampaign": PUSH_CAMPAIGN},
        },
    }
