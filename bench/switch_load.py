"""A fake switch placing ``*70`` login calls as fast as they are answered, as its own process.

    .venv/bin/python bench/switch_load.py agi|esl --target HOST:PORT --phones N
        [--concurrency C] [--seconds T] [--warmup W] [--domain D]

Used by bench/scaleout_bench.py so that the load generator's CPU is a process of its
own (it can be pinned with taskset and measured from /proc). Asterisk: the fake
Asterisk of ``hotdesk_agi.simulate`` over FastAGI, and the fake AMI receiving the
NOTIFYs. FreeSWITCH: the fake outbound Event Socket calls of ``tests/fakes/freeswitch``,
and the fake inbound event socket receiving the NOTIFYs. C callers each place one call
after another; call ``i`` logs user ``1000 + i mod N`` in on phone ``8000 + i mod N``,
so calls in flight never share a phone or a user.

Protocol on stdout (one line each): ``switch PORT`` (where hotdesk must connect for
NOTIFYs), then, after a line ``go`` on stdin and the warm-up, ``start`` and ``end``
around the measured window, and ``result {json}``: the calls that ended in it, and
how many ended ok.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hotdesk_agi.simulate import AsteriskChannel, CallSetup, place_call  # noqa: E402
from tests.fakes.asterisk import FakeAMI  # noqa: E402
from tests.fakes.freeswitch import CallSpec, FakeCall, FakeInboundServer  # noqa: E402


class Window:
    """Counts the calls that end inside the measured window."""

    def __init__(self, warmup: float, seconds: float) -> None:
        self.lock = threading.Lock()
        self.start = time.monotonic() + warmup
        self.end = self.start + seconds
        self.calls = self.ok = 0
        self.started = self.finished = False

    def running(self) -> bool:
        return time.monotonic() < self.end

    def ended(self, ok: bool) -> None:
        now = time.monotonic()
        with self.lock:
            if not self.started and now >= self.start:
                self.started = True
                print("start", flush=True)
            if self.start <= now < self.end:
                self.calls += 1
                self.ok += ok
            elif now >= self.end and not self.finished:
                self.finished = True
                print("end", flush=True)


def _say(line: str) -> None:
    print(line, flush=True)


async def _agi(args: argparse.Namespace, window: Window, host: str, port: int) -> None:
    counter = iter(range(10**9))

    async def caller() -> None:
        while window.running():
            i = next(counter) % args.phones
            endpoint, source = str(8000 + i), f"127.0.0.1:{20000 + i}"
            setup = CallSetup(script="login", args=[str(1000 + i), source, endpoint],
                              endpoint=endpoint, dialed=f"*70{1000 + i}", uniqueid=f"load.{i}")
            channel = AsteriskChannel(setup, ["1234"], voicemail={f"{1000 + i}@default": "1234"})
            transcript = await place_call(host, port, channel, None, 60)
            window.ended(transcript.variables.get("HOTDESK_RESULT") == "ok")

    await asyncio.gather(*(caller() for _ in range(args.concurrency)))


def _esl(args: argparse.Namespace, window: Window, host: str, port: int) -> None:
    counter = iter(range(10**9))
    lock = threading.Lock()

    def caller() -> None:
        while window.running():
            with lock:
                i = next(counter) % args.phones
            ext = str(1000 + i)
            call = FakeCall(CallSpec(endpoint=str(8000 + i), extension=ext, digits=["1234"],
                                     source=f"127.0.0.1:{20000 + i}", linger_scale=0.0,
                                     vm_passwords={f"{ext}@{args.domain}": "1234",
                                                   f"{ext}@127.0.0.1": "1234"}))
            call.run((host, port), timeout=60)
            window.ended(any(a == "set" and v == "HOTDESK_RESULT=ok"
                             for a, v in call.executed()))

    threads = [threading.Thread(target=caller) for _ in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


async def _main(args: argparse.Namespace) -> None:
    host, _, port = args.target.rpartition(":")
    if args.switch == "agi":
        ami = FakeAMI()
        _say(f"switch {await ami.start()}")
    else:
        inbound = FakeInboundServer()
        inbound.start()
        _say(f"switch {inbound.address[1]}")
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "go"
    window = Window(args.warmup, args.seconds)
    if args.switch == "agi":
        await _agi(args, window, host, int(port))
        notifies = len(ami.notifies)
        await ami.stop()
    else:
        await asyncio.get_running_loop().run_in_executor(None, _esl, args, window, host,
                                                         int(port))
        notifies = len(inbound.notifies)
        inbound.stop()
    _say("result " + json.dumps({"calls": window.calls, "ok": window.ok,
                                 "seconds": args.seconds, "notifies": notifies}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("switch", choices=["agi", "esl"])
    parser.add_argument("--target", required=True, help="hotdesk's HOST:PORT")
    parser.add_argument("--phones", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--domain", default="default", help="the tenant's SIP domain")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
