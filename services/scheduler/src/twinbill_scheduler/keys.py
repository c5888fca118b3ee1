"""The application's typed keys, in one module that app.py and the routes import."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from twinbill_common.bus import Bus
from twinbill_common.zones import ProjectZones
from twinbill_scheduler.settings import SchedulerSettings
from twinbill_scheduler.store import TaskStore

SETTINGS = web.AppKey("settings", SchedulerSettings)
POOL = web.AppKey("pool", asyncpg.Pool)
BUS = web.AppKey("bus", Bus)
STORE = web.AppKey("task_store", TaskStore)
ZONES = web.AppKey("project_zones", ProjectZones)
