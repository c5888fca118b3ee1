"""The README's ten-line energy manager's session runs as written against the services."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from tests.integration.bemserver.conftest import ADMIN, Stack

README = Path(__file__).parents[3] / "README.md"


async def test_readme_bemserver_session_runs(bem: Stack) -> None:
    block = re.search(r"```python\n(from bemserver_api_client import .*?)```", README.read_text(), re.S)
    assert block is not None
    code = block.group(1)
    assert len(code.strip().splitlines()) == 10
    code = (code.replace("127.0.0.1:8000/bemserver", bem.host)
                .replace('"admin@twinbill.local", "twinbill-admin"', f'"{ADMIN[0]}", "{ADMIN[1]}"')
                .replace("print(daily.data)", "result = daily.data"))
    scope: dict[str, Any] = {}
    await asyncio.to_thread(exec, compile(code, str(README), "exec"), scope)  # the README's own code
    series = str(scope["ts"]["id"])
    assert scope["result"][series]["2026-01-05T00:00:00+01:00"] == 26.5
    assert len(scope["result"][series]) == 7
