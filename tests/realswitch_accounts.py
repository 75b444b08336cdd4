"""Helpers for the real-switch tests of accounts kept on the switch: switch config files
the test adds and takes away again (only its own lines), and the SIP account a rendered
config carries."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MARK = "hotdesk-test"


@contextmanager
def added_lines(path: Path, lines: list[str]) -> Iterator[None]:
    """Append ``lines`` (each tagged with a comment) to a switch config file; afterwards
    remove exactly those lines, whatever else changed in the file meanwhile."""
    tagged = [f"{line} ; {MARK}" if not line.startswith("<") else f"{line}<!-- {MARK} -->"
              for line in lines]
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("\n" + "\n".join(tagged) + "\n")
    try:
        yield
    finally:
        kept = [ln for ln in path.read_text(encoding="utf-8").split("\n") if ln not in tagged]
        while len(kept) > 1 and kept[-1] == "" and kept[-2] == "":
            kept.pop()
        path.write_text("\n".join(kept), encoding="utf-8")


@contextmanager
def own_file(path: Path, text: str = "") -> Iterator[Path]:
    """A config file that belongs to the test, deleted afterwards."""
    path.write_text(text, encoding="utf-8")
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def config_account(text: str) -> tuple[str, str]:
    """(auth user, password) of line 1 in a rendered Yealink config."""
    user = re.search(r"^account\.1\.auth_name = (.*)$", text, re.M)
    password = re.search(r"^account\.1\.password = (.*)$", text, re.M)
    assert user and password, text
    return user.group(1), password.group(1)


def pjsip_user(name: str, password: str, context: str = "phones",
               max_contacts: int = 2) -> str:
    """A hot-desk user as docs/asterisk.md shows it; the mailbox on the aor (MWI by
    subscription only), so no unsolicited NOTIFY reaches the test phone."""
    return (f"[{name}]\ntype = endpoint\ncontext = {context}\ndisallow = all\nallow = ulaw\n"
            f"direct_media = no\nrtp_symmetric = yes\nforce_rport = yes\n"
            f"auth = {name}\naors = {name}\ndtmf_mode = info\n"
            f'callerid = "Test {name}" <{name}>\n\n'
            f"[{name}]\ntype = auth\nauth_type = userpass\nusername = {name}\n"
            f"password = {password}\n\n"
            f"[{name}]\ntype = aor\nmax_contacts = {max_contacts}\nremove_existing = yes\n"
            f"mailboxes = {name}@default\n")
