"""Snom SRAPS (Secure Redirection and Provisioning Service): a JSON REST API with Hawk
request signing (HMAC-SHA256 over method, path, host, port, time, nonce, payload hash).

Navigation follows the API's links: ``GET tokens/<key id>`` -> company link ->
``GET company`` -> endpoints link; a phone is ``PUT/GET/DELETE <endpoints><mac>`` with
``{"mac", "autoprovisioning_enabled", "provisioning_url"}``. Error bodies' ``message``
(or ``error``/``detail``) reach the admin verbatim.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urljoin, urlsplit

from hotdesk.provisioning.rps_clients.base import RpsError, url_with_credentials

log = logging.getLogger(__name__)


def payload_hash(payload: bytes, content_type: str) -> str:
    mime = content_type.split(";")[0].strip().lower()
    data = b"hawk.1.payload\n" + mime.encode() + b"\n" + payload + b"\n"
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def hawk_mac(key: str, ts: str, nonce: str, method: str, resource: str, host: str,
             port: int, hash_: str, ext: str = "") -> str:
    normalized = (f"hawk.1.header\n{ts}\n{nonce}\n{method.upper()}\n{resource}\n"
                  f"{host.lower()}\n{port}\n{hash_}\n{ext}\n")
    digest = hmac.new(key.encode(), normalized.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def hawk_header(key_id: str, key: str, method: str, url: str, payload: bytes | None,
                content_type: str = "", now: float | None = None) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    resource = parts.path + (f"?{parts.query}" if parts.query else "")
    ts = str(int(now if now is not None else time.time()))
    nonce = secrets.token_urlsafe(8)
    hash_ = payload_hash(payload, content_type) if payload is not None else ""
    mac = hawk_mac(key, ts, nonce, method, resource, parts.hostname or "", port, hash_)
    fields = [f'id="{key_id}"', f'ts="{ts}"', f'nonce="{nonce}"']
    if hash_:
        fields.append(f'hash="{hash_}"')
    fields.append(f'mac="{mac}"')
    return "Hawk " + ", ".join(fields)


class SrapsClient:
    def __init__(self, base_url: str, key_id: str, key: str, timeout: float = 15.0,
                 name: str = "snom") -> None:
        self.name = name
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._key_id = key_id
        self._key = key
        self.timeout = timeout
        self._endpoints: str | None = None

    def request(self, method: str, url: str, body: Any = None) -> tuple[int, Any]:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json", "User-Agent": "hotdesk"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        headers["Authorization"] = hawk_header(self._key_id, self._key, method, url, payload,
                                               headers.get("Content-Type", ""))
        req = urllib.request.Request(url, data=payload, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                status, data = response.status, response.read(1_000_000)
        except urllib.error.HTTPError as exc:
            status, data = exc.code, exc.read(100_000)
            if status == 404 and method == "GET" and self._endpoints and \
                    url.startswith(self._endpoints):
                return status, None
            raise RpsError(_error_text(status, exc.reason, data)) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RpsError(f"cannot reach Snom SRAPS at {self.base_url}: {reason}") from None
        log.info("SRAPS %s %s -> %s", method, urlsplit(url).path, status)
        if not data.strip():
            return status, None
        try:
            return status, json.loads(data)
        except ValueError:
            raise RpsError(f"Snom SRAPS sent an answer that is not JSON (HTTP {status})") \
                from None

    def endpoints_url(self) -> str:
        """The company's endpoint collection, found through the API's links (cached)."""
        if self._endpoints is None:
            _, token = self.request("GET", urljoin(self.base_url, f"tokens/{self._key_id}"))
            company_url = _link(token, "company")
            _, company = self.request("GET", urljoin(self.base_url, company_url))
            endpoints = urljoin(self.base_url, _link(company, "endpoints"))
            self._endpoints = endpoints if endpoints.endswith("/") else endpoints + "/"
        return self._endpoints

    def register(self, mac: str, url: str, username: str | None = None,
                 password: str | None = None) -> str:
        body = {"mac": mac, "autoprovisioning_enabled": True,
                "provisioning_url": url_with_credentials(url, username, password)}
        status, _ = self.request("PUT", self.endpoints_url() + mac, body)
        return "OK" if status < 300 else f"HTTP {status}"

    def deregister(self, mac: str) -> str:
        status, _ = self.request("DELETE", self.endpoints_url() + mac)
        return "OK" if status < 300 else f"HTTP {status}"

    def check(self, mac: str) -> str:
        status, data = self.request("GET", self.endpoints_url() + mac)
        if status == 404 or not isinstance(data, dict):
            return "unregistered"
        auto = "on" if data.get("autoprovisioning_enabled") else "off"
        return f"registered (autoprovisioning {auto})"


def _link(doc: Any, name: str) -> str:
    links = doc.get("links") if isinstance(doc, dict) else None
    if not isinstance(links, dict) or not isinstance(links.get(name), str):
        raise RpsError(f"Snom SRAPS answer has no '{name}' link; check [rps] snom_url")
    return links[name]


def _error_text(status: int, reason: str, data: bytes) -> str:
    """The service's own message when it sent one, else the HTTP status."""
    try:
        doc = json.loads(data)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        for key in ("message", "error", "detail"):
            if isinstance(doc.get(key), str) and doc[key]:
                return doc[key]
    text = data.decode(errors="replace").strip()
    if text and len(text) < 300 and "<" not in text:
        return text
    if status in (401, 403):
        return f"Snom SRAPS refused the access key (HTTP {status} {reason})"
    return f"Snom SRAPS answered HTTP {status} {reason}"
