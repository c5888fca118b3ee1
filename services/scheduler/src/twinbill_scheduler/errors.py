"""The scheduler's root error and what it raises on purpose."""

from __future__ import annotations

from twinbill_common.errors import TransientError, TwinbillError


class SchedulerError(TwinbillError):
    """Root of the errors the scheduler raises itself."""


class RegistryUnavailable(SchedulerError, TransientError):
    """The twin service did not answer about a project (network error, timeout, 5xx): retry.

    Never answered with a guessed zone: a zone is only stored when the registry said it.
    """
