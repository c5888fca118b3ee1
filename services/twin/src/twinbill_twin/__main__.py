"""Entry point: settings -> app -> run (twinbill_common.service.serve)."""

from __future__ import annotations

from twinbill_common.service import serve
from twinbill_twin.app import create_app
from twinbill_twin.settings import TwinSettings


def main() -> None:
    """Run the twin service until interrupted."""
    serve(TwinSettings, create_app, service="twin")


if __name__ == "__main__":
    main()
