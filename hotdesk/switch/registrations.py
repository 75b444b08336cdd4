"""Registrations observed on the switch: who each phone is registered as, from where, since when.

The switch adapters (``hotdesk_agi.registrations``, ``esl_handlers.registrations``) only
translate their protocol into :class:`ContactSeen`, :class:`ContactGone` and
:class:`AuthRefused`; everything else lives here: which phone a contact belongs to,
batched writes (a registration storm of thousands of phones must not cost one
transaction per event), and the rule an admin reads: the phone is registered as the
account it should be (the logged-in user's, or its idle account), registered as
another account, refused by the switch ("credentials rejected"), or not registered.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from peewee import EXCLUDED, chunked, fn

from hotdesk.store.db import current_database, write_transaction
from hotdesk.store.models import (
    Device,
    Heartbeat,
    Registration,
    RegistrationFailure,
    Session,
    User,
    utcnow,
)

log = logging.getLogger(__name__)

# Heartbeat component of the registration watchers; "up" once a full listing was stored.
COMPONENT = "registrations"

REGISTERED, MISMATCH, REJECTED, UNREGISTERED = (
    "registered", "mismatch", "rejected", "unregistered")
LABELS = {REGISTERED: "registered", MISMATCH: "wrong account",
          REJECTED: "credentials rejected", UNREGISTERED: "not registered"}

FAILURES_KEPT = timedelta(days=7)
STRANGERS_KEPT = timedelta(hours=1)

# Rows per INSERT … ON CONFLICT statement (SQLite allows 32766 bound parameters).
_ROWS_PER_STATEMENT = 500


@dataclass(frozen=True)
class ContactSeen:
    """A contact registered or refreshed (or listed at connect)."""

    account: str
    contact_uri: str
    address: str  # ip:port
    at: datetime
    expires_at: datetime | None = None
    user_agent: str = ""
    domain: str = ""


@dataclass(frozen=True)
class ContactGone:
    """A contact unregistered, expired or was removed."""

    account: str
    contact_uri: str
    at: datetime


@dataclass(frozen=True)
class AuthRefused:
    """The switch refused a REGISTER from ``address`` (wrong password, unknown account)."""

    account: str
    address: str  # ip:port
    reason: str
    at: datetime


@dataclass(frozen=True)
class AuthAccepted:
    """The switch accepted credentials from ``address`` (Asterisk's SuccessfulAuth: it comes
    for every REGISTER, also a refresh that raises no contact event)."""

    account: str
    address: str
    at: datetime


Change = ContactSeen | ContactGone | AuthRefused | AuthAccepted


def host_port(uri: str) -> str:
    """``sip:8001@127.0.0.1:5071;transport=UDP`` -> ``127.0.0.1:5071`` (IPv6 kept in brackets)."""
    rest = uri.strip().strip("<>").split(":", 1)[-1]
    rest = rest.split("@", 1)[-1]
    for stop in (";", ">", "?"):
        rest = rest.split(stop, 1)[0]
    return rest


def ip_of(address: str) -> str:
    """``1.2.3.4:5060`` -> ``1.2.3.4``; ``[::1]:5060`` -> ``::1``."""
    if address.startswith("["):
        return address[1:].split("]", 1)[0]
    return address.rsplit(":", 1)[0] if address.count(":") == 1 else address


# -- which phone a contact belongs to ---------------------------------------------------


class DeviceIndex:
    """Who should be registered where, loaded once per batch (two queries)."""

    def __init__(self) -> None:
        self.idle: dict[str, list[int]] = {}
        self.users: dict[str, list[int]] = {}
        self.by_ip: dict[str, set[int]] = {}
        self.ip: dict[int, str] = {}
        for d in Device.select(Device.id, Device.idle_sip_username, Device.last_address):
            self.idle.setdefault(d.idle_sip_username, []).append(d.id)
            if d.last_address:
                self.ip[d.id] = ip_of(d.last_address)
                self.by_ip.setdefault(self.ip[d.id], set()).add(d.id)
        for device_id, username in (Session.select(Session.device, User.sip_username)
                                    .join(User).where(Session.ended_at.is_null()).tuples()):
            self.users.setdefault(username, []).append(device_id)

    def knows(self, account: str) -> bool:
        return account in self.idle or account in self.users

    def resolve(self, account: str, address: str) -> int | None:
        """The phone registered as ``account`` from ``address``; None when unsure.

        An idle account names its phone. A user's account names the phone the user is
        logged in on, if that phone's known address (from the login call) matches: the
        user's own desk phone, registered as the same account elsewhere, is not it.
        Otherwise the address alone names the phone registered as an account hotdesk
        does not expect there.
        """
        idle = self.idle.get(account, [])
        if len(idle) == 1:
            return idle[0]
        ip = ip_of(address)
        near = self.by_ip.get(ip, set())
        users = [d for d in self.users.get(account, []) if self.ip.get(d, ip) == ip]
        if users:
            return users[0] if len(set(users)) == 1 else None
        return next(iter(near)) if len(near) == 1 else None


# -- writes -----------------------------------------------------------------------------


def _coalesce(changes: Iterable[Change]) -> tuple[dict, dict, dict, dict]:
    """Last word per contact and per refused address wins: a storm collapses to one row each."""
    seen: dict[tuple[str, str], ContactSeen] = {}
    gone: dict[tuple[str, str], ContactGone] = {}
    refused: dict[str, tuple[AuthRefused, int]] = {}
    accepted: dict[str, datetime] = {}
    for change in changes:
        if isinstance(change, AuthRefused):
            _, n = refused.get(change.address, (change, 0))
            refused[change.address] = (change, n + 1)
            continue
        if isinstance(change, AuthAccepted):
            accepted[change.address] = change.at
            refused.pop(change.address, None)  # refused earlier in this batch, then accepted
            continue
        key = (change.account, change.contact_uri)
        if isinstance(change, ContactSeen):
            seen[key] = change
            gone.pop(key, None)
        else:
            gone[key] = change
            seen.pop(key, None)
    return seen, gone, refused, accepted


def apply(changes: Sequence[Change], switch: str, index: DeviceIndex | None = None) -> int:
    """Store a batch of changes in one transaction; returns the rows written."""
    if not changes:
        return 0
    seen, gone, refused, accepted = _coalesce(changes)
    index = index or DeviceIndex()
    for c in seen.values():
        accepted[c.address] = max(c.at, accepted.get(c.address, c.at))
    with write_transaction(current_database()):
        _upsert_seen(list(seen.values()), switch, index)
        _forget_refusals(accepted, switch)
        _delete_gone(list(gone), switch)
        _upsert_refused(list(refused.values()), switch, index)
    return len(seen) + len(gone) + len(refused)


def _upsert_seen(rows: list[ContactSeen], switch: str, index: DeviceIndex) -> None:
    data = [{"switch": switch, "account": c.account, "contact_uri": c.contact_uri,
             "address": c.address, "domain": c.domain, "user_agent": c.user_agent[:255],
             "device": index.resolve(c.account, c.address), "registered_at": c.at,
             "refreshed_at": c.at, "expires_at": c.expires_at} for c in rows]
    for part in chunked(data, _ROWS_PER_STATEMENT):
        # registered_at ("since") is kept on conflict: a refresh is not a new registration.
        (Registration.insert_many(part)
         .on_conflict(conflict_target=[Registration.switch, Registration.account,
                                       Registration.contact_uri],
                      preserve=[Registration.address, Registration.domain,
                                Registration.refreshed_at],
                      # Asterisk's ContactStatus carries no expiry or User-Agent: keep
                      # what the last listing said.
                      update={Registration.device: fn.COALESCE(EXCLUDED.device_id,
                                                               Registration.device),
                              Registration.expires_at: fn.COALESCE(EXCLUDED.expires_at,
                                                                   Registration.expires_at),
                              Registration.user_agent: fn.COALESCE(
                                  fn.NULLIF(EXCLUDED.user_agent, ""), Registration.user_agent)})
         .execute())


def _forget_refusals(accepted: dict[str, datetime], switch: str) -> None:
    """Credentials accepted from an address settle the refusals stored before it.

    Stored ones are older than every event of this batch (events arrive in order), and
    the batch's own refusals are written after this, so one statement per chunk does."""
    if not accepted:
        return
    latest = max(accepted.values())
    for part in chunked(sorted(accepted), _ROWS_PER_STATEMENT):
        (RegistrationFailure.delete()
         .where((RegistrationFailure.switch == switch)
                & RegistrationFailure.address.in_(list(part))
                & (RegistrationFailure.at <= latest)).execute())


