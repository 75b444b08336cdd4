"""Local stand-ins for the vendor redirect services, run in a thread on 127.0.0.1.

No capture of the real services exists in shared/reference; these follow the published
API descriptions: Yealink RPS XML-RPC (``redirect.*``, basic auth, ``[bool, message]``
answers with ``error:…`` texts) and Snom SRAPS (Hawk-signed JSON REST with links).
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

from hotdesk.provisioning.rps_clients.sraps import hawk_mac, payload_hash

_MAC = re.compile(r"^[0-9A-F]{12}$")


@dataclass
class RedirectAccount:
    """The state of one XML-RPC redirect account, and the calls it received."""

    username: str = "acme"
    password: str = "s3cret"
    servers: dict[str, str] = field(default_factory=dict)
    devices: dict[str, tuple[str, str]] = field(default_factory=dict)  # mac -> (server, url)
    # MACs registered by some other customer's account.
    elsewhere: set[str] = field(default_factory=set)
    calls: list[tuple[str, tuple]] = field(default_factory=list)
    auth_failures: int = 0


def _redirect_functions(acct: RedirectAccount) -> dict[str, object]:
    def register_unique(mac: str, server: str, url: str, override: str) -> list:
        acct.calls.append(("redirect.registerDeviceWithUniqueUrl", (mac, server, url, override)))
        if not _MAC.match(mac):
            return [False, f"error:invalid mac(s):{mac}"]
        if mac in acct.elsewhere:
            return [False, f"error:the mac(s) {mac} has been registered by another account"]
        if server not in acct.servers:
            return [False, "error:invalid server"]
        if mac in acct.devices and override != "1":
            return [False, f"error:the mac(s) {mac} is already registered"]
        acct.devices[mac] = (server, url)
        return [True, "OK"]

    def add_server(name: str, url: str) -> list:
        acct.calls.append(("redirect.addServer", (name, url)))
        if name in acct.servers:
            return [False, "error:the server name already exists"]
        acct.servers[name] = url
        return [True, "OK"]

    def deregister(mac: str) -> list:
        acct.calls.append(("redirect.deRegisterDevice", (mac,)))
        if not _MAC.match(mac):
            return [False, f"error:invalid mac(s):{mac}"]
        if mac not in acct.devices:
            return [False, f"error:the mac(s) {mac} is not registered"]
        del acct.devices[mac]
        return [True, "OK"]

    def check(mac: str) -> list:
        acct.calls.append(("redirect.checkDevice", (mac,)))
        if not _MAC.match(mac):
            return [False, "error:invalid mac"]
        if mac in acct.elsewhere:
            return [True, "registered elsewhere"]
        return [True, "registered" if mac in acct.devices else "unregistered"]

    return {"redirect.registerDeviceWithUniqueUrl": register_unique,
            "redirect.addServer": add_server, "redirect.deRegisterDevice": deregister,
            "redirect.checkDevice": check}


@contextmanager
def fake_redirect_service(acct: RedirectAccount) -> Iterator[str]:
    """Serve ``acct`` over XML-RPC on loopback; yields the service URL."""

    class Handler(SimpleXMLRPCRequestHandler):
        rpc_paths = ("/xmlrpc",)

        def do_POST(self) -> None:  # noqa: N802 (http.server naming)
            expected = "Basic " + base64.b64encode(
                f"{acct.username}:{acct.password}".encode()).decode()
            if self.headers.get("Authorization") != expected:
                acct.auth_failures += 1
                self.send_response(401, "Unauthorized")
                self.send_header("WWW-Authenticate", 'Basic realm="RPS"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            super().do_POST()

        def log_message(self, *args: object) -> None:
            pass

    server = SimpleXMLRPCServer(("127.0.0.1", 0), requestHandler=Handler, logRequests=False,
                                allow_none=False)
    for name, fn in _redirect_functions(acct).items():
        server.register_function(fn, name)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/xmlrpc"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@dataclass
class SrapsAccount:
    key_id: str = "K1d"
    key: str = "hawk-secret"
    company: str = "c0ffee"
    endpoints: dict[str, dict] = field(default_factory=dict)
    elsewhere: set[str] = field(default_factory=set)
    requests: list[tuple[str, str]] = field(default_factory=list)
    bad_signatures: int = 0


_HAWK_FIELD = re.compile(r'(\w+)="([^"]*)"')


@contextmanager
def fake_sraps(acct: SrapsAccount) -> Iterator[str]:
    """A Snom SRAPS stand-in that checks every request's Hawk signature; yields base URL."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, status: int, doc: object | None = None) -> None:
            body = json.dumps(doc).encode() if doc is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _authentic(self, body: bytes) -> bool:
            header = self.headers.get("Authorization", "")
            if not header.startswith("Hawk "):
                return False
            f = dict(_HAWK_FIELD.findall(header))
            if f.get("id") != acct.key_id:
                return False
            hash_ = f.get("hash", "")
            if body and hash_ != payload_hash(body, self.headers.get("Content-Type", "")):
                return False
            host, _, port = self.headers.get("Host", "").partition(":")
            expected = hawk_mac(acct.key, f.get("ts", ""), f.get("nonce", ""), self.command,
                                self.path, host, int(port or 80), hash_)
            return expected == f.get("mac")

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            acct.requests.append((self.command, self.path))
            if not self._authentic(body):
                acct.bad_signatures += 1
                self._reply(401, {"message": "Unauthorized: bad Hawk signature"})
                return
            path = urlsplit(self.path).path
            if self.command == "GET" and path == f"/api/v1/tokens/{acct.key_id}":
                self._reply(200, {"links": {"company": f"/api/v1/companies/{acct.company}"}})
            elif self.command == "GET" and path == f"/api/v1/companies/{acct.company}":
                self._reply(200, {"links": {
                    "endpoints": f"/api/v1/companies/{acct.company}/endpoints/"}})
            elif m := re.fullmatch(rf"/api/v1/companies/{acct.company}/endpoints/(.*)", path):
                self._endpoint(m.group(1), body)
            else:
                self._reply(404, {"message": "Not found"})

        def _endpoint(self, mac: str, body: bytes) -> None:
            if not re.fullmatch(r"[0-9a-f]{12}", mac):
                self._reply(400, {"message": f"'{mac}' is not a valid MAC address"})
            elif mac in acct.elsewhere:
                self._reply(409, {"message": "This MAC address is already claimed by another "
                                             "company"})
            elif self.command == "PUT":
                acct.endpoints[mac] = json.loads(body)
                self._reply(200, acct.endpoints[mac])
            elif self.command == "GET":
                if mac in acct.endpoints:
                    self._reply(200, acct.endpoints[mac])
                else:
                    self._reply(404, {"message": "Not found"})
            elif self.command == "DELETE":
                if acct.endpoints.pop(mac, None) is None:
                    self._reply(404, {"message": "Endpoint not found"})
                else:
                    self._reply(204)

        do_GET = do_PUT = do_DELETE = _handle  # noqa: N815

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v1/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
