"""Service tokens for tests that call a service's /internal/ paths as another service would."""

from __future__ import annotations

from twinbill_common.servicetokens import ServiceTokens
from twinbill_common.settings import DEV_SERVICE_KEY

# the key every service uses when TWINBILL_SERVICE_KEY is not set (development, tests)
TEST_TOKENS = ServiceTokens(DEV_SERVICE_KEY, issuer="tests")


def as_service(audience: str) -> dict[str, str]:
    """Headers of a call from a twinbill service to `audience` (twin, billing, ...)."""
    return TEST_TOKENS.headers(audience)
