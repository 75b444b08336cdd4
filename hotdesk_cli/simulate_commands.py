"""``hotdesk simulate login|logout --switch asterisk|freeswitch``: a test call, no phone needed.

One command for both switches: it plays the switch's side of a ``*70``/``*71`` call
against the running ``hotdesk agi`` (FastAGI) or ``hotdesk esl`` (outbound Event
Socket) for a phone in the database, as that phone is registered right now, and
prints every command. Exit status: 0 logged in / out, 3 any other result, 1 the
server could not be reached or the phone is unknown.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from hotdesk.admin.inventory import InventoryError, find_device, registered_endpoint
from hotdesk.runtime import start
from hotdesk.settings import Config, parse_listen
from hotdesk.store.models import Device

SWITCHES = ("asterisk", "freeswitch")
SUCCESS = ("ok", "logged_out")


def _asterisk(cfg: Config, device: Device, args: argparse.Namespace) -> str | None:
    from hotdesk_agi.simulate_cli import simulate

    if args.listen:
        cfg = dataclasses.replace(cfg, agi=dataclasses.replace(cfg.agi, listen=args.listen))
    transcript = simulate(cfg, device, args.feature, extension=args.extension, pin=args.pin,
                          source=args.source, switch_pin=args.switch_pin)
    return transcript.variables.get("HOTDESK_RESULT")


def _freeswitch(cfg: Config, device: Device, args: argparse.Namespace) -> str | None:
    from esl_handlers.simulate import simulate

    host, port = parse_listen(args.listen or cfg.esl.listen)
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    endpoint = registered_endpoint(device)
    source = args.source or device.last_address or "127.0.0.1:5060"
    print(f"calling the Event Socket server at {host}:{port} as {endpoint} from {source} "
          f"(dialed {'*70' + args.extension if args.feature == 'login' else '*71'})")
    domain = device.tenant.sip_domain
    vm = None if args.switch_pin is None else {f"{args.extension}@{domain}": args.switch_pin}
    result = simulate((host, port), args.feature, endpoint, args.extension,
                      pins=[args.pin] * cfg.policy.pin_tries_per_call if args.pin else [],
                      domain=domain, source=source, vm_passwords=vm)
    print(f"HOTDESK_RESULT={result or '(not set)'}")
    return result


def cmd_simulate(args: argparse.Namespace) -> int:
    start(args.cfg)
    try:
        device = find_device(args.device)
    except InventoryError as exc:
        print(f"hotdesk: {exc}", file=sys.stderr)
        return 1
    args.extension = getattr(args, "extension", "") or ""
    args.pin = getattr(args, "pin", "") or ""
    args.switch_pin = getattr(args, "switch_pin", None)
    args.source = args.source or ""
    args.switch = args.switch or args.cfg.switch.type
    if args.switch not in SWITCHES:  # [switch] type = none (the demo): its FastAGI server
        args.switch = "asterisk"
    run = _asterisk if args.switch == "asterisk" else _freeswitch
    try:
        result = run(args.cfg, device, args)
    except OSError as exc:
        server = "FastAGI server" if args.switch == "asterisk" else "Event Socket server"
        where = args.listen or (args.cfg.agi.listen if args.switch == "asterisk"
                                else args.cfg.esl.listen)
        print(f"hotdesk: cannot reach the {server} at {where}: {exc}", file=sys.stderr)
        return 1
    return 0 if result in SUCCESS else 3


def register(sub: argparse._SubParsersAction) -> None:
    sim = sub.add_parser("simulate", help="place a test call against the running server")
    sim_sub = sim.add_subparsers(dest="feature", required=True)
    for feature in ("login", "logout"):
        s = sim_sub.add_parser(feature, help=f"simulate *7{'0' if feature == 'login' else '1'}")
        s.add_argument("--device", required=True, help="MAC of the hot-desking phone")
        if feature == "login":
            s.add_argument("--extension", required=True)
            s.add_argument("--pin", required=True, help="keyed at every PIN prompt")
            s.add_argument("--switch-pin", help="the voicemail PIN the simulated switch "
                                                "holds for the user (default: --pin)")
        s.add_argument("--source", help="phone ip:port (default: last seen address)")
        s.add_argument("--switch", choices=SWITCHES, default=None,
                       help="which server to call (default: [switch] type)")
        s.add_argument("--listen", help="server HOST:PORT (default: [agi] listen or "
                                        "[esl] listen)")
        s.set_defaults(handler=cmd_simulate)
