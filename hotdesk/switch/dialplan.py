"""The dialplan include files for the configured feature codes and listen addresses.

The files shipped in ``dialplan/`` are exactly what this prints for the default
configuration (a test holds them to it), so ``[policy] login_code = *77*`` changes the
phones' keys and the switch's dialplan alike: ``hotdesk dialplan asterisk`` /
``hotdesk dialplan freeswitch`` print the files to copy, never a half-configurable mix.
"""

from __future__ import annotations

import re
from pathlib import Path

from hotdesk.settings import Config, ConfigError

SHIPPED = Path(__file__).resolve().parents[2] / "dialplan"
DEFAULT_LOGIN, DEFAULT_LOGOUT = "*70", "*71"
DEFAULT_AGI, DEFAULT_ESL = "127.0.0.1:4573", "127.0.0.1:8084"
FILES = {"asterisk": ["asterisk/extensions_hotdesk.conf"],
         "freeswitch": ["freeswitch/hotdesk.xml", "freeswitch/hotdesk-idle.xml"]}
# Characters a feature code may hold: what a phone can dial.
CODE = re.compile(r"^[0-9*#]{1,8}$")


def _check_codes(login: str, logout: str) -> None:
    for name, code in (("login_code", login), ("logout_code", logout)):
        if not CODE.match(code):
            raise ConfigError(f"[policy] {name} = {code!r}: use 1 to 8 of 0-9, * and #")
    if logout.startswith(login) or login.startswith(logout):
        raise ConfigError(f"[policy] login_code {login!r} and logout_code {logout!r} must not "
                          "be prefixes of each other: one would shadow the other")


def asterisk(text: str, login: str, logout: str, agi_listen: str) -> str:
    """extensions_hotdesk.conf for these codes; ``_`` patterns take * and # literally."""
    text = text.replace(f"HOTDESK_AGI={DEFAULT_AGI}", f"HOTDESK_AGI={agi_listen}")
    text = text.replace(f"_{DEFAULT_LOGIN}X.", f"_{login}X.")
    text = text.replace("${EXTEN:3}", f"${{EXTEN:{len(login)}}}")
    text = text.replace(f"exten => {DEFAULT_LOGOUT},", f"exten => {logout},")
    return _comments(text, login, logout)


def freeswitch(text: str, login: str, logout: str, esl_listen: str) -> str:
    """hotdesk.xml / hotdesk-idle.xml for these codes (regular expressions, escaped)."""
    text = text.replace(r'expression="^\*70(\d+)$"', f'expression="^{re.escape(login)}(\\d+)$"')
    text = text.replace(r'expression="^\*71$"', f'expression="^{re.escape(logout)}$"')
    text = text.replace(f"hotdesk_esl={DEFAULT_ESL}", f"hotdesk_esl={esl_listen}")
    return _comments(text, login, logout)


def _comments(text: str, login: str, logout: str) -> str:
    return (text.replace(f"{DEFAULT_LOGIN}<", f"{login}<").replace(f"{DEFAULT_LOGIN}/", f"{login}/")
            .replace(f"/{DEFAULT_LOGOUT}", f"/{logout}")
            .replace(f", {DEFAULT_LOGOUT} ", f", {logout} ")
            .replace(f"and {DEFAULT_LOGOUT} ", f"and {logout} ")
            .replace(f"{DEFAULT_LOGOUT} logout", f"{logout} logout"))


def render(config: Config, switch: str) -> dict[str, str]:
    """The include files for ``switch`` ("asterisk" | "freeswitch"): name -> content."""
    login, logout = config.policy.login_code, config.policy.logout_code
    _check_codes(login, logout)
    out = {}
    for name in FILES[switch]:
        text = (SHIPPED / name).read_text()
        if switch == "asterisk":
            out[name] = asterisk(text, login, logout, config.agi.listen)
        else:
            out[name] = freeswitch(text, login, logout, config.esl.listen)
    return out
