"""The dashboard's in use / idle / offline counts come from three COUNTs in the database;
they must equal what the per-phone rule (:func:`reports.phone_statuses`) says of every
phone, for every mix of session, config fetch and call, and stay within the tenants."""

from __future__ import annotations

from datetime import timedelta

from hotdesk.admin import reports
from hotdesk.admin.inventory import default_tenant
from hotdesk.store.models import Device, LoginAttempt, Tenant, utcnow
from tests.web import fleet

OFFLINE = timedelta(minutes=10)


def mixed_fleet(tenant: Tenant) -> None:
    """12 phones of ``tenant``: 3 in use, then fetch/call recent, old or never."""
    phones = fleet.add_phones(tenant, 12)
    users = fleet.add_users(tenant, 3)
    fleet.log_in(list(zip(phones[:3], users, strict=True)))
    now = utcnow()
    recent, old = now - timedelta(minutes=2), now - timedelta(hours=3)
    for device, fetched in zip(phones[3:7], (recent, old, recent, None), strict=True):
        Device.update(last_fetch_at=fetched).where(Device.id == device.id).execute()
    for device, called in zip(phones[7:10], (recent, old, recent), strict=True):
        LoginAttempt.create(tenant=tenant, device=device, result="bad_pin", at=called)
    # phones[10:] never fetched nor called: offline.


def by_rule(scope: reports.Scope, offline: timedelta = OFFLINE) -> dict[str, int]:
    devices = list(reports.scoped(Device.select(), Device, scope))
    counts = {"in_use": 0, "idle": 0, "offline": 0, "total": len(devices)}
    for status in reports.phone_statuses(devices, offline).values():
        counts[status.state] += 1
    return counts


def test_counts_in_the_database_equal_the_per_phone_rule(runtime):  # type: ignore[no-untyped-def]
    mine = default_tenant()
    other = Tenant.create(name="Other", sip_domain="other.example")
    mixed_fleet(mine)
    mixed_fleet(other)
    LoginAttempt.create(tenant=other, device=None, result="unknown_phone")  # no desk

    for scope in (None, [mine.id], [other.id], []):
        assert reports.phone_state_counts(scope, OFFLINE) == by_rule(scope), scope
    assert reports.phone_state_counts([mine.id], OFFLINE) == \
        {"in_use": 3, "idle": 4, "offline": 5, "total": 12}


def test_dashboard_shows_the_counts(root_client, runtime):  # type: ignore[no-untyped-def]
    mixed_fleet(default_tenant())
    expected = by_rule(None, timedelta(minutes=runtime.config.web.offline_after_minutes))
    text = root_client.get("/").get_data(as_text=True)
    for state in ("in_use", "idle", "offline"):
        assert f'data-count="{state}">{expected[state]}<' in text, state
    assert f"{expected['total']} hot-desking phone(s)" in text
