"""``hotdesk admin create/token`` through the real command line entry point."""

from __future__ import annotations

from hotdesk.admin import admins
from hotdesk.store.models import Admin, ApiToken
from hotdesk_cli.main import main


def test_admin_create_and_token(runtime, config, monkeypatch, capsys):
    monkeypatch.setenv("HOTDESK_DATABASE_URL", config.database.url)
    assert main(["admin", "create", "--username", "boss", "--password", "long-enough-pw"]) == 0
    assert Admin.get(Admin.username == "boss").role == "system"
    assert main(["admin", "create", "--username", "t1", "--password", "long-enough-pw",
                 "--tenant", "default"]) == 0
    assert Admin.get(Admin.username == "t1").role == "tenant"
    assert main(["admin", "create", "--username", "x", "--password", "short"]) == 1
    assert main(["admin", "create", "--username", "y", "--password", "long-enough-pw",
                 "--tenant", "nope.example"]) == 1
    capsys.readouterr()
    assert main(["admin", "token", "--username", "boss"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("hd_") and admins.admin_for_token(token).username == "boss"
    assert ApiToken.select().count() == 1
