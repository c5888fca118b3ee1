"""Weather, pure: temperature units, and the Oikolab answer BEMServer's weather client reads
(`{"data": "<JSON text of {index: epoch seconds, columns: ["temperature (degC)", ...], data: rows}>"}`)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

# BEMServer's names of its weather parameters at Oikolab, with the unit Oikolab gives
OIKOLAB_PARAMETERS = {
    "AIR_TEMPERATURE": ("temperature", "°C"), "DEWPOINT_TEMPERATURE": ("dewpoint_temperature", "°C"),
    "WETBULB_TEMPERATURE": ("wetbulb_temperature", "°C"), "WIND_SPEED": ("wind_speed", "m/s"),
    "WIND_DIRECTION": ("wind_direction", "degree"),
    "SURFACE_DIRECT_SOLAR_RADIATION": ("surface_direct_solar_radiation", "W/m^2"),
    "SURFACE_DIFFUSE_SOLAR_RADIATION": ("surface_diffuse_solar_radiation", "W/m^2"),
    "SURFACE_SOLAR_RADIATION": ("surface_solar_radiation", "W/m^2"),
    "DIRECT_NORMAL_SOLAR_RADIATION": ("direct_normal_solar_radiation", "W/m^2"),
    "RELATIVE_HUMIDITY": ("relative_humidity", "1"), "SURFACE_PRESSURE": ("surface_pressure", "Pa"),
    "TOTAL_PRECIPITATION": ("total_precipitation", "mm"),
}
_CELSIUS = {"°C", "degC", "celsius", "C"}
_KELVIN = {"K", "kelvin"}
_FAHRENHEIT = {"°F", "degF", "fahrenheit", "F"}


class WeatherAnswerError(ValueError):
    """The provider's answer is not what its API documents."""


def is_temperature(unit: str) -> bool:
    """Whether the unit is one of the temperature units converted here."""
    return unit in _CELSIUS | _KELVIN | _FAHRENHEIT


def convert_temperature(value: float, source: str, target: str) -> float:
    """A temperature from one of °C, K, °F to another (ValueError for other units)."""
    if not (is_temperature(source) and is_temperature(target)):
        raise ValueError(f"cannot convert {source!r} to {target!r}")
    celsius = value if source in _CELSIUS else value - 273.15 if source in _KELVIN else (value - 32) * 5 / 9
    return celsius if target in _CELSIUS else celsius + 273.15 if target in _KELVIN else celsius * 9 / 5 + 32


def oikolab_end(end: datetime) -> datetime:
    """Oikolab's inclusive hourly end for an exclusive `end` (BEMServer: floor to the hour, and
    one hour earlier when `end` is on the hour)."""
    floored = end.replace(minute=0, second=0, microsecond=0)
    return floored - timedelta(hours=1) if floored == end else floored


def read_oikolab(answer: Any, parameters: list[str]) -> dict[str, dict[int, float]]:
    """Per BEMServer parameter name, {epoch ms: value} from an Oikolab answer."""
    try:
        inner = json.loads(answer["data"])
        index = [int(t) * 1000 for t in inner["index"]]
        columns = [str(c).split()[0] for c in inner["columns"]]
        rows = inner["data"]
        found: dict[str, dict[int, float]] = {}
        for name in parameters:
            column = columns.index(OIKOLAB_PARAMETERS[name][0])
            found[name] = {ts: float(row[column]) for ts, row in zip(index, rows, strict=True)
                           if row[column] is not None}
    except (TypeError, KeyError, ValueError, IndexError) as err:
        raise WeatherAnswerError(f"Error in weather API response: {type(err).__name__}: {err}") from err
    return found
