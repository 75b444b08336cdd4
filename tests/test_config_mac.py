"""Config loading and MAC parsing: every bad input is refused with a message naming it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotdesk.mac import InvalidMac, format_mac, normalise_mac
from hotdesk.settings import ConfigError, example_ini, load_config


def test_file_then_environment_override(tmp_path):
    path = tmp_path / "hotdesk.ini"
    path.write_text("[database]\nurl = sqlite:///x.db\n[ami]\nport = 5039\n"
                    "[prompts.asterisk]\nlogin_ok = custom-ok\n")
    cfg = load_config(path, {"HOTDESK_AMI_PORT": "6000", "HOTDESK_AGI_LISTEN": "0.0.0.0:4574"})
    assert cfg.database.url == "sqlite:///x.db"
    assert cfg.ami.port == 6000
    assert cfg.agi.listen == "0.0.0.0:4574"
    assert cfg.prompts("asterisk")["login_ok"] == "custom-ok"


@pytest.mark.parametrize("text,needle", [
    ("[ami]\nprot = 1\n", "unknown option 'prot'"),
    ("[amii]\n", "unknown section [amii]"),
    ("[ami]\nport = abc\n", "[ami] port"),
    ("[policy]\nmultiple_login = sometimes\n", "multiple_login"),
    ("[agi]\nlisten = 4573\n", "HOST:PORT"),
])
def test_bad_config_is_refused_clearly(tmp_path, text, needle):
    path = tmp_path / "bad.ini"
    path.write_text(text)
    with pytest.raises(ConfigError, match=None) as err:
        load_config(path, {})
    assert needle in str(err.value)


def test_example_config_round_trips(tmp_path):
    path = tmp_path / "example.ini"
    path.write_text(example_ini())
    assert load_config(path, {}) == load_config(None, {})


@pytest.mark.parametrize("raw", ["00:15:65:12:34:AB", "00-15-65-12-34-ab", "0015.6512.34ab",
                                 "001565 1234ab", " 001565-1234AB "])
def test_common_mac_forms(raw):
    assert normalise_mac(raw) == "0015651234ab"
    assert format_mac("0015651234ab") == "00:15:65:12:34:AB"


@pytest.mark.parametrize("raw", ["", "00:15:65:12:34", "00:15:65:12:34:AB:CD", "zz:15:65:12:34:ab",
                                 "01:00:5e:00:00:01", "00:00:00:00:00:00"])
def test_bad_macs_are_refused(raw):
    with pytest.raises(InvalidMac):
        normalise_mac(raw)


@given(st.text(max_size=60))
def test_mac_parser_never_crashes_and_output_is_canonical(text):
    try:
        mac = normalise_mac(text)
    except InvalidMac as exc:
        assert "MAC" in str(exc) or "multicast" in str(exc)
    else:
        assert len(mac) == 12 and mac == mac.lower()
        assert normalise_mac(format_mac(mac)) == mac


def test_configuration_reference_matches_the_code():
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text()
    block = doc.split("```ini\n", 1)[1].split("```", 1)[0]
    assert block == example_ini(), "regenerate docs/configuration.md (hotdesk config example)"
