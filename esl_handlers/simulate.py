"""``hotdesk simulate-fs``: play FreeSWITCH's part of a ``*70``/``*71`` call against a running
``hotdesk esl``, to check a deployment without a phone.

It connects to ``[esl] listen`` as the ``socket`` application would, answers every command
the way FreeSWITCH does in ``async full`` mode (minimal channel data, ``+OK`` replies,
CHANNEL_EXECUTE_COMPLETE with the sent Event-UUID), keys the given PINs at each
play_and_get_digits, prints each command and returns the HOTDESK_RESULT that was set.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Sequence

from esl_handlers.wire import url_encode

Echo = Callable[[str], None]


def _block(headers: list[tuple[str, str]]) -> bytes:
    return "".join(f"{k}: {url_encode(v)}\n" for k, v in headers).encode() + b"\n"


def _reply(text: str) -> bytes:
    return f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode()


def _event(headers: list[tuple[str, str]]) -> bytes:
    body = _block(headers)
    return b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(body) + body


def _api_response(body: bytes) -> bytes:
    return b"Content-Type: api/response\nContent-Length: %d\n\n" % len(body) + body


def simulate(address: tuple[str, int], action: str, endpoint: str, extension: str = "",
             pins: Sequence[str] = (), domain: str = "", source: str = "127.0.0.1:5060",
             echo: Echo = print, timeout: float = 30.0,
             vm_passwords: dict[str, str] | None = None) -> str | None:
    """Run one call; returns the HOTDESK_RESULT the server set (None if none).
    ``vm_passwords``: the directory's ``vm-password`` per ``user@domain``, answered to
    ``api user_data`` (default: the caller's first PIN for ``extension@domain``)."""
    if vm_passwords is None:
        vm_passwords = {f"{extension}@{domain}": pins[0]} if pins else {}
    call_uuid = str(uuid.uuid4())
    ip, _, port = source.rpartition(":")
    channel = [("Event-Name", "CHANNEL_DATA"), ("Unique-ID", call_uuid),
               ("Caller-Username", endpoint), ("Caller-Network-Addr", ip),
               ("Caller-Destination-Number", f"*70{extension}" if action == "login" else "*71"),
               ("variable_sip_from_user", endpoint), ("variable_user_name", endpoint),
               ("variable_sip_from_host", domain), ("variable_domain_name", domain),
               ("variable_sip_received_ip", ip), ("variable_sip_received_port", port),
               ("variable_hotdesk_action", action)]
    if action == "login":
        channel.append(("variable_hotdesk_ext", extension))
    result: str | None = None
    keyed = list(pins)
    deadline = time.monotonic() + timeout
    with socket.create_connection(address, timeout=timeout) as sock:
        buf = b""
        while time.monotonic() < deadline:
            while b"\n\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    return result
                buf += chunk
            block, buf = buf.split(b"\n\n", 1)
            lines = block.decode().split("\n")
            cmd = lines[0]
            headers = dict(ln.split(": ", 1) for ln in lines[1:] if ": " in ln)
            app = headers.get("execute-app-name", "")
            arg = headers.get("execute-app-arg", "")
            if not cmd.startswith("api "):
                echo(f">> {cmd} {app} {arg}".rstrip())
            if cmd == "connect":
                sock.sendall(_block(channel)[:-1] + _block(
                    [("Content-Type", "command/reply"), ("Reply-Text", "+OK\n"),
                     ("Socket-Mode", "async"), ("Control", "full")]))
            elif cmd == "myevents":
                sock.sendall(_reply("+OK Events Enabled"))
            elif cmd.startswith("linger"):
                sock.sendall(_reply(f"+OK will linger {cmd.split()[-1]} seconds"))
            elif cmd == "exit":
                sock.sendall(_reply("+OK bye"))
                return result
            elif cmd.startswith("api user_data ") and cmd.endswith(" param vm-password"):
                value = vm_passwords.get(cmd.split()[2], "")
                echo("   (vm-password read)")
                sock.sendall(_api_response(value.encode() if value else b"-ERR no reply\n"))
            elif cmd == "sendmsg":
                sock.sendall(_reply("+OK"))
                done = [("Event-Name", "CHANNEL_EXECUTE_COMPLETE"), ("Unique-ID", call_uuid),
                        ("Application", app), ("Application-Data", arg),
                        ("Application-UUID", headers.get("Event-UUID", ""))]
                if app == "play_and_get_digits":
                    pin = keyed.pop(0) if keyed else ""
                    echo(f"   caller keys {'*' * len(pin) if pin else '(nothing)'}")
                    if pin:
                        done += [("variable_read_result", "success"),
                                 ("variable_hotdesk_pin", pin)]
                    else:
                        done.append(("variable_read_result", "failure"))
                if app == "set" and arg.startswith("HOTDESK_RESULT="):
                    result = arg.split("=", 1)[1]
                    echo(f"   HOTDESK_RESULT = {result}")
                sock.sendall(_event(done))
                if app == "hangup":
                    sock.sendall(_event([("Event-Name", "CHANNEL_HANGUP"),
                                         ("Unique-ID", call_uuid)]))
            else:
                sock.sendall(_reply("-ERR command not found"))
    return result