def _delete_gone(keys: list[tuple[str, str]], switch: str) -> None:
    by_account: dict[str, list[str]] = {}
    for account, uri in keys:
        by_account.setdefault(account, []).append(uri)
    for account, uris in by_account.items():
        for part in chunked(uris, _ROWS_PER_STATEMENT):
            (Registration.delete()
             .where((Registration.switch == switch) & (Registration.account == account)
                    & Registration.contact_uri.in_(list(part))).execute())


def _upsert_refused(rows: list[tuple[AuthRefused, int]], switch: str,
                    index: DeviceIndex) -> None:
    for refused, n in rows:
        device = index.resolve(refused.account, refused.address)
        (RegistrationFailure.insert(switch=switch, address=refused.address,
                                    account=refused.account, reason=refused.reason[:255],
                                    device=device, at=refused.at, count=n)
         .on_conflict(conflict_target=[RegistrationFailure.switch, RegistrationFailure.address],
                      preserve=[RegistrationFailure.account, RegistrationFailure.reason,
                                RegistrationFailure.device, RegistrationFailure.at],
                      update={RegistrationFailure.count: RegistrationFailure.count + n})
         .execute())
        # A phone of ours is worth a warning; strangers (scanners) are not, per attempt.
        log.log(logging.WARNING if device else logging.DEBUG,
                "switch refused the registration of %r from %s: %s", refused.account,
                refused.address, refused.reason)


