"""Page arithmetic for the two list styles: seed 002 (page/offset) and flask-smorest (X-Pagination)."""

from __future__ import annotations

from typing import Any


def page_total(total: int, size: int) -> int:
    """Number of pages holding `total` rows of `size` each (0 when there are none)."""
    return (total + size - 1) // size if size > 0 else 0


def smorest_pagination(*, total: int, page: int, page_size: int) -> dict[str, Any]:
    """The X-Pagination header content as flask-smorest writes it."""
    pages = page_total(total, page_size)
    header: dict[str, Any] = {"total": total, "total_pages": pages}
    if pages:
        header.update(first_page=1, last_page=pages, page=page)
        if page > 1:
            header["previous_page"] = page - 1
        if page < pages:
            header["next_page"] = page + 1
    return header
