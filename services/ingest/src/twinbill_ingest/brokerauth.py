"""Mosquitto's password file and topic ACL, rendered from the twin's registry.

A device connects as `{productKey}/{deviceKey}` with its secret. It may use its own
`/sys/{pk}/{dk}/#` and `/ext/session/{pk}/{dk}/#` topics (two `pattern` lines), and a gateway
may also read the `measurepoint/set` requests of its own sub-devices and write their
`set_reply` (EnOS reverse control: the gateway answers for them on their topics). Mosquitto's
static ACL cannot say "the sub-devices of %u", so those lines are written per gateway from the
registry's topology; a device can no longer read another gateway's commands or forge its replies.

    twinbill-broker-auth --twin-url http://127.0.0.1:8001 --out /etc/mosquitto/twinbill \\
        [--hup-pid PID] [--every 60] [--chown UID:GID]

writes `passwd` (PBKDF2-SHA512, the `$7$` form of mosquitto_passwd) and `acl` atomically, then
sends SIGHUP to Mosquitto so it reloads both; `--every` repeats it (a sidecar next to the
broker), writing and reloading only when the registry changed (a hash that still verifies is
kept). The service user's password comes from `TWINBILL_MQTT_SERVICE_PASSWORD`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import re
import signal
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from twinbill_common.logging import configure_logging, get_logger
from twinbill_common.schemas.registry import DeviceRecord
from twinbill_common.service import warn_development_defaults
from twinbill_common.servicetokens import ServiceTokens
from twinbill_common.settings import load_settings
from twinbill_ingest.errors import RegistryUnavailable
from twinbill_ingest.settings import BrokerAuthSettings
from twinbill_ingest.store import HttpRegistrySource

log = get_logger(__name__)
SERVICE_USER = "twinbill-ingest"
PBKDF2_ITERATIONS = 101  # mosquitto_passwd's default for $7$
SALT_BYTES = 12


def username(product_key: str, device_key: str) -> str:
    """A device's broker username."""
    return f"{product_key}/{device_key}"


# The twin's key pattern. A key outside it (a registry row written around the API) could add
# lines to the acl or widen a topic with `#`/`+`, so such a device is left out, loudly.
_KEY = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def _renderable(device: DeviceRecord) -> bool:
    keys = [device.product_key, device.device_key]
    if device.gateway_product_key or device.gateway_device_key:
        keys += [device.gateway_product_key or "", device.gateway_device_key or ""]
    if all(_KEY.fullmatch(key) for key in keys):
        return True
    log.error("device left out of the broker files: a key outside [A-Za-z0-9_.-]", id=device.id,
              product_key=device.product_key, device_key=device.device_key)
    return False


def sub_devices_of(devices: Iterable[DeviceRecord]) -> dict[str, list[str]]:
    """Gateway username -> the usernames of its sub-devices, from the registry's topology."""
    topology: dict[str, list[str]] = {}
    for device in devices:
        if device.gateway_product_key and device.gateway_device_key and _renderable(device):
            gateway = username(device.gateway_product_key, device.gateway_device_key)
            topology.setdefault(gateway, []).append(username(device.product_key, device.device_key))
    return topology


def render_acl(sub_devices: Mapping[str, Iterable[str]], *, service_user: str = SERVICE_USER) -> str:
    """The acl_file text: the service user, each gateway's sub-device command topics, and every
    device's own topics."""
    lines = [
        "# Rendered by twinbill-broker-auth from the twin registry; edits are overwritten.",
        "",
        "# The ingest gateway service (its replicas share the request topics with $share/ingest/...).",
        f"user {service_user}",
        "topic readwrite /sys/#",
        "topic readwrite /ext/session/#",
    ]
    for gateway in sorted(sub_devices):
        lines += ["", f"# {gateway}: reverse control of its sub-devices", f"user {gateway}"]
        for device in sorted(set(sub_devices[gateway])):
            lines.append(f"topic read /sys/{device}/thing/service/measurepoint/set")
            lines.append(f"topic write /sys/{device}/thing/service/measurepoint/set_reply")
    lines += [
        "",
        "# Every device: its own topics only (%u is {productKey}/{deviceKey}).",
        "pattern readwrite /sys/%u/#",
        "pattern readwrite /ext/session/%u/#",
        "",
    ]
    return "\n".join(lines)


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """A password in mosquitto_passwd's `$7$` form: PBKDF2-HMAC-SHA512, 101 rounds, 12-byte salt."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    return (f"$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}"
            f"${base64.b64encode(digest).decode()}")


def verifies(hashed: str, password: str) -> bool:
    """Whether a `$7$` hash is of this password."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7" or parts[2] != str(PBKDF2_ITERATIONS):
        return False
    try:
        salt = base64.b64decode(parts[3], validate=True)
    except ValueError:
        return False
    return hmac.compare_digest(hash_password(password, salt=salt), hashed)


