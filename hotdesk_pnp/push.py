"""Push a provisioning URL to a phone right after the admin adds or adopts it.

The phone's address comes from its last PnP SUBSCRIBE (core discovery), so the same rules
as the listener's answer apply (``discovery.pnp_decision``). The NOTIFY is
sent out of dialog from a fresh socket and retransmitted until the phone answers or
``[pnp] notify_timeout_seconds`` pass; the result is a sentence for the admin.
"""

from __future__ import annotations

import logging
import secrets
import socket

from hotdesk.mac import format_mac
from hotdesk.provisioning.discovery import pnp_decision, pnp_networks
from hotdesk.provisioning.render import device_url, split_hostport
from hotdesk.settings import Config
from hotdesk.store.models import Device, DiscoveredPhone
from hotdesk_pnp.listener import local_address_towards
from hotdesk_pnp.sip import build_notify, new_tag
from hotdesk_pnp.transaction import retransmit_delays, send_and_wait

log = logging.getLogger(__name__)


def push_succeeded(result: str) -> bool:
    """True for the result sentence of a NOTIFY the phone accepted."""
    return result.startswith("sent to ") and "," not in result


def _event_for(row: DiscoveredPhone) -> str:
    params = [("vendor", row.vendor), ("model", row.model), ("version", row.firmware)]
    quoted = "".join(f';{k}="{v.replace(chr(34), "")}"' for k, v in params if v)
    return f'ua-profile;profile-type="device"{quoted}'


def push_provisioning_url(config: Config, device: Device,
                          timeout: float | None = None) -> str:
    """Send ``device`` its provisioning URL now; say what happened in one sentence."""
    row = DiscoveredPhone.get_or_none(DiscoveredPhone.mac == device.mac)
    if row is None or not row.address:
        return "phone not yet seen"
    host, port = split_hostport(row.address)
    # The recorded address came from a SUBSCRIBE anyone could have sent with this MAC:
    # the same rules as the listener's answer decide whether the URL may go there.
    decision = pnp_decision(device, host, pnp_networks(config.pnp.allow_networks))
    if not decision.give_url:
        log.info("PnP push to %s at %s not sent: %s", device.mac, row.address, decision.reason)
        return f"not sent: {decision.reason}"
    dest = (host, port)
    timeout = config.pnp.notify_timeout_seconds if timeout is None else timeout
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind((config.pnp.interface or ("::" if family == socket.AF_INET6 else "0.0.0.0"),
                   0))
        local = local_address_towards(dest, sock.getsockname()[:2])
        mac_uri = f"sip:MAC%3a{device.mac}@{host}"
        local_host = f"[{local[0]}]" if ":" in local[0] else local[0]
        notify = build_notify(
            request_uri=f"sip:{host}:{port}" if family == socket.AF_INET
            else f"sip:[{host}]:{port}",
            local=local, from_=f"<sip:hotdesk@{local_host}>;tag={new_tag()}",
            to=f"<{mac_uri}>", call_id=f"{secrets.token_hex(12)}@hotdesk", cseq=1,
            event=_event_for(row), url=device_url(config, device))
        delays = retransmit_delays(config.pnp.t1_ms / 1000.0, timeout)
        try:
            answer, sent = send_and_wait(sock, notify, dest, delays)
        except OSError as exc:
            log.warning("PnP push to %s at %s failed: %s", device.mac, row.address, exc)
            return f"could not send to {row.address}: {exc.strerror or exc}"
    finally:
        sock.close()
    where = f"{host}:{port}" if family == socket.AF_INET else f"[{host}]:{port}"
    if answer is None:
        log.info("PnP push to %s at %s: no answer after %d NOTIFYs", device.mac, where, sent)
        return (f"sent to {where}, no answer; the phone gets its URL at its next PnP "
                "SUBSCRIBE (power it off and on)")
    if answer.status < 300:
        log.info("PnP push to %s at %s accepted", device.mac, where)
        return f"sent to {where}"
    reason = "".join(ch for ch in answer.reason if ch.isprintable())[:60]
    return f"sent to {where}, phone {format_mac(device.mac)} answered {answer.status} {reason}"
