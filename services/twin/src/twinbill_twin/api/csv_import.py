"""POST /api/v1/io/sites_csv: seed 001's upload_sites_csv, all or nothing."""

from __future__ import annotations

import asyncio

from aiohttp import BodyPartReader, web

from twinbill_common.apidocs import JsonSchema, documented
from twinbill_common.errors import ValidationFailed
from twinbill_common.http import json_response
from twinbill_common.paging import INT32_MAX, Errors, query_int
from twinbill_twin.api.common import pool_of
from twinbill_twin.domain.csv_rows import parse_csv
from twinbill_twin.events import enqueue
from twinbill_twin.keys import DEVICE_SECRETS, OUTBOX
from twinbill_twin.store.bulk import check_against_store, import_rows


async def _read_upload(request: web.Request) -> tuple[str, str | None]:
    """The CSV text and a project id given as a form field, from multipart or a text/csv body."""
    project: str | None = None
    if request.content_type.startswith("multipart/"):
        text: str | None = None
        try:
            reader = await request.multipart()
        except ValueError as err:  # no boundary in the Content-Type (was a 500)
            raise ValidationFailed({"file": [f"not a multipart body: {err}"]}, data={"location": "files"}) from None
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "project_id":
                project = (await part.text()).strip()
            elif part.name in ("file", "csv_file", "sites_csv"):
                text = (await part.read(decode=True)).decode("utf-8-sig", errors="strict")
        if text is None:
            raise ValidationFailed({"file": ["Missing data for required field."]}, data={"location": "files"})
        return text, project
    try:
        return (await request.read()).decode("utf-8-sig"), None
    except UnicodeDecodeError as err:
        raise ValidationFailed({"_body": [f"the CSV is not UTF-8: {err}"]}) from None


@documented(summary="Import a site CSV file: checked whole, nothing imported when any cell is wrong",
            body=JsonSchema({"type": "string", "description": "the CSV file (or multipart/form-data with `file` "
                             "and `project_id`)"}), body_media="text/csv",
            query=JsonSchema({"type": "object", "properties": {"project_id": {
                "type": "integer", "minimum": 1, "maximum": INT32_MAX,
                "description": "the project imported into (or a `project_id` form field)"}}}),
            response=dict[str, int], status=201, tags=("management",))
async def upload_sites_csv(request: web.Request) -> web.Response:
    """Import sites, buildings, storeys, zones, spaces, residents and devices from one CSV file.

    The whole file is checked first; one bad row rejects the file (422, every bad row named as
    "<line>.<column>") and nothing is written. A good file is written in one transaction (201).
    """
    try:
        text, form_project = await _read_upload(request)
    except UnicodeDecodeError as err:
        raise ValidationFailed({"file": [f"the CSV is not UTF-8: {err}"]}, data={"location": "files"}) from None
    if (at := text.find("\x00")) >= 0:  # PostgreSQL text cannot hold it; csv would pass it on
        line = text.count("\n", 0, at) + 1
        raise ValidationFailed({"file": [f"line {line} contains a NUL character (U+0000)"]},
                               data={"location": "files"})
    errors: Errors = {}
    project_id = query_int({"project_id": request.query.get("project_id") or form_project or ""},
                           "project_id", required=True, errors=errors)
    if errors or project_id is None:
        raise ValidationFailed(errors, data={"location": "query"})
    parsed = await asyncio.to_thread(parse_csv, text)  # up to 64 MB: off the loop the consumer shares
    async with pool_of(request).acquire() as conn:
        if not await conn.fetchval("SELECT 1 FROM projects WHERE id = $1", project_id):
            raise ValidationFailed({"project_id": [f"project {project_id} does not exist"]},
                                   data={"location": "query"})
        async with conn.transaction():
            if not parsed.errors:
                await check_against_store(conn, parsed, project_id)
            if parsed.errors:
                rows = len({key.split(".", 1)[0] for key in parsed.errors})
                raise ValidationFailed(parsed.errors, data={"location": "csv"},
                                       message=f"{rows} row(s) of the file are wrong; nothing was imported")
            counts, events = await import_rows(conn, parsed, project_id,
                                               seal=request.app[DEVICE_SECRETS].seal)
            await enqueue(conn, events)
    await request.app[OUTBOX].flush_quietly()
    return json_response(counts, status=201)


def add_io_routes(app: web.Application) -> None:
    """The CSV import route."""
    app.router.add_post("/api/v1/io/sites_csv", upload_sites_csv)
