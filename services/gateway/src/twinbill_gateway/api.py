"""The gateway's own routes: tokens (seed 001's auth.get_tokens / refresh_tokens) and users."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from twinbill_common.apidocs import documented, page_query
from twinbill_common.errors import HttpError, NotFound, ValidationFailed
from twinbill_common.http import dumps, json_response, meta_ok, parse_model, read_json
from twinbill_common.paging import INT32_MAX, Errors, parse_int, query_page, smorest_pagination
from twinbill_gateway.auth import authenticate, require_admin
from twinbill_gateway.domain.credentials import (
    ApiKey,
    Bearer,
    CredentialError,
    TokenClaims,
    TokenKind,
    hash_password,
    issue_token,
    key_digest,
    new_api_key,
    new_session_id,
    parse_authorization,
    read_claims,
)
from twinbill_gateway.errors import Unauthorized
from twinbill_gateway.keys import SETTINGS, SIGN_IN, STORE
from twinbill_gateway.metrics import sign_in_outcome
from twinbill_gateway.settings import GatewaySettings

# a project id as memberships store it (PostgreSQL integer); found by schemathesis: a larger one
# was a 500
ProjectId = Annotated[int, Field(ge=1, le=INT32_MAX)]


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3)
    password: str = Field(min_length=1)


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=80)
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    password: str = Field(min_length=8, max_length=256)
    is_admin: bool = False
    projects: list[ProjectId] = Field(default_factory=list)


class Tokens(BaseModel):
    """POST /api/v1/auth/token's answer: tokens, or {"status": "failure"} (BEMServer's)."""

    status: Literal["success", "failure"]
    access_token: str | None = None
    refresh_token: str | None = None


class UserRead(BaseModel):
    """A user as the users API shows it (no secrets)."""

    id: int
    name: str
    email: str
    is_admin: bool
    is_active: bool
    projects: list[int]


class ApiKeyRead(BaseModel):
    """A new seed-000 API key, shown once."""

    user_id: int
    key: str
    authorization: str


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=80)
    password: str | None = Field(default=None, min_length=8, max_length=256)
    is_admin: bool | None = None
    is_active: bool | None = None
    projects: list[ProjectId] | None = None


def _tokens(user_id: int, settings: GatewaySettings, *, session_id: str) -> dict[str, str]:
    """An access and a refresh token of one sign-in session (revoked together at sign-out)."""
    now = datetime.now(UTC)
    secret = settings.jwt_secret.get_secret_value()
    return {
        "status": "success",
        "access_token": issue_token(user_id, kind="access", now=now, session_id=session_id,
                                    ttl=timedelta(seconds=settings.access_ttl_seconds), secret=secret),
        "refresh_token": issue_token(user_id, kind="refresh", now=now, session_id=session_id,
                                     ttl=timedelta(seconds=settings.refresh_ttl_seconds), secret=secret),
    }


@documented(summary="Sign in: access and refresh tokens", body=TokenRequest, response=Tokens, tags=("auth",))
async def get_tokens(request: web.Request) -> web.Response:
    """POST /api/v1/auth/token: {"status": "success", tokens} or {"status": "failure"}, as BEMServer."""
    body = parse_model(TokenRequest, await read_json(request))
    user = await request.app[SIGN_IN].check(request, body.email, body.password)
    if user is None or not user.is_active:
        sign_in_outcome(request, accepted=False)
        return json_response({"status": "failure"})
    sign_in_outcome(request, accepted=True)
    return json_response(_tokens(user.id, request.app[SETTINGS], session_id=new_session_id()))


@documented(summary="New tokens from a refresh token (Bearer)", response=Tokens, tags=("auth",))
async def refresh_tokens(request: web.Request) -> web.Response:
    """POST /api/v1/auth/token/refresh with `Authorization: Bearer <refresh token>`."""
    settings = request.app[SETTINGS]
    claims = _bearer_claims(request, kind="refresh")
    if claims.session_id is not None and await request.app[STORE].session_revoked(claims.session_id):
        raise Unauthorized("token revoked: its session was signed out")
    user = await request.app[STORE].by_id(claims.user_id)
    if user is None or not user.is_active:
        raise Unauthorized("unknown or deactivated user")
    # the refreshed tokens stay in the same session, so signing out revokes them too
    return json_response(_tokens(user.id, settings, session_id=claims.session_id or new_session_id()))


def _bearer_claims(request: web.Request, *, kind: TokenKind | None) -> TokenClaims:
    """The claims of the request's `Authorization: Bearer` token, or 401 saying why."""
    try:
        credentials = parse_authorization(request.headers.get("Authorization", ""))
        if not isinstance(credentials, Bearer):
            raise CredentialError(f"needs `Authorization: Bearer <{kind or 'access or refresh'} token>`")
        return read_claims(credentials.token, kind=kind, now=datetime.now(UTC),
                           secret=request.app[SETTINGS].jwt_secret.get_secret_value())
    except CredentialError as err:
        raise Unauthorized(str(err)) from None


