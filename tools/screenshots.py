"""Regenerate docs/screenshots/*.png: seed a throw-away database with a realistic office,
start ``hotdesk web`` on a loopback port and photograph the main pages in headless
Chromium. Usage: .venv/bin/python tools/screenshots.py [PAGE …] (default: every page)"""

from __future__ import annotations

import sys
import tempfile
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hotdesk.admin import admins  # noqa: E402
from hotdesk.admin.inventory import DeviceSpec, add_device, add_user, default_tenant  # noqa: E402
from hotdesk.calls.service import CallContext  # noqa: E402
from hotdesk.notify import campaigns, pacing  # noqa: E402
from hotdesk.ops import health  # noqa: E402
from hotdesk.runtime import start  # noqa: E402
from hotdesk.settings import Config, DatabaseConfig  # noqa: E402
from hotdesk.store.models import (  # noqa: E402
    AuditEvent,
    Device,
    DiscoveredPhone,
    OutboxNotify,
    utcnow,
)
from tests.web.browser import browser_page, hotdesk_web, sign_in  # noqa: E402

OUT = REPO / "docs" / "screenshots"
PAGES = {"dashboard": "/", "phones": "/phones", "phone-add": "/phones/new",
         "discovered": "/discovered", "users": "/users", "sessions": "/sessions",
         "notify": "/notify", "audit": "/audit", "settings": "/settings",
         "import": "/users/import"}


def seed(url: str) -> None:
    rt = start(Config(database=DatabaseConfig(url=url)), migrate=True)
    tenant = default_tenant()
    admins.create_admin(rt.db, "admin", "screenshot-password")
    names = ["Alice Martin", "Bruno Keller", "Chloé Dubois", "Daniel Novak", "Eva Lindqvist",
             "Farid Haddad", "Greta Olsen", "Hugo Moreau"]
    for i, name in enumerate(names):
        add_user(rt.db, tenant, str(101 + i), name=name, pin=f"{1234 + i}",
                 sip_password=f"pw-{i}", hotdesk=i != 5)
    desks = []
    for i, (name, model) in enumerate([("Desk 2.01", "T54W"), ("Desk 2.02", "T54W"),
                                       ("Desk 2.03", "T46U"), ("Reception", "T57W"),
                                       ("Meeting room Aurora", "T58W"),
                                       ("Desk 3.01", "T46U")]):
        desks.append(add_device(rt.db, tenant, DeviceSpec(
            mac=f"00:15:65:3a:10:{i + 1:02x}", extension=str(8001 + i),
            sip_password=f"idle-{i}", name=name, model=model,
            method="rps" if i == 4 else "pnp", network="sbc" if i == 5 else "lan",
            sbc="sbc.example.net:5061" if i == 5 else "")))
    now = utcnow()
    for i, desk in enumerate(desks[:5]):
        Device.update(last_fetch_at=now - timedelta(minutes=5 * i + 3), fetched_version=1,
                      last_address=f"10.20.0.{31 + i}:5060").where(Device.id == desk.id).execute()
    for i, desk in enumerate(desks[:3]):
        ctx = CallContext(switch="asterisk", call_id=f"s{i}", endpoint=desk.idle_extension,
                          source=f"10.20.0.{31 + i}:5060")
        rt.service.login(desk.id, str(101 + i), f"{1234 + i}", ctx)
    rt.service.login(desks[3].id, "104", "0000",
                     CallContext(switch="asterisk", call_id="f1", endpoint="8004"))
    # Spread past logins over the day for the chart.
    for hour, count in [(1, 2), (2, 5), (3, 7), (4, 4), (6, 3), (7, 6), (9, 2), (13, 1)]:
        for n in range(count):
            AuditEvent.create(tenant=tenant, action="login", actor="caller:10x",
                              at=now - timedelta(hours=hour, minutes=n * 5))
    DiscoveredPhone.create(mac="805ec0112233", vendor="Yealink", model="SIP-T54W",
                           firmware="96.86.0.70", address="10.20.0.77")
    DiscoveredPhone.create(mac=desks[0].mac, vendor="Yealink", model="SIP-T54W",
                           firmware="96.86.0.70", address="10.20.0.31", adopted=True)
    _seed_pushes(rt.config, [d.id for d in desks])
    rt.db.close()


def _seed_pushes(config: Config, desk_ids: list[int]) -> None:
    """A finished push over the tenant and one running at 2 phones per second (as if a
    worker's pacer ran: its heartbeat is up)."""
    health.report("push-pacer", "up", "running", node="hotdesk-1")
    start_at = utcnow() - timedelta(hours=2)
    done = campaigns.start(config, "tenant", desk_ids, actor="admin:admin", now=start_at)
    pacing.release(config, now=start_at + timedelta(seconds=1))
    OutboxNotify.update(status="sent", sent_at=start_at + timedelta(seconds=2)).where(
        OutboxNotify.status == "pending").execute()
    pacing.release(config, now=start_at + timedelta(seconds=3))
    assert campaigns.progress(campaigns.visible(done.id, None)).state == "done"
    now = utcnow()
    campaigns.start(config, "selected", desk_ids, actor="admin:admin", rate=2.0, now=now)
    pacing.release(config, now=now + timedelta(seconds=1.5))
    first = OutboxNotify.select().order_by(OutboxNotify.id.desc()).limit(3)
    OutboxNotify.update(status="sent", sent_at=now).where(
        OutboxNotify.id.in_([r.id for r in first][1:])).execute()


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/hotdesk.db"
        seed(url)
        with hotdesk_web(url, Path(tmp)) as base, browser_page(1440, 900) as page:
            sign_in(page, base, "admin", "screenshot-password")
            wanted = sys.argv[1:] or list(PAGES)
            for name, path in ((n, PAGES[n]) for n in wanted):
                page.goto(base + path)
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
                print(f"docs/screenshots/{name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
