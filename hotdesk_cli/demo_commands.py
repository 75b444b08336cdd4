"""``hotdesk demo``: demo data for a first look (idempotent), a demo admin, and the demo's
config file (``--write-config``) that the ``hotdesk`` command then finds in this directory.

The demo talks to no switch unless asked (``--switch asterisk|freeswitch``): ``[switch]
type = none`` starts no AMI or Event Socket client, and its FastAGI / Event Socket
listeners are on 14573 / 18084, so a lab PBX whose dialplan points at the standard ports
never reaches the demo's data. Every run prints the PINs, URLs and the admin password
again (kept in ``var/demo-admin-password``, readable by its owner only).
"""

from __future__ import annotations

import argparse
import os
import secrets
from pathlib import Path

from hotdesk.admin import inventory
from hotdesk.admin.inventory import DeviceSpec
from hotdesk.hashing import hash_password
from hotdesk.provisioning.render import device_url
from hotdesk.runtime import start
from hotdesk.settings import load_config
from hotdesk.store.models import Admin, Device, User

DEMO_USERS = [("101", "Alice Martin", "1234"), ("102", "Bob Nguyen", "2345"),
              ("103", "Chloe Okafor", "3456")]
DEMO_DEVICES = [("00:15:65:12:34:01", "yealink", "T54W", "8001", "Desk 1"),
                ("00:15:65:12:34:02", "yealink", "T46U", "8002", "Desk 2")]
MARKER = "# Written by hotdesk demo"
# switch -> (listen lines of the config, the components scripts/demo runs)
SWITCH_SETUPS = {
    "none": ("[agi]\n# Not the standard 4573: a lab PBX's dialplan never reaches the demo.\n"
             "listen = 127.0.0.1:14573\n\n[esl]\nlisten = 127.0.0.1:18084\n", "agi,web,worker"),
    "asterisk": ("[agi]\nlisten = 127.0.0.1:4573\n", "agi,web,worker"),
    "freeswitch": ("[esl]\nlisten = 127.0.0.1:8084\n", "esl,web,worker"),
}


def demo_config(directory: Path, switch: str) -> str:
    var = (directory / "var").resolve()
    listen, _ = SWITCH_SETUPS[switch]
    why = ("# none: no AMI / Event Socket connection at all; check-sync NOTIFYs stay queued.\n"
           "# scripts/demo --switch asterisk|freeswitch connects to a lab switch on purpose.\n"
           if switch == "none" else f"# Asked for with --switch {switch}.\n")
    return (f"{MARKER} (scripts/demo). The hotdesk command uses the hotdesk.ini of the\n"
            "# current directory; delete this file to go back to the built-in defaults.\n\n"
            f"[database]\nurl = sqlite:///{var / 'hotdesk.db'}\n\n"
            f"[switch]\n{why}type = {switch}\n"
            "# The demo users' SIP passwords are kept by hotdesk (no switch to read them from).\n"
            "credentials = hotdesk\n\n"
            f"{listen}\n"
            "[policy]\n# The demo users' PINs are hotdesk's own (no voicemail on a switch).\n"
            "pin_source = hotdesk\n\n"
            f"[web]\nlisten = 127.0.0.1:8080\nsecret_key_file = {var / 'web.secret'}\n")


def write_config(path: Path, switch: str) -> str:
    """Write the demo's config unless ``path`` is a file the demo did not write."""
    if path.exists() and not path.read_text(encoding="utf-8").startswith(MARKER):
        return f"config: {path} exists and was not written by the demo; using it as it is"
    (path.parent / "var").mkdir(exist_ok=True)
    path.write_text(demo_config(path.parent, switch), encoding="utf-8")
    return f"config: {path} (the hotdesk command finds it when run from {path.parent})"


def admin_password(secret_file: Path) -> tuple[str, str]:
    """The demo admin's password, kept so a second run can print it again."""
    admin = Admin.get_or_none(Admin.username == "admin")
    if admin is not None and secret_file.is_file():
        return secret_file.read_text(encoding="utf-8").strip(), "already exists"
    password = secrets.token_urlsafe(12)
    if admin is None:
        Admin.create(username="admin", password_hash=hash_password(password), role="system")
        how = "created"
    else:  # made by an older demo that kept no copy: give it a password we can show again
        Admin.update(password_hash=hash_password(password)).where(
            Admin.id == admin.id).execute()
        how = "password reset"
    secret_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(password + "\n")
    return password, how


def cmd_demo(args: argparse.Namespace) -> int:
    cfg = args.cfg
    if args.write_config:
        path = Path(args.write_config)
        print(write_config(path, args.switch))
        cfg = load_config(path)
    rt = start(cfg, migrate=True)
    tenant = inventory.default_tenant()
    for ext, name, pin in DEMO_USERS:
        if not User.get_or_none((User.tenant == tenant) & (User.extension == ext)):
            inventory.add_user(rt.db, tenant, ext, name=name, pin=pin,
                               sip_password=secrets.token_urlsafe(12), hotdesk=True,
                               actor="demo")
        print(f"user {ext} {name}: PIN {pin}")
    for mac, vendor, model, ext, name in DEMO_DEVICES:
        device = Device.get_or_none(Device.idle_extension == ext)
        if device is None:
            device = inventory.add_device(rt.db, tenant, DeviceSpec(
                mac=mac, extension=ext, sip_password=secrets.token_urlsafe(12), vendor=vendor,
                model=model, name=name), actor="demo")
        print(f"phone {name} ({mac}, idle extension {ext}): {device_url(rt.config, device)}")
    url = cfg.database.url
    folder = (Path(url.removeprefix("sqlite:///")).parent if url.startswith("sqlite:///")
              else Path("var"))
    password, how = admin_password(folder / "demo-admin-password")
    print(f"web admin ({how}): user 'admin', password '{password}' "
          f"(http://{rt.config.web.listen}/)")
    switch = rt.config.switch.type
    if switch == "none":
        print(f"switch: none (no AMI or Event Socket connection); FastAGI for 'hotdesk "
              f"simulate' on {rt.config.agi.listen}")
    print(f"components: {SWITCH_SETUPS.get(switch, SWITCH_SETUPS['none'])[1]}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="create demo users, phones and a web admin (idempotent)")
    p.add_argument("--write-config", metavar="FILE",
                   help="write the demo's config file there first (scripts/demo: hotdesk.ini)")
    p.add_argument("--switch", choices=sorted(SWITCH_SETUPS), default="none",
                   help="with --write-config: the switch the demo may talk to (default none)")
    p.set_defaults(handler=cmd_demo)
