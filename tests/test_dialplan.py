"""The shipped dialplan files are what ``hotdesk dialplan`` prints for the defaults, and
other feature codes reach both the dialplan and the phones' keys."""

from __future__ import annotations

import dataclasses
import re

import pytest

from hotdesk.settings import Config, ConfigError
from hotdesk.switch import dialplan


def with_codes(login: str, logout: str) -> Config:
    base = Config()
    return dataclasses.replace(base, policy=dataclasses.replace(
        base.policy, login_code=login, logout_code=logout))


@pytest.mark.parametrize("switch", ["asterisk", "freeswitch"])
def test_shipped_files_are_the_default_output(switch):
    for name, text in dialplan.render(Config(), switch).items():
        assert text == (dialplan.SHIPPED / name).read_text(), name


def test_3cx_style_codes_on_asterisk():
    cfg = dataclasses.replace(with_codes("*77*", "*78*"),
                              agi=dataclasses.replace(Config().agi, listen="10.0.0.5:4573"))
    [text] = dialplan.render(cfg, "asterisk").values()
    assert "exten => _*77*X.,1,NoOp(hotdesk login as ${EXTEN:4} from" in text
    assert "/login,${EXTEN:4}," in text
    assert "exten => *78*,1,NoOp(hotdesk logout" in text
    assert "HOTDESK_AGI=10.0.0.5:4573" in text
    assert "_*70X." not in text and "exten => *71," not in text


def test_3cx_style_codes_on_freeswitch():
    files = dialplan.render(with_codes("*77*", "*78*"), "freeswitch")
    for text in files.values():
        login = re.search(r'expression="\^(.*)\(\\d\+\)\$"', text).group(1)
        assert re.fullmatch(login + r"(\d+)", "*77*101")
        assert not re.fullmatch(login + r"(\d+)", "*70101")
        assert r'expression="^\*78\*$"' in text


@pytest.mark.parametrize("login,logout", [("*7", "*71"), ("*70", "70a"), ("", "*71")])
def test_codes_that_cannot_work_are_refused(login, logout):
    with pytest.raises(ConfigError):
        dialplan.render(with_codes(login, logout), "asterisk")


def test_cli_prints_the_include(tmp_path):
    from hotdesk_cli.main import main

    assert main(["dialplan", "freeswitch", "--output", str(tmp_path)]) == 0
    assert (tmp_path / "hotdesk.xml").read_text() == (
        dialplan.SHIPPED / "freeswitch" / "hotdesk.xml").read_text()


@pytest.mark.parametrize("name", ["hotdesk.xml", "hotdesk-idle.xml"])
def test_no_preprocessor_line_hides_in_a_comment(name):
    # FreeSWITCH's pre-processor runs X-PRE-PROCESS lines even inside XML comments: one
    # there silently set hotdesk_esl over vars.xml's value.
    text = (dialplan.SHIPPED / "freeswitch" / name).read_text()
    assert "X-PRE-PROCESS" not in text
