"""Typed errors of the admin use cases: the front ends map :attr:`InventoryError.kind` to an
HTTP status or an exit code and print the message; none of them reads the message."""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    INVALID = "invalid"  # the input breaks a rule; the message names the field
    NOT_FOUND = "not_found"  # no such user / phone / tenant (in the caller's scope)
    CONFLICT = "conflict"  # the input clashes with what is stored (duplicate MAC, extension)


class InventoryError(ValueError):
    """Invalid or conflicting input; the message names the field."""

    kind: ErrorKind = ErrorKind.INVALID

    def __init__(self, message: str, kind: ErrorKind | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind


class NotFound(InventoryError):
    kind = ErrorKind.NOT_FOUND


class Conflict(InventoryError):
    kind = ErrorKind.CONFLICT


# How the front ends render a kind. The CLI keeps status 1 for every mistake (scripts
# already rely on it); the API answers with the status that says which mistake it was.
HTTP_STATUS: dict[ErrorKind, int] = {ErrorKind.INVALID: 400, ErrorKind.NOT_FOUND: 404,
                                     ErrorKind.CONFLICT: 409}
EXIT_STATUS: dict[ErrorKind, int] = {ErrorKind.INVALID: 1, ErrorKind.NOT_FOUND: 1,
                                     ErrorKind.CONFLICT: 1}
