"""Sites, buildings, storeys, spaces and zones through the BEMServer client are the registry's
own rows: what one path writes the other (/api/v1/<resource>/) reads, and a user reads only
their campaigns' structure."""

from __future__ import annotations

from typing import Any

import pytest
from bemserver_api_client.exceptions import (
    BEMServerAPIAuthorizationError,
    BEMServerAPIConflictError,
    BEMServerAPIPreconditionError,
    BEMServerAPIValidationError,
)

from tests.integration.bemserver.conftest import Stack, call, unique


async def test_site_hierarchy_is_the_registry_structure(bem: Stack, admin: Any) -> None:
    """Every level created through /bemserver shows in /api/v1 with the campaign as its project,
    updates need the ETag, and a site still holding buildings is not deleted (409)."""
    campaign = (await call(admin.campaigns.create, {"name": unique("tower"), "timezone": "Europe/Paris"})).data
    site = (await call(admin.sites.create, {"name": "HQ", "campaign_id": campaign["id"], "latitude": 48.85,
                                            "longitude": 2.35})).data
    building = (await call(admin.buildings.create, {"name": "A", "site_id": site["id"], "ifc_id": "ifc-a"})).data
    storey = (await call(admin.storeys.create, {"name": "L1", "building_id": building["id"]})).data
    space = (await call(admin.spaces.create, {"name": "101", "storey_id": storey["id"]})).data
    zone = (await call(admin.zones.create, {"name": "North", "campaign_id": campaign["id"]})).data
    assert building == {"id": building["id"], "name": "A", "site_id": site["id"], "ifc_id": "ifc-a"}
    twin_space = await (await bem.twin.get(f"/api/v1/spaces/{space['id']}")).json()
    assert twin_space["project_id"] == campaign["id"] and twin_space["storey_id"] == storey["id"]
    twin_zone = await (await bem.twin.get(f"/api/v1/zones/{zone['id']}")).json()
    assert twin_zone["name"] == "North"
    assert [s["id"] for s in (await call(admin.sites.getall, campaign_id=campaign["id"])).data] == [site["id"]]
    assert [s["id"] for s in (await call(admin.spaces.getall, building_id=building["id"])).data] == [space["id"]]
    # campaign_id on levels without that field is their project (schemathesis found a 500 here)
    for collection, item in ((admin.buildings, building), (admin.storeys, storey), (admin.spaces, space)):
        assert [x["id"] for x in (await call(collection.getall, campaign_id=campaign["id"])).data] == [item["id"]]
        assert (await call(collection.getall, campaign_id=campaign["id"] + 10**6)).data == []
    one = await call(admin.sites.getone, site["id"])
    with pytest.raises(BEMServerAPIPreconditionError):
        await call(admin.sites.update, site["id"], {"name": "HQ2"}, etag='"stale"')
    renamed = await call(admin.sites.update, site["id"], {"name": "HQ2", "latitude": 45.0}, etag=one.etag)
    assert renamed.data["name"] == "HQ2" and renamed.data["latitude"] == 45.0 and "longitude" not in renamed.data
    assert (await (await bem.twin.get(f"/api/v1/sites/{site['id']}")).json())["name"] == "HQ2"
    one = await call(admin.campaigns.getone, campaign["id"])
    with pytest.raises(BEMServerAPIConflictError):
        await call(admin.campaigns.delete, campaign["id"], etag=one.etag)


async def test_structure_of_another_campaign_is_forbidden(bem: Stack, admin: Any) -> None:
    """A user of one campaign lists only its sites and gets 403 on another campaign's."""
    mine = (await call(admin.campaigns.create, {"name": unique("mine"), "timezone": "UTC"})).data
    theirs = (await call(admin.campaigns.create, {"name": unique("theirs"), "timezone": "UTC"})).data
    my_site = (await call(admin.sites.create, {"name": "mine", "campaign_id": mine["id"]})).data
    their_site = (await call(admin.sites.create, {"name": "theirs", "campaign_id": theirs["id"]})).data
    email = f"{unique('site-reader')}@example.test"
    user = (await call(admin.users.create, {"name": "R", "email": email, "password": "reader-pw"})).data
    group = (await call(admin.user_groups.create, {"name": unique("g")})).data
    await call(admin.user_by_user_groups.create, {"user_id": user["id"], "user_group_id": group["id"]})
    await call(admin.user_groups_by_campaigns.create, {"user_group_id": group["id"], "campaign_id": mine["id"]})
    reader = await call(bem.client, email, "reader-pw")
    assert [s["id"] for s in (await call(reader.sites.getall)).data] == [my_site["id"]]
    with pytest.raises(BEMServerAPIAuthorizationError):
        await call(reader.sites.getone, their_site["id"])
    with pytest.raises(BEMServerAPIAuthorizationError):
        await call(reader.sites.create, {"name": "x", "campaign_id": mine["id"]})


