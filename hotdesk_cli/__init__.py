"""The ``hotdesk`` command: the one place where the core and the switch adapters meet."""
