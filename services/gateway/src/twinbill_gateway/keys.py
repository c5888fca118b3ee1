"""The application's typed keys, in one module that app.py, the routes and the proxy import."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from twinbill_gateway.settings import GatewaySettings
from twinbill_gateway.signin import SignIn
from twinbill_gateway.store import IdentityStore

SETTINGS = web.AppKey("gateway_settings", GatewaySettings)
STORE = web.AppKey("identity_store", IdentityStore)
CLIENT = web.AppKey("upstream_client", aiohttp.ClientSession)
SIGN_IN = web.AppKey("sign_in", SignIn)
