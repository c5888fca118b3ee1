"""The twin's bus consumers (decode -> domain -> effects -> ack/nack): the telemetry consumer
(samples, rollups, current values), the alarm rules on the live stream, and the outcomes other
services report (reverse control, billing jobs) recorded as events."""

from __future__ import annotations

from twinbill_twin.handlers.alarms import AlarmConsumer
from twinbill_twin.handlers.outcomes import handle_billing_outcome, handle_command_outcome
from twinbill_twin.handlers.telemetry import TelemetryConsumer

__all__ = ["AlarmConsumer", "TelemetryConsumer", "handle_billing_outcome",
           "handle_command_outcome"]
