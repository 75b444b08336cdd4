"""What each phone vendor needs: the files it requests, their templates, its check-sync event.

Every vendor asks for its config under a file name built from its MAC address; some
also ask for a "common" file first (Yealink ``y0000000000xx.cfg``, Poly
``000000000000.cfg``). Common files are harmless and carry no secret, but they are
still served only under a valid device URL, so a scanner learns nothing from them.
The template of each file is named by its *format* (``.xml.j2`` is autoescaped),
not by the name the phone asks for: a Poly ``.cfg`` file is XML.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hotdesk.mac import format_mac


@dataclass(frozen=True)
class ConfigFile:
    """One per-device file a phone requests; ``name`` is a format string over the MAC forms."""

    name: str
    template: str
    content_type: str = "text/plain"


@dataclass(frozen=True)
class CommonFile:
    """A file every phone of the vendor requests; same content for all, never a secret."""

    pattern: str  # regular expression over the requested file name (full match)
    template: str
    content_type: str = "text/plain"

    def matches(self, filename: str) -> bool:
        return re.fullmatch(self.pattern, filename) is not None


@dataclass(frozen=True)
class Family:
    """Models of one vendor that take the same config format and key layout.

    ``overrides`` swaps a vendor file's template for this family's (by template name);
    ``keys``: the hot-desk key slots the template fills (the rest are cleared).
    """

    key: str
    label: str
    models: tuple[str, ...]
    overrides: tuple[tuple[str, str], ...] = ()
    keys: int = 9

    def template(self, default: str) -> str:
        return dict(self.overrides).get(default, default)


@dataclass(frozen=True)
class FamilyMatch:
    """The family a phone's model falls in; ``known`` False = the vendor's default."""

    family: Family
    known: bool
    model: str

    @property
    def warning(self) -> str:
        if self.known:
            return ""
        what = f"model {self.model!r} is not" if self.model else "no model is set, so it is not"
        return (f"{what} in a model list hotdesk was checked against; it gets the "
                f"{self.family.label} config")


def _norm_model(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", model).upper()


@functools.lru_cache(maxsize=4096)
def _find_family(families: tuple[Family, ...], model: str) -> tuple[Family, bool]:
    """Cached: every render asks, and a fleet has few distinct model strings."""
    norm = _norm_model(model)
    best: tuple[int, Family] | None = None
    for fam in families:
        for name in fam.models:
            n = _norm_model(name)
            if norm and n in norm and (best is None or len(n) > best[0]):
                best = (len(n), fam)
    return (families[0], False) if best is None else (best[1], True)


@dataclass(frozen=True)
class Vendor:
    key: str
    label: str
    files: tuple[ConfigFile, ...]
    # Value of the SIP Event header that makes this vendor re-fetch its config without rebooting.
    notify_event: str
    # The first family is the default for a model in no list.
    families: tuple[Family, ...] = ()
    common_files: tuple[CommonFile, ...] = field(default_factory=tuple)
    # How the config tells the phone its zone's DST (hotdesk.provisioning.clock.follows):
    # "posix" a POSIX TZ rule, "rule" month/week/weekday/hour changes with any amount,
    # "rule-1h" the same with one hour only, "" not at all. When the phone cannot follow
    # its zone, the config carries today's offset with the phone's DST off, and the worker
    # re-provisions it at each DST change (hotdesk.provisioning.dst).
    dst: str = ""
    # What its templates cannot set, for lack of a parameter name in any source:
    # "srtp", "resync" (periodic re-fetch), "dst_off" (switching the phone's own DST off).
    unsupported: frozenset[str] = frozenset()

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(m for f in self.families for m in f.models)

    def family_for(self, model: str) -> FamilyMatch:
        """The family of ``model``: the longest listed model name it contains, so
        "SIP-T46U", "CP-8841-3PCC" and "X4U-Pro" find T46U, 8841 and X4U."""
        family, known = _find_family(self.families, model)
        return FamilyMatch(family, known, model)

    def filenames(self, mac: str, model: str = "") -> dict[str, ConfigFile]:
        """File name the phone requests -> its spec (template chosen by model family)."""
        forms = mac_forms(mac, model)
        family = self.family_for(model).family
        return {f.name.format(**forms): ConfigFile(f.name, family.template(f.template),
                                                   f.content_type)
                for f in self.files}

    def common_file(self, filename: str) -> CommonFile | None:
        return next((c for c in self.common_files if c.matches(filename)), None)


def mac_forms(mac: str, model: str = "") -> dict[str, str]:
    """The spellings of a MAC that vendors put in file names."""
    return {
        "mac": mac.lower(),
        "MAC": mac.upper(),
        "model": re.sub(r"[^A-Za-z0-9]", "", model).lower(),
        "mac_colon": format_mac(mac, ":", upper=False),
    }


VENDORS: dict[str, Vendor] = {
    "yealink": Vendor(
        key="yealink",
        label="Yealink T4x/T5x",
        files=(ConfigFile("{mac}.cfg", "yealink/mac.cfg.j2"),),
        # Yealink: check-sync re-provisions; reboot=false keeps the phone up even when
        # sip.notify_reboot_enable is 1 on the phone.
        notify_event="check-sync;reboot=false",
        # local_time.summer_time/dst_time_type/start_time/end_time/offset_time
        dst="rule",
        families=(Family("t3x-t5x", "Yealink T3x/T4x/T5x", (
            "T31P", "T33G", "T43U", "T44U", "T46U", "T48U", "T53", "T53W", "T54W", "T57W",
            "T58W", "T46S", "T48S", "T42S")),),
        # y0000000000xx.cfg: the model-wide common file (xx = hardware id).
        common_files=(CommonFile(r"y0000000000[0-9a-z]{2}\.cfg", "yealink/common.cfg.j2"),),
    ),
    "polycom": Vendor(
        key="polycom",
        label="Poly VVX / Edge E (UC Software)",
        files=(
            # Master file: names the per-phone file below. Not "<mac>-phone.cfg": UC Software
            # uploads its own local override file under that name.
            ConfigFile("{mac}.cfg", "polycom/master.xml.j2", "application/xml"),
            ConfigFile("{mac}-hotdesk.cfg", "polycom/phone.xml.j2", "application/xml"),
        ),
        notify_event="check-sync",
        # tcpIpApp.sntp.daylightSavings.*: no DST amount parameter, so one hour only
        dst="rule-1h",
        families=(Family("ucs", "Poly UC Software (VVX, Edge E)", (
            "VVX150", "VVX250", "VVX350", "VVX450", "VVX501", "VVX601", "Edge E100",
            "Edge E220", "Edge E320", "Edge E350", "Edge E450", "Edge E550"), keys=10),),
        common_files=(CommonFile(r"000000000000\.cfg", "polycom/common.xml.j2",
                                 "application/xml"),),
    ),
    "cisco": Vendor(
        key="cisco",
        label="Cisco Multiplatform (68xx/78xx/88xx MPP)",
        files=(
            # Profile_Rule ".../$MA.xml" (lower case), "$MAU.xml" (upper) or "spa$MA.xml".
            ConfigFile("{mac}.xml", "cisco/mpp.xml.j2", "application/xml"),
            ConfigFile("{MAC}.xml", "cisco/mpp.xml.j2", "application/xml"),
            ConfigFile("spa{mac}.xml", "cisco/mpp.xml.j2", "application/xml"),
        ),
        notify_event="resync",
        # Daylight_Saving_Time_Rule start=m/d/w/h;end=...;save=...
        dst="rule",
        unsupported=frozenset({"srtp"}),
        families=(Family("mpp", "Cisco MPP 68xx/78xx/88xx", (
            "6821", "6841", "6851", "6861", "6871", "7811", "7821", "7841", "7861", "8811",
            "8841", "8845", "8851", "8861", "8865")),),
    ),
    "grandstream": Vendor(
        key="grandstream",
        label="Grandstream GXP/GRP",
        files=(ConfigFile("cfg{mac}.xml", "grandstream/cfg.xml.j2", "application/xml"),),
        notify_event="check-sync",
        families=(
            # Keys in the multi-purpose key block P323-P329 (models with physical MPKs).
            Family("p-mpk", "Grandstream multi-purpose keys",
                   ("GXP1610", "GXP1625", "GXP1630", "GXP2160", "GRP2614", "GRP2616"),
                   keys=7),
            # Keypad-less models: the keys go to virtual multi-purpose keys on the screen
            # (P23800 + 4n, as in Grandstream's GXP17xx configuration template).
            Family("vpk", "Grandstream virtual multi-purpose keys",
                   ("GRP2612", "GRP2613", "GRP2615", "GXP2135", "GXP2140", "GXP2170",
                    "GXP1760", "GXP1780", "GXP1782"),
                   keys=10),
        ),
        # The time zone goes as a POSIX TZ rule (P64 customize + P246).
        dst="posix",
    ),
    "snom": Vendor(
        unsupported=frozenset({"dst_off"}),
        key="snom",
        label="Snom D series",
        files=(
            # setting_server ".../{mac}.xml": Snom substitutes its MAC in upper case.
            ConfigFile("{MAC}.xml", "snom/settings.xml.j2", "application/xml"),
            ConfigFile("{mac}.xml", "snom/settings.xml.j2", "application/xml"),
        ),
        notify_event="check-sync;reboot=false",
        families=(Family("d", "Snom D series", (
            "D120", "D140", "D150", "D315", "D335", "D385", "D713", "D717", "D735", "D785",
            "D812", "D815", "D862", "D865"), keys=10),),
    ),
    "fanvil": Vendor(
        unsupported=frozenset({"srtp", "resync"}),
        key="fanvil",
        label="Fanvil X series",
        files=(ConfigFile("{mac}.cfg", "fanvil/mac.xml.j2", "application/xml"),),
        notify_event="check-sync",
        families=(
            # <sysConf> (the phone's "new" format).
            Family("sysconf", "Fanvil <sysConf> (X4U/X5U/X6U/X7/X210)",
                   ("X4U", "X5U", "X6U", "X7", "X7C", "X210", "X210i"), keys=10),
            # Older firmware: <VOIP_CONFIG_FILE> with *_CONFIG_MODULE sections.
            Family("voip-config", "Fanvil <VOIP_CONFIG_FILE> (X3S and older X series)",
                   ("X2", "X3", "X3S", "X3SG", "X4", "X5", "X5S", "X6", "X6V2"),
                   overrides=(("fanvil/mac.xml.j2", "fanvil/legacy.xml.j2"),), keys=10),
        ),
    ),
}


def model_warnings(devices: Iterable[Any]) -> dict[int, str]:
    """Device id -> why its model gets its vendor's default config (phones page)."""
    out = {}
    for device in devices:
        vendor = VENDORS.get(device.vendor)
        warning = vendor.family_for(device.model).warning if vendor else ""
        if warning:
            out[device.id] = warning
    return out


def get_vendor(key: str) -> Vendor:
    try:
        return VENDORS[key.lower()]
    except KeyError:
        raise ValueError(
            f"unknown vendor {key!r}; known vendors: {', '.join(sorted(VENDORS))}"
        ) from None
