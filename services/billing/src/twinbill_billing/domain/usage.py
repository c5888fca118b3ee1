"""Consumption from two register readings: multiplier, register rollover, backwards readings.

The rule lives in twinbill_common.registers, shared with the twin's energy breakdown so that a
breakdown and the bills count the same consumption."""

from __future__ import annotations

from twinbill_common.registers import BackwardsReading, Usage, compute_usage

__all__ = ["BackwardsReading", "Usage", "compute_usage"]
