"""The twin's part of the BEMServer-compatible API (bemserver-api 0.26 contract, issue 12):
campaigns, campaign scopes, sites to zones, time series, data states, time-series data,
properties and property data, the links of series to the structure, energy and weather
links, completeness and the energy breakdown, events, their links, subscriptions and
notifications, the check services' st_* resources (issue 13),
served under /bemserver behind the gateway (which serves about, auth, users and groups)."""

from __future__ import annotations

from aiohttp import web

from twinbill_twin.bemserver.analysis import add_analysis_routes
from twinbill_twin.bemserver.data import add_data_routes
from twinbill_twin.bemserver.energy import add_energy_routes
from twinbill_twin.bemserver.event_links import add_event_link_routes
from twinbill_twin.bemserver.events import add_event_routes
from twinbill_twin.bemserver.notifications import add_notification_routes
from twinbill_twin.bemserver.properties import add_property_routes
from twinbill_twin.bemserver.resources import add_resource_routes
from twinbill_twin.bemserver.services import add_service_routes
from twinbill_twin.bemserver.timeseries import add_timeseries_routes
from twinbill_twin.bemserver.weather import add_weather_routes

PREFIX = "/bemserver"


def setup_bemserver(app: web.Application) -> None:
    """Mount /bemserver/... on the twin app."""
    add_resource_routes(app, PREFIX)
    add_timeseries_routes(app, PREFIX)
    add_data_routes(app, PREFIX)
    add_property_routes(app, PREFIX)
    add_energy_routes(app, PREFIX)
    add_analysis_routes(app, PREFIX)
    add_weather_routes(app, PREFIX)
    add_event_routes(app, PREFIX)
    add_event_link_routes(app, PREFIX)
    add_notification_routes(app, PREFIX)
    add_service_routes(app, PREFIX)
