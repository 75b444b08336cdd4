"""A call id on every log line of a call's flow, without passing it through every function.

Adapters wrap each call in ``with call_context(call_id):``; the logging filter installed
by ``install()`` adds ``call_id`` to every record (``-`` outside a call). A contextvar
follows asyncio tasks; a thread serving one call sets its own.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator

_call_id: contextvars.ContextVar[str] = contextvars.ContextVar("hotdesk_call_id", default="-")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [call=%(call_id)s]: %(message)s"


def current_call_id() -> str:
    return _call_id.get()


@contextlib.contextmanager
def call_context(call_id: str) -> Iterator[None]:
    token = _call_id.set(call_id or "-")
    try:
        yield
    finally:
        _call_id.reset(token)


class CallIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "call_id"):
            record.call_id = _call_id.get()
        return True


def install(handler: logging.Handler) -> None:
    handler.addFilter(CallIdFilter())
