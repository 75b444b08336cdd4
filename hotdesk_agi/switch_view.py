"""Asterisk seen over AMI: accounts, the pjsip reload, and what ``hotdesk doctor`` asks.

Only the protocol lives here; what to do with the answers is in :mod:`hotdesk.switch`.
``Getvar`` without a channel evaluates a dialplan function on a dummy channel and
answers ``Response: Success`` with an empty ``Value:`` when the object does not exist,
so "empty" means "missing" throughout.
"""

from __future__ import annotations

from collections.abc import Sequence

from hotdesk.switch.accounts import AccountError, AccountMissing, Credentials
from hotdesk.switch.doctor import AccountFacts
from hotdesk_agi.ami_sync import AmiRequestError, BlockingAmi

# Every AMI action hotdesk sends, and which part of hotdesk needs it.
ACTIONS_USED = {
    "PJSIPNotify": "check-sync NOTIFYs (write = system)",
    "Getvar": "reading SIP accounts and voicemail PINs (write = call or reporting)",
    "ModuleLoad": "reloading res_pjsip after writing the idle accounts (write = system)",
    "ShowDialPlan": "hotdesk doctor's dialplan check (write = config or reporting)",
}


def _sorcery(kind: str, name: str, field: str) -> str:
    return f"AST_SORCERY(res_pjsip,{kind},{name},{field})"


def _value(reply: dict[str, str]) -> str:
    """A Getvar's Value; AccountError when Asterisk refused it."""
    if reply.get("Response") != "Success":
        message = reply.get("Message", "refused")
        hint = (" (give the AMI user write = call or reporting in manager.conf)"
                if "denied" in message.lower() else "")
        raise AccountError(f"Asterisk refused Getvar: {message}{hint}")
    return reply.get("Value", "")


def _credentials(account: str, auth: str, username: str | AccountError,
                 password: str | AccountError) -> Credentials | AccountError:
    """The account from its auth's username and password (or why there is none)."""
    for value in (username, password):
        if isinstance(value, AccountError):
            return value
    if not password:
        return AccountMissing(f"pjsip auth {auth} of endpoint {account} has no plain "
                              "password (auth_type = userpass with password = … is needed; "
                              "md5_cred cannot be given to a phone)")
    return Credentials(str(username) or account, str(password))


