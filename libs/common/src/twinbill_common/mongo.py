"""Moved: the embedded MongoDB helper is a development tool, `twinbill_devstack.mongo`.

`free_port` stays importable here only for billing's tests, which another change moves to
`twinbill_devstack.ports`; delete this module then. No service imports it.
"""

from __future__ import annotations

from twinbill_devstack.ports import free_port

__all__ = ["free_port"]
