"""`twinbill`: the client from a shell.

    twinbill --email admin@twinbill.local --password ... sites getall page_size=50
    twinbill --token $ACCESS [--refresh-token $REFRESH] devices getone 12
    twinbill --api-key 3:0f1e...  sites create '{"name": "Tower A", "project_id": 1}'
    twinbill ... tasks getall 42
    twinbill ... instances attribute 7 start=1h-ago downsample=10m-avg
    twinbill ... --output bills.csv history export_csv 42 device_type=0
    twinbill ... runs getone 'task1:1711900800' outcome=skipped
    twinbill ... bem.campaigns getall
    twinbill ... bem.timeseries_data upload_file 1 readings.csv campaign_id=3
    twinbill ... bem.timeseries_data download_file out.csv 2026-01-01T00:00:00+00:00 \\
                 2026-01-08T00:00:00+00:00 1 '[4, 5]'

Arguments are ids, file names and JSON values (`{...}`, `[...]`) in order, then key=value
parameters (a JSON value after `=` is read as JSON). A failed request or a bad argument is one
line on stderr with the server's message (exit 1, or 2 for bad arguments); uploads and downloads
of files show a progress bar on a terminal (`--progress` forces it, `--no-progress` hides it).
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from typing import Any, NoReturn

from requests.auth import AuthBase

from twinbill_client.client import TwinbillAPIClient
from twinbill_client.exceptions import TwinbillAPIError
from twinbill_client.settings import CliSettings

BAR = 30


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """A bad command line is one line, not a usage block."""
        self.exit(2, f"twinbill: {message} (see twinbill --help)\n")


class BadArgument(ValueError):
    """A command-line argument the called function cannot take."""


def _value(text: str) -> Any:
    if text.startswith(("{", "[")):
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise BadArgument(f"{text[:40]!r} is not valid JSON: {err.msg} at column {err.colno}") from None
    return int(text) if text.isdigit() else text


def split_arguments(args: list[str]) -> tuple[list[Any], dict[str, Any]]:
    """Positional values and key=value parameters from the command line."""
    positional: list[Any] = []
    params: dict[str, Any] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key.isidentifier():
            params[key] = _value(value)
        else:
            positional.append(_value(arg))
    return positional, params


def progress_bar(stream: Any) -> Any:
    """A callback drawing `[#####-----]  52%  12.3 MB` on `stream` (bytes only when the size is unknown)."""
    def draw(done: int, total: int | None) -> None:
        size = f"{done / 1e6:,.1f} MB"
        if total:
            filled = min(BAR, BAR * done // total)
            stream.write(f"\r[{'#' * filled}{'-' * (BAR - filled)}] {100 * done // total:3d}%  {size}")
        else:
            stream.write(f"\r{size}")
        stream.flush()
    return draw


def one_line(err: TwinbillAPIError) -> str:
    """A failed request as one readable line: status, the server's message, each bad field."""
    text = str(err)
    errors = getattr(err, "errors", None)
    if errors:
        fields = "; ".join(f"{name}: {_reasons(why)}" for name, why in errors.items())
        text = f"{text} ({fields})"
    return " ".join(text.split())


def _reasons(why: Any) -> str:
    if isinstance(why, list):
        return ", ".join(map(str, why))
    if isinstance(why, dict):
        return "; ".join(f"{key}: {_reasons(value)}" for key, value in why.items())
    return str(why)


def _authentication(ns: argparse.Namespace) -> AuthBase | None:
    if ns.api_key:
        user, sep, key = ns.api_key.partition(":")
        if not (sep and user.isdigit()):
            raise BadArgument("--api-key is <user_id>:<40 hex characters>")
        return TwinbillAPIClient.make_api_key_auth(int(user), key)
    if ns.token:
        return TwinbillAPIClient.make_bearer_token_auth(ns.token, ns.refresh_token or "")
    if ns.email:
        return TwinbillAPIClient.make_http_basic(ns.email, ns.password or "")
    return None


def _function(client: TwinbillAPIClient, resource: str, action: str) -> Any:
    target: Any = client
    for part in resource.split("."):
        target = getattr(target, part, None) if not part.startswith("_") else None
        if target is None:
            raise BadArgument(f"no entry point {resource!r}")
    function = getattr(target, action, None) if not action.startswith("_") else None
    if not callable(function):
        raise BadArgument(f"no function {resource}.{action}")
    return function


def _call(function: Any, positional: list[Any], params: dict[str, Any], *, progress: bool) -> Any:
    signature = inspect.signature(function)
    if progress and "progress" in signature.parameters:
        params = {**params, "progress": progress_bar(sys.stderr)}
    try:
        signature.bind(*positional, **params)
    except TypeError as err:
        raise BadArgument(f"{function.__qualname__}{signature}: {err}") from None
    try:
        return function(*positional, **params)
    finally:
        if "progress" in params:
            sys.stderr.write("\n")


def _print(result: Any) -> None:
    if isinstance(result, int):
        print(result)
        return
    data = result.data
    if isinstance(data, bytes):
        sys.stdout.write(data.decode("utf-8", "replace"))
    elif data is not None:
        print(json.dumps(data, ensure_ascii=False, indent=2))


def _export(function: Any, positional: list[Any], params: dict[str, Any], *, output: str | None) -> int:
    """Stream an export into --output (or stdout); its summary goes to stderr."""
    if output is None:
        response = _call(function, positional, {**params, "out": sys.stdout.buffer}, progress=False)
    else:
        with open(output, "wb") as out:
            response = _call(function, positional, {**params, "out": out}, progress=False)
    print(json.dumps(response.data, ensure_ascii=False), file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one call and print its data; errors go to stderr as one line."""
    settings = CliSettings.from_environment()
    parser = _Parser(prog="twinbill", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=settings.host)
    parser.add_argument("--ssl", action="store_true", help="use https")
    parser.add_argument("--email", default=settings.email, help="HTTP basic")
    parser.add_argument("--password", default=settings.password)
    parser.add_argument("--token", default=settings.token, help="an access token (Bearer)")
    parser.add_argument("--refresh-token", default=settings.refresh_token,
                        help="refreshes the access token when it expires")
    parser.add_argument("--api-key", default=settings.api_key, help="<user_id>:<key>")
    parser.add_argument("--output", help="file an export (export_csv, ...) is written to (default: stdout)")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--progress", dest="progress", action="store_true", default=None)
    shown.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument("resource", help="entry point: sites, devices, tasks, instances, bem.campaigns, ...")
    parser.add_argument("action", help="function: getall, getone, create, update, delete, upload_file, ...")
    parser.add_argument("args", nargs="*", help="ids, files, JSON values, and key=value parameters")
    ns = parser.parse_args(argv)
    progress = sys.stderr.isatty() if ns.progress is None else ns.progress
    try:
        client = TwinbillAPIClient(ns.host, use_ssl=ns.ssl, authentication_method=_authentication(ns))
        positional, params = split_arguments(ns.args)
        if ns.action.startswith("export"):
            return _export(_function(client, ns.resource, ns.action), positional, params, output=ns.output)
        result = _call(_function(client, ns.resource, ns.action), positional, params, progress=progress)
    except BadArgument as err:
        print(f"twinbill: bad argument: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"twinbill: {err.strerror or err}: {err.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except TwinbillAPIError as err:
        print(f"twinbill: {one_line(err)}", file=sys.stderr)
        return 1
    _print(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
