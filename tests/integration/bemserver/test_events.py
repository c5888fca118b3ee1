"""Events, their links, subscriptions and notifications through the unmodified
bemserver-api-client 0.22 (the bemserver-api 0.27 contract), with the twin's notifier asking the
gateway which users a campaign scope's groups hold: a notification reaches only them, never a
subscribed user of another campaign (which bemserver-core 0.22 does)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer, unused_port
from bemserver_api_client.exceptions import (
    BEMServerAPIAuthorizationError,
    BEMServerAPIConflictError,
    BEMServerAPINotFoundError,
    BEMServerAPIValidationError,
)
from pydantic import SecretStr

from tests.integration.bemserver.conftest import ADMIN, Stack, call, unique
from twinbill_common.servicetokens import ServiceTokens
from twinbill_common.settings import DEV_SERVICE_KEY
from twinbill_devstack.namespaces import delete_namespace
from twinbill_gateway.app import create_app as create_gateway
from twinbill_gateway.settings import GatewaySettings
from twinbill_twin.app import create_app as create_twin
from twinbill_twin.settings import TwinSettings


@pytest.fixture(scope="module")
async def evstack(pg_dsn: str, amqp_url: str) -> AsyncIterator[Stack]:
    """Gateway and twin sharing the (development) service key, the twin's notifier polling every 0.1 s."""
    tag = uuid.uuid4().hex[:10]
    gateway_port = unused_port()
    twin_settings = TwinSettings(pg_dsn=pg_dsn, amqp_url=amqp_url, schema_name=f"ev_twin_{tag}",
                                 bus_namespace=f"t{tag}.", pg_pool_max=5, notifier_interval=0.1,
                                 gateway_url=f"http://127.0.0.1:{gateway_port}")
    twin: TestClient[Any, Any] = TestClient(TestServer(create_twin(twin_settings)))
    await twin.start_server()
    gateway_settings = GatewaySettings(pg_dsn=SecretStr(pg_dsn), schema_name=f"ev_identity_{tag}",
                                       admin_email=ADMIN[0], admin_password=SecretStr(ADMIN[1]),
                                       twin_url=f"http://127.0.0.1:{twin.port}", pg_pool_max=4)
    gateway: TestClient[Any, Any] = TestClient(TestServer(create_gateway(gateway_settings), port=gateway_port))
    await gateway.start_server()
    yield Stack(gateway, twin)
    await gateway.close()
    await twin.close()
    await delete_namespace(amqp_url, twin_settings.bus_namespace)


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float = 15.0) -> None:
    """Wait until `check` holds (polling), or fail."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


async def member(stack: Stack, admin: Any, *, scope_id: int | None) -> tuple[dict[str, Any], Any]:
    """A new user, in a new group linked to `scope_id` (if any), and their client."""
    email = f"{unique('user')}@example.test"
    user = (await call(admin.users.create, {"name": "Energy manager", "email": email, "password": "pw-123456"})).data
    group = (await call(admin.user_groups.create, {"name": unique("group")})).data
    await call(admin.user_by_user_groups.create, {"user_id": user["id"], "user_group_id": group["id"]})
    if scope_id is not None:
        await call(admin.user_groups_by_campaign_scopes.create,
                   {"user_group_id": group["id"], "campaign_scope_id": scope_id})
    return user, await call(stack.client, email, "pw-123456")


async def campaign_with_scope(admin: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new campaign and one scope in it."""
    campaign = (await call(admin.campaigns.create, {"name": unique("campaign"), "timezone": "Europe/Paris"})).data
    scope = (await call(admin.campaign_scopes.create, {"name": "meters", "campaign_id": campaign["id"]})).data
    return campaign, scope


