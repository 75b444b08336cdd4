"""The DST-change job: phones that carry a fixed UTC offset get their new one.

Phones whose vendor cannot be told their zone's DST rule (``Vendor.dst``) are given
today's offset with their own DST switched off. At each DST change of their zone
this job bumps their config version and queues a check-sync NOTIFY, so the clock moves
with the zone. It decides from ``Device.clock_state`` (zone and offset the config last
carried), so a worker that was down at the change catches up when it starts.
"""

from __future__ import annotations

import logging
from datetime import datetime

from peewee import Database

from hotdesk.notify import outbox
from hotdesk.provisioning import clock
from hotdesk.provisioning.render import phone_zone
from hotdesk.provisioning.vendors import VENDORS
from hotdesk.settings import Config
from hotdesk.store.db import write_transaction
from hotdesk.store.models import Device, Session, Tenant, User, utcnow

log = logging.getLogger(__name__)


def dst_resync(db: Database, config: Config, now: datetime | None = None) -> int:
    """Re-provision every fixed-offset phone whose zone changed offset; returns how many.

    A phone seen for the first time, or whose zone changed (log in/out, an admin edit),
    is only recorded: whatever changed its zone re-provisioned it already.
    """
    now = now or utcnow()
    tenants = {t.id: t for t in Tenant.select()}
    # Plain rows, not models: a tick reads every phone, and building 10,000 model
    # objects costs more than the rest of the job.
    users = {device_id: (tz, sip_username) for device_id, tz, sip_username in
             Session.select(Session.device, User.timezone, User.sip_username)
             .join(User).where(Session.ended_at.is_null()).tuples()}
    # A fleet has few (zone, vendor rule) pairs: each is worked out once per pass.
    zones: dict[tuple[int, str], str] = {}
    states: dict[tuple[str, str], str | None] = {}  # None: the phone follows the zone itself
    notified = 0
    for device_id, tenant_id, vendor_name, mac, clock_state, version, idle_account in (
            Device.select(Device.id, Device.tenant, Device.vendor, Device.mac,
                          Device.clock_state, Device.config_version, Device.idle_sip_username)
            .tuples()):
        vendor = VENDORS.get(vendor_name)
        if vendor is None:
            continue
        logged_in = users.get(device_id)
        user_tz = (logged_in[0] or "") if logged_in is not None else ""
        zone = zones.get((tenant_id, user_tz))
        if zone is None:
            user = User(__no_default__=True, timezone=user_tz) if user_tz else None
            zone = zones[tenant_id, user_tz] = phone_zone(config, tenants[tenant_id], user)
        state_key = (vendor.dst, zone)
        if state_key not in states:
            states[state_key] = (None if clock.follows(vendor.dst, zone) else
                                 clock.clock_state(zone, clock.utc_offset_minutes(zone, now)))
        state = states[state_key]
        if state is None or clock_state == state:
            continue
        offset = clock.utc_offset_minutes(zone, now)
        changed = clock.dst_changed(clock_state, zone, offset)
        with write_transaction(db):
            query = Device.update(clock_state=state)
            if changed:
                query = Device.update(clock_state=state,
                                      config_version=Device.config_version + 1)
            query.where(Device.id == device_id).execute()
            if changed:
                fresh = Device.get_by_id(device_id)
                endpoint = logged_in[1] if logged_in is not None else idle_account
                outbox.enqueue(fresh, tenants[tenant_id], endpoint, config.switch.type,
                               now=now)
        if changed:
            notified += 1
            log.info("phone %s: %s is now UTC%+d min (DST change); config v%d queued",
                     mac, zone, offset, version + 1)
    return notified
