"""Each vendor's rendered config read the way that vendor's phone reads it (Yealink
``key = value``, Poly XML attributes, Cisco flat XML elements, Grandstream P-values or
named items, Snom settings XML, Fanvil XML), for every model family a template claims,
idle -> logged in -> logged out, on LAN and SBC, over UDP, TCP and TLS."""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime

import pytest

from hotdesk.admin.inventory import add_user, default_tenant
from hotdesk.calls.service import CallContext
from hotdesk.provisioning import clock
from hotdesk.provisioning.render import make_environment, profile_for, render_profile
from hotdesk.provisioning.vendors import VENDORS, get_vendor
from hotdesk.store.models import Device
from tests.conftest import make_device

TRANSPORT = {"yealink": {"0": "udp", "1": "tcp", "2": "tls"},
             "polycom": {"UDPOnly": "udp", "TCPOnly": "tcp", "TLS": "tls"},
             "cisco": {"UDP": "udp", "TCP": "tcp", "TLS": "tls"},
             "grandstream": {"0": "udp", "1": "tcp", "2": "tls"},
             "fanvil": {"0": "udp", "1": "tcp", "3": "tls"}}


@dataclass
class Read:
    """What the phone will do, as read from its file."""

    server: str
    port: str
    transport: str
    user: str
    auth_user: str
    password: str
    proxy: str
    label: str
    keys: list[tuple[str, str]] = field(default_factory=list)  # (label, value), set ones
    clock: str = ""  # offset or rule the phone gets
    dst_off: bool = False  # the phone's own DST rule switched off
    url: str = ""  # where the phone fetches next


def _tr(vendor: str, value: str) -> str:
    return TRANSPORT[vendor][value]


def read_yealink(files: dict[str, str]) -> Read:
    text = next(v for k, v in files.items() if k.endswith(".cfg"))
    kv: dict[str, str] = {}
    for line in text.splitlines()[1:]:
        if line and not line.startswith("#"):
            key, _, value = line.partition(" = ")
            kv[key] = value.strip()
    proxy = (f"{kv['account.1.outbound_proxy.1.address']}:{kv['account.1.outbound_proxy.1.port']}"
             if kv["account.1.outbound_proxy_enable"] == "1" else "")
    keys = [(kv[f"linekey.{n}.label"], kv[f"linekey.{n}.value"]) for n in range(2, 11)
            if kv.get(f"linekey.{n}.type", "0") != "0"]
    clock = kv["local_time.time_zone"]
    if kv["local_time.summer_time"] == "1":
        assert kv["local_time.dst_time_type"] == "1"
        clock += " " + " ".join(kv[f"local_time.{k}"] for k in ("start_time", "end_time",
                                                                 "offset_time"))
    return Read(kv["account.1.sip_server.1.address"], kv["account.1.sip_server.1.port"],
                _tr("yealink", kv["account.1.sip_server.1.transport_type"]),
                kv["account.1.user_name"], kv["account.1.auth_name"], kv["account.1.password"],
                proxy, kv["account.1.label"], keys, clock,
                kv["local_time.summer_time"] == "0", kv["static.auto_provision.server.url"])


def read_polycom(files: dict[str, str]) -> Read:
    master = ET.fromstring(next(v for k, v in files.items() if "-" not in k))
    attrs: dict[str, str] = {}
    for name in master.get("CONFIG_FILES", "").split(","):
        for el in ET.fromstring(files[name.strip()]).iter():
            attrs.update(el.attrib)
    proxy = (f"{attrs['reg.1.outboundProxy.address']}:{attrs['reg.1.outboundProxy.port']}"
             if attrs["reg.1.outboundProxy.address"] else "")
    keys = [(attrs[f"softkey.{n}.label"], attrs[f"softkey.{n}.action"].removesuffix("$Tinvite$"))
            for n in range(1, 11) if attrs[f"softkey.{n}.enable"] == "1"]
    keys += [(attrs[f"attendant.resourceList.{n}.label"],
              attrs[f"attendant.resourceList.{n}.address"])
             for n in range(1, 11) if attrs[f"attendant.resourceList.{n}.address"]]
    clock = attrs["tcpIpApp.sntp.gmtOffset"]
    if attrs["tcpIpApp.sntp.daylightSavings.enable"] == "1":
        clock += " " + " ".join(
            "/".join(attrs[f"tcpIpApp.sntp.daylightSavings.{edge}.{k}"]
                     for k in ("month", "date", "dayOfWeek", "dayOfWeek.lastInMonth", "time"))
            for edge in ("start", "stop"))
    return Read(attrs["reg.1.server.1.address"], attrs["reg.1.server.1.port"],
                _tr("polycom", attrs["reg.1.server.1.transport"]), attrs["reg.1.address"],
                attrs["reg.1.auth.userId"], attrs["reg.1.auth.password"], proxy,
                attrs["reg.1.label"], keys, clock,
                attrs["tcpIpApp.sntp.daylightSavings.enable"] == "0",
                attrs["device.prov.serverName"])


