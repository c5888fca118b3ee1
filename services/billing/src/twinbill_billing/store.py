"""The MongoDB side: bills, runs (with per-chunk device snapshots and per-job outcomes), tariffs.

Only operators checked against nx-27017 are used (no `$setOnInsert`, `$addToSet`,
`find_one_and_update` or `replace_one(upsert=True)`, which it gets wrong); the same calls run on a
real MongoDB. Money and readings are canonical decimal strings, with `charge_minor` (integer cents)
beside the charge for sums and sorts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, ConnectionFailure, DuplicateKeyError, OperationFailure, PyMongoError

from twinbill_billing.domain.tariffs import utc_iso
from twinbill_common.errors import TRANSIENT_ERRORS as COMMON_TRANSIENT_ERRORS
from twinbill_common.errors import StoreUnavailable

Doc = dict[str, Any]
DUPLICATE_KEY = 11000
INDEX_NOT_FOUND = 27
# What MongoDB raises when retrying can succeed (no server answered, the connection went); the
# consumers retry these in place (the Bus is built with them).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (*COMMON_TRANSIENT_ERRORS, ConnectionFailure)


def chain_key(project_id: int, device_id: int, from_time: datetime) -> str:
    """The unique key of a chain position: one issued bill may open at each instant of a meter."""
    return f"{project_id}:{device_id}:{utc_iso(from_time)}"


def _plain(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Fields for `$set` on a possibly existing document: nx-27017 would turn datetimes into text."""
    for key, value in fields.items():
        if isinstance(value, datetime):
            raise ValueError(f"{key}: do not $set a datetime on an existing document (nx-27017 gap)")
    return dict(fields)


# `charge_detail` whole: its `accumulation` (what a bill credited to each block window) is how the
# next bills continue a year's ladder across a reset date inside a bill. Not the dotted path
# "charge_detail.accumulation": nx-27017 answers that as a flat key, not as MongoDB's nested one.
LEDGER_FIELDS = {"_id": 1, "device_id": 1, "from_time": 1, "to_time": 1, "opening_reading": 1,
                 "closing_reading": 1, "closing_time": 1, "periods": 1, "consumption": 1, "estimated": 1,
                 "status": 1, "kind": 1, "job_id": 1, "charge_detail": 1}
ISSUED_FIELDS = {"_id": 1, "project_id": 1, "device_id": 1, "device_type": 1, "from_time": 1, "to_time": 1,
                 "consumption": 1, "charge": 1, "estimated": 1, "run_id": 1, "job_id": 1, "kind": 1}


def group_by_device(docs: list[Doc], device_ids: Sequence[int]) -> dict[int, list[Doc]]:
    """The documents of the devices asked for, by device id (others in the read range left out)."""
    wanted = set(device_ids)
    found: dict[int, list[Doc]] = {}
    for doc in docs:
        device_id = int(doc["device_id"])
        if device_id in wanted:
            found.setdefault(device_id, []).append(doc)
    return found


