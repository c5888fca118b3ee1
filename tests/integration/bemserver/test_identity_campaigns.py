"""The unmodified bemserver-api-client 0.22 against twinbill: about and its version check,
tokens, users, user groups and their links, campaigns (twin projects), campaign scopes, and the
permissions a user group gives on campaigns and scopes."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from bemserver_api_client import BEMServerApiClient
from bemserver_api_client.exceptions import (
    BEMServerAPIAuthorizationError,
    BEMServerAPIConflictError,
    BEMServerAPINotFoundError,
    BEMServerAPIPreconditionError,
    BEMServerAPIValidationError,
)

from tests.integration.bemserver.conftest import ADMIN, Stack, call, raw, unique


async def test_about_reports_a_version_the_client_accepts_and_the_twinbill_release(bem: Stack) -> None:
    """auto_check passes (>=0.26.0,<0.27.0) and /about/ names the twinbill version serving it."""
    client = await call(bem.client, *ADMIN)
    about = await call(client.about.getall)
    assert about.data["versions"]["bemserver_api"] == "0.26.0"
    assert about.data["versions"]["twinbill"]
    assert about.etag


async def test_tokens_sign_in_and_refresh_as_bemserver(bem: Stack, admin: Any) -> None:
    """get_tokens gives a working Bearer pair, refresh gives a new pair, a wrong password is
    {"status": "failure"}, and an access token is refused for refresh with `invalid_token`."""
    tokens = (await call(admin.auth.get_tokens, *ADMIN)).data
    assert tokens["status"] == "success"
    bearer = BEMServerApiClient.make_bearer_token_auth(tokens["access_token"], tokens["refresh_token"])
    client = await call(BEMServerApiClient, bem.host, use_ssl=False, authentication_method=bearer, auto_check=True)
    assert ADMIN[0] in [u["email"] for u in (await call(client.users.getall)).data]
    refreshed = (await call(client.auth.refresh_tokens)).data
    assert refreshed["status"] == "success" and refreshed["access_token"]
    assert (await call(admin.auth.get_tokens, ADMIN[0], "wrong")).data == {"status": "failure"}
    status, body, _ = await raw(bem, "POST", "/auth/token/refresh",
                                headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert (status, body["errors"]) == (401, {"authentication": "invalid_token"})
    status, body, _ = await raw(bem, "GET", "/users/", auth=None)
    assert (status, body["errors"]) == (401, {"authentication": "missing_authentication"})


async def test_users_etags_set_admin_and_set_active(bem: Stack, admin: Any) -> None:
    """Users follow BEMServer: created active and not admin, PUT needs the current ETag (428
    without, 412 stale), set_admin / set_active, and a deactivated user is refused."""
    email = f"{unique('user')}@example.test"
    created = await call(admin.users.create, {"name": "Energy manager", "email": email, "password": "pw-123456"})
    user = created.data
    assert created.status_code == 201
    assert user["is_admin"] is False and user["is_active"] is True and "password" not in user
    one = await call(admin.users.getone, user["id"])
    with pytest.raises(BEMServerAPIPreconditionError) as missing:
        await call(admin.users.update, user["id"], {"name": "x", "email": email, "password": "pw-123456"})
    assert missing.value.status_code == 428
    updated = await call(admin.users.update, user["id"], {"name": "Manager", "email": email,
                                                           "password": "pw-654321"}, etag=one.etag)
    assert updated.data["name"] == "Manager"
    with pytest.raises(BEMServerAPIPreconditionError) as stale:
        await call(admin.users.update, user["id"], {"name": "y", "email": email, "password": "pw-1"}, etag=one.etag)
    assert stale.value.status_code == 412
    current = await call(admin.users.getone, user["id"])
    await call(admin.users.set_admin, user["id"], True, etag=current.etag)
    assert (await call(admin.users.getone, user["id"])).data["is_admin"] is True
    current = await call(admin.users.getone, user["id"])
    await call(admin.users.set_active, user["id"], False, etag=current.etag)
    inactive = await call(bem.client, email, "pw-654321")
    with pytest.raises(BEMServerAPIAuthorizationError):
        await call(inactive.users.getall)
    assert (await call(admin.auth.get_tokens, email, "pw-654321")).data == {"status": "failure"}


async def test_validation_errors_name_each_field_in_flask_smorest_shape(bem: Stack, admin: Any) -> None:
    """A bad body is a 422 {"code", "status", "errors": {"json": {field: [reason]}}}."""
    with pytest.raises(BEMServerAPIValidationError) as bad:
        await call(admin.users.create, {"name": "", "email": "not-an-email", "colour": "red"})
    assert bad.value.errors == {"name": ["Length must be between 1 and 80."],
                                "email": ["Not a valid email address."],
                                "password": ["Missing data for required field."], "colour": ["Unknown field."]}
    status, body, _ = await raw(bem, "POST", "/campaigns/", json={"name": "c", "timezone": "Mars/Olympus"})
    assert status == 422
    assert body["code"] == 422 and body["status"] == "Unprocessable Entity" and "message" not in body
    assert list(body["errors"]["json"]) == ["timezone"]


async def test_campaigns_are_twin_projects_with_their_time_zone(bem: Stack, admin: Any) -> None:
    """A campaign made through /bemserver is a twin project (same id, same zone) and back."""
    name = unique("campaign")
    campaign = (await call(admin.campaigns.create, {"name": name, "timezone": "Europe/Paris",
                                                    "description": "offices",
                                                    "start_time": "2026-01-01T00:00:00+00:00"})).data
    assert campaign["timezone"] == "Europe/Paris" and campaign["description"] == "offices"
    project = await bem.twin.get(f"/api/v1/projects/{campaign['id']}")
    assert (await project.json())["timezone"] == "Europe/Paris"
    one = await call(admin.campaigns.getone, campaign["id"])
    changed = await call(admin.campaigns.update, campaign["id"], {"name": name, "timezone": "Asia/Shanghai"},
                         etag=one.etag)
    assert changed.data["timezone"] == "Asia/Shanghai" and "description" not in changed.data
    assert [c["id"] for c in (await call(admin.campaigns.getall, in_name=name[-8:])).data] == [campaign["id"]]
    scope = (await call(admin.campaign_scopes.create, {"name": "meters", "campaign_id": campaign["id"]})).data
    assert scope["campaign_id"] == campaign["id"]
    with pytest.raises(BEMServerAPIConflictError):
        await call(admin.campaign_scopes.create, {"name": "meters", "campaign_id": campaign["id"]})
    with pytest.raises(BEMServerAPIConflictError):
        await call(admin.campaign_scopes.create, {"name": "x", "campaign_id": 2**31 - 1})
    with pytest.raises(BEMServerAPINotFoundError):
        await call(admin.campaigns.getone, 2**31 - 1)
    one = await call(admin.campaign_scopes.getone, scope["id"])
    await call(admin.campaign_scopes.delete, scope["id"], etag=one.etag)
    with pytest.raises(BEMServerAPINotFoundError):
        await call(admin.campaign_scopes.getone, scope["id"])


async def test_user_group_permissions_scope_what_a_user_reads(bem: Stack, admin: Any) -> None:
    """A user reads the campaigns their groups are given, gets 403 on another's, and cannot write."""
    mine = (await call(admin.campaigns.create, {"name": unique("mine"), "timezone": "UTC"})).data
    theirs = (await call(admin.campaigns.create, {"name": unique("theirs"), "timezone": "UTC"})).data
    email = f"{unique('reader')}@example.test"
    user = (await call(admin.users.create, {"name": "Reader", "email": email, "password": "reader-pw"})).data
    group = (await call(admin.user_groups.create, {"name": unique("group")})).data
    await call(admin.user_by_user_groups.create, {"user_id": user["id"], "user_group_id": group["id"]})
    link = (await call(admin.user_groups_by_campaigns.create,
                       {"user_group_id": group["id"], "campaign_id": mine["id"]})).data
    assert link["campaign_id"] == mine["id"]
    with pytest.raises(BEMServerAPIConflictError):
        await call(admin.user_groups_by_campaigns.create, {"user_group_id": group["id"], "campaign_id": 2**31 - 1})
    reader = await call(bem.client, email, "reader-pw")
    assert [c["id"] for c in (await call(reader.campaigns.getall)).data] == [mine["id"]]
    assert (await call(reader.campaigns.getone, mine["id"])).data["name"] == mine["name"]
    with pytest.raises(BEMServerAPIAuthorizationError):
        await call(reader.campaigns.getone, theirs["id"])
    with pytest.raises(BEMServerAPIAuthorizationError):
        await call(reader.campaigns.create, {"name": unique("nope"), "timezone": "UTC"})
    assert [u["id"] for u in (await call(reader.users.getall)).data] == [user["id"]]
    assert [g["id"] for g in (await call(reader.user_groups.getall)).data] == [group["id"]]
    with pytest.raises(BEMServerAPIAuthorizationError):
        await call(reader.users.getone, 1)
    scope = (await call(admin.campaign_scopes.create, {"name": "s", "campaign_id": theirs["id"]})).data
    await call(admin.user_groups_by_campaign_scopes.create,
               {"user_group_id": group["id"], "campaign_scope_id": scope["id"]})
    links = (await call(reader.user_groups_by_campaign_scopes.getall)).data
    assert [x["campaign_scope_id"] for x in links] == [scope["id"]]


