"""Helpers for the end-to-end tests against a real switch: a SIPp phone and a real
``hotdesk agi`` / ``hotdesk esl`` process on a throw-away database.

The phone is SIPp on one local UDP port for its whole life: it registers, calls from that
port (the switch reports it as the phone's source address, which hotdesk uses to address
the check-sync NOTIFY) and then answers the NOTIFY on the same port. Every SIPp run and
every wait is bounded.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from hotdesk.runtime import Runtime, start
from hotdesk.settings import Config, DatabaseConfig
from hotdesk.store.models import Device, LoginAttempt, OutboxNotify, Session
from hotdesk.switch import registrations as regs

SIPP_DIR = Path(__file__).parent / "sipp"
EVENT = "check-sync;reboot=false"
PIN = "1234"
MAC = "001565e2e001"  # as hotdesk stores it (hotdesk.mac.normalise_mac)
# Where SIPp's package keeps its RFC 2833 DTMF captures (Debian sip-tester).
DTMF_PCAP_DIR = Path(os.environ.get("HOTDESK_TEST_SIPP_PCAP_DIR", "/usr/share/sip-tester"))
SIPP_TIMEOUT_S = 40


def free_udp_port(even: bool = False) -> int:
    """A free UDP port on 127.0.0.1 (even, with the next one free too, for RTP/RTCP)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not even:
            return port
        port -= port % 2
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, \
                    socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no free even UDP port pair on 127.0.0.1")


def split_credentials(value: str) -> tuple[str, str]:
    """``name:password`` from an env var."""
    name, _, password = value.partition(":")
    return name, password


@dataclass
class SippRun:
    returncode: int
    stderr: str  # SIPp's errors, e.g. the message that broke the scenario
    stdout: str  # the statistics screen
    trace: str  # the -trace_msg message log: every datagram sent and received


@dataclass
class Phone:
    """One SIPp phone on one local port. ``switch`` is the switch's SIP host:port."""

    switch: str
    domain: str
    port: int
    log_dir: Path

    def run(self, name: str, scenario: Path, keys: Mapping[str, str], *extra: str,
            timeout_s: int = SIPP_TIMEOUT_S) -> SippRun:
        """Run one SIPp scenario to its end (one call), answering stray NOTIFYs (-aa)."""
        trace = self.log_dir / f"{name}.trace.log"
        args = ["sipp", self.switch, "-sf", str(scenario), "-i", "127.0.0.1",
                "-p", str(self.port), "-m", "1", "-nostdin", "-aa",
                "-timeout", f"{timeout_s}s", "-timeout_error",
                "-trace_msg", "-message_file", str(trace), "-key", "domain", self.domain]
        for key, value in keys.items():
            args += ["-key", key, value]
        proc = subprocess.run([*args, *extra], capture_output=True, text=True,
                              cwd=self.log_dir, timeout=timeout_s + 20)
        text = trace.read_text(errors="replace") if trace.exists() else ""
        return SippRun(proc.returncode, proc.stderr, proc.stdout, text)

    def register(self, user: str, password: str, expires: int = 120) -> SippRun:
        return self.run(f"register-{user}-{expires}", SIPP_DIR / "phone_register.xml",
                        {"user": user, "expires": str(expires)}, "-au", user, "-ap", password)

    def register_wrong_password(self, user: str, password: str) -> SippRun:
        return self.run(f"register-badpw-{user}", SIPP_DIR / "phone_register_badpw.xml",
                        {"user": user, "expires": "120"}, "-au", user, "-ap", password)

    def call(self, name: str, user: str, password: str, dialed: str, digits: str = "",
             dtmf: str = "info", wait_notify: bool = True) -> SippRun:
        """Call ``dialed`` as ``user``; key ``digits`` (exactly 5, e.g. ``1234#``) with SIP
        INFO or RFC 2833, wait for the switch's BYE, then (``wait_notify``) stay on the
        port until a NOTIFY has come. One SIPp process throughout: a phone port that is
        closed even briefly makes the switch give up on the NOTIFY (FreeSWITCH does not
        retransmit after the ICMP port-unreachable)."""
        keys = {"user": user}
        extra = ["-au", user, "-ap", password, "-s", dialed,
                 "-mi", "127.0.0.1", "-mp", str(free_udp_port(even=True)),
                 "-oocsf", str(SIPP_DIR / "phone_notify_ooc.xml")]
        if not wait_notify:
            extra += ["-set", "no_wait", "1"]
        if not digits:
            scenario = SIPP_DIR / "phone_call_nodtmf.xml"
        elif dtmf == "info":
            scenario = SIPP_DIR / "phone_call_info.xml"
            keys.update({f"d{i}": d for i, d in enumerate(digits_of(digits), 1)})
        elif dtmf == "rfc2833":
            scenario = rfc2833_scenario(digits, self.log_dir / f"{name}.xml")
        else:
            raise ValueError(f"DTMF mode {dtmf!r}: use info or rfc2833")
        return self.run(name, scenario, keys, *extra)


