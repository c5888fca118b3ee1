"""The sites-and-devices CSV (seed 001's upload_sites_csv): columns, row checks, file checks.

One row per device or per place. Columns (header row required, any order, unknown columns refused):
site, latitude, longitude, building, storey, zone, space, resident_name, resident_cellphone,
product_key, device_key, device_name, device_type, water_meter_kind, multiplier, register_max,
secret, gateway_product_key, gateway_device_key.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import pairwise
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from twinbill_common.http import validation_fields

COLUMNS = ("site", "latitude", "longitude", "building", "storey", "zone", "space",
           "resident_name", "resident_cellphone", "product_key", "device_key", "device_name",
           "device_type", "water_meter_kind", "multiplier", "register_max", "secret",
           "gateway_product_key", "gateway_device_key")
MAX_ROWS = 100_000
Name = Annotated[str, Field(max_length=128)]
Key = Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9_.\-]*$")]


class CsvRow(BaseModel):
    """One row, empty cells as absent."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    site: Name = ""
    latitude: Annotated[float, Field(ge=-90, le=90)] | None = None
    longitude: Annotated[float, Field(ge=-180, le=180)] | None = None
    building: Name = ""
    storey: Name = ""
    zone: Name = ""
    space: Name = ""
    resident_name: Name = ""
    resident_cellphone: Annotated[str, Field(max_length=32, pattern=r"^[0-9+\- ]*$")] = ""
    product_key: Key = ""
    device_key: Key = ""
    device_name: Name = ""
    device_type: Annotated[int, Field(ge=1, le=2)] | None = None
    water_meter_kind: Literal["tap", "purified"] | None = None
    multiplier: Annotated[Decimal, Field(gt=0, max_digits=30, decimal_places=10)] | None = None
    register_max: Annotated[Decimal, Field(gt=0, max_digits=30, decimal_places=10)] | None = None
    secret: Annotated[str, Field(max_length=128)] = ""
    gateway_product_key: Key = ""
    gateway_device_key: Key = ""

    @model_validator(mode="after")
    def _consistent(self) -> CsvRow:
        path = [("site", self.site), ("building", self.building), ("storey", self.storey),
                ("space", self.space)]
        for (upper, upper_value), (lower, lower_value) in pairwise(path):
            if lower_value and not upper_value:
                raise ValueError(f"{lower} needs a {upper}")
        if self.zone and not self.space:
            raise ValueError("zone needs a space")
        if (self.resident_name or self.resident_cellphone) and not (self.space and self.resident_name):
            raise ValueError("a resident needs resident_name and a space")
        if bool(self.product_key) != bool(self.device_key):
            raise ValueError("product_key and device_key go together")
        if not self.site and not self.device_key:
            raise ValueError("a row needs a site or a device")
        if bool(self.gateway_product_key) != bool(self.gateway_device_key):
            raise ValueError("gateway_product_key and gateway_device_key go together")
        if self.gateway_device_key and not self.device_key:
            raise ValueError("a gateway is given for a row without a device")
        if self.water_meter_kind and self.device_type not in (None, 1):
            raise ValueError("water_meter_kind is only for water meters (device_type 1)")
        if self.secret and len(self.secret) < 8:
            raise ValueError("secret must have at least 8 characters")
        return self

    @property
    def gateway(self) -> tuple[str, str] | None:
        """The gateway's (productKey, deviceKey), if the row names one."""
        return (self.gateway_product_key, self.gateway_device_key) if self.gateway_device_key else None


@dataclass
class ParsedFile:
    """Rows by file line number, and every problem found, keyed "<line>.<column>"."""

    rows: dict[int, CsvRow] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)

    def add(self, line: int, column: str, reason: str) -> None:
        """Record one problem of one row."""
        self.errors.setdefault(f"{line}.{column}", []).append(reason)


def parse_csv(text: str) -> ParsedFile:
    """Parse and check a whole file; nothing is imported unless `errors` stays empty."""
    parsed = ParsedFile()
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [name.strip() for name in (reader.fieldnames or [])]
    unknown = [name for name in header if name not in COLUMNS]
    if not header:
        parsed.add(1, "_header", "the file is empty; a header row is required")
        return parsed
    if unknown:
        parsed.add(1, "_header", f"unknown columns: {', '.join(unknown)}; allowed: {', '.join(COLUMNS)}")
        return parsed
    reader.fieldnames = header
    seen_devices: dict[tuple[str, str], int] = {}
    for record in reader:
        line = reader.line_num
        if len(parsed.rows) >= MAX_ROWS:
            parsed.add(line, "_file", f"more than {MAX_ROWS} rows")
            break
        if None in record:
            parsed.add(line, "_row", "more cells than header columns")
            continue
        cells = {name: value for name, value in record.items() if value not in (None, "")}
        try:
            row = CsvRow.model_validate(cells)
        except ValidationError as err:
            for name, reasons in validation_fields(err).items():
                for reason in reasons:
                    parsed.add(line, name.removeprefix("_schema") or "_row", reason.removeprefix("Value error, "))
            continue
        if row.device_key:
            key = (row.product_key, row.device_key)
            if key in seen_devices:
                parsed.add(line, "device_key", f"repeats the device of line {seen_devices[key]}")
                continue
            seen_devices[key] = line
        parsed.rows[line] = row
    return parsed
