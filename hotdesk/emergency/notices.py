"""On-site notification of an emergency call the switch reported (Kari's Law).

The switch adapters watch their switch's events and hand a :class:`SeenCall` to
:func:`handle`; the call itself has already gone out through the switch's dialplan and
never waits for any of this. Who called and from where is looked up in hotdesk's
database, each configured point (webhook, e-mail) is told from a thread of its own,
the audit log keeps the call, and the web admin's dashboard shows it as a banner.
"""

from __future__ import annotations

import json
import logging
import smtplib
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

from peewee import IntegrityError

from hotdesk.emergency import locations
from hotdesk.emergency.models import EmergencyCallSeen
from hotdesk.settings import EmergencyConfig
from hotdesk.store import audit
from hotdesk.store.db import current_database
from hotdesk.store.models import AuditEvent, Device, Tenant, User, utcnow
from hotdesk.switch.emergency import desk_of, entry_for

log = logging.getLogger(__name__)

ACTION = "emergency_call"


@dataclass(frozen=True)
class SeenCall:
    """What a switch event says about a call to an emergency number."""

    switch: str
    call_id: str
    endpoint: str  # the account the phone is registered as
    number: str  # the emergency number dialed
    domain: str = ""  # SIP domain (FreeSWITCH), "" = default tenant
    caller_id: str = ""  # the caller ID number the switch had for the caller


@dataclass(frozen=True)
class Notice:
    """The notice each point gets: who, from which desk and location, when."""

    at: str  # ISO 8601 UTC
    number: str
    switch: str
    call_id: str
    endpoint: str
    extension: str
    user: str
    desk: str
    desk_mac: str
    callback: str
    location: str

    def subject(self) -> str:
        who = f"{self.user} ({self.extension})" if self.user else self.extension
        return f"EMERGENCY CALL to {self.number} from {who} at {self.desk or 'unknown desk'}"

    def body(self) -> str:
        return "\n".join([
            self.subject(), "",
            f"Time (UTC):      {self.at}",
            f"Caller:          {self.user or '-'} (extension {self.extension or '-'})",
            f"Callback number: {self.callback or '-'}",
            f"Desk:            {self.desk or '-'} {self.desk_mac}".rstrip(),
            f"Location:        {self.location or 'unknown'}",
            f"Switch call id:  {self.call_id} ({self.switch})", ""])


def _tenant(domain: str) -> Tenant | None:
    if domain:
        tenant = Tenant.get_or_none(Tenant.sip_domain == domain)
        if tenant is not None:
            return tenant
    return Tenant.get_or_none(Tenant.is_default == True)  # noqa: E712


def describe(call: SeenCall, now: datetime | None = None) -> Notice:
    """The notice for a call, from what hotdesk knows about the calling account now."""
    at = (now or utcnow()).isoformat(timespec="seconds") + "Z"
    tenant = _tenant(call.domain)
    device: Device | None = desk_of(tenant.id, call.endpoint) if tenant else None
    user = (User.get_or_none((User.tenant == tenant.id) & (User.sip_username == call.endpoint))
            if tenant else None)
    location = locations.effective(device) if device else None
    if location is None and tenant is not None:
        location = locations.tenant_location(tenant.id)
    entry = entry_for(tenant.id, call.endpoint) if tenant else None
    extension = user.extension if user else (device.idle_extension if device else call.endpoint)
    return Notice(at=at, number=call.number, switch=call.switch, call_id=call.call_id,
                  endpoint=call.endpoint, extension=extension,
                  user=user.display_name if user else "",
                  desk=(device.display_name or device.idle_extension) if device else "",
                  desk_mac=device.mac if device else "",
                  callback=(entry.callback if entry and entry.callback else
                            (location.callback if location else "")) or call.caller_id,
                  location=location.describe() if location else "")


def record(notice: Notice, tenant_id: int | None) -> None:
    """The audit row every emergency call leaves (also what the dashboard banner shows)."""
    device = Device.get_or_none(Device.mac == notice.desk_mac) if notice.desk_mac else None
    with current_database().atomic():
        audit.record(ACTION, tenant=tenant_id, actor=f"caller:{notice.extension}",
                     device=device, call_id=notice.call_id, notice=asdict(notice))


