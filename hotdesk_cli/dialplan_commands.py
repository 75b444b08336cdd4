"""``hotdesk dialplan asterisk|freeswitch``: the include files for the configured codes."""

from __future__ import annotations

import argparse
from pathlib import Path

from hotdesk.switch import dialplan


def cmd_dialplan(args: argparse.Namespace) -> int:
    files = dialplan.render(args.cfg, args.switch)
    if args.output:
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            target = out / Path(name).name
            target.write_text(text)
            print(f"wrote {target}")
        return 0
    for name, text in files.items():
        if len(files) > 1:
            print(f"# ---- {Path(name).name} ----")
        print(text, end="")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dialplan", help="print the dialplan include for [policy] login_code/"
                                        "logout_code and the listen addresses")
    p.add_argument("switch", choices=sorted(dialplan.FILES))
    p.add_argument("--output", "-o", metavar="DIR", help="write the files into DIR instead")
    p.set_defaults(handler=cmd_dialplan)
