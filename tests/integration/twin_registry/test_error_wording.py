"""Error answers name what is wrong in the platform's words, not PostgreSQL's."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.integration.twin_registry.conftest import make_project

Client = TestClient[Any, Any]


async def test_a_duplicate_place_names_its_fields_not_postgresql_text(twin: Client) -> None:
    """A second site of the same name: 409 naming the unique fields, without PostgreSQL's
    `Key (...)=(...) already exists.` detail."""
    project = await make_project(twin)
    first = await twin.post("/api/v1/sites/", json={"name": "同名", "project_id": project})
    assert first.status == 201, await first.text()
    again = await twin.post("/api/v1/sites/", json={"name": "同名", "project_id": project})
    assert again.status == 409
    message = (await again.json())["message"]
    assert "already exists (same project_id, name)" in message and "Key (" not in message, message
