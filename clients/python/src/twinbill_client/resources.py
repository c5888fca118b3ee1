"""Entry points: one per API resource, each with the common functions it supports."""

from __future__ import annotations

from typing import Any, BinaryIO, Protocol

from twinbill_client.response import TwinbillAPIResponse


class Requester(Protocol):
    """What an entry point needs of the client: send one request (TwinbillAPIClient does)."""

    def request(self, method: str, path: str, *, authenticate: bool = True,
                **kwargs: Any) -> TwinbillAPIResponse:
        """Send one request and process its answer."""
        ...

    def download(self, path: str, *, out: BinaryIO, params: dict[str, Any]) -> TwinbillAPIResponse:
        """GET a file (an export) and stream it into `out`."""
        ...


class Resources:
    """Common functions (CF): getall, getone, create, update, delete on `/api/v1/<name>/`."""

    endpoint: str = ""

    def __init__(self, client: Requester) -> None:
        self._client = client

    def _uri(self, item_id: int | str) -> str:
        return f"{self.endpoint}{item_id}"

    def getall(self, **params: Any) -> TwinbillAPIResponse:
        """GET the list; filters and `page` / `page_size` go in as keywords."""
        return self._client.request("GET", self.endpoint, params=params)

    def getone(self, item_id: int | str) -> TwinbillAPIResponse:
        """GET one resource by id."""
        return self._client.request("GET", self._uri(item_id))

    def create(self, payload: dict[str, Any]) -> TwinbillAPIResponse:
        """POST a new resource."""
        return self._client.request("POST", self.endpoint, json=payload)

    def update(self, item_id: int | str, payload: dict[str, Any]) -> TwinbillAPIResponse:
        """PUT changes to one resource."""
        return self._client.request("PUT", self._uri(item_id), json=payload)

    def delete(self, item_id: int | str) -> TwinbillAPIResponse:
        """DELETE one resource."""
        return self._client.request("DELETE", self._uri(item_id))


def _resource(name: str) -> type[Resources]:
    return type(f"{name.title()}Resources", (Resources,), {"endpoint": f"/api/v1/{name}/"})


class IOResources:
    """Bulk import (seed 001's upload_sites_csv)."""

    def __init__(self, client: Requester) -> None:
        self._client = client

    def upload_sites_csv(self, csv_text: str) -> TwinbillAPIResponse:
        """Import sites and devices from CSV, all or nothing; row errors come back as a validation error."""
        return self._client.request("POST", "/api/v1/io/sites_csv", data=csv_text.encode(),
                                    headers={"Content-Type": "text/csv"})


class TaskResources:
    """Seed 000's billing tasks (meta envelope; `natrual_key` ids)."""

    def __init__(self, client: Requester) -> None:
        self._client = client

    def create(self, payload: dict[str, Any]) -> TwinbillAPIResponse:
        return self._client.request("POST", "/api/v1/scheduler/task/", json=payload)

    def getall(self, project_id: int, device_type: int = 0, **params: Any) -> TwinbillAPIResponse:
        return self._client.request("GET", "/api/v1/scheduler/tasks/",
                                    params={"project_id": project_id, "device_type": device_type, **params})

    def getone(self, natrual_key: str) -> TwinbillAPIResponse:
        return self._client.request("GET", f"/api/v1/scheduler/tasks/{natrual_key}/")

    def update(self, natrual_key: str, payload: dict[str, Any]) -> TwinbillAPIResponse:
        return self._client.request("PUT", f"/api/v1/scheduler/tasks/{natrual_key}/", json=payload)

    def delete(self, natrual_key: str) -> TwinbillAPIResponse:
        return self._client.request("DELETE", f"/api/v1/scheduler/tasks/{natrual_key}/")

    def set_status(self, natrual_key: str, *, enabled: bool) -> TwinbillAPIResponse:
        return self._client.request("PUT", f"/api/v1/scheduler/tasks/{natrual_key}/status/",
                                    json={"enabled": enabled})


