"""``hotdesk rps …``, ``hotdesk pnp …`` and ``device add --method rps`` end to end."""

from __future__ import annotations

import socket

from hotdesk.provisioning.discovery import Sighting, record_sighting
from hotdesk.store.models import Device
from hotdesk_cli.main import main
from hotdesk_pnp.sip import build_response, parse_message
from tests.conftest import make_device
from tests.fakes.rps import RedirectAccount, fake_redirect_service


def write_config(tmp_path, database_url: str, **sections: dict[str, str]) -> str:
    lines = ["[database]", f"url = {database_url}"]
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {v}" for k, v in values.items()]
    path = tmp_path / "hotdesk.ini"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_device_add_rps_registers_and_sync_reports_each_phone(runtime, tmp_path, capsys):
    acct = RedirectAccount()
    # Made before main() runs: main() rebinds the models to its own connection.
    make_device(runtime, mac="00:15:65:00:00:22", extension="8022", method="rps", rps=True)
    acct.elsewhere.add("001565000022")
    with fake_redirect_service(acct) as url:
        cfg = write_config(tmp_path, runtime.config.database.url,
                           rps={"yealink_url": url, "yealink_username": acct.username,
                                "yealink_password": acct.password})
        status = main(["-c", cfg, "device", "add", "--mac", "00:15:65:00:00:21",
                       "--extension", "8021", "--sip-password", "pw", "--method", "rps"])
        out = capsys.readouterr().out
        assert status == 0, out
        assert "RPS: 00:15:65:00:00:21 registered with Yealink RPS (OK)" in out
        assert "001565000021".upper() in acct.devices
        status = main(["-c", cfg, "rps", "sync"])
        captured = capsys.readouterr()
        assert status == 1
        assert "00:15:65:00:00:21 registered with Yealink RPS (OK)" in captured.out
        assert ("00:15:65:00:00:22: FAILED: error:the mac(s) 001565000022 has been registered "
                "by another account") in captured.out
        assert "1 of 2 phones registered" in captured.err
        assert acct.password not in captured.out + captured.err
        assert main(["-c", cfg, "rps", "deregister", "00:15:65:00:00:21"]) == 0
        assert "removed from Yealink RPS" in capsys.readouterr().out
        assert acct.devices == {}
        assert main(["-c", cfg, "device", "remove", "00:15:65:00:00:22"]) == 0
        assert "Remove from RPS failed" in capsys.readouterr().err
        assert Device.get_or_none(Device.mac == "001565000022") is None


def test_device_add_rps_without_service_says_so(runtime, tmp_path, capsys):
    cfg = write_config(tmp_path, runtime.config.database.url)
    assert main(["-c", cfg, "device", "add", "--mac", "00:15:65:00:00:23", "--extension",
                 "8023", "--sip-password", "pw", "--method", "rps"]) == 0
    assert "no redirect service configured for yealink" in capsys.readouterr().out


def test_pnp_list_and_push_to_a_seen_phone(runtime, tmp_path, capsys):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as phone:
        phone.bind(("127.0.0.1", 0))
        phone.settimeout(5)
        address = f"127.0.0.1:{phone.getsockname()[1]}"
        record_sighting(runtime.db, Sighting("00156500aa01", "Yealink", "T46U", "108.86.0.1",
                                             address))
        cfg = write_config(tmp_path, runtime.config.database.url,
                           pnp={"t1_ms": "100", "notify_timeout_seconds": "5"})
        assert main(["-c", cfg, "pnp", "list"]) == 0
        listing = capsys.readouterr().out
        assert "00:15:65:00:AA:01" in listing and "T46U" in listing and address in listing
        # Adding the seen phone pushes its URL right away; the "phone" answers the NOTIFY.
        import threading

        got: list[bytes] = []

        def answer() -> None:
            data, source = phone.recvfrom(4096)
            got.append(data)
            notify = parse_message(data)
            phone.sendto(build_response(notify, 200, "OK", "ph1"), source)

        t = threading.Thread(target=answer)
        t.start()
        assert main(["-c", cfg, "device", "add", "--mac", "00:15:65:00:AA:01", "--extension",
                     "8031", "--sip-password", "pw"]) == 0
        t.join(10)
        out = capsys.readouterr().out
        assert f"PnP URL push: sent to {address}" in out
        notify = parse_message(got[0])
        device = Device.get(Device.mac == "00156500aa01")
        assert notify.body.decode().endswith(f"/{device.prov_token}/")
        assert notify.get("Content-Type") == "application/url"
        assert notify.get("Event") == ('ua-profile;profile-type="device";vendor="Yealink";'
                                       'model="T46U";version="108.86.0.1"')
        assert main(["-c", cfg, "pnp", "list"]) == 0
        assert "00:15:65:00:AA:01" not in capsys.readouterr().out  # adopted now
    # Nobody answers any more: the push says so instead of hanging.
    cfg = write_config(tmp_path, runtime.config.database.url,
                       pnp={"t1_ms": "50", "notify_timeout_seconds": "0.5"})
    assert main(["-c", cfg, "pnp", "push", "00:15:65:00:AA:01"]) == 1
    assert "no answer" in capsys.readouterr().out


def test_push_to_an_unseen_phone(runtime, tmp_path, capsys):
    make_device(runtime, mac="00:15:65:00:aa:02", extension="8032")
    cfg = write_config(tmp_path, runtime.config.database.url)
    assert main(["-c", cfg, "pnp", "push", "00:15:65:00:aa:02"]) == 1
    assert "phone not yet seen" in capsys.readouterr().out
