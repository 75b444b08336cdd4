"""Drift heals itself: a user's account changed on the switch reaches their phone.

Each rendered user config leaves the fingerprint of the account it carried on the
phone's row (:func:`hotdesk.provisioning.render.remember_fingerprint`). The worker
re-reads every logged-in user's account and, when the fingerprint differs from what
the phone has fetched, bumps the config version and queues a check-sync NOTIFY in one
transaction. Phones still fetching an older version are left alone (their next fetch
carries the live account anyway); so is a phone whose fingerprint is unknown.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from peewee import Database

from hotdesk.notify import outbox
from hotdesk.provisioning.render import profile_fingerprint, profile_for
from hotdesk.settings import Config
from hotdesk.store import audit
from hotdesk.store.db import write_transaction
from hotdesk.store.models import Device, Session, Tenant, User, utcnow
from hotdesk.switch.accounts import AccountError, AccountMissing, AccountReader

log = logging.getLogger(__name__)


@dataclass
class DriftResult:
    checked: int = 0
    reprovisioned: int = 0
    problems: list[str] = field(default_factory=list)


def heal(db: Database, config: Config, accounts: AccountReader | None,
         now: datetime | None = None) -> DriftResult:
    """Compare every current, fetched user config with the switch; re-provision drift."""
    result = DriftResult()
    rows = (Session.select(Session, Device, User, Tenant)
            .join(Device).switch(Session).join(User).switch(Session).join(Tenant)
            .where(Session.ended_at.is_null() & (Device.account_fingerprint != "")
                   & (Device.fetched_version >= Device.config_version)))
    for session in rows:
        device, user = session.device, session.user
        result.checked += 1
        try:
            profile = profile_for(device, config, user=user, tenant=session.tenant,
                                  accounts=accounts)
        except AccountMissing as exc:
            result.problems.append(f"user {user.extension}: {exc}")
            log.warning("drift check: user %s on phone %s: %s", user.extension, device.mac, exc)
            continue
        except AccountError as exc:
            result.problems.append(str(exc))
            log.warning("drift check stopped: %s", exc)
            break
        value = profile_fingerprint(device, profile)
        if value == device.account_fingerprint:
            continue
        with write_transaction(db):
            changed = (Device.update(config_version=Device.config_version + 1,
                                     account_fingerprint=value)
                       .where((Device.id == device.id)
                              & (Device.config_version == device.config_version))
                       .execute())
            if not changed:
                continue  # the phone changed meanwhile (login, logout): that one wins
            device.config_version += 1
            outbox.enqueue(device, session.tenant, user.sip_username, config.switch.type,
                           now=now or utcnow())
            audit.record("account_changed_on_switch", tenant=session.tenant, actor="worker",
                         device=device, user=user)
        result.reprovisioned += 1
        log.info("phone %s: the switch's account of user %s changed; re-provisioning "
                 "(config version %d)", device.mac, user.extension, device.config_version)
    return result
