"""`make run`'s message: the web console and the demo sign-in come first."""

from __future__ import annotations

from pathlib import Path

from twinbill_devstack.run import ServiceProcess, where_to_look


def test_console_and_sign_in_come_first() -> None:
    """The first non-blank lines after the greeting are the console URL and the sign-in."""
    running = [ServiceProcess(name, f"twinbill_{name}", port, {})
               for name, port in (("gateway", 8000), ("twin", 8001), ("scheduler", 8002), ("billing", 8003))]
    lines = [line for line in where_to_look(running, {"project_id": 1}, logs=Path(".stack/logs")) if line]
    assert lines[0] == "twinbill is running."
    assert lines[1].split() == ["web", "console", "http://127.0.0.1:8000/"]
    assert lines[2].split() == ["sign", "in", "as", "admin@twinbill.local", "/", "twinbill-admin"]
    assert any("history/?project_id=1" in line for line in lines)


def test_without_the_gateway_no_console_is_promised() -> None:
    """A gateway not built yet means no console line."""
    lines = where_to_look([ServiceProcess("twin", "twinbill_twin", 8001, {})], None, logs=Path("logs"))
    assert not any("console" in line for line in lines)
