"""Metrics over real HTTP (parsed with prometheus_client.parser), heartbeats, status."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.serving import make_server

from hotdesk.calls.service import CallContext
from hotdesk.ops import health, metrics, status
from hotdesk.runtime import Runtime
from hotdesk.settings import MetricsConfig
from hotdesk.store.models import Heartbeat, OutboxNotify
from hotdesk_cli.main import main as cli_main
from webadmin.app import create_app


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
def web(runtime: Runtime) -> Iterator[tuple[str, Runtime]]:
    rt = dataclasses.replace(runtime, config=dataclasses.replace(
        runtime.config, metrics=MetricsConfig(token="scrape-token-1", allow_networks="")))
    server = make_server("127.0.0.1", 0, create_app(rt), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", rt
    finally:
        server.shutdown()
        thread.join(timeout=10)


def ctx() -> CallContext:
    return CallContext(switch="asterisk", call_id="m1", endpoint="8001",
                       source="192.0.2.10:5060")


def test_web_metrics_reports_database_state(web, alice, desk, desk2):
    base, rt = web
    rt.service.login(desk.id, "101", "1234", ctx())
    rt.service.login(desk.id, "101", "0000", ctx())
    health.report("ami", "down", "connection refused", node="node-a")
    health.report("esl", "up", "", node="node-b")
    assert requests.get(f"{base}/metrics", timeout=10).status_code == 403
    wrong = requests.get(f"{base}/metrics", headers={"Authorization": "Bearer nope"},
                         timeout=10)
    assert wrong.status_code == 403
    resp = requests.get(f"{base}/metrics", headers={"Authorization": "Bearer scrape-token-1"},
                        timeout=10)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/plain")
    got = samples(resp.text)
    assert got[("hotdesk_active_sessions", ())] == 1
    assert got[("hotdesk_outbox_rows", (("status", "pending"),))] == 1
    assert got[("hotdesk_outbox_rows", (("status", "sent"),))] == 0
    assert got[("hotdesk_login_attempts", (("result", "ok"), ("window", "5m")))] == 1
    assert got[("hotdesk_login_attempts", (("result", "wrong_pin"), ("window", "1h")))] == 1
    assert got[("hotdesk_devices", (("state", "pending"),))] == 2
    assert got[("hotdesk_component_up", (("component", "ami"), ("node", "node-a")))] == 0
    assert got[("hotdesk_component_up", (("component", "esl"), ("node", "node-b")))] == 1
    assert got[("hotdesk_outbox_oldest_pending_seconds", ())] >= 0


def test_web_metrics_need_the_token_even_from_loopback_or_allowed_networks(runtime):
    """Phones reach the web port (and a reverse proxy makes everyone loopback): an
    address alone never opens /metrics there."""
    from webadmin.metrics import allowed
    assert not allowed("127.0.0.1", "", "", "")
    assert not allowed("192.0.2.5", "", "", "192.0.2.0/24, 10.0.0.0/8")
    assert not allowed("192.0.2.5", "", "tok", "")
    assert allowed("192.0.2.5", "Bearer tok", "tok", "")
    assert allowed("192.0.2.5", "Bearer tok", "tok", "192.0.2.0/24")
    assert not allowed("198.51.100.1", "Bearer tok", "tok", "192.0.2.0/24")
    assert not allowed("not-an-ip", "Bearer tok", "tok", "0.0.0.0/0")


def test_web_metrics_without_a_token_configured_is_off_even_for_loopback(runtime):
    app = create_app(runtime)
    response = app.test_client().get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert response.status_code == 403
    assert "[metrics] token" in response.get_data(as_text=True)


def test_process_metrics_port_serves_counters(runtime):
    server = metrics.serve_process_metrics("127.0.0.1:0")
    try:
        metrics.record_login("wrong_pin")
        metrics.record_login("ok")
        metrics.set_connection("ami", True)
        text = requests.get(f"http://127.0.0.1:{server.server_port}/metrics", timeout=10).text
    finally:
        server.shutdown()
    got = samples(text)
    assert got[("hotdesk_logins_total", (("result", "ok"),))] >= 1
    assert got[("hotdesk_pin_failures_total", ())] >= 1
    assert got[("hotdesk_switch_connection_up", (("component", "ami"),))] == 1
    assert metrics.serve_process_metrics("") is None


def test_heartbeat_since_moves_only_on_state_change(runtime):
    t0 = datetime(2024, 3, 5, 9, 0)
    assert health.report("ami", "up", "connected", node="n1", now=t0)
    assert health.report("ami", "up", "still", node="n1", now=t0 + timedelta(minutes=1))
    [beat] = health.read_all()
    assert (beat.since, beat.updated_at, beat.detail) == (t0, t0 + timedelta(minutes=1), "still")
    health.report("ami", "down", "EOF", node="n1", now=t0 + timedelta(minutes=2))
    [beat] = health.read_all()
    assert beat.state == "down" and beat.since == t0 + timedelta(minutes=2)
    assert Heartbeat.select().count() == 1
    with pytest.raises(ValueError):
        health.report("ami", "sideways")
    assert health.prune(timedelta(hours=1), now=t0 + timedelta(hours=2)) == 1


def test_heartbeat_report_never_raises_when_database_is_gone(runtime, monkeypatch):
    from peewee import OperationalError

    def broken(*a, **kw):  # type: ignore[no-untyped-def]
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(Heartbeat, "insert", broken)
    assert health.report("ami", "up") is False


def test_status_screen(runtime, alice, desk, desk2, capsys, monkeypatch):
    runtime.service.login(desk.id, "101", "1234", ctx())
    health.report("ami", "up", "connected", node="pbx-1")
    health.report("worker", "up", "expired=0", node="pbx-1")
    OutboxNotify.update(status="failed").where(OutboxNotify.device == desk2).execute()
    snap = status.collect()
    assert snap.active_sessions == 1 and snap.outbox == {"pending": 1}
    assert snap.last_worker_run is not None
    text = status.render(snap)
    assert "ami" in text and "UP" in text and "Active sessions: 1" in text
    assert "Outbox: pending 1, sent 0" in text and "2 pending config" in text
    monkeypatch.setenv("HOTDESK_DATABASE_URL", runtime.config.database.url)
    assert cli_main(["status"]) == 0
    out = capsys.readouterr().out
    assert "Last worker run:" in out and "never" not in out
    assert "00:15:65:12:34:AB" in out and "wants v2, fetched v0" in out