def read_cisco(files: dict[str, str]) -> Read:
    flat = {el.tag: el.text or "" for el in ET.fromstring(next(iter(files.values())))}
    host, _, port = flat["Proxy_1_"].rpartition(":")
    keys = []
    for n in range(2, 11):
        fn = dict(p.split("=", 1) for p in flat[f"Extended_Function_{n}_"].split(";") if p)
        if fn:
            keys.append((fn["nme"], fn["ext"].removesuffix("@$PROXY")))
    assert flat["Auth_Resync-Reboot_1_"] == "No" and flat["Resync_From_SIP"] == "Yes"
    clock = flat["Time_Zone"]
    if flat["Daylight_Saving_Time_Enable"] == "Yes":
        clock += " " + flat["Daylight_Saving_Time_Rule"]
    return Read(host, port, _tr("cisco", flat["SIP_Transport_1_"]), flat["User_ID_1_"],
                flat["Auth_ID_1_"], flat["Password_1_"],
                flat["Outbound_Proxy_1_"] if flat["Use_Outbound_Proxy_1_"] == "Yes" else "",
                flat["Station_Display_Name"], keys, clock,
                flat["Daylight_Saving_Time_Enable"] == "No",
                flat["Profile_Rule"].removesuffix("$MA.xml"))


def read_grandstream(files: dict[str, str]) -> Read:
    config = ET.fromstring(next(iter(files.values()))).find("config")
    assert config is not None
    p = {el.tag: el.text or "" for el in config}
    host, _, port = p["P47"].rpartition(":")
    if "P23800" in p:  # virtual multi-purpose keys
        keys = [(p[f"P{23802 + 4 * n}"], p[f"P{23803 + 4 * n}"]) for n in range(10)
                if p[f"P{23800 + 4 * n}"] != "-1"]
    else:
        keys = [(p[f"P{299 + 3 * n}"], p[f"P{300 + 3 * n}"]) for n in range(1, 8)
                if p[f"P{299 + 3 * n}"] or p[f"P{300 + 3 * n}"]]
    assert (p["P64"], p["P143"], p["P145"], p["P4428"]) == ("customize", "0", "0", "1")
    return Read(host, port, _tr("grandstream", p["P130"]), p["P35"], p["P36"], p["P34"],
                p["P48"], p["P270"], keys, p["P246"], False,
                {"1": "http://", "2": "https://"}[p["P212"]] + p["P237"])


def read_snom(files: dict[str, str]) -> Read:
    root = ET.fromstring(next(iter(files.values())))
    ps = {el.tag: el.text or "" for el in root.find("phone-settings")}
    host, _, port = ps["user_host"].rpartition(":")
    outbound, _, transport = ps["user_outbound"].partition(";transport=")
    if outbound == ps["user_host"]:  # the registrar itself: only there for the transport
        outbound = ""
    keys = [(fk.get("label", ""), (fk.text or "").split(" ", 1)[1].strip("<>"))
            for fk in root.find("functionKeys") if fk.text not in ("none", "line")]
    keys = [(label, re.sub(r"^sip:|@.*$", "", value)) for label, value in keys]
    return Read(host, port, transport or "udp", ps["user_name"], ps["user_pname"],
                ps["user_pass"], outbound, ps["user_idle_text"], keys, ps["utc_offset"], False,
                re.sub(r"//[^@/]*@", "//", ps["setting_server"]).removesuffix("{mac}.xml"))


