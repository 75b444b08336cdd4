"""The long admin lists (phones, users, active sessions, audit log) as pages chosen in
the database, for the web pages and the API alike. Each takes the tenant scope
explicitly, like :mod:`hotdesk.admin.reports`; sorts are whitelisted per list."""

from __future__ import annotations

from dataclasses import replace

from peewee import Node

from hotdesk.admin import listing, reports
from hotdesk.admin.listing import ListParams, Page, Sorts
from hotdesk.admin.reports import AuditFilter, Scope
from hotdesk.store.models import AuditEvent, Device, Session, User

PHONE_SORTS = Sorts({"name": Device.display_name, "mac": Device.mac,
                     "extension": Device.idle_extension, "vendor": Device.vendor,
                     "model": Device.model, "method": Device.method,
                     "network": Device.network, "last_fetch": Device.last_fetch_at,
                     "id": Device.id}, default="extension")
USER_SORTS = Sorts({"extension": User.extension, "name": User.display_name,
                    "hotdesk": User.hotdesk_enabled, "id": User.id}, default="extension")
SESSION_SORTS = Sorts({"since": Session.started_at, "expires": Session.expires_at,
                       "user": User.extension, "phone": Device.idle_extension,
                       "id": Session.id}, default="since", default_descending=True)
AUDIT_SORTS = Sorts({"at": AuditEvent.at, "action": AuditEvent.action, "id": AuditEvent.id},
                    default="at", default_descending=True)


def by_id(sorts: Sorts) -> Sorts:
    """The same columns, ordered by id unless asked otherwise (the API's order)."""
    return replace(sorts, default="id", default_descending=False)


def _phone_match(q: str, *more: Node) -> Node:
    """``q`` in a phone's label or idle extension, in its MAC (any spelling), or in
    ``more`` columns."""
    match = listing.like_any(q, Device.display_name, Device.idle_extension, *more)
    if mac := listing.mac_fragment(q):
        match |= Device.mac.contains(mac)
    return match


def phones(scope: Scope, params: ListParams, sorts: Sorts = PHONE_SORTS) -> Page:
    """Phones whose label, idle extension, vendor, model or MAC contains ``params.q``."""
    query = reports.scoped(Device.select(), Device, scope)
    if params.q:
        query = query.where(_phone_match(params.q, Device.vendor, Device.model))
    return listing.fetch(query, query, params, sorts)


def users(scope: Scope, params: ListParams, sorts: Sorts = USER_SORTS) -> Page:
    """Users whose extension or name contains ``params.q``."""
    query = reports.scoped(User.select(), User, scope)
    if params.q:
        query = query.where(listing.like_any(params.q, User.extension, User.display_name))
    return listing.fetch(query, query, params, sorts)


def sessions(scope: Scope, params: ListParams, sorts: Sorts = SESSION_SORTS) -> Page:
    """Active sessions with their phone and user (one query); ``params.q`` matches the
    user's extension or name, or the phone's label, idle extension or MAC."""
    active = reports.scoped(Session.select().where(Session.ended_at.is_null()), Session,
                            scope)
    query = (active.select(Session, Device, User).join(Device).switch(Session).join(User))
    if params.q:
        query = query.where(_phone_match(params.q, User.extension, User.display_name))
    return listing.fetch(query, query if params.q else active, params, sorts)


def audit(scope: Scope, flt: AuditFilter, params: ListParams,
          sorts: Sorts = AUDIT_SORTS) -> Page:
    """Audit rows ``flt`` selects, each with its user and phone; counted without joins."""
    return listing.fetch(reports.audit_query(scope, flt), reports.audit_filtered(scope, flt),
                         params, sorts)
