"""``hotdesk simulate --switch asterisk``: one call against the running FastAGI server.

Builds the call the way Asterisk would for a phone in the database (its idle endpoint
when idle, the logged-in user's SIP user otherwise) and prints every command and reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hotdesk.admin.inventory import registered_endpoint
from hotdesk.settings import Config, parse_listen
from hotdesk.store.models import Device, User
from hotdesk_agi.simulate import AsteriskChannel, CallSetup, Transcript, place_call


def simulate(config: Config, device: Device, feature: str, extension: str = "",
             pin: str = "", source: str = "", echo: Callable[[str], None] = print,
             switch_pin: str | None = None) -> Transcript:
    """``switch_pin``: the voicemail PIN this simulated Asterisk holds for the user
    (default: the PIN the caller keys), read by hotdesk with ``VM_INFO``."""
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
        if "VM_INFO(" in command and reply:
            shown = "200 result=1 (****)"  # the voicemail PIN: never printed
        echo(f"  >> {command}\n  << {shown}")

    user = User.get_or_none((User.tenant == device.tenant_id) & (User.extension == extension))
    box = f"{(user.voicemail_box if user else '') or extension}@" \
          f"{(user.voicemail_context if user else '') or 'default'}"
    channel = AsteriskChannel(setup, digits=[pin] * config.policy.pin_tries_per_call,
                              voicemail={box: pin if switch_pin is None else switch_pin})
    transcript = asyncio.run(place_call(host, port, channel, on_command=show))
    echo(f"HOTDESK_RESULT={transcript.variables.get('HOTDESK_RESULT', '(not set)')}")
    return transcript
