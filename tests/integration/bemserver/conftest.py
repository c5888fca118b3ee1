"""The twin and the gateway in-process on real ports (the BEMServer client is a blocking
`requests` client, so tests call it through asyncio.to_thread), on the session database and a
bus namespace of their own; and the admin's client."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from bemserver_api_client import BEMServerApiClient
from multidict import CIMultiDict
from pydantic import SecretStr

from twinbill_devstack.namespaces import delete_namespace
from twinbill_gateway.app import create_app as create_gateway
from twinbill_gateway.settings import GatewaySettings
from twinbill_twin.app import create_app as create_twin
from twinbill_twin.settings import TwinSettings

ADMIN = ("bem-admin@example.test", "bem-admin-password")
T = TypeVar("T")


@dataclass
class Stack:
    """The running gateway and twin."""

    gateway: TestClient[Any, Any]
    twin: TestClient[Any, Any]

    @property
    def host(self) -> str:
        """What BEMServerApiClient takes as its host: the gateway and the /bemserver prefix."""
        return f"127.0.0.1:{self.gateway.port}/bemserver"

    def client(self, email: str, password: str) -> Any:
        """A BEMServer client signed in with HTTP basic (version checked on creation)."""
        return BEMServerApiClient(self.host, use_ssl=False, auto_check=True,
                                  authentication_method=BEMServerApiClient.make_http_basic_auth(email, password))


@pytest.fixture(scope="module")
async def bem(pg_dsn: str, amqp_url: str) -> AsyncIterator[Stack]:
    """Twin and gateway, each on its own schema; the twin's bus namespace deleted afterwards."""
    tag = uuid.uuid4().hex[:10]
    twin_settings = TwinSettings(pg_dsn=pg_dsn, amqp_url=amqp_url, schema_name=f"bem_twin_{tag}",
                                 bus_namespace=f"t{tag}.", pg_pool_max=5)
    twin: TestClient[Any, Any] = TestClient(TestServer(create_twin(twin_settings)))
    await twin.start_server()
    gateway_settings = GatewaySettings(pg_dsn=SecretStr(pg_dsn), schema_name=f"bem_identity_{tag}",
                                       admin_email=ADMIN[0], admin_password=SecretStr(ADMIN[1]),
                                       twin_url=f"http://127.0.0.1:{twin.port}", pg_pool_max=4)
    gateway: TestClient[Any, Any] = TestClient(TestServer(create_gateway(gateway_settings)))
    await gateway.start_server()
    yield Stack(gateway, twin)
    await gateway.close()
    await twin.close()
    await delete_namespace(amqp_url, twin_settings.bus_namespace)


@pytest.fixture(scope="module")
async def admin(bem: Stack) -> Any:
    """The first administrator's BEMServer client."""
    return await asyncio.to_thread(bem.client, *ADMIN)


async def call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one blocking client call off the event loop the services run on."""
    return await asyncio.to_thread(function, *args, **kwargs)


def unique(prefix: str) -> str:
    """A name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def raw(bem: Stack, method: str, path: str, *, auth: tuple[str, str] | None = ADMIN,
              headers: dict[str, str] | None = None, **kwargs: Any) -> tuple[int, Any, CIMultiDict[str]]:
    """One request to the gateway's /bemserver without the client: status, body, headers."""
    sent = dict(headers or {})
    if auth is not None:
        sent.setdefault("Authorization", aiohttp.encode_basic_auth(*auth))
    async with aiohttp.ClientSession() as http, http.request(method, f"http://{bem.host}{path}", headers=sent,
                                                             **kwargs) as response:
        text = await response.text()
        body = json.loads(text) if response.content_type == "application/json" else text
        return response.status, body, CIMultiDict(response.headers)