@documented(summary="Sign out: revoke the token's session", status=204, tags=("auth",))
async def revoke_tokens(request: web.Request) -> web.Response:
    """POST /api/v1/auth/token/revoke with `Authorization: Bearer <access or refresh token>`:
    sign out. Every token of that sign-in session (access, refresh, and those refreshed from them)
    is refused from now on; 204. Tokens issued before sessions existed carry none: 400."""
    claims = _bearer_claims(request, kind=None)
    if claims.session_id is None:
        raise HttpError(400, "this token has no session to revoke (issued before sign-out existed); "
                             "it lapses when it expires")
    settings = request.app[SETTINGS]
    expires_at = datetime.now(UTC) + timedelta(seconds=settings.refresh_ttl_seconds)
    await request.app[STORE].revoke_session(claims.session_id, user_id=claims.user_id, expires_at=expires_at)
    return web.Response(status=204)


LOGOUT_PATH = "/api/v1/auth/logout"


@documented(summary="Seed 000 logout: revoke the API key or the session", response=dict[str, Any],
            envelope="meta", tags=("auth",))
async def logout(request: web.Request) -> web.Response:
    """POST /api/v1/auth/logout, seed 000's 登出接口: the caller's credential stops working.
    `Authorization: token <user_id>:<key>` deletes that API key (a new one is made with
    POST /api/v1/users/me/api_key); `Bearer` revokes the token's sign-in session (its access and
    refresh tokens). Answered in seed 000's envelope: {"meta": {"code": 0, "message": "logout
    ok."}, "data": {}}. HTTP basic has nothing to revoke: 400."""
    settings = request.app[SETTINGS]
    store = request.app[STORE]
    user = await authenticate(request, store=store, secret=settings.jwt_secret.get_secret_value())
    credentials = parse_authorization(request.headers.get("Authorization", ""))
    if isinstance(credentials, ApiKey):
        await store.delete_api_key(user.id)
    elif isinstance(credentials, Bearer):
        claims = _bearer_claims(request, kind="access")
        if claims.session_id is None:
            raise HttpError(400, "this token has no session to revoke; it lapses when it expires")
        expires_at = datetime.now(UTC) + timedelta(seconds=settings.refresh_ttl_seconds)
        await store.revoke_session(claims.session_id, user_id=user.id, expires_at=expires_at)
    else:
        raise HttpError(400, "HTTP basic credentials cannot be logged out: change the password")
    return meta_ok({}, "logout ok.")


async def _admin(request: web.Request) -> None:
    user = await authenticate(request, store=request.app[STORE],
                              secret=request.app[SETTINGS].jwt_secret.get_secret_value())
    require_admin(user)


def _user_id(request: web.Request) -> int:
    try:
        return parse_int(request.match_info["user_id"])
    except ValueError as err:
        raise ValidationFailed({"user_id": [str(err)]}, data={"location": "path"}) from None


USERS_PAGE, USERS_MAX = 20, 1000


@documented(summary="Users (administrators)", response=list[UserRead], tags=("users",),
            query=page_query(default_size=USERS_PAGE, max_size=USERS_MAX))
