"""Seed 000's list paging: `page` from 1, `page_size` rows, boolean `next` / `previous`."""

from __future__ import annotations

from twinbill_common.paging import PageWindow

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100


def page_links(*, count: int, window: PageWindow) -> tuple[bool, bool]:
    """(next, previous): whether a later page has rows, whether an earlier page exists."""
    has_next = window.page * window.page_size < count
    has_previous = window.page > 1
    return has_next, has_previous
