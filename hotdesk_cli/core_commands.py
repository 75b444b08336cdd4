"""Admin commands on the database: db, user, device, session, notify, config.

(``provision`` lives in provision_commands.)
"""

from __future__ import annotations

import argparse
import getpass
import sys

from hotdesk.admin import inventory, usecases
from hotdesk.admin.errors import EXIT_STATUS
from hotdesk.admin.inventory import DeviceSpec, InventoryError, NotFound
from hotdesk.admin.pushes import Step
from hotdesk.mac import format_mac
from hotdesk.provisioning.render import device_url
from hotdesk.runtime import Runtime, redact_url, start
from hotdesk.settings import example_ini
from hotdesk.store.models import Device, Session, Tenant, User, utcnow
from hotdesk.switch import registrations


def _fail(message: str, status: int = 1) -> int:
    print(f"hotdesk: {message}", file=sys.stderr)
    return status


def _steps(steps: list[Step]) -> int:
    """Print what followed a change; status 1 when a step failed (the change itself stays)."""
    for step in steps:
        print(step.message, file=sys.stdout if step.ok is not False else sys.stderr)
    return 1 if any(step.ok is False for step in steps) else 0


def _phones(result: usecases.UserResult) -> str:
    if not result.phones:
        return ""
    macs = [format_mac(d.mac) for d in Device.select().where(Device.id.in_(result.phones))]
    return f"; re-provisioned {', '.join(macs)}"


def _tenant(domain: str | None) -> Tenant:
    if not domain:
        return inventory.default_tenant()
    tenant = Tenant.get_or_none(Tenant.sip_domain == domain)
    if tenant is None:
        raise NotFound(f"no tenant with SIP domain {domain}")
    return tenant


def guarded(handler):  # type: ignore[no-untyped-def]
    """Turn InventoryError into a one-line message and the exit status of its kind."""
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except InventoryError as exc:
            return _fail(str(exc), EXIT_STATUS[exc.kind])
    return run


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    rt = start(args.cfg, migrate=True)
    from hotdesk.store.db import schema_version
    print(f"database {redact_url(args.cfg.database.url)} at schema version "
          f"{schema_version(rt.db)}")
    return 0


def cmd_user_add(args: argparse.Namespace) -> int:
    rt: Runtime = start(args.cfg)
    pin = args.pin
    if args.pin_prompt:
        pin = getpass.getpass("PIN: ")
    user = usecases.add_user(rt, _tenant(args.tenant), args.extension, name=args.name,
                             pin=pin, sip_password=args.sip_password, hotdesk=args.hotdesk,
                             sip_username=args.sip_username or "", actor="cli").user
    print(f"user {user.extension} added{' (hot desking enabled)' if user.hotdesk_enabled else ''}")
    return 0


def cmd_user_set_pin(args: argparse.Namespace) -> int:
    rt = start(args.cfg)
    user = inventory.find_user(_tenant(args.tenant), args.extension)
    usecases.set_pin(rt, user, args.pin, actor="cli")
    print(f"PIN of {user.extension} changed")
    return 0


def cmd_user_hotdesk(args: argparse.Namespace) -> int:
    rt = start(args.cfg)
    user = inventory.find_user(_tenant(args.tenant), args.extension)
    result = usecases.set_hotdesk(rt, user, args.enable, actor="cli")
    print(f"hot desking {'enabled' if args.enable else 'disabled'} for {user.extension}"
          f"{_phones(result)}")
    return 0


def cmd_user_change(args: argparse.Namespace) -> int:
    rt = start(args.cfg)
    user = inventory.find_user(_tenant(args.tenant), args.extension)
    result = usecases.change_user(rt, user, name=args.name, sip_password=args.sip_password,
                                  language=args.language, actor="cli")
    print(f"user {user.extension} changed{_phones(result)}")
    return 0


def cmd_user_unlock(args: argparse.Namespace) -> int:
    rt = start(args.cfg)
    user = inventory.find_user(_tenant(args.tenant), args.extension)
    until = usecases.locked_until(rt, user)
    usecases.unlock_user(rt, user, actor="cli")
    print(f"user {user.extension} unlocked" if until else
          f"user {user.extension} was not locked out")
    return 0


