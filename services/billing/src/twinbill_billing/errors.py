"""The billing package's root error and its retry/dead-letter subclasses."""

from __future__ import annotations

from twinbill_common.errors import PermanentError, TransientError, TwinbillError


class BillingError(TwinbillError):
    """Root of every error the billing service raises on purpose."""


class TwinUnavailable(BillingError, TransientError):
    """The twin service did not answer (or answered 5xx): retry the job later."""


class BadRunInput(BillingError, PermanentError):
    """A run or job cannot be processed whatever the retries (unknown project, missing chunk)."""


class ChainContention(BillingError, TransientError):
    """Other workers kept taking the chain positions this job wanted: retry the job later."""
