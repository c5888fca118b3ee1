"""Entry points of the BEMServer-compatible API (`/bemserver`, issue 12) in the project's own
client: `client.bem.<resource>` for campaigns, scopes, structure, time series and their data,
users and groups. PUT and DELETE send the item's ETag (fetched first when not given)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from twinbill_client.response import TwinbillAPIResponse

if TYPE_CHECKING:
    from twinbill_client.client import TwinbillAPIClient

PREFIX = "/bemserver"
CHUNK = 256 * 1024
Progress = Callable[[int, int | None], None]  # (bytes so far, total bytes or None)

COLLECTIONS = (
    "users", "user_groups", "users_by_user_groups", "user_groups_by_campaigns", "user_groups_by_campaign_scopes",
    "campaigns", "campaign_scopes", "sites", "buildings", "storeys", "spaces", "zones", "timeseries",
    "timeseries_data_states", "structural_element_properties", "timeseries_properties",
    "timeseries_property_data", *(f"{level}_properties" for level in ("site", "building", "storey", "space", "zone")),
    *(f"{level}_property_data" for level in ("site", "building", "storey", "space", "zone")),
    *(f"timeseries_by_{level}s" for level in ("site", "building", "storey", "space", "zone")),
)


class BemCollection:
    """One BEMServer collection: getall, getone, create, update, delete (ETag handled)."""

    def __init__(self, client: TwinbillAPIClient, name: str) -> None:
        self._client = client
        self.endpoint = f"{PREFIX}/{name}/"

    def getall(self, **params: Any) -> TwinbillAPIResponse:
        """GET the list (filters, and `page` / `page_size` where BEMServer pages)."""
        return self._client.request("GET", self.endpoint, params=params)

    def getone(self, item_id: int) -> TwinbillAPIResponse:
        """GET one item; its `etag` is what update and delete send back."""
        return self._client.request("GET", f"{self.endpoint}{item_id}")

    def create(self, payload: dict[str, Any]) -> TwinbillAPIResponse:
        """POST a new item."""
        return self._client.request("POST", self.endpoint, json=payload)

    def _etag(self, item_id: int, etag: str | None) -> str:
        return etag or self.getone(item_id).etag or ""

    def update(self, item_id: int, payload: dict[str, Any], etag: str | None = None) -> TwinbillAPIResponse:
        """PUT the item (If-Match: `etag`, or the current one)."""
        return self._client.request("PUT", f"{self.endpoint}{item_id}", json=payload,
                                    headers={"If-Match": self._etag(item_id, etag)})

    def delete(self, item_id: int, etag: str | None = None) -> TwinbillAPIResponse:
        """DELETE the item (If-Match: `etag`, or the current one)."""
        return self._client.request("DELETE", f"{self.endpoint}{item_id}",
                                    headers={"If-Match": self._etag(item_id, etag)})


def _chunks(stream: BinaryIO, total: int | None, progress: Progress | None) -> Iterator[bytes]:
    sent = 0
    while chunk := stream.read(CHUNK):
        sent += len(chunk)
        if progress is not None:
            progress(sent, total)
        yield chunk


class TimeseriesData:
    """`/timeseries_data/`: upload and download (JSON or CSV, by ids or by names in a campaign),
    aggregates, stats, delete; files are streamed, with an optional progress callback."""

    def __init__(self, client: TwinbillAPIClient) -> None:
        self._client = client

    @staticmethod
    def _base(campaign_id: int | None) -> str:
        return f"{PREFIX}/timeseries_data/" + (f"campaign/{campaign_id}/" if campaign_id is not None else "")

    def upload(self, data_state: int, data: dict[str, Any], *, campaign_id: int | None = None) -> TwinbillAPIResponse:
        """Upload JSON `{series id (or name with campaign_id): {timestamp: value}}`."""
        return self._client.request("POST", self._base(campaign_id), params={"data_state": data_state}, json=data)

    def upload_file(self, data_state: int, path: str | Path, *, campaign_id: int | None = None,
                    progress: Progress | None = None) -> TwinbillAPIResponse:
        """Upload a CSV (`Datetime,<series>...`) or, for a .json file, JSON, streamed from disk."""
        path = Path(path)
        kind = "application/json" if path.suffix.lower() == ".json" else "text/csv"
        total = os.path.getsize(path)
        with path.open("rb") as stream:
            return self._client.request("POST", self._base(campaign_id), params={"data_state": data_state},
                                        data=_chunks(stream, total, progress), headers={"Content-Type": kind})

    def _query(self, start_time: str, end_time: str, data_state: int, timeseries: list[int] | list[str],
               **params: Any) -> dict[str, Any]:
        return {"start_time": start_time, "end_time": end_time, "data_state": data_state,
                "timeseries": timeseries, **params}

    def download(self, start_time: str, end_time: str, data_state: int, timeseries: list[int] | list[str], *,
                 campaign_id: int | None = None, timezone: str = "UTC") -> TwinbillAPIResponse:
        """JSON `{series: {timestamp: value}}` of several series."""
        return self._client.request("GET", self._base(campaign_id), params=self._query(
            start_time, end_time, data_state, timeseries, timezone=timezone))

    def download_file(self, path: str | Path, start_time: str, end_time: str, data_state: int,
                      timeseries: list[int] | list[str], *, campaign_id: int | None = None, timezone: str = "UTC",
                      csv: bool = True, progress: Progress | None = None) -> int:
        """Stream a download to `path` (CSV, or JSON with csv=False); returns the bytes written."""
        accept = "text/csv" if csv else "application/json"
        response = self._client.stream("GET", self._base(campaign_id), headers={"Accept": accept},
                                       params=self._query(start_time, end_time, data_state, timeseries,
                                                          timezone=timezone))
        written = 0
        total = int(response.headers["Content-Length"]) if "Content-Length" in response.headers else None
        with response, Path(path).open("wb") as out:
            for chunk in response.iter_content(CHUNK):
                out.write(chunk)
                written += len(chunk)
                if progress is not None:
                    progress(written, total)
        return written

    def download_aggregate(self, start_time: str, end_time: str, data_state: int, timeseries: list[int] | list[str],
                           *, campaign_id: int | None = None, aggregation: str = "avg", bucket_width_value: int = 1,
                           bucket_width_unit: str = "hour", timezone: str = "UTC") -> TwinbillAPIResponse:
        """One value per bucket and series."""
        return self._client.request("GET", self._base(campaign_id) + "aggregate", params=self._query(
            start_time, end_time, data_state, timeseries, aggregation=aggregation,
            bucket_width_value=bucket_width_value, bucket_width_unit=bucket_width_unit, timezone=timezone))

    def get_stats(self, data_state: int, timeseries: list[int] | list[str], *, campaign_id: int | None = None,
                  timezone: str = "UTC") -> TwinbillAPIResponse:
        """First / last timestamps, count, min, max, avg, stddev per series."""
        return self._client.request("GET", self._base(campaign_id) + "stats", params={
            "data_state": data_state, "timeseries": timeseries, "timezone": timezone})

    def delete(self, start_time: str, end_time: str, data_state: int, timeseries: list[int] | list[str], *,
               campaign_id: int | None = None) -> TwinbillAPIResponse:
        """Delete the points of [start_time, end_time)."""
        return self._client.request("DELETE", self._base(campaign_id), params=self._query(
            start_time, end_time, data_state, timeseries))


class BemServer:
    """`client.bem`: every BEMServer collection by name, `timeseries_data`, `about`."""

    def __init__(self, client: TwinbillAPIClient) -> None:
        self._client = client
        self.timeseries_data = TimeseriesData(client)
        for name in COLLECTIONS:
            setattr(self, name, BemCollection(client, name))

    def __getattr__(self, name: str) -> BemCollection:
        raise AttributeError(f"no BEMServer collection {name!r} (one of: {', '.join(COLLECTIONS)})")

    def about(self) -> TwinbillAPIResponse:
        """The BEMServer API version served, and the twinbill version serving it."""
        return self._client.request("GET", f"{PREFIX}/about/")

    def get_tokens(self, email: str, password: str) -> TwinbillAPIResponse:
        """BEMServer's token pair (the same tokens as /api/v1/auth/token)."""
        return self._client.request("POST", f"{PREFIX}/auth/token", json={"email": email, "password": password},
                                    authenticate=False)
