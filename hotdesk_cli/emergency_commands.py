"""``hotdesk device set-location`` and ``hotdesk emergency …``: desk locations, the tenant
default, the switch copy and the calls seen."""

from __future__ import annotations

import argparse

from hotdesk.admin import inventory
from hotdesk.emergency import editing, location_import, locations, notices
from hotdesk.emergency.locations import FIELDS, LocationError
from hotdesk.mac import format_mac
from hotdesk.runtime import start
from hotdesk.switch import emergency
from hotdesk_cli.core_commands import _fail, _tenant, guarded


def _values(args: argparse.Namespace) -> dict[str, str]:
    if args.clear:
        return {}
    return {name: getattr(args, name) for name in FIELDS if getattr(args, name) is not None}


def _merged(current: locations.Location | None, args: argparse.Namespace) -> dict[str, str]:
    """Options given replace those fields; the others keep their value."""
    base = {n: getattr(current, n) for n in FIELDS} if current else {}
    return {} if args.clear else {**base, **_values(args)}


def cmd_device_set_location(args: argparse.Namespace) -> int:
    rt = start(args.cfg)
    device = inventory.find_device(args.mac)
    try:
        location = editing.set_location(rt.db, device.tenant, device,
                                          _merged(locations.desk_location(device.id), args),
                                          actor="cli")
    except LocationError as exc:
        return _fail(str(exc))
    print(f"{format_mac(device.mac)}: {location.describe() or 'no location (tenant default)'}"
          + (f"; callback {location.callback}" if location.callback else ""))
    return 0


def cmd_emergency_default(args: argparse.Namespace) -> int:
    rt = start(args.cfg)
    tenant = _tenant(args.tenant)
    try:
        location = editing.set_location(rt.db, tenant, None,
                                          _merged(locations.tenant_location(tenant.id), args),
                                          actor="cli")
    except LocationError as exc:
        return _fail(str(exc))
    print(f"tenant {tenant.sip_domain}: {location.describe() or 'no default location'}")
    return 0


def cmd_emergency_import(args: argparse.Namespace) -> int:
    rt = start(args.cfg)
    try:
        with open(args.file, encoding="utf-8-sig") as handle:
            text = handle.read()
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc.strerror}")
    result = location_import.import_csv(rt.db, _tenant(args.tenant) if args.tenant else None,
                                        text, actor="cli")
    for line, why in result.problems:
        print(f"line {line}: {why}")
    print(f"{len(result.done)} desk locations set, {len(result.problems)} problems")
    return 1 if result.problems else 0


def cmd_emergency_resync(args: argparse.Namespace) -> int:
    start(args.cfg)
    print(f"{emergency.resync_all()} emergency entries queued for the switch")
    return 0


def cmd_emergency_calls(args: argparse.Namespace) -> int:
    start(args.cfg)
    for call in notices.recent(args.minutes):
        print(f"{call['at']}  {call['number']}  {call['user'] or '-'} ({call['extension']})  "
              f"{call['desk'] or '-'}  callback {call['callback'] or '-'}  "
              f"{call['location'] or 'location unknown'}")
    return 0


def _location_options(p: argparse.ArgumentParser) -> None:
    for name in FIELDS:
        p.add_argument(f"--{name.replace('_', '-')}", dest=name,
                       help="emergency callback number (ELIN)" if name == "callback" else None)
    p.add_argument("--clear", action="store_true", help="remove the location")


def register(sub: argparse._SubParsersAction) -> None:
    # `device` is core_commands' group; set-location joins it from here.
    device = next(a for a in sub.choices["device"]._actions
                  if isinstance(a, argparse._SubParsersAction))
    p = device.add_parser("set-location", help="the desk's emergency location and callback")
    p.add_argument("mac")
    _location_options(p)
    p.set_defaults(handler=guarded(cmd_device_set_location))

    em = sub.add_parser("emergency", help="emergency calls").add_subparsers(
        dest="emergency_cmd", required=True)
    p = em.add_parser("default", help="a tenant's default emergency location")
    p.add_argument("--tenant")
    _location_options(p)
    p.set_defaults(handler=guarded(cmd_emergency_default))
    p = em.add_parser("import-locations", help="desk locations from a CSV file "
                      "(header: mac and location columns)")
    p.add_argument("file")
    p.add_argument("--tenant")
    p.set_defaults(handler=guarded(cmd_emergency_import))
    em.add_parser("resync", help="rewrite every emergency entry in the switch").set_defaults(
        handler=cmd_emergency_resync)
    p = em.add_parser("calls", help="emergency calls seen recently")
    p.add_argument("--minutes", type=int, default=24 * 60)
    p.set_defaults(handler=cmd_emergency_calls)
