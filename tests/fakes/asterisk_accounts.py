"""FakeAMI with what Asterisk knows about accounts: Getvar of AST_SORCERY / VM_INFO,
ModuleLoad reload (re-reading a generated pjsip include), ShowDialPlan, ListCommands,
Command ``core show sound``, and "Permission denied" for actions the login may not run.

Reply shapes follow Asterisk 22's main/manager.c and main/pbx.c (astman_start_ack +
``Variable:``/``Value:``; an empty Value when the object does not exist) and the
captures in tests/fakes/asterisk_captures/ (see test_switch_asterisk.py, which checks
the fake against them byte for byte).
"""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path

from tests.fakes.asterisk import FakeAMI, _fmt

# Action -> (synopsis, privilege text) as ListCommands prints them, and the write
# class that grants it (manager.c / pbx.c / res_pjsip_notify.c registrations).
ACTIONS = {
    "Getvar": ("Gets a channel variable or function value.", "call,reporting,all",
               {"call", "reporting"}),
    "ModuleLoad": ("Module management.", "system,all", {"system"}),
    "ShowDialPlan": ("Show dialplan contexts and extensions", "config,reporting,all",
                     {"config", "reporting"}),
    "PJSIPNotify": ("Send a NOTIFY to either an endpoint, an arbitrary URI, or inside a SIP "
                    "dialog.", "system,all", {"system"}),
    "Command": ("Execute Asterisk CLI Command.", "command,all", {"command"}),
    "Ping": ("Keepalive command.", "<none>", set()),
    "ListCommands": ("List available manager commands.", "<none>", set()),
}
# Actions tests.fakes.asterisk.FakeAMI answers itself.
_BASE_ACTIONS = {"login", "logoff", "ping", "pjsipnotify", "sipnotify", "pjsipshowcontacts"}
_SORCERY = re.compile(r"^AST_SORCERY\(res_pjsip,(\w+),([^,]*),(\w+)\)$")
_VM_INFO = re.compile(r"^VM_INFO\(([^@,]+)@([^,]+),(password|exists)\)$")


def _match(pattern: str, dialed: str) -> bool:
    """Asterisk extension pattern (``_*70X.``) or literal."""
    if not pattern.startswith("_"):
        return pattern == dialed
    rx = ""
    for ch in pattern[1:]:
        rx += {"X": "[0-9]", "Z": "[1-9]", "N": "[2-9]", ".": ".+", "!": ".*"}.get(ch,
                                                                                re.escape(ch))
    return re.fullmatch(rx, dialed) is not None


