"""The PnP listener: answers ``SUBSCRIBE Event: ua-profile`` from the LAN (multicast and,
optionally, unicast) and sends registered phones their provisioning URL in a NOTIFY.

Per datagram: rate limit by source -> parse -> record the sighting (core) -> 200 OK ->
NOTIFY with the URL if the core allows it (a registered PnP phone that never fetched a
config or was armed, from an allowed network: ``discovery.pnp_decision``),
retransmitted until the phone's 200 OK. Nothing a datagram contains can stop the
listener: every failure is one (rate-limited) log line and the datagram is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from peewee import Database

from hotdesk.ops.supervise import LoopMonitor
from hotdesk.provisioning.discovery import Sighting, pnp_decision, pnp_networks, record_sighting
from hotdesk.provisioning.render import device_url
from hotdesk.provisioning.serving import AuditThrottle
from hotdesk.settings import Config, parse_listen
from hotdesk.store import audit
from hotdesk.store.models import Device
from hotdesk_pnp.ratelimit import LogLimiter, RateLimiter
from hotdesk_pnp.sip import (
    MAX_DATAGRAM,
    NotifyRequest,
    SipMessage,
    SipParseError,
    build_notify,
    build_response,
    contact_uri,
    extract_mac,
    is_response_to,
    new_tag,
    parse_message,
    parse_via,
    response_address,
    split_params,
)
from hotdesk_pnp.transaction import retransmit_delays

log = logging.getLogger(__name__)

# Pending NOTIFY transactions kept at most (each lives at most notify_timeout_seconds).
MAX_PENDING = 256

COEXISTENCE_HINT = (
    "another program (usually the PBX) holds UDP port {port} on the wildcard address "
    "0.0.0.0. Bind the switch to the LAN address instead, so that hotdesk can bind "
    "{group}:{port} next to it. Asterisk (pjsip.conf): in the UDP transport set "
    "'bind=<LAN address>:{port}' (e.g. bind=192.0.2.10:{port}) and restart Asterisk. "
    "FreeSWITCH (sip_profiles/internal.xml): set the profile's 'sip-ip' and 'rtp-ip' params "
    "to the LAN address instead of 0.0.0.0/$${{local_ip_v4}} auto-detection on all "
    "interfaces, then 'sofia profile internal restart'."
)


class PnpBindError(RuntimeError):
    """A listening socket could not be opened; the message says which setting to change."""


def open_multicast_socket(group: str, port: int, interface: str = "") -> socket.socket:
    """Bind the group address itself (not 0.0.0.0) so the switch can keep its own 5060."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((group, port))
        except OSError as exc:
            raise PnpBindError(f"cannot bind PnP multicast {group}:{port}: {exc.strerror}; "
                               + COEXISTENCE_HINT.format(group=group, port=port)) from None
        mreq = struct.pack("4s4s", socket.inet_aton(group),
                           socket.inet_aton(interface or "0.0.0.0"))
        try:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        except OSError as exc:
            raise PnpBindError(
                f"cannot join multicast group {group} on interface "
                f"{interface or 'default'}: {exc.strerror}; set [pnp] interface to the LAN "
                "address of the interface the phones are on (it needs a multicast route)"
            ) from None
        if hasattr(socket, "IP_MULTICAST_ALL"):
            # Only this group's datagrams, not those of every group joined on the host.
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_ALL, 0)
        sock.setblocking(False)
        return sock
    except BaseException:
        sock.close()
        raise


def open_unicast_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        hint = COEXISTENCE_HINT.format(group=host, port=port) if port == 5060 else ""
        raise PnpBindError(f"cannot bind PnP unicast listener {host}:{port}: "
                           f"{exc.strerror}. {hint}".strip()) from None
    sock.setblocking(False)
    return sock


def local_address_towards(dest: tuple[str, int], bound: tuple[str, int]) -> tuple[str, int]:
    """Our address as the phone sees it: the bound one, or the route's source address."""
    host, port = bound[0], bound[1]
    if host not in ("0.0.0.0", "::", ""):
        return host, port
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(dest)  # no packet is sent: this only asks the routing table
        return probe.getsockname()[0], port
    except OSError:
        return "127.0.0.1", port
    finally:
        probe.close()


