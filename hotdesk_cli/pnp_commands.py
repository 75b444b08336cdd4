"""``hotdesk pnp``: run the SIP PnP listener, list discovered phones, push a URL now."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from hotdesk.admin.inventory import find_device
from hotdesk.mac import InvalidMac, format_mac, normalise_mac
from hotdesk.provisioning import discovery
from hotdesk.runtime import start
from hotdesk_cli.core_commands import guarded


def cmd_pnp_listen(args: argparse.Namespace) -> int:
    from hotdesk.ops.supervise import LoopMonitor
    from hotdesk_pnp.listener import PnpBindError, serve

    rt = start(args.cfg)
    monitor = LoopMonitor("pnp", node=rt.config.metrics.node)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        monitor.start()
        try:
            await serve(rt.config, rt.db, stop, monitor, on_started=lambda: print(
                "PnP listener running; Ctrl-C to stop", file=sys.stderr, flush=True))
        finally:
            await asyncio.to_thread(monitor.stop)

    try:
        asyncio.run(run())
    except PnpBindError as exc:
        print(f"hotdesk: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_pnp_list(args: argparse.Namespace) -> int:
    start(args.cfg)
    rows = [("MAC", "VENDOR", "MODEL", "FIRMWARE", "ADDRESS", "FIRST SEEN", "LAST SEEN",
             "ADOPTED")]
    for p in discovery.list_discovered(include_adopted=args.all):
        rows.append((format_mac(p.mac), p.vendor, p.model, p.firmware, p.address,
                     p.first_seen.isoformat(timespec="seconds"),
                     p.last_seen.isoformat(timespec="seconds"), "yes" if p.adopted else "no"))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_pnp_push(args: argparse.Namespace) -> int:
    from hotdesk_pnp.push import push_provisioning_url, push_succeeded

    start(args.cfg)
    device = find_device(args.mac)
    result = push_provisioning_url(args.cfg, device)
    print(f"{format_mac(device.mac)}: {result}")
    return 0 if push_succeeded(result) else 1


def cmd_pnp_arm(args: argparse.Namespace) -> int:
    rt = start(args.cfg)
    device = find_device(args.mac)
    minutes = args.minutes or rt.config.pnp.arm_minutes
    if minutes < 1:
        print("hotdesk: --minutes must be at least 1", file=sys.stderr)
        return 1
    try:
        until = discovery.arm(rt.db, device, minutes, actor="cli")
    except ValueError as exc:
        print(f"hotdesk: {exc}", file=sys.stderr)
        return 1
    print(f"{format_mac(device.mac)}: PnP answers with its provisioning URL until "
          f"{until.isoformat(sep=' ', timespec='minutes')} UTC")
    return 0


def cmd_pnp_forget(args: argparse.Namespace) -> int:
    rt = start(args.cfg)
    try:
        mac = normalise_mac(args.mac)
    except InvalidMac as exc:
        print(f"hotdesk: {exc}", file=sys.stderr)
        return 1
    if not discovery.forget(rt.db, mac):
        print(f"hotdesk: phone {args.mac} was never discovered", file=sys.stderr)
        return 1
    print(f"{format_mac(mac)} forgotten")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    pnp = sub.add_parser("pnp", help="SIP PnP discovery of phones on the LAN").add_subparsers(
        dest="pnp_cmd", required=True)
    pnp.add_parser("listen", help="answer PnP SUBSCRIBEs (multicast 224.0.1.75:5060 and "
                   "[pnp] listen)").set_defaults(handler=cmd_pnp_listen)
    p = pnp.add_parser("list", help="phones seen by PnP that are not hot-desk phones yet")
    p.add_argument("--all", action="store_true", help="include adopted phones")
    p.set_defaults(handler=cmd_pnp_list)
    p = pnp.add_parser("push", help="send a registered phone its provisioning URL now")
    p.add_argument("mac")
    p.set_defaults(handler=guarded(cmd_pnp_push))
    p = pnp.add_parser("arm", help="let a provisioned PnP phone (e.g. after a factory reset) "
                       "get its URL by PnP for [pnp] arm_minutes")
    p.add_argument("mac")
    p.add_argument("--minutes", type=int, help="window length (default [pnp] arm_minutes)")
    p.set_defaults(handler=guarded(cmd_pnp_arm))
    p = pnp.add_parser("forget", help="drop a discovered phone from the list")
    p.add_argument("mac")
    p.set_defaults(handler=cmd_pnp_forget)
