"""One access-log line per HTTP request, through the service's structured log.

aiohttp calls `log` after each response: method, path with query, status, bytes written (headers
and body), milliseconds, the caller's address and the request id the envelope middleware answered
with (X-Request-Id), so
an error's request id leads to its access line. Health probes and metric scrapes (`/healthz`,
`/readyz`, `/metrics`) are written at debug level: a load balancer polling them would otherwise
bury the requests people make.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from twinbill_common.logging import get_logger

log = get_logger("twinbill.access")
PROBES = frozenset({"/healthz", "/readyz", "/metrics"})


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access logger, writing through structlog."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        write = log.debug if request.path in PROBES else log.info
        write("request", method=request.method, path=request.path_qs, status=response.status,
              bytes=response.body_length, ms=round(time * 1000, 1), remote=request.remote,
              request_id=response.headers.get("X-Request-Id"))


def runner_options(*, enabled: bool) -> dict[str, Any]:
    """The AppRunner arguments that turn the access log on (or off)."""
    if not enabled:
        return {"access_log": None}
    return {"access_log_class": AccessLogger, "access_log": logging.getLogger("aiohttp.access")}
