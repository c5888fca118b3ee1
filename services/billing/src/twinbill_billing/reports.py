"""Read API for operators: billing runs per project (which meters were skipped, estimated or failed,
and why) and the billing audit. Seed-001 style: plain JSON, lists paged with `X-Pagination`.

- `GET /api/v1/billing/runs/?project_id=&task=&device_type=&page=&page_size=`: a project's runs,
  newest first (fire time), each with its counts.
- `GET /api/v1/billing/runs/{run_id}?outcome=&page=&page_size=`: one run, its counts, and a page of
  its per-device outcomes (`skipped`, `estimated`, `failed`, `exception`) with reasons.
- `GET /api/v1/billing/audit/?project_id=&entity=&entity_id=&action=&page=&page_size=`: audit
  entries, newest first.

Counts come from the run's stored summary once it finished, else live from its job outcomes (as
`/internal/v1/runs/{run_id}` does). The gateway scopes every path by project: the list and audit by
the `project_id` named, a run by the `project_id` it answers with. Without `project_id` the lists
cover every project (administrators: the gateway refuses anyone else a request naming no project),
which is how entries of no project (`project_id` null) are read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiohttp import web
from pymongo import DESCENDING

from twinbill_billing.audit import audit_collection
from twinbill_billing.history import STORE
from twinbill_billing.runs import summarize
from twinbill_billing.store import BillStore
from twinbill_common.apidocs import JsonSchema, documented
from twinbill_common.errors import HttpError, NotFound
from twinbill_common.http import json_response
from twinbill_common.paging import query_int, query_page, smorest_pagination

MAX_PAGE_SIZE = 1000
COUNTS = ("devices_expected", "jobs_total", "jobs_done", "jobs_dead_lettered", "billed", "newly_billed",
          "estimated", "skipped", "failed", "exceptions")
# Per-device lists of a job outcome, and the outcome each stands for.
OUTCOME_LISTS = (("skipped", "skipped"), ("estimated", "estimated"), ("failed", "failed"),
                 ("exceptions", "exception"))
OUTCOMES = ("skipped", "estimated", "failed", "exception")
ESTIMATED_REASON = "no reading at the period end: estimated"


def _bad_query(errors: dict[str, list[str]]) -> HttpError:
    message = "; ".join(f"{name}: {', '.join(why)}" for name, why in errors.items())
    return HttpError(400, message, fields=errors, data={"location": "query"})


def _paging(query: Mapping[str, str], errors: dict[str, list[str]]) -> tuple[int, int]:
    window = query_page(query, errors=errors, default_size=20, max_size=MAX_PAGE_SIZE)
    return window.page, window.page_size


def pagination(total: int, *, page: int, page_size: int) -> dict[str, str]:
    """The X-Pagination header as flask-smorest writes it."""
    return {"X-Pagination": json.dumps(smorest_pagination(total=total, page=page, page_size=page_size))}


def jsonable(value: Any) -> Any:
    """Stored values as JSON: datetimes as ISO-8601 with their offset, containers copied."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


