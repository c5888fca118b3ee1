"""The shape every service shares (docs/architecture.md, "The shape of a service"), read from the
source: the file set, no import cycles, a pure domain, settings only in settings modules, and no
service importing another. A file a service leaves out must be named in its README."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted(path.name for path in (ROOT / "services").iterdir() if (path / "src").is_dir())
REQUIRED = ("__main__.py", "settings.py", "app.py", "domain", "handlers.py", "store", "api",
            "metrics.py", "errors.py")
# Where a service leaves a file out, its README says so in a sentence naming the file.
LEFT_OUT = {
    "gateway": {"handlers.py"},
    "ingest": {"api"},
}
IO_MODULES = {"aiohttp", "asyncpg", "aio_pika", "aiormq", "pymongo", "bson", "aiomqtt", "httpx",
              "socket", "subprocess", "twinbill_common.bus", "twinbill_common.postgres"}


def package(service: str) -> Path:
    return ROOT / "services" / service / "src" / f"twinbill_{service}"


def modules(root: Path) -> Iterator[tuple[str, Path]]:
    """Every module under a package directory, with its dotted name."""
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def runtime_imports(path: Path, name: str) -> set[str]:
    """Modules imported when the module runs (not under `if TYPE_CHECKING:`), absolute names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")[: len(name.split(".")) - node.level + (path.name == "__init__.py")]
                    base = ".".join(anchor + ([base] if base else []))
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
            for field in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(node, field, None)
                if isinstance(inner, list) and not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    visit([item for item in inner if isinstance(item, ast.stmt)])

    visit(tree.body)
    return found


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle in the graph, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := walk(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := walk(start)):
            return found
    return None


@pytest.mark.parametrize("service", SERVICES)
def test_file_set(service: str) -> None:
    """Each service has the shared files; what it leaves out its README names."""
    present = {path.name.removesuffix(".py") if path.is_dir() else path.name
               for path in package(service).iterdir()}
    present |= {name + ".py" for name in present} | {name.removesuffix(".py") for name in present}
    missing = {name for name in REQUIRED if name not in present}
    assert missing == LEFT_OUT.get(service, set())
    readme = (ROOT / "services" / service / "README.md").read_text(encoding="utf-8")
    for name in missing:
        spelled = {f"`{name}`", f"`{name.removesuffix('.py')}.py`", f"`{name.removesuffix('.py')}/`"}
        assert any(form in readme for form in spelled), f"services/{service}/README.md: why no {name}?"


@pytest.mark.parametrize("root", [package(service) for service in SERVICES]
                         + [ROOT / "libs/common/src/twinbill_common", ROOT / "clients/python/src/twinbill_client"],
                         ids=lambda path: path.name)
def test_no_import_cycles(root: Path) -> None:
    """Modules import one way: no cycle among a package's modules at run time."""
    found = dict(modules(root))
    # A module naming its own package (`from pkg import sibling`) only reaches a package that is
    # already initialising: that edge is not a cycle.
    graph = {name: {target for target in runtime_imports(path, name)
                    if target in found and target != name and not name.startswith(target + ".")}
             for name, path in found.items()}
    assert cycle(graph) is None


@pytest.mark.parametrize("service", SERVICES)
def test_domain_is_pure(service: str) -> None:
    """domain/ imports no network, database or bus library."""
    for name, path in modules(package(service) / "domain"):
        impure = {target for target in runtime_imports(path, name)
                  if target.split(".")[0] in IO_MODULES or target in IO_MODULES}
        assert not impure, f"{path.relative_to(ROOT)} imports {sorted(impure)}"


@pytest.mark.parametrize("service", SERVICES)
def test_services_do_not_import_each_other(service: str) -> None:
    others = {f"twinbill_{other}" for other in SERVICES if other != service}
    for name, path in modules(package(service)):
        crossing = {target for target in runtime_imports(path, name) if target.split(".")[0] in others}
        assert not crossing, f"{path.relative_to(ROOT)} imports {sorted(crossing)}"


def test_environment_read_only_in_settings() -> None:
    """Only settings modules read the environment (services and libs/common)."""
    readers = []
    for root in [package(service) for service in SERVICES] + [ROOT / "libs/common/src/twinbill_common"]:
        for _, path in modules(root):
            text = path.read_text(encoding="utf-8")
            if path.name != "settings.py" and ("os.environ" in text or "os.getenv" in text):
                readers.append(str(path.relative_to(ROOT)))
    assert readers == []
