"""Entry point: settings -> app -> run (twinbill_common.service.serve)."""

from __future__ import annotations

from twinbill_common.service import serve
from twinbill_ingest.app import create_app
from twinbill_ingest.settings import IngestSettings


def main() -> None:
    """Run the ingest gateway until interrupted."""
    serve(IngestSettings, create_app, service="ingest")


if __name__ == "__main__":
    main()