@pytest.mark.parametrize("target", ["/bemserver/../internal/v1/devices", "/bemserver/%2e%2e/internal/v1/devices",
                                    "/bemserver/sites/..%2F..%2Finternal%2Fv1%2Fdevices", "/bemserver/./campaigns/"])
async def test_dot_segments_never_reach_another_twin_path(bem: Stack, target: str) -> None:
    """A path that would normalise elsewhere on the twin (its /internal/ API) is refused."""
    assert bem.gateway.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", bem.gateway.port)
    auth = aiohttp.encode_basic_auth(*ADMIN)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: gw\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    answer = (await asyncio.wait_for(reader.read(), timeout=10)).decode(errors="replace")
    writer.close()
    await writer.wait_closed()
    assert answer.split()[1] in ("400", "404") and "secret" not in answer


async def test_groups_and_links_are_updated_and_deleted_with_etags(bem: Stack, admin: Any) -> None:
    """A group is renamed and deleted (with its links) under If-Match; a user is deleted."""
    user = (await call(admin.users.create, {"name": "Temp", "email": f"{unique('tmp')}@example.test",
                                            "password": "temp-password"})).data
    group = (await call(admin.user_groups.create, {"name": unique("team")})).data
    link = (await call(admin.user_by_user_groups.create, {"user_id": user["id"], "user_group_id": group["id"]})).data
    with pytest.raises(BEMServerAPIConflictError):
        await call(admin.user_by_user_groups.create, {"user_id": user["id"], "user_group_id": group["id"]})
    one = await call(admin.user_groups.getone, group["id"])
    renamed = await call(admin.user_groups.update, group["id"], {"name": group["name"] + "-2"}, etag=one.etag)
    assert renamed.data == {"id": group["id"], "name": group["name"] + "-2"}
    assert [x["id"] for x in (await call(admin.user_by_user_groups.getall, user_id=user["id"])).data] == [link["id"]]
    with pytest.raises(BEMServerAPIPreconditionError):
        await call(admin.user_groups.delete, group["id"], etag=one.etag)
    await call(admin.user_groups.delete, group["id"], etag=(await call(admin.user_groups.getone, group["id"])).etag)
    with pytest.raises(BEMServerAPINotFoundError):
        await call(admin.user_by_user_groups.getone, link["id"])
    await call(admin.users.delete, user["id"], etag=(await call(admin.users.getone, user["id"])).etag)
    with pytest.raises(BEMServerAPINotFoundError):
        await call(admin.users.getone, user["id"])
    status, _, headers = await raw(bem, "GET", "/campaigns/")
    etag = headers["ETag"]
    status, _, _ = await raw(bem, "GET", "/campaigns/", headers={"If-None-Match": etag})
    assert status == 304
