"""Commands about the switch itself: ``doctor``, ``switch sync``, forgetting stored
SIP passwords once the switch holds them."""

from __future__ import annotations

import argparse
import sys

from hotdesk.runtime import Runtime, start
from hotdesk.store.db import write_transaction
from hotdesk.store.models import User
from hotdesk.switch import doctor, idle_accounts
from hotdesk.switch.connect import close_view, switch_view
from hotdesk.switch.upkeep import apply_now


def apply_idle_accounts(rt: Runtime) -> int:
    """Write the idle accounts and reload the switch now; on failure say so (the change
    stays marked for the worker) and return exit status 1."""
    ok, message = apply_now(rt.db, rt.config)
    if ok is False:
        print(f"hotdesk: {message}", file=sys.stderr)
        return 1
    print(f"switch: {message}")
    return 0


def cmd_switch_sync(args: argparse.Namespace) -> int:
    rt = start(args.cfg)
    status = apply_idle_accounts(rt)
    print(f"idle accounts: {idle_accounts.state().describe()}")
    return status


def cmd_doctor(args: argparse.Namespace) -> int:
    start(args.cfg)
    view = switch_view(args.cfg)
    try:
        checks = doctor.run_checks(args.cfg, view)
    finally:
        close_view(view)
    sys.stdout.write(doctor.as_json(checks) if args.json else doctor.as_text(checks))
    return 1 if doctor.failed(checks) else 0


def cmd_forget_sip_password(args: argparse.Namespace) -> int:
    rt = start(args.cfg)
    query = User.update(sip_password="").where(User.sip_password != "")
    if not args.all:
        if not args.extension:
            print("hotdesk: give an extension or --all", file=sys.stderr)
            return 1
        query = query.where(User.extension == args.extension)
    with write_transaction(rt.db):
        n = query.execute()
    print(f"{n} stored SIP password(s) removed; those users' accounts are now read from "
          "the switch")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check the live switch end to end; exit 1 on a problem")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_doctor)
    switch = sub.add_parser("switch", help="accounts hotdesk keeps on the switch").add_subparsers(
        dest="switch_cmd", required=True)
    switch.add_parser("sync", help="write the idle accounts and reload the switch now"
                      ).set_defaults(handler=cmd_switch_sync)
    p = switch.add_parser("forget-sip-password",
                          help="drop SIP passwords stored in hotdesk (switch mode reads them)")
    p.add_argument("extension", nargs="?")
    p.add_argument("--all", action="store_true")
    p.set_defaults(handler=cmd_forget_sip_password)
