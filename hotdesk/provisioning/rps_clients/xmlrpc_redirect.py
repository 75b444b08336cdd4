"""The XML-RPC redirect API of Yealink RPS, also spoken by Htek and Akuvox.

Calls are ``redirect.<method>`` over HTTPS POST with HTTP basic auth. Answers are an
array ``[success: bool, message: str]``; on failure the message is the service's error
text (``error:invalid mac(s):…``), which is passed to the admin unchanged.
Device registration uses ``redirect.registerDeviceWithUniqueUrl(mac, server, url,
isOverride)`` so that each phone gets its own URL; the named server entry is created
with ``redirect.addServer(server, base_url)`` when the service does not know it yet.
"""

from __future__ import annotations

import base64
import logging
import urllib.error
import urllib.request
import xmlrpc.client
from typing import Any
from urllib.parse import urlsplit

from hotdesk.provisioning.rps_clients.base import RpsError, url_with_credentials

log = logging.getLogger(__name__)


class XmlRpcRedirectClient:
    def __init__(self, name: str, url: str, username: str, password: str,
                 server_name: str = "hotdesk", override: bool = True,
                 timeout: float = 15.0) -> None:
        self.name = name
        self.url = url
        self._auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.server_name = server_name
        self.override = override
        self.timeout = timeout

    @staticmethod
    def _mac(mac: str) -> str:
        return mac.upper()

    def call(self, method: str, *params: Any) -> Any:
        """One XML-RPC call; returns the decoded result or raises RpsError."""
        body = xmlrpc.client.dumps(params, methodname=method, encoding="utf-8").encode()
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "text/xml", "Authorization": self._auth,
            "User-Agent": "hotdesk"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                data = response.read(1_000_000)
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise RpsError(f"{self.name} RPS refused the account credentials "
                               f"(HTTP {exc.code} {exc.reason})") from None
            raise RpsError(f"{self.name} RPS answered HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RpsError(f"cannot reach {self.name} RPS at {_where(self.url)}: {reason}") \
                from None
        try:
            (result,), _ = xmlrpc.client.loads(data)
        except xmlrpc.client.Fault as fault:
            raise RpsError(f"{self.name} RPS: {fault.faultString}") from None
        except (ValueError, TypeError, xmlrpc.client.ResponseError) as exc:
            raise RpsError(f"{self.name} RPS sent an answer that is not XML-RPC: {exc}") \
                from None
        log.info("%s RPS %s -> %r", self.name, method, result)
        return result

    def _checked(self, method: str, *params: Any) -> str:
        result = self.call(method, *params)
        ok, message = _split(result)
        if not ok:
            raise RpsError(message)
        return message

    def register(self, mac: str, url: str, username: str | None = None,
                 password: str | None = None) -> str:
        full = url_with_credentials(url, username, password)
        args = (self._mac(mac), self.server_name, full, "1" if self.override else "0")
        ok, message = _split(self.call("redirect.registerDeviceWithUniqueUrl", *args))
        if not ok and "server" in message.lower():
            # The account has no server entry of that name yet: create it, then retry.
            parts = urlsplit(url)
            self._checked("redirect.addServer", self.server_name,
                          f"{parts.scheme}://{parts.netloc}/")
            ok, message = _split(self.call("redirect.registerDeviceWithUniqueUrl", *args))
        if not ok:
            raise RpsError(message)
        return message

    def deregister(self, mac: str) -> str:
        return self._checked("redirect.deRegisterDevice", self._mac(mac))

    def check(self, mac: str) -> str:
        return self._checked("redirect.checkDevice", self._mac(mac))


def _split(result: Any) -> tuple[bool, str]:
    """``[True, "OK"]`` / ``[False, "error:…"]`` (also a bare bool or string)."""
    if isinstance(result, list | tuple) and result:
        ok = bool(result[0]) if isinstance(result[0], bool) else True
        message = " ".join(str(x) for x in result[1:]) or ("OK" if ok else "failed")
        return ok, message
    if isinstance(result, bool):
        return result, "OK" if result else "failed"
    return True, str(result)


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"
