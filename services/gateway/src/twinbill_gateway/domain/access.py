"""Project access for non-administrators: what a path is, and which projects a request names.

Pure and synchronous; the proxy does the look-ups this module asks for.

Kinds of path (see the README's "Routing and project access"):
- `Collection`: list/create, history, billing run and audit list endpoints. The project named in the query or the body
  must be one the user belongs to; naming none is forbidden.
- `TaskKey`: `/api/v1/scheduler/tasks/{key}/...`. The project is always read from the scheduler.
- `Item`: `/api/v1/<resource>/{id}[/...]` of a managed resource, and `/api/v1/billing/runs/{id}`.
  The owner is always read by GETting the item from its service (its `project_id`, or its `id` for a project).
- `OpenDt`: `/dt/open/...` (seed 002 has no project parameter): forwarded with the caller's
  projects in `X-Twinbill-Projects`; the twin shows only those projects' twins (issue 12).
- `AdminOnly`: anything not listed above.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from twinbill_gateway.domain.routing import Upstream

# Managed resources with item paths, and the service that owns each.
ITEM_OWNERS: dict[str, Upstream] = {
    "projects": "twin", "sites": "twin", "buildings": "twin", "storeys": "twin", "spaces": "twin",
    "zones": "twin", "residents": "twin", "products": "twin", "devices": "twin", "tariffs": "billing",
    "bills": "billing", "alarm_rules": "twin", "webhooks": "twin",
}
# Twin endpoints that are neither a resource collection nor an item, and take a project.
OTHER_COLLECTIONS = frozenset({("io", "sites_csv"), ("tariffs", "preview")})
SCHEDULER_COLLECTIONS = frozenset({("task",), ("tasks",), ("history",), ("history", "time"),
                                   ("crontab", "preview")})
# Billing's read API: run reports and the audit (lists by project), and a run by id (its owner).
BILLING_COLLECTIONS = frozenset({("runs",), ("audit",)})
INTEGER = re.compile(r"^-?\d{1,18}$")
# Dot segments and encoded '.' or '/' could make the forwarded URL differ from the checked one.
AMBIGUOUS = re.compile(r"%2[ef]|%5c|\\", re.IGNORECASE)


class ProjectConflict(ValueError):
    """The request names more than one project (query against body, or repeated keys)."""


class InvalidProject(ValueError):
    """A project_id that is not an integer."""


@dataclass(frozen=True)
class Collection:
    """A list/create/history endpoint: the named project decides."""


@dataclass(frozen=True)
class TaskKey:
    """A seed-000 task-by-key path; `key` is as written in the path (still URL-encoded)."""

    key: str


@dataclass(frozen=True)
class Item:
    """An item of a managed resource; `lookup` is the path to GET it from `upstream`."""

    upstream: Upstream
    resource: str
    lookup: str


@dataclass(frozen=True)
class OpenDt:
    """Seed 002's API: the twin filters by the projects the gateway names."""


@dataclass(frozen=True)
class AdminOnly:
    """Only administrators; `reason` says why, for the 403."""

    reason: str


Access = Collection | TaskKey | Item | OpenDt | AdminOnly


def access_for(raw_path: str) -> Access:
    """What kind of path `raw_path` (as sent, URL-encoded) is, for project access."""
    parts = raw_path.split("/")
    if any(part in (".", "..") for part in parts) or AMBIGUOUS.search(raw_path):
        return AdminOnly(f"{raw_path}: dot segments and encoded '.', '/' or '\\' are for administrators")
    if raw_path.startswith("/dt/open/"):
        return OpenDt()
    if parts[:3] != ["", "api", "v1"]:
        return AdminOnly(f"{raw_path} is for administrators")
    rest = parts[3:]
    if rest and rest[-1] == "":
        rest = rest[:-1]
    if not rest or "" in rest:
        return AdminOnly(f"{raw_path} is for administrators")
    head, tail = rest[0], tuple(rest[1:])
    if head == "scheduler":
        if tail in SCHEDULER_COLLECTIONS:
            return Collection()
        if len(tail) >= 2 and tail[0] == "tasks":
            return TaskKey(tail[1])
        return AdminOnly(f"{raw_path} is for administrators")
    if head == "billing":
        if tail in BILLING_COLLECTIONS:
            return Collection()
        if len(tail) == 2 and tail[0] == "runs":
            # the run's project is read from billing; one device per page keeps the look-up small
            return Item("billing", "runs", f"/api/v1/billing/runs/{tail[1]}?page_size=1")
        return AdminOnly(f"{raw_path} is for administrators")
    if (head, *tail) in OTHER_COLLECTIONS:
        return Collection()
    if head in ITEM_OWNERS:
        if not tail:
            return Collection()
        return Item(ITEM_OWNERS[head], head, f"/api/v1/{head}/{tail[0]}")
    return AdminOnly(f"{raw_path} is for administrators")


def item_owner(resource: str, item: object) -> int | None:
    """The project owning an item as its service shows it; None when it has no project field.

    A project owns itself (its `id`). Products have no project: non-administrators are refused.
    """
    if not isinstance(item, dict):
        return None
    owner = item.get("id") if resource == "projects" else item.get("project_id")
    return owner if isinstance(owner, int) and not isinstance(owner, bool) else None


def _as_project(raw: object) -> int | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | str) or not INTEGER.match(str(raw).strip()):
        raise InvalidProject(f"project_id {raw!r} is not an integer")
    return int(str(raw).strip())


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json object hook: a repeated project_id key with different values is a conflict."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key == "project_id" and key in seen and seen[key] != value:
            raise ProjectConflict("the body names project_id more than once with different values")
        seen[key] = value
    return seen


def parse_body(body: bytes) -> object:
    """The body as JSON whatever its Content-Type (the services parse it that way), else None."""
    if not body:
        return None
    try:
        return json.loads(body, object_pairs_hook=_pairs)
    except ProjectConflict:
        raise
    except ValueError:  # UnicodeDecodeError included
        return None  # not JSON (a CSV upload, say): the owning service answers it itself


def named_projects(query_values: Iterable[str], body: object) -> int | None:
    """The one project a request names in its query and JSON body, or None when it names none.

    Raises ProjectConflict when they name different projects, InvalidProject when one is not an
    integer. A JSON list body (bulk) names the projects of its objects.
    """
    named: list[tuple[str, int]] = []
    for value in query_values:
        if (project := _as_project(value)) is not None:
            named.append(("query", project))
    objects = body if isinstance(body, list) else [body]
    for obj in objects:
        if isinstance(obj, dict) and (project := _as_project(obj.get("project_id"))) is not None:
            named.append(("body", project))
    distinct = {project for _, project in named}
    if len(distinct) > 1:
        said = ", ".join(f"{where} project_id={project}" for where, project in named)
        raise ProjectConflict(f"the request names different projects ({said})")
    return distinct.pop() if distinct else None
