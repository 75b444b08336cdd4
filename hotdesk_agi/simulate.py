"""Asterisk's side of a FastAGI session, for ``hotdesk simulate`` and the test fakes.

It connects to a FastAGI server exactly as Asterisk 22 does (the environment block in
Asterisk's key order, bare LF, ``agi_accountcode: `` with its trailing space) and
answers commands with Asterisk's reply lines, as captured from a real Asterisk (see
the reference transcripts asterisk-fastagi-*). When the server closes the socket it
writes ``HANGUP`` like Asterisk does at the end of every FastAGI session.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

ENV_ORDER = (
    "agi_network", "agi_network_script", "agi_request", "agi_channel", "agi_language",
    "agi_type", "agi_uniqueid", "agi_version", "agi_callerid", "agi_calleridname",
    "agi_callingpres", "agi_callingani2", "agi_callington", "agi_callingtns", "agi_dnid",
    "agi_rdnis", "agi_context", "agi_extension", "agi_priority", "agi_enhanced",
    "agi_accountcode", "agi_threadid",
)

# Lengths (8 kHz samples) that Asterisk reported as endpos for fully played sounds.
SOUND_SAMPLES = {"agent-pass": 26400, "auth-thankyou": 7680}
DEFAULT_SAMPLES = 8000

DEAD = b"511 Command Not Permitted on a dead channel or intercept routine\n"
UNKNOWN = b"510 Invalid or unknown command\n"
USAGE_HEAD = b"520-Invalid command syntax.  Proper usage follows:\n"
USAGE_TAIL = b"520 End of proper usage.\n"
USAGE = {
    "GET DATA": (b"Stream the given <replaceable>file</replaceable>, and receive DTMF data.\n"
                 b"Returns the digits received from the channel at the other end.\n"),
    "STREAM FILE": (
        b"Send the given file, allowing playback to be interrupted by the given digits, if "
        b"any. Returns <literal>0</literal> if playback completes without a digit being "
        b"pressed, or the ASCII numerical value of the digit if one was pressed, or "
        b"<literal>-1</literal> on error or if the channel was disconnected. If musiconhold "
        b"is playing before calling stream file it will be automatically stopped and will "
        b"not be restarted after completion.\n"
        b"It sets the following channel variables upon completion:\n"
        b"<variable>PLAYBACKSTATUS</variable>: The status of the playback attempt as a text "
        b"string.\n"
        b"    <value>SUCCESS</value>\n"
        b"    <value>FAILED</value>\n"),
    "SET VARIABLE": b"Sets a variable to the current channel.\n",
}


def usage(command: str) -> bytes:
    return USAGE_HEAD + USAGE.get(command, b"") + USAGE_TAIL


@dataclass
class CallSetup:
    """What Asterisk knows about the call when it runs ``AGI(agi://host:port/script,…)``."""

    script: str = "login"
    args: Sequence[str] = ()
    endpoint: str = "8001"  # PJSIP endpoint / caller id number
    callerid_name: str = ""
    dialed: str = ""  # agi_extension / agi_dnid, e.g. *70101
    channel: str = ""
    uniqueid: str = "hotdesk-sim-1.0"
    threadid: str = "140000000000000"
    context: str = "hotdesk-phones"
    version: str = "22.0.0-pre1-541-g69535d4837"
    variables: dict[str, str] = field(default_factory=dict)

    def env(self, host: str, port: int) -> bytes:
        values = {
            "agi_network": "yes", "agi_network_script": self.script,
            "agi_request": f"agi://{host}:{port}/{self.script}",
            "agi_channel": self.channel or f"PJSIP/{self.endpoint}-00000000",
            "agi_language": "en", "agi_type": "PJSIP", "agi_uniqueid": self.uniqueid,
            "agi_version": self.version, "agi_callerid": self.endpoint or "unknown",
            "agi_calleridname": self.callerid_name or "unknown", "agi_callingpres": "0",
            "agi_callingani2": "0", "agi_callington": "0", "agi_callingtns": "0",
            "agi_dnid": self.dialed or "unknown", "agi_rdnis": "unknown",
            "agi_context": self.context, "agi_extension": self.dialed or "s",
            "agi_priority": "1", "agi_enhanced": "0.0", "agi_accountcode": "",
            "agi_threadid": self.threadid,
        }
        lines = [f"{k}: {values[k]}" for k in ENV_ORDER]
        lines += [f"agi_arg_{n}: {a}" for n, a in enumerate(self.args, start=1)]
        return ("\n".join(lines) + "\n\n").encode()


class AsteriskChannel:
    """Answers AGI commands like Asterisk for one call.

    ``digits``: what the caller keys at each GET DATA ("" = nothing, the read times
    out). ``hangup_at="collect"``: the caller hangs up during the first GET DATA
    (``200 result=-1`` then the async ``HANGUP``). ``"disconnect"``: the switch drops
    the TCP connection during the first GET DATA (``handle`` returns None).
    """

    def __init__(self, setup: CallSetup, digits: Sequence[str] = (),
                 hangup_at: str | None = None,
                 voicemail: dict[str, str] | None = None) -> None:
        self.setup = setup
        # voicemail.conf as this switch holds it: "box@context" -> PIN (VM_INFO reads).
        self.voicemail = dict(voicemail or {})
        self.digits = list(digits)
        self.hangup_at = hangup_at
        self.dead = False
        self.variables: dict[str, str] = {}
        self.commands: list[str] = []

    def handle(self, line: str) -> bytes | None:
        self.commands.append(line)
        try:
            words = shlex.split(line)
        except ValueError:
            return UNKNOWN
        name = " ".join(words[:2]).upper()
        args = words[2:]
        head = words[0].upper() if words else ""
        if head == "ANSWER":
            return DEAD if self.dead else b"200 result=0\n"
        if head == "NOOP":
            return b"200 result=0\n"
        if head == "HANGUP":
            self.dead = True
            return b"200 result=1\n"
        if head == "EXEC":
            return DEAD if self.dead else b"200 result=0\n"
        if name == "STREAM FILE":
            if self.dead:
                return DEAD
            if len(args) not in (2, 3):
                return usage(name)
            return f"200 result=0 endpos={SOUND_SAMPLES.get(args[0], DEFAULT_SAMPLES)}\n".encode()
        if name == "GET DATA":
            if self.dead:
                return DEAD
            if not args:
                return usage(name)
            return self._get_data(int(args[2]) if len(args) > 2 and args[2].isdigit() else 0)
        if name == "SET VARIABLE":
            if len(args) != 2:
                return usage(name)
            self.variables[args[0]] = args[1]
            return b"200 result=1\n"
        if name == "GET FULL" and args[1:2] and args[1].startswith("${VM_INFO("):
            # Asterisk evaluates the expression; a mailbox it does not know reads empty.
            box = args[1].removeprefix("${VM_INFO(").split(",", 1)[0]
            return f"200 result=1 ({self.voicemail.get(box, '')})\n".encode()
        if name == "GET VARIABLE" or (name == "GET FULL" and args[:1] == ["VARIABLE"]):
            key = args[-1] if args else ""
            value = self.setup.variables.get(key, self.variables.get(key))
            return b"200 result=0\n" if value is None else f"200 result=1 ({value})\n".encode()
        return UNKNOWN

    def _get_data(self, max_digits: int) -> bytes | None:
        if self.hangup_at == "collect":
            self.hangup_at, self.dead = None, True
            return b"200 result=-1\nHANGUP\n"
        if self.hangup_at == "disconnect":
            return None
        keyed = self.digits.pop(0) if self.digits else ""
        if keyed.endswith("#"):
            return f"200 result={keyed[:-1]}\n".encode()
        if max_digits and len(keyed) >= max_digits:
            return f"200 result={keyed[:max_digits]}\n".encode()
        return f"200 result={keyed} (timeout)\n".encode()


@dataclass
class Transcript:
    """Everything one simulated call saw."""

    commands: list[str]
    variables: dict[str, str]
    sent: bytes  # every byte the switch side wrote
    closed_by_server: bool  # the FastAGI server ended the session (normal end)


async def place_call(host: str, port: int, channel: AsteriskChannel,
                     on_command: Callable[[str, bytes | None], None] | None = None,
                     timeout: float = 30.0) -> Transcript:
    """Connect like Asterisk, answer every command until the server closes."""
    reader, writer = await asyncio.open_connection(host, port)
    sent = bytearray()

    def write(data: bytes) -> None:
        sent.extend(data)
        writer.write(data)

    closed_by_server = False
    try:
        write(channel.setup.env(host, port))
        while True:
            raw = await asyncio.wait_for(reader.readline(), timeout)
            if not raw.endswith(b"\n"):
                closed_by_server = True
                # Asterisk writes HANGUP whenever a FastAGI session ends.
                try:
                    write(b"HANGUP\n")
                    await writer.drain()
                except OSError:
                    pass
                break
            line = raw[:-1].decode()
            reply = channel.handle(line)
            if on_command is not None:
                on_command(line, reply)
            if reply is None:
                writer.transport.abort()
                break
            write(reply)
            await writer.drain()
    except (ConnectionError, OSError):
        closed_by_server = True
    finally:
        writer.close()
    return Transcript(commands=channel.commands, variables=channel.variables, sent=bytes(sent),
                      closed_by_server=closed_by_server)