def read_passwd(path: Path) -> dict[str, str]:
    """username -> hash of an existing password file (empty if there is none)."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return {}
    return dict(line.split(":", 1) for line in lines if ":" in line)


def render_passwd(devices: Iterable[DeviceRecord], *, service_password: str,
                  service_user: str = SERVICE_USER, previous: dict[str, str] | None = None) -> str:
    """The password_file text: the service user and every device that has a secret. A hash in
    `previous` that still verifies is kept, so an unchanged registry renders the same file."""
    previous = previous or {}

    def entry(user: str, password: str) -> str:
        kept = previous.get(user)
        return f"{user}:{kept if kept and verifies(kept, password) else hash_password(password)}"

    lines = [entry(service_user, service_password)]
    for device in sorted(devices, key=lambda d: (d.product_key, d.device_key)):
        if device.secret and _renderable(device):
            lines.append(entry(username(device.product_key, device.device_key), device.secret))
    return "\n".join(lines) + "\n"


def _replace(path: Path, text: str, *, owner: tuple[int, int] | None) -> bool:
    """Write `text` to `path` atomically (Mosquitto never reads half a file), mode 0640 from
    creation; False, writing nothing, when the file already holds exactly that."""
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    partial = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    if owner is not None:
        os.chown(partial, *owner)
    os.replace(partial, path)
    return True


def write_broker_files(directory: Path, devices: Sequence[DeviceRecord], *,
                       service_password: str, service_user: str = SERVICE_USER,
                       owner: tuple[int, int] | None = None) -> bool:
    """Write `passwd` and `acl` for these devices into `directory` (owned by `owner`, uid and
    gid, when given: the broker's user must be able to read them). True when either changed."""
    directory.mkdir(parents=True, exist_ok=True)
    passwd = render_passwd(devices, service_password=service_password, service_user=service_user,
                           previous=read_passwd(directory / "passwd"))
    changed = _replace(directory / "passwd", passwd, owner=owner)
    acl = render_acl(sub_devices_of(devices), service_user=service_user)
    return _replace(directory / "acl", acl, owner=owner) or changed


def _owner(text: str) -> tuple[int, int]:
    uid, _, gid = text.partition(":")
    try:
        return int(uid), int(gid or uid)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--chown wants UID:GID in numbers, got {text!r}") from None


async def _sync(args: argparse.Namespace, service_password: str, *, tokens: ServiceTokens) -> None:
    source = HttpRegistrySource(args.twin_url, tokens=tokens)
    try:
        while True:
            try:
                devices = await source.devices()
            except RegistryUnavailable as err:
                if not args.every:
                    raise
                log.warning("registry unavailable, keeping the current files", error=str(err))
            else:
                changed = await asyncio.to_thread(
                    write_broker_files, args.out, devices, service_password=service_password,
                    service_user=args.service_user, owner=args.chown)
                if changed and args.hup_pid:
                    os.kill(args.hup_pid, signal.SIGHUP)
                print(f"{len(devices)} devices -> {args.out / 'passwd'}, {args.out / 'acl'}"
                      f"{'' if changed else ' (unchanged)'}", flush=True)
            if not args.every:
                return
            await asyncio.sleep(args.every)
    finally:
        await source.close()


def main(argv: Sequence[str] | None = None) -> int:
    """`twinbill-broker-auth`: render Mosquitto's passwd and acl from the twin registry."""
    parser = argparse.ArgumentParser(prog="twinbill-broker-auth", description=__doc__.splitlines()[0])
    settings = load_settings(BrokerAuthSettings)
    parser.add_argument("--twin-url", default=settings.twin_url)
    parser.add_argument("--out", type=Path, required=True, help="directory for passwd and acl")
    parser.add_argument("--service-user", default=SERVICE_USER)
    parser.add_argument("--hup-pid", type=int, default=None, help="Mosquitto's pid: SIGHUP after writing")
    parser.add_argument("--every", type=float, default=0.0, help="repeat every N seconds (0: once)")
    parser.add_argument("--chown", type=_owner, default=None, metavar="UID:GID",
                        help="owner of the written files (the broker's user; needs root)")
    args = parser.parse_args(argv)
    configure_logging(level="WARNING", service="twinbill-broker-auth")
    warn_development_defaults(settings)
    service_password = settings.mqtt_service_password.get_secret_value()
    if not service_password:
        parser.error("TWINBILL_MQTT_SERVICE_PASSWORD is not set: the service user needs a password")
    if args.every < 0:
        parser.error("--every must be 0 (once) or a number of seconds")
    try:
        asyncio.run(_sync(args, service_password, tokens=ServiceTokens(
            settings.service_key.get_secret_value(), issuer="broker-auth")))
    except RegistryUnavailable as err:
        print(f"twinbill-broker-auth: {err}", file=sys.stderr)
        return 1
    except ProcessLookupError:
        print(f"twinbill-broker-auth: no process {args.hup_pid} to reload", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
