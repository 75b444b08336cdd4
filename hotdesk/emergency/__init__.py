"""Emergency calls from hot desks: desk locations, the switch-store copy, on-site notices.

``locations`` holds the dispatchable locations (per desk, per tenant default);
``hotdesk.switch.emergency`` decides what the switch's own store must hold for each
account and keeps it in step through a small outbox of its own; ``notices`` tells the
on-site points about a call the switch reported. hotdesk is never in the call's path.
"""