def recent(minutes: int, tenant_ids: list[int] | None = None) -> list[dict[str, str]]:
    """Emergency calls of the last ``minutes``, newest first (the dashboard banner);
    ``tenant_ids`` None = every tenant's."""
    since = utcnow() - timedelta(minutes=minutes)
    query = (AuditEvent.select().where((AuditEvent.action == ACTION) & (AuditEvent.at >= since))
             .order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(20))
    if tenant_ids is not None:
        query = query.where(AuditEvent.tenant.in_(tenant_ids))
    return [{"id": str(row.id), **json.loads(row.detail or "{}").get("notice", {})}
            for row in query]


# -- the points ----------------------------------------------------------------------

def post_webhook(config: EmergencyConfig, notice: Notice) -> None:
    body = json.dumps({"event": ACTION, **asdict(notice)}).encode()
    request = urllib.request.Request(config.webhook_url, data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "User-Agent": "hotdesk"})
    with urllib.request.urlopen(request, timeout=config.webhook_timeout_seconds) as reply:
        reply.read()


def send_mail(config: EmergencyConfig, notice: Notice) -> None:
    message = EmailMessage()
    message["Subject"] = notice.subject()
    message["From"] = config.mail_from
    message["To"] = ", ".join(a.strip() for a in config.mail_to.split(",") if a.strip())
    message["X-Priority"] = "1"
    message.set_content(notice.body())
    with smtplib.SMTP(config.smtp_host, config.smtp_port,
                      timeout=config.webhook_timeout_seconds) as smtp:
        if config.smtp_starttls:
            smtp.starttls()
        if config.smtp_username:
            smtp.login(config.smtp_username, config.smtp_password)
        smtp.send_message(message)


Point = Callable[[EmergencyConfig, Notice], None]


def points(config: EmergencyConfig) -> dict[str, Point]:
    """The configured notification points by name."""
    chosen: dict[str, Point] = {}
    if config.webhook_url:
        chosen["webhook"] = post_webhook
    if config.mail_to and config.smtp_host:
        chosen["e-mail"] = send_mail
    return chosen


def _deliver(name: str, point: Point, config: EmergencyConfig, notice: Notice) -> None:
    try:
        point(config, notice)
        log.info("emergency call %s: %s notified", notice.call_id, name)
    except Exception as exc:  # noqa: BLE001 - one failing point must not stop the others
        log.error("emergency call %s: could not notify by %s: %s", notice.call_id, name, exc)


def handle(call: SeenCall, config: EmergencyConfig) -> list[threading.Thread]:
    """Notify every point at once (one thread each), then keep the call in the audit.
    Never raises: it runs off a switch's event stream, which must go on."""
    try:
        return _handle(call, config)
    except Exception:  # noqa: BLE001 - logged with the call; the watch goes on
        log.exception("emergency call %s from %s to %s: notifying failed", call.call_id,
                      call.endpoint, call.number)
        return []


def first_sighting(call: SeenCall) -> bool:
    """True for the one process that sees this call first (the others skip it)."""
    try:
        with current_database().atomic():
            EmergencyCallSeen.create(key=f"{call.switch}:{call.call_id}"[:255])
    except IntegrityError:
        return False
    return True


def _handle(call: SeenCall, config: EmergencyConfig) -> list[threading.Thread]:
    if not first_sighting(call):
        log.info("emergency call %s: another hotdesk process notifies", call.call_id)
        return []
    notice = describe(call)
    log.warning("%s; callback %s; location: %s", notice.subject(), notice.callback or "-",
                notice.location or "unknown")
    threads = [threading.Thread(target=_deliver, args=(name, point, config, notice),
                                name=f"emergency-{name}", daemon=True)
               for name, point in points(config).items()]
    for thread in threads:
        thread.start()
    tenant = _tenant(call.domain)
    record(notice, tenant.id if tenant else None)
    return threads


def numbers(config: EmergencyConfig) -> set[str]:
    return {n.strip() for n in config.numbers.split(",") if n.strip()}
