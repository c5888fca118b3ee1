"""Entry point: settings -> app -> run (twinbill_common.service.serve)."""

from __future__ import annotations

from twinbill_common.service import serve
from twinbill_gateway.app import create_app
from twinbill_gateway.settings import GatewaySettings


def main() -> None:
    """Run the API gateway until interrupted."""
    serve(GatewaySettings, create_app, service="gateway")


if __name__ == "__main__":
    main()
