"""``hotdesk rps``: register phones with their vendor's redirect service (RPS)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from hotdesk.admin import inventory
from hotdesk.mac import format_mac
from hotdesk.provisioning.rps import RpsError, check_rps, remove_from_rps, save_to_rps
from hotdesk.runtime import start
from hotdesk.settings import Config
from hotdesk.store.models import Device
from hotdesk_cli.core_commands import guarded


def cmd_rps_sync(args: argparse.Namespace) -> int:
    """Register every phone marked "Save to RPS"; one line per phone, status 1 if any failed."""
    start(args.cfg)
    failed = 0
    devices = list(Device.select().where(Device.rps_enabled == True)  # noqa: E712
                   .order_by(Device.mac))
    for device in devices:
        try:
            print(save_to_rps(args.cfg, device, actor="cli"))
        except RpsError as exc:
            failed += 1
            print(f"{format_mac(device.mac)}: FAILED: {exc}")
    print(f"{len(devices) - failed} of {len(devices)} phones registered", file=sys.stderr)
    return 1 if failed else 0


def _one_phone(args: argparse.Namespace, call: Callable[[Config, Device], str]) -> int:
    """Run one RPS call for the phone named by MAC; the service's answer is shown verbatim."""
    start(args.cfg)
    device = inventory.find_device(args.mac)
    try:
        print(call(args.cfg, device))
    except RpsError as exc:
        print(f"hotdesk: {format_mac(device.mac)}: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_rps_register(args: argparse.Namespace) -> int:
    return _one_phone(args, lambda cfg, device: save_to_rps(cfg, device, actor="cli"))


def cmd_rps_deregister(args: argparse.Namespace) -> int:
    return _one_phone(args, lambda cfg, device: remove_from_rps(cfg, device, actor="cli"))


def cmd_rps_check(args: argparse.Namespace) -> int:
    return _one_phone(args, lambda cfg, device: check_rps(cfg, device.mac, device.vendor))


def register(sub: argparse._SubParsersAction) -> None:
    rps = sub.add_parser("rps", help="vendor redirect services (RPS)").add_subparsers(
        dest="rps_cmd", required=True)
    rps.add_parser("sync", help="register every phone marked for RPS").set_defaults(
        handler=guarded(cmd_rps_sync))
    for name, handler, text in (
            ("register", cmd_rps_register, "register a phone's MAC and provisioning URL"),
            ("deregister", cmd_rps_deregister, "remove a phone's MAC from its RPS"),
            ("check", cmd_rps_check, "ask the RPS about a phone's MAC")):
        p = rps.add_parser(name, help=text)
        p.add_argument("mac")
        p.set_defaults(handler=guarded(handler))