@dataclass
class _Pending:
    notify: NotifyRequest
    dest: tuple[str, int]
    mac: str
    delays: list[float]
    sent: int = 0
    handle: asyncio.TimerHandle | None = None


@dataclass
class PnpStats:
    """Counters for logs, tests and benchmarks."""

    received: int = 0
    rate_limited: int = 0
    malformed: int = 0
    subscribes: int = 0
    unknown: int = 0
    withheld: int = 0
    notifies_sent: int = 0
    notifies_answered: int = 0
    notifies_given_up: int = 0
    errors: int = 0
    answered_macs: list[str] = field(default_factory=list)


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, listener: PnpListener, name: str) -> None:
        self.listener = listener
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        try:
            self.listener.handle(data, (addr[0], addr[1]), self)
        except Exception:  # the listener must outlive any datagram
            self.listener.stats.errors += 1
            log.exception("PnP: unexpected error handling a datagram from %s:%s", *addr[:2])

    def error_received(self, exc: Exception) -> None:
        log.debug("PnP %s socket: %s", self.name, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.listener.closing:
            self.listener.lost(f"{self.name} socket closed" + (f": {exc}" if exc else ""))

    def local(self) -> tuple[str, int]:
        assert self.transport is not None
        name = self.transport.get_extra_info("sockname")
        return name[0], name[1]

    def send(self, data: bytes, dest: tuple[str, int]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, dest)


class PnpListener:
    """One per process. ``start()`` opens the sockets, ``close()`` releases them."""

    def __init__(self, config: Config, db: Database,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.db = db
        pnp = config.pnp
        self.limiter = RateLimiter(pnp.rate_limit, pnp.rate_window_seconds, clock)
        self.log_limiter = LogLimiter(pnp.rate_window_seconds, clock)
        self.delays = retransmit_delays(pnp.t1_ms / 1000.0, pnp.notify_timeout_seconds)
        self.stats = PnpStats()
        self.networks = pnp_networks(pnp.allow_networks)
        self.audit_throttle = AuditThrottle()
        self.pending: dict[tuple[str, int], _Pending] = {}
        self.endpoints: list[_Endpoint] = []
        self.unicast: _Endpoint | None = None
        self.reply: _Endpoint | None = None
        self.multicast: _Endpoint | None = None
        self.closing = False
        # Set with the reason when a socket goes away while the listener should run.
        self.broken: asyncio.Future[str] | None = None

    def lost(self, reason: str) -> None:
        if self.broken is not None and not self.broken.done():
            self.broken.set_result(reason)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.broken = loop.create_future()
        pnp = self.config.pnp
        try:
            if pnp.listen:
                host, port = parse_listen(pnp.listen)
                self.unicast = await self._open(loop, open_unicast_socket(host, port), "unicast")
            if pnp.multicast:
                msock = open_multicast_socket(pnp.multicast_group, pnp.multicast_port,
                                              pnp.interface)
                self.multicast = await self._open(loop, msock, "multicast")
                # Answers to multicast go out from an ordinary unicast socket on the LAN.
                rsock = open_unicast_socket(pnp.interface or "0.0.0.0", 0)
                self.reply = await self._open(loop, rsock, "reply")
        except BaseException:
            self.close()
            raise
        for ep in self.endpoints:
            log.info("PnP listening (%s) on %s:%s", ep.name, *ep.local())

    async def _open(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                    name: str) -> _Endpoint:
        _, proto = await loop.create_datagram_endpoint(lambda: _Endpoint(self, name), sock=sock)
        self.endpoints.append(proto)
        return proto

    def close(self) -> None:
        self.closing = True
        for pending in self.pending.values():
            if pending.handle:
                pending.handle.cancel()
        self.pending.clear()
        for ep in self.endpoints:
            if ep.transport is not None:
                ep.transport.close()
        self.endpoints.clear()

    # -- one datagram ------------------------------------------------------------------

    def handle(self, data: bytes, source: tuple[str, int], endpoint: _Endpoint) -> None:
        self.stats.received += 1
        if not self.limiter.allow(source[0]):
            self.stats.rate_limited += 1
            self._log_once(source, "rate", "PnP: more than %d datagrams in %ss from %s, "
                           "dropping", self.config.pnp.rate_limit,
                           self.config.pnp.rate_window_seconds, source[0])
            return
        if len(data) > MAX_DATAGRAM:
            self.stats.malformed += 1
            self._log_once(source, "bad", "PnP: dropped oversized datagram (%d bytes) from "
                           "%s:%s", len(data), *source)
            return
        try:
            msg = parse_message(data)
        except SipParseError as exc:
            self.stats.malformed += 1
            self._log_once(source, "bad", "PnP: dropped malformed datagram from %s:%s: %s",
                           source[0], source[1], exc)
            return
        if not msg.is_request:
            self._on_response(msg)
            return
        if msg.method != "SUBSCRIBE":
            log.debug("PnP: ignoring %s from %s:%s", msg.method, *source)
            return
        self._on_subscribe(msg, source, endpoint)

    def _log_once(self, source: tuple[str, int], kind: str, fmt: str, *args: object) -> None:
        show, suppressed = self.log_limiter.should_log(f"{kind}:{source[0]}")
        if show:
            if suppressed:
                fmt += " (%d similar lines suppressed)"
                args = (*args, suppressed)
            log.warning(fmt, *args)

    def _on_subscribe(self, msg: SipMessage, source: tuple[str, int],
                      endpoint: _Endpoint) -> None:
        package, params = split_params(msg.get("Event"))
        if package.lower() != "ua-profile":
            log.debug("PnP: SUBSCRIBE for event %r from %s:%s ignored", package[:40], *source)
            return
        try:
            via = parse_via(msg.get("Via"))
        except SipParseError as exc:
            self.stats.malformed += 1
            self._log_once(source, "bad", "PnP: dropped SUBSCRIBE from %s:%s: %s",
                           source[0], source[1], exc)
            return
        mac = extract_mac(msg)
        if mac is None:
            self.stats.malformed += 1
            self._log_once(source, "bad", "PnP: SUBSCRIBE from %s:%s carries no MAC address",
                           *source)
            return
        self.stats.subscribes += 1
        dest = response_address(via, source)
        out = endpoint if endpoint is self.unicast else (self.reply or endpoint)
        sighting = Sighting(mac=mac, vendor=params.get("vendor", ""),
                            model=params.get("model", ""),
                            firmware=params.get("version", params.get("firmware", "")),
                            address=f"{dest[0]}:{dest[1]}")
        url = ""
        try:
            _, known = record_sighting(self.db, sighting)
            decision = pnp_decision(known, source[0], self.networks)
            device = known if decision.give_url else None
            if device is not None:
                url = device_url(self.config, device)
            elif known is not None:
                self._withheld(known, source, decision.reason)
        except Exception as exc:  # a locked or unreachable database: answer, send no URL
            self.stats.errors += 1
            log.error("PnP: could not record phone %s (%s); answered without a URL", mac, exc)
            device = known = None
        to_tag = new_tag()
        local = local_address_towards(dest, out.local())
        host = f"[{local[0]}]" if ":" in local[0] else local[0]
        ok = build_response(msg, 200, "OK", to_tag, received=f"{source[0]}:{source[1]}",
                            extra=[("Contact", f"<sip:{host}:{local[1]}>"), ("Expires", "0")])
        out.send(ok, dest)
        if known is not None and device is None:
            return
        if device is None:
            self.stats.unknown += 1
            log.info("PnP: unknown phone %s (%s %s %s) at %s:%s recorded for adoption",
                     mac, sighting.vendor or "?", sighting.model or "?",
                     sighting.firmware or "?", *dest)
            return
        to = msg.get("To")
        from_ = to if ";tag=" in to.lower() else f"{to};tag={to_tag}"
        cseq, _ = msg.cseq()
        notify = build_notify(request_uri=contact_uri(msg) or f"sip:{host_of(dest)}",
                              local=local, from_=from_, to=msg.get("From"),
                              call_id=msg.get("Call-ID"), cseq=cseq, event=msg.get("Event"),
                              url=url)
        self._start_notify(notify, dest, mac, out)
        log.info("PnP: phone %s at %s:%s sent its provisioning URL", mac, *dest)

    def _withheld(self, device: Device, source: tuple[str, int], reason: str) -> None:
        """A registered phone's request answered without its URL: logged and audited
        (at most one row per source a minute, 60 a minute in all)."""
        self.stats.withheld += 1
        self._log_once(source, "withheld", "PnP: phone %s at %s:%s not sent its URL: %s",
                       device.mac, source[0], source[1], reason)
        suppressed = self.audit_throttle.admit(source[0])
        if suppressed is not None:
            audit.record("pnp_url_withheld", tenant=device.tenant_id,
                         actor=f"phone:{device.mac}", device=device, reason=reason,
                         address=f"{source[0]}:{source[1]}", suppressed=suppressed)

    # -- NOTIFY transactions -------------------------------------------------------------

    def _start_notify(self, notify: NotifyRequest, dest: tuple[str, int], mac: str,
                      out: _Endpoint) -> None:
        key = (notify.call_id, notify.cseq)
        old = self.pending.pop(key, None)
        if old and old.handle:
            old.handle.cancel()
        while len(self.pending) >= MAX_PENDING:
            _, victim = self.pending.popitem()
            if victim.handle:
                victim.handle.cancel()
        pending = _Pending(notify, dest, mac, list(self.delays))
        self.pending[key] = pending
        self._transmit(key, pending, out)

    def _transmit(self, key: tuple[str, int], pending: _Pending, out: _Endpoint) -> None:
        if self.pending.get(key) is not pending:
            return
        if pending.sent >= len(pending.delays):
            self.pending.pop(key, None)
            self.stats.notifies_given_up += 1
            log.warning("PnP: phone %s at %s:%s did not answer the NOTIFY (%d sent); it gets "
                        "the URL again at its next SUBSCRIBE", pending.mac, *pending.dest,
                        pending.sent)
            return
        out.send(pending.notify.data, pending.dest)
        self.stats.notifies_sent += 1
        wait = pending.delays[pending.sent]
        pending.sent += 1
        loop = asyncio.get_running_loop()
        pending.handle = loop.call_later(wait, self._transmit, key, pending, out)

    def _on_response(self, msg: SipMessage) -> None:
        try:
            number, _ = msg.cseq()
        except ValueError:
            return
        key = (msg.get("Call-ID"), number)
        pending = self.pending.get(key)
        if pending is None or not is_response_to(msg, pending.notify) or msg.status < 200:
            return
        self.pending.pop(key, None)
        if pending.handle:
            pending.handle.cancel()
        if msg.status < 300:
            self.stats.notifies_answered += 1
            self.stats.answered_macs.append(pending.mac)
            log.info("PnP: phone %s accepted its provisioning URL", pending.mac)
        else:
            log.warning("PnP: phone %s answered the NOTIFY with %d %s", pending.mac,
                        msg.status, msg.reason[:60])


def host_of(dest: tuple[str, int]) -> str:
    host = f"[{dest[0]}]" if ":" in dest[0] else dest[0]
    return f"{host}:{dest[1]}"


async def serve(config: Config, db: Database, stop: asyncio.Event | None = None,
                monitor: LoopMonitor | None = None,
                on_started: Callable[[], None] = lambda: None) -> None:
    """Run the listener until ``stop`` is set (or forever), supervised.

    The first start's errors propagate (a wrong address or interface is a setting to
    fix). Later, a socket that goes away (the interface went down) or a restart that
    fails is logged, shown in the ``pnp`` heartbeat and retried with backoff.
    """
    stop = stop or asyncio.Event()
    monitor = monitor or LoopMonitor("pnp", node=config.metrics.node)
    first = True
    while not stop.is_set():
        listener = PnpListener(config, db)
        try:
            await listener.start()
            if first:
                on_started()
            first = False
            reason = await _run_until_broken(listener, stop, monitor)
            if reason is None:
                return
            raise ConnectionError(reason)
        except (PnpBindError, OSError) as exc:
            if first:
                raise
            delay = monitor.failed(exc)
        finally:
            listener.close()
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            pass


async def _run_until_broken(listener: PnpListener, stop: asyncio.Event,
                            monitor: LoopMonitor) -> str | None:
    """Beat while the sockets stay open; the reason they broke, or None on ``stop``."""
    assert listener.broken is not None
    stopped = asyncio.ensure_future(stop.wait())
    try:
        while True:
            monitor.beat()
            done, _ = await asyncio.wait({stopped, listener.broken},
                                         timeout=monitor.writer.interval / 2,
                                         return_when=asyncio.FIRST_COMPLETED)
            if listener.broken in done:
                return listener.broken.result()
            if stopped in done:
                return None
    finally:
        stopped.cancel()
