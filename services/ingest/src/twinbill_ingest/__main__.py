"""Entry point: settings -> app -> run."""

from __future__ import annotations

from twinbill_common.logging import configure_logging
from twinbill_common.service import run_service
from twinbill_common.settings import load_settings
from twinbill_ingest.app import create_app
from twinbill_ingest.settings import IngestSettings


def main() -> None:
    """Run the ingest gateway until interrupted."""
    settings = load_settings(IngestSettings)
    configure_logging(level=settings.log_level, json=settings.log_json, service="ingest")
    run_service(create_app(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
