"""Every registry route of the twin service in one call."""

from __future__ import annotations

from aiohttp import web

from twinbill_twin.api.alarms import add_alarm_routes
from twinbill_twin.api.csv_import import add_io_routes
from twinbill_twin.api.descriptions import add_description_routes
from twinbill_twin.api.internal import add_internal_routes
from twinbill_twin.api.lifecycle import add_lifecycle_routes
from twinbill_twin.api.open_dt import add_open_routes
from twinbill_twin.api.places import add_place_routes
from twinbill_twin.api.things import add_thing_routes
from twinbill_twin.api.webhooks import add_webhook_routes


def add_registry_routes(app: web.Application) -> None:
    """Management API (/api/v1), seed-002 instances (/dt/open/v1), internal endpoints (/internal/v1)."""
    add_place_routes(app)
    add_thing_routes(app)
    add_lifecycle_routes(app)
    add_io_routes(app)
    add_open_routes(app)
    add_description_routes(app)
    add_internal_routes(app)
    add_alarm_routes(app)
    add_webhook_routes(app)
