"""The gateway's classification of billing's read API paths (runs, audit) for project access."""

from __future__ import annotations

import pytest

from twinbill_gateway.domain.access import AdminOnly, Collection, Item, access_for, item_owner
from twinbill_gateway.domain.routing import upstream_for


@pytest.mark.parametrize(("path", "expected"), [
    ("/api/v1/billing/runs/", Collection()),
    ("/api/v1/billing/runs", Collection()),
    ("/api/v1/billing/audit/", Collection()),
    ("/api/v1/billing/runs/task1:1711900800",
     Item("billing", "runs", "/api/v1/billing/runs/task1:1711900800?page_size=1")),
    ("/api/v1/billing/runs/task1:1/", Item("billing", "runs", "/api/v1/billing/runs/task1:1?page_size=1")),
])
def test_billing_read_paths_are_project_checked(path: str, expected: object) -> None:
    """Lists need a project of the caller; a run's owner is read from billing."""
    assert access_for(path) == expected
    assert upstream_for(path) == "billing"


@pytest.mark.parametrize("path", ["/api/v1/billing/", "/api/v1/billing/runs/a/b", "/api/v1/billing/jobs/",
                                  "/api/v1/billing/runs/a%2f..%2fb"])
def test_other_billing_paths_are_for_administrators(path: str) -> None:
    assert isinstance(access_for(path), AdminOnly)


def test_a_run_is_owned_by_its_project_id() -> None:
    assert item_owner("runs", {"run_id": "t:1", "project_id": 42}) == 42
    assert item_owner("runs", {"run_id": "t:1"}) is None
