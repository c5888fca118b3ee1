"""Entry point: settings -> app -> run (twinbill_common.service.serve), on uvloop's event loop
and with the process's garbage collector settled for the gateway's hot path."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

from twinbill_common.service import serve
from twinbill_ingest.app import create_app
from twinbill_ingest.settings import IngestSettings

# The cyclic collector's first generation is collected after this many more allocations than
# deallocations (Python's default: 700).
GC_YOUNG_THRESHOLD = 10_000


def settle_garbage_collector() -> None:
    """Keep the cyclic garbage collector off what start-up built (modules, schemas: gc.freeze)
    and let it run less often. Under bench_ingest it took about 12 % of the gateway's CPU: each
    request's objects live until its publish is confirmed, long enough to be walked by every
    generation, and almost none of them is ever cyclic garbage (services/ingest/README.md,
    "Where the time goes")."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop: asyncio's loop, tasks and transports are about a fifth of the
    gateway's CPU, and uvloop runs them in C (2-7 % less CPU per point under bench_ingest;
    services/ingest/README.md).
    None, i.e. asyncio's own loop, where uvloop is not installed (it is not built for Windows)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main() -> None:
    """Run the ingest gateway until interrupted."""
    settle_garbage_collector()
    serve(IngestSettings, create_app, service="ingest", loop_factory=event_loop_factory())


if __name__ == "__main__":
    main()
