"""The gateway's Prometheus metrics: authentication outcomes, on the service's own registry.

Counted at the edge from what the caller sent and the status it got, so that every way in (the
token routes, the proxy, `/bemserver`, the users API) is counted by one middleware:
`accepted` (credentials sent, the answer is not 401/403/429), `rejected` (401 with credentials:
wrong password, expired or revoked token, unknown key, deactivated user), `missing` (401 without
an Authorization header), `forbidden` (403: a valid user without the right), `throttled` (429).
A request without credentials that does not need them (/healthz, the console's files) is not
counted. The scheme label is the Authorization header's first word (bearer, basic, token).
A password sign-in (`POST /api/v1/auth/token`) answers 200 either way, as BEMServer does, so
its handler says the outcome with `sign_in_outcome` (scheme `password`).
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CollectorRegistry, Counter

SCHEMES = frozenset({"bearer", "basic", "token"})
_SIGN_IN = web.RequestKey("gateway_sign_in_outcome", str)  # set by a sign-in handler, read by the middleware


def sign_in_outcome(request: web.Request, *, accepted: bool) -> None:
    """Record a password sign-in's outcome for `gateway_auth_total{scheme="password"}`."""
    request[_SIGN_IN] = "accepted" if accepted else "rejected"


def auth_counter(registry: CollectorRegistry) -> Counter:
    """`gateway_auth_total{scheme, outcome}` on `registry`."""
    return Counter("gateway_auth", "Authentication outcomes at the gateway, by scheme",
                   ("scheme", "outcome"), registry=registry)


def outcome_of(status: int, *, has_credentials: bool) -> str | None:
    """The outcome label for an answer's status, or None when nothing was authenticated."""
    if status == 401:
        return "rejected" if has_credentials else "missing"
    if not has_credentials:
        return None
    return {403: "forbidden", 429: "throttled"}.get(status, "accepted")


def auth_metrics_middleware(counter: Counter) -> Middleware:
    """Count each authenticated (or refused) request's outcome."""

    @web.middleware
    async def count_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        word = header.split(" ", 1)[0].lower() if header else "none"
        scheme = word if word in SCHEMES else ("none" if not header else "other")
        status = 500  # an exception no middleware inside rendered
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            outcome: str | None = outcome_of(status, has_credentials=bool(header))
            if _SIGN_IN in request:
                scheme, outcome = "password", request[_SIGN_IN]
            if outcome is not None:
                counter.labels(scheme, outcome).inc()

    return count_auth
