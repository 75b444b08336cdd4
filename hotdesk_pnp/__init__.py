"""SIP PnP adapter: discovers phones on the LAN and hands registered ones their
provisioning URL (the rules and bookkeeping live in hotdesk.provisioning.discovery)."""

from hotdesk_pnp.push import push_provisioning_url

__all__ = ["push_provisioning_url"]
