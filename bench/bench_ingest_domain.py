"""The ingest gateway's own work per request, without MQTT or RabbitMQ: parse, validate against
the thing models, message id and bus body for a simulator-shaped post/batch of 100 points (50
meters of one gateway). CPU time of this process, the best of several repeats, so the figure
holds on a machine busy with other work (the wall-clock benches do not).

    .venv/bin/python bench/bench_ingest_domain.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import timeit

from twinbill_common.schemas import DeviceRecord, ProductModel
from twinbill_ingest.domain.encoding import encode_accepted, message_id
from twinbill_ingest.domain.fastpath import accept_plain
from twinbill_ingest.domain.requests import validate_request
from twinbill_ingest.domain.topics import parse_topic
from twinbill_ingest.store import RegistryCache, StaticRegistrySource
from twinbill_simulator.config import generate_config, registry_for


def main() -> None:
    """Time each step and the whole, in microseconds of CPU per request."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    config = generate_config(1, 50, prefix="bench")
    registry = registry_for(config)
    cache = RegistryCache()
    asyncio.run(cache.load(StaticRegistrySource(
        [ProductModel.model_validate(p) for p in registry["products"]],
        [DeviceRecord.model_validate(d) for d in registry["devices"]])))
    gateway = config["gateways"][0]
    own = (gateway["product_key"], gateway["device_key"])
    for sub in gateway["sub_devices"]:
        cache.set_online((sub["product_key"], sub["device_key"]), gateway=own)
    rng = random.Random(1)
    now = int(time.time() * 1000)
    entries = []
    for index in range(100):
        sub = gateway["sub_devices"][index % 50]
        entries.append(f'{{"productKey":"{sub["product_key"]}","deviceKey":"{sub["device_key"]}",'
                       f'"measurepoints":{{"total":{rng.randint(0, 5000)}.{rng.randint(0, 999):03d}}},'
                       f'"time":{now + index}}}')
    payload = ('{"id":"abc123","version":"1.0","method":"thing.measurepoint.post.batch",'
               f'"allowOfflineSubDevice":false,"params":[{",".join(entries)}]}}').encode()
    topic = parse_topic(f"/sys/{gateway['product_key']}/{gateway['device_key']}/thing/measurepoint/post/batch")
    assert topic is not None

    def validate() -> None:
        validate_request(topic, payload, registry=cache, received_at=now, max_bytes=256 * 1024)

    accepted = validate_request(topic, payload, registry=cache, received_at=now, max_bytes=256 * 1024)

    def identify() -> None:
        message_id(topic, "abc123", payload)

    def encode() -> None:
        encode_accepted(accepted, topic=topic, message_id="m", received_at=now)

    def whole() -> None:
        done = validate_request(topic, payload, registry=cache, received_at=now, max_bytes=256 * 1024)
        encode_accepted(done, topic=topic, message_id=message_id(topic, "abc123", payload), received_at=now)

    plain = accept_plain(topic, payload, registry=cache, received_at=now, max_bytes=256 * 1024, grants=cache.grants)
    assert plain is not None, "the fast path must take the simulator's requests"

    def validate_plain() -> None:
        accept_plain(topic, payload, registry=cache, received_at=now, max_bytes=256 * 1024, grants=cache.grants)

    def encode_plain() -> None:
        encode_accepted(plain, topic=topic, message_id="m", received_at=now)

    def whole_plain() -> None:
        done = accept_plain(topic, payload, registry=cache, received_at=now, max_bytes=256 * 1024, grants=cache.grants)
        assert done is not None
        encode_accepted(done, topic=topic, message_id=message_id(topic, "abc123", payload), received_at=now)

    per_round = max(1, args.requests // 5)
    print(f"one post/batch request of 100 points ({len(payload):,} bytes), 50 meters, "
          f"CPU time, best of 5 x {per_round}")
    for label, step in (("validate (parse + checks)", validate), ("message id", identify),
                        ("bus body", encode), ("all of it", whole),
                        ("fast path: accept_plain", validate_plain), ("fast path: bus body", encode_plain),
                        ("fast path: all of it", whole_plain)):
        best = min(timeit.Timer(step, timer=time.process_time).repeat(5, per_round)) / per_round
        print(f"  {label:28s} {best * 1e6:8.1f} us/request  {best * 1000:6.3f} s/100k points")


if __name__ == "__main__":
    main()
