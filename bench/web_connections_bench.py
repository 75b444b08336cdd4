"""Starvation check and figure for a web server: open IDLE connections that never send a
byte and SLOW connections that send a request head one byte at a time (slowloris), then
time normal requests on fresh connections while they are all open.

    .venv/bin/python -m bench.web_connections_bench --url https://127.0.0.1:8443/healthz \\
        --cafile ca.pem --idle 1000 --slow 100

Used by tests/test_web_connections.py with a pass/fail bound; run alone it prints the
latencies (median and worst) and how many attacking connections were still open.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import ssl
import statistics
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Result:
    probe_seconds: list[float]
    statuses: list[int]
    idle_open: int  # attacking connections the server had not closed when probing ended
    slow_open: int
    connect_failures: int

    def as_dict(self) -> dict[str, object]:
        return {"probes": len(self.probe_seconds),
                "median_ms": round(statistics.median(self.probe_seconds) * 1000, 1),
                "worst_ms": round(max(self.probe_seconds) * 1000, 1),
                "statuses": sorted(set(self.statuses)), "idle_open": self.idle_open,
                "slow_open": self.slow_open, "connect_failures": self.connect_failures}


def probe(host: str, port: int, path: str, context: ssl.SSLContext | None,
          timeout: float) -> tuple[float, int]:
    """One request on a fresh connection: (seconds from connect to complete body, status);
    status 0 when it failed or timed out."""
    began = time.monotonic()
    conn: http.client.HTTPConnection = (
        http.client.HTTPSConnection(host, port, context=context, timeout=timeout)
        if context else http.client.HTTPConnection(host, port, timeout=timeout))
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        return time.monotonic() - began, resp.status
    except (OSError, http.client.HTTPException):
        return time.monotonic() - began, 0
    finally:
        conn.close()


async def _open(host: str, port: int, context: ssl.SSLContext | None, count: int,
                slow: bool, stop: asyncio.Event, alive: list[int], failed: list[int]) -> None:
    async def one(n: int) -> None:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=context), 30)
        except (TimeoutError, OSError, ssl.SSLError):
            failed[0] += 1
            return
        alive[0] += 1
        try:
            if slow:
                head = f"GET /healthz?slow={n} HTTP/1.1\r\nHost: {host}\r\nX-Slow: ".encode()
                for i in range(len(head)):
                    if stop.is_set() or writer.is_closing():
                        break
                    writer.write(head[i:i + 1])
                    await writer.drain()
                    await asyncio.sleep(0.5)
                while not stop.is_set():  # then one header byte every half second
                    writer.write(b"a")
                    await writer.drain()
                    with contextlib.suppress(asyncio.TimeoutError):
                        if await asyncio.wait_for(reader.read(1), 0.5) == b"":
                            break  # the server closed it
            else:
                await reader.read(1)  # b"" when the server closes it
        except (OSError, ssl.SSLError, asyncio.CancelledError):
            pass
        finally:
            alive[0] -= 1
            writer.transport.abort()  # no TLS close_notify round trip per connection

    # Connect in batches, the way a flood arrives, without overrunning the accept queue.
    tasks = []
    for start in range(0, count, 100):
        tasks += [asyncio.ensure_future(one(n)) for n in range(start, min(count, start + 100))]
        await asyncio.sleep(0.05)
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def run(url: str, idle: int, slow: int, probes: int, settle: float = 3.0,
        context: ssl.SSLContext | None = None, timeout: float = 10.0) -> Result:
    """Open the attacking connections, wait until they are open and ``settle`` s more,
    then time ``probes`` requests."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or (443 if context else 80)
    path = parts.path or "/"
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    idle_alive, slow_alive, failed = [0], [0], [0]
    ready = threading.Event()

    def attack() -> None:
        asyncio.set_event_loop(loop)

        async def main() -> None:
            ready.set()
            await asyncio.gather(
                _open(host, port, context, idle, False, stop, idle_alive, failed),
                _open(host, port, context, slow, True, stop, slow_alive, failed))

        loop.run_until_complete(main())

    thread = threading.Thread(target=attack, daemon=True)
    thread.start()
    ready.wait(10)
    # Probe once every attacking connection is open (TCP, and TLS handshake when https)
    # or has failed, then ``settle`` more seconds; at most a minute of waiting.
    deadline = time.monotonic() + 60
    while (idle_alive[0] + slow_alive[0] + failed[0] < idle + slow
           and time.monotonic() < deadline):
        time.sleep(0.1)
    time.sleep(settle)
    seconds, statuses = [], []
    for _ in range(probes):
        took, status = probe(host, port, path, context, timeout)
        seconds.append(took)
        statuses.append(status)
        time.sleep(0.1)
    result = Result(seconds, statuses, idle_alive[0], slow_alive[0], failed[0])
    loop.call_soon_threadsafe(stop.set)
    thread.join(60)
    if not thread.is_alive():
        loop.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--cafile", help="CA of an https server's certificate")
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--slow", type=int, default=100)
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--settle", type=float, default=2.0)
    args = parser.parse_args()
    context = (ssl.create_default_context(cafile=args.cafile)
               if args.url.startswith("https:") else None)
    result = run(args.url, args.idle, args.slow, args.probes, args.settle, context)
    print(json.dumps({"url": args.url, "idle": args.idle, "slow": args.slow,
                      **result.as_dict()}))


if __name__ == "__main__":
    main()
