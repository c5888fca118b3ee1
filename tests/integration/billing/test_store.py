"""Every MongoDB operation the billing store relies on, checked on the fixture's server (nx-27017
unless TWINBILL_TEST_MONGO_URL names a real MongoDB): the same code must be right on both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from twinbill_billing.store import BillStore, chain_key

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = datetime(2024, 2, 1, tzinfo=UTC)
T2 = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture
async def store(mongo_url: str, mongo_db_name: str) -> AsyncIterator[BillStore]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    billing = BillStore(client, mongo_db_name)
    await billing.ensure_indexes()
    await billing.ensure_indexes()  # idempotent
    yield billing
    await client.close()


def bill(device_id: int, start: datetime, end: datetime, closing: str) -> dict[str, Any]:
    return {"_id": ObjectId(), "project_id": 1, "device_id": device_id, "device_type": 2,
            "from_time": start, "to_time": end, "closing_reading": closing, "closing_time": end,
            "chain_key": chain_key(1, device_id, start), "status": "issued", "kind": "bill"}


async def test_insert_many_unordered_reports_duplicates_by_index(store: BillStore) -> None:
    """A second bill opening at the same chain position of a device is refused (whatever its
    end); the others in the batch go in."""
    assert await store.insert_bills([bill(1, T0, T1, "1"), bill(2, T0, T1, "2")]) == (2, set())
    inserted, duplicates = await store.insert_bills(
        [bill(3, T0, T1, "3"), bill(1, T0, T2, "9"), bill(2, T0, T1, "9"), bill(1, T1, T2, "4")])
    assert (inserted, duplicates) == (2, {1, 2})
    assert await store.count_bills({"project_id": 1}) == 4
    assert (await store.find_bills({"device_id": 1}, limit=1))[0]["closing_reading"] == "4"


async def test_ledgers_group_every_bill_by_device(store: BillStore) -> None:
    """Each device's bills (the ledger's fields), other devices and projects left out."""
    await store.insert_bills([bill(1, T0, T1, "10.50"), bill(1, T1, T2, "20"), bill(2, T0, T1, "7")])
    found = await store.ledgers(1, [1, 2, 3])
    assert {k: sorted(d["closing_reading"] for d in v) for k, v in found.items()} == {
        1: ["10.50", "20"], 2: ["7"]}
    assert found[1][0]["to_time"] in (T1, T2) and found[1][0]["status"] == "issued"
    assert await store.ledgers(2, [1]) == {}
    # read as one device-id range (indexed on nx-27017 too); devices inside it not asked for are left out
    assert set(await store.ledgers(1, [1, 3])) == {1}
    assert [d["closing_reading"] for d in (await store.ledgers(1, [2]))[2]] == ["7"]


async def test_chain_keys_backfilled_on_bills_from_before_the_ledger(store: BillStore) -> None:
    """Bills stored before the ledger (no chain key) get one when the indexes are ensured; of two
    at the same position (an old double bill) the second gets a legacy key."""
    old = [{k: v for k, v in bill(5, T0, end, "1").items() if k not in ("chain_key", "status", "kind")}
           for end in (T1, T2)]
    await store.bills.drop_index("one_link_per_chain_position")
    await store.bills.insert_many(old)
    await store.ensure_indexes()
    keys = sorted(doc["chain_key"] for doc in await store.bills.find({"device_id": 5}).to_list())
    assert keys[0] == chain_key(1, 5, T0) and keys[1].startswith("legacy:")


async def test_run_documents_keep_their_datetimes(store: BillStore) -> None:
    """create once; plain $set updates; the conditional replace finishes exactly once."""
    run = {"_id": "r:1", "started_at": T0, "period_end": T1, "status": "running", "jobs_total": 1}
    assert await store.create_run(run) is True
    assert await store.create_run(run) is False
    await store.update_run("r:1", {"jobs_published": True})
    with pytest.raises(ValueError, match="datetime"):
        await store.update_run("r:1", {"finished_at": T2})
    current = await store.get_run("r:1")
    assert current is not None
    assert await store.finish_run(current, {"finished_at": T2, "summary": {"billed": 1}}) is True
    assert await store.finish_run(current, {"finished_at": T2 + timedelta(1)}) is False
    done = await store.get_run("r:1")
    # nx-27017 stores a bool given to `$set` on an existing document as 1: read it as truthy.
    assert done is not None and done["status"] == "finished" and bool(done["jobs_published"])
    assert done["started_at"] == T0 and done["finished_at"] == T2  # still datetimes, not text


async def test_job_outcomes_and_chunks_are_written_once(store: BillStore) -> None:
    """record_job and save_chunks keep the first write; counts and lists by run."""
    assert await store.record_job("r:1:0", {"run_id": "r:1", "billed": 3}) is True
    assert await store.record_job("r:1:0", {"run_id": "r:1", "billed": 99}) is False
    assert await store.count_jobs("r:1") == 1
    assert (await store.job_outcomes("r:1"))[0]["billed"] == 3
    await store.save_chunks([{"_id": "r:1:0", "run_id": "r:1", "chunk": 0, "devices": [{"id": 1}]}])
    await store.save_chunks([{"_id": "r:1:0", "run_id": "r:1", "chunk": 0, "devices": [{"id": 2}]},
                             {"_id": "r:1:1", "run_id": "r:1", "chunk": 1, "devices": [{"id": 3}]}])
    chunk = await store.load_chunk("r:1:0")
    assert chunk is not None and chunk["devices"] == [{"id": 1}]
    assert sorted(c["chunk"] for c in await store.chunks_of_run("r:1")) == [0, 1]


async def test_tariff_replace_keeps_datetimes(store: BillStore) -> None:
    """replace_one on an existing tariff keeps effective dates typed; delete reports absence."""
    tid = await store.insert_tariff({"project_id": 1, "device_type": 2, "kind": "flat",
                                     "unit_price": "1", "effective_from": T0, "effective_to": None})
    assert await store.replace_tariff(tid, {"project_id": 1, "device_type": 2, "kind": "flat",
                                            "unit_price": "2", "effective_from": T1,
                                            "effective_to": T2}) is True
    doc = await store.get_tariff(tid)
    assert doc is not None and (doc["effective_from"], doc["effective_to"]) == (T1, T2)
    assert [t["unit_price"] for t in await store.tariffs_for(1, 2)] == ["2"]
    total, page = await store.list_tariffs({"project_id": 1}, skip=0, limit=10)
    assert total == 1 and page[0]["_id"] == tid
    assert await store.delete_tariff(tid) is True and await store.delete_tariff(tid) is False
    assert await store.replace_tariff(tid, {"kind": "flat"}) is False
