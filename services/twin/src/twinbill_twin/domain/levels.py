"""BEMServer's event levels (bemserver-core EventLevelEnum): names on the wire, numbers stored."""

from __future__ import annotations

LEVELS: dict[str, int] = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
NAMES: dict[int, str] = {number: name for name, number in LEVELS.items()}
# Without a subscription a user hears of events at this level and above (BEMServer's default).
DEFAULT_NOTIFICATION_LEVEL = LEVELS["WARNING"]


def notified(event_level: int, subscription_level: int | None) -> bool:
    """Whether a user with this subscription (None: none) is notified of an event, as
    bemserver-core's Event.notify decides: a subscription's level is the threshold; without one,
    WARNING and above."""
    if subscription_level is None:
        return event_level >= DEFAULT_NOTIFICATION_LEVEL
    return event_level >= subscription_level
