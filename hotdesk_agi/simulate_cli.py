"""``hotdesk simulate --switch asterisk``: one call against the running FastAGI server.

Builds the call the way Asterisk would for a phone in the database (its idle endpoint
when idle, the logged-in user's SIP user otherwise) and prints every command and reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hotdesk.admin.inventory import registered_endpoint
from hotdesk.settings import Config, parse_listen
from hotdesk.store.models import Device
from hotdesk_agi.simulate import AsteriskChannel, CallSetup, Transcript, place_call


def simulate(config: Config, device: Device, feature: str, extension: str = "",
             pin: str = "", source: str = "",
             echo: Callable[[str], None] = print) -> Transcript:
    endpoint = registered_endpoint(device)
    source = source or device.last_address or "127.0.0.1:5060"
    dialed = f"*70{extension}" if feature == "login" else "*71"
    setup = CallSetup(script=feature, args=[extension, source, endpoint], endpoint=endpoint,
                      callerid_name=device.display_name, dialed=dialed,
                      uniqueid=f"hotdesk-simulate-{device.mac}")
    host, port = parse_listen(config.agi.listen)
    echo(f"calling agi://{host}:{port}/{feature} as {endpoint} from {source} (dialed {dialed})")

    def show(command: str, reply: bytes | None) -> None:
        shown = reply.decode().rstrip("\n").replace("\n", " | ") if reply else "(dropped)"
        echo(f"  >> {command}\n  << {shown}")

    channel = AsteriskChannel(setup, digits=[pin] * config.policy.pin_tries_per_call)
    transcript = asyncio.run(place_call(host, port, channel, on_command=show))
    echo(f"HOTDESK_RESULT={transcript.variables.get('HOTDESK_RESULT', '(not set)')}")
    return transcript
