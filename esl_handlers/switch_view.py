"""FreeSWITCH seen over the inbound Event Socket: accounts and what ``hotdesk doctor`` asks.

``api user_data <user>@<domain> param|var|attr <name>`` answers the bare value, or
``-ERR no reply`` when the user or the value does not exist (captured). Only the
protocol lives here; the rules are in :mod:`hotdesk.switch`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from esl_handlers.inbound import EslError, EslUnavailable, InboundConnection
from hotdesk.switch.accounts import AccountError, AccountMissing, Credentials
from hotdesk.switch.doctor import AccountFacts

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.+\-]+$")


def _missing(account: str, domain: str, a1_hash: str | AccountError,
             user_id: str | AccountError) -> AccountError:
    """Why a directory user gives no password (the first read error, if any)."""
    if isinstance(a1_hash, AccountError):
        return a1_hash
    if a1_hash:
        return AccountMissing(f"directory user {account}@{domain} has only an a1-hash; a "
                              "phone needs the password itself: add <param name=\"password\""
                              " value=\"…\"/> (or set [switch] credentials = hotdesk)")
    if isinstance(user_id, AccountError):
        return user_id
    if not user_id:
        return AccountMissing(f"FreeSWITCH has no directory user {account}@{domain}")
    return AccountMissing(f"directory user {account}@{domain} has no password param")


class FreeswitchView:
    kind = "freeswitch"

    def __init__(self, inbound: InboundConnection, needs_xml_curl: bool = False) -> None:
        self.inbound = inbound
        self.needs_xml_curl = needs_xml_curl

    def close(self) -> None:
        self.inbound.stop()

    def api(self, command: str) -> str | None:
        """The api output; None for ``-ERR no reply`` (nothing found)."""
        try:
            answer: str | Exception = self.inbound.api(command, timeout=3.0)
        except (EslError, EslUnavailable) as exc:
            answer = exc
        return self._answer(command, answer)

    @staticmethod
    def _answer(command: str, answer: str | Exception) -> str | None:
        if isinstance(answer, EslError):
            if "no reply" in str(answer):
                return None
            raise AccountError(f"FreeSWITCH refused '{command.split()[0]}': {answer}")
        if isinstance(answer, EslUnavailable):
            raise AccountError(f"Event Socket: {answer} (check [esl] host/port/password)")
        assert isinstance(answer, str)
        return answer

    def user_data(self, account: str, domain: str, kind: str, name: str) -> str:
        if not (_SAFE_NAME.match(account) and _SAFE_NAME.match(domain)):
            raise AccountMissing(f"{account}@{domain} is not a valid directory user")
        return self.api(f"user_data {account}@{domain} {kind} {name}") or ""

    # -- AccountReader ------------------------------------------------------------------

    def read(self, account: str, domain: str) -> Credentials:
        result = self.read_many([(account, domain)])[0]
        if isinstance(result, AccountError):
            raise result
        return result

    def user_data_many(self, queries: Sequence[tuple[str, str, str, str]]
                       ) -> list[str | AccountError]:
        """user_data() of each (account, domain, kind, name), pipelined on the one
        connection: the value ("" when none), or the error user_data() raises."""
        asked = [q for q in queries if _SAFE_NAME.match(q[0]) and _SAFE_NAME.match(q[1])]
        answers = iter(self.inbound.api_many(
            [f"user_data {a}@{d} {kind} {name}" for a, d, kind, name in asked], timeout=3.0))
        out: list[str | AccountError] = []
        for account, domain, _, _ in queries:
            if not (_SAFE_NAME.match(account) and _SAFE_NAME.match(domain)):
                out.append(AccountMissing(f"{account}@{domain} is not a valid directory user"))
                continue
            answer = next(answers)
            try:
                out.append(self._answer("user_data", answer) or "")
            except AccountError as exc:
                out.append(exc)
        return out

    def read_many(self, keys: Sequence[tuple[str, str]]
                  ) -> list[Credentials | AccountError]:
        """Every account's password in one pipelined pass; for those without one, why
        (a1-hash only, no such user) in a second. Each answer is what read() alone gives."""
        passwords = self.user_data_many([(a, d, "param", "password") for a, d in keys])
        lacking = [key for key, p in zip(keys, passwords, strict=True) if p == ""]
        why = iter(self.user_data_many([(a, d, kind, name) for a, d in lacking
                                        for kind, name in (("param", "a1-hash"),
                                                           ("attr", "id"))]))
        out: list[Credentials | AccountError] = []
        for (account, domain), password in zip(keys, passwords, strict=True):
            if isinstance(password, AccountError):
                out.append(password)
            elif password:
                out.append(Credentials(account, password))
            else:
                out.append(_missing(account, domain, next(why), next(why)))
        return out

    # -- switch facts ---------------------------------------------------------------------

    def missing_actions(self) -> dict[str, str]:
        """Event Socket has no per-command rights; what can be missing is a module.
        (The ``api status`` round trip proves the connection and the password.)"""
        missing = {}
        self.api("status")
        if self.needs_xml_curl and (self.api("module_exists mod_xml_curl") or "") != "true":
            missing["mod_xml_curl"] = ("serving the idle phones' directory entries "
                                       "(load mod_xml_curl and bind it to hotdesk web)")
        return missing

    def default_outbound_endpoint(self) -> str | None:
        return None

    def account(self, name: str, domain: str) -> AccountFacts | None:
        if not self.user_data(name, domain, "attr", "id"):
            return None
        context = self.user_data(name, domain, "var", "user_context") or "default"
        return AccountFacts(name=name, context=context, max_contacts=-1,
                            has_password=bool(self.user_data(name, domain, "param", "password")))

    def voicemail_pin_readable(self, box: str, context: str, domain: str) -> bool:
        return bool(self.user_data(box, domain, "param", "vm-password"))

    def dialplan_target(self, context: str, dialed: str) -> str | None:
        """``login``/``logout`` when ``dialed`` in ``context`` reaches hotdesk's socket
        (set hotdesk_action=… then socket); "" matched without it; None no match."""
        text = self.api(f"xml_locate dialplan context name {context}")
        if not text or not text.lstrip().startswith("<"):
            return None
        try:
            root = ET.fromstring(text)
        except ET.ParseError:
            return None
        found = None
        for ext in root.iter("extension"):
            for cond in ext.iter("condition"):
                if cond.get("field") != "destination_number":
                    continue
                try:
                    if not re.search(cond.get("expression", ""), dialed):
                        continue
                except re.error:
                    continue
                action, socket = "", False
                for act in cond.iter("action"):
                    app, data = act.get("application", ""), act.get("data", "")
                    if app == "set" and data.startswith("hotdesk_action="):
                        action = data.split("=", 1)[1]
                    socket = socket or app == "socket"
                if socket and action:
                    return action
                found = found or ""
        return found

    def prompt_missing(self, names: list[str]) -> list[str] | None:
        prefix = self.api("global_getvar sound_prefix")
        if not prefix:
            return None
        missing = []
        for name in names:
            folder, _, file = name.rpartition("/")
            candidates = [f"{prefix}/{folder}/{rate}/{file}" for rate in
                          (8000, 16000, 32000, 48000)] + [f"{prefix}/{name}"]
            if not any(self.api(f"file_exists {path}") == "true" for path in candidates):
                missing.append(name)
        return missing
