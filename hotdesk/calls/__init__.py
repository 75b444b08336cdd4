"""The call path: what the caller hears (callflow) and the hot-desking rules (service)."""
