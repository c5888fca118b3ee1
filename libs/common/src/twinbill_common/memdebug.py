"""Where a process's memory goes, for the soak bench (off unless `TWINBILL_MEMDEBUG_DIR` names a
directory; the variables are read by twinbill_common.settings.MemoryDebugSettings).

With `TWINBILL_MEMDEBUG_DIR=/some/dir`, a service started by `twinbill_common.service.serve`
traces its Python allocations (tracemalloc, `TWINBILL_MEMDEBUG_FRAMES` frames, 8; 0 turns
tracing off and keeps the counts, cheap enough to run at full load) and every
`TWINBILL_MEMDEBUG_EVERY` seconds (60) appends a report to `<dir>/<service>-<pid>.txt`: RSS, the
memory tracemalloc sees, the collector's counts, generations and collections, the objects it
tracks by type (largest growth since the baseline), and the allocation sites that grew most
since the baseline (the first report after `TWINBILL_MEMDEBUG_BASELINE` seconds, 120 by default:
imports, pools and caches filled). RSS that grows while tracemalloc's total stays flat points
outside Python's allocator (a C extension, fragmentation); a site that keeps growing is the leak.
With `TWINBILL_MEMDEBUG_GARBAGE=true` each report also runs a full collection and lists the
unreachable objects it found by type: the cyclic garbage the process carried. That collects, so
it changes what it measures: a run to find a cause, not to judge growth.

Tracing costs CPU (allocations get slower): a diagnosis tool, never on in production."""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
import tracemalloc
from collections import Counter
from pathlib import Path

from twinbill_common.settings import MemoryDebugSettings

FRAMES = 8
TOP = 25


def rss_kib() -> int:
    """This process's resident set size, KiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _types() -> Counter[str]:
    return Counter(type(o).__qualname__ for o in gc.get_objects())


class MemoryReporter:
    """The periodic report (a daemon thread; the reports are its only effect)."""

    def __init__(self, directory: Path, *, service: str, every: float, baseline_after: float,
                 frames: int = FRAMES, garbage: bool = False) -> None:
        self.path = directory / f"{service}-{os.getpid()}.txt"
        self.frames = frames
        self.garbage = garbage
        self.every = every
        self.baseline_after = baseline_after
        self.started = time.monotonic()
        self.baseline: tracemalloc.Snapshot | None = None
        self.baseline_types: Counter[str] = Counter()
        self.baseline_rss = 0

    def start(self) -> None:
        if self.frames > 0:
            tracemalloc.start(self.frames)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        threading.Thread(target=self._loop, name="memdebug", daemon=True).start()

    def _loop(self) -> None:
        while True:
            time.sleep(self.every)
            try:
                self.report()
            except Exception as err:  # noqa: BLE001  # a diagnosis must never take the service down
                with self.path.open("a") as out:
                    out.write(f"report failed: {err!r}\n")

    def report(self) -> None:
        elapsed = time.monotonic() - self.started
        snapshot = tracemalloc.take_snapshot().filter_traces((
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
        )) if tracemalloc.is_tracing() else None
        traced, peak = tracemalloc.get_traced_memory()
        types = _types()
        generations = [len(gc.get_objects(generation)) for generation in range(3)]
        rss = rss_kib()
        lines = [f"== t={elapsed:.0f}s rss={rss / 1024:.1f} MiB traced={traced / 2**20:.1f} MiB "
                 f"(peak {peak / 2**20:.1f}) gc.count={gc.get_count()} frozen={gc.get_freeze_count()} "
                 f"per generation={generations} thresholds={gc.get_threshold()} "
                 f"tracked={sum(types.values())} collections={[s['collections'] for s in gc.get_stats()]} "
                 f"collected={[s['collected'] for s in gc.get_stats()]} "
                 f"uncollectable={[s['uncollectable'] for s in gc.get_stats()]} garbage={len(gc.garbage)}"]
        if not self.baseline_types:
            if elapsed >= self.baseline_after:
                self.baseline, self.baseline_types, self.baseline_rss = snapshot, types, rss
                lines.append("   baseline taken")
        else:
            lines.append(f"   since the baseline: rss {(rss - self.baseline_rss) / 1024:+.1f} MiB; "
                         "tracked objects by type (growth):")
            growth = types.copy()
            growth.subtract(self.baseline_types)
            for name, n in sorted(growth.items(), key=lambda kv: -kv[1])[:15]:
                lines.append(f"     {n:+9d} {name} (now {types[name]})")
            if snapshot is not None and self.baseline is not None:
                lines.append("   allocation sites (growth since the baseline, by traceback, newest frame first):")
                stats = sorted((s for s in snapshot.compare_to(self.baseline, "traceback") if s.size_diff > 0),
                               key=lambda s: -s.size_diff)
                for stat in stats[:TOP]:
                    lines.append(f"     {stat.size_diff / 1024:+10.1f} KiB {stat.count_diff:+7d} blocks "
                                 f"(now {stat.size / 1024:.1f} KiB)")
                    lines.extend(f"         {frame.filename}:{frame.lineno}" for frame in reversed(stat.traceback))
        if self.garbage:
            lines += self.collect_garbage()
        with self.path.open("a") as out:
            out.write("\n".join(lines) + "\n")

    def collect_garbage(self) -> list[str]:
        """A full collection that shows what it frees: unreachable objects by type."""
        before = rss_kib()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            found = gc.collect()
            kinds = Counter(type(o).__qualname__ for o in gc.garbage)
            sizes = sum(sys.getsizeof(o) for o in gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
        gc.collect()  # now for real: DEBUG_SAVEALL kept them
        lines = [f"   full collection: {found} unreachable objects ({sizes / 2**20:.1f} MiB shallow), "
                 f"rss {before / 1024:.1f} -> {rss_kib() / 1024:.1f} MiB; by type:"]
        lines += [f"     {n:9d} {name}" for name, n in kinds.most_common(15)]
        return lines


def start_from_environment(service: str) -> MemoryReporter | None:
    """Start the reporter when `TWINBILL_MEMDEBUG_DIR` is set; None otherwise."""
    settings = MemoryDebugSettings()
    if not settings.dir:
        return None
    reporter = MemoryReporter(Path(settings.dir), service=service, every=settings.every,
                              baseline_after=settings.baseline, frames=settings.frames,
                              garbage=settings.garbage)
    reporter.start()
    return reporter