def digits_of(digits: str) -> list[str]:
    if len(digits) != 5:
        raise ValueError("the call scenarios key exactly 5 digits, e.g. 1234#")
    return list(digits)


def rfc2833_scenario(digits: str, out: Path) -> Path:
    """SIPp does not expand keywords in play_pcap_audio file names: write a copy of the
    RFC 2833 scenario with the capture of each digit filled in."""
    text = (SIPP_DIR / "phone_call_rfc2833.xml").read_text()
    for i, digit in enumerate(digits_of(digits), 1):
        name = {"#": "pound", "*": "star"}.get(digit, digit)
        text = text.replace(f"@d{i}@", str(DTMF_PCAP_DIR / f"dtmf_2833_{name}.pcap"))
    out.write_text(text)
    return out


def sip_messages(trace: str) -> list[str]:
    """The SIP messages a SIPp -trace_msg log says were received."""
    parts = re.split(r"^-{10,}.*$", trace, flags=re.M)
    out = []
    for part in parts:
        head, _, body = part.partition("\n\n")
        if "message received" in head:
            out.append(body.lstrip("\n"))
    return out


def notifies_to(trace: str, port: int) -> list[str]:
    """Received check-sync NOTIFYs whose request-URI is a contact at 127.0.0.1:``port``."""
    request = re.compile(rf"^NOTIFY sip:[^@ ]+@127\.0\.0\.1:{port}(;[^ ]*)? SIP/2\.0\r?$",
                         re.M)
    return [m for m in sip_messages(trace)
            if request.match(m) and re.search(rf"^Event: {re.escape(EVENT)}\r?$", m, re.M)]


def clean_env(**settings: str) -> dict[str, str]:
    """The test's environment without any HOTDESK_* setting of the shell it runs in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTDESK_")}
    env.update(settings)
    return env


def hotdesk(env: Mapping[str, str], *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "hotdesk_cli", *args], env=dict(env),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"hotdesk {' '.join(args[:2])}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def prepare_database(env: Mapping[str, str], phone: tuple[str, str],
                     user: tuple[str, str]) -> None:
    """Schema, one hot-desk user and one phone whose idle extension is the lab's phone
    endpoint, all through the ``hotdesk`` command as an admin would. The user gets no PIN
    in hotdesk: the PIN they key is their voicemail PIN on the switch (1234 in the lab)."""
    hotdesk(env, "db", "upgrade")
    # Nothing of the user's is typed twice: their SIP account and voicemail PIN are the
    # switch's ([switch] credentials = switch, [policy] pin_source = switch).
    hotdesk(env, "user", "add", "--extension", user[0], "--name", f"User {user[0]}",
            "--hotdesk")
    hotdesk(env, "device", "add", "--mac", MAC, "--vendor", "yealink", "--model", "T46S",
            "--extension", phone[0], "--sip-password", phone[1], "--name", "E2E desk")


def wait_listening(proc: subprocess.Popen, address: str, log: Path,
                   timeout_s: float = 20.0) -> None:
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=0.5).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"hotdesk exited ({proc.returncode}) before listening on "
                                     f"{address}:\n{log.read_text()[-3000:]}") from None
            if time.monotonic() > deadline:
                raise AssertionError(f"hotdesk did not listen on {address}") from None
            time.sleep(0.1)


def address_free(address: str) -> bool:
    host, _, port = address.rpartition(":")
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        except OSError:
            return False
    return True


@dataclass
class HotdeskProcess:
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def hotdesk_process(command: str, env: Mapping[str, str], listen: str,
                    log_dir: Path) -> Iterator[HotdeskProcess]:
    """``hotdesk agi`` or ``hotdesk esl`` as its own process, stopped with SIGTERM."""
    assert address_free(listen), (
        f"{listen} is in use: stop whatever listens there (another hotdesk?) so the switch's "
        f"dialplan reaches the process under test")
    log_path = log_dir / f"hotdesk-{command}.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "hotdesk_cli", command], env=dict(env),
                                stdout=log_file, stderr=subprocess.STDOUT)
    try:
        wait_listening(proc, listen, log_path)
        yield HotdeskProcess(proc, log_path)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextmanager
def database(url: str) -> Iterator[Runtime]:
    """The test's own view of the database hotdesk writes to."""
    rt = start(Config(database=DatabaseConfig(url=url)))
    try:
        yield rt
    finally:
        rt.db.close()