class BillStore:
    """Every MongoDB read and write of the billing service."""

    def __init__(self, client: AsyncMongoClient[Doc], database: str) -> None:
        self.client = client
        self.db: AsyncDatabase[Doc] = client[database]
        self.bills = self.db["bills"]
        self.runs = self.db["runs"]
        self.chunks = self.db["run_chunks"]
        self.jobs = self.db["run_jobs"]
        self.tariffs = self.db["tariffs"]

    async def ensure_indexes(self) -> None:
        """The unique bill key and the indexes the history and billing queries use (idempotent)."""
        try:
            indexes = [index async for index in await self.bills.list_indexes()]
            names = {index["name"] for index in indexes}
            if "one_bill_per_device_period" in names:  # before the ledger: re-billing needs it gone
                await self.bills.drop_index("one_bill_per_device_period")
            await self._backfill_chain_keys()
            await self.bills.create_index([("chain_key", ASCENDING)], unique=True, name="one_link_per_chain_position")
            for index in indexes:  # (project_id, device_id, to_time), named by key on nx-27017: see ledgers()
                if list(index["key"]) == ["project_id", "device_id", "to_time"]:
                    try:
                        await self.bills.drop_index(index["name"])
                    except OperationFailure as err:  # another replica starting dropped it first
                        if err.code != INDEX_NOT_FOUND:
                            raise
            await self.bills.create_index(
                [("device_id", ASCENDING), ("project_id", ASCENDING), ("to_time", ASCENDING)],
                name="bills_of_devices",
            )
            await self.bills.create_index(
                [("project_id", ASCENDING), ("device_type", ASCENDING), ("to_time", DESCENDING)],
                name="history",
            )
            await self.jobs.create_index([("run_id", ASCENDING)], name="jobs_of_run")
            await self.chunks.create_index([("run_id", ASCENDING)], name="chunks_of_run")
            await self.tariffs.create_index(
                [("project_id", ASCENDING), ("device_type", ASCENDING)], name="tariffs_of_project"
            )
        except PyMongoError as err:
            raise StoreUnavailable(f"MongoDB index creation failed: {err}") from err

    async def _backfill_chain_keys(self) -> None:
        """Bills from before the ledger get their chain key (the first of a duplicate pair wins)."""
        seen: set[str] = set()
        async for doc in self.bills.find({"chain_key": None}, {"_id": 1, "project_id": 1, "device_id": 1,
                                                                "from_time": 1}):
            key = chain_key(doc["project_id"], doc["device_id"], doc["from_time"])
            taken = key in seen or await self.bills.count_documents({"chain_key": key}) > 0
            seen.add(key)
            await self.bills.update_one({"_id": doc["_id"]}, {"$set": {
                "chain_key": f"legacy:{doc['_id']}" if taken else key, "status": "issued", "kind": "bill"}})

    async def ping(self) -> None:
        """Raise unless MongoDB answers."""
        await self.db.command("ping")

    # runs ---------------------------------------------------------------------------------------

    async def get_run(self, run_id: str) -> Doc | None:
        """The run document, if the run was split."""
        return await self.runs.find_one({"_id": run_id})

    async def create_run(self, doc: Mapping[str, Any]) -> bool:
        """Insert the run document; False when it already exists (a redelivered RunBilling)."""
        try:
            await self.runs.insert_one(dict(doc))
        except DuplicateKeyError:
            return False
        return True

    async def update_run(self, run_id: str, fields: Mapping[str, Any]) -> None:
        """`$set` plain fields of an existing run (never datetimes: see _plain)."""
        await self.runs.update_one({"_id": run_id}, {"$set": _plain(fields)})

    async def save_chunks(self, docs: list[Doc]) -> None:
        """Keep the device snapshots of jobs (registry data at split time); an existing one wins."""
        if not docs:
            return
        try:
            await self.chunks.insert_many(docs, ordered=False)
        except BulkWriteError as err:
            others = [e for e in err.details.get("writeErrors", []) if e.get("code") != DUPLICATE_KEY]
            if others:
                raise StoreUnavailable(f"chunk snapshot insert failed: {others[:3]}") from err

    async def chunks_of_run(self, run_id: str) -> list[Doc]:
        """Every device snapshot already saved for a run."""
        return await self.chunks.find({"run_id": run_id}).to_list()

    async def load_chunk(self, job_id: str) -> Doc | None:
        """The device snapshot of one job."""
        return await self.chunks.find_one({"_id": job_id})

    async def record_job(self, job_id: str, outcome: Mapping[str, Any]) -> bool:
        """Record a job's outcome once: False when it was already recorded (a redelivery)."""
        try:
            await self.jobs.insert_one({"_id": job_id, **outcome})
        except DuplicateKeyError:
            return False
        return True

    async def job_outcome(self, job_id: str) -> Doc | None:
        """A job's recorded outcome, if any."""
        return await self.jobs.find_one({"_id": job_id})

    async def job_outcomes(self, run_id: str) -> list[Doc]:
        """Every recorded job outcome of a run."""
        return await self.jobs.find({"run_id": run_id}).to_list()

    async def count_jobs(self, run_id: str) -> int:
        """How many of a run's jobs have an outcome."""
        return await self.jobs.count_documents({"run_id": run_id})

    async def running_runs(self, project_id: int, device_type: int) -> list[Doc]:
        """The project's runs of a device type that have not finished (id and start only)."""
        cursor = self.runs.find({"project_id": project_id, "device_type": device_type, "status": "running"},
                                {"_id": 1, "started_at": 1})
        return await cursor.to_list()

    async def finish_run(self, run: Mapping[str, Any], fields: Mapping[str, Any]) -> bool:
        """Mark the run finished with its summary; True only for the call that finished it.

        A whole-document replace conditioned on the status: nx-27017 stores a datetime given to
        `$set` on an existing document as a string, while replace_one keeps its type.
        """
        doc = {key: value for key, value in run.items() if key != "_id"}
        doc.update(fields, status="finished")
        result = await self.runs.replace_one({"_id": run["_id"], "status": {"$ne": "finished"}}, doc)
        return result.modified_count == 1

    # bills --------------------------------------------------------------------------------------

    async def ledgers(self, project_id: int, device_ids: Sequence[int], *,
                      since: datetime | None = None) -> dict[int, list[Doc]]:
        """Every bill and credit note of these devices (the fields the ledger needs), by device;
        with `since`, only those whose `to_time` is at or after it (the chain's recent end: see
        jobs.read_ledgers).

        One read per chunk: a device-id range (a chunk is a slice of a project's devices in id
        order), narrowed to the ids asked in Python. The range is what keeps it indexed on
        nx-27017: there a `$in` or an equality becomes a `json_each` test that scans every row
        of `bills` (each chunk's read grew with the collection, quadratic over a run), while a
        range on the leading field of `bills_of_devices` is an index search; real MongoDB uses
        the same index for it, and for the `to_time` bound after it (nx-27017 tests that bound
        on each row of the device range, in its own process: the worker only holds what passes).
        """
        extra = {} if since is None else {"to_time": {"$gte": since}}
        return group_by_device(await self._bills_of(project_id, device_ids, LEDGER_FIELDS, extra), device_ids)

    async def job_bills(self, project_id: int, device_ids: Sequence[int], *, job_id: str) -> list[Doc]:
        """The bills a job inserted (on any attempt), with the fields a `BillIssued` needs."""
        wanted = set(device_ids)
        return [doc for doc in await self._bills_of(project_id, device_ids, ISSUED_FIELDS, {"job_id": job_id})
                if int(doc["device_id"]) in wanted and doc.get("job_id") == job_id
                and doc.get("kind", "bill") == "bill"]

    async def _bills_of(self, project_id: int, device_ids: Sequence[int], fields: Mapping[str, int],
                        extra: Mapping[str, Any]) -> list[Doc]:
        """The bills of a project whose device id lies between the least and greatest asked and
        that match `extra` (one indexed read; the caller keeps the ids it asked for)."""
        if not device_ids:
            return []
        query = {"project_id": project_id, "device_id": {"$gte": min(device_ids), "$lte": max(device_ids)}, **extra}
        return await self.bills.find(query, dict(fields)).to_list()

    async def insert_bills(self, docs: list[Doc]) -> tuple[int, set[int]]:
        """insert_many(ordered=False): (inserted, indexes already billed). Other errors raise."""
        if not docs:
            return 0, set()
        try:
            result = await self.bills.insert_many(docs, ordered=False)
        except BulkWriteError as err:
            errors = err.details.get("writeErrors", [])
            others = [e for e in errors if e.get("code") != DUPLICATE_KEY]
            if others or err.details.get("writeConcernErrors"):
                raise StoreUnavailable(f"bill insert failed: {others[:3]}") from err
            duplicates = {int(e["index"]) for e in errors}
            return len(docs) - len(duplicates), duplicates
        return len(result.inserted_ids), set()

    async def get_bill(self, bill_id: ObjectId) -> Doc | None:
        """One bill or credit note."""
        return await self.bills.find_one({"_id": bill_id})

    async def insert_credit_note(self, doc: Doc) -> Doc:
        """Store a bill's credit note; the one already there when the bill has one (its
        `chain_key` is `credit:<bill id>`: one credit note per bill, even under concurrent voids)."""
        try:
            await self.bills.insert_one(doc)
        except DuplicateKeyError:
            existing = await self.bills.find_one({"chain_key": doc["chain_key"]})
            if existing is None:
                raise
            return existing
        return doc

    async def void_bill(self, bill: Mapping[str, Any], fields: Mapping[str, Any]) -> bool:
        """Mark an issued bill void and free its chain position; True for the call that did it.

        A whole-document replace conditioned on the status (nx-27017 would store the void time
        given to `$set` as text), like finish_run.
        """
        doc = {key: value for key, value in bill.items() if key != "_id"}
        doc.update(fields, status="void", chain_key=f"void:{bill['_id']}")
        result = await self.bills.replace_one({"_id": bill["_id"], "status": "issued"}, doc)
        return result.modified_count == 1

    async def find_bills(self, query: Mapping[str, Any], *, skip: int = 0, limit: int = 0) -> list[Doc]:
        """Bills newest first (period end, then id)."""
        cursor = self.bills.find(dict(query)).sort([("to_time", DESCENDING), ("_id", DESCENDING)])
        if skip:
            cursor = cursor.skip(skip)
        if limit:
            cursor = cursor.limit(limit)
        return await cursor.to_list()

    async def count_bills(self, query: Mapping[str, Any]) -> int:
        """How many bills match."""
        return await self.bills.count_documents(dict(query))

    # tariffs ------------------------------------------------------------------------------------

    async def tariffs_for(self, project_id: int, device_type: int) -> list[Doc]:
        """Every tariff of a project and device type (all kinds and dates)."""
        return await self.tariffs.find({"project_id": project_id, "device_type": device_type}).to_list()

    async def list_tariffs(self, query: Mapping[str, Any], *, skip: int, limit: int) -> tuple[int, list[Doc]]:
        """A page of tariffs, oldest first, and the total."""
        total = await self.tariffs.count_documents(dict(query))
        docs = await self.tariffs.find(dict(query)).sort("_id", ASCENDING).skip(skip).limit(limit).to_list()
        return total, docs

    async def get_tariff(self, tariff_id: ObjectId) -> Doc | None:
        """One tariff."""
        return await self.tariffs.find_one({"_id": tariff_id})

    async def insert_tariff(self, doc: Doc) -> ObjectId:
        """Store a new tariff."""
        result = await self.tariffs.insert_one(doc)
        return ObjectId(result.inserted_id)

    async def replace_tariff(self, tariff_id: ObjectId, doc: Mapping[str, Any]) -> bool:
        """Replace a tariff (replace_one keeps datetimes typed on nx-27017); False when missing."""
        body = {key: value for key, value in doc.items() if key != "_id"}
        result = await self.tariffs.replace_one({"_id": tariff_id}, body)
        return result.matched_count == 1

    async def delete_tariff(self, tariff_id: ObjectId) -> bool:
        """Delete a tariff; False when it does not exist."""
        result = await self.tariffs.delete_one({"_id": tariff_id})
        return result.deleted_count == 1
