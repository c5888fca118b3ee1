"""Entry point: settings -> app -> run (twinbill_common.service.serve), with the process's garbage
collector settled for billing jobs."""

from __future__ import annotations

import gc

from twinbill_billing.app import create_app
from twinbill_billing.settings import BillingSettings
from twinbill_common.service import serve

# The cyclic collector's first generation is collected after this many more allocations than
# deallocations (Python's default: 700).
GC_YOUNG_THRESHOLD = 10_000


def settle_garbage_collector() -> None:
    """Keep the cyclic garbage collector off what start-up built (modules, schemas: gc.freeze)
    and let it run less often. Measured with `gc.callbacks` in a worker under bench_billing
    (issue 16) it took ~15 % of the worker's CPU, 0.1 ms a bill, and found almost nothing (2,420
    objects in 20,000 bills): a job's bills, drafts and events live until its insert and
    publishes return, long enough to be walked by every generation, and full collections walked
    everything start-up built each time (services/billing/README.md, "Benchmark")."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def main() -> None:
    """Run the billing worker and its HTTP API until interrupted."""
    settle_garbage_collector()
    serve(BillingSettings, create_app, service="billing")


if __name__ == "__main__":
    main()
