"""`make faults` / `python -m twinbill_faults`: the fault campaign on a private stack.

Starts its own PostgreSQL, 3-node RabbitMQ cluster, Mosquitto and nx-27017 on free ports (never
the machine's shared ones), the five services against them, the simulator's meters and a
billing task per device type every minute; injects each fault `--repeat` times at random
moments; prints one line per fault and exits 1 if any pass criterion failed. Everything it
started is stopped at the end, on failure and on Ctrl-C too.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from pathlib import Path

from twinbill_faults.campaign import Campaign
from twinbill_faults.faults import QUICK, SHORT, SHORT_RECOVERY, SHORT_REPLY_TIMEOUT, catalogue
from twinbill_faults.stack import Options, Pace, Stack


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="twinbill-faults", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="times each fault is injected (default 3)")
    parser.add_argument("--short", action="store_true",
                        help=f"a few faults once each with a small load, briefer outages ({', '.join(SHORT)})")
    parser.add_argument("--only", nargs="+", choices=sorted(catalogue()), help="just these faults")
    parser.add_argument("--rate", type=float, help="points per second over all meters (default 200; short 60)")
    parser.add_argument("--gateways", type=int, help="simulated gateways (default 4; short 2)")
    parser.add_argument("--meters", type=int, default=6, help="meters per gateway (default 6)")
    parser.add_argument("--seed", type=int, help="random seed for the order and moments of the faults")
    parser.add_argument("--workdir", type=Path, help="where the instances keep their data (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs) afterwards")
    return parser.parse_args(argv)


async def campaign(args: argparse.Namespace) -> bool:
    """Start the stack, run the campaign, stop the stack; True when every criterion held."""
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="twinbill-faults-"))
    options = Options(workdir=workdir, gateways=args.gateways or (2 if args.short else 4), meters=args.meters,
                      rate=args.rate or (60.0 if args.short else 200.0), keep=args.keep,
                      pace=QUICK if args.short else Pace(),
                      reply_timeout=SHORT_REPLY_TIMEOUT if args.short else Options.reply_timeout,
                      log=lambda line: print(line, flush=True))
    only = args.only or (list(SHORT) if args.short else None)
    repeat = 1 if args.short and args.repeat == 3 else args.repeat
    stack = Stack.create(options)
    started = time.monotonic()
    print(f"faults: work directory {workdir}{' (kept)' if args.keep else ''}", flush=True)
    try:
        await stack.start()
        ok = await Campaign(stack, repeat=repeat, only=only, seed=args.seed,
                            recover_limit=SHORT_RECOVERY if args.short else None).run()
        simulator = stack.simulator_acked()
        print(f"faults: the observer recorded {len(stack.ledger.acked)} acknowledged points; the simulator's "
              f"last count was {simulator}; reply codes {dict(stack.ledger.codes)}; queries "
              f"{dict(stack.queries.codes)}", flush=True)
        return ok
    finally:
        print("faults: stopping everything the campaign started", flush=True)
        await stack.stop()
        print(f"faults: {time.monotonic() - started:.0f}s in all", flush=True)


def dump_tasks() -> None:
    """Print where every task of the campaign is waiting (on SIGUSR1)."""
    for task in asyncio.all_tasks():
        awaiting: object = task.get_coro()
        chain = []
        while awaiting is not None and hasattr(awaiting, "cr_frame"):
            frame = getattr(awaiting, "cr_frame", None)
            if frame is not None:
                chain.append(f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno} {frame.f_code.co_name}")
            awaiting = getattr(awaiting, "cr_await", None)
        print(f"task {task.get_name()}: {' -> '.join(chain)} (then {awaiting!r:.120})", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    """Run the campaign; exit 0 only when every pass criterion held."""
    args = parse(argv)
    loop = asyncio.new_event_loop()
    main_task = loop.create_task(campaign(args))
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main_task.cancel)  # the finally blocks stop what was started
    loop.add_signal_handler(signal.SIGUSR1, dump_tasks)  # `kill -USR1 <pid>`: what is it waiting on?
    try:
        ok = loop.run_until_complete(main_task)
    except asyncio.CancelledError:
        print("faults: interrupted", file=sys.stderr)
        ok = False
    finally:
        loop.close()
    print(f"faults: {'PASS' if ok else 'FAIL'}", flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