def sessions(url: str) -> list[tuple[str, str, bool]]:
    """(user extension, device MAC, still active) of every session, oldest first."""
    with database(url):
        return [(s.user.extension, s.device.mac, s.ended_at is None)
                for s in Session.select().order_by(Session.id)]


def switch_hung_up(run: SippRun) -> bool:
    """Did the switch end the call (a BYE reached the phone)?"""
    return any(m.startswith("BYE ") for m in sip_messages(run.trace))


def check_call(run: SippRun, what: str, proc: HotdeskProcess) -> None:
    """The switch ended the call after hotdesk's prompts, and every prompt could play."""
    detail = f"{run.stderr[-800:]}\n--- hotdesk log:\n{proc.log()[-2500:]}"
    assert switch_hung_up(run), f"{what}: the switch never hung up: {detail}"
    assert "playback of" not in proc.log(), f"{what}: a prompt could not play: {detail}"


def login_then_logout(phone: Phone, proc: HotdeskProcess, url: str, idle: tuple[str, str],
                      user: tuple[str, str], dtmf: str) -> None:
    """*70<user> + PIN from the idle phone, then *71 from the phone registered as the user:
    a session that starts and ends, and a check-sync NOTIFY to the phone's contact after
    each call."""
    try:
        reg = phone.register(*idle)
        assert reg.returncode == 0, f"REGISTER {idle[0]} failed: {reg.stderr[-800:]}"
        call = phone.call("login", *idle, f"*70{user[0]}", PIN + "#", dtmf)
        check_call(call, "login", proc)
        assert sessions(url) == [(user[0], MAC, True)], proc.log()[-2500:]
        got = notifies_to(call.trace, phone.port)
        assert got, f"no check-sync NOTIFY reached the phone: {call.stderr[-800:]}"
        assert got[0].startswith(f"NOTIFY sip:{idle[0]}@127.0.0.1:{phone.port}"), got
        assert call.returncode == 0, call.stderr[-800:]

        # Re-provisioned, the phone registers as the user from the same address.
        reg = phone.register(*user)
        assert reg.returncode == 0, f"REGISTER {user[0]} failed: {reg.stderr[-800:]}"
        call = phone.call("logout", *user, "*71")
        check_call(call, "logout", proc)
        assert sessions(url) == [(user[0], MAC, False)], proc.log()[-2500:]
        got = notifies_to(call.trace, phone.port)
        assert got, f"no check-sync NOTIFY after *71: {call.stderr[-800:]}"
        assert got[0].startswith(f"NOTIFY sip:{user[0]}@127.0.0.1:{phone.port}"), got
        assert call.returncode == 0, call.stderr[-800:]
    finally:
        unregister(phone, idle, user)


def wrong_pin_call(phone: Phone, proc: HotdeskProcess, url: str, idle: tuple[str, str],
                   user: tuple[str, str], dtmf: str) -> None:
    """*70<user> with a wrong PIN: the caller is told, no session, nothing re-provisioned."""
    try:
        with database(url):
            queued_before = OutboxNotify.select().count()  # e.g. the phone's own when added
        reg = phone.register(*idle)
        assert reg.returncode == 0, f"REGISTER {idle[0]} failed: {reg.stderr[-800:]}"
        call = phone.call("wrong-pin", *idle, f"*70{user[0]}", "9876#", dtmf,
                          wait_notify=False)
        check_call(call, "wrong PIN", proc)
        assert call.returncode == 0, call.stderr[-800:]
        assert sessions(url) == []
        with database(url):
            # The switch delivered the digits and hotdesk judged them: wrong_pin, not no_pin.
            results = [a.result for a in LoginAttempt.select()]
            queued = OutboxNotify.select().count() - queued_before
        assert results == ["wrong_pin"], (results, proc.log()[-2500:])
        assert queued == 0, "a refused login queued a NOTIFY"
    finally:
        unregister(phone, idle)


