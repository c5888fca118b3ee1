"""The twin's part of the BEMServer-compatible API (bemserver-api 0.26 contract, issue 12):
campaigns, campaign scopes, sites to zones, time series, data states and time-series data,
served under /bemserver behind the gateway (which serves about, auth, users and groups)."""

from __future__ import annotations

from aiohttp import web

from twinbill_twin.bemserver.data import add_data_routes
from twinbill_twin.bemserver.resources import add_resource_routes
from twinbill_twin.bemserver.timeseries import add_timeseries_routes

PREFIX = "/bemserver"


def setup_bemserver(app: web.Application) -> None:
    """Mount /bemserver/... on the twin app."""
    add_resource_routes(app, PREFIX)
    add_timeseries_routes(app, PREFIX)
    add_data_routes(app, PREFIX)
