"""A service's entry point, the same in every service: settings -> logging -> app -> run."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from aiohttp import web

from twinbill_common.logging import configure_logging
from twinbill_common.settings import CommonSettings, load_settings

S = TypeVar("S", bound=CommonSettings)


def serve(settings_class: type[S], create_app: Callable[[S], web.Application], *, service: str) -> None:
    """Build the settings from the environment (exit 2 listing every problem), configure logging,
    and serve the app on the configured host and port until interrupted."""
    settings = load_settings(settings_class)
    configure_logging(level=settings.log_level, json=settings.log_json, service=service)
    web.run_app(create_app(settings), host=settings.http_host, port=settings.http_port,
                print=None, access_log=None)
