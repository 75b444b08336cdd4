"""``hotdesk doctor``: the live switch checked end to end, each finding with what to change.

The checks are data (:class:`Check`: name, ok, detail, fix) computed from a
:class:`SwitchView` (one per switch, in the adapters), hotdesk's database and the
provisioning URL. Nothing here writes anything; a check that cannot be made with the
switch login's rights is reported as skipped, never as passed.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Protocol

from hotdesk.settings import Config
from hotdesk.store.models import Device, Tenant, User
from hotdesk.switch.accounts import AccountError, Credentials


@dataclass(frozen=True)
class AccountFacts:
    """What the switch says about one account (endpoint / directory user)."""

    name: str
    context: str
    # Registrations the account accepts; -1 = no limit (FreeSWITCH).
    max_contacts: int
    has_password: bool = True


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None = could not be checked (say why in detail)
    detail: str = ""
    fix: str = ""


class SwitchView(Protocol):
    kind: str

    def missing_actions(self) -> dict[str, str]: ...
    def default_outbound_endpoint(self) -> str | None: ...
    def dialplan_target(self, context: str, dialed: str) -> str | None: ...
    def account(self, name: str, domain: str) -> AccountFacts | None: ...
    def read(self, account: str, domain: str) -> Credentials: ...
    def voicemail_pin_readable(self, box: str, context: str, domain: str) -> bool: ...
    def prompt_missing(self, names: list[str]) -> list[str] | None: ...


def mailbox_of(user: User) -> tuple[str, str]:
    """The user's voicemail box and context: their own columns when set, else the
    extension in ``default``."""
    box = getattr(user, "mailbox", "") or getattr(user, "voicemail_box", "") or user.extension
    return box, getattr(user, "voicemail_context", "") or "default"


def contacts_needed(config: Config, tenant: Tenant) -> int:
    """``allow`` lets a user be on several phones at once; the other policies one."""
    policy = tenant.multiple_login or config.policy.multiple_login
    return 2 if policy == "allow" else 1


def _switch_checks(config: Config, view: SwitchView) -> list[Check]:
    who = "AMI" if view.kind == "asterisk" else "Event Socket"
    try:
        missing = view.missing_actions()
    except AccountError as exc:
        fix = ("set [ami] host, port, username, secret; manager.conf needs a matching user"
               if view.kind == "asterisk" else
               "set [esl] host, port, password; event_socket.conf.xml listen-ip/port/password")
        return [Check(f"{who} reachable", False, str(exc), fix)]
    checks = [Check(f"{who} reachable", True)]
    if missing:
        lines = "; ".join(f"{name}: {why}" for name, why in missing.items())
        fix = ("manager.conf, hotdesk's user: write = system,reporting,config"
               if view.kind == "asterisk" else
               "modules.conf.xml: <load module=\"mod_xml_curl\"/> and the binding of "
               "docs/freeswitch.md")
        checks.append(Check(f"{who} privileges", False, f"not allowed: {lines}", fix))
    else:
        checks.append(Check(f"{who} privileges", True))
    if view.kind == "asterisk" and not missing:
        endpoint = view.default_outbound_endpoint()
        checks.append(Check("default_outbound_endpoint", bool(endpoint),
                            f"= {endpoint}" if endpoint else "not set: PJSIPNotify to a phone's "
                            "URI is accepted and silently not sent",
                            "" if endpoint else "pjsip.conf [global]: default_outbound_endpoint "
                            "= <an endpoint, e.g. hotdesk-outbound>"))
    return checks


def _dialplan_checks(config: Config, view: SwitchView, contexts: dict[str, str],
                     extension: str) -> list[Check]:
    checks = []
    for context, whose in sorted(contexts.items()):
        for dialed, script in ((f"{config.policy.login_code}{extension}", "login"),
                               (config.policy.logout_code, "logout")):
            target = view.dialplan_target(context, dialed)
            ok = target == script
            detail = (f"{dialed} in {context} ({whose}) runs hotdesk {script}" if ok else
                      f"{dialed} in {context} ({whose}) "
                      + ("matches nothing" if target is None else
                         f"does not reach hotdesk (runs {target or 'no hotdesk step'})"))
            fix = "" if ok else (
                f"include => hotdesk-features in [{context}] (extensions_hotdesk.conf)"
                if view.kind == "asterisk" else
                f"add dialplan/freeswitch/hotdesk.xml to context {context} and reloadxml")
            checks.append(Check(f"dialplan {context} {dialed}", ok, detail, fix))
    return checks


def _emergency_checks(config: Config, view: SwitchView, contexts: dict[str, str]) -> list[Check]:
    """Every ``[emergency] numbers`` entry is dialable, without a prefix, from every
    context hot-desk phones use (idle and logged in)."""
    numbers = sorted({n.strip() for n in config.emergency.numbers.split(",") if n.strip()})
    checks = []
    for context, whose in sorted(contexts.items()):
        for number in numbers:
            ok = view.dialplan_target(context, number) is not None
            fix = "" if ok else (
                f"include => hotdesk-emergency in [{context}], with {number} in "
                "[hotdesk-emergency] (extensions_hotdesk.conf)" if view.kind == "asterisk" else
                f"{number} in the hotdesk-emergency pattern of hotdesk.xml (and hotdesk-idle.xml)"
                f" reachable from context {context}; reloadxml")
            checks.append(Check(f"emergency {number} from {context}", ok,
                                f"{number} in {context} ({whose}) "
                                + ("is dialed directly" if ok else "matches nothing"), fix))
    return checks


def _idle_checks(config: Config, view: SwitchView, devices: Iterable[Device],
                 domains: dict[int, str]) -> list[Check]:
    checks = []
    want = config.switch.idle_context
    for device in devices:
        facts = view.account(device.idle_sip_username, domains[device.tenant_id])
        name = f"idle account {device.idle_sip_username}"
        if facts is None:
            fix = ("hotdesk creates it: set [switch] accounts_file and run hotdesk switch sync"
                   if getattr(device, "idle_managed", False) else
                   f"create the account {device.idle_sip_username} on the switch "
                   "(docs/asterisk.md, docs/freeswitch.md: idle phone)")
            checks.append(Check(name, False, "missing on the switch", fix))
        elif facts.context != want:
            checks.append(Check(name, False, f"context {facts.context or '(none)'}, not {want}",
                                f"set context = {want} on {device.idle_sip_username}"))
        else:
            checks.append(Check(name, True, f"context {want}"))
    return checks


def _user_checks(config: Config, view: SwitchView, users: Iterable[User],
                 tenants: dict[int, Tenant]) -> tuple[list[Check], dict[str, str]]:
    checks: list[Check] = []
    contexts: dict[str, str] = {}
    for user in users:
        tenant = tenants[user.tenant_id]
        domain = tenant.sip_domain
        name = f"user {user.extension}"
        facts = view.account(user.sip_username, domain)
        if facts is None:
            checks.append(Check(f"{name} account", False,
                                f"no account {user.sip_username} on the switch",
                                f"create it on the switch (docs: hot-desk user) or turn hot "
                                f"desking off: hotdesk user disable {user.extension}"))
            continue
        contexts.setdefault(facts.context, f"user {user.extension}")
        if user.sip_password and config.switch.credentials == "switch":
            checks.append(Check(f"{name} account", True, "a SIP password is still stored in "
                                "hotdesk and is used instead of the switch's",
                                f"once the switch holds it: hotdesk switch forget-sip-password "
                                f"{user.extension}"))
        else:
            try:
                view.read(user.sip_username, domain)
                checks.append(Check(f"{name} account", True, "SIP account readable"))
            except AccountError as exc:
                checks.append(Check(f"{name} account", False, str(exc),
                                    "give the account a plain password on the switch"))
        box, vm_context = mailbox_of(user)
        readable = view.voicemail_pin_readable(box, vm_context, domain)
        if readable:
            fix = ""
        elif view.kind == "asterisk":
            fix = f"voicemail.conf [{vm_context}]: {box} => <PIN>,{user.display_name or box}"
        else:
            fix = f'directory user {box}: <param name="vm-password" value="<PIN>"/>'
        checks.append(Check(f"{name} voicemail PIN", readable,
                            f"mailbox {box}@{vm_context}" + ("" if readable else " has no PIN"),
                            fix))
        if facts.max_contacts >= 0:
            need = contacts_needed(config, tenant)
            ok = facts.max_contacts >= need
            checks.append(Check(f"{name} max_contacts", ok,
                                f"max_contacts = {facts.max_contacts}, policy needs {need}",
                                "" if ok else f"aor {user.sip_username}: max_contacts = "
                                f"{need + 1} if the user also keeps their own phone, else {need}"))
    return checks, contexts


def _url_check(config: Config, get: Callable[[str], int]) -> Check:
    url = config.provisioning.base_url.rstrip("/") + "/"
    try:
        status = get(url)
    except OSError as exc:
        return Check("provisioning base_url", False, f"{url}: {exc}",
                     "start hotdesk web / prov-serve, or fix [provisioning] base_url")
    ok = status < 500
    return Check("provisioning base_url", ok, f"{url} answered HTTP {status}",
                 "" if ok else "the provisioning server fails: see its log")


def http_status(url: str, timeout: float = 5.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:  # noqa: S310 - config URL
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except urllib.error.URLError as exc:
        raise OSError(str(exc.reason)) from None


def run_checks(config: Config, view: SwitchView,
               get: Callable[[str], int] = http_status) -> list[Check]:
    """Every check, in the order an engineer would fix them."""
    checks = _switch_checks(config, view)
    if any(c.ok is False for c in checks[:2]):  # reachable, privileges
        return [*checks, Check("account, dialplan and prompt checks", None,
                               "skipped until the switch login works and may run every "
                               "action hotdesk uses"), _url_check(config, get)]
    tenants = {t.id: t for t in Tenant.select()}
    domains = {tid: t.sip_domain for tid, t in tenants.items()}
    users = list(User.select().where(User.hotdesk_enabled == True)  # noqa: E712
                 .order_by(User.tenant, User.extension))
    try:
        user_checks, contexts = _user_checks(config, view, users, tenants)
        contexts = {config.switch.idle_context: "idle phones", **contexts}
        checks += _dialplan_checks(config, view, contexts, users[0].extension
                                   if users else "101")
        checks += _emergency_checks(config, view, contexts)
        checks += _idle_checks(config, view, Device.select().order_by(Device.id), domains)
        checks += user_checks
        prompts = sorted(set(config.prompts(view.kind).values()))
        missing = view.prompt_missing(prompts)
        if missing is None:
            checks.append(Check("prompt files", None, "this switch login may not list sounds",
                                "AMI: write = command lets doctor check the prompts"))
        else:
            checks.append(Check("prompt files", not missing,
                                "missing: " + ", ".join(missing) if missing else
                                f"{len(prompts)} found",
                                "install the sound files or change [prompts.*]"
                                if missing else ""))
    except AccountError as exc:
        checks.append(Check("switch answers", False, str(exc), "see the first failing check"))
    checks.append(_url_check(config, get))
    return checks


def failed(checks: Iterable[Check]) -> bool:
    return any(c.ok is False for c in checks)


def as_text(checks: list[Check]) -> str:
    lines = []
    for c in checks:
        mark = {True: "ok  ", False: "FAIL", None: "skip"}[c.ok]
        lines.append(f"{mark} {c.name}" + (f": {c.detail}" if c.detail else ""))
        if c.ok is not True and c.fix:
            lines.append(f"     -> {c.fix}")
    lines.append("all checks passed" if not failed(checks) else
                 f"{sum(c.ok is False for c in checks)} problem(s)")
    return "\n".join(lines) + "\n"


def as_json(checks: list[Check]) -> str:
    return json.dumps({"ok": not failed(checks), "checks": [asdict(c) for c in checks]},
                      indent=2) + "\n"