def pin_changed_on_the_switch(phone: Phone, proc: HotdeskProcess, url: str,
                              idle: tuple[str, str], user: tuple[str, str], dtmf: str,
                              set_voicemail_pin: Callable[[str], None]) -> None:
    """The voicemail PIN changed on the switch is the PIN at once: the old one is refused
    and the new one logs in, with nothing done in hotdesk in between."""
    new_pin = "4321"
    try:
        set_voicemail_pin(new_pin)
        reg = phone.register(*idle)
        assert reg.returncode == 0, f"REGISTER {idle[0]} failed: {reg.stderr[-800:]}"
        call = phone.call("old-pin", *idle, f"*70{user[0]}", PIN + "#", dtmf,
                          wait_notify=False)
        check_call(call, "old PIN", proc)
        assert sessions(url) == [], proc.log()[-2500:]
        call = phone.call("new-pin", *idle, f"*70{user[0]}", new_pin + "#", dtmf)
        check_call(call, "new PIN", proc)
        assert sessions(url) == [(user[0], MAC, True)], proc.log()[-2500:]
        assert PIN not in proc.log() and new_pin not in proc.log()  # never logged
    finally:
        set_voicemail_pin(PIN)
        unregister(phone, idle, user)


def replace_in_file(path: Path, pattern: str, replacement: str) -> None:
    """Edit one line of a switch config the test was pointed at (restored afterwards)."""
    text = path.read_text()
    new, count = re.subn(pattern, replacement, text, count=1, flags=re.M)
    assert count == 1, f"{pattern!r} not found in {path}"
    path.write_text(new)


def unregister(phone: Phone, *accounts: tuple[str, str]) -> None:
    """Remove the test phone's contacts again (best effort: the test's verdict stands)."""
    for name, password in accounts:
        phone.register(name, password, expires=0)


def registration(url: str, timeout_s: float = 15.0,
                 until: Callable[[regs.RegistrationView], bool] = lambda v: True
                 ) -> regs.RegistrationView:
    """The test phone's registration as hotdesk recorded it, once ``until`` holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        with database(url):
            view = regs.view(Device.get(Device.mac == MAC))
        if until(view) or time.monotonic() > deadline:
            return view
        time.sleep(0.2)


def registrations_observed(phone: Phone, proc: HotdeskProcess, url: str,
                           idle: tuple[str, str], user: tuple[str, str], dtmf: str) -> None:
    """The switch's registrations reach hotdesk: the idle phone registers and hotdesk
    records it (account, address); a wrong password shows "credentials rejected"; after a
    login the phone's registration as the user is the expected one."""
    address = f"127.0.0.1:{phone.port}"
    try:
        reg = phone.register(*idle)
        assert reg.returncode == 0, f"REGISTER {idle[0]} failed: {reg.stderr[-800:]}"
        v = registration(url, until=lambda v: v.state == regs.REGISTERED)
        assert (v.state, v.account, v.address, v.expected) == (
            regs.REGISTERED, idle[0], address, idle[0]), proc.log()[-2500:]

        bad = phone.register_wrong_password(idle[0], "not-the-password")
        assert bad.returncode == 0, f"the wrong password was not refused: {bad.stderr[-800:]}"
        v = registration(url, until=lambda v: v.state == regs.REJECTED)
        assert (v.state, v.label) == (regs.REJECTED, "credentials rejected"), \
            proc.log()[-2500:]
        assert "wrong password" in v.failure_reason

        reg = phone.register(*idle)
        assert reg.returncode == 0, f"REGISTER {idle[0]} failed: {reg.stderr[-800:]}"
        assert registration(url, until=lambda v: v.ok).ok, proc.log()[-2500:]
        call = phone.call("login", *idle, f"*70{user[0]}", PIN + "#", dtmf)
        check_call(call, "login", proc)
        v = registration(url, until=lambda v: v.expected == user[0])
        assert (v.state, v.expected) == (regs.MISMATCH, user[0]), proc.log()[-2500:]

        # Re-provisioned, the phone registers as the user: the expected account.
        unregister(phone, idle)
        reg = phone.register(*user)
        assert reg.returncode == 0, f"REGISTER {user[0]} failed: {reg.stderr[-800:]}"
        v = registration(url, until=lambda v: v.ok)
        assert (v.state, v.account, v.address) == (regs.REGISTERED, user[0], address), \
            proc.log()[-2500:]
    finally:
        unregister(phone, idle, user)
# --- emergency calls ---------------------------------------------------------------------

def stamped(trace: str, direction: str, start: str, holding: str = "") -> float:
    """time.time() of the first message of a SIPp -trace_msg log that was ``direction``
    ("sent" / "received"), starts with ``start`` and holds ``holding``."""
    for stamp, head, body in re.findall(r"^-{10,} (\S+ \S+)\n(.*?)\n\n(.*?)(?=^-{10,}|\Z)",
                                        trace, flags=re.M | re.S):
        if f"message {direction}" in head and body.startswith(start) and holding in body:
            return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()
    raise AssertionError(f"no {direction} {start!r} holding {holding!r} in the trace")


