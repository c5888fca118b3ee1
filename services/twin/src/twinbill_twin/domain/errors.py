"""The time-series domain's root error: a query parameter that cannot be understood."""

from __future__ import annotations

from twinbill_common.errors import TwinbillError


class TimeseriesError(TwinbillError):
    """Root of the time-series package's errors."""


class BadParameter(TimeseriesError):
    """A query parameter is wrong; `parameter` names it and the message says why."""

    def __init__(self, parameter: str, reason: str) -> None:
        super().__init__(f"{parameter}: {reason}")
        self.parameter = parameter
        self.reason = reason
