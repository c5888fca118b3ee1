"""Service tokens: the credential every call between services carries, and the check of it.

A token is an HS256 JWT signed with the platform's shared `TWINBILL_SERVICE_KEY`, naming the
caller (`iss`), the one service it is for (`aud`) and a short life (`exp`, 5 minutes). The caller
adds it as `X-Twinbill-Service-Token` through an aiohttp client middleware; the callee's server
middleware refuses any request under its protected prefixes (`/internal/`) without a valid token
for itself (401, naming why). The API gateway never forwards the header from outside: it only
forwards paths outside `/internal/` and builds its upstream headers itself.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import jwt
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse, web
from aiohttp.typedefs import Middleware
from yarl import URL

from twinbill_common.errors import HttpError
from twinbill_common.http import Handler

HEADER = "X-Twinbill-Service-Token"
TOKEN_TTL = 300.0
ALGORITHM = "HS256"
PROTECTED = ("/internal/",)


class ServiceTokenError(ValueError):
    """The service token is missing, malformed, expired, or not for this service."""


class ServiceTokens:
    """Issues this service's tokens (cached per audience until half their life) and checks others'."""

    def __init__(self, key: str, *, issuer: str, ttl: float = TOKEN_TTL) -> None:
        self._key = key
        self.issuer = issuer
        self._ttl = ttl
        self._cache: dict[str, tuple[float, str]] = {}

    def token(self, audience: str, *, now: float | None = None) -> str:
        """A token from this service for `audience`."""
        now = time.time() if now is None else now
        cached = self._cache.get(audience)
        if cached is not None and cached[0] - now > self._ttl / 2:
            return cached[1]
        expires = now + self._ttl
        token = jwt.encode({"iss": self.issuer, "aud": audience, "iat": int(now), "exp": int(expires)},
                           self._key, algorithm=ALGORITHM)
        self._cache[audience] = (expires, token)
        return token

    def headers(self, audience: str) -> dict[str, str]:
        """The header that carries a token for `audience`."""
        return {HEADER: self.token(audience)}

    def verify(self, token: str, *, audience: str, now: float | None = None) -> str:
        """The calling service's name, or ServiceTokenError saying what is wrong."""
        try:
            claims = jwt.decode(token, self._key, algorithms=[ALGORITHM], audience=audience,
                                options={"require": ["iss", "aud", "exp"], "verify_exp": False})
        except jwt.InvalidAudienceError:
            raise ServiceTokenError(f"service token is not for {audience}") from None
        except jwt.PyJWTError:
            raise ServiceTokenError("service token is not valid (bad signature or claims)") from None
        if int(claims["exp"]) <= int(time.time() if now is None else now):
            raise ServiceTokenError("service token expired")
        return str(claims["iss"])

    def client_middleware(self, audiences: Mapping[str, str]) -> ClientMiddleware:
        """An aiohttp client middleware adding a token to each request whose origin is one of
        `audiences` ({base URL: service name}); requests elsewhere go without one."""
        by_origin = {str(URL(base).origin()): name for base, name in audiences.items()}
        return ClientMiddleware(self, by_origin)


class ClientMiddleware:
    """Adds the service token for the request's origin (see ServiceTokens.client_middleware)."""

    def __init__(self, tokens: ServiceTokens, by_origin: dict[str, str]) -> None:
        self._tokens = tokens
        self._by_origin = by_origin

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        audience = self._by_origin.get(str(request.url.origin()))
        if audience is not None:
            request.headers[HEADER] = self._tokens.token(audience)
        return await handler(request)


def require_service_token(tokens: ServiceTokens, *, audience: str,
                          prefixes: tuple[str, ...] = PROTECTED, hide: bool = False) -> Middleware:
    """Server middleware: requests under `prefixes` need a valid token for `audience` (401; with
    `hide`, on a port clients reach, the 404 of a path that does not exist, so nothing says what
    is there). Put it inside the envelope middleware, which renders the answer."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(prefixes):
            token = request.headers.get(HEADER)
            try:
                if not token:
                    raise ServiceTokenError(f"{request.path} is for twinbill services only: {HEADER} is missing")
                tokens.verify(token, audience=audience)
            except ServiceTokenError as err:
                raise (HttpError(404, f"no route for {request.path}") if hide else HttpError(401, str(err))) from None
        return await handler(request)

    return middleware
