"""FakeInboundServer with a directory: ``user_data <u>@<d> param|var|attr <name>`` for
any value (the bare value, or ``-ERR no reply`` as captured), plus the api commands
``hotdesk doctor`` sends (``xml_locate dialplan``, ``global_getvar``, ``file_exists``,
``module_exists``, ``status``). Framing comes from the FakeInboundServer (captures)."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from tests.fakes.freeswitch import FakeInboundServer


class DirectoryServer(FakeInboundServer):
    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        # "user@domain" -> {"param:password": …, "var:user_context": …, "attr:id": …}
        self.users: dict[str, dict[str, str]] = {}
        # context -> [(expression, [(application, data), ...])]
        self.dialplan: dict[str, list[tuple[str, list[tuple[str, str]]]]] = {}
        self.files: set[str] = set()
        self.modules: set[str] = {"mod_sofia", "mod_commands"}
        self.sound_prefix = "/usr/share/freeswitch/sounds/en/us/callie"
        # Looked up when a user is not in self.users (mod_xml_curl in front of the files)
        self.directory_fallback = None

    def add_user(self, user: str, domain: str, password: str = "", vm_password: str = "",
                 context: str = "default", a1_hash: str = "") -> None:
        entry = {"attr:id": user, "var:user_context": context}
        if password:
            entry["param:password"] = password
        if vm_password:
            entry["param:vm-password"] = vm_password
        if a1_hash:
            entry["param:a1-hash"] = a1_hash
        self.users[f"{user}@{domain}"] = entry

    def hotdesk_dialplan(self, contexts: list[str]) -> None:
        """dialplan/freeswitch/hotdesk.xml's extensions (emergency, login, logout) in each
        context."""
        for context in contexts:
            self.dialplan[context] = [
                (r"^(112|911|999)$", [("set", "hangup_after_bridge=true"),
                                      ("bridge", "sofia/internal/$1@127.0.0.1:5092")]),
                (r"^\*70(\d+)$", [("set", "hotdesk_ext=$1"), ("set", "hotdesk_action=login"),
                                  ("socket", "127.0.0.1:8084 async full")]),
                (r"^\*71$", [("set", "hotdesk_action=logout"),
                             ("socket", "127.0.0.1:8084 async full")])]

    def _context_xml(self, context: str) -> str:
        exts = []
        for n, (expr, actions) in enumerate(self.dialplan[context]):
            acts = "".join(f"<action application={quoteattr(a)} data={quoteattr(d)}/>"
                           for a, d in actions)
            exts.append(f'<extension name="e{n}"><condition field="destination_number" '
                        f"expression={quoteattr(expr)}>{acts}</condition></extension>")
        return f"<context name={quoteattr(context)}>{''.join(exts)}</context>\n"

    def _api(self, cmd: str) -> bytes:
        parts = cmd.split()
        if len(parts) == 4 and parts[0] == "user_data" and parts[2] in {"param", "var", "attr"}:
            entry = self.users.get(parts[1])
            if entry is None and self.directory_fallback is not None:
                entry = self.directory_fallback(parts[1])
            value = (entry or {}).get(f"{parts[2]}:{parts[3]}", "")
            return value.encode() if value else b"-ERR no reply\n"
        if parts[:4] == ["xml_locate", "dialplan", "context", "name"] and len(parts) == 5:
            if parts[4] in self.dialplan:
                return self._context_xml(parts[4]).encode()
            return b"can't find anything\n"
        if parts == ["global_getvar", "sound_prefix"]:
            return self.sound_prefix.encode()
        if len(parts) == 2 and parts[0] == "file_exists":
            return b"true" if parts[1] in self.files else b"false"
        if len(parts) == 2 and parts[0] == "module_exists":
            return b"true" if parts[1] in self.modules else b"false"
        if parts == ["status"]:
            return b"UP 0 years, 0 days, 0 hours, 1 minute\n"
        return super()._api(cmd)
