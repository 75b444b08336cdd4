"""Which phones a paced push covers: all in the admin's scope, a tenant, chosen ids, or
pasted MACs / extensions, resolved in bulk. Anything outside the scope is "not found",
exactly like something that does not exist, so nothing about other tenants leaks."""

from __future__ import annotations

import re
from collections.abc import Sequence

from hotdesk.admin.errors import InventoryError, NotFound
from hotdesk.mac import InvalidMac, normalise_mac
from hotdesk.store.models import Device, Tenant

Scope = Sequence[int] | None  # tenant ids an admin may see; None = all tenants
SCOPES = ("all", "tenant", "selected")
MAX_PASTED = 10000  # MACs / extensions in one pasted list


def scoped_devices(scope: Scope):  # type: ignore[no-untyped-def]
    query = Device.select()
    return query if scope is None else query.where(Device.tenant.in_(list(scope)))


def resolve_phones(text: str, scope: Scope, tenant_id: int | None = None) -> list[int]:
    """Device ids for pasted MACs or idle extensions (any separators), within ``scope``
    (and ``tenant_id`` when given). Anything not found is refused, naming the first
    few, so an admin never starts a campaign that silently misses phones."""
    tokens = [t for t in re.split(r"[\s,;]+", text or "") if t]
    if not tokens:
        raise InventoryError("paste at least one MAC address or extension")
    if len(tokens) > MAX_PASTED:
        raise InventoryError(f"at most {MAX_PASTED} MAC addresses or extensions at once")
    macs: dict[str, str] = {}
    extensions: list[str] = []
    for token in tokens:
        try:
            macs[normalise_mac(token)] = token
        except InvalidMac:
            if not re.fullmatch(r"[0-9A-Za-z_.+*#-]{1,40}", token):
                raise InventoryError(f"{token[:40]!r} is neither a MAC address nor an "
                                     "extension") from None
            extensions.append(token)
    base = scoped_devices(scope)
    if tenant_id is not None:
        base = base.where(Device.tenant == tenant_id)
    found: dict[int, None] = {}
    missing: list[str] = []
    for chunk in chunks(list(macs), 500):
        rows = {d.mac: d.id for d in base.select(Device.id, Device.mac)
                .where(Device.mac.in_(chunk))}
        missing += [macs[m] for m in chunk if m not in rows]
        found.update(dict.fromkeys(rows[m] for m in chunk if m in rows))
    for chunk in chunks(extensions, 500):
        rows_by_ext: dict[str, list[int]] = {}
        for d in base.select(Device.id, Device.idle_extension).where(
                Device.idle_extension.in_(chunk)):
            rows_by_ext.setdefault(d.idle_extension, []).append(d.id)
        for ext in chunk:
            if ext not in rows_by_ext:
                missing.append(ext)
            elif len(rows_by_ext[ext]) > 1:
                raise InventoryError(f"extension {ext} is a phone in several tenants; "
                                     "choose the tenant or paste its MAC")
            else:
                found[rows_by_ext[ext][0]] = None
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise NotFound(f"no phone {', '.join(missing[:5])}{more}")
    return list(found)


def chunks(items: list, size: int) -> list[list]:  # type: ignore[type-arg]
    return [items[i:i + size] for i in range(0, len(items), size)]


def phones_for(scope: Scope, kind: str, tenant_id: int | None = None,
               device_ids: Sequence[int] = ()) -> list[int]:
    """The device ids a campaign of ``kind`` covers, in the admin's scope.

    A tenant or a phone outside the scope is "not found", exactly like one that does
    not exist, so nothing about other tenants leaks."""
    if kind not in SCOPES:
        raise InventoryError(f"scope must be one of {', '.join(SCOPES)}")
    query = scoped_devices(scope).select(Device.id)
    if kind == "tenant":
        if tenant_id is None or (scope is not None and tenant_id not in scope) \
                or not Tenant.select().where(Tenant.id == tenant_id).exists():
            raise NotFound("no such tenant")
        query = query.where(Device.tenant == tenant_id)
    elif kind == "selected":
        wanted = list(dict.fromkeys(device_ids))
        if not wanted:
            raise InventoryError("choose at least one phone")
        known: set[int] = set()
        for chunk in chunks(wanted, 500):
            known.update(d.id for d in query.where(Device.id.in_(chunk)))
        missing = [i for i in wanted if i not in known]
        if missing:
            raise NotFound(f"no phone with id {missing[0]}")
        return wanted
    return [d.id for d in query.order_by(Device.tenant, Device.id)]
