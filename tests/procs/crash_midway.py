"""Runs one login or logout in a real process and stops at a chosen point to be SIGKILLed.

Usage: python -m tests.procs.crash_midway MODE MARKER_FILE
  login-in-tx / logout-in-tx: pause inside the write transaction, locks held, where
      ``CallWrites.flush`` is called: on SQLite every row (session, outbox, …) is
      written by then and COMMIT not sent; on PostgreSQL the writes go as one statement
      from there (a login's with its COMMIT), so the process dies before them.
  login-committed / logout-committed: pause after the commit, before any drain.
The database comes from HOTDESK_DATABASE_URL. The marker file appears when the
process has reached its pause point.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from hotdesk.calls.service import CallContext
from hotdesk.calls.writes import CallWrites
from hotdesk.runtime import start
from hotdesk.settings import load_config


def main() -> None:
    mode, marker = sys.argv[1], Path(sys.argv[2])
    rt = start(load_config())
    real_flush = CallWrites.flush

    def hang_then_flush(self: CallWrites) -> None:
        marker.write_text("in-transaction")
        time.sleep(120)
        real_flush(self)

    if mode.endswith("-in-tx"):
        CallWrites.flush = hang_then_flush  # type: ignore[method-assign]
    ctx = CallContext(switch="asterisk", call_id="crash-1", endpoint="8001",
                      source="192.0.2.10:5060")
    device = rt.service.identify_device(ctx)
    if mode.startswith("login"):
        rt.service.login(device.id, "101", "1234", ctx)
    else:
        rt.service.logout(device.id, reason="logout", actor="caller:101", call_id="crash-1")
    marker.write_text("committed")
    time.sleep(120)


if __name__ == "__main__":
    main()
