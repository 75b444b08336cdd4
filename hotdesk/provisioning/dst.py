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
    users = {s.device_id: s.user for s in
             Session.select(Session.device, User.id, User.timezone, User.sip_username)
             .join(User).where(Session.ended_at.is_null())}
    # A fleet has few (zone, vendor rule) pairs: each is worked out once per pass.
    zones: dict[tuple[int, str | None], str] = {}
    states: dict[tuple[str, str], str | None] = {}  # None: the phone follows the zone itself
    notified = 0
    for device in Device.select(Device.id, Device.tenant, Device.vendor, Device.mac,
                                Device.clock_state, Device.config_version,
                                Device.idle_sip_username):
        vendor = VENDORS.get(device.vendor)
        if vendor is None:
            continue
        user = users.get(device.id)
        zone_key = (device.tenant_id, user.timezone if user is not None else None)
        zone = zones.get(zone_key)
        if zone is None:
            zone = zones[zone_key] = phone_zone(config, tenants[device.tenant_id], user)
        state_key = (vendor.dst, zone)
        if state_key not in states:
            states[state_key] = (None if clock.follows(vendor.dst, zone) else
                                 clock.clock_state(zone, clock.utc_offset_minutes(zone, now)))
        state = states[state_key]
        if state is None or device.clock_state == state:
            continue
        offset = clock.utc_offset_minutes(zone, now)
        changed = clock.dst_changed(device.clock_state, zone, offset)
        with write_transaction(db):
            query = Device.update(clock_state=state)
            if changed:
                query = Device.update(clock_state=state,
                                      config_version=Device.config_version + 1)
            query.where(Device.id == device.id).execute()
            if changed:
                fresh = Device.get_by_id(device.id)
                endpoint = user.sip_username if user is not None else device.idle_sip_username
                outbox.enqueue(fresh, tenants[device.tenant_id], endpoint, config.switch.type,
                               now=now)
        if changed:
            notified += 1
            log.info("phone %s: %s is now UTC%+d min (DST change); config v%d queued",
                     device.mac, zone, offset, device.config_version + 1)
    return notified