def call_emergency(phone: Phone, user: tuple[str, str], trunk: str,
                   name: str) -> tuple[str, float, float]:
    """Call 911 as ``user`` (the phone hangs up after a second); the INVITE the emergency
    trunk got, when the phone sent its (authenticated) INVITE and when the trunk got it."""
    host, port = trunk.rsplit(":", 1)
    trace = phone.log_dir / f"{name}-trunk.log"
    uas = subprocess.Popen(["sipp", "-sn", "uas", "-i", host, "-p", port, "-m", "1",
                            "-nostdin", "-timeout", "30s", "-trace_msg", "-message_file",
                            str(trace)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           cwd=phone.log_dir)
    try:
        time.sleep(0.5)  # let the UAS bind
        run = phone.run(name, SIPP_DIR / "phone_call_hangup.xml", {"user": user[0]},
                        "-au", user[0], "-ap", user[1], "-s", "911",
                        "-mi", "127.0.0.1", "-mp", str(free_udp_port(even=True)))
        assert run.returncode == 0, f"the 911 call failed: {run.stderr[-800:]}"
        assert uas.wait(20) == 0, uas.stderr.read().decode()[-500:]
    finally:
        if uas.poll() is None:
            uas.kill()
            uas.wait(5)
    text = trace.read_text(errors="replace")
    [invite] = [m for m in sip_messages(text) if m.startswith("INVITE sip:911@")]
    phone_sent = stamped(run.trace, "sent", "INVITE", holding="Authorization:")
    return invite, phone_sent, stamped(text, "received", "INVITE")



LOCATION = ["--country", "US", "--region", "CA", "--city", "Springfield", "--street", "Main St",
            "--number", "1", "--building", "A", "--floor", "3", "--room", "3.01",
            "--callback", "+15550100"]
LOCATION_TEXT = "1 Main St, Springfield, CA, US; building A, floor 3, room 3.01"


@dataclass
class EmergencyResult:
    invites: list[str]  # what the trunk got: hotdesk up, then hotdesk stopped
    notice: dict


def emergency_scenario(command: str, env: dict[str, str], phone: Phone,
                       idle: tuple[str, str], user: tuple[str, str],
                       trunk: str) -> EmergencyResult:
    """The desk gets a location (CLI), ``user`` logs in on it, ``hotdesk <command>``
    writes the switch's entries; 911 from the phone reaches the trunk and the webhook
    within a second; then with hotdesk stopped, 911 still goes out at once."""
    from hotdesk.calls.service import CallContext, SwitchPin
    from hotdesk.store.models import Device
    from hotdesk.switch import emergency
    from tests.emergency_helpers import Webhook

    with socket.socket() as s:  # not the dialplan's AGI/socket port: no call uses it
        s.bind(("127.0.0.1", 0))
        listen = f"127.0.0.1:{s.getsockname()[1]}"
    hook = Webhook()
    env = {**env, f"HOTDESK_{command.upper()}_LISTEN": listen,
           "HOTDESK_EMERGENCY_WEBHOOK_URL": hook.url}
    prepare_database(env, idle, user)
    hotdesk(env, "device", "set-location", MAC, *LOCATION)
    try:
        with hotdesk_process(command, env, listen, phone.log_dir) as proc:
            with database(env["HOTDESK_DATABASE_URL"]) as rt:
                device = Device.get(Device.mac == MAC)
                rt.service.login(device.id, user[0], PIN,
                                 CallContext({"agi": "asterisk"}.get(command, "freeswitch"), "e2e",
                                             idle[0], "", phone.domain),
                                 SwitchPin(PIN))
                deadline = time.monotonic() + 10
                while emergency.pending_count() and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert emergency.pending_count() == 0, proc.log()[-2000:]
            assert phone.register(*user).returncode == 0
            invite, dialed, _ = call_emergency(phone, user, trunk, "emergency-up")
            assert hook.received.wait(5), "no webhook notice: " + proc.log()[-2000:]
            assert hook.times[0] - dialed < 1.0, "the on-site notice took a second or more"
        notice = hook.posts[0]
        assert (notice["extension"], notice["number"], notice["callback"],
                notice["location"]) == (user[0], "911", "+15550100", LOCATION_TEXT), notice
        # hotdesk is stopped now: the switch alone sends the same values, at once.
        invite_down, dialed, reached = call_emergency(phone, user, trunk, "emergency-down")
        assert reached - dialed < 0.5, "the call waited for something with hotdesk down"
        return EmergencyResult([invite, invite_down], notice)
    finally:
        hook.close()
        unregister(phone, user)
