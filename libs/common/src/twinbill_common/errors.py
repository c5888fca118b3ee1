"""The root errors. The class tells the caller what to do: retry, dead-letter, or answer the client."""

from __future__ import annotations

from typing import Any


class TwinbillError(Exception):
    """Root of every error twinbill raises on purpose."""


class TransientError(TwinbillError):
    """Retry later with backoff: a store or broker did not answer. Consumers nack and requeue."""


class PermanentError(TwinbillError):
    """Retrying cannot help: the input is wrong. Consumers dead-letter the message with this reason."""


class StoreUnavailable(TransientError):
    """A database did not answer."""


class BusUnavailable(TransientError):
    """RabbitMQ did not answer, refused a publish, or did not confirm it in time."""


# Errors that mean "something did not answer", whatever the store: a consumer retries them in place.
# Each store adds its driver's own (twinbill_common.postgres.TRANSIENT_ERRORS, billing's store).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (TransientError, OSError, TimeoutError)


class HttpError(TwinbillError):
    """An answer to an HTTP client: its status, the seed's business code and a message.

    `fields` maps a field name to the reasons it is wrong (seed 001's validation errors).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: int | None = None,
        fields: dict[str, list[str]] | None = None,
        data: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = status if code is None else code
        self.fields = fields or {}
        self.data = data


class NotFound(HttpError):
    """The resource does not exist."""

    def __init__(self, message: str = "not found", **kwargs: Any) -> None:
        super().__init__(404, message, **kwargs)


class ValidationFailed(HttpError):
    """The request is malformed; `fields` names every bad field and why."""

    def __init__(self, fields: dict[str, list[str]], message: str | None = None, **kwargs: Any) -> None:
        summary = message or "; ".join(f"{name}: {', '.join(why)}" for name, why in fields.items())
        super().__init__(422, summary, fields=fields, **kwargs)


class Conflict(HttpError):
    """The request clashes with what is stored (a duplicate key, say)."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(409, message, **kwargs)
