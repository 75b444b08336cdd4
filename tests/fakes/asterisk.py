"""Wire-level fakes of Asterisk, rebuilt from the real captures in tests/fakes/asterisk_captures.

FakeAsterisk places FastAGI calls (the replies come from hotdesk_agi.simulate, which
tests/test_asterisk_fakes.py proves byte-identical to the captures). FakeAMI is an AMI
server: CR LF everywhere, header order and texts as captured, ActionIDs echoed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hotdesk_agi.simulate import AsteriskChannel, CallSetup, Transcript, place_call
from tests.fakes import SWITCH_VOICEMAIL

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


class FakeAsterisk:
    """Asterisk as a FastAGI client of the server at host:port."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.calls: list[Transcript] = []
        self._n = 0
        # voicemail.conf: "box@context" -> PIN, read by hotdesk with VM_INFO.
        self.voicemail = {f"{box}@default": pin for box, pin in SWITCH_VOICEMAIL.items()}

    async def call(self, script: str, args: Sequence[str], endpoint: str, dialed: str,
                   digits: Sequence[str] = (), hangup_at: str | None = None,
                   variables: dict[str, str] | None = None,
                   voicemail: dict[str, str] | None = None) -> Transcript:
        self._n += 1
        setup = CallSetup(script=script, args=list(args), endpoint=endpoint,
                          callerid_name=f"Phone {endpoint}", dialed=dialed,
                          channel=f"PJSIP/{endpoint}-{self._n:08x}",
                          uniqueid=f"hotdesk-fake-{int(time.time())}.{self._n}",
                          variables=variables or {})
        transcript = await place_call(self.host, self.port,
                                      AsteriskChannel(setup, digits, hangup_at,
                                                      self.voicemail if voicemail is None
                                                      else voicemail))
        self.calls.append(transcript)
        return transcript


def _fmt(headers: list[tuple[str, str]]) -> bytes:
    return b"".join(f"{k}: {v}\r\n".encode() for k, v in headers) + b"\r\n"


def _parse(block: bytes) -> list[tuple[str, str]]:
    out = []
    for line in block.decode("utf-8", "replace").split("\r\n"):
        key, sep, value = line.partition(":")
        if sep:
            out.append((key.strip(), value.strip()))
    return out


@dataclass
class Notify:
    action: str  # PJSIPNotify | SIPnotify
    endpoint: str
    uri: str
    event: str
    at: float = field(default_factory=time.monotonic)  # when the fake received it


@dataclass
class Contact:
    """A registered phone, as PJSIPShowContacts and the register events describe it."""

    endpoint: str
    uri: str  # sip:8001@127.0.0.1:5071;transport=UDP
    object_hash: str = "0" * 32
    call_id: str = "1-1@127.0.0.1"
    user_agent: str = "SIPp"
    expiration: int = 0


