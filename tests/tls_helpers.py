"""A throw-away PKI made with the ``openssl`` command, and hotdesk servers run as real
processes, for the TLS tests."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca: Path  # CA certificate (PEM)
    cert: Path  # server certificate for 127.0.0.1 / localhost
    key: Path

    def client(self, name: str, subject: str, san: str = "") -> tuple[Path, Path]:
        """A client certificate signed by the CA: (certfile, keyfile)."""
        return issue(self.dir, name, subject, san, self.ca, self.dir / "ca.key")

    def server(self, name: str) -> tuple[Path, Path]:
        return issue(self.dir, name, "/CN=localhost", "DNS:localhost,IP:127.0.0.1", self.ca,
                     self.dir / "ca.key")


def issue(directory: Path, name: str, subject: str, san: str, ca: Path,
          ca_key: Path) -> tuple[Path, Path]:
    key, csr, cert = (directory / f"{name}.key", directory / f"{name}.csr",
                      directory / f"{name}.pem")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key), "-out", str(csr), "-subj", subject, cwd=directory)
    ext = directory / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", "2", "-sha256", "-extfile", str(ext), "-out", str(cert),
            cwd=directory)
    return cert, key


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=hotdesk test CA",
            cwd=directory)
    cert, key = issue(directory, "server", "/CN=localhost", "DNS:localhost,IP:127.0.0.1",
                      directory / "ca.pem", directory / "ca.key")
    return Pki(directory, directory / "ca.pem", cert, key)


def client_context(ca: Path, version: ssl.TLSVersion | None = None,
                   cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(log.read_text())
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}: {log.read_text()}")


@contextlib.contextmanager
def hotdesk_process(args: list[str], env: dict[str, str], port: int,
                    log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``hotdesk ARGS`` with ``env`` added; yield it once ``port`` accepts; stop it."""
    out = open(log, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "hotdesk_cli", *args],
                            env=dict(os.environ, **env), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc, log)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        out.close()


def https_get(port: int, path: str, ctx: ssl.SSLContext,
              headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One GET over TLS with the given client context: (status, headers, body)."""
    import http.client

    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def served_serial(port: int, ca: Path) -> int:
    """The serial number of the certificate a new TLS connection to ``port`` gets."""
    ctx = client_context(ca)
    with socket.create_connection(("127.0.0.1", port), 10) as raw_sock, \
            ctx.wrap_socket(raw_sock, server_hostname="localhost") as sock:
        return int(sock.getpeercert()["serialNumber"], 16)
