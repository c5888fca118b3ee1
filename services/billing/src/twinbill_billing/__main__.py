"""Entry point: settings -> app -> run."""

from __future__ import annotations

from twinbill_billing.app import create_app
from twinbill_billing.settings import BillingSettings
from twinbill_common.logging import configure_logging
from twinbill_common.service import run_service
from twinbill_common.settings import load_settings


def main() -> None:
    """Run the billing worker and its HTTP API until interrupted."""
    settings = load_settings(BillingSettings)
    configure_logging(level=settings.log_level, json=settings.log_json, service="billing")
    run_service(create_app(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
