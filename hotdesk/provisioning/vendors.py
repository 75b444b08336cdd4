"""What each phone vendor needs: the files it requests, their templates, its check-sync event.

Every vendor asks for its config under a file name built from its MAC address; some
also ask for a "common" file first (Yealink ``y0000000000xx.cfg``, Poly
``000000000000.cfg``). Common files are harmless and carry no secret, but they are
still served only under a valid device URL, so a scanner learns nothing from them.
The template of each file is named by its *format* (``.xml.j2`` is autoescaped),
not by the name the phone asks for: a Poly ``.cfg`` file is XML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

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
class Vendor:
    key: str
    label: str
    files: tuple[ConfigFile, ...]
    # Value of the SIP Event header that makes this vendor re-fetch its config without rebooting.
    notify_event: str
    models: tuple[str, ...] = ()
    common_files: tuple[CommonFile, ...] = field(default_factory=tuple)

    def filenames(self, mac: str, model: str = "") -> dict[str, ConfigFile]:
        """File name the phone requests -> its template, for this MAC (12 lower-case hex)."""
        forms = mac_forms(mac, model)
        return {f.name.format(**forms): f for f in self.files}

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
        models=("T31P", "T33G", "T43U", "T44U", "T46U", "T48U", "T53", "T53W", "T54W",
                "T57W", "T58W", "T46S", "T48S", "T42S"),
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
        models=("VVX150", "VVX250", "VVX350", "VVX450", "VVX501", "VVX601", "Edge E100",
                "Edge E220", "Edge E320", "Edge E350", "Edge E450", "Edge E550"),
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
        models=("6821", "6841", "6851", "6861", "6871", "7811", "7821", "7841", "7861",
                "8811", "8841", "8845", "8851", "8861", "8865"),
    ),
    "grandstream": Vendor(
        key="grandstream",
        label="Grandstream GXP/GRP",
        files=(ConfigFile("cfg{mac}.xml", "grandstream/cfg.xml.j2", "application/xml"),),
        notify_event="check-sync",
        models=("GXP1610", "GXP1625", "GXP1630", "GXP2135", "GXP2140", "GXP2160", "GXP2170",
                "GRP2612", "GRP2613", "GRP2614", "GRP2615", "GRP2616"),
    ),
    "snom": Vendor(
        key="snom",
        label="Snom D series",
        files=(
            # setting_server ".../{mac}.xml": Snom substitutes its MAC in upper case.
            ConfigFile("{MAC}.xml", "snom/settings.xml.j2", "application/xml"),
            ConfigFile("{mac}.xml", "snom/settings.xml.j2", "application/xml"),
        ),
        notify_event="check-sync;reboot=false",
        models=("D120", "D140", "D150", "D315", "D335", "D385", "D713", "D717", "D735",
                "D785", "D812", "D815", "D862", "D865"),
    ),
    "fanvil": Vendor(
        key="fanvil",
        label="Fanvil X series",
        files=(ConfigFile("{mac}.cfg", "fanvil/mac.xml.j2", "application/xml"),),
        notify_event="check-sync",
        models=("X1S", "X3S", "X3U", "X4U", "X5U", "X6U", "X7", "X7A", "X210", "X301",
                "X303"),
    ),
}


def get_vendor(key: str) -> Vendor:
    try:
        return VENDORS[key.lower()]
    except KeyError:
        raise ValueError(
            f"unknown vendor {key!r}; known vendors: {', '.join(sorted(VENDORS))}"
        ) from None
