"""webadmin/server.py in-process with both of uvicorn's HTTP parsers: the request-head
deadline uvicorn lacks (silent and slowloris connections closed, a kept-alive connection
timed out between requests, a normal request unaffected) and the connection bound."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from hotdesk.settings import WebConfig
from webadmin.server import HttpToolsProtocol, bind, make_listener

PARSERS = ["h11"] + (["httptools"] if HttpToolsProtocol is not None else [])


async def hello(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"6")]})
    await send({"type": "http.response.body", "body": b"hello\n"})


@pytest.fixture
def server(request) -> Iterator:
    """server(parser, **[web] options) -> port of a running listener."""
    running: list[tuple[object, threading.Thread]] = []

    def start(parser: str, **options) -> int:
        web = dataclasses.replace(WebConfig(), **options)
        sock = bind("127.0.0.1:0")
        listener = make_listener(hello, web, sock, None, parser)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=loop.run_until_complete, args=(listener.server.serve(sockets=[sock]),),
            daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not listener.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        running.append((listener.server, thread))
        return sock.getsockname()[1]

    yield start
    for srv, thread in running:
        srv.should_exit = True  # type: ignore[attr-defined]
        thread.join(10)


def read_response(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"hello\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize("parser", PARSERS)
def test_request_head_deadline(server, parser):
    port = server(parser, request_timeout_seconds=0.5, keepalive_seconds=1)
    silent = socket.create_connection(("127.0.0.1", port), 10)
    slow = socket.create_connection(("127.0.0.1", port), 10)
    began = time.monotonic()
    sent = 0
    for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa":
        try:  # a byte every 0.1 s: the head is never complete, the server hangs up
            slow.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += 1
        time.sleep(0.1)
    assert sent < 20, "the slow request head was not cut off at the deadline"
    for sock in (silent, slow):
        sock.settimeout(10)
        try:
            assert sock.recv(4096) == b""  # closed by the server, nothing answered
        except ConnectionResetError:
            pass
        sock.close()
    assert time.monotonic() - began < 3
    # a normal request, then a second one after a pause shorter than the deadline
    with socket.create_connection(("127.0.0.1", port), 10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        time.sleep(0.3)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        # then a next request started but never finished: closed at the deadline
        sock.sendall(b"GET / HTTP/1.1\r\n")
        sock.settimeout(10)
        assert sock.recv(4096) == b""


@pytest.mark.parametrize("parser", PARSERS)
def test_connections_beyond_max_connections_get_503(server, parser):
    port = server(parser, max_connections=5, request_timeout_seconds=30)
    held = [socket.create_connection(("127.0.0.1", port), 10) for _ in range(5)]
    time.sleep(0.3)
    with socket.create_connection(("127.0.0.1", port), 10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 503 ")
    for sock in held:
        sock.close()
    time.sleep(0.3)
    with socket.create_connection(("127.0.0.1", port), 10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
