"""E2E hooks: each test item keeps its phase reports, so fixtures can tell whether the test failed."""

from __future__ import annotations

from collections.abc import Generator

import pytest


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Store the report of each phase on the item as `rep_setup` / `rep_call` / `rep_teardown`."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
