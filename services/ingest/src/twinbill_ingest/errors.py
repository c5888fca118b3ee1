"""The ingest gateway's root error and what callers do with each kind."""

from __future__ import annotations

from twinbill_common import errors
from twinbill_common.errors import TwinbillError


class IngestError(TwinbillError):
    """Root of the errors the ingest gateway raises on purpose."""


class RegistryUnavailable(IngestError, errors.RegistryUnavailable):
    """The registry (the twin service) did not answer: retry with backoff."""
