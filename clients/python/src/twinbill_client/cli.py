"""`twinbill`: the client from a shell.

    twinbill --host localhost:8000 --email admin@twinbill.local --password ... sites getall page_size=50
    twinbill ... devices getone 12
    twinbill ... sites create '{"name": "Tower A", "project_id": 1}'
    twinbill ... tasks getall 42
    twinbill ... instances attribute 7 start=1h-ago downsample=10m-avg
    twinbill ... --output bills.csv history export_csv 42 device_type=0
    twinbill ... runs getone 'task1:1711900800' outcome=skipped
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from twinbill_client.client import TwinbillAPIClient
from twinbill_client.exceptions import TwinbillAPIError, TwinbillAPIValidationError
from twinbill_client.settings import CliSettings


def _split(args: list[str]) -> tuple[list[Any], dict[str, str]]:
    positional: list[Any] = []
    params: dict[str, str] = {}
    for arg in args:
        if arg.startswith(("{", "[")):
            positional.append(json.loads(arg))
        elif "=" in arg:
            key, value = arg.split("=", 1)
            params[key] = value
        else:
            positional.append(int(arg) if arg.isdigit() else arg)
    return positional, params


def main(argv: list[str] | None = None) -> int:
    """Run one call and print its data as JSON; errors go to stderr with their per-field reasons."""
    settings = CliSettings.from_environment()
    parser = argparse.ArgumentParser(prog="twinbill", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=settings.host)
    parser.add_argument("--ssl", action="store_true", help="use https")
    parser.add_argument("--email", default=settings.email)
    parser.add_argument("--password", default=settings.password)
    parser.add_argument("--output", help="file an export (export_csv, ...) is written to (default: stdout)")
    parser.add_argument("resource", help="entry point: sites, devices, tasks, history, instances, ...")
    parser.add_argument("action", help="function: getall, getone, create, update, delete, ...")
    parser.add_argument("args", nargs="*", help="ids, a JSON payload, and key=value parameters")
    ns = parser.parse_args(argv)
    method = TwinbillAPIClient.make_http_basic(ns.email, ns.password) if ns.email else None
    client = TwinbillAPIClient(ns.host, use_ssl=ns.ssl, authentication_method=method)
    entry = getattr(client, ns.resource, None)
    function = getattr(entry, ns.action, None) if entry is not None else None
    if function is None or ns.action.startswith("_"):
        print(f"twinbill: no function {ns.resource}.{ns.action}", file=sys.stderr)
        return 2
    positional, params = _split(ns.args)
    extra: dict[str, Any] = {}
    if ns.action.startswith("export"):
        extra["out"] = open(ns.output, "wb") if ns.output else sys.stdout.buffer  # noqa: SIM115  # closed below
    try:
        response = function(*positional, **params, **extra)
    except TwinbillAPIValidationError as err:
        print(f"twinbill: {err} {json.dumps(err.errors, ensure_ascii=False)}", file=sys.stderr)
        return 1
    except TwinbillAPIError as err:
        print(f"twinbill: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    finally:
        if ns.output and "out" in extra:
            extra["out"].close()
    if extra:  # the file went to --output or stdout: the summary goes to stderr
        print(json.dumps(response.data, ensure_ascii=False), file=sys.stderr)
        return 0
    print(json.dumps(response.data, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