def read_fanvil(files: dict[str, str]) -> Read:
    root = ET.fromstring(next(iter(files.values())))
    if root.tag == "VOIP_CONFIG_FILE":
        line = root.find(".//SIP_Line_List_Entry")
        g = {el.tag: el.text or "" for el in root.find("GLOBAL_CONFIG_MODULE")}
        f = {el.tag: el.text or "" for el in line}
        keys = [(k.findtext("Title") or "", (k.findtext("Value") or "").split("@")[0])
                for k in root.iter("Function_Key_Entry") if k.findtext("Type") != "0"]
        proxy = f"{f['Proxy_Addr']}:{f['Proxy_Port']}"
        return Read(f["Register_Addr"], f["Register_Port"], _tr("fanvil", f["Transport"]),
                    f["Phone_Number"], f["Register_User"], f["Register_Pswd"], proxy,
                    root.findtext(".//LCD_Title") or "", keys, g["Time_Zone"],
                    g["Enable_DST"] == "0", root.findtext(".//Download_Server_IP") or "")
    line = {el.tag: el.text or "" for el in root.find("sip/line[@index='1']")}
    keys = [(k.findtext("Title") or "", (k.findtext("Value") or "").split("@")[0])
            for k in root.iter("Fkey") if k.findtext("Type") != "0"]
    return Read(line["RegisterAddr"], line["RegisterPort"], _tr("fanvil", line["Transport"]),
                line["PhoneNumber"], line["RegisterUser"], line["RegisterPswd"],
                f"{line['ProxyAddr']}:{line['ProxyPort']}",
                root.findtext("phone/display/LCDTitle") or "", keys,
                root.findtext("phone/date/TimeZone") or "",
                root.findtext("phone/date/EnableDST") == "0",
                root.findtext("ap/FlashServerIP") or "")


READERS = {"yealink": read_yealink, "polycom": read_polycom, "cisco": read_cisco,
           "grandstream": read_grandstream, "snom": read_snom, "fanvil": read_fanvil}

# (vendor, a model of each family the template claims)
FAMILIES = [(v.key, f.key, f.models[0]) for v in VENDORS.values() for f in v.families]
# What each vendor is told for Europe/Berlin in winter (UTC+1): Yealink and Poly its rule
# (last Sunday of March 02:00 to last Sunday of October 03:00, one hour), Grandstream its
# POSIX rule, the others today's offset.
CLOCK = {"yealink": "+1 3/5/7/2 10/5/7/3 60", "polycom": "3600 3/1/1/1/2 10/1/1/1/3",
         "cisco": "GMT+01:00 start=3/-1/7/2;end=10/-1/7/3;save=1", "snom": "3600",
         "fanvil": "4", "grandstream": "CET-1CEST-2,M3.5.0/02:00:00,M10.5.0/03:00:00"}


WINTER = datetime(2026, 1, 15, 12, 0)


def ctx() -> CallContext:
    return CallContext(switch="asterisk", call_id="t", endpoint="x")


@pytest.mark.parametrize("network", ["lan", "sbc"])
@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
@pytest.mark.parametrize(("vendor", "family", "model"), FAMILIES)
def test_phone_reads_idle_login_logout(runtime, vendor, family, model, transport, network):
    config = dataclasses.replace(runtime.config, provisioning=dataclasses.replace(
        runtime.config.provisioning, transport=transport, timezone="Europe/Berlin",
        registrar="pbx.example.com", base_url="https://prov.example.com/prov"))
    tenant = default_tenant()
    add_user(runtime.db, tenant, "101", name="Alice", pin="1234", sip_password="alice-pw",
             hotdesk=True, keys=[{"type": "blf", "value": "102", "label": "Bob"},
                                 {"type": "speeddial", "value": "5551234", "label": "Pizza"}])
    extra = {"network": "sbc", "sbc": "sbc.example.net"} if network == "sbc" else {}
    desk = make_device(runtime, mac="00:15:65:00:09:01", extension="8101", vendor=vendor,
                       model=model, **extra)
    fam = VENDORS[vendor].family_for(model)
    assert (fam.family.key, fam.known) == (family, True)
    env = make_environment(config)
    port = "5061" if transport == "tls" else "5060"
    token_url = f"https://prov.example.com/prov/{desk.prov_token}/"

    def read() -> Read:
        device = Device.get_by_id(desk.id)
        profile = profile_for(device, config, now=WINTER)
        return READERS[vendor](render_profile(env, get_vendor(vendor), profile))

    def check_common(r: Read) -> None:
        assert (r.server, r.port) == ("pbx.example.com", port)
        assert r.transport == transport
        if network == "sbc":
            assert r.proxy == f"sbc.example.net:{port}"
        elif vendor != "fanvil":  # Fanvil's proxy field defaults to the registrar
            assert r.proxy == ""
        assert r.clock == CLOCK[vendor]
        if vendor != "snom":  # no Snom parameter to switch its DST off was found
            assert r.dst_off is not clock.follows(VENDORS[vendor].dst, "Europe/Berlin")
        assert r.url == token_url

    idle = read()
    check_common(idle)
    assert (idle.user, idle.auth_user, idle.password) == ("8101", "8101", "idle-8101")
    assert "free" in idle.label
    assert [v for _, v in idle.keys] == ["*70"]

    assert runtime.service.login(desk.id, "101", "1234", ctx()).outcome.value == "ok"
    user = read()
    check_common(user)
    assert (user.user, user.auth_user, user.password) == ("101", "101", "alice-pw")
    assert "Alice" in user.label
    assert sorted(v for _, v in user.keys) == sorted(["*71", "102", "5551234"])

    runtime.service.logout(desk.id)
    back = read()
    assert back == idle, "after log out the phone must read exactly its idle config"


