"""The scheduler's root error (a twin that does not answer is twinbill_common's RegistryUnavailable)."""

from __future__ import annotations

from twinbill_common.errors import HttpError, TwinbillError


class SchedulerError(TwinbillError):
    """Root of the errors the scheduler raises itself."""


class TaskConflict(SchedulerError, HttpError):
    """Another enabled task already bills the same project and device type: 409 naming it."""

    def __init__(self, *, project_id: int, device_type: int, other_key: str | None) -> None:
        other = f"task {other_key}" if other_key else "another enabled task"
        super().__init__(
            409,
            f"{other} is already enabled for project_id {project_id} and device_type {device_type}: "
            "two enabled tasks would bill the same meters twice; disable it first",
            fields={"enabled": [f"conflicts with {other}"]},
            data={"conflicting_task": other_key, "project_id": project_id, "device_type": device_type},
        )
