"""Entry point: settings -> app -> run."""

from __future__ import annotations

from twinbill_common.logging import configure_logging
from twinbill_common.service import run_service
from twinbill_common.settings import load_settings
from twinbill_gateway.app import create_app
from twinbill_gateway.settings import GatewaySettings


def main() -> None:
    """Run the API gateway until interrupted."""
    settings = load_settings(GatewaySettings)
    configure_logging(level=settings.log_level, json=settings.log_json, service="gateway")
    run_service(create_app(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