def replace_all(contacts: Sequence[ContactSeen], switch: str, started_at: datetime) -> int:
    """A full listing (at connect, or a periodic resync): store it and forget every
    contact of ``switch`` it no longer shows, unless an event refreshed it after
    ``started_at`` (the listing was asked for then, so such an event is newer)."""
    written = apply(list(contacts), switch)
    listed = {(c.account, c.contact_uri) for c in contacts}
    stale = [(r.account, r.contact_uri) for r in Registration.select(
        Registration.account, Registration.contact_uri)
        .where((Registration.switch == switch) & (Registration.refreshed_at < started_at))
        if (r.account, r.contact_uri) not in listed]
    with write_transaction(current_database()):
        if stale:
            _delete_gone(stale, switch)
        # Refusals of no phone of ours (scanners) are kept an hour, the others a week.
        (RegistrationFailure.delete()
         .where((RegistrationFailure.switch == switch)
                & ((RegistrationFailure.at < started_at - FAILURES_KEPT)
                   | (RegistrationFailure.device.is_null()
                      & (RegistrationFailure.at < started_at - STRANGERS_KEPT))))
         .execute())
    return written + len(stale)


# -- what an admin reads ----------------------------------------------------------------


@dataclass(frozen=True)
class RegistrationView:
    """One phone's registration next to the account it should be registered as."""

    expected: str
    state: str  # registered | mismatch | rejected | unregistered
    account: str = ""
    address: str = ""
    since: datetime | None = None
    expires_at: datetime | None = None
    failure_reason: str = ""
    failure_at: datetime | None = None

    @property
    def label(self) -> str:
        return LABELS[self.state]

    @property
    def ok(self) -> bool:
        return self.state == REGISTERED

    def age(self, now: datetime) -> str:
        return ago(now - self.since) if self.since else ""

    def summary(self, now: datetime) -> str:
        """One line for the CLI: ``101 @ 10.0.0.7:5060 for 3m (expects 101)``."""
        if self.state == REJECTED:
            return (f"credentials rejected: {self.failure_reason} "
                    f"({ago(now - self.failure_at) if self.failure_at else '?'} ago; "
                    f"expects {self.expected})")
        if self.state == UNREGISTERED:
            return f"not registered (expects {self.expected})"
        mark = "" if self.ok else "WRONG ACCOUNT "
        return (f"{mark}{self.account} @ {self.address} for {self.age(now)} "
                f"(expects {self.expected})")