async def list_users(request: web.Request) -> web.Response:
    await _admin(request)
    errors: Errors = {}
    window = query_page(request.query, default_size=USERS_PAGE, max_size=USERS_MAX, errors=errors)
    if errors:
        raise ValidationFailed(errors, data={"location": "query"})
    total, users = await request.app[STORE].page(limit=window.page_size, offset=window.offset)
    pagination = smorest_pagination(total=total, page=window.page, page_size=window.page_size)
    return json_response([u.public() for u in users], headers={"X-Pagination": dumps(pagination)})


@documented(summary="Create a user (administrators)", body=UserCreate, response=UserRead, status=201,
            tags=("users",))
async def create_user(request: web.Request) -> web.Response:
    await _admin(request)
    body = parse_model(UserCreate, await read_json(request))
    user = await request.app[STORE].create(name=body.name, email=body.email, is_admin=body.is_admin,
                                           password_hash=await asyncio.to_thread(hash_password, body.password),
                                           projects=body.projects)
    return json_response(user.public(), status=201)


@documented(summary="One user (administrators)", response=UserRead, tags=("users",))
async def get_user(request: web.Request) -> web.Response:
    await _admin(request)
    user = await request.app[STORE].by_id(_user_id(request))
    if user is None:
        raise NotFound("user not found")
    return json_response(user.public())


@documented(summary="Change a user (administrators)", body=UserUpdate, response=UserRead, tags=("users",))
async def update_user(request: web.Request) -> web.Response:
    await _admin(request)
    body = parse_model(UserUpdate, await read_json(request))
    digest = await asyncio.to_thread(hash_password, body.password) if body.password else None
    user = await request.app[STORE].update(
        _user_id(request), name=body.name, is_admin=body.is_admin, is_active=body.is_active,
        password_hash=digest, projects=body.projects)
    if user is None:
        raise NotFound("user not found")
    return json_response(user.public())


@documented(summary="Delete a user (administrators)", status=204, tags=("users",))
async def delete_user(request: web.Request) -> web.Response:
    await _admin(request)
    if not await request.app[STORE].delete(_user_id(request)):
        raise NotFound("user not found")
    return web.Response(status=204)


@documented(summary="Who the credentials belong to", response=UserRead, tags=("users",))
async def me(request: web.Request) -> web.Response:
    """GET /api/v1/users/me: who the credentials belong to."""
    user = await authenticate(request, store=request.app[STORE],
                              secret=request.app[SETTINGS].jwt_secret.get_secret_value())
    return json_response(user.public())


@documented(summary="A new seed-000 API key (shown once)", response=ApiKeyRead, status=201, tags=("users",))
async def create_api_key(request: web.Request) -> web.Response:
    """POST /api/v1/users/me/api_key: a new seed-000 key; the full header value is shown once."""
    user = await authenticate(request, store=request.app[STORE],
                              secret=request.app[SETTINGS].jwt_secret.get_secret_value())
    key = new_api_key()
    await request.app[STORE].set_api_key(user.id, key_digest(key))
    return json_response({"user_id": user.id, "key": key, "authorization": f"token {user.id}:{key}"},
                         status=201)


def setup_routes(app: web.Application) -> None:
    """Mount the gateway's own routes (before the catch-all proxy)."""
    app.add_routes([
        web.post("/api/v1/auth/token", get_tokens),
        web.post("/api/v1/auth/token/refresh", refresh_tokens),
        web.post("/api/v1/auth/token/revoke", revoke_tokens),
        web.post(LOGOUT_PATH, logout),
        web.get("/api/v1/users/me", me),
        web.post("/api/v1/users/me/api_key", create_api_key),
        web.get("/api/v1/users/", list_users),
        web.post("/api/v1/users/", create_user),
        web.get("/api/v1/users/{user_id}", get_user),
        web.put("/api/v1/users/{user_id}", update_user),
        web.delete("/api/v1/users/{user_id}", delete_user),
    ])
