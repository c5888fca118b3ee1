"""python -m twinbill_simulator: simulated gateways and meters against an MQTT broker."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from pathlib import Path

from twinbill_simulator.config import generate_config, load_config, registry_for
from twinbill_simulator.run import run_simulator


def main() -> None:
    """Parse the flags and run until the duration ends or Ctrl-C."""
    parser = argparse.ArgumentParser(prog="twinbill-simulator", description=__doc__)
    parser.add_argument("--config", type=Path, help='device list JSON ({"gateways": [...]})')
    parser.add_argument("--gateways", type=int, default=2, help="generated gateways (no --config)")
    parser.add_argument("--sub-devices", type=int, default=10, help="meters per generated gateway")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--rate", type=float, default=100.0, help="points per second (0: unlimited)")
    parser.add_argument("--duration", type=float, default=None, help="seconds (default: forever)")
    parser.add_argument("--batch", type=int, default=100, help="points per request")
    parser.add_argument("--window", type=int, default=16, help="requests in flight per gateway")
    parser.add_argument("--auth", action="store_true", help="log in as {pk}/{dk} with the secret")
    parser.add_argument(
        "--offline-every", type=float, default=600.0, help="mean seconds between offline periods (0: never)"
    )
    parser.add_argument("--offline-seconds", type=float, default=30.0)
    parser.add_argument("--reply-timeout", type=float, default=30.0,
                        help="seconds to wait for a reply before sending the request again")
    parser.add_argument(
        "--consumption-scale",
        type=float,
        default=1.0,
        help="multiply every meter's daily consumption (demos with short billing periods)",
    )
    parser.add_argument("--write-config", type=Path, help="write the generated device list here")
    parser.add_argument("--write-registry", type=Path, help="write an INGEST_REGISTRY_FILE for it here")
    args = parser.parse_args()
    config = load_config(args.config) if args.config else generate_config(args.gateways, args.sub_devices)
    if args.write_config:
        args.write_config.write_text(json.dumps(config, indent=2))
    if args.write_registry:
        args.write_registry.write_text(json.dumps(registry_for(config), indent=2))
    async def until_stopped() -> None:
        # SIGINT and SIGTERM end the run the same way (the last summary printed), whatever the
        # parent left them as: a process started in the background inherits SIGINT ignored.
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        await run_simulator(
            config,
            host=args.host,
            port=args.port,
            rate=args.rate or None,
            duration=args.duration,
            batch=args.batch,
            window=args.window,
            auth=args.auth,
            offline_every=args.offline_every or None,
            offline_seconds=args.offline_seconds,
            consumption_scale=args.consumption_scale,
            reply_timeout=args.reply_timeout,
            stop=stop,
        )

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(until_stopped())

if __name__ == "__main__":
    main()
