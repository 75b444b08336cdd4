"""``hotdesk provision``: show a phone's files, write all of them to render_dir, and print
what to tell a phone (URL and credentials)."""

from __future__ import annotations

import argparse
import sys

from hotdesk.admin import inventory, zones
from hotdesk.mac import format_mac
from hotdesk.provisioning.check import describe
from hotdesk.provisioning.render import (
    TemplateError,
    device_url,
    make_environment,
    render_all,
    render_device,
)
from hotdesk.provisioning.vendors import get_vendor
from hotdesk.runtime import start
from hotdesk.switch.accounts import AccountError
from hotdesk.switch.connect import account_reader
from hotdesk_cli.core_commands import _tenant, guarded


def cmd_render(args: argparse.Namespace) -> int:
    start(args.cfg)
    device = inventory.find_device(args.mac)
    try:
        files = render_device(make_environment(args.cfg), device, args.cfg,
                              account_reader(args.cfg))
    except (TemplateError, AccountError) as exc:
        print(f"hotdesk: {exc}", file=sys.stderr)
        return 1
    if args.file:
        if args.file not in files:
            print(f"hotdesk: {device.vendor} phones do not request {args.file}; they request "
                  f"{', '.join(files)}", file=sys.stderr)
            return 1
        files = {args.file: files[args.file]}
    for name, content in files.items():
        if len(files) > 1:
            print(f"==> {name} <==")
        sys.stdout.write(content)
    return 0


def cmd_render_all(args: argparse.Namespace) -> int:
    if not args.cfg.provisioning.render_dir:
        print("hotdesk: set [provisioning] render_dir (or HOTDESK_PROVISIONING_RENDER_DIR) "
              "first", file=sys.stderr)
        return 1
    start(args.cfg)
    report = render_all(make_environment(args.cfg), args.cfg, account_reader(args.cfg))
    print(f"{report.written} files for {report.devices} phones written to "
          f"{args.cfg.provisioning.render_dir}; {report.removed} stale phone directories "
          "removed")
    for error in report.errors:
        print(f"hotdesk: {error}", file=sys.stderr)
    return 1 if report.errors else 0


def cmd_url(args: argparse.Namespace) -> int:
    start(args.cfg)
    device = inventory.find_device(args.mac)
    prov = args.cfg.provisioning
    url = device_url(args.cfg, device)
    vendor = get_vendor(device.vendor)
    print(f"phone:     {format_mac(device.mac)} ({vendor.label})")
    print(f"URL:       {url}")
    names = vendor.filenames(device.mac, device.model)
    print(f"files:     {', '.join(url + name for name in names)}")
    if prov.auth != "none":
        user = device.mac if prov.auth_username == "mac" else prov.auth_username
        print(f"HTTP auth: {prov.auth}, user {user}, password {device.prov_token}")
    print(f"check-sync NOTIFY event: {vendor.notify_event}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    start(args.cfg)
    device = inventory.find_device(args.mac)
    print(f"phone {format_mac(device.mac)}:")
    for line in describe(device, args.cfg):
        print(f"  {line}")
    return 0


def cmd_timezone(args: argparse.Namespace) -> int:
    rt = start(args.cfg)
    tenant = _tenant(args.tenant)
    if args.user:
        user = inventory.find_user(tenant, args.user)
        n = zones.set_user_timezone(rt.db, rt.service, user, args.zone, actor="cli")
        who = f"user {user.extension}"
    else:
        n = zones.set_tenant_timezone(rt.db, rt.service, tenant, args.zone, actor="cli")
        who = f"tenant {tenant.sip_domain}"
    print(f"{who}: time zone {args.zone or '(inherited)'}; {n} phone(s) re-provisioned")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    prov = sub.add_parser("provision", help="provisioning files").add_subparsers(
        dest="prov_cmd", required=True)
    p = prov.add_parser("render", help="print a phone's config files as the phone gets them")
    p.add_argument("mac")
    p.add_argument("--file", help="only this file (for vendors with several)")
    p.set_defaults(handler=guarded(cmd_render))
    p = prov.add_parser("render-all", help="write every phone's files to [provisioning] "
                        "render_dir")
    p.set_defaults(handler=guarded(cmd_render_all))
    p = prov.add_parser("check", help="say in plain words what a phone will do with its "
                        "current config")
    p.add_argument("mac")
    p.set_defaults(handler=guarded(cmd_check))
    p = prov.add_parser("timezone", help="set the time zone of a tenant's phones, or of a "
                        "user's while logged in (\"\" = inherit)")
    p.add_argument("zone", help="IANA name such as Europe/Berlin, or \"\"")
    p.add_argument("--tenant", help="SIP domain (default: the default tenant)")
    p.add_argument("--user", help="extension: this user's zone instead of the tenant's")
    p.set_defaults(handler=guarded(cmd_timezone))
    p = prov.add_parser("url", help="print the URL (and credentials) to give a phone")
    p.add_argument("mac")
    p.set_defaults(handler=guarded(cmd_url))
