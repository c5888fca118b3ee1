"""The scheduler's root error and what it raises on purpose."""

from __future__ import annotations

from twinbill_common.errors import TwinbillError


class SchedulerError(TwinbillError):
    """Root of the errors the scheduler raises itself."""


class PublishFailed(SchedulerError):
    """A run message was not confirmed; its fire stays claimed and is retried after the lease."""
