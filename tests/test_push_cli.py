"""``hotdesk notify push | status | cancel`` as a subprocess, in the README's forms, and
``hotdesk notify MAC`` still queueing one NOTIFY at once."""

from __future__ import annotations

from hotdesk.notify.push_models import PushCampaign, PushTarget
from hotdesk.store.models import OutboxNotify, Tenant
from tests.test_cli import hotdesk
from tests.test_push_campaigns import add_phones


def test_push_status_cancel_and_one_phone_at_once(runtime, database_url):
    phones = add_phones(3)
    other = Tenant.create(name="Other", sip_domain="other.example")
    add_phones(2, tenant=other, first=50)
    runtime.db.close()
    out = hotdesk(database_url, "notify", "push", "--tenant", "other.example", "--rate", "5")
    assert "push campaign 1: 2 phone(s) at 5/s" in out.stdout
    out = hotdesk(database_url, "notify", "push", "--phones", "80001, 80002")
    assert "push campaign 2: 2 phone(s) at 20/s" in out.stdout
    assert [t.device_id for t in PushTarget.select().where(PushTarget.campaign == 2)] == \
        phones[:2]
    listed = hotdesk(database_url, "notify", "status").stdout
    assert "running" in listed and "0/2 (0%)" in listed and "tenant" in listed
    one = hotdesk(database_url, "notify", "status", "1").stdout
    assert "waiting 2" in one and "by cli" in one
    cancelled = hotdesk(database_url, "notify", "cancel", "1").stdout
    assert "push campaign 1 cancelled: 2 phone(s) will not be pushed" in cancelled
    assert PushCampaign.get_by_id(1).state == "cancelled"
    status = hotdesk(database_url, "status").stdout
    assert "Paced pushes running: 1\n  #2 selected by cli: 0 of 2 done (0%), 20/s" in status
    assert OutboxNotify.select().count() == 0  # nothing was queued by a push at once
    queued = hotdesk(database_url, "notify", "00:15:01:00:00:03").stdout
    assert "check-sync NOTIFY queued for 00:15:01:00:00:03" in queued
    assert OutboxNotify.select().count() == 1


def test_mistakes_are_one_line_and_status_1(runtime, database_url):
    add_phones(2)
    runtime.db.close()
    for args, message in (
            (("notify", "push"), "give exactly one of --all, --tenant DOMAIN or --phones"),
            (("notify", "push", "--all", "--tenant", "x"), "give exactly one of"),
            (("notify", "push", "--tenant", "nope.example"), "no tenant with SIP domain"),
            (("notify", "push", "--phones", "80009"), "no phone 80009"),
            (("notify", "push", "--all", "--rate", "100"), "at most 20 phones per second"),
            (("notify", "status", "7"), "no push campaign 7"),
            (("notify", "status", "x"), "'x' is not a campaign id"),
            (("notify", "cancel"), "give the campaign id"),
            (("notify", "00:15:01:00:00:01", "2"), "unexpected argument '2'")):
        proc = hotdesk(database_url, *args, check=False)
        assert proc.returncode == 1 and message in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert PushCampaign.select().count() == 0
