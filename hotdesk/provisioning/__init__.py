"""Phone configs: vendors, rendering, serving them to phones, PnP discovery and RPS."""