async def _estimated_bills(store: BillStore, run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The run's estimated bills (the ledger flags them `estimated`), whatever its outcomes list."""
    cursor = store.bills.find(
        {"project_id": run.get("project_id"), "device_type": run.get("device_type"), "run_id": run["_id"],
         "estimated": True},
        {"_id": 1, "device_id": 1, "device_key": 1, "estimate_reason": 1, "job_id": 1},
    )
    return await cursor.to_list()


def run_counts(run: Mapping[str, Any], summary: Mapping[str, Any], *, estimated: int) -> dict[str, Any]:
    """The run's identity, times, status and counts, as the list and the detail show them."""
    counts = {key: int(summary.get(key, 0) or 0) for key in COUNTS}
    counts["estimated"] = max(counts["estimated"], estimated)
    return {
        "run_id": run["_id"],
        "project_id": run.get("project_id"),
        "device_type": run.get("device_type"),
        "task_key": run.get("task_key"),
        "period_start": jsonable(run.get("period_start")),
        "period_end": jsonable(run.get("period_end")),
        "fire_time": jsonable(run.get("fire_time")),
        "timezone": run.get("timezone"),
        "status": run.get("status"),
        "started_at": jsonable(run.get("started_at")),
        "finished_at": jsonable(run.get("finished_at")),
        **counts,
        "finished": bool(summary.get("finished", run.get("status") == "finished")),
    }


async def _summary_of(store: BillStore, run: Mapping[str, Any], *,
                      outcomes_needed: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(summary, job outcomes): the stored summary of a finished run, else a live fold. The outcomes
    of a finished run are read only when asked for (the list shows counts only)."""
    finished = run.get("status") == "finished" and isinstance(run.get("summary"), Mapping)
    outcomes = await store.job_outcomes(run["_id"]) if outcomes_needed or not finished else []
    if finished:
        return dict(run["summary"]), outcomes
    return summarize(dict(run), outcomes), outcomes


_INT = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
_PAGE = {"page": _INT, "page_size": {**_INT, "maximum": MAX_PAGE_SIZE, "description": "20 unless given"}}
RUNS_QUERY = JsonSchema({"type": "object", "properties": {
    **_PAGE, "project_id": _INT, "device_type": {"type": "integer", "minimum": 0, "maximum": 2},
    "task": {"type": "string"}}})
RUN_QUERY = JsonSchema({"type": "object", "properties": {**_PAGE, "outcome": {"type": "string",
                                                                              "enum": list(OUTCOMES)}}})
AUDIT_QUERY = JsonSchema({"type": "object", "properties": {
    **_PAGE, "project_id": _INT, "entity": {"type": "string"}, "entity_id": {"type": "string"},
    "action": {"type": "string"}}})
OBJECTS = JsonSchema({"type": "array", "items": {"type": "object"}})


@documented(summary="A page of billing runs, newest first (X-Pagination)", query=RUNS_QUERY, response=OBJECTS,
            tags=("billing",))
async def list_runs(request: web.Request) -> web.Response:
    """GET /api/v1/billing/runs/: a project's runs, newest first, with their counts."""
    query = request.query
    errors: dict[str, list[str]] = {}
    project_id = query_int(query, "project_id", errors=errors) or 0
    device_type = query_int(query, "device_type", errors=errors, default=0, minimum=0, maximum=2)
    page, page_size = _paging(query, errors)
    if errors:
        raise _bad_query(errors)
    mongo: dict[str, Any] = {"project_id": project_id} if project_id else {}
    if device_type:
        mongo["device_type"] = device_type
    if task := query.get("task", "").strip():
        mongo["task_key"] = task
    store = request.app[STORE]
    total = await store.runs.count_documents(mongo)
    cursor = store.runs.find(mongo).sort([("fire_time", DESCENDING), ("_id", DESCENDING)])
    runs = await cursor.skip((page - 1) * page_size).limit(page_size).to_list()
    items = []
    for run in runs:
        summary, _ = await _summary_of(store, run, outcomes_needed=False)
        estimated = len(await _estimated_bills(store, run))
        items.append(run_counts(run, summary, estimated=estimated))
    return json_response(items, headers=pagination(total, page=page, page_size=page_size))


@documented(summary="A run's counts and a page of its per-meter outcomes", query=RUN_QUERY,
            response=dict[str, Any], path_types={"run_id": str}, tags=("billing",))
async def get_run_report(request: web.Request) -> web.Response:
    """GET /api/v1/billing/runs/{run_id}: the run's counts and a page of per-device outcomes."""
    query = request.query
    errors: dict[str, list[str]] = {}
    page, page_size = _paging(query, errors)
    wanted = query.get("outcome", "").strip()
    if wanted and wanted not in OUTCOMES:
        errors["outcome"] = [f"Must be one of: {', '.join(OUTCOMES)}."]
    if errors:
        raise _bad_query(errors)
    store = request.app[STORE]
    run_id = request.match_info["run_id"]
    run = await store.get_run(run_id)
    if run is None:
        raise NotFound(f"run {run_id!r} not found")
    summary, outcomes = await _summary_of(store, run, outcomes_needed=True)
    estimated_bills = await _estimated_bills(store, run)
    devices: list[dict[str, Any]] = []
    for outcome in sorted(outcomes, key=lambda o: o.get("chunk", 0)):
        for key, name in OUTCOME_LISTS:
            for entry in outcome.get(key) or []:
                devices.append({"device_id": entry.get("device_id"), "device_key": entry.get("device_key"),
                                "outcome": name, "reason": entry.get("reason"), "job_id": outcome["_id"]})
    listed = {d["device_id"] for d in devices if d["outcome"] == "estimated"}
    devices += [{"device_id": b.get("device_id"), "device_key": b.get("device_key"), "outcome": "estimated",
                 "reason": b.get("estimate_reason") or ESTIMATED_REASON, "job_id": b.get("job_id"),
                 "bill_id": str(b["_id"])}
                for b in estimated_bills if b.get("device_id") not in listed]
    if wanted:
        devices = [d for d in devices if d["outcome"] == wanted]
    body = run_counts(run, summary, estimated=len(listed | {b.get("device_id") for b in estimated_bills}))
    body["dead_lettered_jobs"] = [{"job_id": o["_id"], "reason": o.get("reason")}
                                  for o in outcomes if o.get("status") == "dead_lettered"]
    start = (page - 1) * page_size
    body["devices"] = devices[start : start + page_size]
    return json_response(body, headers=pagination(len(devices), page=page, page_size=page_size))


@documented(summary="A page of the billing audit log (X-Pagination)", query=AUDIT_QUERY, response=OBJECTS,
            tags=("billing",))
async def list_audit(request: web.Request) -> web.Response:
    """GET /api/v1/billing/audit/: a project's audit entries, newest first."""
    query = request.query
    errors: dict[str, list[str]] = {}
    project_id = query_int(query, "project_id", errors=errors) or 0
    page, page_size = _paging(query, errors)
    if errors:
        raise _bad_query(errors)
    mongo: dict[str, Any] = {"project_id": project_id} if project_id else {}
    for name in ("entity", "entity_id", "action"):
        if value := query.get(name, "").strip():
            mongo[name] = value
    collection = audit_collection(request.app[STORE].db)
    total = await collection.count_documents(mongo)
    cursor = collection.find(mongo).sort([("at", DESCENDING), ("_id", DESCENDING)])
    entries = await cursor.skip((page - 1) * page_size).limit(page_size).to_list()
    items = [
        {"id": str(e["_id"]), "project_id": e.get("project_id"), "actor": e.get("actor"), "action": e.get("action"),
         "entity": e.get("entity"), "entity_id": e.get("entity_id"), "reason": e.get("reason"),
         "data": jsonable(e.get("data") or {}), "at": jsonable(e.get("at")), "published": bool(e.get("published"))}
        for e in entries
    ]
    return json_response(items, headers=pagination(total, page=page, page_size=page_size))


def add_report_routes(app: web.Application) -> None:
    """Mount the run reports and the audit list (with and without the trailing slash)."""
    for path, handler in (("/api/v1/billing/runs/", list_runs), ("/api/v1/billing/audit/", list_audit)):
        app.router.add_get(path, handler)
        app.router.add_get(path.rstrip("/"), handler)
    app.router.add_get("/api/v1/billing/runs/{run_id}", get_run_report)
    app.router.add_get("/api/v1/billing/runs/{run_id}/", get_run_report)
