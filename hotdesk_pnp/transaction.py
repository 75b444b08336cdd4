"""NOTIFY retransmission over UDP (RFC 3261 17.1.2: timer E doubles from T1, capped at T2).

A PnP phone is a UDP peer: a lost NOTIFY is only recovered by sending it again until
the phone's 200 OK arrives or we give up (timer F).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from hotdesk_pnp.sip import NotifyRequest, SipMessage, SipParseError, is_response_to, parse_message

T2_SECONDS = 4.0


def retransmit_delays(t1: float, timeout: float) -> list[float]:
    """Waits between sends: T1, 2*T1, 4*T1 … (at most T2), until ``timeout`` is used up."""
    delays: list[float] = []
    total, step = 0.0, t1
    while total < timeout and len(delays) < 64:
        wait = min(step, T2_SECONDS, timeout - total)
        delays.append(wait)
        total += wait
        step *= 2
    return delays


def send_and_wait(sock: socket.socket, notify: NotifyRequest, dest: tuple[str, int],
                  delays: list[float],
                  clock: Callable[[], float] = time.monotonic) -> tuple[SipMessage | None, int]:
    """Send ``notify`` (again after each delay) until a final response arrives.

    Returns (final response or None, number of datagrams sent). Anything else read from
    the socket meanwhile is ignored: it cannot be the answer.
    """
    sent = 0
    for wait in delays:
        sock.sendto(notify.data, dest)
        sent += 1
        deadline = clock() + wait
        while (left := deadline - clock()) > 0:
            sock.settimeout(left)
            try:
                data, _ = sock.recvfrom(65535)
            except TimeoutError:
                break
            except OSError:
                # ICMP port unreachable surfaces as ECONNREFUSED on Linux: keep trying.
                continue
            try:
                msg = parse_message(data)
            except SipParseError:
                continue
            if is_response_to(msg, notify) and msg.status >= 200:
                return msg, sent
    return None, sent
