"""Prometheus metrics: in-process counters the adapters bump, and database-derived gauges.

hotdesk runs as several processes (agi, esl, web, worker, on several nodes), so two
kinds of metrics exist. Counters of things a process did (a login it handled, a
NOTIFY it sent) live in that process and are scraped from its ``[metrics] listen``
port. Facts about the shared state (active sessions, outbox depth, devices waiting
for their config) are read from the database by :class:`DatabaseCollector`, served
once by ``hotdesk web`` at ``/metrics``, so every node reports the same truth.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from hotdesk.notify import reconcile
from hotdesk.ops import health
from hotdesk.settings import parse_listen
from hotdesk.store.models import LoginAttempt, Session, utcnow

log = logging.getLogger(__name__)

LOGINS = Counter("hotdesk_logins", "Login calls handled, by outcome", ["result"])
LOGOUTS = Counter("hotdesk_logouts", "Sessions ended, by reason", ["reason"])
PIN_FAILURES = Counter("hotdesk_pin_failures", "Wrong PINs keyed")
LOCKOUTS = Counter("hotdesk_lockouts", "Users locked out after too many wrong PINs")
NOTIFY_QUEUED = Counter("hotdesk_notify_queued", "NOTIFYs queued by this process, by why",
                        ["reason"])
NOTIFY_RESULTS = Counter("hotdesk_notify_results",
                         "NOTIFY send tries, by result (sent, retry, failed, switch_down)",
                         ["result"])
NOTIFY_SEND_SECONDS = Histogram("hotdesk_notify_send_seconds",
                                "Time the switch took to accept one NOTIFY",
                                buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
NOTIFY_QUEUE_DELAY_SECONDS = Histogram(
    "hotdesk_notify_queue_delay_seconds", "From queueing a NOTIFY to the switch accepting it",
    buckets=(.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900))
CONFIG_FETCHES = Counter("hotdesk_config_fetches", "Provisioning files served, by result",
                         ["result"])
SWITCH_CONNECTION = Gauge("hotdesk_switch_connection_up",
                          "1 while this process is connected to the switch (AMI/ESL)",
                          ["component"])
CALLS = Counter("hotdesk_calls", "*70/*71 calls handled, by switch, feature and result",
                ["switch", "feature", "result"])
WORKER_ACTIONS = Counter("hotdesk_worker_actions", "Things the worker did, by action",
                         ["action"])


def record_login(result: str) -> None:
    LOGINS.labels(result=result).inc()
    if result == "wrong_pin":
        PIN_FAILURES.inc()


def record_pin_failure() -> None:
    PIN_FAILURES.inc()


def record_lockout() -> None:
    LOCKOUTS.inc()


def record_logout(reason: str) -> None:
    LOGOUTS.labels(reason=reason).inc()


def record_notify_queued(reason: str) -> None:
    NOTIFY_QUEUED.labels(reason=reason).inc()


def record_call_outcome(switch: str, feature: str, outcome: str, pin_failures: int = 0,
                        lockout: bool = False) -> None:
    """Count one finished call: the one place both switch adapters feed call metrics."""
    CALLS.labels(switch=switch, feature=feature, result=str(outcome)).inc()
    if feature == "login":
        LOGINS.labels(result=str(outcome)).inc()
    elif str(outcome) == "logged_out":
        LOGOUTS.labels(reason="logout").inc()
    if pin_failures:
        PIN_FAILURES.inc(pin_failures)
    if lockout:
        LOCKOUTS.inc()


class _CallCounter:
    """What the call driver reports when a call ends (its typed results, not guesses)."""

    def call_finished(self, switch: str, feature: str, outcome: object, pin_failures: int,
                      lockout: bool) -> None:
        record_call_outcome(switch, feature, str(outcome), pin_failures, lockout)


CALLS_SEEN = _CallCounter()


def record_config_fetch(result: str) -> None:
    CONFIG_FETCHES.labels(result=result).inc()


def set_connection(component: str, up: bool) -> None:
    SWITCH_CONNECTION.labels(component=component).set(1 if up else 0)


def serve_process_metrics(listen: str):  # type: ignore[no-untyped-def]
    """Start this process's own /metrics port when ``[metrics] listen`` is set.

    Returns the HTTP server (``shutdown()`` stops it) or None when off or the port is taken.
    """
    if not listen:
        return None
    host, port = parse_listen(listen)
    try:
        server, _thread = start_http_server(port, addr=host)
    except OSError as exc:
        # Several processes on one node (``hotdesk run``) share the config file: give
        # each its own port (HOTDESK_METRICS_LISTEN); the process itself keeps working.
        log.warning("process metrics not served: cannot listen on %s (%s); give each "
                    "process its own [metrics] listen", listen, exc)
        return None
    log.info("process metrics on http://%s:%d/metrics", host, server.server_port)
    return server


# Login attempts are counted over these trailing windows.
ATTEMPT_WINDOWS = {"5m": timedelta(minutes=5), "1h": timedelta(hours=1),
                   "24h": timedelta(hours=24)}


class DatabaseCollector(Collector):
    """Gauges computed from the shared database at scrape time."""

    def __init__(self, clock=utcnow) -> None:  # type: ignore[no-untyped-def]
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now: datetime = self.clock()
        active = GaugeMetricFamily("hotdesk_active_sessions", "Hot-desk sessions logged in now")
        active.add_metric([], Session.select().where(Session.ended_at.is_null()).count())
        yield active

        depth = GaugeMetricFamily("hotdesk_outbox_rows", "Outbox NOTIFY rows by status",
                                  labels=["status"])
        by_status = {s: 0 for s in ("pending", "sent", "failed", "superseded")}
        for status, n in reconcile.outbox_counts().items():
            by_status[status] = n
        for status, n in sorted(by_status.items()):
            depth.add_metric([status], n)
        yield depth

        oldest = GaugeMetricFamily("hotdesk_outbox_oldest_pending_seconds",
                                   "Age of the oldest pending NOTIFY (0 when none)")
        oldest.add_metric([], reconcile.oldest_pending_age(now))
        yield oldest

        attempts = GaugeMetricFamily("hotdesk_login_attempts",
                                     "Login attempts in the trailing window, by result",
                                     labels=["window", "result"])
        for label, span in ATTEMPT_WINDOWS.items():
            query = (LoginAttempt.select(LoginAttempt.result, LoginAttempt.id)
                     .where(LoginAttempt.at >= now - span))
            counts: dict[str, int] = {"ok": 0, "wrong_pin": 0, "locked": 0}
            for row in query:
                counts[row.result] = counts.get(row.result, 0) + 1
            for result, n in sorted(counts.items()):
                attempts.add_metric([label, result], n)
        yield attempts

        states = GaugeMetricFamily("hotdesk_devices", "Hot-desk phones by provisioning state",
                                   labels=["state"])
        for state, n in reconcile.provisioning_state_counts().items():
            states.add_metric([state], n)
        yield states

        conn = GaugeMetricFamily("hotdesk_component_up",
                                 "Switch connections and processes by heartbeat (1 = up)",
                                 labels=["component", "node"])
        seen = GaugeMetricFamily("hotdesk_component_last_report_seconds",
                                 "Seconds since the component last reported",
                                 labels=["component", "node"])
        for beat in health.read_all():
            conn.add_metric([beat.component, beat.node], 1 if beat.state == "up" else 0)
            seen.add_metric([beat.component, beat.node],
                            max((now - beat.updated_at).total_seconds(), 0.0))
        yield conn
        yield seen


def database_registry() -> CollectorRegistry:
    """A registry holding only the database-derived gauges (``hotdesk web`` /metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    return registry
