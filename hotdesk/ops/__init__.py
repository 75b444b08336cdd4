"""Operations: the background worker, heartbeats, metrics and the status snapshot."""
