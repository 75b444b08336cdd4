"""Check-sync NOTIFYs: the durable outbox, the loops that drain it, reconciliation."""