def ago(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def expected_accounts(devices: Sequence[Device]) -> dict[int, str]:
    """The account each phone should be registered as: its user's while logged in, else idle."""
    ids = [d.id for d in devices]
    users = {}
    for part in chunked(ids, _ROWS_PER_STATEMENT):
        users.update(dict(Session.select(Session.device, User.sip_username).join(User)
                          .where(Session.device.in_(list(part)) & Session.ended_at.is_null())
                          .tuples()))
    return {d.id: users.get(d.id, d.idle_sip_username) for d in devices}


def views(devices: Sequence[Device], now: datetime | None = None) -> dict[int, RegistrationView]:
    """Every phone's :class:`RegistrationView`, in a few queries whatever the count."""
    now = now or utcnow()
    ids = [d.id for d in devices]
    expected = expected_accounts(devices)
    regs: dict[int, Registration] = {}
    fails: dict[int, RegistrationFailure] = {}
    by_idle = {d.idle_sip_username: d.id for d in devices}
    for part in chunked(devices, _ROWS_PER_STATEMENT):
        # Rows stored before their phone was added belong to no phone yet: an idle
        # account still names its phone.
        idle = [d.idle_sip_username for d in part]
        for r in Registration.select().where(
                Registration.device.in_([d.id for d in part])
                | (Registration.device.is_null() & Registration.account.in_(idle))):
            if r.expires_at is not None and r.expires_at < now:
                continue  # expired: the switch forgot it even if its event never came
            device_id = r.device_id or by_idle[r.account]
            best = regs.get(device_id)
            # The expected account wins over a leftover one; then the newest.
            key = (r.account == expected[device_id], r.refreshed_at)
            if best is None or key > (best.account == expected[device_id], best.refreshed_at):
                regs[device_id] = r
    for part in chunked(ids, _ROWS_PER_STATEMENT):
        for f in RegistrationFailure.select().where(RegistrationFailure.device.in_(list(part))):
            if f.device_id not in fails or f.at > fails[f.device_id].at:
                fails[f.device_id] = f
    return {d.id: _view(expected[d.id], regs.get(d.id), fails.get(d.id)) for d in devices}


def _view(expected: str, reg: Registration | None,
          fail: RegistrationFailure | None) -> RegistrationView:
    failed_last = fail is not None and (reg is None or reg.account != expected
                                        or fail.at > reg.refreshed_at)
    if failed_last:
        assert fail is not None
        state = REJECTED
    elif reg is None:
        state = UNREGISTERED
    else:
        state = REGISTERED if reg.account == expected else MISMATCH
    return RegistrationView(
        expected=expected, state=state,
        account=reg.account if reg else "", address=reg.address if reg else "",
        since=reg.registered_at if reg else None, expires_at=reg.expires_at if reg else None,
        failure_reason=fail.reason if fail and failed_last else "",
        failure_at=fail.at if fail and failed_last else None)


def view(device: Device, now: datetime | None = None) -> RegistrationView:
    return views([device], now)[device.id]


def watching(now: datetime | None = None, stale_after: timedelta = timedelta(minutes=5)) -> bool:
    """Whether some process watches registrations right now (its heartbeat is up and fresh).

    Only then is "not registered" evidence: without a watcher (a switch without the
    events, an AMI user without ``read = system``) hotdesk knows nothing either way.
    """
    now = now or utcnow()
    return (Heartbeat.select().where((Heartbeat.component == COMPONENT)
                                     & (Heartbeat.state == "up")
                                     & (Heartbeat.updated_at >= now - stale_after)).exists())


def state_counts(devices: Sequence[Device]) -> dict[str, int]:
    counts = {REGISTERED: 0, MISMATCH: 0, REJECTED: 0, UNREGISTERED: 0}
    for v in views(devices).values():
        counts[v.state] += 1
    return counts