class FakeAMI:
    """An Asterisk Manager Interface on a loopback port.

    ``clock`` supplies every time value the fake prints (Timestamp, EventTV), in the
    order it prints them; ``session_id`` the SuccessfulAuth SessionID. ``endpoints``:
    the PJSIP endpoints that exist (None = any); PJSIPNotify to another one fails like
    Asterisk. PJSIPNotify succeeds even with no contact, as Asterisk does.
    """

    def __init__(self, username: str = "hotdesk", secret: str = "hotdesk-secret",
                 endpoints: set[str] | None = None, system_name: str = "hotdesk-lab",
                 clock: Callable[[], float] = time.time, session_id: str = "0x7fea94001460",
                 uptime: int = 4, auth_fail_delay: float = 0.0) -> None:
        self.username, self.secret = username, secret
        self.endpoints = endpoints
        self.system_name = system_name
        self.clock = clock
        self.session_id = session_id
        self.uptime = uptime
        self.auth_fail_delay = auth_fail_delay
        self.contacts: list[Contact] = []
        self.actions: list[list[tuple[str, str]]] = []
        self.notifies: list[Notify] = []
        self.astdb: dict[str, str] = {}  # "family/key" -> value (DBPut, DBDelTree)
        self.logins_ok = 0
        self.logins_failed = 0
        self.sent: dict[int, bytearray] = {}  # per connection, every byte written
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        self._writers: dict[int, asyncio.StreamWriter] = {}
        self._authed: set[int] = set()
        self._events_on: set[int] = set()
        # Per connection, the event classes Login asked for (None = every class, "on").
        self._classes: dict[int, set[str] | None] = {}
        self._conn = 0
        self.changed = asyncio.Event()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self.server = await asyncio.start_server(self._serve, host, port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        """Asterisk gone without a word: listener closed, connections dropped."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        # Let the connection tasks see the abort and finish before the loop ends; a
        # connection accepted while the listener closed is aborted on a later pass.
        for _ in range(100):
            for w in list(self._writers.values()):
                w.transport.abort()
            await asyncio.sleep(0.01)
            if not self._writers:
                break

    async def shutdown(self) -> None:
        """``core stop now``: Event: Shutdown to connections that asked for events (a real
        Asterisk sends nothing to a session logged in with ``Events: off``), then close."""
        for conn in list(self._authed):
            w = self._writers.get(conn)
            if w is not None:
                if conn in self._events_on:
                    self._write(conn, self._event("Shutdown", "system,all",
                                                  [("Shutdown", "Cleanly"),
                                                   ("Restart", "False")]))
                w.close()
        await self.stop()

    def _write(self, conn: int, data: bytes) -> None:
        self.sent.setdefault(conn, bytearray()).extend(data)
        self._writers[conn].write(data)

    def _ts(self) -> str:
        return f"{self.clock():.6f}"

    def _tv(self) -> str:
        t = self.clock()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
        return f"{stamp}.{int(t * 1000) % 1000:03d}+0000"

    def _event(self, name: str, privilege: str, own: list[tuple[str, str]]) -> bytes:
        ts = self._ts()
        return _fmt([("Event", name), ("Privilege", privilege), ("Timestamp", ts),
                     ("SystemName", self.system_name), *own])

    def emit(self, name: str, privilege: str, own: list[tuple[str, str]]) -> None:
        """Send an event to every connection that logged in with events on and, when it
        named event classes (``Events: system,security``), asked for this one's class."""
        for conn in list(self._events_on):
            classes = self._classes.get(conn)
            if classes is not None and privilege.split(",", 1)[0] not in classes:
                continue
            if conn in self._writers:
                self._write(conn, self._event(name, privilege, own))

    def _security(self, name: str, service: str, account: str, session: str, local: str,
                  remote: str, tail: list[tuple[str, str]],
                  severity: str = "Informational") -> None:
        tv = self._tv()
        self.emit(name, "security,all", [
            ("EventTV", tv), ("Severity", severity), ("Service", service),
            ("EventVersion", "1"), ("AccountID", account), ("SessionID", session),
            ("LocalAddress", local), ("RemoteAddress", remote), *tail])

    def register(self, contact: Contact, registered: bool = True) -> None:
        """A phone registers (or unregisters): the security pair, then the state events."""
        host_port = contact.uri.split("@", 1)[1].split(";", 1)[0]
        ip, port = host_port.rsplit(":", 1)
        remote = f"IPV4/UDP/{ip}/{port}"
        local = "IPV4/UDP/127.0.0.1/5060"
        self._security("ChallengeSent", "PJSIP", contact.endpoint, contact.call_id, local,
                       remote, [("Challenge", "")])
        self._security("SuccessfulAuth", "PJSIP", contact.endpoint, contact.call_id, local,
                       remote, [("UsingPassword", "1")])
        peer = f"PJSIP/{contact.endpoint}"
        self.emit("PeerStatus", "system,all", [("ChannelType", "PJSIP"), ("Peer", peer),
                  ("PeerStatus", "Reachable" if registered else "Unreachable")])
        self.emit("DeviceStateChange", "call,all", [
            ("Device", peer), ("State", "NOT_INUSE" if registered else "UNAVAILABLE")])
        self.emit("ContactStatus", "system,all", [
            ("URI", contact.uri), ("ContactStatus", "NonQualified" if registered else "Removed"),
            ("AOR", contact.endpoint), ("EndpointName", contact.endpoint),
            ("RoundtripUsec", "0")])
        if registered:
            self.contacts.append(contact)
        else:
            self.contacts = [c for c in self.contacts if c.uri != contact.uri]

    def refuse(self, contact: Contact, nonce: str = "1795732170/0123456789abcdef",
               response: str = "0" * 32) -> None:
        """A REGISTER with a wrong password: challenged, then ChallengeResponseFailed
        (res_pjsip/security_events.c: nonce and response of the Authorization header,
        ExpectedResponse empty), and no contact."""
        ip, port = contact.uri.split("@", 1)[1].split(";", 1)[0].rsplit(":", 1)
        remote, local = f"IPV4/UDP/{ip}/{port}", "IPV4/UDP/127.0.0.1/5060"
        self._security("ChallengeSent", "PJSIP", contact.endpoint, contact.call_id, local,
                       remote, [("Challenge", "")])
        self._security("ChallengeResponseFailed", "PJSIP", contact.endpoint, contact.call_id,
                       local, remote, [("Challenge", nonce), ("Response", response),
                                       ("ExpectedResponse", "")], severity="Error")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.server is None:
            # Accepted just before stop() closed the listener: gone with it, like the
            # rest of a stopped Asterisk's connections.
            writer.transport.abort()
            return
        self._conn += 1
        conn = self._conn
        self._writers[conn] = writer
        try:
            self._write(conn, BANNER)
            while True:
                block = await reader.readuntil(b"\r\n\r\n")
                headers = _parse(block[:-4])
                if not headers:
                    continue
                if not await self._action(conn, headers, writer):
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.pop(conn, None)
            self._authed.discard(conn)
            self._events_on.discard(conn)
            writer.close()
            self.changed.set()

    async def _action(self, conn: int, headers: list[tuple[str, str]],
                      writer: asyncio.StreamWriter) -> bool:
        self.actions.append(headers)
        h = {k.lower(): v for k, v in reversed(headers)}
        action = h.get("action", "").lower()
        aid = [("ActionID", h["actionid"])] if "actionid" in h else []

        def respond(kind: str, *rest: tuple[str, str]) -> None:
            self._write(conn, _fmt([("Response", kind), *aid, *rest]))

        if action == "login":
            if h.get("username") == self.username and h.get("secret") == self.secret:
                respond("Success", ("Message", "Authentication accepted"))
                self._authed.add(conn)
                self.logins_ok += 1
                events = h.get("events", "on").lower()
                if events not in ("off", "no", "false", "0"):
                    self._events_on.add(conn)
                    self._classes[conn] = (None if events in ("on", "yes", "true", "1")
                                           else {c.strip() for c in events.split(",")})
                    self._write(conn, _fmt([
                        ("Event", "FullyBooted"), ("Privilege", "system,all"),
                        ("Uptime", str(self.uptime)), ("LastReload", str(self.uptime)),
                        ("Status", "Fully Booted")]))
                    port = writer.get_extra_info("peername")[1]
                    tv = self._tv()
                    self._write(conn, self._event("SuccessfulAuth", "security,all", [
                        ("EventTV", tv), ("Severity", "Informational"), ("Service", "AMI"),
                        ("EventVersion", "1"), ("AccountID", self.username),
                        ("SessionID", self.session_id),
                        ("LocalAddress", f"IPV4/TCP/127.0.0.1/{self.port}"),
                        ("RemoteAddress", f"IPV4/TCP/127.0.0.1/{port}"),
                        ("UsingPassword", "0"), ("SessionTV", tv)]))
                self.changed.set()
                return True
            self.logins_failed += 1
            self.changed.set()
            await asyncio.sleep(self.auth_fail_delay)
            respond("Error", ("Message", "Authentication failed"))
            return False
        if action == "logoff":
            respond("Goodbye", ("Message", "Thanks for all the fish."))
            return False
        if conn not in self._authed:
            respond("Error", ("Message", "Permission denied"))
            return True
        if action == "ping":
            respond("Success", ("Ping", "Pong"), ("Timestamp", self._ts()))
        elif action == "pjsipnotify":
            self._pjsip_notify(h, respond)
        elif action == "sipnotify":
            channel = h.get("channel", "")
            if not channel:
                respond("Error", ("Message", "SIPNotify requires a channel name"))
            else:
                self.notifies.append(Notify("SIPnotify", channel, "", _event_var(headers)))
                respond("Success", ("Message", "Notify Sent"))
        elif action == "pjsipshowcontacts":
            self._show_contacts(conn, aid, respond)
        elif action in ("dbput", "dbdeltree"):
            self._astdb(action, h, respond)
        else:
            respond("Error", ("Message", "Invalid/unknown command"))
        self.changed.set()
        return True

    def _pjsip_notify(self, h: dict[str, str], respond: Callable[..., None]) -> None:
        endpoint, uri = h.get("endpoint", ""), h.get("uri", "")
        if endpoint and uri:
            respond("Error", ("Message", "PJSIPNotify requires either an endpoint name or a "
                              "SIP URI, but not both."))
        elif uri:
            self.notifies.append(Notify("PJSIPNotify", "", uri, self._last_event))
            respond("Success", ("Message", "NOTIFY sent"))
        elif endpoint and (self.endpoints is None or endpoint in self.endpoints):
            self.notifies.append(Notify("PJSIPNotify", endpoint, "", self._last_event))
            respond("Success", ("Message", "NOTIFY sent"))
        elif endpoint:
            respond("Error", ("Message", f"Unable to retrieve endpoint {endpoint}"))
        else:
            respond("Error", ("Message", "PJSIPNotify requires either an endpoint name or a "
                              "SIP URI."))

    def _astdb(self, action: str, h: dict[str, str], respond: Callable[..., None]) -> None:
        """DBPut / DBDelTree with the replies of capture ami-astdb (the emergency entries
        every login writes)."""
        family = h.get("family", "")
        if action == "dbput":
            self.astdb[f"{family}/{h.get('key', '')}"] = h.get("val", "")
            respond("Success", ("Message", "Updated database successfully"))
            return
        keys = [k for k in self.astdb if k.startswith(family + "/")]
        for key in keys:
            del self.astdb[key]
        if keys:
            respond("Success", ("Message", "Key tree deleted successfully"))
        else:
            respond("Error", ("Message", "Database entry not found"))

    @property
    def _last_event(self) -> str:
        return _event_var(self.actions[-1])

    def _show_contacts(self, conn: int, aid: list[tuple[str, str]],
                       respond: Callable[..., None]) -> None:
        if not self.contacts:
            # Asterisk 22: an Error, and this one line ends with a bare LF before the CR LF.
            respond("Error", ("Message", "No Contacts found\n"))
            return
        respond("Success", ("EventList", "start"),
                ("Message", "A listing of Contacts follows, presented as ContactList events"))
        for c in self.contacts:
            host_port = c.uri.split("@", 1)[1].split(";", 1)[0]
            ip, port = host_port.rsplit(":", 1)
            self._write(conn, _fmt([
                ("Event", "ContactList"), *aid, ("ObjectType", "contact"),
                ("ObjectName", f"{c.endpoint};@{c.object_hash}"), ("ViaAddr", ip),
                ("QualifyTimeout", "3.000000"), ("Qualify2xxOnly", "false"),
                ("CallId", c.call_id), ("RegServer", self.system_name), ("PruneOnBoot", "no"),
                ("Path", ""), ("Endpoint", c.endpoint), ("ViaPort", port),
                ("AuthenticateQualify", "no"), ("Uri", c.uri), ("QualifyFrequency", "0"),
                ("UserAgent", c.user_agent), ("ExpirationTime", str(c.expiration)),
                ("OutboundProxy", ""), ("Status", "NonQualified"), ("RoundtripUsec", "N/A")]))
        self._write(conn, _fmt([("Event", "ContactListComplete"), *aid,
                                ("EventList", "Complete"), ("ListItems", str(len(self.contacts)))]))


def _event_var(headers: list[tuple[str, str]]) -> str:
    for key, value in headers:
        if key.lower() == "variable" and value.startswith("Event="):
            return value[len("Event="):]
    return ""