class HistoryResources:
    """Seed 000's bill history."""

    def __init__(self, client: Requester) -> None:
        self._client = client

    def getall(self, project_id: int, device_type: int = 0, **params: Any) -> TwinbillAPIResponse:
        return self._client.request("GET", "/api/v1/scheduler/history/",
                                    params={"project_id": project_id, "device_type": device_type, **params})

    def by_time(self, project_id: int, *, start_date: str, end_date: str, device_type: int = 10,
                **params: Any) -> TwinbillAPIResponse:
        """History between two dates (device_type codes of this endpoint: 10 all, 0 electricity, 1 water)."""
        return self._client.request("GET", "/api/v1/scheduler/history/time/", params={
            "project_id": project_id, "device_type": device_type, "start_date": start_date,
            "end_date": end_date, **params})

    def export_csv(self, project_id: int, device_type: int = 0, *, out: BinaryIO,
                   **params: Any) -> TwinbillAPIResponse:
        """Every bill and credit note of getall's filters as CSV (UTF-8 with BOM), streamed into `out`;
        `data` is {"bytes", "filename"}."""
        return self._client.download("/api/v1/scheduler/history/", out=out, params={
            "project_id": project_id, "device_type": device_type, **params, "format": "csv"})

    def export_csv_by_time(self, project_id: int, *, start_date: str, end_date: str, out: BinaryIO,
                           device_type: int = 10, **params: Any) -> TwinbillAPIResponse:
        """by_time's bills and credit notes as CSV, streamed into `out`."""
        return self._client.download("/api/v1/scheduler/history/time/", out=out, params={
            "project_id": project_id, "device_type": device_type, "start_date": start_date,
            "end_date": end_date, **params, "format": "csv"})


class RunResources:
    """Billing runs of a project: counts, and which meters were skipped, estimated or failed, and why."""

    def __init__(self, client: Requester) -> None:
        self._client = client

    def getall(self, project_id: int, **params: Any) -> TwinbillAPIResponse:
        """Newest first; filters `task`, `device_type`; `page`, `page_size`."""
        return self._client.request("GET", "/api/v1/billing/runs/", params={"project_id": project_id, **params})

    def getone(self, run_id: str, **params: Any) -> TwinbillAPIResponse:
        """One run with a page of per-device outcomes (`outcome`, `page`, `page_size`)."""
        return self._client.request("GET", f"/api/v1/billing/runs/{run_id}", params=params)


class AuditResources:
    """The billing audit: who changed what, when and why (newest first)."""

    def __init__(self, client: Requester) -> None:
        self._client = client

    def getall(self, project_id: int, **params: Any) -> TwinbillAPIResponse:
        """Filters `entity`, `entity_id`, `action`; `page`, `page_size`."""
        return self._client.request("GET", "/api/v1/billing/audit/", params={"project_id": project_id, **params})


class InstanceResources:
    """Seed 002's digital-twin instances."""

    def __init__(self, client: Requester) -> None:
        self._client = client

    def getall(self, *, name: str = "", page: int = 1, offset: int = 10) -> TwinbillAPIResponse:
        return self._client.request("GET", "/dt/open/v1/instances",
                                    params={"name": name, "page": page, "offset": offset})

    def getone(self, *ids: int) -> TwinbillAPIResponse:
        return self._client.request("GET", "/dt/open/v1/instance", params={"ids": ",".join(map(str, ids))})

    def set_expected(self, instance_id: int, values: dict[int, str]) -> TwinbillAPIResponse:
        """Reverse control: desired values of State attributes, by attribute id."""
        body = [{"id": attr, "expectvalue": value} for attr, value in values.items()]
        return self._client.request("PATCH", f"/dt/open/v1/instance/{instance_id}", json=body)

    def attribute(self, attribute_id: int, **params: Any) -> TwinbillAPIResponse:
        """An attribute's value, or its time series (start, end, downsample, aggregator, timezone)."""
        return self._client.request("GET", f"/dt/open/v1/instance/attribute/{attribute_id}", params=params)


MANAGED = ("users", "projects", "products", "devices", "sites", "buildings", "storeys", "spaces",
           "zones", "residents", "tariffs")
RESOURCE_CLASSES: dict[str, type[Resources]] = {name: _resource(name) for name in MANAGED}
