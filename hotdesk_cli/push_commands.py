"""``hotdesk notify``: one phone's check-sync now, or a paced push to many phones.

``hotdesk notify MAC`` queues one NOTIFY at once (as before). ``hotdesk notify push``
starts a campaign the worker releases at ``[notify] push_rate``
(:mod:`hotdesk.notify.campaigns`); ``status`` and ``cancel`` follow and stop it.
"""

from __future__ import annotations

import argparse
import sys
import time

from hotdesk.admin.errors import InventoryError
from hotdesk.notify import campaigns, push_selection
from hotdesk.notify.campaigns import Progress
from hotdesk.notify.push_models import PushCampaign
from hotdesk.runtime import start
from hotdesk_cli.core_commands import _fail, _table, _tenant, cmd_notify, guarded

ACTIONS = ("push", "status", "cancel")


def cmd_notify_any(args: argparse.Namespace) -> int:
    if args.target not in ACTIONS:
        if args.campaign is not None:
            return _fail(f"unexpected argument {args.campaign!r} after the MAC address")
        args.mac = args.target
        return cmd_notify(args)
    return {"push": cmd_push, "status": cmd_status, "cancel": cmd_cancel}[args.target](args)


def cmd_push(args: argparse.Namespace) -> int:
    chosen = [bool(args.all), bool(args.tenant), args.phones is not None]
    if sum(chosen) != 1:
        return _fail("give exactly one of --all, --tenant DOMAIN or --phones LIST")
    rt = start(args.cfg)
    if args.all:
        ids = push_selection.phones_for(None, "all")
        kind = "all"
    elif args.tenant:
        ids = push_selection.phones_for(None, "tenant", tenant_id=_tenant(args.tenant).id)
        kind = "tenant"
    else:
        text = sys.stdin.read() if args.phones == "-" else args.phones
        ids = push_selection.resolve_phones(text, None)
        kind = "selected"
    campaign = campaigns.start(rt.config, kind, ids, actor="cli", rate=args.rate)
    p = campaigns.progress(campaign)
    print(f"push campaign {p.id}: {p.total} phone(s) at {p.rate:g}/s (about "
          f"{_duration(p.seconds_left)}); the worker releases them "
          f"(hotdesk notify status {p.id})")
    if args.wait:
        return _follow(p.id)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    start(args.cfg)
    if args.campaign is not None:
        _print_one(campaigns.progress(campaigns.visible(_number(args.campaign), None)))
        return 0
    rows = campaigns.recent(None, limit=args.limit)
    if not rows:
        print("no push campaigns")
        return 0
    _table([("ID", "STATE", "SCOPE", "BY", "RATE", "PROGRESS", "SENT", "CONFIRMED", "FAILED",
             "STARTED")] + [
        (str(p.id), p.state, p.scope, p.actor, f"{p.rate:g}/s", f"{p.done}/{p.total} "
         f"({p.percent}%)", str(p.sent), str(p.confirmed), str(p.failed),
         p.created_at.isoformat(timespec="seconds")) for p in rows])
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    start(args.cfg)
    if args.campaign is None:
        return _fail("give the campaign id: hotdesk notify cancel ID")
    p = campaigns.cancel(_number(args.campaign), None, actor="cli")
    print(f"push campaign {p.id} cancelled: {p.cancelled} phone(s) will not be pushed, "
          f"{p.sent + p.queued} already released")
    return 0


def _number(raw: str) -> int:
    try:
        number = int(raw)
    except ValueError:
        number = 0
    if not 0 < number < 2**31:
        raise InventoryError(f"{raw[:40]!r} is not a campaign id (a positive number)")
    return number


def _duration(seconds: int) -> str:
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def _print_one(p: Progress) -> None:
    print(f"push campaign {p.id} ({p.scope}, by {p.actor}, {p.rate:g}/s): {p.state}")
    print(f"  {p.done} of {p.total} done ({p.percent}%): waiting {p.waiting}, queued "
          f"{p.queued}, sent {p.sent} (confirmed by a fetch {p.confirmed}), failed "
          f"{p.failed}, cancelled {p.cancelled}, skipped {p.skipped}")
    if p.state == "running":
        print(f"  about {_duration(p.seconds_left)} left")


def _follow(campaign_id: int, every: float = 2.0) -> int:
    """Print progress until the campaign ends (the worker does the releasing)."""
    while True:
        p = campaigns.progress(PushCampaign.get_by_id(campaign_id))
        print(f"{p.done}/{p.total} ({p.percent}%) sent {p.sent} failed {p.failed} "
              f"queued {p.queued} waiting {p.waiting}", flush=True)
        if p.state != "running":
            return 1 if p.failed else 0
        time.sleep(every)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "notify", help="check-sync NOTIFY: one phone now, or a paced push to many",
        description="hotdesk notify MAC | notify push (--all | --tenant DOMAIN | --phones "
                    "LIST) [--rate R] [--wait] | notify status [ID] | notify cancel ID")
    p.add_argument("target", metavar="MAC|push|status|cancel")
    p.add_argument("campaign", nargs="?", metavar="ID", help="campaign id (status, cancel)")
    p.add_argument("--all", action="store_true", help="push: every phone")
    p.add_argument("--tenant", metavar="DOMAIN", help="push: every phone of this tenant")
    p.add_argument("--phones", metavar="LIST",
                   help="push: MACs or extensions separated by commas, spaces or newlines "
                        "('-' reads them from standard input)")
    p.add_argument("--rate", type=float, help="push: phones per second (at most "
                                              "[notify] push_rate, the default)")
    p.add_argument("--wait", action="store_true", help="push: print progress until done")
    p.add_argument("--limit", type=int, default=10, help="status: finished campaigns shown")
    p.set_defaults(handler=guarded(cmd_notify_any))
