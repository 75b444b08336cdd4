"""Clients of the phone vendors' redirect services (RPS); chosen by hotdesk.provisioning.rps."""