class AccountsAMI(FakeAMI):
    def __init__(self, *args, write: set[str] | None = None,  # type: ignore[no-untyped-def]
                 accounts_file: Path | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # manager.conf write= classes of the login; None = everything
        self.write = write
        self.accounts_file = accounts_file
        self.sorcery: dict[tuple[str, str, str], str] = {}
        self._from_file: set[tuple[str, str, str]] = set()
        self.voicemail: dict[str, str] = {}
        # context -> [(pattern, application, appdata, label)] and its includes
        self.dialplan: dict[str, list[tuple[str, str, str, str]]] = {}
        self.includes: dict[str, list[str]] = {}
        self.sounds: set[str] = set()
        self.reloads = 0
        self.reload_error = ""

    # -- building the switch's state -------------------------------------------------

    def add_account(self, name: str, password: str, context: str = "phones",
                    max_contacts: int = 1, username: str | None = None) -> None:
        self.sorcery.update({("endpoint", name, "context"): context,
                             ("endpoint", name, "auth"): name,
                             ("endpoint", name, "aors"): name,
                             ("auth", name, "username"): username or name,
                             ("auth", name, "password"): password,
                             ("aor", name, "max_contacts"): str(max_contacts)})

    def hotdesk_dialplan(self, contexts: list[str]) -> None:
        """dialplan/asterisk/extensions_hotdesk.conf as loaded by Asterisk, with its
        contexts included from ``contexts`` (priorities as ShowDialPlan lists them)."""
        agi = "agi://${HOTDESK_AGI}/%s,%s,${CHANNEL(pjsip,remote_addr)},${CHANNEL(endpoint)}"
        tail = [("GotoIf", '$["${AGISTATUS}" = "SUCCESS"]?done', ""),
                ("Playback", "please-try-call-later", ""), ("Hangup", "", "done")]
        self.dialplan["hotdesk-features"] = [
            ("_*70X.", "NoOp", "hotdesk login as ${EXTEN:3} from ${CHANNEL(endpoint)}", ""),
            ("_*70X.", "AGI", agi % ("login", "${EXTEN:3}"), ""),
            *[("_*70X.", *step) for step in tail],
            ("*71", "NoOp", "hotdesk logout from ${CHANNEL(endpoint)}", ""),
            ("*71", "AGI", agi % ("logout", ""), ""),
            *[("*71", *step) for step in tail]]
        self.dialplan["hotdesk-emergency"] = [
            (n, app, data, "") for n in ("112", "911", "999")
            for app, data in (("Gosub", "hotdesk-emergency-route,s,1(${EXTEN})"),
                              ("Hangup", ""))]
        for context in contexts:
            self.dialplan.setdefault(context, [])
            self.includes.setdefault(context, []).extend(["hotdesk-features",
                                                          "hotdesk-emergency"])

    def _reload_file(self) -> None:
        for key in self._from_file:
            self.sorcery.pop(key, None)
        self._from_file = set()
        if self.accounts_file is None or not self.accounts_file.exists():
            return
        section, fields = "", {}
        for line in [*self.accounts_file.read_text().splitlines(), "[end]"]:
            line = line.split(";", 1)[0].strip()
            if line.startswith("["):
                kind = fields.pop("type", "")
                for key, value in fields.items():
                    self.sorcery[(kind, section, key)] = value
                    self._from_file.add((kind, section, key))
                section, fields = line.strip("[]"), {}
            elif "=" in line:
                key, value = (p.strip() for p in line.split("=", 1))
                fields[key] = value

    # -- actions -----------------------------------------------------------------------

    def _allowed(self, action: str) -> bool:
        name = next((n for n in ACTIONS if n.lower() == action), "")
        if self.write is None or not name:
            return True
        need = ACTIONS[name][2]
        return not need or bool(need & self.write)

    async def _action(self, conn, headers, writer):  # type: ignore[no-untyped-def]
        h = {k.lower(): v for k, v in reversed(headers)}
        action = h.get("action", "").lower()
        handlers = {"getvar": self._getvar, "moduleload": self._moduleload,
                    "showdialplan": self._showdialplan, "listcommands": self._listcommands,
                    "command": self._command}
        known = action in handlers or action in _BASE_ACTIONS
        if conn not in self._authed or action in _BASE_ACTIONS and self._allowed(action):
            return await super()._action(conn, headers, writer)
        self.actions.append(headers)
        aid = [("ActionID", h["actionid"])] if "actionid" in h else []
        if not known:
            self._write(conn, _fmt([("Response", "Error"), *aid, (
                "Message", f"Invalid/unknown command: {h.get('action', '')}. Use Action: "
                           "ListCommands to show available commands.")]))
        elif not self._allowed(action):
            self._write(conn, _fmt([("Response", "Error"), *aid,
                                    ("Message", "Permission denied")]))
        else:
            handlers[action](conn, h, aid)
        self.changed.set()
        return True

    def _getvar(self, conn: int, h: dict[str, str], aid: list) -> None:
        name = h.get("variable", "")
        value = ""
        if m := _SORCERY.match(name):
            value = self.sorcery.get((m.group(1), m.group(2), m.group(3)), "")
        elif m := _VM_INFO.match(name):
            box = f"{m.group(1)}@{m.group(2)}"
            value = (self.voicemail.get(box, "") if m.group(3) == "password"
                     else "1" if box in self.voicemail else "0")
        self._write(conn, _fmt([("Response", "Success"), *aid, ("Variable", name),
                                ("Value", value)]))

    def _moduleload(self, conn: int, h: dict[str, str], aid: list) -> None:
        if h.get("loadtype", "").lower() != "reload":
            self._write(conn, _fmt([("Response", "Error"), *aid,
                                    ("Message", "Incomplete ModuleLoad action.")]))
            return
        if h.get("module") not in {"res_pjsip.so", "app_voicemail.so"}:
            self._write(conn, _fmt([("Response", "Error"), *aid,
                                    ("Message", "Module not found.")]))
            return
        if self.reload_error:
            self._write(conn, _fmt([("Response", "Error"), *aid,
                                    ("Message", self.reload_error)]))
            return
        self.reloads += 1
        self._reload_file()
        self._write(conn, _fmt([("Response", "Success"), *aid,
                                ("Message", "Module reloaded.")]))

    def _walk(self, context: str, dialed: str, counts: dict[str, int],
              seen: list[str]) -> list[list[tuple[str, str]]]:
        """pbx.c manager_show_dialplan_helper: matching priorities of ``context``, then
        (with an extension) those of its includes, or (without) one item per include."""
        counts["contexts"] += 1
        out: list[list[tuple[str, str]]] = []
        prio: dict[str, int] = {}
        for pattern, app, data, label in self.dialplan.get(context, []):
            if dialed and not _match(pattern, dialed):
                continue
            if pattern not in prio:
                counts["extensions"] += 1
            prio[pattern] = prio.get(pattern, 0) + 1
            counts["priorities"] += 1
            out.append([("Context", context), ("Extension", pattern),
                        *([("ExtensionLabel", label)] if label else []),
                        ("Priority", str(prio[pattern])), ("Application", app),
                        ("AppData", data), ("Registrar", "pbx_config")])
        for inc in self.includes.get(context, []):
            if not dialed:
                out.append([("Context", context), ("IncludeContext", inc),
                            ("Registrar", "pbx_config")])
            elif inc not in seen:
                out += self._walk(inc, dialed, counts, [*seen, inc])
        return out

    def _showdialplan(self, conn: int, h: dict[str, str], aid: list) -> None:
        context, exten = h.get("context", ""), h.get("extension", "")
        if context not in self.dialplan:
            self._write(conn, _fmt([("Response", "Error"), *aid,
                                    ("Message", f"Did not find context {context}")]))
            return
        counts = {"contexts": 0, "extensions": 0, "priorities": 0}
        items = self._walk(context, exten, counts, [context])
        if exten and not counts["extensions"]:
            self._write(conn, _fmt([("Response", "Error"), *aid,
                                    ("Message", f"Did not find extension {exten}@{context}")]))
            return
        self._write(conn, _fmt([("Response", "Success"), *aid, ("EventList", "start"),
                                ("Message", "DialPlan list will follow")]))
        for item in items:
            self._write(conn, _fmt([("Event", "ListDialplan"), *aid, *item]))
        self._write(conn, _fmt([
            ("Event", "ShowDialPlanComplete"), *aid, ("EventList", "Complete"),
            ("ListItems", str(len(items))), ("ListExtensions", str(counts["extensions"])),
            ("ListPriorities", str(counts["priorities"])),
            ("ListContexts", str(counts["contexts"]))]))

    def _listcommands(self, conn: int, h: dict[str, str], aid: list) -> None:
        lines = [(n, f"{syn}  (Priv: {priv})") for n, (syn, priv, _need) in ACTIONS.items()
                 if self._allowed(n.lower())]
        self._write(conn, _fmt([("Response", "Success"), *aid, *lines]))

    def _command(self, conn: int, h: dict[str, str], aid: list) -> None:
        cmd = h.get("command", "")
        name = cmd.removeprefix("core show sound ").strip()
        if name in self.sounds:
            self._write(conn, _fmt([("Response", "Success"), *aid,
                                    ("Message", "Command output follows"),
                                    ("Output", f"Indexed Information for {name}:"),
                                    ("Output", "  Language en:"), ("Output", "    Format: gsm")]))
        else:
            self._write(conn, _fmt([("Response", "Error"), *aid,
                                    ("Message", "Command output follows"),
                                    ("Output", f"ERROR: File {name} not found in index")]))


class ThreadedAMI:
    """Runs an AccountsAMI on its own event loop thread, for blocking clients and
    subprocesses under test."""

    def __init__(self, ami: AccountsAMI) -> None:
        self.ami = ami
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> AccountsAMI:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.ami.start(), self.loop).result(5)
        return self.ami

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.ami.stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
