"""What each phone vendor needs: the files it requests, their templates, its check-sync event."""

from __future__ import annotations

from dataclasses import dataclass

from hotdesk.mac import format_mac


@dataclass(frozen=True)
class ConfigFile:
    """One file a phone requests; ``name`` is a format string over the MAC forms below."""

    name: str
    template: str
    content_type: str = "text/plain"


@dataclass(frozen=True)
class Vendor:
    key: str
    label: str
    files: tuple[ConfigFile, ...]
    # Value of the SIP Event header that makes this vendor re-fetch its config without rebooting.
    notify_event: str

    def filenames(self, mac: str, model: str = "") -> dict[str, ConfigFile]:
        """File name the phone requests -> its template, for this MAC (12 lower-case hex)."""
        forms = {
            "mac": mac.lower(),
            "MAC": mac.upper(),
            "model": model,
            "mac_colon": format_mac(mac, ":", upper=False),
        }
        return {f.name.format(**forms): f for f in self.files}


VENDORS: dict[str, Vendor] = {
    "yealink": Vendor(
        key="yealink",
        label="Yealink T4x/T5x",
        files=(ConfigFile("{mac}.cfg", "yealink/mac.cfg.j2"),),
        notify_event="check-sync;reboot=false",
    ),
}


def get_vendor(key: str) -> Vendor:
    try:
        return VENDORS[key.lower()]
    except KeyError:
        raise ValueError(
            f"unknown vendor {key!r}; known vendors: {', '.join(sorted(VENDORS))}"
        ) from None
