"""Shared pieces of the emergency tests: a real HTTP webhook receiver and locations."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from hotdesk.admin.inventory import default_tenant
from hotdesk.emergency import editing

DESK_3 = {"country": "US", "region": "CA", "city": "Springfield", "street": "Main St",
          "number": "1", "building": "A", "floor": "3", "room": "3.01", "callback": "+15550100"}


def set_location(db, device, values) -> None:
    """The admin's edit: save, and mark the switch's copies in the same transaction."""
    editing.set_location(db, default_tenant(), device, values, "admin:test")


class Webhook:
    """A real HTTP server that keeps every JSON POST it gets."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.times: list[float] = []  # time.time() of each POST's arrival
        self.received = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.posts.append(json.loads(body))
                outer.times.append(time.time())
                self.send_response(204)
                self.end_headers()
                outer.received.set()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
