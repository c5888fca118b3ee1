"""Seed-000 paging flags and task rendering (naive local ISO in the project's zone)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from twinbill_common.paging import PageWindow
from twinbill_scheduler.domain.crontab import Crontab
from twinbill_scheduler.domain.paging import page_links
from twinbill_scheduler.domain.tasks import Fire, Task, render_task


@pytest.mark.parametrize(("count", "page", "size", "expected"), [
    (5, 2, 2, (True, True)),   # the seed's example
    (5, 1, 2, (True, False)),
    (5, 3, 2, (False, True)),
    (4, 2, 2, (False, True)),
    (0, 1, 10, (False, False)),
    (3, 9, 2, (False, True)),  # beyond the end: empty, but an earlier page exists
])
def test_page_links(count: int, page: int, size: int, expected: tuple[bool, bool]) -> None:
    """next: a later page has rows; previous: the page is not the first."""
    window = PageWindow(page=page, page_size=size)
    assert page_links(count=count, window=window) == expected
    assert window.offset == (page - 1) * size


def test_render_task_in_project_zone() -> None:
    """Times are naive ISO to the second, in the task's zone; last_run_at null before a run."""
    created = datetime(2019, 3, 11, 3, 37, 35, 123456, tzinfo=UTC)
    task = Task(natrual_key="02c8" + "0" * 28, name="每月出账", project_id=49, device_type=1,
                crontab=Crontab(month="*", day="1", hour="1", minute="0"), enabled=True,
                description="定时出账", timezone="Asia/Shanghai", next_fire_at=None,
                last_run_at=None, create_time=created, update_time=created)
    rendered = render_task(task)
    assert rendered["create_time"] == "2019-03-11T11:37:35"
    assert rendered["last_run_at"] is None
    assert list(rendered) == ["name", "crontab", "natrual_key", "project_id", "device_type",
                              "last_run_at", "enabled", "update_time", "create_time",
                              "description"]


def test_run_id_is_deterministic() -> None:
    """The same fire names the same run: task key and fire epoch seconds."""
    fire = Fire(task_key="a" * 32, fire_time=datetime(2024, 1, 1, tzinfo=UTC),
                period_start=datetime(2023, 12, 1, tzinfo=UTC), project_id=1, device_type=1)
    assert fire.run_id == f"{'a' * 32}:1704067200"
