"""The twin service's root error and the HTTP answers it raises on purpose."""

from __future__ import annotations

from twinbill_common.errors import Conflict, HttpError, NotFound, TwinbillError, ValidationFailed


class TwinError(TwinbillError):
    """Root of the twin service's own errors."""


def not_found(entity: str, ident: object) -> NotFound:
    """404 naming the entity and id."""
    return NotFound(f"{entity} {ident} not found")


def bad_field(field: str, reason: str, *, location: str = "json") -> ValidationFailed:
    """422 naming one bad field (seed 001's validation error)."""
    return ValidationFailed({field: [reason]}, data={"location": location})


def conflict(message: str) -> Conflict:
    """409: the change clashes with what is stored."""
    return Conflict(message)


__all__ = ["HttpError", "TwinError", "bad_field", "conflict", "not_found"]
