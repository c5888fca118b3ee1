"""Sub-device sessions (EnOS combine.login / login.batch / logout) and status reporting.

A sub-device is online from a successful login through its gateway until its logout. Each change
and the last-seen time of devices that report data reach the registry through `StatusReporter`,
which batches them and posts them to POST /internal/v1/devices/status.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from twinbill_common.logging import get_logger
from twinbill_ingest.domain.codes import Code, Rejection
from twinbill_ingest.domain.requests import decode_payload, parse_envelope, request_id_of
from twinbill_ingest.domain.signing import LoginAttempt, parse_login, parse_login_batch, parse_logout, sign_matches
from twinbill_ingest.domain.topics import Kind, Topic
from twinbill_ingest.errors import RegistryUnavailable
from twinbill_ingest.store import RegistryCache, RegistrySource

log = get_logger(__name__)


class StatusReporter:
    """Collects online/last-seen changes and posts them to the registry in batches."""

    def __init__(self, source: RegistrySource, *, interval: float = 2.0) -> None:
        self.source = source
        self.interval = interval
        self._pending: dict[tuple[str, str], tuple[bool, int]] = {}  # device -> (online, ms)
        self._wake = asyncio.Event()

    def record(self, product_key: str, device_key: str, *, online: bool, at_ms: int) -> None:
        """Queue one device's state (a login or logout); the latest state of a device wins."""
        self._pending[(product_key, device_key)] = (online, at_ms)
        if online is False or len(self._pending) >= 1000:
            self._wake.set()

    def seen(self, product_key: str, device_key: str, *, online: bool, at_ms: int) -> None:
        """A device reported data: refresh its last-seen time (without waking the flusher)."""
        self._pending[(product_key, device_key)] = (online, at_ms)

    def seen_all(self, devices: Collection[tuple[str, str]], *, online: Collection[tuple[str, str]],
                 at_ms: int) -> None:
        """`seen` for each of `devices` and `online` at once (the gateway's per-request call):
        those in `online` are recorded online, the others offline."""
        self._pending.update(dict.fromkeys(devices, (False, at_ms)))
        self._pending.update(dict.fromkeys(online, (True, at_ms)))

    async def flush(self) -> None:
        """Post what is pending; on failure keep it for the next round (newer states win)."""
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        updates = [
            {
                "product_key": product_key,
                "device_key": device_key,
                "online": online,
                "last_seen": datetime.fromtimestamp(at_ms / 1000, tz=UTC).isoformat(),
            }
            for (product_key, device_key), (online, at_ms) in batch.items()
        ]
        try:
            await self.source.report_status(updates)
        except RegistryUnavailable as err:
            log.warning("status report failed, kept for retry", error=str(err), devices=len(batch))
            self._pending = {**batch, **self._pending}

    async def run(self) -> None:
        """Flush every `interval` seconds (sooner after a logout), until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
            self._wake.clear()
            await self.flush()


class SessionHandler:
    """Answers login, login/batch and logout for gateways, and keeps the cache's session state."""

    def __init__(self, cache: RegistryCache, status: StatusReporter | None, *, max_bytes: int) -> None:
        self.cache = cache
        self.status = status
        self.max_bytes = max_bytes

    def decide(self, topic: Topic, payload: bytes, *, now_ms: int) -> tuple[str | None, Code, str | None, Any]:
        """Apply one session request: (request id, code, message, data) to reply with."""
        request_id: str | None = None
        try:
            # Session requests are not measurepoint data: unparsable JSON stays EnOS's 1220.
            body = decode_payload(payload, max_bytes=self.max_bytes, unparsable=Code.PAYLOAD_FORMAT)
            request_id = request_id_of(body)
            envelope = parse_envelope(body, topic=topic)
            if topic.kind is Kind.LOGIN:
                attempt = parse_login(envelope.params)
                self._login(attempt, topic=topic, now_ms=now_ms)
                device = self.cache.device(attempt.product_key, attempt.device_key)
                data = {
                    "assetId": _asset_id(device),
                    "productKey": attempt.product_key,
                    "deviceKey": attempt.device_key,
                }
                return request_id, Code.OK, "success", data
            if topic.kind is Kind.LOGIN_BATCH:
                return (request_id, *self._login_batch(parse_login_batch(envelope.params), topic=topic, now_ms=now_ms))
            product_key, device_key = parse_logout(envelope.params)
            self._check_topology(product_key, device_key, topic=topic)
            self.cache.set_offline((product_key, device_key))
            if self.status is not None:
                self.status.record(product_key, device_key, online=False, at_ms=now_ms)
            return request_id, Code.OK, "success", {"productKey": product_key, "deviceKey": device_key}
        except Rejection as err:
            return request_id, err.code, err.message, {}

    def _check_topology(self, product_key: str, device_key: str, *, topic: Topic) -> None:
        device = self.cache.device(product_key, device_key)
        if device is None or (device.gateway_product_key, device.gateway_device_key) != (
            topic.product_key,
            topic.device_key,
        ):
            raise Rejection(
                Code.NO_SUB_DEVICE_PERMISSION,
                f"{product_key}/{device_key} is not a sub-device of gateway {topic.product_key}/{topic.device_key}",
            )

    def _login(self, attempt: LoginAttempt, *, topic: Topic, now_ms: int) -> None:
        self._check_topology(attempt.product_key, attempt.device_key, topic=topic)
        device = self.cache.device(attempt.product_key, attempt.device_key)
        secret = device.secret if device is not None else None
        if not secret:
            raise Rejection(
                Code.SIGN_INVALID,
                f"{attempt.product_key}/{attempt.device_key}: the registry holds no secret for this device",
            )
        if not sign_matches(attempt.signed, secret=secret, method=attempt.sign_method, signature=attempt.signature):
            raise Rejection(
                Code.SIGN_INVALID,
                f"{attempt.product_key}/{attempt.device_key}: "
                f"the {attempt.sign_method} signature does not match the device secret",
            )
        self.cache.set_online((attempt.product_key, attempt.device_key), gateway=(topic.product_key, topic.device_key))
        if self.status is not None:
            self.status.record(attempt.product_key, attempt.device_key, online=True, at_ms=now_ms)

    def _login_batch(self, attempts: list[LoginAttempt], *, topic: Topic, now_ms: int) -> tuple[Code, str, Any]:
        logged: list[dict[str, str]] = []
        failed: list[dict[str, str]] = []
        reasons: list[str] = []
        for attempt in attempts:
            keys = {"productKey": attempt.product_key, "deviceKey": attempt.device_key}
            try:
                self._login(attempt, topic=topic, now_ms=now_ms)
            except Rejection as err:
                if err.code is Code.PAYLOAD_FORMAT:
                    raise
                failed.append(keys)
                reasons.append(f"{attempt.product_key}&{attempt.device_key} has error: {err.message};")
                continue
            device = self.cache.device(attempt.product_key, attempt.device_key)
            logged.append({"assetId": _asset_id(device), **keys})
        data = {"loginedSubDevices": logged, "failedSubDevices": failed}
        if failed:
            return Code.PARTIAL_LOGIN, "".join(reasons), data
        return Code.OK, "", data


def _asset_id(device: Any) -> str:
    if device is None:
        return ""
    return str(device.instance_id if device.instance_id is not None else device.id)
