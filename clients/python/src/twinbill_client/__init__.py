"""Python client for the twinbill API (BEMServer API client style)."""

from twinbill_client.client import TwinbillAPIClient
from twinbill_client.exceptions import (
    TwinbillAPIAuthenticationError,
    TwinbillAPIAuthorizationError,
    TwinbillAPIConflictError,
    TwinbillAPIConnectionError,
    TwinbillAPIError,
    TwinbillAPINotFoundError,
    TwinbillAPIPreconditionError,
    TwinbillAPIValidationError,
)
from twinbill_client.response import TwinbillAPIResponse

__all__ = [
    "TwinbillAPIAuthenticationError",
    "TwinbillAPIAuthorizationError",
    "TwinbillAPIClient",
    "TwinbillAPIConflictError",
    "TwinbillAPIConnectionError",
    "TwinbillAPIError",
    "TwinbillAPINotFoundError",
    "TwinbillAPIPreconditionError",
    "TwinbillAPIResponse",
    "TwinbillAPIValidationError",
]
