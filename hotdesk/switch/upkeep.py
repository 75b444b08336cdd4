"""The worker's switch jobs: heal account drift, apply pending idle-account changes.

One object per worker process; its switch connection is opened on first use and kept.
A switch that cannot be reached costs one log line per tick and is retried next tick.
"""

from __future__ import annotations

import logging

from peewee import Database

from hotdesk.settings import Config
from hotdesk.switch import drift, idle_accounts
from hotdesk.switch.accounts import AccountError, CachedReader
from hotdesk.switch.connect import close_view, reload_accounts, switch_view
from hotdesk.switch.doctor import SwitchView

log = logging.getLogger(__name__)


class SwitchUpkeep:
    def __init__(self, db: Database, config: Config, view: SwitchView | None = None) -> None:
        self.db = db
        self.config = config
        self._view = view
        # Across ticks: the slow fingerprint only for accounts that changed (drift.py).
        self.fingerprints = drift.FingerprintMemo()
        # Across ticks: whose accounts the next bounded drift check reads.
        self.rotation = drift.Rotation()

    @property
    def view(self) -> SwitchView:
        if self._view is None:
            self._view = switch_view(self.config)
        return self._view

    def __call__(self) -> str:
        """One pass; a short summary for the tick log line."""
        parts = []
        if idle_accounts.state().pending and self._can_apply():
            reload = reload_accounts(self.view) if self.config.switch.type == "asterisk" else None
            try:
                idle_accounts.sync(self.db, self.config, reload)
                parts.append("idle_accounts=applied")
            except (idle_accounts.SyncError, AccountError):
                parts.append("idle_accounts=failed")  # logged and recorded by sync()
        if self.config.switch.credentials == "switch":
            # No cache across ticks: a changed password must be seen by the next tick.
            reader = CachedReader(self.view, 0.0)
            result = drift.heal(self.db, self.config, reader, memo=self.fingerprints,
                                verify_budget=drift.VERIFY_BUDGET,
                                read_budget=self.config.switch.drift_reads_per_tick,
                                rotation=self.rotation)
            if result.reprovisioned or result.problems:
                parts.append(f"drift={result.reprovisioned}/{result.checked}")
            if result.deferred:
                parts.append(f"drift_deferred={result.deferred}")
        return " ".join(parts)

    def _can_apply(self) -> bool:
        """Asterisk: only a process configured with the accounts file writes it."""
        if self.config.switch.type == "asterisk":
            return bool(self.config.switch.accounts_file)
        return True


def apply_now(db: Database, config: Config) -> tuple[bool | None, str]:
    """After a phone was added or removed: make the switch match now, when this process
    can. (ok, message): None = left to the process that writes the accounts file."""
    if config.switch.type != "asterisk":
        idle_accounts.sync(db, config, None)  # served live to mod_xml_curl: nothing to push
        return True, "idle phones' directory entries served to FreeSWITCH (mod_xml_curl)"
    if not config.switch.accounts_file:
        return None, ("idle account queued for the switch: the process configured with "
                      "[switch] accounts_file (hotdesk worker) writes it")
    view = switch_view(config)
    try:
        idle_accounts.sync(db, config, reload_accounts(view))
    except (idle_accounts.SyncError, AccountError) as exc:
        return False, (f"the switch is not updated yet: {exc}; hotdesk worker retries "
                       "(or run 'hotdesk switch sync')")
    finally:
        close_view(view)
    return True, f"idle accounts written to {config.switch.accounts_file}, res_pjsip reloaded"