@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_http_credentials_reach_the_phone(runtime, vendor):
    """With [provisioning] auth on, the config carries the user and password the server
    asks for (auth_username and the token); with auth off, the token is only in the URL."""
    desk = make_device(runtime, mac="00:15:65:00:09:02", extension="8102", vendor=vendor)
    device = Device.get_by_id(desk.id)
    for auth in ("none", "digest"):
        config = dataclasses.replace(runtime.config, provisioning=dataclasses.replace(
            runtime.config.provisioning, auth=auth, auth_username="desk-phones"))
        files = render_profile(make_environment(config), get_vendor(vendor),
                               profile_for(device, config))
        body = "".join(f.split("-->", 1)[-1] for f in files.values())  # past the header
        outside_url = body.replace(f"/{desk.prov_token}/", "")
        assert (desk.prov_token in outside_url) is (auth == "digest")
        assert ("desk-phones" in body) is (auth == "digest")


@pytest.mark.parametrize(("zone", "yealink", "polycom", "cisco"), [
    # 30-minute DST: Yealink and Cisco take the amount, Poly only whole hours -> offset
    ("Australia/Lord_Howe", "+10:30 10/1/7/2 4/1/7/2 30", "39600",
     "GMT+10:30 start=10/1/7/2;end=4/1/7/2;save=0:30"),
    # negative DST (Irish "winter time"): none takes it -> today's offset
    ("Europe/Dublin", "+0", "0", "GMT+00:00"),
    ("Asia/Kolkata", "+5:30", "19800", "GMT+05:30"),
    # second Sunday of March / first Sunday of November
    ("America/New_York", "-5 3/2/7/2 11/1/7/2 60", "-18000 3/8/1/0/2 11/1/1/0/2",
     "GMT-05:00 start=3/8/7/2;end=11/1/7/2;save=1"),
])
def test_zones_a_phone_cannot_follow_fall_back_to_the_offset(runtime, zone, yealink, polycom,
                                                              cisco):
    config = dataclasses.replace(runtime.config, provisioning=dataclasses.replace(
        runtime.config.provisioning, timezone=zone))
    env = make_environment(config)
    got = {}
    for vendor, mac in (("yealink", "00:15:65:00:09:03"), ("polycom", "00:04:f2:00:09:04"),
                        ("cisco", "00:1e:f7:00:09:05")):
        desk = make_device(runtime, mac=mac, extension=mac[-2:] + "00", vendor=vendor)
        profile = profile_for(Device.get_by_id(desk.id), config, now=WINTER)
        got[vendor] = READERS[vendor](render_profile(env, get_vendor(vendor), profile)).clock
    assert got == {"yealink": yealink, "polycom": polycom, "cisco": cisco}


SRTP_REQUIRED = {  # how each vendor's file says "SRTP required", read its own way
    "yealink": lambda t: "account.1.srtp_encryption = 2" in t.splitlines(),
    "polycom": lambda t: 'sec.srtp.enable="1"' in t and 'sec.srtp.require="1"' in t,
    "grandstream": lambda t: ET.fromstring(t).findtext("config/P183") == "2",
    "snom": lambda t: (ET.fromstring(t).findtext("phone-settings/user_srtp"),
                       ET.fromstring(t).findtext("phone-settings/user_savp"))
    == ("on", "mandatory"),
}


@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_srtp_option(runtime, vendor):
    desk = make_device(runtime, mac="00:15:65:00:09:06", extension="8906", vendor=vendor)
    for srtp in ("off", "required"):
        config = dataclasses.replace(runtime.config, provisioning=dataclasses.replace(
            runtime.config.provisioning, srtp=srtp))
        profile = profile_for(Device.get_by_id(desk.id), config)
        files = render_profile(make_environment(config), get_vendor(vendor), profile)
        text = "".join(v for k, v in files.items() if vendor != "polycom" or "-" in k)
        if vendor in SRTP_REQUIRED:
            assert SRTP_REQUIRED[vendor](text) is (srtp == "required")
        else:  # Cisco and Fanvil: no parameter name found, nothing is written
            assert "srtp" not in text.lower().replace("no srtp", "").split("-->")[-1]
