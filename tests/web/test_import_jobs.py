"""CSV imports: bad bytes and open quotes are reported per row; an import survives a
kill -9 of ``hotdesk web`` (resumed by the restarted process, counted exactly)."""

from __future__ import annotations

import dataclasses
import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from hotdesk.admin import import_jobs, importers
from hotdesk.admin.inventory import default_tenant
from hotdesk.store.models import ImportJob, ImportRow, User
from tests.web.browser import free_port
from tests.web.conftest import PASSWORD, csrf_token


@pytest.fixture
def config(config):  # type: ignore[no-untyped-def]
    """Users' SIP passwords kept by hotdesk ([switch] credentials = hotdesk): what these
    tests change. (credentials = switch refuses them; see the test for that.)"""
    return dataclasses.replace(config, switch=dataclasses.replace(config.switch,
                                                                  credentials="hotdesk"))


def wait_job(client, url: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(url).json
        if job["state"] != "running":
            return job
        time.sleep(0.05)
    raise AssertionError(f"job still running: {job}")


def upload(client, data: bytes):  # type: ignore[no-untyped-def]
    token = csrf_token(client, "/users/import")
    return client.post("/users/import", data={
        "kind": "csv", "csrf_token": token, "main": (io.BytesIO(data), "users.csv")},
        content_type="multipart/form-data")


def test_invalid_utf8_is_reported_on_its_row_not_imported_as_replacement(root_client):
    data = ("101,Zoë Müller,1234\n".encode() + b"102,Jos\xe9 Latin1,2345\n"
            + "103,Chloé,3456\n".encode())
    response = upload(root_client, data)
    assert response.status_code == 302
    job = wait_job(root_client, response.headers["Location"] + ".json")
    assert job["created"] == ["101", "103"]
    assert job["problems"] == [{"line": 2, "message": "not UTF-8 text (byte 0xe9 at column 8); "
                                "save the file as UTF-8. This line was skipped"}]
    assert [u.display_name for u in User.select().order_by(User.extension)] == [
        "Zoë Müller", "Chloé"]
    assert not User.select().where(User.display_name.contains("\ufffd")).exists()


def test_an_open_quote_is_its_rows_problem_and_spares_the_next_rows():
    parsed = importers.parse_csv('101,"Alice Martin,1234\n102,Bob,2345\n103,"Chloe",3456\n')
    assert [r.extension for r in parsed.records] == ["102", "103"]
    assert parsed.records[1].name == "Chloe"
    assert [(p.line, p.message) for p in parsed.problems] == [
        (1, 'a quote (") is opened but not closed on this line; the row was skipped')]


def test_job_rows_commit_with_their_users_and_blank_secrets(runtime, sysadmin):
    parsed = importers.parse_csv("101,A,1234,pw1\n102,B,,pw2\n101,A again\n")
    job = import_jobs.create(runtime.db, default_tenant(), sysadmin.id, "admin:root", parsed,
                             enable_hotdesk=True)
    assert import_jobs.claim(job.id, "me") and not import_jobs.claim(job.id, "other")
    assert import_jobs.run(runtime, job.id, "me") == "finished"
    report = import_jobs.report(job.id)
    assert report["created"] == ["101", "102"] and report["done"] == 3
    assert report["skipped"] == [{"what": "101 (line 3)",
                                  "why": "extension appears twice in the file"}]
    assert all(r.payload == "{}" for r in ImportRow.select())  # no PIN left behind


def test_a_job_whose_lease_ran_out_is_taken_over_and_finishes_exactly(runtime, sysadmin):
    parsed = importers.parse_csv("".join(f"{200 + i},User {i}\n" for i in range(30)))
    job = import_jobs.create(runtime.db, default_tenant(), sysadmin.id, "admin:root", parsed,
                             enable_hotdesk=False)
    assert import_jobs.claim(job.id, "first")
    calls = iter(range(1000))
    # "first" stops after 10 rows (its process died)...
    import_jobs.run(runtime, job.id, "first", should_stop=lambda: next(calls) >= 10)
    assert ImportJob.get_by_id(job.id).done == User.select().count() == 10
    assert import_jobs.orphaned() == []  # ...its lease is still running
    ImportJob.update(lease_until=None).execute()  # ...and now it ran out
    assert import_jobs.orphaned() == [(job.id, "first")]
    assert import_jobs.claim(job.id, "second")
    assert import_jobs.run(runtime, job.id, "second") == "finished"
    report = import_jobs.report(job.id)
    assert report["created"] == [str(200 + i) for i in range(30)] and report["done"] == 30
    assert User.select().count() == 30


def _web(database_url: str, port: int, workdir: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTDESK_")}
    env.update(HOTDESK_DATABASE_URL=database_url, HOTDESK_WEB_LISTEN=f"127.0.0.1:{port}",
               HOTDESK_WEB_SECRET_KEY_FILE=str(workdir / "web.secret"))
    proc = subprocess.Popen([sys.executable, "-m", "hotdesk_cli", "web"], env=env,
                            stdout=open(workdir / f"web-{time.time()}.log", "wb"),
                            stderr=subprocess.STDOUT)
    for _ in range(150):
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok:
                return proc
        except requests.ConnectionError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("hotdesk web did not start")


def test_kill9_of_hotdesk_web_mid_import_resumes_and_counts_exactly(runtime, database_url,
                                                                     sysadmin, tmp_path):
    total = 1500
    csv_bytes = "".join(f"{3000 + i},User {i}\n" for i in range(total)).encode()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = _web(database_url, port, tmp_path)
    try:
        s = requests.Session()
        token = re.search(r'name="csrf_token" value="([^"]+)"',
                          s.get(base + "/signin").text).group(1)
        assert s.post(base + "/signin", data={"username": "root", "password": PASSWORD,
                                              "csrf_token": token}).ok
        token = re.search(r'name="csrf_token" value="([^"]+)"',
                          s.get(base + "/users/import").text).group(1)
        r = s.post(base + "/users/import", data={"kind": "csv", "csrf_token": token},
                   files={"main": ("users.csv", csv_bytes)}, allow_redirects=False)
        job_url = base + r.headers["Location"] + ".json"
        deadline = time.monotonic() + 60
        while s.get(job_url).json()["done"] < 100 and time.monotonic() < deadline:
            time.sleep(0.02)
        web.send_signal(signal.SIGKILL)
        web.wait(10)
        # What the database says was imported is exactly what was imported.
        job = ImportJob.get()
        assert job.state == "running" and 100 <= job.done < total
        assert User.select().count() == job.done
        assert ImportRow.select().where(ImportRow.outcome != "").count() == job.done
        web = _web(database_url, port, tmp_path)  # the restart takes the job over
        report = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            report = s.get(job_url).json()
            if report["state"] != "running":
                break
            time.sleep(0.2)
        assert report is not None and report["state"] == "finished", report
        assert report["done"] == total and len(report["created"]) == total
        assert sorted(report["created"]) == [str(3000 + i) for i in range(total)]
        assert User.select().count() == total
    finally:
        web.kill()
        web.wait(10)


def test_an_import_that_changes_a_logged_in_users_password_reaches_their_phone(runtime,
                                                                             sysadmin,
                                                                             alice, desk):
    from hotdesk.calls.service import CallContext
    from hotdesk.store.models import Device, OutboxNotify

    ctx = CallContext(switch="asterisk", call_id="c", endpoint="8001")
    runtime.service.login(desk.id, "101", "1234", ctx)
    version = Device.get_by_id(desk.id).config_version
    before = OutboxNotify.select().count()
    job = import_jobs.create(runtime.db, default_tenant(), sysadmin.id, "admin:root",
                             importers.parse_csv("101,Alice,,n3w-Secret\n"), False)
    assert import_jobs.claim(job.id, "me")
    assert import_jobs.run(runtime, job.id, "me") == "finished"
    assert import_jobs.report(job.id)["updated"] == ["101"]
    assert Device.get_by_id(desk.id).config_version == version + 1
    rows = list(OutboxNotify.select().order_by(OutboxNotify.id))[before:]
    assert [(r.endpoint, r.config_version) for r in rows] == [("101", version + 1)]
