"""One simulated gateway on its own MQTT connection: log its sub-devices in, report meter
registers with post/batch, go offline now and then and back-fill with resume/batch, check every
reply, answer reverse-control set requests (commands.py), and reconnect (sending again what got
no answer) when the broker goes away."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiomqtt

from twinbill_simulator.commands import SetRequest, applied_entry, parse_set, set_reply, set_topic
from twinbill_simulator.meters import Meter
from twinbill_simulator.signing import sign_sha256
from twinbill_simulator.stats import SimulatorStats

# aiomqtt warns on every publish while more than 10 await their PUBACK: normal when pipelining.
MQTT_LOG = logging.getLogger("twinbill_simulator.mqtt")
MQTT_LOG.setLevel(logging.ERROR)
# EnOS: a sub-device that is not online (not logged in through this gateway). After an ingest
# gateway restart every session is gone and the first report of each gateway gets this.
NOT_ONLINE = 1212


@dataclass
class _Sub:
    product_key: str
    device_key: str
    secret: str
    register: str
    meter: Meter
    dies_at: float | None = None  # monotonic time from which a dead meter reports nothing
    reading_point: str | None = None  # a {value, quality} struct measurepoint mirroring the register

    def __post_init__(self) -> None:
        # The constant text around an entry's values, built once: the simulator shares the cores
        # with the gateway it drives (services/ingest/README.md, "Where the time goes").
        self._head = (f'{{"productKey":"{self.product_key}","deviceKey":"{self.device_key}",'
                      f'"measurepoints":{{"{self.register}":')
        self._mirror = f',"{self.reading_point}":{{"value":' if self.reading_point else ""

    def measurepoints(self, value: Decimal) -> str:
        """The entry's measurepoints: the register, and its struct mirror when the model has one."""
        points = f'"{self.register}":{value}'
        if self.reading_point:
            points += f',"{self.reading_point}":{{"value":{value},"quality":0}}'
        return f"{{{points}}}"

    def entry(self, value: str, at_ms: int) -> str:
        """One batch entry: this device's measurepoints at `at_ms`, `value` the register's text
        (what `measurepoints` and the keys make, without formatting the constant parts again)."""
        if self._mirror:
            return f'{self._head}{value}{self._mirror}{value},"quality":0}}}},"time":{at_ms}}}'
        return f'{self._head}{value}}},"time":{at_ms}}}'


