"""``hotdesk admin``: web admin accounts and their API tokens."""

from __future__ import annotations

import argparse
import getpass
import sys

from hotdesk.admin import admins
from hotdesk.runtime import start
from hotdesk.store.models import Admin, Tenant


def _fail(message: str) -> int:
    print(f"hotdesk: {message}", file=sys.stderr)
    return 1


def cmd_admin_create(args: argparse.Namespace) -> int:
    rt = start(args.cfg)
    tenant = None
    if args.tenant:
        tenant = Tenant.get_or_none(Tenant.sip_domain == args.tenant)
        if tenant is None:
            return _fail(f"no tenant with SIP domain {args.tenant}")
    password = args.password
    if password is None:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            return _fail("the passwords differ")
    try:
        admin = admins.create_admin(rt.db, args.username, password, tenant, actor="cli")
    except admins.AdminError as exc:
        return _fail(str(exc))
    role = (f"tenant administrator of {tenant.sip_domain}" if tenant
            else "system administrator")
    print(f"admin {admin.username} created ({role})")
    return 0


def cmd_admin_token(args: argparse.Namespace) -> int:
    rt = start(args.cfg)
    admin = Admin.get_or_none(Admin.username == args.username)
    if admin is None:
        return _fail(f"no admin {args.username}")
    print(admins.create_token(rt.db, admin, label=args.label or "", actor="cli"))
    return 0


def cmd_admin_password(args: argparse.Namespace) -> int:
    rt = start(args.cfg)
    admin = Admin.get_or_none(Admin.username == args.username)
    if admin is None:
        return _fail(f"no admin {args.username}")
    password = args.password if args.password is not None else getpass.getpass("Password: ")
    try:
        admins.set_password(rt.db, admin, password, actor="cli")
    except admins.AdminError as exc:
        return _fail(str(exc))
    print(f"password of {admin.username} changed")
    return 0


def cmd_admin_list(args: argparse.Namespace) -> int:
    start(args.cfg)
    for admin in Admin.select().order_by(Admin.username):
        where = admin.tenant.sip_domain if admin.tenant_id else "all tenants"
        print(f"{admin.username}\t{admin.role}\t{where}\t{admin.tokens.count()} token(s)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    admin = sub.add_parser("admin", help="web admin accounts and API tokens").add_subparsers(
        dest="admin_cmd", required=True)
    p = admin.add_parser("create", help="create an admin (system admin unless --tenant)")
    p.add_argument("--username", required=True)
    p.add_argument("--password", help="at least 10 characters (prompted if omitted)")
    p.add_argument("--tenant", help="SIP domain: make a tenant administrator of it")
    p.set_defaults(handler=cmd_admin_create)
    p = admin.add_parser("token", help="print a new API token for an admin (shown once)")
    p.add_argument("--username", required=True)
    p.add_argument("--label", help="what the token is for")
    p.set_defaults(handler=cmd_admin_token)
    p = admin.add_parser("password", help="change an admin's password")
    p.add_argument("--username", required=True)
    p.add_argument("--password", help="prompted if omitted")
    p.set_defaults(handler=cmd_admin_password)
    admin.add_parser("list", help="list admins").set_defaults(handler=cmd_admin_list)
