"""``hotdesk demo``: demo data for a first look (idempotent), and a demo admin."""

from __future__ import annotations

import argparse
import secrets

from hotdesk.admin import inventory
from hotdesk.admin.inventory import DeviceSpec
from hotdesk.hashing import hash_password
from hotdesk.provisioning.render import device_url
from hotdesk.runtime import start
from hotdesk.store.models import Admin, Device, User

DEMO_USERS = [("101", "Alice Martin", "1234"), ("102", "Bob Nguyen", "2345"),
              ("103", "Chloe Okafor", "3456")]
DEMO_DEVICES = [("00:15:65:12:34:01", "yealink", "T54W", "8001", "Desk 1"),
                ("00:15:65:12:34:02", "yealink", "T46U", "8002", "Desk 2")]


def cmd_demo(args: argparse.Namespace) -> int:
    rt = start(args.cfg, migrate=True)
    tenant = inventory.default_tenant()
    for ext, name, pin in DEMO_USERS:
        if not User.get_or_none((User.tenant == tenant) & (User.extension == ext)):
            inventory.add_user(rt.db, tenant, ext, name=name, pin=pin,
                               sip_password=secrets.token_urlsafe(12), hotdesk=True,
                               actor="demo")
            print(f"user {ext} {name}: PIN {pin}")
    for mac, vendor, model, ext, name in DEMO_DEVICES:
        if not Device.get_or_none(Device.idle_extension == ext):
            device = inventory.add_device(rt.db, tenant, DeviceSpec(
                mac=mac, extension=ext, sip_password=secrets.token_urlsafe(12), vendor=vendor,
                model=model, name=name), actor="demo")
            print(f"phone {name} ({mac}, idle extension {ext}): {device_url(rt.config, device)}")
    if not Admin.get_or_none(Admin.username == "admin"):
        password = secrets.token_urlsafe(12)
        Admin.create(username="admin", password_hash=hash_password(password), role="system")
        print(f"web admin: user 'admin', password '{password}' "
              f"(http://{rt.config.web.listen}/)")
    else:
        print("web admin: user 'admin' already exists (reset it with 'hotdesk admin create')")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("demo", help="create demo users, phones and a web admin (idempotent)"
                   ).set_defaults(handler=cmd_demo)