def cmd_user_remove(args: argparse.Namespace) -> int:
    rt = start(args.cfg)
    user = inventory.find_user(_tenant(args.tenant), args.extension)
    usecases.remove_user(rt, user, actor="cli")
    print(f"user {user.extension} removed")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    rt = start(args.cfg)
    rows = [("EXTENSION", "NAME", "HOTDESK", "PIN", "LOGGED IN ON")]
    users = list(User.select().order_by(User.tenant, User.extension))
    locked = usecases.locked_users(rt, users)
    for user in users:
        where = [s.device.display_name or s.device.idle_extension for s in
                 Session.select().where((Session.user == user) & Session.ended_at.is_null())]
        until = locked.get(user.id)
        pin = f"locked until {until.isoformat(timespec='minutes')}Z" if until else (
            "set" if user.pin_hash else "-")
        rows.append((user.extension, user.display_name, "yes" if user.hotdesk_enabled else "no",
                     pin, ", ".join(where) or "-"))
    _table(rows)
    return 0


def cmd_device_add(args: argparse.Namespace) -> int:
    rt = start(args.cfg)
    spec = DeviceSpec(mac=args.mac, extension=args.extension, sip_password=args.sip_password,
                      vendor=args.vendor, model=args.model or "", name=args.name or "",
                      method=args.method, network=args.network, sbc=args.sbc or "",
                      rps=args.method == "rps", transport=args.transport or "")
    result = usecases.add_phone(rt, _tenant(args.tenant), spec, actor="cli")
    device = result.device
    print(f"phone {format_mac(device.mac)} added, idle extension {device.idle_extension}")
    print(f"provisioning URL: {device_url(args.cfg, device)}")
    return _steps(result.steps)


def cmd_device_remove(args: argparse.Namespace) -> int:
    rt = start(args.cfg)
    device = inventory.find_device(args.mac)
    steps = usecases.remove_phone(rt, device, actor="cli")
    print(f"phone {format_mac(device.mac)} removed")
    _steps(steps)
    # The phone is gone either way; a stale RPS entry is a warning to act on by hand, an
    # idle account still on the switch is an error (the worker retries it).
    return 1 if any(s.name == "switch" and s.ok is False for s in steps) else 0


def cmd_device_list(args: argparse.Namespace) -> int:
    start(args.cfg)
    rows = [("MAC", "VENDOR", "MODEL", "NAME", "IDLE EXT", "METHOD", "NETWORK", "USER",
             "CONFIG", "REGISTRATION")]
    devices = list(Device.select().order_by(Device.idle_extension))
    now = utcnow()
    views = registrations.views(devices, now)
    for device in devices:
        session = Session.get_or_none((Session.device == device) & Session.ended_at.is_null())
        fetched = ("fetched" if device.fetched_version >= device.config_version else "pending")
        rows.append((format_mac(device.mac), device.vendor, device.model, device.display_name,
                     device.idle_extension, device.method, device.network
                     + (f" {device.sbc_address}" if device.network == "sbc" else ""),
                     session.user.extension if session else "-",
                     f"v{device.config_version} {fetched}", views[device.id].summary(now)))
    _table(rows)
    return 0


def cmd_session_list(args: argparse.Namespace) -> int:
    start(args.cfg)
    rows = [("PHONE", "MAC", "USER", "SINCE", "EXPIRES")]
    query = Session.select().where(Session.ended_at.is_null()).order_by(Session.started_at)
    for s in query:
        rows.append((s.device.display_name or s.device.idle_extension, format_mac(s.device.mac),
                     f"{s.user.extension} {s.user.display_name}".strip(),
                     s.started_at.isoformat(timespec="seconds"),
                     s.expires_at.isoformat(timespec="seconds") if s.expires_at else "-"))
    _table(rows)
    return 0


def cmd_session_logout(args: argparse.Namespace) -> int:
    rt = start(args.cfg)
    device = inventory.find_device(args.mac)
    outcome = rt.service.logout(device.id, reason="admin", actor="cli")
    print(f"{format_mac(device.mac)}: {outcome.value}")
    return 0 if outcome.value == "logged_out" else 1


def cmd_notify(args: argparse.Namespace) -> int:
    rt = start(args.cfg)
    device = inventory.find_device(args.mac)
    row = usecases.queue_checksync(rt, device, actor="cli")
    print(f"check-sync NOTIFY queued for {format_mac(device.mac)} (#{row.id if row else '-'})")
    return 0


