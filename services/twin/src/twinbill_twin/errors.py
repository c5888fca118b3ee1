"""The twin service's root error and the HTTP answers it raises on purpose."""

from __future__ import annotations

from twinbill_common.errors import Conflict, HttpError, NotFound, TwinbillError, ValidationFailed


class TwinError(TwinbillError):
    """Root of the twin service's own errors."""


class BadParameter(TwinError):
    """A time-series query parameter is wrong; `parameter` names it and the message says why."""

    def __init__(self, parameter: str, reason: str) -> None:
        super().__init__(f"{parameter}: {reason}")
        self.parameter = parameter
        self.reason = reason


def not_found(entity: str, ident: object) -> NotFound:
    """404 naming the entity and id."""
    return NotFound(f"{entity} {ident} not found")


def bad_field(field: str, reason: str, *, location: str = "json") -> ValidationFailed:
    """422 naming one bad field (seed 001's validation error)."""
    return ValidationFailed({field: [reason]}, data={"location": location})


def conflict(message: str) -> Conflict:
    """409: the change clashes with what is stored."""
    return Conflict(message)


__all__ = ["BadParameter", "HttpError", "TwinError", "bad_field", "conflict", "not_found"]
