"""TLS for ``hotdesk web`` and ``hotdesk prov-serve``: one server context with modern
defaults, reloadable in place.

Why reload into the same :class:`ssl.SSLContext`: both servers hand the context to
asyncio once; loading a new certificate into it makes every *new* handshake use the
new files while open connections keep theirs, so SIGHUP after a renewal drops nothing.
"""

from __future__ import annotations

import logging
import resource
import ssl
from dataclasses import dataclass

log = logging.getLogger(__name__)

# TLS 1.2 suites: forward secrecy and AEAD only (TLS 1.3 suites are all of that already).
TLS12_CIPHERS = ("ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:"
                 "!aNULL:!eNULL:!MD5:!SHA1:!DSS:!RC4:!3DES:!CBC")


@dataclass(frozen=True)
class TlsFiles:
    """Where a server's certificate chain, key and (optional) client CA bundle live."""

    certfile: str
    keyfile: str = ""  # "" = the key is in certfile
    client_ca: str = ""  # "" = no client certificate asked for

    @property
    def enabled(self) -> bool:
        return bool(self.certfile)


class TlsError(ValueError):
    """A certificate, key or CA file cannot be used; the message names the file."""


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """A server context: TLS 1.2 and 1.3 only, ECDHE/DHE + AEAD suites, no compression,
    no renegotiation; with ``client_ca`` a client certificate signed by it is required."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= (ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
                    | getattr(ssl, "OP_NO_RENEGOTIATION", 0))
    load(ctx, files)
    return ctx


def load(ctx: ssl.SSLContext, files: TlsFiles) -> None:
    """(Re)load the files into ``ctx``; on any error ``ctx`` keeps what it had."""
    try:
        # Check the pair in a scratch context first: a half-loaded context must not serve.
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(files.certfile,
                                                                files.keyfile or None)
        ctx.load_cert_chain(files.certfile, files.keyfile or None)
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"cannot use certificate {files.certfile!r} / key "
                       f"{files.keyfile or files.certfile!r}: {exc}") from None
    if files.client_ca:
        try:
            ctx.load_verify_locations(cafile=files.client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise TlsError(f"cannot use client CA file {files.client_ca!r}: {exc}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED


def reload(ctx: ssl.SSLContext | None, files: TlsFiles, what: str) -> bool:
    """SIGHUP: load renewed files; a broken renewal is logged and the old ones stay."""
    if ctx is None:
        log.info("%s: SIGHUP: no TLS configured, nothing to reload", what)
        return False
    try:
        load(ctx, files)
    except TlsError as exc:
        log.error("%s: TLS files not reloaded, the previous ones stay in use: %s", what, exc)
        return False
    log.info("%s: TLS certificate reloaded from %s", what, files.certfile)
    return True


ASYNCIO_TLS_BUFFER = 32 * 1024


def limit_asyncio_tls_buffers(size: int = ASYNCIO_TLS_BUFFER) -> None:
    """asyncio gives every TLS connection a 256 KiB read buffer, zero-filled up front:
    1,000 idle TLS clients would hold 256 MB. A TLS record is at most 16 KiB (+ overhead),
    so 32 KiB loses nothing but extra reads of large bodies. (uvloop has its own C-level
    buffer and is not affected.)"""
    import asyncio.sslproto

    if getattr(asyncio.sslproto.SSLProtocol, "max_size", 0) > size:
        asyncio.sslproto.SSLProtocol.max_size = size


def raise_open_files_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards ``wanted`` (never above the hard limit): idle
    connections are file descriptors, and a 1024 default would refuse them early."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft
