"""The scheduler's root error (a twin that does not answer is twinbill_common's RegistryUnavailable)."""

from __future__ import annotations

from twinbill_common.errors import TwinbillError


class SchedulerError(TwinbillError):
    """Root of the errors the scheduler raises itself."""
