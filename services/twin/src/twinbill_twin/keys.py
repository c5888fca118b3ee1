"""The application's typed keys, in one module that app.py and every route module import."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from twinbill_common.bus import Bus
from twinbill_twin.directory import Directory
from twinbill_twin.events import Outbox
from twinbill_twin.handlers import AlarmConsumer, TelemetryConsumer
from twinbill_twin.refusals import WriteRefusals
from twinbill_twin.secretbox import DeviceSecrets
from twinbill_twin.settings import TwinSettings

SETTINGS = web.AppKey("settings", TwinSettings)
POOL = web.AppKey("pool", asyncpg.Pool)
BUS = web.AppKey("bus", Bus)
OUTBOX = web.AppKey("outbox", Outbox)
CONSUMER = web.AppKey("timeseries_consumer", TelemetryConsumer)
REFUSALS = web.AppKey("store_refusals", WriteRefusals)
DEVICE_SECRETS = web.AppKey("device_secrets", DeviceSecrets)
DIRECTORY = web.AppKey("directory", Directory)
ALARMS = web.AppKey("alarm_consumer", AlarmConsumer)
