"""Hashing PINs and admin passwords (argon2id).

PINs are short, so the hash is not what stops guessing: the lockout policy is. The
hash keeps PINs unreadable in backups and database dumps. PIN hashing uses lighter
argon2 parameters than passwords because it sits in the call path.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_PIN_HASHER = PasswordHasher(time_cost=1, memory_cost=4 * 1024, parallelism=1)
_PASSWORD_HASHER = PasswordHasher()


class InvalidPin(ValueError):
    """A PIN must be 4 to 8 digits (phones can only key digits)."""


def validate_pin(pin: str) -> str:
    pin = (pin or "").strip()
    if not (pin.isdigit() and pin.isascii() and 4 <= len(pin) <= 8):
        raise InvalidPin("PIN must be 4 to 8 digits")
    return pin


def hash_pin(pin: str) -> str:
    return _PIN_HASHER.hash(validate_pin(pin))


def verify_pin(pin_hash: str, pin: str) -> bool:
    if not pin_hash or not pin:
        return False
    try:
        return _PIN_HASHER.verify(pin_hash, pin)
    except (VerificationError, InvalidHashError):
        return False


def hash_password(password: str) -> str:
    return _PASSWORD_HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _PASSWORD_HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
