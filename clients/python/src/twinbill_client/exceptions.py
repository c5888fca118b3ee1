"""Typed errors, one per thing a caller handles differently (as BEMServer's client has them)."""

from __future__ import annotations

from typing import Any


class TwinbillAPIError(Exception):
    """Root of every error the client raises; `status` and the decoded `body` when there is one."""

    def __init__(self, message: str, *, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class TwinbillAPIAuthenticationError(TwinbillAPIError):
    """401: no credentials, wrong ones, or an expired token that could not be refreshed."""


class TwinbillAPIAuthorizationError(TwinbillAPIError):
    """403: the credentials are valid but not for this resource or project."""


class TwinbillAPINotFoundError(TwinbillAPIError):
    """404: the resource does not exist."""


class TwinbillAPIConflictError(TwinbillAPIError):
    """409: the request clashes with what is stored (a duplicate key)."""


class TwinbillAPIValidationError(TwinbillAPIError):
    """400/422: `errors` maps each bad field to its reasons, e.g. {"name": ["Missing data ..."]}."""

    def __init__(self, message: str, *, errors: dict[str, list[str]], status: int, body: Any) -> None:
        super().__init__(message, status=status, body=body)
        self.errors = errors


class TwinbillAPIConnectionError(TwinbillAPIError):
    """The server did not answer (refused, unreachable, timed out)."""


class TwinbillAPIPreconditionError(TwinbillAPIError):
    """412 / 428: the ETag sent is not the item's current one, or none was sent."""
