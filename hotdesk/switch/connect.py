"""Wiring: the switch view (and account reader) a process without an event loop uses.

``hotdesk web``, ``prov-serve``, the worker and the CLI get one blocking request
connection here (AMI on Asterisk, an inbound Event Socket on FreeSWITCH), opened on
first use and kept. The adapters are imported lazily so the core stays switch-neutral.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from hotdesk.settings import Config
from hotdesk.switch.accounts import AccountReader, CachedReader, Credentials
from hotdesk.switch.doctor import SwitchView


def switch_view(config: Config, wait_seconds: float = 3.0) -> SwitchView:
    """A view of the configured switch. Every call raises AccountError while the
    switch cannot be reached, with what to check."""
    if config.switch.type == "asterisk":
        from hotdesk_agi.ami_sync import BlockingAmi
        from hotdesk_agi.switch_view import AsteriskView

        return AsteriskView(BlockingAmi(config.ami))
    from esl_handlers.inbound import InboundConnection
    from esl_handlers.switch_view import FreeswitchView

    esl = config.esl
    inbound = InboundConnection(esl.host, esl.port, esl.password,
                                reconnect_max=esl.reconnect_max_seconds)
    inbound.start()
    inbound.wait_connected(wait_seconds)
    return FreeswitchView(inbound, needs_xml_curl=bool(config.switch.directory_password))


def close_view(view: SwitchView) -> None:
    """Close the connection of a view opened for one job (CLI, one web request)."""
    close = getattr(view, "close", None)
    if close is not None:
        close()


def reload_accounts(view: SwitchView) -> Callable[[], None] | None:
    """What re-reads the idle accounts on this switch (None: FreeSWITCH asks live)."""
    return getattr(view, "reload_accounts", None)


class LazyReader:
    """An AccountReader that opens its switch connection on the first read."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._reader: SwitchView | None = None

    def read(self, account: str, domain: str) -> Credentials:
        with self._lock:
            if self._reader is None:
                self._reader = switch_view(self.config)
        return self._reader.read(account, domain)


def account_reader(config: Config) -> AccountReader | None:
    """The cached live reader ``switch`` mode renders with; None in ``hotdesk`` mode."""
    if config.switch.credentials != "switch":
        return None
    return CachedReader(LazyReader(config), config.switch.credentials_cache_seconds)