async def test_structural_element_properties_and_their_values(bem: Stack, admin: Any) -> None:
    """A property defined once, used by sites and spaces, valued per element with its type
    checked (422 on `value`), shown nested as BEMServer does."""
    campaign = (await call(admin.campaigns.create, {"name": unique("props"), "timezone": "UTC"})).data
    site = (await call(admin.sites.create, {"name": "S", "campaign_id": campaign["id"]})).data
    area = (await call(admin.structural_element_properties.create,
                       {"name": unique("Area"), "value_type": "float", "unit_symbol": "m2"})).data
    assert area["value_type"] == "float"
    site_area = (await call(admin.site_properties.create, {"structural_element_property_id": area["id"]})).data
    assert site_area["structural_element_property"] == {"name": area["name"], "value_type": "float",
                                                        "unit_symbol": "m2"}
    value = (await call(admin.site_property_data.create,
                        {"site_id": site["id"], "site_property_id": site_area["id"], "value": "1250.5"})).data
    assert value["value"] == "1250.5"
    assert value["site_property"]["structural_element_property_id"] == area["id"]
    with pytest.raises(BEMServerAPIValidationError) as wrong:
        await call(admin.site_property_data.update, value["id"], {"value": "large"},
                   etag=(await call(admin.site_property_data.getone, value["id"])).etag)
    assert wrong.value.errors == {"value": ["Invalid type."]}
    listed = await call(admin.site_property_data.getall, site_id=site["id"])
    assert [v["value"] for v in listed.data] == ["1250.5"]
    with pytest.raises(BEMServerAPIConflictError):
        await call(admin.site_properties.create, {"structural_element_property_id": area["id"]})


async def test_timeseries_properties_and_links_to_the_structure(bem: Stack, admin: Any) -> None:
    """Series carry typed properties and link to sites ... zones of their own campaign only."""
    campaign = (await call(admin.campaigns.create, {"name": unique("links"), "timezone": "UTC"})).data
    other = (await call(admin.campaigns.create, {"name": unique("other"), "timezone": "UTC"})).data
    scope = (await call(admin.campaign_scopes.create, {"name": "s", "campaign_id": campaign["id"]})).data
    series = (await call(admin.timeseries.create, {"name": "T", "campaign_id": campaign["id"],
                                                   "campaign_scope_id": scope["id"]})).data
    site = (await call(admin.sites.create, {"name": "S", "campaign_id": campaign["id"]})).data
    zone = (await call(admin.zones.create, {"name": "Z", "campaign_id": campaign["id"]})).data
    foreign_site = (await call(admin.sites.create, {"name": "F", "campaign_id": other["id"]})).data
    link = (await call(admin.timeseries_by_sites.create, {"timeseries_id": series["id"], "site_id": site["id"]})).data
    assert link["site"] == {"name": "S", "campaign_id": campaign["id"]}
    await call(admin.timeseries_by_zones.create, {"timeseries_id": series["id"], "zone_id": zone["id"]})
    building = (await call(admin.buildings.create, {"name": "B", "site_id": site["id"]})).data
    inner = (await call(admin.timeseries.create, {"name": "Inner", "campaign_id": campaign["id"],
                                                  "campaign_scope_id": scope["id"]})).data
    await call(admin.timeseries_by_buildings.create, {"timeseries_id": inner["id"], "building_id": building["id"]})
    assert [t["id"] for t in (await call(admin.timeseries.getall, site_id=site["id"])).data] == [series["id"]]
    assert [t["id"] for t in (await call(admin.timeseries.getall, recurse_site_id=site["id"])).data] == \
        [series["id"], inner["id"]]
    assert [t["id"] for t in (await call(admin.timeseries.getall, zone_id=zone["id"])).data] == [series["id"]]
    with pytest.raises(BEMServerAPIValidationError):
        await call(admin.timeseries_by_sites.create, {"timeseries_id": series["id"], "site_id": foreign_site["id"]})
    maximum = (await call(admin.timeseries_properties.create, {"name": unique("Max"), "value_type": "integer"})).data
    data = (await call(admin.timeseries_property_data.create,
                       {"timeseries_id": series["id"], "property_id": maximum["id"], "value": "42"})).data
    assert data["value"] == "42"
    with pytest.raises(BEMServerAPIValidationError):
        await call(admin.timeseries_property_data.create,
                   {"timeseries_id": series["id"], "property_id": maximum["id"], "value": "4.2"})
