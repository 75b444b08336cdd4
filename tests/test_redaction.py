"""No PIN and no SIP password reaches a log line, even at DEBUG."""

from __future__ import annotations

import io
import logging

import pytest

from hotdesk import logctx
from hotdesk.admin.inventory import DeviceSpec, add_device, add_user, default_tenant
from hotdesk.calls import callflow
from hotdesk.calls.service import CallContext
from hotdesk.notify.drain import LogSender
from hotdesk.notify.outbox import drain_once
from hotdesk.redact import MASK, redact
from hotdesk.runtime import setup_logging
from tests.calldrive import drive

PIN = "739146"
SIP_PASSWORD = "Zq8-user-sip-pw"
IDLE_PASSWORD = "Kx3-idle-sip-pw"
AMI_SECRET = "ami-Secr3t-value"
ESL_PASSWORD = "EslPw-ClueCon-42"


@pytest.fixture
def captured():
    """The real handler set-up of a hotdesk process, writing to a buffer; plus an
    unfiltered handler proving the secrets were really offered to the logging system."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    buffer, raw = io.StringIO(), io.StringIO()
    setup_logging("DEBUG", secrets=[AMI_SECRET, ESL_PASSWORD], stream=buffer)
    unfiltered = logging.StreamHandler(raw)
    root.handlers.insert(0, unfiltered)  # runs before the filtering handler
    try:
        yield buffer, raw
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])


def test_login_flow_logs_no_pin_or_password(runtime, captured):
    buffer, raw = captured
    add_user(runtime.db, default_tenant(), "101", name="Alice", pin=PIN,
             sip_password=SIP_PASSWORD, hotdesk=True)
    add_device(runtime.db, default_tenant(),
               DeviceSpec(mac="00:15:65:12:34:ab", extension="8001", sip_password=IDLE_PASSWORD))
    cfg = runtime.config
    prompts = cfg.prompts("asterisk")
    ctx = CallContext(switch="asterisk", call_id="call-77", endpoint="8001",
                      source="192.0.2.10:5060")
    with logctx.call_context(ctx.call_id):
        # The switch holds the voicemail PIN: it travels through the call, never a log.
        _, outcome = drive(runtime.service, callflow.login_call(ctx, "101", prompts, cfg.policy),
                           ctx, ["1111", PIN + "#"], voicemail={"101": PIN})
        assert outcome.value == "ok"
        drive(runtime.service, callflow.logout_call(ctx, prompts), ctx)
    drain_once(LogSender(), cfg.notify, "test")
    # Protocol dumps an adapter might log at DEBUG.
    log = logging.getLogger("hotdesk_agi.ami")
    log.debug("AMI >> %r", f"Action: Login\r\nUsername: hotdesk\r\nSecret: {AMI_SECRET}\r\n")
    log.debug("ESL >> %r", f"auth {ESL_PASSWORD}\n\n")
    log.debug("ESL << user_data vm-password=%s", PIN)
    log.info("rendered account.1.password = %s", SIP_PASSWORD)
    try:
        raise RuntimeError(f"boom password={SIP_PASSWORD}")
    except RuntimeError:
        log.exception("adapter failed")

    text = buffer.getvalue()
    assert "logged in on 001565" in text and "[call=call-77]" in text
    assert "NOTIFY" in text and "Traceback" in text
    for secret in (PIN, SIP_PASSWORD, IDLE_PASSWORD, AMI_SECRET, ESL_PASSWORD):
        assert secret not in text, f"{secret!r} leaked into the log"
    # The same records, unfiltered, did carry them: the scan above can fail.
    assert SIP_PASSWORD in raw.getvalue() and PIN in raw.getvalue()


@pytest.mark.parametrize("line, secret", [
    ("Secret: hunter22", "hunter22"),
    ("password=hunter22&x=1", "hunter22"),
    ('{"sip_password": "hunter22"}', "hunter22"),
    ("vm-password: 4711", "4711"),
    ("b'auth hunter22\\n\\n'", "hunter22"),
    ("auth hunter22", "hunter22"),
    ("postgresql://hotdesk:hunter22@db:5432/hotdesk", "hunter22"),
    ("GET /prov/AbCdEfGhIjKlMnOpQrStUvWx12/001565123456.cfg", "AbCdEfGhIjKlMnOpQrStUvWx12"),
    ("pin=4711", "4711"),
])
def test_patterns_are_masked(line, secret):
    masked = redact(line)
    assert secret not in masked and MASK in masked


def test_harmless_text_is_kept():
    for line in ("pin_tries_per_call = 3", "ESL auth failed: -ERR invalid",
                 "user 101 logged in on 001565123456"):
        assert redact(line) == line
