"""The gateway's root error and the HTTP answers it raises on purpose."""

from __future__ import annotations

from twinbill_common.errors import HttpError, TwinbillError


class GatewayError(TwinbillError):
    """Root of the gateway's own errors."""


class Unauthorized(HttpError, GatewayError):
    """No valid credentials."""

    def __init__(self, message: str) -> None:
        super().__init__(401, message)


class Forbidden(HttpError, GatewayError):
    """Valid credentials, but not for this."""

    def __init__(self, message: str) -> None:
        super().__init__(403, message)