def cmd_config_example(args: argparse.Namespace) -> int:
    sys.stdout.write(example_ini())
    return 0


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def register(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_cmd", required=True)
    db.add_parser("upgrade", help="create or upgrade the schema").set_defaults(
        handler=cmd_db_upgrade)

    user = sub.add_parser("user", help="users and extensions").add_subparsers(
        dest="user_cmd", required=True)
    p = user.add_parser("add", help="add a user")
    p.add_argument("--extension", required=True)
    p.add_argument("--name", default="")
    p.add_argument("--pin", help="voicemail/hot-desk PIN, 4-8 digits")
    p.add_argument("--pin-prompt", action="store_true", help="read the PIN from the terminal")
    p.add_argument("--sip-password", default="",
                   help="only with [switch] credentials = hotdesk (else read from the switch)")
    p.add_argument("--sip-username", help="SIP account on the switch (default: the extension)")
    p.add_argument("--hotdesk", action="store_true", help="enable hot desking")
    p.add_argument("--tenant", help="tenant SIP domain (default tenant if omitted)")
    p.set_defaults(handler=guarded(cmd_user_add))
    p = user.add_parser("set-pin", help="set a user's PIN")
    p.add_argument("extension")
    p.add_argument("--pin", required=True)
    p.add_argument("--tenant")
    p.set_defaults(handler=guarded(cmd_user_set_pin))
    for name, enable in (("enable", True), ("disable", False)):
        p = user.add_parser(name, help=f"{name} hot desking for a user")
        p.add_argument("extension")
        p.add_argument("--tenant")
        p.set_defaults(handler=guarded(cmd_user_hotdesk), enable=enable)
    p = user.add_parser("change", help="change a user's name, SIP password or language "
                                       "(their phones get the new config)")
    p.add_argument("extension")
    p.add_argument("--name")
    p.add_argument("--sip-password")
    p.add_argument("--language")
    p.add_argument("--tenant")
    p.set_defaults(handler=guarded(cmd_user_change))
    for name, handler, text in (("unlock", cmd_user_unlock, "lift a user's PIN lockout"),
                                ("remove", cmd_user_remove, "remove a user (logged out first)")):
        p = user.add_parser(name, help=text)
        p.add_argument("extension")
        p.add_argument("--tenant")
        p.set_defaults(handler=guarded(handler))
    user.add_parser("list", help="list users").set_defaults(handler=cmd_user_list)

    device = sub.add_parser("device", help="hot-desking phones").add_subparsers(
        dest="device_cmd", required=True)
    p = device.add_parser("add", help="register a hot-desking phone")
    p.add_argument("--mac", required=True)
    p.add_argument("--vendor", default="yealink")
    p.add_argument("--model", default="")
    p.add_argument("--extension", required=True, help="the phone's own idle extension")
    p.add_argument("--sip-password", default="",
                   help="SIP password of an idle account that already exists on the switch "
                   "(omit it and hotdesk creates the account, see [switch] accounts_file)")
    p.add_argument("--name", default="", help="display name, e.g. 'Desk 12'")
    p.add_argument("--method", choices=["pnp", "rps"], default="pnp")
    p.add_argument("--network", choices=["lan", "sbc"], default="lan")
    p.add_argument("--sbc", help="SBC address HOST:PORT (with --network sbc)")
    p.add_argument("--transport", choices=["udp", "tcp", "tls"],
                   help="SIP transport of this phone (default: [provisioning] transport)")
    p.add_argument("--tenant")
    p.set_defaults(handler=guarded(cmd_device_add))
    p = device.add_parser("remove", help="remove a hot-desking phone")
    p.add_argument("mac")
    p.set_defaults(handler=guarded(cmd_device_remove))
    device.add_parser("list", help="list hot-desking phones").set_defaults(
        handler=cmd_device_list)

    session = sub.add_parser("session", help="hot-desk sessions").add_subparsers(
        dest="session_cmd", required=True)
    session.add_parser("list", help="active sessions").set_defaults(handler=cmd_session_list)
    p = session.add_parser("logout", help="log the user out of a phone")
    p.add_argument("mac")
    p.set_defaults(handler=guarded(cmd_session_logout))

    cfg = sub.add_parser("config", help="configuration").add_subparsers(
        dest="config_cmd", required=True)
    cfg.add_parser("example", help="print the default config file").set_defaults(
        handler=cmd_config_example)