async def test_notifications_reach_only_users_of_the_events_campaign_scope(evstack: Stack) -> None:
    """Alice (scope A) and Bob (scope B) both subscribe to the category at INFO; Dan (scope A) has
    no subscription. An A event at WARNING notifies Alice and Dan, never Bob; INFO notifies only
    Alice; DEBUG nobody. Counts per campaign, mark-all-as-read and per-user visibility hold."""
    stack = evstack
    admin = await call(stack.client, *ADMIN)
    campaign_a, scope_a = await campaign_with_scope(admin)
    _, scope_b = await campaign_with_scope(admin)
    alice, alice_api = await member(stack, admin, scope_id=scope_a["id"])
    bob, bob_api = await member(stack, admin, scope_id=scope_b["id"])
    dan, dan_api = await member(stack, admin, scope_id=scope_a["id"])
    category = (await call(admin.event_categories.create, {"name": unique("Leak"), "description": "water"})).data
    for user, api in ((alice, alice_api), (bob, bob_api)):
        sub = await call(api.event_categories_by_users.create,
                         {"user_id": user["id"], "category_id": category["id"], "notification_level": "INFO"})
        assert sub.data["notification_level"] == "INFO"
    with pytest.raises(BEMServerAPIAuthorizationError):  # a subscription is its user's own
        await call(bob_api.event_categories_by_users.create,
                   {"user_id": alice["id"], "category_id": category["id"], "notification_level": "INFO"})

    def event(level: str, minute: int) -> dict[str, Any]:
        return {"campaign_scope_id": scope_a["id"], "category_id": category["id"], "level": level,
                "timestamp": f"2026-12-01T08:{minute:02d}:00+01:00", "source": "meter 7", "description": f"{level}"}

    # Alice, a member of scope A, may record events there herself (BEMServer's scope membership)
    warning = (await call(alice_api.events.create, event("WARNING", 1))).data
    assert warning["level"] == "WARNING" and warning["timestamp"] == "2026-12-01T07:01:00+00:00"
    info = (await call(admin.events.create, event("INFO", 2))).data
    debug = (await call(admin.events.create, event("DEBUG", 3))).data

    async def events_of(api: Any, user: dict[str, Any]) -> list[int]:
        return sorted(n["event_id"] for n in (await call(api.notifications.getall, user_id=user["id"])).data)

    async def fanned_out() -> bool:
        return await events_of(alice_api, alice) == sorted([warning["id"], info["id"]])
    await eventually(fanned_out)
    assert await events_of(dan_api, dan) == [warning["id"]]
    assert await events_of(bob_api, bob) == []   # subscribed, but not in scope A's groups
    assert debug["id"] not in await events_of(admin, alice)
    notification = (await call(alice_api.notifications.getall, user_id=alice["id"], event_id=warning["id"])).data[0]
    assert notification["read"] is False and notification["event"]["source"] == "meter 7"
    assert "id" not in notification["event"]
    with pytest.raises(BEMServerAPIAuthorizationError):
        await call(bob_api.notifications.getone, notification["id"])

    counts = (await call(alice_api.notifications.count_by_campaign, user_id=alice["id"])).data
    assert counts == {"total": 2, "campaigns": [{"campaign_id": campaign_a["id"],
                                                 "campaign_name": campaign_a["name"], "count": 2}]}
    with pytest.raises(BEMServerAPIAuthorizationError):
        await call(bob_api.notifications.count_by_campaign, user_id=alice["id"])
    await call(alice_api.notifications.mark_all_as_read, user_id=alice["id"], campaign_id=campaign_a["id"])
    unread = (await call(alice_api.notifications.count_by_campaign, user_id=alice["id"], read=False)).data
    assert unread == {"total": 0, "campaigns": []}
    assert (await call(dan_api.notifications.count_by_campaign, user_id=dan["id"], read=False)).data["total"] == 1

    # events of scope A are Bob's to neither read nor list
    with pytest.raises(BEMServerAPIAuthorizationError):
        await call(bob_api.events.getone, warning["id"])
    assert (await call(bob_api.events.getall, campaign_id=campaign_a["id"])).data == []
    assert [e["id"] for e in (await call(alice_api.events.getall, campaign_id=campaign_a["id"],
                                         level_min="INFO", sort="-timestamp")).data] == [info["id"], warning["id"]]
    debug_of_alice = (await call(admin.events.getall, user_id=alice["id"], level="DEBUG")).data
    assert [e["id"] for e in debug_of_alice] == [debug["id"]]


