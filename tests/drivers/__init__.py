"""Scenario drivers: one per switch, each running the real adapter against its wire fake."""
