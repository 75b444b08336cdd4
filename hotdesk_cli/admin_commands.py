"""``hotdesk admin``: web admin accounts and their API tokens."""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import timedelta

from hotdesk.admin import admins
from hotdesk.runtime import start
from hotdesk.store.models import Admin, Tenant, utcnow


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
    """Without a sub-command: make a token (the form older scripts use)."""
    if getattr(args, "token_handler", None):
        return args.token_handler(args)
    rt = start(args.cfg)
    if not args.username:
        return _fail("give --username (or: admin token list | admin token revoke ID)")
    admin = Admin.get_or_none(Admin.username == args.username)
    if admin is None:
        return _fail(f"no admin {args.username}")
    if args.expires_days is not None and args.expires_days <= 0:
        return _fail("--expires-days must be a positive number of days")
    expires = (utcnow() + timedelta(days=args.expires_days)
               if args.expires_days is not None else None)
    try:
        token = admins.create_token(rt.db, admin, label=args.name or "", actor="cli",
                                    expires_at=expires)
    except admins.AdminError as exc:
        return _fail(str(exc))
    print(token)
    return 0


def _when(value: object) -> str:
    return value.isoformat(sep=" ", timespec="minutes") if value else "-"  # type: ignore[attr-defined]


def cmd_admin_token_list(args: argparse.Namespace) -> int:
    start(args.cfg)
    owner = None
    if args.username:
        owner = Admin.get_or_none(Admin.username == args.username)
        if owner is None:
            return _fail(f"no admin {args.username}")
    now = utcnow()
    print("ID\tADMIN\tNAME\tCREATED\tEXPIRES\tLAST USED (UTC)")
    for t in admins.list_tokens(owner):
        expires = _when(t.expires_at) if t.expires_at else "never"
        if admins.token_expired(t, now):
            expires += " (expired)"
        print(f"{t.id}\t{t.admin.username}\t{t.label or '-'}\t{_when(t.created_at)}\t"
              f"{expires}\t{_when(t.last_used_at)}")
    return 0


def cmd_admin_token_revoke(args: argparse.Namespace) -> int:
    rt = start(args.cfg)
    try:
        token = admins.revoke_token(rt.db, args.id, actor="cli")
    except admins.AdminError as exc:
        return _fail(str(exc))
    print(f"token {args.id} ({token.label or 'unnamed'}) of {token.admin.username} revoked")
    return 0


def _set_disabled(args: argparse.Namespace, disabled: bool) -> int:
    rt = start(args.cfg)
    admin = Admin.get_or_none(Admin.username == args.username)
    if admin is None:
        return _fail(f"no admin {args.username}")
    admins.set_disabled(rt.db, admin, disabled, actor="cli")
    print(f"admin {admin.username} " + ("disabled: its sessions and API tokens ended"
                                        if disabled else "enabled"))
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
        state = "\tdisabled" if admin.disabled else ""
        print(f"{admin.username}\t{admin.role}\t{where}\t{admin.tokens.count()} token(s)"
              f"{state}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    admin = sub.add_parser("admin", help="web admin accounts and API tokens").add_subparsers(
        dest="admin_cmd", required=True)
    p = admin.add_parser("create", help="create an admin (system admin unless --tenant)")
    p.add_argument("--username", required=True)
    p.add_argument("--password", help="at least 10 characters (prompted if omitted)")
    p.add_argument("--tenant", help="SIP domain: make a tenant administrator of it")
    p.set_defaults(handler=cmd_admin_create)
    p = admin.add_parser("token", help="API tokens: --username U makes one (shown once); "
                         "list; revoke ID")
    p.add_argument("--username", help="the admin the new token acts as")
    p.add_argument("--name", "--label", dest="name", help="what the token is for")
    p.add_argument("--expires-days", type=int, help="the token stops working after this "
                   "many days (default: never)")
    p.set_defaults(handler=cmd_admin_token)
    tok = p.add_subparsers(dest="token_cmd")
    q = tok.add_parser("list", help="tokens: name, admin, expiry, last use (never the token)")
    q.add_argument("--username", help="only this admin's tokens")
    q.set_defaults(token_handler=cmd_admin_token_list)
    q = tok.add_parser("revoke", help="revoke a token by its id (from token list)")
    q.add_argument("id", type=int)
    q.set_defaults(token_handler=cmd_admin_token_revoke)
    for name, disabled in (("disable", True), ("enable", False)):
        q = admin.add_parser(name, help="disable an admin (ends its sessions and tokens)"
                             if disabled else "enable a disabled admin")
        q.add_argument("--username", required=True)
        q.set_defaults(handler=lambda a, d=disabled: _set_disabled(a, d))
    p = admin.add_parser("password", help="change an admin's password")
    p.add_argument("--username", required=True)
    p.add_argument("--password", help="prompted if omitted")
    p.set_defaults(handler=cmd_admin_password)
    admin.add_parser("list", help="list admins").set_defaults(handler=cmd_admin_list)
