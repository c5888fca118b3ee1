"""Entry point: settings -> app -> run (twinbill_common.service.serve)."""

from __future__ import annotations

from twinbill_common.service import serve
from twinbill_scheduler.app import create_app
from twinbill_scheduler.settings import SchedulerSettings


def main() -> None:
    """Run the scheduler (task API and firing loop) until interrupted."""
    serve(SchedulerSettings, create_app, service="scheduler")


if __name__ == "__main__":
    main()
