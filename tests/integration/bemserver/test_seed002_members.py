"""Seed 002 through the gateway for project members (issue 12): they read their own project's
instances, attributes and series and set desired values there; nothing of another project is
visible. Description attributes are created and read; an instance's state is its device's."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.integration.bemserver.conftest import ADMIN, Stack, unique
from tests.integration.twin_registry.conftest import make_device, make_product, make_project
from twinbill_twin.keys import POOL


async def _attribute(bem: Stack, instance_id: int, name: str) -> int:
    assert bem.twin.app is not None
    return int(await bem.twin.app[POOL].fetchval(
        "SELECT id FROM attributes WHERE instance_id = $1 AND name = $2", instance_id, name))


async def test_members_see_only_their_projects_twins(bem: Stack) -> None:
    """A member lists, reads and controls their project's instances; another's are 404."""
    mine, theirs = await make_project(bem.twin), await make_project(bem.twin)
    product = await make_product(bem.twin)
    my_device = await make_device(bem.twin, product_key=product["product_key"], project_id=mine)
    their_device = await make_device(bem.twin, product_key=product["product_key"], project_id=theirs)
    member = (f"{unique('member')}@example.test", "member-password")
    created = await bem.gateway.post("/api/v1/users/", json={
        "name": "Member", "email": member[0], "password": member[1], "projects": [mine]},
        headers={"Authorization": _basic(ADMIN)})
    assert created.status == 201, await created.text()
    gateway = f"http://127.0.0.1:{bem.gateway.port}"

    async def get(path: str, **params: str) -> tuple[int, Any]:
        async with _session() as http, http.get(gateway + path, params=params,
                                                headers={"Authorization": _basic(member)}) as response:
            return response.status, await response.json()

    status, listed = await get("/dt/open/v1/instances", offset="1000")
    assert status == 200
    assert [row["id"] for row in listed["data"]["rows"]] == [my_device["instance_id"]]
    assert (await get("/dt/open/v1/instance", ids=str(their_device["instance_id"])))[0] == 404
    status, details = await get("/dt/open/v1/instance", ids=str(my_device["instance_id"]))
    assert status == 200 and details["data"][0]["id"] == my_device["instance_id"]
    their_total = await _attribute(bem, their_device["instance_id"], "total")
    my_total = await _attribute(bem, my_device["instance_id"], "total")
    assert (await get(f"/dt/open/v1/instance/attribute/{their_total}", start="1h-ago"))[0] == 404
    assert (await get(f"/dt/open/v1/instance/attribute/{my_total}", start="1h-ago"))[0] == 200
    async with _session() as http:
        for instance, expected in ((my_device["instance_id"], 200), (their_device["instance_id"], 404)):
            valve = await _attribute(bem, instance, "valve")
            async with http.patch(f"{gateway}/dt/open/v1/instance/{instance}",
                                  json=[{"id": valve, "expectvalue": "true"}],
                                  headers={"Authorization": _basic(member)}) as response:
                assert response.status == expected, await response.text()


async def test_description_attributes_and_instance_state(bem: Stack) -> None:
    """A Description attribute is created, read through seed 002, changed; `state` is 1 while the
    device is online."""
    project = await make_project(bem.twin)
    product = await make_product(bem.twin)
    device = await make_device(bem.twin, product_key=product["product_key"], project_id=project)
    instance = device["instance_id"]
    created = await bem.gateway.post(f"/api/v1/instances/{instance}/descriptions",
                                     json={"name": "location", "displayname": "位置", "value": "3rd floor"},
                                     headers={"Authorization": _basic(ADMIN)})
    assert created.status == 201, await created.text()
    ident = (await created.json())["id"]
    read = await (await bem.twin.get(f"/dt/open/v1/instance/attribute/{ident}")).json()
    assert (read["data"]["attrtype"], read["data"]["value"], read["data"]["displayname"]) == \
        ("Description", "3rd floor", "位置")
    twice = await bem.twin.post(f"/api/v1/instances/{instance}/descriptions", json={"name": "location"})
    assert twice.status == 409
    changed = await bem.twin.put(f"/api/v1/descriptions/{ident}", json={"value": "4th floor"})
    assert (await changed.json())["value"] == "4th floor"
    details = await (await bem.twin.get("/dt/open/v1/instance", params={"ids": str(instance)})).json()
    assert {"name": "location", "value": "4th floor"}.items() <= next(
        a for a in details["data"][0]["attr"] if a["name"] == "location").items()

    async def state() -> int:
        page = await (await bem.twin.get("/dt/open/v1/instances", params={"offset": "10000"})).json()
        return int(next(r["state"] for r in page["data"]["rows"] if r["id"] == instance))

    assert await state() == 0
    assert bem.twin.app is not None
    await bem.twin.app[POOL].execute("UPDATE devices SET online = true WHERE id = $1", device["id"])
    assert await state() == 1


def _basic(credentials: tuple[str, str]) -> str:
    return aiohttp.encode_basic_auth(*credentials)


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession()