class GatewaySim:
    """One simulated gateway on its own MQTT connection."""

    def __init__(
        self, spec: dict[str, Any], *, stats: SimulatorStats, rng: random.Random, options: dict[str, Any]
    ) -> None:
        self.pk, self.dk, self.secret = spec["product_key"], spec["device_key"], spec["secret"]
        self.stats = stats
        self.rng = rng
        self.o = options
        self.subs = []
        for sub in spec["sub_devices"]:
            water = sub.get("device_type", 1) == 1
            self.subs.append(
                _Sub(
                    sub["product_key"],
                    sub["device_key"],
                    sub["secret"],
                    sub.get("register", "total"),
                    Meter(
                        "water" if water else "electricity",
                        # A meter resumes from its last reported register (a real register persists).
                        Decimal(sub["start_register"])
                        if sub.get("start_register")
                        else Decimal(rng.randint(0, 5000)).quantize(Decimal("0.01")),
                        daily_mean=(0.4 if water else 8.0) * options["consumption_scale"],
                        rng=random.Random(rng.random()),
                        # "fault": "leak" plays a leak (`leak_per_hour`, in register units)
                        leak_per_hour=float(sub.get("leak_per_hour", 0)) if sub.get("fault") == "leak" else 0.0,
                    ),
                    # "fault": "dead" plays a meter that stops reporting after `dead_after_seconds`
                    time.monotonic() + float(sub.get("dead_after_seconds", 0)) if sub.get("fault") == "dead" else None,
                    sub.get("reading_point"),
                )
            )
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._window = asyncio.Semaphore(options["window"])
        self._cursor = 0
        self._last_ms = 0
        self._allow_offline = False  # set when the gateway refuses the sub-device logins
        self._tasks: asyncio.TaskGroup | None = None  # set in run()
        self._relogin: asyncio.Task[str | None] | None = None  # the login after a 1212, shared
        # Requests not answered yet, by id: sent again after a lost connection.
        self._unacked: dict[str, tuple[str, bytes, int]] = {}

    def topic(self, kind: str) -> str:
        return f"/sys/{self.pk}/{self.dk}/thing/measurepoint/{kind}"

    async def run(self, stop: asyncio.Event) -> None:
        """Report until `stop`, reconnecting when the broker goes away: a real gateway connects
        again, logs its sub-devices in and sends again every request that got no answer."""
        delay = 0.5
        failed_after_stop = 0
        while True:
            try:
                await self._serve(stop)
                return
            except* aiomqtt.MqttError as group:
                reason = "; ".join(str(err) for err in group.exceptions)
            self.stats.reconnects += 1
            if stop.is_set():
                failed_after_stop += 1
                if failed_after_stop > self.o["retries"]:
                    self.o["log"](f"{self.dk}: gave up reconnecting; {len(self._unacked)} requests unanswered")
                    return
            self.o["log"](f"{self.dk}: MQTT connection lost ({reason}); reconnecting in {delay}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _serve(self, stop: asyncio.Event) -> None:
        username = f"{self.pk}/{self.dk}" if self.o["auth"] else None
        password = self.secret if self.o["auth"] else None
        client_class: type[aiomqtt.Client] = self.o.get("client_class", aiomqtt.Client)
        async with client_class(
            self.o["host"],
            self.o["port"],
            username=username,
            password=password,
            identifier=f"sim-{self.dk}-{uuid.uuid4().hex[:4]}",
            protocol=aiomqtt.ProtocolVersion.V5,
            max_queued_outgoing_messages=None,
            logger=MQTT_LOG,
        ) as client:
            await client.subscribe(f"/sys/{self.pk}/{self.dk}/thing/measurepoint/#", qos=1)
            await client.subscribe(f"/ext/session/{self.pk}/{self.dk}/combine/#", qos=1)
            # reverse control of the sub-devices (the broker's ACL lets a gateway read exactly these)
            await client.subscribe([(set_topic(sub.product_key, sub.device_key), 1) for sub in self.subs])
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                reader = tasks.create_task(self._read(client))
                try:
                    await self._login(client)
                    for request_id, (kind, payload, points) in list(self._unacked.items()):
                        await self._window.acquire()
                        tasks.create_task(self._complete(client, kind, payload, request_id, points))
                    await self._report(client, stop)
                    await self._drain()
                finally:
                    reader.cancel()

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            if not isinstance(message.payload, bytes):
                continue
            command = parse_set(message.topic.value, message.payload)
            if command is not None and self._tasks is not None:
                self._tasks.create_task(self._apply(client, command))
                continue
            if not message.topic.value.endswith("_reply"):
                continue
            reply = json.loads(message.payload)
            future = self._pending.pop(str(reply.get("id")), None)
            if future is not None and not future.done():
                future.set_result(reply)

    async def _call(self, client: aiomqtt.Client, topic: str, payload: bytes, request_id: str) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        await client.publish(topic, payload, qos=1)
        try:
            async with asyncio.timeout(self.o["reply_timeout"]):  # no waiter future, as wait_for has
                return await future
        finally:
            self._pending.pop(request_id, None)

    async def _login(self, client: aiomqtt.Client) -> None:
        """Log the sub-devices in; a refused login is retried, as a real gateway does.

        A device created moments ago may not be in the ingest gateway's registry cache yet.
        After the last attempt the reports carry allowOfflineSubDevice=true so data keeps flowing.
        """
        attempts = self.o["login_attempts"]
        for attempt in range(1, attempts + 1):
            try:
                refused = await self._login_once(client)
            except TimeoutError:  # no reply (the ingest gateway reconnecting): try again, never exit
                refused = "login/batch got no reply"
            if refused is None:
                if self._allow_offline:
                    self.o["log"](f"{self.dk}: sub-devices logged in; allowOfflineSubDevice back to false")
                self._allow_offline = False
                return
            if attempt < attempts:
                await asyncio.sleep(self.o["login_retry_seconds"])
        if not self._allow_offline:
            self._allow_offline = True
            self.o["log"](f"{self.dk}: {refused}; reporting with allowOfflineSubDevice=true")

    async def _login_again(self, client: aiomqtt.Client) -> bool:
        """Log the sub-devices in again after a 1212: the ingest gateway lost its sessions (it
        restarted). Requests that hear 1212 together share one login/batch. True if every
        sub-device is logged in again, so the request is worth sending again."""
        if self._relogin is None or self._relogin.done():
            assert self._tasks is not None, "log in only while run() holds the task group"
            self.stats.relogins += 1
            self.o["log"](f"{self.dk}: sub-devices not online (1212); logging them in again")
            self._relogin = self._tasks.create_task(self._login_quietly(client))
        return await asyncio.shield(self._relogin) is None

    async def _login_quietly(self, client: aiomqtt.Client) -> str | None:
        """One login round whose unanswered request is a reason, not an error (it runs as a
        task of the gateway's group, where an error would end the whole gateway)."""
        try:
            return await self._login_once(client)
        except TimeoutError:
            return "login/batch got no reply"
        except aiomqtt.MqttError as err:
            return f"login/batch not sent: {err}"

    async def _login_once(self, client: aiomqtt.Client) -> str | None:
        """One login/batch round; None when every sub-device is logged in, else why not."""
        timestamp = str(int(time.time() * 1000))
        subs = []
        for sub in self.subs:
            signed = {
                "clientId": self.dk,
                "deviceKey": sub.device_key,
                "productKey": sub.product_key,
                "timestamp": timestamp,
            }
            subs.append(
                {
                    "productKey": sub.product_key,
                    "deviceKey": sub.device_key,
                    "sign": sign_sha256(signed, secret=sub.secret),
                }
            )
        refused = None
        for start in range(0, len(subs), 200):
            request_id = uuid.uuid4().hex[:12]
            body = {
                "id": request_id,
                "version": "1.1",
                "method": "combine.login.batch",
                "params": {
                    "clientId": self.dk,
                    "timestamp": timestamp,
                    "signMethod": "sha256",
                    "subDevices": subs[start : start + 200],
                },
            }
            reply = await self._call(
                client, f"/ext/session/{self.pk}/{self.dk}/combine/login/batch", json.dumps(body).encode(), request_id
            )
            self.stats.codes[reply["code"]] += 1
            if reply["code"] != 200:
                refused = f"login/batch answered {reply['code']} {reply.get('message', '')!r}"
        return refused

    async def _apply(self, client: aiomqtt.Client, command: SetRequest) -> None:
        """Apply a set request: answer 200 on set_reply, then report the values now in force."""
        self.stats.commands += 1
        topic, body = set_reply(command)
        await client.publish(topic, body, qos=1)
        self.o["log"](f"{self.dk}: applied {command.params} on {command.device_key} (request {command.request_id})")
        at = max(int(time.time() * 1000), self._last_ms + 1)  # times only move forward
        self._last_ms = at
        await self._send(client, "post/batch", [applied_entry(command, at_ms=at)], allow_offline=self._allow_offline)

    def _entries(self, count: int, *, end_ms: int, seconds_per_entry: float) -> list[str]:
        """`count` entries (one register reading each), round-robin over the meters."""
        entries = []
        start = max(end_ms - count + 1, self._last_ms + 1)
        now = time.monotonic()
        alive = [sub for sub in self.subs if sub.dies_at is None or now < sub.dies_at]
        if not alive:
            self._last_ms = max(self._last_ms, end_ms)
            return []
        cursor, meters = self._cursor, len(alive)
        for at in range(start, start + count):
            sub = alive[cursor % meters]
            cursor += 1
            sub.meter.advance(at_ms=at, seconds=seconds_per_entry)
            entries.append(sub.entry(sub.meter.reading, at))
        self._cursor = cursor
        self._last_ms = start + count - 1
        return entries

    async def _send(
        self, client: aiomqtt.Client, kind: str, entries: list[str], *, allow_offline: bool = False
    ) -> None:
        await self._window.acquire()
        request_id = uuid.uuid4().hex[:16]
        method = "thing.measurepoint." + kind.replace("/", ".")
        payload = (
            f'{{"id":"{request_id}","version":"1.0","method":"{method}",'
            f'"allowOfflineSubDevice":{"true" if allow_offline else "false"},'
            f'"params":[{",".join(entries)}]}}'
        ).encode()
        self.stats.requests += 1
        self.stats.points_sent += len(entries)
        self._unacked[request_id] = (kind, payload, len(entries))
        assert self._tasks is not None, "send only while run() holds the task group"
        self._tasks.create_task(self._complete(client, kind, payload, request_id, len(entries)))

    async def _complete(self, client: aiomqtt.Client, kind: str, payload: bytes, request_id: str, points: int) -> None:
        """Send until answered; a lost connection leaves the request in `_unacked` for the next
        connection, any other end (200, a final refusal, retries spent) takes it out."""
        try:
            await self._answer(client, kind, payload, request_id, points)
            self._unacked.pop(request_id, None)
        except aiomqtt.MqttError:
            pass  # sent again once connected
        finally:
            self._window.release()

    async def _answer(self, client: aiomqtt.Client, kind: str, payload: bytes, request_id: str, points: int) -> None:
        for attempt in range(self.o["retries"] + 1):
            started = time.perf_counter()
            try:
                reply = await self._call(client, self.topic(kind), payload, request_id)
            except TimeoutError:
                self.stats.timeouts += 1
                self.stats.retries += attempt < self.o["retries"]
                continue
            self.stats.codes[reply["code"]] += 1
            if reply["code"] == 200:
                self.stats.latencies.append(time.perf_counter() - started)
                self.stats.points_acked += points
                return
            if (reply["code"] == NOT_ONLINE and attempt < self.o["retries"]
                    and await self._login_again(client)):
                # Nothing of it was stored: send the same request (same id, so the same
                # message id at the gateway) again, as a real EnOS gateway does.
                self.stats.retries += 1
                continue
            if reply["code"] < 1000 and attempt < self.o["retries"]:  # "retry later"
                self.stats.retries += 1
                await asyncio.sleep(0.5 * (attempt + 1))
                continue
            self.o["log"](f"{self.dk}: {kind} refused: {reply.get('code')} {reply.get('message')}")
            return

    async def _drain(self) -> None:
        """Wait until no request is in flight. The slots go back at the end, also when a lost
        connection interrupts it, so the next connection can send again."""
        taken = 0
        try:
            for _ in range(self.o["window"]):
                await self._window.acquire()
                taken += 1
        finally:
            for _ in range(taken):
                self._window.release()

    async def _report(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        rate = self.o["rate_per_gateway"]
        # At a low rate send smaller requests, so a reading leaves at least every ~10 seconds.
        batch = min(self.o["batch"], max(1, int(rate * 10))) if rate else self.o["batch"]
        interval = batch / rate if rate else 0.0
        seconds_per_entry = max(interval, 1.0) * len(self.subs) / batch
        next_at = time.monotonic()
        while not stop.is_set():
            if self.o["offline_every"] and self.rng.random() < interval / self.o["offline_every"]:
                await self._offline(client, stop)
                continue
            now = int(time.time() * 1000)
            entries = self._entries(batch, end_ms=now, seconds_per_entry=seconds_per_entry)
            if entries:  # none when every meter of the gateway plays dead
                await self._send(client, "post/batch", entries, allow_offline=self._allow_offline)
            if interval:
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)
                else:
                    next_at = time.monotonic()

    async def _offline(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        """Go quiet for a while, sampling every `sample_interval`, then log in and back-fill."""
        seconds = self.o["offline_seconds"]
        started_ms = max(int(time.time() * 1000), self._last_ms + 1)  # times only move forward
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
        step = self.o["sample_interval"]
        samples = max(1, int(seconds / step))
        buffered: list[str] = []
        for n in range(samples):
            at = started_ms + int(n * step * 1000)
            for sub in self.subs:
                sub.meter.advance(at_ms=at, seconds=step)
                buffered.append(sub.entry(sub.meter.reading, at))
        self._last_ms = max(self._last_ms, started_ms + int(samples * step * 1000))
        await self._login(client)
        for start in range(0, len(buffered), self.o["batch"]):
            await self._send(
                client, "resume/batch", buffered[start : start + self.o["batch"]], allow_offline=self._allow_offline
            )
