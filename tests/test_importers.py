"""User importers: real-looking PBX files, and garbage that must never crash them."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hotdesk.admin import importers
from hotdesk.admin.inventory import default_tenant
from hotdesk.hashing import verify_pin
from hotdesk.store.models import User

PJSIP = """
[endpoint-tpl](!)
type=endpoint
context=from-internal
disallow=all
allow=ulaw

[auth-tpl](!)
type=auth
auth_type=userpass

[101](endpoint-tpl)
auth=101-auth
aors=101
callerid="Alice Smith" <101>

[101-auth](auth-tpl)
username=101
password=alice-sip

[101]
type=aor
max_contacts=1

[reception](endpoint-tpl)
auth=reception-auth
callerid=Front Desk <200>

[reception-auth](auth-tpl)
username=reception
password=front-sip

[broken](endpoint-tpl)
callerid=nobody
this line has no equals sign
"""

VOICEMAIL = """
[general]
format=wav49

[default]
101 => 4242,Alice S,alice@example.com,,attach=yes
200 => -9876,Front Desk
300 => 12,Too Short
"""

FS_XML = """<include>
  <user id="1001">
    <params>
      <param name="password" value="fs-secret"/>
      <param name="vm-password" value="1001"/>
    </params>
    <variables>
      <variable name="effective_caller_id_name" value="Extension 1001"/>
    </variables>
  </user>
  <user id="1002">
    <params><param name="password" value="$${default_password}"/></params>
  </user>
  <user id="bob"/>
</include>"""


def test_asterisk_endpoints_templates_auth_and_voicemail():
    result = importers.parse_asterisk(PJSIP, VOICEMAIL)
    by_ext = {r.extension: r for r in result.records}
    assert set(by_ext) == {"101", "200"}
    alice = by_ext["101"]
    assert (alice.name, alice.sip_username, alice.sip_password, alice.pin) == (
        "Alice Smith", "101", "alice-sip", "4242")
    desk = by_ext["200"]
    assert (desk.sip_username, desk.sip_password, desk.pin) == ("reception", "front-sip", "9876")
    messages = " ".join(p.message for p in result.problems)
    assert "[broken] has no numeric extension" in messages
    assert "not a 'key = value' line" in messages


def test_freeswitch_directory():
    result = importers.parse_freeswitch(FS_XML)
    [first, second] = result.records
    assert (first.extension, first.name, first.sip_password, first.pin) == (
        "1001", "Extension 1001", "fs-secret", "1001")
    assert second.sip_password == ""
    messages = " ".join(p.message for p in result.problems)
    assert "default_password" in messages and "'bob'" in messages


def test_freeswitch_refuses_entities_and_reports_bad_xml():
    assert importers.parse_freeswitch('<!DOCTYPE x [<!ENTITY a "b">]><x/>').problems
    result = importers.parse_freeswitch("<include><user id='1'>")
    assert result.records == [] and "not valid XML" in result.problems[0].message


def test_csv_rows_header_and_errors():
    text = ("extension,name,pin,sip_password,hotdesk\n"
            "101,Alice,1234,pw1,yes\n"
            "102,Bob,12,pw2,no\n"
            "abc,Nobody\n"
            "103,Carol,,pw3,maybe\n"
            "104,Dan\n")
    result = importers.parse_csv(text)
    assert [(r.extension, r.hotdesk, r.pin) for r in result.records] == [
        ("101", True, "1234"), ("104", None, None)]
    assert [p.line for p in result.problems] == [3, 4, 5]


def test_apply_import_creates_updates_and_hashes_pins(runtime, alice):
    records = importers.parse_asterisk(PJSIP, VOICEMAIL).records
    summary = importers.apply_import(runtime.db, default_tenant(), records,
                                     enable_hotdesk=True, actor="test")
    assert summary.created == ["200"] and summary.updated == ["101"]
    user = User.get(User.extension == "101")
    assert user.display_name == "Alice Smith" and verify_pin(user.pin_hash, "4242")
    assert "4242" not in user.pin_hash
    assert User.get(User.extension == "200").hotdesk_enabled


def test_switch_mode_import_keeps_sip_passwords_on_the_switch(runtime):
    records = importers.parse_asterisk(PJSIP, VOICEMAIL).records
    assert any(r.sip_password for r in records)
    summary = importers.apply_import(runtime.db, default_tenant(), records,
                                     store_sip_passwords=False)
    assert summary.created
    assert all(u.sip_password == "" for u in User.select())


def test_apply_import_skips_with_reasons(runtime, desk):
    records = [importers.ImportRecord(extension="8001"), importers.ImportRecord(extension="5"),
               importers.ImportRecord(extension="5")]
    progress = []
    summary = importers.apply_import(runtime.db, default_tenant(), records,
                                     progress=lambda d, t: progress.append((d, t)))
    assert summary.created == ["5"]
    reasons = dict(summary.skipped)
    assert "idle extension" in reasons["8001"] and "twice" in reasons["5"]
    assert progress[-1] == (3, 3)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400), st.text(max_size=200))
def test_parsers_never_crash_on_garbage(text, other):
    for result in (importers.parse_asterisk(text, other), importers.parse_freeswitch(text),
                   importers.parse_csv(text)):
        for record in result.records:
            assert record.extension.isdigit() and record.extension.isascii()
            assert record.pin is None or (record.pin.isdigit() and 4 <= len(record.pin) <= 8)


_LINES = st.sampled_from(["[101]", "[tpl](!)", "[x](tpl,missing)", "type=endpoint",
                          "type=auth", "auth=101", "password=p", "callerid=A <5>",
                          "101 => 1234,A", "[default]", "; comment", "=", "[", "]()"])


@settings(max_examples=150, deadline=None)
@given(st.lists(_LINES, max_size=30), st.lists(_LINES, max_size=10))
def test_asterisk_parser_on_config_like_garbage(lines, vm_lines):
    result = importers.parse_asterisk("\n".join(lines), "\n".join(vm_lines))
    assert all(r.extension.isdigit() for r in result.records)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.from_regex(r"\A[0-9]{1,6}\Z"), st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=20)), max_size=10))
def test_csv_round_trip(rows):
    import csv
    import io
    buf = io.StringIO()
    csv.writer(buf).writerows([(ext, name, "", "", "") for ext, name in rows])
    result = importers.parse_csv(buf.getvalue())
    expected = [(e, n.strip()[:100]) for e, n in rows if e.lower() != "extension"]
    assert [(r.extension, r.name) for r in result.records] == expected
