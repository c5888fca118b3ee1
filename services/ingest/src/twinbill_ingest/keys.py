"""The application's typed keys, in one module (app.py sets them; tests read them)."""

from __future__ import annotations

from aiohttp import web

from twinbill_ingest.commands import CommandRelay
from twinbill_ingest.gateway import Gateway
from twinbill_ingest.handlers import RegistryListener
from twinbill_ingest.settings import IngestSettings
from twinbill_ingest.store import RegistryCache

SETTINGS = web.AppKey("settings", IngestSettings)
GATEWAY = web.AppKey("gateway", Gateway)
CACHE = web.AppKey("cache", RegistryCache)
LISTENER = web.AppKey("listener", RegistryListener)
RELAY = web.AppKey("relay", CommandRelay)
