"""Entry point: settings -> app -> run (twinbill_common.service.serve)."""

from __future__ import annotations

from twinbill_billing.app import create_app
from twinbill_billing.settings import BillingSettings
from twinbill_common.service import serve


def main() -> None:
    """Run the billing worker and its HTTP API until interrupted."""
    serve(BillingSettings, create_app, service="billing")


if __name__ == "__main__":
    main()