class AsteriskView:
    """Account reads and switch facts over one blocking AMI connection."""

    kind = "asterisk"

    def __init__(self, ami: BlockingAmi) -> None:
        self.ami = ami

    def close(self) -> None:
        self.ami.close()

    def getvar(self, expression: str) -> str:
        try:
            reply = self.ami.action([("Action", "Getvar"), ("Variable", expression)])
        except AmiRequestError as exc:
            raise AccountError(str(exc)) from None
        return _value(reply)

    def getvars(self, expressions: Sequence[str]) -> list[str | AccountError]:
        """Each expression's value (or why it could not be read), pipelined."""
        replies = self.ami.pipeline([[("Action", "Getvar"), ("Variable", e)]
                                     for e in expressions])
        out: list[str | AccountError] = []
        for reply in replies:
            try:
                if isinstance(reply, AmiRequestError):
                    raise AccountError(str(reply))
                out.append(_value(reply))
            except AccountError as exc:
                out.append(exc)
        return out

    # -- AccountReader ------------------------------------------------------------------

    def read(self, account: str, domain: str) -> Credentials:
        result = self.read_many([(account, domain)])[0]
        if isinstance(result, AccountError):
            raise result
        return result

    def read_many(self, keys: Sequence[tuple[str, str]]
                  ) -> list[Credentials | AccountError]:
        """Many accounts in two pipelined passes: every endpoint's auth, then every
        auth's username and password. Each answer is what read() gives for that
        account alone (the error it would raise in its place)."""
        auths = self.getvars([_sorcery("endpoint", account, "auth") for account, _ in keys])
        named = [a.split(",")[0].strip() if isinstance(a, str) else "" for a in auths]
        wanted = [auth for auth in named if auth]
        values = iter(self.getvars([_sorcery("auth", auth, field) for auth in wanted
                                    for field in ("username", "password")]))
        out: list[Credentials | AccountError] = []
        for (account, _), raw, auth in zip(keys, auths, named, strict=True):
            if isinstance(raw, AccountError):
                out.append(raw)
            elif not auth:
                out.append(AccountMissing(
                    f"Asterisk has no pjsip endpoint {account} with an auth "
                    f"(add [{account}] type=endpoint with auth = {account})"))
            else:
                out.append(_credentials(account, auth, next(values), next(values)))
        return out

    # -- switch facts (hotdesk doctor, idle accounts) -----------------------------------

    def reload_accounts(self) -> None:
        """``module reload res_pjsip.so`` after the idle accounts file changed."""
        try:
            reply = self.ami.action([("Action", "ModuleLoad"), ("LoadType", "reload"),
                                     ("Module", "res_pjsip.so")])
        except AmiRequestError as exc:
            raise AccountError(str(exc)) from None
        if reply.get("Response") != "Success":
            raise AccountError("Asterisk refused to reload res_pjsip: "
                               f"{reply.get('Message', '?')} (the AMI user needs write = system)")

    def missing_actions(self) -> dict[str, str]:
        """Actions hotdesk uses that this AMI login may not run: name -> what needs it."""
        try:
            block = self.ami.action_raw([("Action", "ListCommands")])
        except AmiRequestError as exc:
            raise AccountError(str(exc)) from None
        allowed = {line.split(":", 1)[0].strip().lower()
                   for line in block.decode("utf-8", "replace").split("\r\n") if ":" in line}
        return {name: why for name, why in ACTIONS_USED.items() if name.lower() not in allowed}

    def default_outbound_endpoint(self) -> str | None:
        return self.getvar(_sorcery("global", "global", "default_outbound_endpoint"))

    def account(self, name: str, domain: str) -> AccountFacts | None:
        context = self.getvar(_sorcery("endpoint", name, "context"))
        auth = self.getvar(_sorcery("endpoint", name, "auth"))
        if not (context or auth):
            return None
        aors = self.getvar(_sorcery("endpoint", name, "aors")).split(",")[0].strip()
        raw = self.getvar(_sorcery("aor", aors, "max_contacts")) if aors else ""
        return AccountFacts(name=name, context=context,
                            max_contacts=int(raw) if raw.isdigit() else 0,
                            has_password=bool(auth))

    def voicemail_pin_readable(self, box: str, context: str, domain: str) -> bool:
        return bool(self.getvar(f"VM_INFO({box}@{context},password)"))

    def dialplan_target(self, context: str, dialed: str) -> str | None:
        """The AGI script the first AGI() step of ``dialed`` in ``context`` runs ("" when
        the extension exists without one, None when it does not match at all)."""
        try:
            items = self.ami.action_list([("Action", "ShowDialPlan"), ("Context", context),
                                          ("Extension", dialed)], "ShowDialPlanComplete")
        except AmiRequestError as exc:
            raise AccountError(str(exc)) from None
        if items and items[0].get("Response") == "Error":
            return None
        for item in items:
            if item.get("Application", "").lower() == "agi":
                return item.get("AppData", "").split(",")[0].rsplit("/", 1)[-1]
        return ""

    def prompt_missing(self, names: list[str]) -> list[str] | None:
        """Sound files Asterisk does not know; None when this login cannot ask."""
        missing = []
        for name in names:
            try:
                reply = self.ami.action([("Action", "Command"),
                                         ("Command", f"core show sound {name}")])
            except AmiRequestError as exc:
                raise AccountError(str(exc)) from None
            if "not found in index" in reply.get("Output", ""):
                missing.append(name)  # CLI failure: Response: Error + the CLI's output
            elif reply.get("Response") != "Success":
                return None  # Permission denied: the login lacks write = command
        return missing
