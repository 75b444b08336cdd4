"""One snapshot of the whole installation, for ``hotdesk status`` and the web admin."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from hotdesk.mac import format_mac
from hotdesk.notify import campaigns, reconcile
from hotdesk.ops import health
from hotdesk.store.models import Device, Session, utcnow
from hotdesk.switch import idle_accounts, registrations

# A heartbeat older than this is shown as stale: its process may have died without
# saying so (kill -9, power loss).
STALE_SECONDS = 300


@dataclass
class Status:
    now: datetime
    beats: list[health.Beat]
    active_sessions: int
    outbox: dict[str, int]
    oldest_pending_seconds: float
    provisioning: dict[str, int]
    pending_devices: list[tuple[str, str, int, int, str]] = field(default_factory=list)
    # Idle accounts hotdesk keeps on the switch: "in sync", "pending", "not applied yet: …"
    switch_accounts: str = "in sync"

    # Registrations as the switch reports them: counts per state and the phones that
    # are not registered as the account they should be (MAC, name, one-line summary).
    watching: bool = False
    registrations: dict[str, int] = field(default_factory=dict)
    registration_problems: list[tuple[str, str, str]] = field(default_factory=list)
    # Running paced pushes (hotdesk.notify.campaigns), one line each.
    pushes: list[str] = field(default_factory=list)

    @property
    def last_worker_run(self) -> datetime | None:
        runs = [b.updated_at for b in self.beats if b.component == "worker"]
        return max(runs) if runs else None


def collect(now: datetime | None = None, pending_limit: int = 20) -> Status:
    now = now or utcnow()
    pending = []
    listed = reconcile.pending_devices(pending_limit)
    states = reconcile.provisioning_states(listed)
    for device in listed:
        pending.append((format_mac(device.mac), device.display_name or device.idle_extension,
                        device.config_version, device.fetched_version, states[device.id]))
    devices = list(Device.select().order_by(Device.idle_extension))
    views = registrations.views(devices, now)
    counts = {state: 0 for state in registrations.LABELS}
    problems = []
    for device in devices:
        v = views[device.id]
        counts[v.state] += 1
        if v.state in (registrations.MISMATCH, registrations.REJECTED):
            problems.append((format_mac(device.mac),
                             device.display_name or device.idle_extension, v.summary(now)))
    return Status(
        watching=registrations.watching(now),
        registrations=counts,
        registration_problems=problems[:pending_limit],
        now=now,
        beats=health.read_all(),
        active_sessions=Session.select().where(Session.ended_at.is_null()).count(),
        outbox=reconcile.outbox_counts(),
        oldest_pending_seconds=reconcile.oldest_pending_age(now),
        provisioning=reconcile.provisioning_state_counts(),
        pending_devices=pending,
        switch_accounts=idle_accounts.state().describe(),
        pushes=[f"#{p.id} {p.scope} by {p.actor}: {p.done} of {p.total} done ({p.percent}%), "
                f"{p.rate:g}/s, about {p.seconds_left}s left"
                for p in campaigns.recent(None, limit=0)],
    )


def is_stale(beat: health.Beat, now: datetime) -> bool:
    """Reported up, but not for a while: its process may be gone."""
    return beat.state == "up" and beat.age(now).total_seconds() > STALE_SECONDS


def _ago(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def render(status: Status) -> str:
    """The one-screen text of ``hotdesk status``."""
    lines = [f"hotdesk status at {status.now.isoformat(timespec='seconds')}Z", "",
             "Connections and processes:"]
    if not status.beats:
        lines.append("  (no process has reported yet)")
    for b in status.beats:
        age = (status.now - b.updated_at).total_seconds()
        stale = " STALE" if is_stale(b, status.now) else ""
        lines.append(f"  {b.component:<11} {b.node:<24} {b.state.upper():<5}{stale} since "
                     f"{b.since.isoformat(timespec='seconds')}Z (reported {_ago(age)} ago)"
                     + (f"  {b.detail}" if b.detail else ""))
    lines += ["", f"Active sessions: {status.active_sessions}", ""]
    depth = ", ".join(f"{k} {status.outbox.get(k, 0)}"
                      for k in ("pending", "sent", "failed", "superseded"))
    lines.append(f"Outbox: {depth}")
    oldest = (f"{_ago(status.oldest_pending_seconds)}" if status.outbox.get("pending")
              else "-")
    lines.append(f"  oldest pending: {oldest}")
    lines.append(f"Paced pushes running: {len(status.pushes) or 'none'}")
    lines += [f"  {push}" for push in status.pushes]
    prov = status.provisioning
    lines += ["", f"Phones: {prov.get('ok', 0)} ok, {prov.get('pending', 0)} pending config, "
              f"{prov.get('failed', 0)} failed"]
    for mac, name, want, have, state in status.pending_devices:
        lines.append(f"  {mac}  {name:<16} wants v{want}, fetched v{have}  {state}")
    lines.append(f"Idle accounts on the switch: {status.switch_accounts}")

    reg = status.registrations
    lines += ["", "Registrations" + ("" if status.watching else " (not watched right now)")
              + f": {reg.get('registered', 0)} as expected, {reg.get('mismatch', 0)} wrong "
              f"account, {reg.get('rejected', 0)} credentials rejected, "
              f"{reg.get('unregistered', 0)} not registered"]
    for mac, name, summary in status.registration_problems:
        lines.append(f"  {mac}  {name:<16} {summary}")
    last = status.last_worker_run
    lines += ["", "Last worker run: " + (
        f"{last.isoformat(timespec='seconds')}Z ({_ago((status.now - last).total_seconds())} "
        "ago)" if last else "never")]
    return "\n".join(lines) + "\n"
