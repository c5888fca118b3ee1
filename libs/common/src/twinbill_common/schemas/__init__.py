"""Versioned bus message schemas shared by every service."""

from twinbill_common.schemas.base import Message
from twinbill_common.schemas.billing import BillingJob, BillingJobFinished, BillIssued, RunBilling
from twinbill_common.schemas.commands import CommandOutcome, SetMeasurepoints
from twinbill_common.schemas.registry import (
    DataType,
    DeviceRecord,
    DeviceType,
    MeasurepointModel,
    ProductModel,
    RegistryChanged,
)
from twinbill_common.schemas.telemetry import DevicePoints, MeasurementsAccepted

__all__ = [
    "BillIssued",
    "BillingJob",
    "BillingJobFinished",
    "CommandOutcome",
    "DataType",
    "DevicePoints",
    "DeviceRecord",
    "DeviceType",
    "MeasurementsAccepted",
    "MeasurepointModel",
    "Message",
    "ProductModel",
    "RegistryChanged",
    "RunBilling",
    "SetMeasurepoints",
]