async def test_events_link_to_places_and_series_and_filter_recursively(evstack: Stack) -> None:
    """events_by_buildings and timeseries_by_events link an event; site_id finds only direct
    links, recurse_site_id also the building's; a series of another scope is refused (422), an
    unknown category is a conflict (409), and deleting the event deletes its links."""
    stack = evstack
    admin = await call(stack.client, *ADMIN)
    campaign, scope = await campaign_with_scope(admin)
    other_scope = (await call(admin.campaign_scopes.create, {"name": "other", "campaign_id": campaign["id"]})).data
    site = (await call(admin.sites.create, {"name": unique("site"), "campaign_id": campaign["id"]})).data
    building = (await call(admin.buildings.create, {"name": "B1", "site_id": site["id"]})).data
    category = (await call(admin.event_categories.create, {"name": unique("Offline")})).data
    event = (await call(admin.events.create, {
        "campaign_scope_id": scope["id"], "category_id": category["id"], "level": "ERROR",
        "timestamp": "2026-12-01T00:00:00+00:00", "source": "alarm rules"})).data
    link = (await call(admin.event_by_buildings.create, {"event_id": event["id"], "building_id": building["id"]})).data
    assert link["building"]["name"] == "B1" and link["building"]["site_id"] == site["id"]
    assert (await call(admin.events.getall, site_id=site["id"])).data == []
    assert [e["id"] for e in (await call(admin.events.getall, recurse_site_id=site["id"])).data] == [event["id"]]
    assert [e["id"] for e in (await call(admin.events.getall, building_id=building["id"])).data] == [event["id"]]
    with pytest.raises(BEMServerAPIValidationError):
        await call(admin.events.getall, site_id=site["id"], recurse_site_id=site["id"])

    series = (await call(admin.timeseries.create, {"name": unique("flow"), "campaign_id": campaign["id"],
                                                   "campaign_scope_id": scope["id"]})).data
    elsewhere = (await call(admin.timeseries.create, {"name": unique("flow"), "campaign_id": campaign["id"],
                                                      "campaign_scope_id": other_scope["id"]})).data
    by_event = (await call(admin.timeseries_by_events.create, {"event_id": event["id"],
                                                                "timeseries_id": series["id"]})).data
    assert by_event["event"]["level"] == "ERROR" and by_event["timeseries"]["name"] == series["name"]
    with pytest.raises(BEMServerAPIValidationError):
        await call(admin.timeseries_by_events.create, {"event_id": event["id"], "timeseries_id": elsewhere["id"]})
    assert [e["id"] for e in (await call(admin.events.getall, timeseries_id=series["id"])).data] == [event["id"]]
    listed = await call(admin.timeseries_by_events.getall, event_id=event["id"])
    assert [x["id"] for x in listed.data] == [by_event["id"]]

    current = await call(admin.events.getone, event["id"])
    updated = await call(admin.events.update, event["id"], {"category_id": category["id"], "level": "CRITICAL",
                                                            "source": "alarm rules", "description": "checked"},
                         etag=current.etag)
    assert updated.data["level"] == "CRITICAL" and updated.data["timestamp"] == event["timestamp"]
    with pytest.raises(BEMServerAPIConflictError):
        await call(admin.events.create, {"campaign_scope_id": scope["id"], "category_id": 2**31 - 1,
                                         "level": "INFO", "timestamp": "2026-12-01T00:00:00+00:00", "source": "x"})
    await call(admin.events.delete, event["id"], etag=updated.etag)
    with pytest.raises(BEMServerAPINotFoundError):
        await call(admin.timeseries_by_events.getone, by_event["id"])


async def test_the_gateways_internal_scope_users_endpoint_needs_a_service_token(evstack: Stack) -> None:
    """Without a service token for the gateway (or with one for another service, or signed with
    another key) the path is a 404, as if it did not exist on this public port; with one, the
    users whose group is linked to the scope."""
    stack = evstack
    admin = await call(stack.client, *ADMIN)
    _, scope = await campaign_with_scope(admin)
    user, _ = await member(stack, admin, scope_id=scope["id"])
    path = f"/internal/v1/bemserver/campaign_scopes/{scope['id']}/users"
    tokens = ServiceTokens(DEV_SERVICE_KEY, issuer="twin")
    stranger = ServiceTokens("another-key-" + "x" * 40, issuer="twin")
    for headers in ({}, tokens.headers("twin"), stranger.headers("gateway")):
        response = await stack.gateway.get(path, headers=headers)
        assert response.status == 404
    response = await stack.gateway.get(path, headers=tokens.headers("gateway"))
    assert response.status == 200 and (await response.json()) == {"ids": [user["id"]]}
    mine = await stack.gateway.get(f"/internal/v1/bemserver/users/{user['id']}/campaign_scopes",
                                   headers=tokens.headers("gateway"))
    assert (await mine.json()) == {"ids": [scope["id"]]}
