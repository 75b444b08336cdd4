"""The DST-change job re-provisions fixed-offset phones at their zone's DST change, once,
and leaves phones that follow a DST rule (Grandstream) and zone changes by log-in alone."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from hotdesk.admin.inventory import add_user, default_tenant
from hotdesk.calls.service import CallContext
from hotdesk.ops.worker import tick
from hotdesk.provisioning.dst import dst_resync
from hotdesk.provisioning.render import make_environment, profile_for, render_profile
from hotdesk.provisioning.vendors import get_vendor
from hotdesk.store.models import Device, OutboxNotify, User
from tests.conftest import make_device

BEFORE = datetime(2026, 3, 29, 0, 30)  # 01:30 CET
AFTER = datetime(2026, 3, 29, 1, 30)  # 03:30 CEST


def render_at(config, device, now) -> str:
    profile = profile_for(device, config, now=now)
    files = render_profile(make_environment(config), get_vendor(device.vendor), profile)
    return next(iter(files.values()))


def berlin(runtime):
    return dataclasses.replace(runtime.config, provisioning=dataclasses.replace(
        runtime.config.provisioning, timezone="Europe/Berlin"))


def test_dst_change_bumps_and_notifies_fixed_offset_phones_once(runtime):
    config = berlin(runtime)
    snom = make_device(runtime, mac="00:04:13:00:0a:01", extension="8201", vendor="snom")
    gs = make_device(runtime, mac="00:0b:82:00:0a:02", extension="8202", vendor="grandstream",
                     model="GXP2140")
    yealink = make_device(runtime, mac="00:15:65:00:0a:05", extension="8205",
                          vendor="yealink")
    assert dst_resync(runtime.db, config, BEFORE) == 0  # first sight: recorded only
    version = Device.get_by_id(snom.id).config_version
    assert dst_resync(runtime.db, config, BEFORE) == 0
    assert dst_resync(runtime.db, config, AFTER) == 1
    after = Device.get_by_id(snom.id)
    assert after.config_version == version + 1
    row = OutboxNotify.get(OutboxNotify.device == snom.id)
    assert (row.event, row.endpoint, row.config_version) == (
        "check-sync;reboot=false", "8201", version + 1)
    # Grandstream (POSIX rule) and Yealink (week rule) switch DST themselves
    for follows in (gs, yealink):
        assert not OutboxNotify.select().where(OutboxNotify.device == follows.id).exists()
    assert dst_resync(runtime.db, config, AFTER) == 0  # once per change
    assert '<utc_offset perm="R">3600</utc_offset>' in render_at(config, after, BEFORE)
    assert '<utc_offset perm="R">7200</utc_offset>' in render_at(config, after, AFTER)


def test_zone_change_by_login_is_not_a_dst_change(runtime):
    config = berlin(runtime)
    desk = make_device(runtime, mac="00:04:13:00:0a:03", extension="8203", vendor="snom")
    add_user(runtime.db, default_tenant(), "101", name="Alice", pin="1234",
             sip_password="pw", hotdesk=True)
    User.update(timezone="America/New_York").where(User.extension == "101").execute()
    assert dst_resync(runtime.db, config, BEFORE) == 0
    ctx = CallContext(switch="asterisk", call_id="t", endpoint="x")
    assert runtime.service.login(desk.id, "101", "1234", ctx).outcome.value == "ok"
    queued = OutboxNotify.select().where(OutboxNotify.device == desk.id).count()
    assert dst_resync(runtime.db, config, BEFORE) == 0
    assert OutboxNotify.select().where(OutboxNotify.device == desk.id).count() == queued
    # the user's zone, not the tenant's: New York is on EDT (UTC-4) on 29 March
    assert '<utc_offset perm="R">-14400</utc_offset>' in render_at(
        config, Device.get_by_id(desk.id), BEFORE)


def test_worker_tick_runs_the_job(runtime):
    config = berlin(runtime)
    make_device(runtime, mac="00:15:65:00:0a:04", extension="8204", vendor="fanvil")
    assert tick(runtime.service, config, now=BEFORE).dst == 0
    assert tick(runtime.service, config, now=AFTER).dst == 1
