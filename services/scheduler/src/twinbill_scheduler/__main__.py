"""Entry point: settings -> app -> run."""

from __future__ import annotations

from twinbill_common.logging import configure_logging
from twinbill_common.service import run_service
from twinbill_common.settings import load_settings
from twinbill_scheduler.app import create_app
from twinbill_scheduler.settings import SchedulerSettings


def main() -> None:
    """Run the scheduler (task API and firing loop) until interrupted."""
    settings = load_settings(SchedulerSettings)
    configure_logging(level=settings.log_level, json=settings.log_json, service="scheduler")
    run_service(create_app(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
