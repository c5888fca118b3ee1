"""MongoDB for development and tests: the embedded wire-protocol server (nx-27017).

A development and test tool, never in a service image. A MONGO_URL pointing at a real MongoDB
always wins; the same driver code runs against both. nx-27017 stores no Decimal128, so services
keep money and readings as decimal strings plus integer minor units, which real MongoDB stores
the same way.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from twinbill_devstack.ports import port_open


def start_embedded_mongo(
    *, data_dir: Path, port: int, log_file: Path, host: str = "127.0.0.1", wait: float = 20.0
) -> subprocess.Popen[bytes]:
    """Start nx-27017 on host:port with one SQLite file per database under data_dir; wait until it answers."""
    data_dir.mkdir(parents=True, exist_ok=True)
    executable = shutil.which("nx-27017") or str(Path(sys.executable).parent / "nx-27017")
    process = subprocess.Popen(  # noqa: S603  # fixed argv of our own dependency
        [executable, "--data-dir", str(data_dir), "--host", host, "-p", str(port),
         "--log-file", str(log_file), "--pid-file", str(data_dir / "nx-27017.pid")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nx-27017 exited with {process.returncode}; see {log_file}")
        if port_open(host, port):
            return process
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"nx-27017 did not answer on {host}:{port} within {wait}s; see {log_file}")
