"""The soak's memory report (twinbill_common.memdebug): off unless asked for; when asked, it
says what grew and what a full collection found."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from twinbill_common.memdebug import MemoryReporter, start_from_environment


def test_off_unless_the_environment_names_a_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWINBILL_MEMDEBUG_DIR", raising=False)
    assert start_from_environment("twin") is None


def test_a_report_names_the_growth_and_the_cyclic_garbage(tmp_path: Path) -> None:
    reporter = MemoryReporter(tmp_path, service="twin", every=3600, baseline_after=0, frames=0, garbage=True)
    reporter.report()  # the baseline
    was = gc.isenabled()
    gc.disable()
    try:
        class Holder:
            pass

        kept = [Holder() for _ in range(300)]
        for _ in range(200):  # cycles nobody references: only a collection frees them
            cycle: list[object] = []
            cycle.append(cycle)
        reporter.report()
    finally:
        if was:
            gc.enable()
    text = reporter.path.read_text()
    assert "baseline taken" in text
    assert "+300 test_a_report_names_the_growth_and_the_cyclic_garbage.<locals>.Holder" in text
    found = [line for line in text.splitlines() if line.strip().endswith(" list")][-1]  # the second report's
    assert int(found.split()[0]) >= 199, text  # the last one is still referenced
    assert len(kept) == 300
